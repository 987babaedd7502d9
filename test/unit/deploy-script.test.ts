import { after, before, describe, it } from "node:test";
import * as assert from "node:assert/strict";
import { spawn, spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { FakeDockerHost, fakeDockerHost } from "../support/fake-docker";
import { BUNDLE_END, DEPLOY_EXIT, FOLLOW_NO_RUN, HOST_CHECK_EXIT, renderDeployScript, renderDownScript, renderFollowScript, renderHostCheckScript } from "../../lib/remote-deploy";
import { renderBundle } from "../../lib/bundle";

let host: FakeDockerHost;
let state: string;
let deployDir: string;

before(() => {
  host = fakeDockerHost("deploy-script-");
  ({ state, deployDir } = host);
});
after(() => host.remove());

function compose(image: string): string {
  return `name: backend\nservices:\n  backend:\n    image: ${image}\n`;
}

interface DeployOptions {
  readonly env?: string;
  readonly deadlineSeconds?: number;
  readonly stepDeadlineSeconds?: number;
  readonly lookSeconds?: number;
  /** Sent as RUN_ID, with the bundle's end line unless `cut`. */
  readonly runId?: string;
  readonly cut?: boolean;
}

const hostEnv = (extra: Record<string, string> = {}): NodeJS.ProcessEnv => host.env(extra);

function deploy(image: string, opts: DeployOptions = {}): { code: number | null; stdout: string; stderr: string } {
  const script = renderDeployScript({
    deployDir,
    project: "backend",
    files: ["docker-compose.yml", ".env"],
    registry: { server: "127.0.0.1:5000", username: "robot$flux" },
    healthServices: ["backend"],
    healthUrl: "http://127.0.0.1:3001/api/health",
    deadlineSeconds: opts.deadlineSeconds ?? 3,
    stepDeadlineSeconds: opts.stepDeadlineSeconds,
    lookSeconds: opts.lookSeconds,
  });
  const bundle = renderBundle(
    [
      { name: "docker-compose.yml", content: compose(image), mode: "0644" },
      { name: ".env", content: opts.env ?? "SECRET='s3cr3t-value'\n", mode: "0600" },
    ],
    { registryPassword: "pa$$ word" },
  );
  const input = opts.runId === undefined ? bundle : opts.cut ? bundle.slice(0, bundle.length - 10) : `${bundle}${BUNDLE_END}\n`;
  const r = spawnSync("/bin/sh", ["-c", script], { input, env: hostEnv(opts.runId ? { RUN_ID: opts.runId } : {}), encoding: "utf8" });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const read = (f: string): string => fs.readFileSync(path.join(deployDir, f), "utf8");

describe("deploy script", () => {
  it("fails with no previous release to restore on a first deploy that is unhealthy", () => {
    const r = deploy("r/backend:unhealthy-0");
    assert.equal(r.code, DEPLOY_EXIT.noPrevious, r.stderr);
    assert.match(r.stderr, /service backend is unhealthy/);
    assert.match(r.stderr, /no previous release to restore/);
    fs.rmSync(deployDir, { recursive: true });
  });

  it("deploys a healthy release, writing .env with mode 0600 and logging in through stdin", () => {
    const r = deploy("r/backend:good-1");
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /deploy: healthy after \d+s/);
    assert.equal(read("docker-compose.yml"), compose("r/backend:good-1"));
    assert.equal(read(".env"), "SECRET='s3cr3t-value'\n");
    assert.equal(fs.statSync(path.join(deployDir, ".env")).mode & 0o777, 0o600);
    const calls = fs.readFileSync(path.join(state, "calls"), "utf8");
    assert.match(calls, /login --username robot\$flux --password-stdin 127.0.0.1:5000 pwlen=9/);
    assert.doesNotMatch(calls + r.stdout + r.stderr, /pa\$\$ word|s3cr3t-value/);
    assert.match(calls, /compose pull --quiet\n(compose ps -q backend\n)*compose up -d --remove-orphans/);
    assert.ok(!fs.existsSync(path.join(deployDir, ".docker/config.json")), "the registry login is gone after the pull");
    assert.equal(fs.readFileSync(path.join(deployDir, ".release/current/docker-compose.yml"), "utf8"), compose("r/backend:good-1"));
  });

  it("on an unhealthy release prints its logs, restores the previous files and exits 10", () => {
    const r = deploy("r/backend:unhealthy-2", { env: "SECRET='other'\n" });
    assert.equal(r.code, DEPLOY_EXIT.restored, r.stderr);
    assert.match(r.stderr, /FAILED: health check failed/);
    assert.match(r.stderr, /backend \| boom/);
    assert.match(r.stderr, /previous release restored and healthy/);
    assert.equal(read("docker-compose.yml"), compose("r/backend:good-1"));
    assert.equal(read(".env"), "SECRET='s3cr3t-value'\n");
    assert.equal(fs.readFileSync(path.join(state, "running"), "utf8").trim(), "r/backend:good-1");
    assert.equal(fs.readFileSync(path.join(deployDir, ".release/failed/docker-compose.yml"), "utf8"), compose("r/backend:unhealthy-2"));
  });

  it("treats a crash loop as a failure and restores", () => {
    const r = deploy("r/backend:crash-3");
    assert.equal(r.code, DEPLOY_EXIT.restored, r.stderr);
    assert.match(r.stderr, /crash loop/);
    assert.equal(fs.readFileSync(path.join(state, "running"), "utf8").trim(), "r/backend:good-1");
  });

  it("leaves the running release untouched when the images cannot be pulled, with its own exit code", () => {
    const calls = path.join(state, "calls");
    fs.rmSync(calls, { force: true });
    const r = deploy("r/backend:missing-4");
    assert.equal(r.code, DEPLOY_EXIT.pullFailed, r.stderr);
    assert.match(r.stderr, /PULL: the images of the release could not be pulled; the running release was not touched/);
    assert.equal(read("docker-compose.yml"), compose("r/backend:good-1"));
    assert.equal(fs.readFileSync(path.join(state, "running"), "utf8").trim(), "r/backend:good-1");
    assert.doesNotMatch(fs.readFileSync(calls, "utf8"), /compose up/, "nothing was recreated");
  });

  it("does not judge a release whose health check failed while the Docker engine restarted", () => {
    const r = deploy("r/backend:unhealthy-engine-restart-7");
    assert.equal(r.code, DEPLOY_EXIT.engineUnreachable, r.stderr);
    assert.match(r.stderr, /ENGINE: the Docker engine on .* restarted during the deploy \(health check failed\); the release was not judged/);
    assert.doesNotMatch(r.stderr, /restoring/);
    // Put the last good release back for the tests after this one.
    assert.equal(deploy("r/backend:good-1").code, 0);
  });

  it("stops before any change when the Docker engine does not answer, with its own exit code", () => {
    fs.writeFileSync(path.join(state, "engine-down"), "");
    try {
      const r = deploy("r/backend:good-6");
      assert.equal(r.code, DEPLOY_EXIT.engineUnreachable, r.stderr);
      assert.match(r.stderr, /ENGINE: the Docker engine on .* does not answer/);
      assert.equal(read("docker-compose.yml"), compose("r/backend:good-1"));
    } finally {
      fs.rmSync(path.join(state, "engine-down"));
    }
  });

  it("keeps the last good release as previous across a new promotion", () => {
    assert.equal(deploy("r/backend:good-5").code, 0);
    assert.equal(fs.readFileSync(path.join(deployDir, ".release/previous/docker-compose.yml"), "utf8"), compose("r/backend:good-1"));
    const r = deploy("r/backend:unhealthy-6");
    assert.equal(r.code, DEPLOY_EXIT.restored);
    assert.equal(fs.readFileSync(path.join(state, "running"), "utf8").trim(), "r/backend:good-5");
  });

  it("records current only after health passed, and previous as the current before it", () => {
    const link = (name: string): string => fs.readFileSync(path.join(deployDir, ".release", name, "docker-compose.yml"), "utf8");
    assert.equal(link("current"), compose("r/backend:good-5"), "the failed unhealthy-6 never became current");
    assert.equal(link("previous"), compose("r/backend:good-1"));
    assert.equal(fs.readFileSync(path.join(deployDir, ".release/failed/docker-compose.yml"), "utf8"), compose("r/backend:unhealthy-6"));
  });

  it("leaves an unchanged, healthy release alone, whatever restarts its container had before", () => {
    fs.writeFileSync(path.join(state, "restarts"), "1\n");
    fs.rmSync(path.join(state, "calls"), { force: true });
    // Another deadline renders another script: the run happens, with the same files.
    const r = deploy("r/backend:good-5", { deadlineSeconds: 4 });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /is current and healthy; nothing to do/);
    assert.doesNotMatch(fs.readFileSync(path.join(state, "calls"), "utf8"), /compose (pull|up)/);
  });

  it("judges a release by this deploy's restarts only: a kept container's earlier restart is no crash loop", () => {
    const r = deploy("r/backend:good-5", { env: "SECRET='rotated'\n" });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /deploy: healthy after/);
    assert.equal(fs.readFileSync(path.join(deployDir, ".release/current/.env"), "utf8"), "SECRET='rotated'\n");
  });

  it("fails a pull that hangs past the step deadline as a pull failure: release untouched, login forgotten", () => {
    fs.rmSync(path.join(state, "calls"), { force: true });
    const t0 = Date.now();
    const r = deploy("r/backend:hang-8", { stepDeadlineSeconds: 2, env: "SECRET='rotated'\n" });
    assert.equal(r.code, DEPLOY_EXIT.pullFailed, r.stderr);
    assert.ok(Date.now() - t0 < 20_000, "the pull was cut at its deadline");
    assert.match(r.stderr, /PULL: the pull did not finish within 2s; the running release was not touched/);
    assert.equal(read("docker-compose.yml"), compose("r/backend:good-5"));
    assert.doesNotMatch(fs.readFileSync(path.join(state, "calls"), "utf8"), /compose up/);
    assert.ok(!fs.existsSync(path.join(deployDir, ".docker/config.json")), "no registry password is left on the host");
  });

  it("bounds every look at a container: an engine whose inspect hangs fails the release and frees the host's lock", () => {
    fs.rmSync(path.join(state, "calls"), { force: true });
    const r = deploy("r/backend:lookstuck-9", { lookSeconds: 1, deadlineSeconds: 3 });
    assert.equal(r.code, DEPLOY_EXIT.restored, r.stderr);
    assert.match(fs.readFileSync(path.join(state, "calls"), "utf8"), /inspect \(hangs\)/);
    assert.equal(read("docker-compose.yml"), compose("r/backend:good-5"), "the previous release is back");
    // Nothing of that run holds the lock: the next deploy runs at once.
    const next = deploy("r/backend:good-5", { env: "SECRET='rotated'\n" });
    assert.equal(next.code, 0, next.stderr);
  });

  it("waits for another deploy's lock on the deploy directory and gives up at the step deadline, changing nothing", async () => {
    const holder = spawn("flock", ["--close", path.join(deployDir, ".release/lock"), "sleep", "6"], { stdio: "ignore" });
    try {
      await new Promise((r) => setTimeout(r, 300));
      const r = deploy("r/backend:good-9", { stepDeadlineSeconds: 1 });
      assert.equal(r.code, DEPLOY_EXIT.busy, r.stderr);
      assert.match(r.stderr, /BUSY: another deploy held .* for 1s; nothing was changed/);
      assert.equal(read("docker-compose.yml"), compose("r/backend:good-5"));
    } finally {
      if (holder.pid) {
        process.kill(holder.pid);
      }
    }
  });

  it("runs detached with its output and verdict on the host, so a dropped connection can follow it again", () => {
    const r = deploy("r/backend:good-5", { runId: "run-a", env: "SECRET='rotated'\n" });
    assert.equal(r.code, 0, r.stderr);
    const run = path.join(deployDir, ".release/runs/run-a");
    assert.equal(fs.readFileSync(path.join(run, "verdict"), "utf8"), "0\n");
    assert.ok(!fs.existsSync(path.join(run, "bundle")), "the bundle, with its secrets, is gone");
    const follow = spawnSync("/bin/sh", ["-c", renderFollowScript({ deployDir })], { env: hostEnv({ RUN_ID: "run-a" }), encoding: "utf8" });
    assert.equal(follow.status, 0, follow.stderr);
    assert.equal(follow.stdout, r.stdout);
    const none = spawnSync("/bin/sh", ["-c", renderFollowScript({ deployDir })], { env: hostEnv({ RUN_ID: "never-sent" }), encoding: "utf8" });
    assert.equal(none.status, FOLLOW_NO_RUN);
    // The same run sent again is followed, not run twice.
    const again = deploy("r/backend:good-5", { runId: "run-a", env: "SECRET='rotated'\n" });
    assert.equal(again.code, 0);
    assert.equal(again.stdout, r.stdout);
  });

  it("tells a run killed without a verdict within seconds (exit 18), and the next run removes the bundle it left", async () => {
    const holder = spawn("flock", ["--close", path.join(deployDir, ".release/lock"), "sleep", "30"], { stdio: "ignore" });
    const run = path.join(deployDir, ".release/runs/run-lost");
    try {
      // The run waits for the lock with its bundle (the registry password among it) on the host.
      const script = renderDeployScript({ deployDir, project: "backend", files: ["docker-compose.yml", ".env"], healthServices: ["backend"], deadlineSeconds: 3, stepDeadlineSeconds: 25 });
      const bundle = renderBundle([{ name: "docker-compose.yml", content: compose("r/backend:good-13"), mode: "0644" }], { registryPassword: "pa$$ word" });
      const child = spawn("/bin/sh", ["-c", script], { env: hostEnv({ RUN_ID: "run-lost" }) });
      let stderr = "";
      child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
      const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
      child.stdin.end(`${bundle}${BUNDLE_END}\n`);
      const deadline = Date.now() + 10_000;
      while (!fs.existsSync(path.join(run, "pid")) && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 100));
      }
      const [pid, boot] = fs.readFileSync(path.join(run, "pid"), "utf8").trim().split(" ");
      assert.equal(boot, fs.readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim());
      // An OOM kill: no trap runs, no verdict is written.
      process.kill(Number(pid), "SIGKILL");
      const t0 = Date.now();
      assert.equal(await exited, DEPLOY_EXIT.lost, stderr);
      assert.ok(Date.now() - t0 < 10_000, `the follow ended ${Date.now() - t0} ms after the kill`);
      assert.match(stderr, /LOST: run run-lost on .* ended without a verdict \(killed, or the host restarted\)/);
      assert.ok(fs.existsSync(path.join(run, "bundle")), "the killed run left its bundle");
      // Followed again, it ends at once with the same code.
      const again = spawnSync("/bin/sh", ["-c", renderFollowScript({ deployDir })], { env: hostEnv({ RUN_ID: "run-lost" }), encoding: "utf8", timeout: 10_000 });
      assert.equal(again.status, DEPLOY_EXIT.lost);
    } finally {
      if (holder.pid) {
        process.kill(holder.pid);
      }
    }
    const next = deploy("r/backend:good-5", { env: "SECRET='rotated'\n" });
    assert.equal(next.code, 0, next.stderr);
    assert.ok(!fs.existsSync(path.join(run, "bundle")), "the next run removed the bundle the killed one left");
  });

  it("tells a run recorded before the host restarted as lost at once", () => {
    const run = path.join(deployDir, ".release/runs/run-rebooted");
    fs.mkdirSync(run, { recursive: true });
    for (const f of ["started", "out", "err"]) {
      fs.writeFileSync(path.join(run, f), "");
    }
    fs.writeFileSync(path.join(run, "pid"), `${process.pid} 00000000-0000-0000-0000-000000000000 1\n`);
    const t0 = Date.now();
    const r = spawnSync("/bin/sh", ["-c", renderFollowScript({ deployDir })], { env: hostEnv({ RUN_ID: "run-rebooted" }), encoding: "utf8", timeout: 10_000 });
    assert.equal(r.status, DEPLOY_EXIT.lost, r.stderr);
    assert.ok(Date.now() - t0 < 3_000);
    // A live process with that PID but another start time is not the run either.
    fs.rmSync(path.join(run, "verdict"));
    fs.writeFileSync(path.join(run, "pid"), `${process.pid} ${fs.readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim()} 1\n`);
    const reused = spawnSync("/bin/sh", ["-c", renderFollowScript({ deployDir })], { env: hostEnv({ RUN_ID: "run-rebooted" }), encoding: "utf8", timeout: 10_000 });
    assert.equal(reused.status, DEPLOY_EXIT.lost, reused.stderr);
  });

  it("refuses a bundle cut short, changing nothing", () => {
    const r = deploy("r/backend:good-10", { runId: "run-b", cut: true });
    assert.equal(r.code, DEPLOY_EXIT.incomplete, r.stderr);
    assert.match(r.stderr, /the bundle arrived cut short; nothing was changed/);
    assert.equal(read("docker-compose.yml"), compose("r/backend:good-5"));
    assert.ok(!fs.existsSync(path.join(deployDir, ".release/runs/run-b")));
  });

  it("undoes a run that died between two releases before anything else, restoring the current release", () => {
    // What a run killed during `up` leaves: the new files, their container and the run marked active.
    fs.writeFileSync(path.join(deployDir, "docker-compose.yml"), compose("r/backend:unhealthy-11"));
    fs.writeFileSync(path.join(state, "running"), "r/backend:unhealthy-11\n");
    fs.writeFileSync(path.join(deployDir, ".release/active"), "dead-run\n");
    const r = deploy("r/backend:missing-12", { env: "SECRET='rotated'\n" });
    assert.equal(r.code, DEPLOY_EXIT.pullFailed, r.stderr);
    assert.match(r.stderr, /run dead-run ended without a verdict; bringing back the current release first/);
    assert.equal(read("docker-compose.yml"), compose("r/backend:good-5"));
    assert.equal(fs.readFileSync(path.join(state, "running"), "utf8").trim(), "r/backend:good-5");
    assert.ok(!fs.existsSync(path.join(deployDir, ".release/active")));
  });

  it("stops the project on delete without removing volumes", () => {
    const script = renderDownScript({ deployDir, project: "backend" });
    const r = spawnSync("/bin/sh", ["-c", script], { env: hostEnv(), encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);
    const calls = fs.readFileSync(path.join(state, "calls"), "utf8").trim().split("\n");
    assert.equal(calls[calls.length - 1], "compose down --remove-orphans");
  });

  it("checks the host and names what is missing", () => {
    const ok = spawnSync("/bin/sh", ["-c", renderHostCheckScript({ deployDir })], { env: hostEnv(), encoding: "utf8" });
    assert.equal(ok.status, 0, ok.stderr);
    assert.match(ok.stdout, /host-check: ok: 2.40.3/);
    const none = spawnSync("/bin/sh", ["-c", renderHostCheckScript({ deployDir })], { env: { PATH: "/nonexistent" }, encoding: "utf8" });
    assert.equal(none.status, HOST_CHECK_EXIT.noDocker);
    assert.match(none.stderr, /docker is not installed/);
  });

  it("refuses relative directories and odd file names", () => {
    assert.throws(() => renderDownScript({ deployDir: "opt/x", project: "p" }), /deployDir: "opt\/x" must be an absolute path/);
    assert.throws(() => renderBundle([{ name: "../x", content: "", mode: "0644" }]), /must be a plain file name/);
  });
});
