import { describe, it } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { LockHolder, holderIdentity, identityFile, lockHolders, lockStackName, recordEngine, staleLockFile, thisSystem } from "../../deploy/lock";

// What `pulumi up` says when a file backend's stack is locked (pkg/backend/diy/lock.go).
const REFUSAL = [
  "error: the stack is currently locked by 2 lock(s). Either wait for the other process(es) to end or delete the lock file with `pulumi cancel`.",
  "  file:///srv/state/.pulumi/locks/organization/homelab-stack-deploy-lock/production/48d6045f.json?no_tmp_dir=true: created by root@vm (pid 7640) at 2026-12-01T02:38:15Z",
  "  file:///srv/state/.pulumi/locks/organization/homelab-stack-deploy-lock/production/48d6045f.json.attrs?no_tmp_dir=true: created by root@vm (pid 7640) at 2026-12-01T02:38:15Z",
  "  file:///srv/state/.pulumi/locks/organization/homelab-stack-deploy-lock/production/48d6045f.json?no_tmp_dir=true: created by root@vm (pid 7640) at 2026-12-01T02:38:15Z",
  "  s3://bucket/.pulumi/locks/organization/homelab-stack-deploy-lock/production/9f1c.json: created by ci runner@build-7 (pid 12) at 2026-12-01T02:39:00Z",
].join("\n");

describe("deploy lock", () => {
  it("lives in a lock stack of the same backend, organization and stack name", () => {
    assert.deepEqual(lockStackName("homelab-stack", "production"), { project: "homelab-stack-deploy-lock", stack: "production" });
    assert.deepEqual(lockStackName("homelab-stack", "acme/production"), { project: "homelab-stack-deploy-lock", stack: "acme/homelab-stack-deploy-lock/production" });
    assert.deepEqual(lockStackName("ignored", "acme/site/production"), { project: "site-deploy-lock", stack: "acme/site-deploy-lock/production" });
  });

  it("reads every holder the CLI names, once each", () => {
    assert.deepEqual(lockHolders(REFUSAL), [
      { url: "file:///srv/state/.pulumi/locks/organization/homelab-stack-deploy-lock/production/48d6045f.json?no_tmp_dir=true", user: "root", host: "vm", pid: 7640, since: "2026-12-01T02:38:15Z" },
      { url: "s3://bucket/.pulumi/locks/organization/homelab-stack-deploy-lock/production/9f1c.json", user: "ci runner", host: "build-7", pid: 12, since: "2026-12-01T02:39:00Z" },
    ]);
    assert.deepEqual(lockHolders("[409] Conflict: Another update is currently in progress."), []);
  });

  it("judges stale only a file backend's lock of a process of this machine that is gone", () => {
    const [file, s3] = lockHolders(REFUSAL);
    const gone = (): boolean => false;
    const running = (): boolean => true;
    assert.equal(staleLockFile(file, "vm", gone), "/srv/state/.pulumi/locks/organization/homelab-stack-deploy-lock/production/48d6045f.json");
    assert.equal(staleLockFile(file, "vm", running), undefined, "its holder runs");
    assert.equal(staleLockFile(file, "other-host", gone), undefined, "a pid of another machine says nothing here");
    const s3Here: LockHolder = { ...s3, host: "vm" };
    assert.equal(staleLockFile(s3Here, "vm", gone), undefined, "an object store's lock is freed with pulumi cancel");
  });

  it("judges a holder by the boot and PID namespace its taker recorded: gone with an earlier boot, never judged from another namespace", () => {
    const [file] = lockHolders(REFUSAL);
    const path = "/srv/state/.pulumi/locks/organization/homelab-stack-deploy-lock/production/48d6045f.json";
    const here = { bootId: "boot-1", pidNamespace: "pid:[4026531836]" };
    const gone = (): boolean => false;
    const running = (): boolean => true;
    const recorded = (id: Partial<{ bootId: string; pidNamespace: string }>) => () => ({ bootId: "boot-1", pidNamespace: "pid:[4026531836]", pid: 7640, ...id });
    assert.equal(staleLockFile(file, "vm", gone, here, recorded({})), path, "same system, process gone");
    assert.equal(staleLockFile(file, "vm", running, here, recorded({})), undefined, "same system, process running");
    // A container on the host's network: same host name, its own PIDs. Its pid is not ours to look up.
    assert.equal(staleLockFile(file, "vm", gone, here, recorded({ pidNamespace: "pid:[4026532999]" })), undefined);
    // The machine booted since: whatever held it is gone, even if some process has that pid now.
    assert.equal(staleLockFile(file, "vm", running, here, recorded({ bootId: "boot-0" })), path);
    // Nothing recorded (a taker from before this was kept): host name and pid, as before.
    assert.equal(staleLockFile(file, "vm", gone, here, () => undefined), path);
  });

  it("knows the holder of a lock taken by an engine it recorded as it started, before any identity beside the lock", () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), "homelab-lock-unit-"));
    const saved = process.env.PULUMI_BACKEND_URL;
    process.env.PULUMI_BACKEND_URL = `file://${root}`;
    try {
      const record = recordEngine({ project: "homelab", stack: "production" }, 4242, "run-1");
      assert.equal(record, path.join(root, ".pulumi", "homelab-lock-holders", "organization", "homelab", "production", "engine-4242.json"));
      const lockFile = path.join(root, ".pulumi", "locks", "organization", "homelab", "production", "0b1c.json");
      assert.deepEqual(holderIdentity(lockFile, 4242), { ...thisSystem(), pid: 4242, run: "run-1" });
      assert.equal(holderIdentity(lockFile, 4243), undefined, "another process's lock is not this engine's");
      const holder: LockHolder = { url: `file://${lockFile}?no_tmp_dir=true`, user: "root", host: "vm", pid: 4242, since: "2026-12-07T21:00:00Z" };
      assert.equal(staleLockFile(holder, "vm", () => false), lockFile, "recorded, on this system, and gone: stale");
      assert.equal(staleLockFile(holder, "vm", () => true), undefined);
    } finally {
      process.env.PULUMI_BACKEND_URL = saved;
      if (saved === undefined) {
        delete process.env.PULUMI_BACKEND_URL;
      }
      fs.rmSync(root, { recursive: true, force: true });
    }
  });

  it("keeps a holder's identity beside the backend's locks, never among them", () => {
    assert.equal(identityFile("/srv/state/.pulumi/locks/organization/p-deploy-lock/production/48d6045f.json"), "/srv/state/.pulumi/homelab-lock-holders/organization/p-deploy-lock/production/48d6045f.json");
    assert.equal(identityFile("/srv/state/other/48d6045f.json"), undefined);
    const me = thisSystem();
    assert.match(me.bootId, /^[0-9a-f-]{36}$/);
    assert.match(me.pidNamespace, /^pid:\[\d+\]$/);
  });
});
