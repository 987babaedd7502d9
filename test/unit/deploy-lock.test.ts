import { describe, it } from "node:test";
import * as assert from "node:assert/strict";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { acquireDeployLock, lockName } from "../../deploy/lock";

describe("deploy lock", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "lock-"));

  it("refuses a second deploy of the same stack while the first holds the lock", () => {
    const lock = acquireDeployLock(dir, "local", "stack local");
    assert.throws(() => acquireDeployLock(dir, "local", "stack local"), new RegExp(`another deploy of stack local is running \\(pid ${process.pid}, since `));
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

  it("never shows a lock without its holder, and leaves no staging file", () => {
    const lock = acquireDeployLock(dir, "atomic");
    assert.equal(JSON.parse(fs.readFileSync(path.join(dir, "atomic.lock"), "utf8")).pid, process.pid);
    lock.release();
    assert.deepEqual(fs.readdirSync(dir).filter((f) => f.startsWith(".")), []);
  });

  it("names one lock per stack of a backend, whatever the checkout", () => {
    assert.equal(lockName("file:///state", "prod"), lockName("file:///state", "prod"));
    assert.notEqual(lockName("file:///state", "prod"), lockName("https://api.pulumi.com", "prod"));
    assert.match(lockName("file:///state", "org/proj/prod"), /^org_proj_prod-[0-9a-f]{12}$/);
  });
});
