import { before, describe, it } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import { utils } from "ssh2";
import { publicKeyOf, signersAsAuthorizedKeys } from "../../lib/allowed-signers";
import { ConfigError, parseConfig } from "../../lib/config";
import { FLUX_SIGNERS_NAME, fluxSyncObjects } from "../../lib/flux-install";
import { DIGEST_A, DIGEST_B, SECRET_KEYS, TAG_A, TAG_B, opensshArmour, releaseText, validConfig } from "../support/fixtures";
import { Recorder, installMocks, settle, valueOf } from "../support/mocks";

/*
 * Flux verifying the branch head's signature (homelab:fluxVerifyCommits): the trusted signers
 * become the GitRepository's SSH keys, and image automation signs its own commits with a key
 * among them; a set-up that would leave Flux refusing image automation's commits is refused first.
 */
const signing = utils.generateKeyPairSync("ed25519");
const other = utils.generateKeyPairSync("ed25519");
const SIGNERS = `# the release signers\nrelease@homelab.test namespaces="git" ${signing.public}\nalice@homelab.test,bob@homelab.test ${other.public}\n`;
const VERIFY = { "homelab:fluxVerifyCommits": "true", "homelab:trustedSigners": SIGNERS, "homelab:fluxSigningKey": signing.private };
const SECRETS = [...SECRET_KEYS, "homelab:fluxSigningKey"];
const isSecret = (k: string): boolean => SECRETS.includes(k);
const bare = (publicLine: string): string => publicLine.trim().split(" ").slice(0, 2).join(" ");

function problems(overrides: Record<string, string>): string[] {
  const raw = validConfig(overrides);
  for (const [k, v] of Object.entries(overrides)) {
    if (v === "") {
      delete raw[k];
    }
  }
  try {
    parseConfig(raw, isSecret);
  } catch (e) {
    assert.ok(e instanceof ConfigError, String(e));
    return [...e.problems];
  }
  return [];
}

describe("Flux commit verification: config", () => {
  it("turns the trusted signers into authorized_keys lines for Flux, principals kept as the comment, options and comments dropped", () => {
    const s = parseConfig(validConfig(VERIFY), isSecret).homelab!.settings;
    assert.equal(s.flux.verifySigners, `${bare(signing.public)} release@homelab.test\n${bare(other.public)} alice@homelab.test,bob@homelab.test\n`);
    assert.equal(signersAsAuthorizedKeys(SIGNERS), s.flux.verifySigners);
    assert.equal(parseConfig(validConfig(), isSecret).homelab!.settings.flux.verifySigners, undefined, "off by default");
  });

  it("reads the public half of an OpenSSH private key, and nothing from what is not one", () => {
    assert.equal(publicKeyOf(signing.private), bare(signing.public));
    assert.equal(publicKeyOf(`${opensshArmour("BEGIN")}\nAAAA\n${opensshArmour("END")}\n`), undefined);
  });

  it("refuses verification without signers, without a signing key, or with a signing key Flux would refuse, naming the keys", () => {
    assert.deepEqual(problems({ ...VERIFY, "homelab:trustedSigners": "" }), [
      "homelab:fluxVerifyCommits: true needs homelab:trustedSigners, the keys whose signed commits Flux then applies",
    ]);
    assert.deepEqual(problems({ ...VERIFY, "homelab:fluxSigningKey": "" }), [
      "homelab:fluxSigningKey: required secret; set it with: pulumi config set --secret homelab:fluxSigningKey …",
    ]);
    const outsider = utils.generateKeyPairSync("ed25519");
    assert.deepEqual(problems({ ...VERIFY, "homelab:fluxSigningKey": outsider.private }), [
      `homelab:fluxSigningKey: the secret value has the public key ${bare(outsider.public)}, which is not one of homelab:trustedSigners: Flux would refuse image automation's signed commits`,
    ]);
    const found = problems({ ...VERIFY, "homelab:fluxSigningKey": "not a key" });
    assert.equal(found.length, 1);
    assert.match(found[0], /^homelab:fluxSigningKey: the secret value is not an SSH private key without a passphrase$/);
    assert.ok(!found[0].includes("not a key"), "the secret value is never echoed");
  });

  it("renders the GitRepository's verify only with a signers Secret", () => {
    const base = { gitUrl: "ssh://git@127.0.0.1/r.git", namespace: "flux-system", branch: "master", path: "./p", interval: "1m", timeout: "1m" };
    assert.equal(fluxSyncObjects(base).gitRepository.spec.verify, undefined);
    assert.deepEqual(fluxSyncObjects({ ...base, verifySecretName: FLUX_SIGNERS_NAME }).gitRepository.spec.verify, { mode: "HEAD", secretRef: { name: FLUX_SIGNERS_NAME } });
  });
});

describe("Flux commit verification: the stack", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "homelab-verify-"));
  let rec: Recorder;

  before(async () => {
    fs.mkdirSync(path.join(dir, "flux/clusters/production"), { recursive: true });
    fs.writeFileSync(path.join(dir, "flux/clusters/production/release.yaml"), releaseText(TAG_A, TAG_B, "127.0.0.1:5000"));
    rec = installMocks();
    pulumi.runtime.setAllConfig(validConfig(VERIFY), SECRETS);
    const { loadConfig } = await import("../../stacks/config");
    const { homelabStack } = await import("../../stacks/homelab");
    const outputs = homelabStack(loadConfig(dir).homelab!, { kind: "resolved", digests: { frontend: DIGEST_A, backend: DIGEST_B } });
    await valueOf(outputs.release!);
    await settle(rec);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("gives Flux the signers' keys and has the GitRepository verify its head with them", () => {
    const signers = rec.byName("flux-signers");
    assert.equal(signers.type, "kubernetes:core/v1:Secret");
    assert.deepEqual(signers.inputs.metadata, { name: FLUX_SIGNERS_NAME, namespace: "flux-system" });
    assert.deepEqual(signers.inputs.stringData, { "signers.sshpub": signersAsAuthorizedKeys(SIGNERS) });
    const repo = rec.byName("flux-source");
    assert.deepEqual((repo.inputs.spec as { verify: unknown }).verify, { mode: "HEAD", secretRef: { name: FLUX_SIGNERS_NAME } });
    assert.ok(repo.dependencies.includes(signers.urn), "the Secret exists before Flux verifies with it");
  });

  it("has image automation sign its commits with the signing key, kept secret", () => {
    const key = rec.byName("image-automation-signing-key");
    assert.ok(key.secretInputs.includes("stringData"));
    assert.deepEqual(key.inputs.stringData, { identity: signing.private });
    const update = rec.byName("image-automation-update");
    const commit = (update.inputs.spec as { git: { commit: { signingKey: unknown } } }).git.commit;
    assert.deepEqual(commit.signingKey, { secretRef: { name: "image-automation-signing" }, type: "ssh" });
  });
});
