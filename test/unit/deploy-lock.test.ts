import { describe, it } from "node:test";
import * as assert from "node:assert/strict";
import { LockHolder, lockHolders, lockStackName, staleLockFile } from "../../deploy/lock";

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
});
