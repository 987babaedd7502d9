import { after, before, describe, it } from "node:test";
import * as assert from "node:assert/strict";
import { spawn } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { LockHeld, acquireDeployLock, thisSystem } from "../../deploy/lock";
import { toolchainEnv } from "../../toolchain/env";

/*
 * The guarded deploy's lock against a real file backend shared by two "checkouts" (processes with
 * nothing in common but the backend): taken atomically, refused while held naming the holder,
 * recovered when its holder was killed with SIGKILL, and never taken over while a lock file is
 * still being written.
 */
let dir: string;
let saved: NodeJS.ProcessEnv;
const LOCKS = (): string => path.join(dir, "state", ".pulumi", "locks", "organization", "homelab-stack-deploy-lock", "lock-test");
const HOLDERS = (): string => path.join(dir, "state", ".pulumi", "homelab-lock-holders", "organization", "homelab-stack-deploy-lock", "lock-test");
const opts = { project: "homelab-stack", stack: "lock-test" };

before(() => {
  saved = { ...process.env };
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "homelab-lock-"));
  fs.mkdirSync(path.join(dir, "state"));
  Object.assign(process.env, toolchainEnv({ backendUrl: `file://${path.join(dir, "state")}` }).vars);
});

after(() => {
  process.env = saved;
  fs.rmSync(dir, { recursive: true, force: true });
});

/** Another process holding the lock until killed; resolves once it holds it. */
function holder(): Promise<{ pid: number; kill(): void }> {
  const script = `require("${path.resolve(__dirname, "../../deploy/lock")}").acquireDeployLock(${JSON.stringify(opts)}).then(() => console.log("held"), (e) => { console.error(e.message); process.exit(2); });`;
  const child = spawn(process.execPath, ["--import", "tsx", "-e", script], { env: process.env, stdio: ["ignore", "pipe", "pipe"], detached: true });
  return new Promise((resolve, reject) => {
    let err = "";
    child.stderr.on("data", (d: Buffer) => (err += d.toString()));
    child.stdout.on("data", (d: Buffer) => {
      if (d.toString().includes("held")) {
        // The whole group: the deploy and the pulumi it runs, as an OOM kill or a cancelled job would.
        resolve({ pid: child.pid!, kill: () => process.kill(-child.pid!, "SIGKILL") });
      }
    });
    child.on("exit", (code) => reject(new Error(`the holder exited ${code}: ${err}`)));
  });
}

describe("deploy lock on a shared file backend", { concurrency: false }, () => {
  it("is refused to a second taker while held, naming the holder, and free once released", async () => {
    const first = await acquireDeployLock(opts);
    // Who holds it is recorded beside the engine's lock file: this system's boot and PID namespace.
    const [lockFile] = fs.readdirSync(LOCKS()).filter((f) => f.endsWith(".json"));
    const identity = JSON.parse(fs.readFileSync(path.join(HOLDERS(), lockFile), "utf8")) as { bootId: string; pidNamespace: string; pid: number };
    assert.deepEqual({ bootId: identity.bootId, pidNamespace: identity.pidNamespace }, thisSystem());
    assert.equal(identity.pid, (JSON.parse(fs.readFileSync(path.join(LOCKS(), lockFile), "utf8")) as { pid: number }).pid);
    await assert.rejects(acquireDeployLock(opts), (e: Error) => e instanceof LockHeld && /another deploy of stack lock-test is running \(pid \d+ of .* on .*, since /.test(e.message));
    await first.release();
    assert.deepEqual(fs.readdirSync(LOCKS()), []);
    assert.deepEqual(fs.readdirSync(HOLDERS()), [], "the identity goes with the lock");
    await (await acquireDeployLock(opts)).release();
  });

  it("goes to exactly one of two takers at once", async () => {
    const results = await Promise.allSettled([acquireDeployLock(opts), acquireDeployLock(opts)]);
    const held = results.filter((r) => r.status === "fulfilled");
    assert.ok(held.length <= 1, "never both");
    for (const r of results) {
      if (r.status === "rejected") {
        assert.ok(r.reason instanceof LockHeld, String(r.reason));
      }
    }
    for (const r of held) {
      await r.value.release();
    }
    await (await acquireDeployLock(opts)).release();
  });

  it("is recovered from a holder killed with SIGKILL, and only its lock file removed", async () => {
    const h = await holder();
    await assert.rejects(acquireDeployLock(opts), LockHeld);
    h.kill();
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(fs.readdirSync(LOCKS()).filter((f) => f.endsWith(".json")).length, 1, "the killed holder's lock file stays");
    const said: string[] = [];
    const lock = await acquireDeployLock({ ...opts, say: (l) => said.push(l) });
    assert.match(said.join("\n"), /removed the deploy lock left by a deploy that is gone \(pid \d+ on /);
    await lock.release();
    assert.deepEqual(fs.readdirSync(HOLDERS()), [], "the dead holder's identity went with its lock file");
  });

  it("is never taken from a holder in another PID namespace of this host, which this process cannot see", async () => {
    const h = await holder();
    h.kill();
    await new Promise((r) => setTimeout(r, 500));
    // As a container on the host's network would have recorded it: the host's name, its own PIDs.
    const [identity] = fs.readdirSync(HOLDERS());
    const file = path.join(HOLDERS(), identity);
    fs.writeFileSync(file, JSON.stringify({ ...(JSON.parse(fs.readFileSync(file, "utf8")) as object), pidNamespace: "pid:[1]" }));
    await assert.rejects(acquireDeployLock(opts), (e: Error) => e instanceof LockHeld && /in another PID namespace \(pid:\[1\]: a container\?\)/.test(e.message));
    assert.equal(fs.readdirSync(LOCKS()).filter((f) => f.endsWith(".json")).length, 1, "its lock file stays");
    // The same file recorded by this system: the dead holder's lock is recovered.
    fs.writeFileSync(file, JSON.stringify({ ...(JSON.parse(fs.readFileSync(file, "utf8")) as object), ...thisSystem() }));
    await (await acquireDeployLock(opts)).release();
  });

  it("is never taken over while a lock file is being written", async () => {
    fs.mkdirSync(LOCKS(), { recursive: true });
    const writing = path.join(LOCKS(), "being-written.json");
    fs.writeFileSync(writing, "");
    try {
      await assert.rejects(acquireDeployLock(opts), /another deploy of stack lock-test is taking the lock/);
      assert.ok(fs.existsSync(writing), "the file being written is left alone");
    } finally {
      fs.rmSync(writing);
    }
    await (await acquireDeployLock(opts)).release();
  });
});
