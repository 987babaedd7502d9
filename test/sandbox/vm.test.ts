import { after, before, describe, it } from "node:test";
import * as assert from "node:assert/strict";
import { spawn, spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { processesMentioning } from "../support/leftovers";
import { renderBackendCompose, composeToYaml, renderEnvFile } from "../../lib/compose";
import { DEPLOY_EXIT, renderDeployScript, renderDownScript } from "../../lib/remote-deploy";
import { renderBundle } from "../../lib/bundle";
import type { SshEndpoint } from "../../lib/ssh";
import { DockerEngine, ensureDockerEngine, stopDockerEngine } from "../../sandbox/docker-engine";
import { DemoImages, backendHealthcheck, buildDemoImages, pinnedRef } from "../../sandbox/images";
import { ProcessRecord, freePort, isAlive, readState, waitFor } from "../../sandbox/processes";
import { RunningRegistry, startRegistry } from "../../sandbox/registry";
import { Vm, restartVmSshd, startVm, stopVmSshd } from "../../sandbox/vm";
import { hostKeyPinProvider } from "../../providers/host-key-pin";
import { remoteScriptProvider } from "../../providers/remote-script";
import { toolchainEnv } from "../../toolchain/env";

/*
 * The sandbox for real: a Docker engine, a registry, an sshd "VM" and the demo images; then the
 * program's own deploy script run over real SSH against them, as the ComposeHost component does.
 * Needs root, the Debian packages of `npm run setup` and the compose plugin the toolchain builds
 * (`npm run toolchain`), or one named by SANDBOX_COMPOSE_PLUGIN.
 */

const composePlugin = process.env.SANDBOX_COMPOSE_PLUGIN || toolchainEnv().dockerCompose;
const PROJECT = "sandbox-backend";
const DEADLINE = 20;

let dir: string;
let engine: DockerEngine;
let registry: RunningRegistry;
let vm: Vm;
let images: DemoImages;
let port: number;
let deployDir: string;
let firstBoot: string;
let userExisted = false;
const timings: Record<string, number> = {};

/** What Docker's default networking changes on the host, to compare before and after. */
function hostNet(): { iptables: string; docker0: boolean; ipForward: string } {
  const ipt = (...a: string[]): string => spawnSync("iptables", a, { encoding: "utf8" }).stdout ?? "";
  return {
    iptables: ipt("-S") + ipt("-t", "nat", "-S"),
    docker0: fs.existsSync("/sys/class/net/docker0"),
    ipForward: fs.readFileSync("/proc/sys/net/ipv4/ip_forward", "utf8").trim(),
  };
}
let netBefore: ReturnType<typeof hostNet>;

async function timed<T>(label: string, f: () => Promise<T>): Promise<T> {
  const started = Date.now();
  try {
    return await f();
  } finally {
    timings[label] = Date.now() - started;
    console.log(`# ${label}: ${((Date.now() - started) / 1000).toFixed(1)}s`);
  }
}

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the ssh client (async, so the test's own timers keep running). */
function ssh(args: string[], input = ""): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn("ssh", args, { stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), 240_000);
    child.on("error", reject);
    child.on("close", (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    });
    child.stdin.end(input);
  });
}

function docker(...args: string[]): Run {
  const r = spawnSync("docker", args, { env: engine.env(), encoding: "utf8" });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function deployScript(): string {
  return renderDeployScript({
    deployDir,
    project: PROJECT,
    files: ["docker-compose.yml", ".env"],
    registry: { server: registry.host, username: registry.username },
    healthServices: ["backend"],
    healthUrl: `http://127.0.0.1:${port}/api/health`,
    deadlineSeconds: DEADLINE,
  });
}

/** Deploys one backend tag over SSH exactly as the program does: script as the command, bundle on stdin. */
async function deploy(tag: string): Promise<Run> {
  const compose = composeToYaml(
    renderBackendCompose({
      project: PROJECT,
      image: pinnedRef(images, "backend", tag),
      bindAddress: "127.0.0.1",
      port,
      healthcheckTest: backendHealthcheck(port),
    }),
  );
  const bundle = renderBundle(
    [
      { name: "docker-compose.yml", content: compose, mode: "0644" },
      { name: ".env", content: renderEnvFile({ PORT: String(port), API_SECRET: "sandbox-secret-1" }), mode: "0600" },
    ],
    { registryPassword: registry.password },
  );
  const started = Date.now();
  const r = await ssh([...vm.sshArgs(), `${deployScript()}`], bundle);
  if (process.env.SANDBOX_VERBOSE) {
    console.log(`# deploy ${tag}: exit ${r.status} after ${Date.now() - started}ms\n${r.stdout}${r.stderr}`.replace(/\n/g, "\n# "));
  }
  return r;
}

async function health(): Promise<{ status: number; body: { status?: string; version?: string } }> {
  const res = await fetch(`http://127.0.0.1:${port}/api/health`, { signal: AbortSignal.timeout(5000) });
  const text = await res.text();
  return { status: res.status, body: res.ok ? (JSON.parse(text) as { status?: string; version?: string }) : {} };
}

function backendContainer(): { image: string; health: string; status: string } {
  const r = docker("inspect", "-f", "{{.Config.Image}}|{{if .State.Health}}{{.State.Health.Status}}{{end}}|{{.State.Status}}", "backend");
  assert.equal(r.status, 0, r.stderr);
  const [image, h, status] = r.stdout.trim().split("|");
  return { image, health: h, status };
}

/** Waits until Docker itself reports the backend healthy (the compose health check runs every 30s). */
async function waitDockerHealthy(): Promise<void> {
  await waitFor(() => backendContainer().health === "healthy", { what: "backend container's health check", timeoutMs: 90_000, intervalMs: 1000 });
}

function firstBootText(): string {
  const r = docker("exec", "backend", "cat", "/data/first-boot.txt");
  assert.equal(r.status, 0, r.stderr);
  return r.stdout;
}

function assertV1Serving(): Promise<void> {
  return (async () => {
    const h = await health();
    assert.equal(h.status, 200);
    assert.deepEqual(h.body, { status: "ok", version: images.backend.v1 });
    const c = backendContainer();
    assert.equal(c.status, "running");
    assert.equal(c.image, pinnedRef(images, "backend", images.backend.v1));
    // The compose health check's own command succeeds in the restored container.
    const hc = docker("exec", "backend", ...backendHealthcheck(port).slice(1));
    assert.equal(hc.status, 0, hc.stderr);
    assert.equal(firstBootText(), firstBoot, "/data/first-boot.txt must survive the failed releases");
  })();
}

describe("sandbox: engine, registry, SSH VM and demo images", { concurrency: false }, () => {
  before(async () => {
    assert.ok(
      fs.existsSync(composePlugin),
      `docker compose plugin missing at ${composePlugin}: build it with npm run toolchain, or set SANDBOX_COMPOSE_PLUGIN`,
    );
    // Short: the engine's socket path must fit a unix socket address.
    dir = fs.mkdtempSync("/tmp/hl-sbx-");
    netBefore = hostNet();
    userExisted = spawnSync("getent", ["passwd", "homelab-deploy"]).status === 0;
    engine = await timed("start docker engine", () => ensureDockerEngine(dir));
    registry = await timed("start registry", () => startRegistry(path.join(dir, "registry")));
    vm = await timed("start vm (sshd)", () => startVm(dir, { docker: engine, composePlugin }));
    images = await timed("build and push demo images", () => buildDemoImages({ docker: engine, registry, dir }));
    port = await freePort();
    deployDir = path.join(vm.workDir, "backend");
  });

  after(async () => {
    if (!dir) {
      return;
    }
    // Best effort when a test failed half-way; the last test checks the clean stop itself.
    try {
      await vm?.stop();
      await registry?.stop({ keepData: false });
      await engine?.stop();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
      console.log(`# timings (ms): ${JSON.stringify(timings)}`);
    }
  });

  it("starts idempotently: a second start in the same dir reuses every process", async () => {
    const again = await timed("restart (reuse) all", async () => ({
      engine: await ensureDockerEngine(dir),
      registry: await startRegistry(path.join(dir, "registry")),
      vm: await startVm(dir, { docker: engine, composePlugin }),
      images: await buildDemoImages({ docker: engine, registry, dir }),
    }));
    assert.equal(again.engine.startedPid, engine.startedPid);
    assert.equal(again.registry.pid, registry.pid);
    assert.equal(again.registry.host, registry.host);
    assert.equal(again.vm.pid, vm.pid);
    assert.equal(again.vm.port, vm.port);
    assert.deepEqual(again.images.backend, images.backend);
    assert.deepEqual(JSON.parse(fs.readFileSync(path.join(dir, "images.json"), "utf8")).backend, images.backend);
  });

  it("tags the images main-<sha7>-<ts> with timestamps in release order", () => {
    const tags = [...images.frontend, images.backend.v1, images.backend.v2, images.backend.unhealthy, images.backend.crash];
    const ts = tags.map((t) => {
      assert.match(t, /^main-[a-f0-9]{7}-[0-9]{10}$/);
      assert.match(images.digests[t], /^sha256:[a-f0-9]{64}$/);
      return Number(t.split("-")[2]);
    });
    for (let i = 1; i < ts.length; i++) {
      assert.ok(ts[i] > ts[i - 1], `${tags[i]} must be newer than ${tags[i - 1]}`);
    }
    assert.equal(new Set(tags).size, tags.length);
  });

  it("frontend images serve their tag and /healthz as a non-root user", async () => {
    const fport = await freePort();
    const run = docker("run", "-d", "--name", "frontend-probe", "-p", `127.0.0.1:${fport}:8080`, pinnedRef(images, "frontend", images.frontend[1]));
    assert.equal(run.status, 0, run.stderr);
    try {
      await waitFor(async () => (await fetch(`http://127.0.0.1:${fport}/`)).ok, { what: "frontend v2", timeoutMs: 15_000 });
      const index = await (await fetch(`http://127.0.0.1:${fport}/`)).text();
      assert.match(index, new RegExp(images.frontend[1]));
      assert.equal((await fetch(`http://127.0.0.1:${fport}/healthz`)).status, 200);
      assert.equal(docker("exec", "frontend-probe", "id", "-u").stdout.trim(), "10001");
      // httpd runs under a shell that forwards SIGTERM, so a stop does not wait for the kill timeout.
      const started = Date.now();
      assert.equal(docker("stop", "-t", "10", "frontend-probe").status, 0);
      assert.ok(Date.now() - started < 5000, `docker stop took ${Date.now() - started}ms`);
    } finally {
      docker("rm", "-f", "frontend-probe");
    }
  });

  it("ssh: the deploy user logs in with its key and runs docker compose", async () => {
    const r = await ssh([...vm.sshArgs(), "id -un; echo \"$DOCKER_HOST\"; docker compose version; docker info --format '{{.ServerVersion}}'"]);
    assert.equal(r.status, 0, r.stderr);
    const [user, dockerHost, compose] = r.stdout.trim().split("\n");
    assert.equal(user, vm.user);
    assert.equal(dockerHost, engine.host);
    assert.match(compose, /^Docker Compose version v2\./);
  });

  it("ssh: password login, another user and a wrong pinned host key are refused", async () => {
    const base = vm.sshArgs().slice(0, -1);
    const password = await ssh([...base, "-o", "PubkeyAuthentication=no", "-o", "PreferredAuthentications=password,keyboard-interactive", `${vm.user}@127.0.0.1`, "true"]);
    assert.equal(password.status, 255);
    assert.match(password.stderr, /Permission denied \(publickey\)/);

    const root = await ssh([...base, "root@127.0.0.1", "true"]);
    assert.equal(root.status, 255);
    assert.match(root.stderr, /Permission denied/);

    const wrongKey = path.join(dir, "wrong_host_key");
    spawnSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "", "-f", wrongKey]);
    const wrongKnownHosts = path.join(dir, "wrong_known_hosts");
    const [type, key] = fs.readFileSync(`${wrongKey}.pub`, "utf8").split(/\s+/);
    fs.writeFileSync(wrongKnownHosts, `[127.0.0.1]:${vm.port} ${type} ${key}\n`);
    const args = vm.sshArgs().map((a) => (a === `UserKnownHostsFile=${vm.knownHostsFile}` ? `UserKnownHostsFile=${wrongKnownHosts}` : a));
    const pinned = await ssh([...args, "true"]);
    assert.equal(pinned.status, 255);
    assert.match(pinned.stderr, /REMOTE HOST IDENTIFICATION HAS CHANGED|Host key verification failed/);

    const log = fs.readFileSync(path.join(dir, "sshd.log"), "utf8");
    assert.match(log, /User root from 127\.0\.0\.1 not allowed because not listed in AllowUsers/);
  });

  it("trust on first use is kept per host: the key pinned on first contact refuses the host once it presents another", async () => {
    const connection: SshEndpoint = { host: vm.host, port: vm.port, user: vm.user, privateKey: vm.privateKey, attempts: 1 };
    const keyOf = (k: string): string => k.split(/\s+/).slice(0, 2).join(" ");
    const pin = await hostKeyPinProvider.create({ connection });
    const pinned = String(pin.outs.hostKey);
    assert.equal(keyOf(pinned), keyOf(vm.hostKey), "the first contact pins the host's own key");
    // Every script of the host connects with the pin (as HostCheck gives it to the later stages).
    const script = (create: string): Record<string, unknown> => ({ connection: { ...connection, hostKey: pinned, trustOnFirstUse: true }, create });
    const ran = await remoteScriptProvider.create(script("echo pinned-ok"));
    assert.match(String(ran.outs.stdout), /pinned-ok/);

    // The host now presents another key, as a man in the middle would on a retry.
    const hostKeyFile = path.join(dir, "ssh", "ssh_host_ed25519_key");
    const saved = [fs.readFileSync(hostKeyFile), fs.readFileSync(`${hostKeyFile}.pub`)];
    const other = path.join(dir, "mitm_host_key");
    spawnSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "", "-f", other]);
    await stopVmSshd(dir);
    fs.copyFileSync(other, hostKeyFile);
    fs.copyFileSync(`${other}.pub`, `${hostKeyFile}.pub`);
    await restartVmSshd(dir, vm.port);
    try {
      await assert.rejects(remoteScriptProvider.create(script("echo should-not-run")), /not the pinned ssh-ed25519 .*refusing to connect/);
      // A refresh keeps the pin; only a new first contact would take the other key.
      const read = await hostKeyPinProvider.read!("pin", pin.outs);
      assert.equal(read.props?.hostKey, pinned);
      const fresh = await hostKeyPinProvider.create({ connection });
      assert.notEqual(keyOf(String(fresh.outs.hostKey)), keyOf(pinned), "a new first contact would have trusted the other key");
    } finally {
      await stopVmSshd(dir);
      fs.writeFileSync(hostKeyFile, saved[0], { mode: 0o600 });
      fs.writeFileSync(`${hostKeyFile}.pub`, saved[1]);
      await restartVmSshd(dir, vm.port);
    }
    const again = await remoteScriptProvider.create(script("echo pinned-again"));
    assert.match(String(again.outs.stdout), /pinned-again/);
  });

  it("deploys backend v1 over SSH with the program's deploy script; it becomes healthy", async () => {
    const r = await timed("deploy v1", () => deploy(images.backend.v1));
    assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
    assert.match(r.stdout, /deploy: healthy after/);
    const h = await health();
    assert.deepEqual(h, { status: 200, body: { status: "ok", version: images.backend.v1 } });
    await timed("v1 docker health check healthy", waitDockerHealthy);
    firstBoot = firstBootText();
    assert.match(firstBoot, new RegExp(`first boot of /data by ${images.backend.v1}`));
  });

  it("a release whose health endpoint fails exits 10 and leaves v1 running and healthy", async () => {
    const r = await timed("deploy unhealthy (fails, restores v1)", () => deploy(images.backend.unhealthy));
    assert.equal(r.status, DEPLOY_EXIT.restored, `${r.stdout}\n${r.stderr}`);
    assert.match(r.stderr, /did not answer 2xx within/);
    assert.match(r.stderr, /previous release restored and healthy/);
    await assertV1Serving();
  });

  it("a release that crashes on start exits 10 and leaves v1 running and healthy", async () => {
    const r = await timed("deploy crash (fails, restores v1)", () => deploy(images.backend.crash));
    assert.equal(r.status, DEPLOY_EXIT.restored, `${r.stdout}\n${r.stderr}`);
    assert.match(r.stderr, /exited|restarting/);
    assert.match(r.stderr, /fatal: cannot start/, "the failed release's logs are printed");
    assert.match(r.stderr, /previous release restored and healthy/);
    await assertV1Serving();
    await timed("restored v1 docker health check healthy", waitDockerHealthy);
  });

  it("stops everything: no recorded process alive, no container left", async () => {
    const down = await ssh([...vm.sshArgs(), renderDownScript({ deployDir, project: PROJECT })]);
    assert.equal(down.status, 0, down.stderr);
    // On an own engine nothing at all may remain; on the machine's, nothing of this project.
    const ps = engine.startedPid ? docker("ps", "-aq") : docker("ps", "-aq", "--filter", `label=com.docker.compose.project=${PROJECT}`);
    assert.equal(ps.status, 0, ps.stderr);
    assert.equal(ps.stdout.trim(), "");
    const recorded: ProcessRecord[] = [
      ...Object.values(readState(dir).processes),
      ...Object.values(readState(path.join(dir, "registry")).processes),
    ];
    assert.deepEqual(recorded.map((p) => p.name).sort(), (engine.startedPid ? ["dockerd"] : []).concat(["registry", "sshd"]).sort());
    await timed("stop all", async () => {
      await vm.stop();
      await registry.stop({ keepData: false });
      await engine.stop();
    });
    for (const p of recorded) {
      assert.equal(isAlive(p.pid, p.startTime), false, `${p.name} (pid ${p.pid}) is still alive`);
    }
    assert.deepEqual(readState(dir).processes, {});
    // Nothing else started for the sandbox (containerd, shims, containers) is left either.
    assert.deepEqual(processesMentioning(dir), []);
    if (engine.startedPid && !/-N DOCKER/.test(netBefore.iptables)) {
      assert.deepEqual(hostNet(), netBefore, "the engine's iptables rules, docker0 and ip_forward are undone");
    }
    if (!userExisted) {
      assert.equal(spawnSync("getent", ["passwd", vm.user]).status, 2, "the deploy user startVm created is removed");
    }
    if (!engine.startedPid) {
      // The machine's engine stays; the project's containers went with the down script above.
      docker("volume", "rm", `${PROJECT}_backend-data`);
    }
  });
});

describe("sandbox: an own engine with --bridge=none --iptables=false (network: isolated)", () => {
  it("runs a container on a user-defined network with a port published on 127.0.0.1", async () => {
    const idir = fs.mkdtempSync("/tmp/hl-iso-");
    const before = hostNet();
    const iso = await timed("start isolated docker engine", () => ensureDockerEngine(idir, { forceOwn: true, network: "isolated" }));
    const run = (...args: string[]): Run => {
      const r = spawnSync("docker", args, { env: iso.env(), encoding: "utf8" });
      return { status: r.status, stdout: r.stdout, stderr: r.stderr };
    };
    try {
      const ctx = path.join(idir, "ctx");
      fs.mkdirSync(path.join(ctx, "www"), { recursive: true });
      fs.copyFileSync("/bin/busybox", path.join(ctx, "busybox"));
      fs.writeFileSync(path.join(ctx, "www", "index.html"), "isolated\n");
      fs.writeFileSync(path.join(ctx, "Dockerfile"), 'FROM scratch\nCOPY busybox /bin/busybox\nCOPY www /www\nCMD ["/bin/busybox","httpd","-f","-p","8080","-h","/www"]\n');
      assert.equal(run("build", "-q", "-t", "iso-probe", ctx).status, 0);
      assert.equal(run("network", "create", "iso-net").status, 0);
      const p = await freePort();
      const started = run("run", "-d", "--name", "iso-probe", "--network", "iso-net", "-p", `127.0.0.1:${p}:8080`, "iso-probe");
      assert.equal(started.status, 0, started.stderr);
      await waitFor(async () => (await fetch(`http://127.0.0.1:${p}/`)).ok, { what: "isolated engine's published port", timeoutMs: 15_000 });
      assert.equal(await (await fetch(`http://127.0.0.1:${p}/`)).text(), "isolated\n");
      // It makes no docker0. A stale one an earlier, killed engine left may go: dockerd with
      // --bridge=none removes the default bridge it finds.
      assert.ok(before.docker0 || !hostNet().docker0, "--bridge=none makes no docker0");
    } finally {
      await timed("stop isolated docker engine", () => iso.stop());
      fs.rmSync(idir, { recursive: true, force: true });
    }
    assert.equal(isAlive(iso.startedPid!), false);
    const after = hostNet();
    assert.deepEqual({ ...after, docker0: before.docker0 || after.docker0 }, before, "--iptables=false --ip-forward=false leave the host's network alone");
  });
});

describe("sandbox: an own engine killed mid-run is still removed whole", () => {
  it("SIGKILLed, started again, SIGKILLed once more, then stopped: no process, mount, docker0 or rule of it is left, and its directory goes", async () => {
    const kdir = fs.mkdtempSync("/tmp/hl-kill-");
    const before = hostNet();
    const mounts = (): string[] => fs.readFileSync("/proc/self/mounts", "utf8").split("\n").map((l) => l.split(" ")[1] ?? "").filter((m) => m.startsWith(kdir));
    const kill = async (engine: DockerEngine): Promise<void> => {
      process.kill(engine.startedPid!, "SIGKILL");
      await waitFor(() => !isAlive(engine.startedPid!), { what: "the killed dockerd gone", timeoutMs: 15_000 });
    };
    try {
      const first = await timed("start default-network engine", () => ensureDockerEngine(kdir, { forceOwn: true, network: "default" }));
      assert.ok(first.startedPid);
      await kill(first);
      // Started again in the same directory, as the sandbox does after a crash, then killed again.
      const second = await timed("start it again", () => ensureDockerEngine(kdir, { forceOwn: true, network: "default" }));
      assert.notEqual(second.startedPid, first.startedPid);
      await kill(second);
      assert.ok(processesMentioning(kdir).length > 0 || mounts().length > 0, "the killed engine left something behind to remove");
      await timed("stop the killed engine", () => stopDockerEngine(kdir));
      assert.deepEqual(processesMentioning(kdir), []);
      assert.deepEqual(mounts(), []);
      fs.rmSync(kdir, { recursive: true });
      if (!/-N DOCKER/.test(before.iptables)) {
        // docker0 and the chains this engine made are gone; a docker0 that was there before stays.
        assert.deepEqual(hostNet(), before, "docker0, the engine's iptables rules and ip_forward are as before");
      }
    } finally {
      await stopDockerEngine(kdir).catch(() => undefined);
      fs.rmSync(kdir, { recursive: true, force: true });
    }
  });
});
