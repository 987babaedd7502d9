import { describe, it } from "node:test";
import * as assert from "node:assert/strict";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { acquireDeployLock } from "../../lib/deploy-lock";

describe("deploy lock", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "lock-"));

  it("refuses a second deploy of the same stack while the first holds the lock", () => {
    const lock = acquireDeployLock(dir, "local");
    assert.throws(() => acquireDeployLock(dir, "local"), new RegExp(`another deploy of stack local is running \\(pid ${process.pid}, since `));
    const other = acquireDeployLock(dir, "production");
    other.release();
    lock.release();
    acquireDeployLock(dir, "local").release();
  });

  it("takes over a lock left by a process that is gone", () => {
    const dead = spawnSync("sh", ["-c", "echo $$"], { encoding: "utf8" });
    fs.writeFileSync(path.join(dir, "local.lock"), JSON.stringify({ pid: Number(dead.stdout.trim()), since: "then" }));
    const lock = acquireDeployLock(dir, "local");
    assert.equal(JSON.parse(fs.readFileSync(path.join(dir, "local.lock"), "utf8")).pid, process.pid);
    lock.release();
    assert.equal(fs.existsSync(path.join(dir, "local.lock")), false);
  });
});
