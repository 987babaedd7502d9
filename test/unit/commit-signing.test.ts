import { after, describe, it } from "node:test";
import * as assert from "node:assert/strict";
import { execFileSync, spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { commitSigningProblem, commitFileChange } from "../../deploy/git";

/*
 * With homelab:fluxVerifyCommits, Flux applies only a head signed by a trusted key, so a rollback
 * commit the deploy makes must be signed by one: a checkout whose git would not sign with a
 * trusted key is named before anything changes, and the commits made in it carry the signature.
 */
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "homelab-signing-"));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

const sh = (cwd: string, ...args: string[]): string => execFileSync("git", args, { cwd, encoding: "utf8", env: { ...process.env, GIT_CONFIG_GLOBAL: "/dev/null", GIT_CONFIG_NOSYSTEM: "1" } });
function keygen(name: string): { key: string; pub: string } {
  const key = path.join(dir, name);
  execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", name, "-f", key]);
  return { key, pub: fs.readFileSync(`${key}.pub`, "utf8").trim().split(" ").slice(0, 2).join(" ") };
}

describe("commits the deploy makes, for a Flux that verifies the head", () => {
  const trusted = keygen("trusted");
  const other = keygen("other");
  const signers = `deploy@homelab.test ${trusted.pub}\n`;
  const root = path.join(dir, "repo");
  fs.mkdirSync(root);
  sh(root, "init", "--quiet", "--initial-branch", "master");
  fs.writeFileSync(path.join(root, "release.yaml"), "frontend: a\n");
  sh(root, "add", "release.yaml");
  sh(root, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "--quiet", "-m", "seed");
  const git = (...args: string[]): string => sh(root, ...args);

  it("names what keeps git from signing with a trusted key", () => {
    assert.equal(commitSigningProblem(root, signers), "git signs with openpgp (gpg.format unset), not ssh: git config gpg.format ssh");
    git("config", "gpg.format", "ssh");
    assert.equal(commitSigningProblem(root, signers), "git's user.signingkey is unset: git config user.signingkey <your key>.pub, a key of homelab:trustedSigners");
    git("config", "user.signingkey", path.join(dir, "missing.pub"));
    assert.match(commitSigningProblem(root, signers) ?? "", /^git's user\.signingkey ".*missing\.pub" cannot be read$/);
    git("config", "user.signingkey", `${other.key}.pub`);
    assert.equal(commitSigningProblem(root, signers), `git's user.signingkey (${other.pub}) is not one of homelab:trustedSigners`);
    // The private key, its public file or the key itself: each names the same key.
    for (const value of [trusted.key, `${trusted.key}.pub`, `key::${trusted.pub}`]) {
      git("config", "user.signingkey", value);
      assert.equal(commitSigningProblem(root, signers), undefined, value);
    }
  });

  it("signs the commits it makes where the checkout says so, and leaves them unsigned otherwise", () => {
    git("config", "user.signingkey", trusted.key);
    const base = git("rev-parse", "HEAD").trim();
    const co = { root, file: "release.yaml", branch: "master", upstream: "refs/heads/master" };
    const allowed = path.join(dir, "allowed_signers");
    fs.writeFileSync(allowed, signers);
    const verify = (sha: string) => spawnSync("git", ["-c", `gpg.ssh.allowedSignersFile=${allowed}`, "verify-commit", sha], { cwd: root, encoding: "utf8" });

    const signed = commitFileChange({ ...co, sign: true }, base, () => "frontend: b\n", "rollback\n");
    const ok = verify(signed);
    assert.equal(ok.status, 0, ok.stderr);
    assert.match(ok.stderr, /Good "git" signature for deploy@homelab\.test with ED25519 key/);

    const unsigned = commitFileChange(co, base, () => "frontend: c\n", "release\n");
    assert.notEqual(verify(unsigned).status, 0);
  });
});
