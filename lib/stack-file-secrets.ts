import * as YAML from "yaml";
import { CONFIG_KEYS, CONFIG_NAMESPACE, ConfigKey } from "./config";

/** The keys lib/config.ts declares secret, as a stack file names them (`homelab:registryPassword`). */
export const SECRET_CONFIG_KEYS: readonly string[] = (Object.keys(CONFIG_KEYS) as ConfigKey[])
  .filter((k) => CONFIG_KEYS[k].kind === "secret")
  .map((k) => `${CONFIG_NAMESPACE}:${k}`);

/** The secrets providers that wrap the stack's data key with a key of their own (`secretsprovider:` plus `encryptedkey:`). */
export const KMS_SCHEMES = ["awskms", "gcpkms", "azurekeyvault", "hashivault"] as const;

/**
 * How Pulumi writes a `secure:` value: AES-256-GCM as `v1:<nonce>:<ciphertext>` when the key is the
 * passphrase's or a KMS-wrapped data key; bare base64 when Pulumi Cloud encrypts it with the stack's
 * own key, which never is in the file.
 */
type Cipher = "symmetric" | "cloud" | "malformed";

function cipherOf(text: string): Cipher {
  // Standard base64 with its padding: a length a multiple of 4.
  const base64 = (part: string): boolean => part.length > 0 && part.length % 4 === 0 && /^[A-Za-z0-9+/]+={0,2}$/.test(part);
  const parts = text.split(":");
  if (parts.length === 3 && parts[0] === "v1" && base64(parts[1]) && base64(parts[2])) {
    return "symmetric";
  }
  return base64(text) ? "cloud" : "malformed";
}

function isMapping(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** A config value Pulumi decrypts: a mapping with `secure:` alone, its text the ciphertext. */
function secureText(v: unknown): string | undefined {
  return isMapping(v) && Object.keys(v).length === 1 && typeof v.secure === "string" ? v.secure : undefined;
}

const filled = (v: unknown): v is string => typeof v === "string" && v.trim() !== "";

/** Whether a config key names one of `secretKeys`; a key without a namespace is read as the project's. */
function isSecretKey(key: string, secretKeys: readonly string[]): boolean {
  return secretKeys.some((s) => s === key || (!key.includes(":") && s.slice(s.indexOf(":") + 1) === key));
}

/**
 * Problems with committing a `Pulumi.<stack>.yaml` (its text), one sentence each; none when it may
 * be committed:
 * - a key of `secretKeys` is absent, empty or encrypted (`secure:`, or structured with every part
 *   `secure:`), never in plain text; any other key may be encrypted too;
 * - a file with `secure:` values carries what decrypts them with the key CI holds:
 *   `encryptionsalt` (the passphrase provider), or `secretsprovider` (a cloud KMS URL) with
 *   `encryptedkey`; values Pulumi Cloud's own provider wrote need neither (the stack's key stays in
 *   Pulumi Cloud);
 * - `environment` names Pulumi ESC environments (a list, or `imports:`): values written inline
 *   would be committed as written.
 * No value is ever echoed: messages name keys only.
 */
export function committedStackFileProblems(yamlText: string, secretKeys: readonly string[] = SECRET_CONFIG_KEYS): string[] {
  let doc: unknown;
  try {
    doc = YAML.parse(yamlText);
  } catch (e) {
    // Not the parser's message: it quotes the offending line, which may hold a secret.
    const line = e instanceof YAML.YAMLError && e.linePos ? ` at line ${e.linePos[0].line}` : "";
    return [`not valid YAML${line} (${e instanceof YAML.YAMLError ? e.code : "unreadable"})`];
  }
  if (doc === null || doc === undefined) {
    return [];
  }
  if (!isMapping(doc)) {
    return ["the file is not a mapping of stack settings (config:, secretsprovider:, …)"];
  }
  const problems: string[] = [];
  const ciphers: Cipher[] = [];

  /** Walks a value; a secret key's parts must each be encrypted. */
  const walk = (value: unknown, at: string, secret: boolean): void => {
    const text = secureText(value);
    if (text !== undefined) {
      const cipher = cipherOf(text);
      ciphers.push(cipher);
      if (cipher === "malformed") {
        problems.push(`${at}: its secure: value is not a ciphertext Pulumi writes: set it again with pulumi config set --secret`);
      }
    } else if (Array.isArray(value)) {
      value.forEach((v, i) => walk(v, `${at}[${i}]`, secret));
    } else if (isMapping(value)) {
      for (const [k, v] of Object.entries(value)) {
        walk(v, `${at}.${k}`, secret);
      }
    } else if (secret && value !== null && value !== "") {
      problems.push(
        `${at}: a secret in plain text; set it with pulumi config set --secret, and change the secret itself: once committed, it stays in git's history`,
      );
    }
  };

  const config = doc.config;
  if (config !== undefined && config !== null && !isMapping(config)) {
    problems.push("config: is not a mapping of keys to values");
  } else {
    for (const [key, value] of Object.entries(config ?? {})) {
      walk(value, key, isSecretKey(key, secretKeys));
    }
  }

  problems.push(...environmentProblems(doc.environment));

  if (ciphers.length > 0) {
    problems.push(...decryptionProblems(doc, ciphers));
  }
  return problems;
}

/** What is missing for the file's `secure:` values to be decrypted with a key from the environment. */
function decryptionProblems(doc: Record<string, unknown>, ciphers: readonly Cipher[]): string[] {
  const provider = filled(doc.secretsprovider) ? doc.secretsprovider.trim() : "";
  const salt = filled(doc.encryptionsalt);
  const wrappedKey = filled(doc.encryptedkey);
  const scheme = /^([a-z0-9+.-]+):\/\//i.exec(provider)?.[1].toLowerCase();
  if (scheme === "base64key") {
    return [`secretsprovider ${scheme}:// carries its key in the file itself: anyone who reads the repository decrypts it; use a passphrase or a cloud KMS (${KMS_SCHEMES.map((s) => `${s}://`).join(", ")})`];
  }
  if (scheme !== undefined) {
    return wrappedKey ? [] : [`secretsprovider ${scheme}://… has no encryptedkey (the data key it wraps): the file Pulumi wrote with it carries one; commit it as Pulumi wrote it`];
  }
  if (provider !== "" && provider !== "passphrase" && provider !== "default" && provider !== "service") {
    return [`secretsprovider ${JSON.stringify(provider)} is none Pulumi knows: passphrase, default (Pulumi Cloud) or a cloud KMS URL (${KMS_SCHEMES.map((s) => `${s}://`).join(", ")})`];
  }
  if (wrappedKey) {
    return ["encryptedkey without the secretsprovider that unwraps it: secretsprovider (the cloud KMS key's URL) is missing"];
  }
  if (provider === "passphrase" && !salt) {
    return ["secretsprovider passphrase without encryptionsalt: the passphrase's salt is missing, so no passphrase can decrypt the file"];
  }
  if (!salt && ciphers.includes("symmetric")) {
    return [
      "secure: values made with a passphrase or a cloud KMS key, but nothing that says which: encryptionsalt (passphrase provider) is missing, and so is secretsprovider with encryptedkey (cloud KMS); commit the file as pulumi stack init or pulumi config set --secret wrote it",
    ];
  }
  if (salt && ciphers.includes("cloud")) {
    return ["secure: values made by Pulumi Cloud's secrets provider in a file whose encryptionsalt says passphrase: set them again with pulumi config set --secret"];
  }
  return [];
}

/** `environment:` may name Pulumi ESC environments; an inline definition's values would be committed as written. */
function environmentProblems(env: unknown): string[] {
  const names = (v: unknown): boolean =>
    Array.isArray(v) && v.every((e) => filled(e) || (isMapping(e) && Object.keys(e).length === 1 && filled(Object.keys(e)[0])));
  if (env === undefined || env === null || filled(env) || names(env)) {
    return [];
  }
  if (isMapping(env)) {
    const others = Object.keys(env).filter((k) => k !== "imports");
    if (others.length === 0 && names(env.imports)) {
      return [];
    }
    if (others.includes("values")) {
      return ["environment: values written inline are committed as written: keep them in a Pulumi ESC environment (pulumi env set --secret) and list it (environment: [project/env])"];
    }
  }
  return ["environment: is not a list of Pulumi ESC environments (environment: [project/env])"];
}
