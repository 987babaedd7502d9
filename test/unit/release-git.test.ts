import { after, before, describe, it } from "node:test";
import * as assert from "node:assert/strict";
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { commitFileChange, fetchUpstream, fileHistory, moveCheckoutTo, pushFileChange, syncCheckout } from "../../deploy/git";
import { ROLLBACK_TRAILER, RollbackRecord, rollbackChange, rollbackMessage, trailers } from "../../deploy/rollback-commit";
import { readReleaseState, updateReleaseFile } from "../../lib/release";
import { TAG_A, TAG_B, releaseText } from "../support/fixtures";

/*
 * The release file's commits against real repositories in a temporary directory: a bare "server",
 * the deploy's clone, and a second clone playing image automation.
 */
const FILE = "flux/clusters/production/release.yaml";
const BAD = "main-bad0bad-1707350000";
const NEW = "main-0a0a0a0-1707500000";
let dir: string;
let server: string;
let deployClone: string;
let bot: string;

function sh(cwd: string, ...args: string[]): string {
  return execFileSync("git", args, { cwd, encoding: "utf8", env: { ...process.env, GIT_AUTHOR_NAME: "t", GIT_AUTHOR_EMAIL: "t@t", GIT_COMMITTER_NAME: "t", GIT_COMMITTER_EMAIL: "t@t" } });
}

function botCommit(file: string, content: string, message: string): void {
  sh(bot, "pull", "--quiet", "--ff-only");
  fs.mkdirSync(path.dirname(path.join(bot, file)), { recursive: true });
  fs.writeFileSync(path.join(bot, file), content);
  sh(bot, "add", file);
  sh(bot, "commit", "--quiet", "-m", message);
  sh(bot, "push", "--quiet", "origin", "master");
}

const record: RollbackRecord = {
  event: { id: "rb-7", at: "2026-11-30T12:00:00Z", failed: { frontend: TAG_B, backend: BAD }, restored: { frontend: TAG_A, backend: TAG_A }, stage: "backend gate", reason: "503", stages: {} },
};

before(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "homelab-git-"));
  server = path.join(dir, "server.git");
  sh(dir, "init", "--quiet", "--bare", "-b", "master", server);
  const seed = path.join(dir, "seed");
  sh(dir, "clone", "--quiet", server, seed);
  fs.mkdirSync(path.join(seed, path.dirname(FILE)), { recursive: true });
  fs.writeFileSync(path.join(seed, FILE), releaseText(TAG_B, BAD));
  fs.writeFileSync(path.join(seed, "README"), "hello\n");
  sh(seed, "add", ".");
  sh(seed, "commit", "--quiet", "-m", "seed");
  sh(seed, "push", "--quiet", "origin", "HEAD:master");
  deployClone = path.join(dir, "deploy");
  bot = path.join(dir, "bot");
  sh(dir, "clone", "--quiet", server, deployClone);
  sh(dir, "clone", "--quiet", server, bot);
});

after(() => fs.rmSync(dir, { recursive: true, force: true }));

describe("the release file in git", () => {
  it("refuses a checkout of another repository, another branch, a changed release file or unpushed commits", () => {
    assert.throws(() => syncCheckout(deployClone, FILE, "ssh://git@example.invalid/other.git", "master"), /is a clone of .*server\.git, not of homelab:gitUrl ssh:\/\/git@example\.invalid\/other\.git/);
    assert.throws(() => syncCheckout(deployClone, FILE, server, "main"), /is on master, not on homelab:gitBranch main/);
    fs.appendFileSync(path.join(deployClone, FILE), "# edited\n");
    assert.throws(() => syncCheckout(deployClone, FILE, server, "master"), /release\.yaml has changes that are not committed/);
    sh(deployClone, "checkout", "--quiet", "--", FILE);
    sh(deployClone, "commit", "--quiet", "--allow-empty", "-m", "local only");
    assert.throws(() => syncCheckout(deployClone, FILE, server, "master"), /master has 1 commit\(s\) that origin does not/);
    sh(deployClone, "reset", "--quiet", "--hard", "origin/master");
  });

  it("brings the checkout up to date with the branch before the release file is read", () => {
    botCommit(FILE, updateReleaseFile(fs.readFileSync(path.join(bot, FILE), "utf8"), { tags: { frontend: TAG_A } }), "image automation: frontend");
    const co = syncCheckout(deployClone, FILE, server, "master");
    assert.equal(readReleaseState(fs.readFileSync(path.join(deployClone, FILE), "utf8"), FILE).tags.frontend, TAG_A);
    assert.equal(co.file, FILE);
  });

  it("commits only the release file, checks it out, and pushes it on top of a racing commit to the same file and to another file", () => {
    const co = syncCheckout(deployClone, FILE, server, "master");
    fs.writeFileSync(path.join(deployClone, "untracked.txt"), "not for git\n");
    fs.appendFileSync(path.join(deployClone, "README"), "a local edit\n");
    const change = rollbackChange(record);
    const message = rollbackMessage(record);
    const base = fetchUpstream(co);
    const sha = commitFileChange(co, base, change, message);
    moveCheckoutTo(co, sha);
    assert.equal(readReleaseState(fs.readFileSync(path.join(deployClone, FILE), "utf8"), FILE).tags.backend, TAG_A, "the working tree has the rolled-back file");
    assert.match(fs.readFileSync(path.join(deployClone, "README"), "utf8"), /a local edit/, "other local changes stay");

    // Meanwhile image automation pushes a newer backend tag, and someone edits another file.
    botCommit(FILE, updateReleaseFile(fs.readFileSync(path.join(bot, FILE), "utf8"), { tags: { backend: NEW } }), "image automation: backend");
    botCommit("docs.md", "hello again\n", "docs");

    const pushed = pushFileChange(co, change, message, { base, sha });
    assert.equal(pushed.retries, 1);
    moveCheckoutTo(co, pushed.sha);
    const log = sh(server, "log", "--format=%s", "master").trim().split("\n");
    assert.deepEqual(log.slice(0, 3), [`Roll back to frontend ${TAG_A}, backend ${TAG_A}`, "docs", "image automation: backend"], "never forced: the racing commits stay");
    assert.deepEqual(sh(server, "show", "--format=", "--name-only", "master").trim().split("\n"), [FILE], "the rollback commit touches only the release file");
    const state = readReleaseState(sh(server, "show", `master:${FILE}`), FILE);
    // The frontend goes back; the backend keeps image automation's newer tag, deployed next.
    assert.deepEqual(state.tags, { frontend: TAG_A, backend: NEW });
    assert.deepEqual(state.excluded.map((e) => `${e.image} ${e.tag}`), [`backend ${BAD}`]);
    assert.equal(sh(server, "show", "master:docs.md"), "hello again\n");
    assert.equal(trailers(sh(server, "log", "-1", "--format=%B", "master"))[ROLLBACK_TRAILER], "rb-7");
    assert.equal(sh(deployClone, "rev-parse", "HEAD").trim(), pushed.sha);
    assert.ok(fs.existsSync(path.join(deployClone, "untracked.txt")));
    assert.match(fs.readFileSync(path.join(deployClone, "README"), "utf8"), /a local edit/);
  });

  it("never moves the checkout over a local change that the new commit would overwrite", () => {
    const co = syncCheckout(bot, FILE, server, "master");
    botCommit("README", "from the bot\n", "readme");
    sh(deployClone, "fetch", "--quiet", "origin");
    assert.throws(() => moveCheckoutTo({ ...co, root: deployClone }, sh(server, "rev-parse", "master").trim()), /not uptodate|would be overwritten/);
    assert.match(fs.readFileSync(path.join(deployClone, "README"), "utf8"), /a local edit/);
  });

  it("gives up with a clear error when the server refuses the push, without forcing", () => {
    const co = syncCheckout(path.join(dir, "bot"), FILE, server, "master");
    const hook = path.join(server, "hooks", "pre-receive");
    fs.writeFileSync(hook, "#!/bin/sh\necho 'protected branch' >&2\nexit 1\n", { mode: 0o755 });
    try {
      assert.throws(() => pushFileChange(co, (t) => updateReleaseFile(t, { tags: { frontend: NEW } }), "x\n"), /could not push to master after 1 attempt\(s\).*protected branch/s);
    } finally {
      fs.rmSync(hook);
    }
  });

  it("lists the release file's history newest first", () => {
    const history = fileHistory({ root: deployClone, file: FILE }, "origin/master");
    sh(deployClone, "fetch", "--quiet", "origin");
    assert.deepEqual(history.map((c) => c.subject), [`Roll back to frontend ${TAG_A}, backend ${TAG_A}`, "image automation: backend", "image automation: frontend", "seed"]);
    assert.equal(readReleaseState(history[1].text, FILE).tags.backend, NEW);
  });
});
