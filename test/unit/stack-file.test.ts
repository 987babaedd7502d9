import { after, before, describe, it } from "node:test";
import * as assert from "node:assert/strict";
import { execFileSync } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as YAML from "yaml";
import { syncCheckout } from "../../deploy/git";
import { KMS_SCHEMES, SECRET_CONFIG_KEYS, committedStackFileProblems } from "../../lib/stack-file-secrets";
import { SECRET_KEYS, TAG_A, TAG_B, VPS_SECRET_KEYS, releaseText } from "../support/fixtures";

const REPO = path.resolve(__dirname, "../..");

// Ciphertexts of the shapes Pulumi writes, random each run: nothing here decrypts to anything.
const b64 = (bytes: number): string => crypto.randomBytes(bytes).toString("base64");
/** AES-256-GCM under the passphrase's or a KMS-wrapped key: `v1:<nonce>:<ciphertext>`. */
const sealed = (): { secure: string } => ({ secure: `v1:${b64(12)}:${b64(40)}` });
/** Pulumi Cloud's own provider: bare base64. */
const cloudSealed = (): { secure: string } => ({ secure: b64(60) });
const passphraseSalt = (): string => `v1:${b64(8)}:v1:${b64(12)}:${b64(22)}`;

/** A stack file's text: the production file's shape with the given settings and config entries. */
function stackFile(settings: Record<string, unknown>, config: Record<string, unknown> = {}): string {
  return YAML.stringify({ ...settings, config: { "homelab:vmHost": "192.168.0.50", "homelab:registryUsername": "flux", ...config } });
}

/** Every secret key encrypted with `seal`. */
const allSealed = (seal: () => { secure: string }): Record<string, unknown> => Object.fromEntries(SECRET_CONFIG_KEYS.map((k) => [k, seal()]));

describe("what a committed stack file may hold", () => {
  it("knows the secret keys lib/config.ts declares", () => {
    for (const k of [...SECRET_KEYS, ...VPS_SECRET_KEYS]) {
      assert.ok(SECRET_CONFIG_KEYS.includes(k), k);
    }
    assert.ok(!SECRET_CONFIG_KEYS.includes("homelab:vmHost"));
  });

  it("accepts secrets encrypted with a passphrase, a cloud KMS key or Pulumi Cloud's provider, each with what decrypts them", () => {
    assert.deepEqual(committedStackFileProblems(stackFile({ encryptionsalt: passphraseSalt() }, allSealed(sealed))), []);
    assert.deepEqual(committedStackFileProblems(stackFile({ secretsprovider: "passphrase", encryptionsalt: passphraseSalt() }, allSealed(sealed))), []);
    const kms: Record<(typeof KMS_SCHEMES)[number], string> = {
      awskms: "awskms://alias/homelab?region=eu-west-1",
      gcpkms: "gcpkms://projects/p/locations/global/keyRings/r/cryptoKeys/k",
      azurekeyvault: "azurekeyvault://homelab.vault.azure.net/keys/pulumi",
      hashivault: "hashivault://pulumi",
    };
    for (const provider of Object.values(kms)) {
      assert.deepEqual(committedStackFileProblems(stackFile({ secretsprovider: provider, encryptedkey: b64(180) }, allSealed(sealed))), [], provider);
    }
    // Pulumi Cloud keeps the stack's key itself: the file names nothing.
    assert.deepEqual(committedStackFileProblems(stackFile({}, allSealed(cloudSealed))), []);
  });

  it("accepts a file without secrets, an absent or empty secret, and more keys encrypted than the secret ones", () => {
    assert.deepEqual(committedStackFileProblems(stackFile({})), []);
    assert.deepEqual(committedStackFileProblems(stackFile({}, { "homelab:registryPassword": "", "homelab:kubeconfig": null })), []);
    assert.deepEqual(committedStackFileProblems(stackFile({ encryptionsalt: passphraseSalt() }, { "homelab:vmHost": sealed(), "homelab:gitUrl": sealed() })), []);
    assert.deepEqual(committedStackFileProblems(""), []);
  });

  it("refuses every secret key in plain text, naming the key and never the value", () => {
    for (const key of SECRET_CONFIG_KEYS) {
      const value = `plain-${b64(12)}`;
      const problems = committedStackFileProblems(stackFile({ encryptionsalt: passphraseSalt() }, { ...allSealed(sealed), [key]: value }));
      assert.equal(problems.length, 1, key);
      assert.match(problems[0], new RegExp(`^${key}: a secret in plain text; set it with pulumi config set --secret, and change the secret itself`));
      assert.ok(!problems[0].includes(value));
    }
    // As a number, a list, and under the project's namespace left out.
    assert.equal(committedStackFileProblems(stackFile({}, { "homelab:registryPassword": 123456 })).length, 1);
    assert.match(committedStackFileProblems(stackFile({}, { "homelab:vpsEnv": ["A=1"] }))[0], /^homelab:vpsEnv\[0\]: a secret in plain text/);
    assert.match(committedStackFileProblems(stackFile({}, { registryPassword: "hunter2-hunter2" }))[0], /^registryPassword: a secret in plain text/);
  });

  it("takes a structured secret only when every part of it is encrypted", () => {
    const salt = { encryptionsalt: passphraseSalt() };
    assert.deepEqual(committedStackFileProblems(stackFile(salt, { "homelab:backendEnv": { DATABASE_URL: sealed(), NODE_ENV: sealed() } })), []);
    assert.deepEqual(committedStackFileProblems(stackFile(salt, { "homelab:backendEnv": { DATABASE_URL: sealed(), NODE_ENV: "production" } })), [
      "homelab:backendEnv.NODE_ENV: a secret in plain text; set it with pulumi config set --secret, and change the secret itself: once committed, it stays in git's history",
    ]);
  });

  it("says what is missing to decrypt the file's secure values", () => {
    assert.deepEqual(committedStackFileProblems(stackFile({}, allSealed(sealed))), [
      "secure: values made with a passphrase or a cloud KMS key, but nothing that says which: encryptionsalt (passphrase provider) is missing, and so is secretsprovider with encryptedkey (cloud KMS); commit the file as pulumi stack init or pulumi config set --secret wrote it",
    ]);
    // A non-secret key encrypted needs its key as much.
    assert.match(committedStackFileProblems(stackFile({}, { "homelab:vmHost": sealed() })).join("\n"), /encryptionsalt \(passphrase provider\) is missing/);
    assert.deepEqual(committedStackFileProblems(stackFile({ secretsprovider: "awskms://alias/homelab" }, allSealed(sealed))), [
      "secretsprovider awskms://… has no encryptedkey (the data key it wraps): the file Pulumi wrote with it carries one; commit it as Pulumi wrote it",
    ]);
    assert.deepEqual(committedStackFileProblems(stackFile({ encryptedkey: b64(180) }, allSealed(sealed))), [
      "encryptedkey without the secretsprovider that unwraps it: secretsprovider (the cloud KMS key's URL) is missing",
    ]);
    assert.deepEqual(committedStackFileProblems(stackFile({ secretsprovider: "passphrase" }, allSealed(sealed))), [
      "secretsprovider passphrase without encryptionsalt: the passphrase's salt is missing, so no passphrase can decrypt the file",
    ]);
    assert.match(committedStackFileProblems(stackFile({ encryptionsalt: passphraseSalt() }, allSealed(cloudSealed)))[0], /made by Pulumi Cloud's secrets provider in a file whose encryptionsalt says passphrase/);
    // Without any secure value, nothing to decrypt: no settings needed.
    assert.deepEqual(committedStackFileProblems(stackFile({ secretsprovider: "awskms://alias/homelab" })), []);
  });

  it("refuses a provider whose key is in the file, one Pulumi does not know, and a secure value that is no ciphertext", () => {
    const key = b64(32);
    const inFile = committedStackFileProblems(stackFile({ secretsprovider: `base64key://${key}`, encryptedkey: b64(60) }, allSealed(sealed)));
    assert.equal(inFile.length, 1);
    assert.match(inFile[0], /^secretsprovider base64key:\/\/ carries its key in the file itself/);
    assert.ok(!inFile[0].includes(key));
    assert.match(committedStackFileProblems(stackFile({ secretsprovider: "vault" }, allSealed(sealed)))[0], /^secretsprovider "vault" is none Pulumi knows/);
    assert.deepEqual(committedStackFileProblems(stackFile({ encryptionsalt: passphraseSalt() }, { "homelab:registryPassword": { secure: "hunter 2" } })), [
      "homelab:registryPassword: its secure: value is not a ciphertext Pulumi writes: set it again with pulumi config set --secret",
    ]);
    // A mapping with more than secure: is no encrypted value: its text is plain.
    const mixed = committedStackFileProblems(stackFile({ encryptionsalt: passphraseSalt() }, { "homelab:registryPassword": { secure: sealed().secure, note: "x" } }));
    assert.deepEqual(mixed.map((p) => p.slice(0, p.indexOf(": a secret in plain text"))), ["homelab:registryPassword.secure", "homelab:registryPassword.note"]);
  });

  it("takes Pulumi ESC environments by name, not values written inline", () => {
    for (const environment of [["homelab/production"], ["production", "homelab/shared"], "homelab/production", { imports: ["homelab/production"] }, [{ "homelab/production": { merge: false } }]]) {
      assert.deepEqual(committedStackFileProblems(stackFile({ environment })), [], JSON.stringify(environment));
    }
    assert.deepEqual(committedStackFileProblems(stackFile({ environment: { imports: ["homelab/production"], values: { pulumiConfig: { "homelab:registryPassword": "x" } } } })), [
      "environment: values written inline are committed as written: keep them in a Pulumi ESC environment (pulumi env set --secret) and list it (environment: [project/env])",
    ]);
    assert.deepEqual(committedStackFileProblems(stackFile({ environment: 3 })), ["environment: is not a list of Pulumi ESC environments (environment: [project/env])"]);
  });

  it("reports a file that is not YAML, or has a key twice, without quoting it", () => {
    const value = `s3cr3t-${b64(9)}`;
    const broken = committedStackFileProblems(`config:\n  homelab:registryPassword: "${value}\n  homelab:vmHost: [\n`);
    assert.equal(broken.length, 1);
    assert.match(broken[0], /^not valid YAML/);
    assert.ok(!broken[0].includes(value));
    // A second entry for a key could hide a plain value behind an encrypted one.
    const twice = committedStackFileProblems(`encryptionsalt: ${passphraseSalt()}\nconfig:\n  homelab:registryPassword:\n    secure: ${sealed().secure}\n  homelab:registryPassword: ${value}\n`);
    assert.match(twice.join("\n"), /^not valid YAML at line 5 \(DUPLICATE_KEY\)$/);
    assert.equal(committedStackFileProblems("- config\n").length, 1);
  });
});

/** The stack files git tracks, anywhere in the repository (Pulumi.yaml is the project, not a stack). */
function committedStackFiles(): string[] {
  try {
    return execFileSync("git", ["ls-files", "-z"], { cwd: REPO, encoding: "utf8" })
      .split("\0")
      .filter((f) => /^Pulumi\.[^/]+\.yaml$/.test(path.basename(f)));
  } catch {
    // Not a checkout (an exported tree): the files beside Pulumi.yaml are what would be committed.
    return fs.readdirSync(REPO).filter((f) => /^Pulumi\.[^/]+\.yaml$/.test(f));
  }
}

describe("the repository's stack files", () => {
  it("hold no secret in plain text and carry what decrypts their secure values", () => {
    const files = committedStackFiles();
    assert.ok(files.includes("Pulumi.production.yaml"), files.join(", "));
    for (const f of files) {
      assert.deepEqual(committedStackFileProblems(fs.readFileSync(path.join(REPO, f), "utf8")), [], f);
    }
  });
});

/*
 * The deploy's checkout checks against a stack file that is committed encrypted, in real
 * repositories in a temporary directory: a bare "server", the deploy's clone and a second clone.
 */
describe("a checkout whose stack file is committed", () => {
  const RELEASE = "flux/clusters/production/release.yaml";
  const STACK = "Pulumi.production.yaml";
  let dir: string;
  let server: string;
  let deployClone: string;
  let other: string;
  const sh = (cwd: string, ...args: string[]): string =>
    execFileSync("git", args, { cwd, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, GIT_AUTHOR_NAME: "t", GIT_AUTHOR_EMAIL: "t@t", GIT_COMMITTER_NAME: "t", GIT_COMMITTER_EMAIL: "t@t" } });
  const push = (file: string, text: string, message: string): void => {
    sh(other, "pull", "--quiet", "--ff-only");
    fs.writeFileSync(path.join(other, file), text);
    sh(other, "commit", "--quiet", "-am", message);
    sh(other, "push", "--quiet", "origin", "master");
  };
  const salt = passphraseSalt();
  const committed = stackFile({ encryptionsalt: salt }, allSealed(sealed));

  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "homelab-stackfile-"));
    server = path.join(dir, "server.git");
    sh(dir, "init", "--quiet", "--bare", "-b", "master", server);
    const seed = path.join(dir, "seed");
    sh(dir, "clone", "--quiet", server, seed);
    fs.mkdirSync(path.join(seed, path.dirname(RELEASE)), { recursive: true });
    fs.writeFileSync(path.join(seed, RELEASE), releaseText(TAG_A, TAG_A));
    fs.writeFileSync(path.join(seed, STACK), committed);
    sh(seed, "add", ".");
    sh(seed, "commit", "--quiet", "-m", "seed: the stack file with its secrets encrypted");
    sh(seed, "push", "--quiet", "origin", "HEAD:master");
    deployClone = path.join(dir, "deploy");
    other = path.join(dir, "other");
    sh(dir, "clone", "--quiet", server, deployClone);
    sh(dir, "clone", "--quiet", server, other);
  });

  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("is brought up to date from a fresh clone, the stack file untouched", () => {
    push(RELEASE, releaseText(TAG_B, TAG_A), "image automation: frontend");
    syncCheckout(deployClone, RELEASE, server, "master");
    assert.equal(fs.readFileSync(path.join(deployClone, RELEASE), "utf8"), releaseText(TAG_B, TAG_A));
    assert.equal(fs.readFileSync(path.join(deployClone, STACK), "utf8"), committed);
  });

  it("is brought up to date with the stack file changed locally by pulumi config set, which it keeps", () => {
    const local = stackFile({ encryptionsalt: salt }, { ...allSealed(sealed), "homelab:vmHost": sealed() });
    fs.writeFileSync(path.join(deployClone, STACK), local);
    push(RELEASE, releaseText(TAG_B, TAG_B), "image automation: backend");
    syncCheckout(deployClone, RELEASE, server, "master");
    assert.equal(fs.readFileSync(path.join(deployClone, RELEASE), "utf8"), releaseText(TAG_B, TAG_B));
    assert.equal(fs.readFileSync(path.join(deployClone, STACK), "utf8"), local);
  });

  it("refuses, as before, to fast-forward over a local change when the branch changed the stack file too, losing nothing", () => {
    const local = stackFile({ encryptionsalt: salt }, { ...allSealed(sealed), "homelab:gitUrl": sealed() });
    fs.writeFileSync(path.join(deployClone, STACK), local);
    push(STACK, stackFile({ encryptionsalt: salt }, allSealed(sealed)), "rotate the registry password");
    assert.throws(() => syncCheckout(deployClone, RELEASE, server, "master"), /git merge --ff-only[^]*Pulumi\.production\.yaml/);
    assert.equal(fs.readFileSync(path.join(deployClone, STACK), "utf8"), local);
    // Once the local change is committed upstream or dropped, the deploy proceeds.
    sh(deployClone, "checkout", "--quiet", "--", STACK);
    syncCheckout(deployClone, RELEASE, server, "master");
    assert.equal(fs.readFileSync(path.join(deployClone, STACK), "utf8"), fs.readFileSync(path.join(other, STACK), "utf8"));
  });
});
