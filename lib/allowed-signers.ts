/*
 * The keys whose signed commits a deploy trusts (`homelab:trustedSigners`), in the format of git's
 * `gpg.ssh.allowedSignersFile`: one signer a line, `principals [options] keytype base64 [comment]`,
 * blank lines and `#` comments allowed.
 */

import { ParsedKey, utils } from "ssh2";

const KEY_TYPES = [
  "ssh-ed25519",
  "ssh-rsa",
  "ecdsa-sha2-nistp256",
  "ecdsa-sha2-nistp384",
  "ecdsa-sha2-nistp521",
  "sk-ssh-ed25519@openssh.com",
  "sk-ecdsa-sha2-nistp256@openssh.com",
];

/** The signer lines of the text: what is not blank or a comment. */
export function signerLines(text: string): string[] {
  return text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l !== "" && !l.startsWith("#"));
}

/** Why the text is not an allowed signers list, naming the first bad line by its number; undefined when it is one. */
export function allowedSignersProblem(text: string): string | undefined {
  const lines = text.split(/\r?\n/);
  if (signerLines(text).length === 0) {
    return "names no signer (one a line: 'principal keytype base64', as git's gpg.ssh.allowedSignersFile has them)";
  }
  for (const [i, raw] of lines.entries()) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) {
      continue;
    }
    const words = line.split(/\s+/);
    const at = words.findIndex((w) => KEY_TYPES.includes(w));
    if (at < 1 || !/^[A-Za-z0-9+/]+={0,2}$/.test(words[at + 1] ?? "")) {
      return `line ${i + 1} is not 'principal [options] keytype base64' with one of the key types ${KEY_TYPES.join(", ")}`;
    }
  }
  return undefined;
}

/** One signer line's principals and key (`keytype base64`), options and comment left out. */
function signerKey(line: string): { principals: string; key: string } | undefined {
  const words = line.split(/\s+/);
  const at = words.findIndex((w) => KEY_TYPES.includes(w));
  return at < 1 || words[at + 1] === undefined ? undefined : { principals: words[0], key: `${words[at]} ${words[at + 1]}` };
}

/** The public keys (`keytype base64`) the signers name. */
export function signerKeys(text: string): string[] {
  return signerLines(text).flatMap((l) => signerKey(l)?.key ?? []);
}

/**
 * The signers as authorized_keys lines (`keytype base64 principals`): the form in which Flux's
 * source-controller takes the SSH keys it verifies commit signatures with.
 */
export function signersAsAuthorizedKeys(text: string): string {
  return signerLines(text)
    .flatMap((l) => {
      const s = signerKey(l);
      return s ? [`${s.key} ${s.principals}`] : [];
    })
    .join("\n")
    .concat("\n");
}

/** The public key (`keytype base64`) of an unencrypted SSH private key; undefined when it is not one. */
export function publicKeyOf(privateKey: string): string | undefined {
  const parsed = utils.parseKey(privateKey);
  if (parsed instanceof Error) {
    return undefined;
  }
  // A file holding several keys parses to a list; the first is the signing key git would use.
  const key: ParsedKey = Array.isArray(parsed) ? (parsed as ParsedKey[])[0] : parsed;
  return key.isPrivateKey() ? `${key.type} ${key.getPublicSSH().toString("base64")}` : undefined;
}
