import { after, before, describe, it } from "node:test";
import * as assert from "node:assert/strict";
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { FileCommit, fileHistory } from "../../deploy/git";
import { formatHistory, releaseHistory } from "../../deploy/releases";
import { RollbackRecord, plainText, revertedCommits, revertsIn, rollbackChange, rollbackMessage, trailers } from "../../deploy/rollback-commit";
import { updateReleaseFile } from "../../lib/release";
import { releaseText } from "../support/fixtures";

/*
 * A rollback commit names the release commits it undoes in git's own wording, so `git log` links
 * a failure to its cause; checked on a real repository.
 */
const FILE = "release.yaml";
const GOOD = { frontend: "main-1111111-1800000000", backend: "main-2222222-1800000000" };
const F_NEW = "main-3333333-1800000100";
const B_NEW = "main-4444444-1800000200";
let repo: string;

function sh(...args: string[]): string {
  return execFileSync("git", args, { cwd: repo, encoding: "utf8", env: { ...process.env, GIT_AUTHOR_NAME: "t", GIT_AUTHOR_EMAIL: "t@t", GIT_COMMITTER_NAME: "t", GIT_COMMITTER_EMAIL: "t@t" } });
}

function commit(text: string, message: string): string {
  fs.writeFileSync(path.join(repo, FILE), text);
  sh("add", FILE);
  sh("commit", "--quiet", "-m", message);
  return sh("rev-parse", "HEAD").trim();
}

const current = (): string => fs.readFileSync(path.join(repo, FILE), "utf8");
const history = (): FileCommit[] => fileHistory({ root: repo, file: FILE });

before(() => {
  repo = fs.mkdtempSync(path.join(os.tmpdir(), "homelab-revert-"));
  sh("init", "--quiet", "-b", "main");
});

after(() => fs.rmSync(repo, { recursive: true, force: true }));

describe("a rollback commit's revert lines", () => {
  let frontendCommit: string;
  let excludeOnly: string;
  let backendCommit: string;
  let rollback: string;

  it("name every commit that moved a tag since the restored pair, newest first, and no other", () => {
    commit(releaseText("main-0000000-1700000000", "main-0000000-1700000000"), "first release");
    const good = commit(releaseText(GOOD.frontend, GOOD.backend), "good release");
    frontendCommit = commit(updateReleaseFile(current(), { tags: { frontend: F_NEW } }), "image automation: frontend");
    // A person's edit of the exclusions moves no release, so nothing of it is reverted.
    excludeOnly = commit(updateReleaseFile(current(), { exclude: [{ image: "frontend", tag: "main-9999999-1600000000", at: "2026-12-01T00:00:00Z", reason: "by hand" }] }), "exclude an old build");
    backendCommit = commit(updateReleaseFile(current(), { tags: { backend: B_NEW } }), "image automation: backend");
    assert.deepEqual(revertedCommits(history(), GOOD), [backendCommit, frontendCommit]);
    assert.ok(!revertedCommits(history(), GOOD).includes(excludeOnly));
    assert.ok(!revertedCommits(history(), GOOD).includes(good));
  });

  it("are none when no commit in the history names the restored pair, rather than a guess", () => {
    assert.deepEqual(revertedCommits(history(), { frontend: "main-5555555-1500000000", backend: GOOD.backend }), []);
  });

  it("are written as git revert writes them, before the trailers, and read back", () => {
    const record: RollbackRecord = {
      event: { id: "rb-1", at: "2026-12-07T10:00:00Z", failed: { frontend: F_NEW, backend: B_NEW }, restored: GOOD, stage: "backend gate", reason: "503 Service Unavailable", stages: {} },
      reverts: revertedCommits(history(), GOOD),
    };
    const message = rollbackMessage(record);
    rollback = commit(rollbackChange(record)(current()), message);
    const logged = sh("log", "-1", "--format=%B", rollback);
    assert.match(logged, new RegExp(`^This reverts commit ${backendCommit}\\.\\nThis reverts commit ${frontendCommit}\\.$`, "m"));
    assert.deepEqual(revertsIn(logged), [backendCommit, frontendCommit]);
    // The trailers stay the message's last paragraph, for `git interpret-trailers` and the deploy.
    assert.equal(trailers(logged)["Homelab-Rollback"], "rb-1");
    assert.match(execFileSync("git", ["interpret-trailers", "--parse"], { cwd: repo, input: logged, encoding: "utf8" }), /^Homelab-Failed-Stage: backend gate$/m);
  });

  it("link a rollback and the releases it undid, both ways, in the release history", () => {
    const entries = releaseHistory(history(), []);
    const byCommit = new Map(entries.map((e) => [e.sha, e]));
    assert.deepEqual(byCommit.get(rollback)?.reverts, [backendCommit, frontendCommit]);
    assert.equal(byCommit.get(backendCommit)?.revertedBy, rollback);
    assert.equal(byCommit.get(frontendCommit)?.revertedBy, rollback);
    assert.equal(byCommit.get(excludeOnly)?.revertedBy, undefined);
    const table = formatHistory(entries);
    assert.match(table, new RegExp(`reverts ${backendCommit.slice(0, 10)}, ${frontendCommit.slice(0, 10)}`));
    assert.match(table, new RegExp(`rolled back by ${rollback.slice(0, 10)}`));
  });

  it("show the gate timings a promotion recorded, and which parts it promoted without their version checked", () => {
    const entries = releaseHistory(history(), [
      { at: "2026-12-07T09:00:00Z", result: "promoted", frontend: `${GOOD.frontend}@sha256:aa`, backend: `${GOOD.backend}@sha256:bb`, gates: { frontendMs: 1500, backendMs: 2500 }, unverified: ["frontend"] },
    ]);
    const promoted = entries.filter((e) => e.gates);
    assert.ok(promoted.length > 0);
    assert.ok(promoted.every((e) => e.unverified?.join() === "frontend"));
    assert.match(formatHistory(entries), /1\.5s \/ 2\.5s \(frontend: version not checked\)/);
  });

  it("after a later rollback to the same pair, name only what came since the first", () => {
    const again = commit(updateReleaseFile(current(), { tags: { frontend: "main-6666666-1800000300" } }), "image automation: frontend again");
    assert.deepEqual(revertedCommits(history(), GOOD), [again]);
  });
});

describe("hostile text in commits", () => {
  it("never takes a commit id from a commit's text, whatever separators it holds", () => {
    const pwned = path.join(repo, "pwned");
    const before = history().length;
    // A body that tries to start a record of its own with a "sha" that is an option to git show.
    commit(updateReleaseFile(current(), { tags: { frontend: "main-7777777-1800000400" } }), `release\n\nx\x1e--output=${pwned}\x1f2026\x1fme\x1fs\x1fb\x1e`);
    const after = history();
    assert.equal(after.length, before + 1);
    assert.ok(after.every((c) => /^[0-9a-f]{40}$/.test(c.sha)));
    assert.match(after[0].body, /--output=/, "the body is read whole, as text");
    assert.deepEqual(fs.readdirSync(repo).filter((f) => f.startsWith("pwned")), [], "git show wrote no file");
  });

  it("drops control characters and terminal escapes from reasons and the history table, keeping lines", () => {
    assert.equal(plainText("a\x00b\x1b[31mred\x1b[0m\x07\r\nnext\tcol"), "abred\nnext\tcol");
    const record: RollbackRecord = {
      event: { id: "rb-2", at: "2026-12-07T11:00:00Z", failed: { frontend: "main-7777777-1800000400", backend: B_NEW }, restored: GOOD, stage: "manual rollback", reason: "broken\x00 page\x1b]0;owned\x07", stages: {} },
    };
    // git refuses a message with a NUL: the commit is made all the same.
    const sha = commit(rollbackChange(record)(current()), rollbackMessage(record));
    assert.match(sh("log", "-1", "--format=%B", sha), /^ {2}broken page\]0;owned$/m);
    const table = formatHistory(releaseHistory(history(), []));
    assert.ok([...table].every((c) => c === "\n" || c.charCodeAt(0) >= 0x20) && !table.includes("\x7f"), "no control character in the table");
  });
});
