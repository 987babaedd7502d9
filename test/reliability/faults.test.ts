import { after, before, describe, it } from "node:test";
import * as assert from "node:assert/strict";
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { Stack } from "@pulumi/pulumi/automation";
import { npmDeploy, DeployRun } from "../../bench/deploy-run";
import { acceptedSessions } from "../../bench/sessions";
import { startCluster } from "../../sandbox/cluster";
import { ensureDockerEngine } from "../../sandbox/docker-engine";
import { pinnedRef } from "../../sandbox/images";
import { kubeClient } from "../../sandbox/kube";
import { freePort, runningProcess, stopPid, stopProcess } from "../../sandbox/processes";
import { startRegistry } from "../../sandbox/registry";
import { Sandbox, sandboxStack, startSandbox, stopSandbox, writeRelease } from "../../sandbox/sandbox";
import { restartVmSshd, stopVmSshd } from "../../sandbox/vm";
import { EXIT } from "../../deploy/outcome";
import { ROLLBACK_TRAILER, trailers } from "../../deploy/rollback-commit";
import { readReleaseState } from "../../lib/release";
import { execFileSync, spawnSync } from "child_process";
import { RELEASE_PATH, clearExclusions, cloneProject, serverFile } from "../../sandbox/checkout";
import { commitToServer } from "../../sandbox/git-server";
import { PAYLOADS } from "../support/hostile";
import {
  OUTCOMES,
  Pair,
  ScenarioResult,
  childPids,
  commandName,
  docker,
  leaksSecret,
  markerIntact,
  recordedPair,
  servingPair,
  waitServing,
  writeMarker,
} from "./support";

/*
 * Faults and hostile input during real deploys on a private sandbox: the SSH connection cut
 * before the files move, during the pull, during compose up and during the health wait, a pull
 * the registry never answers, the same release again on a backend that restarted before,
 * dockerd restarted, the registry down, the API server stopped during the frontend rollout, two
 * deploys at once, and hostile values in the release file and config. For every case:
 * the data volume keeps its marker, the recorded release is what serves, nothing secret is printed
 * and the next deploy converges with no manual step. Writes bench/reliability.json.
 */
const STACK = "reliability";
const REPO = path.resolve(__dirname, "../..");
const results: ScenarioResult[] = [];
const marker = crypto.randomBytes(8).toString("hex");
/** Rows whose convergence the next batch-level clean run decides. */
const pending: ScenarioResult[] = [];

let dir: string;
let projectDir: string;
let sb: Sandbox;
let stack: Stack;
let sshdLog: string;

const deploy = (onLine?: (l: string) => void): Promise<DeployRun> => npmDeploy(STACK, projectDir, sb.pulumiEnv, onLine);
const release = async (p: Pair): Promise<void> => void (await writeRelease(sb, p[0], p[1]));

/**
 * A pair to deploy next: it moves `moves` (both parts when it can) and differs from what runs. A
 * fault can make a rollback exclude good tags; once the fault is gone the suite releases them, as
 * a person would, with a commit.
 */
async function target(moves: "frontend" | "backend" | "any"): Promise<{ from: Pair; to: Pair }> {
  const from = await recordedPair(stack);
  await clearExclusions(sb.git);
  const pairs: Pair[] = sb.images.frontend.flatMap((f) => [sb.images.backend.v1, sb.images.backend.v2].map((b): Pair => [f, b]));
  const candidates = pairs
    .filter((p) => p[0] !== from[0] || p[1] !== from[1])
    .filter((p) => (moves !== "frontend" || p[0] !== from[0]) && (moves !== "backend" || p[1] !== from[1]))
    .sort((a, b) => Number(b[0] !== from[0] && b[1] !== from[1]) - Number(a[0] !== from[0] && a[1] !== from[1]));
  assert.ok(candidates.length > 0, `no pair moves the ${moves} from ${from.join(" ")}`);
  return { from, to: candidates[0] };
}

/** Waits until `n` more SSH sessions than `base` were accepted by the VM (the backend deploy is the second). */
async function sessionsReach(base: number, n: number, timeoutMs = 120_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (acceptedSessions(sshdLog) < base + n) {
    if (Date.now() > end) {
      throw new Error(`no ${n} SSH sessions within ${timeoutMs / 1000}s`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * Waits until a session on the VM runs docker (the backend's deploy pulling or starting) and
 * returns that connection's processes, from its sshd down.
 */
async function remoteDockerRunning(timeoutMs = 60_000): Promise<number[]> {
  const descendants = (pid: number): number[] => childPids(pid).flatMap((c) => [c, ...descendants(c)]);
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    for (const conn of childPids(sb.vm.pid)) {
      const tree = [conn, ...descendants(conn)];
      if (tree.some((p) => commandName(p).startsWith("docker"))) {
        return tree;
      }
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error("no session on the VM ran docker");
}

/** The backend's deploy directory on the VM (readable here: the suite runs as root). */
async function deployDir(): Promise<string> {
  return (await stack.getAllConfig())["homelab:deployDir"].value;
}

/**
 * Waits until the backend deploy's run on the VM, started after `since`, has printed a line
 * matching `phase` (its progress file), and returns the run's directory.
 */
async function runReaches(since: number, phase: RegExp, timeoutMs = 180_000): Promise<string> {
  const runs = path.join(await deployDir(), ".release", "runs");
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    for (const id of fs.existsSync(runs) ? fs.readdirSync(runs) : []) {
      const out = path.join(runs, id, "out");
      try {
        if (fs.statSync(path.join(runs, id)).mtimeMs >= since - 1000 && phase.test(fs.readFileSync(out, "utf8"))) {
          return path.join(runs, id);
        }
      } catch {
        // not written yet
      }
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`no backend deploy run reached ${String(phase)} within ${timeoutMs / 1000}s`);
}

/**
 * Cuts the SSH connection that started the backend's deploy as a network cut would: its
 * per-connection sshd processes die (not the listener, not the run it started).
 */
function cutDeploySession(): number[] {
  const descendants = (pid: number): number[] => childPids(pid).flatMap((c) => [c, ...descendants(c)]);
  const cmdline = (pid: number): string => {
    try {
      return fs.readFileSync(`/proc/${pid}/cmdline`, "utf8");
    } catch {
      return "";
    }
  };
  const killed: number[] = [];
  for (const conn of childPids(sb.vm.pid)) {
    const tree = [conn, ...descendants(conn)];
    if (tree.some((p) => cmdline(p).includes("HOMELAB_DEPLOY_WORKER"))) {
      for (const pid of tree.filter((p) => commandName(p).startsWith("sshd"))) {
        process.kill(pid, "SIGKILL");
        killed.push(pid);
      }
    }
  }
  return killed;
}

/** The registry process: stopped (SIGSTOP) it still accepts connections and never answers. */
function registryPid(): number {
  const rec = runningProcess(path.join(dir, "sandbox", "registry"), "registry");
  assert.ok(rec, "the sandbox registry runs");
  return rec.pid;
}

/** A deploy moving the backend whose SSH connection is cut once its run reaches `phase`. */
async function cutAt(phase: RegExp, during?: () => Promise<void>): Promise<DeployRun> {
  const { to } = await target("backend");
  await release(to);
  const since = Date.now();
  const running = deploy();
  const run = await runReaches(since, phase);
  await during?.();
  const killed = cutDeploySession();
  assert.ok(killed.length > 0, `no SSH session ran the backend deploy (run ${run})`);
  const r = await running;
  // The run went on without its connection, and the client picked up its verdict.
  assert.equal(fs.readFileSync(path.join(run, "verdict"), "utf8").trim(), "0", fs.readFileSync(path.join(run, "err"), "utf8"));
  return r;
}

/** Waits until the frontend's Deployment names `tag`: its rollout has started. */
async function rolloutStarts(tag: string, timeoutMs = 120_000): Promise<void> {
  const kube = kubeClient(sb.kubeconfig);
  const end = Date.now() + timeoutMs;
  for (;;) {
    const d = await kube.get<{ spec: { template: { spec: { containers: { image: string }[] } } } }>("/apis/apps/v1/namespaces/website/deployments/frontend").catch(() => undefined);
    if (d?.spec.template.spec.containers[0].image.includes(`:${tag}@`)) {
      return;
    }
    assert.ok(Date.now() < end, "the frontend rollout did not start");
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The newest commit on the git server's branch is one of the deploy's rollback commits. */
function rollbackCommitOnTop(): boolean {
  const body = execFileSync("git", ["--git-dir", sb.git.repository, "log", "-1", "--format=%B", sb.git.branch], { encoding: "utf8" });
  return ROLLBACK_TRAILER in trailers(body);
}

/** The pair the release file on the git server names. */
function releaseInGit(): Pair {
  const { tags } = readReleaseState(serverFile(sb.git, RELEASE_PATH), "release file");
  return [tags.frontend, tags.backend];
}

/**
 * The next deploy without the fault, then a preview: converged when it exits 0, the preview
 * changes nothing and the release in git is what the stack records and what serves (a release a
 * fault interrupted is resumed, not abandoned).
 */
async function converges(): Promise<{ ok: boolean; log: string }> {
  const r = await deploy();
  if (r.code !== 0) {
    return { ok: false, log: r.output };
  }
  const pv = await stack.preview({ color: "never" });
  const changes = Object.entries(pv.changeSummary).filter(([op, n]) => op !== "same" && (n ?? 0) > 0);
  const recorded = await recordedPair(stack);
  const inGit = releaseInGit();
  const resumed = recorded[0] === inGit[0] && recorded[1] === inGit[1];
  const serving = await waitServing(sb, recorded);
  return { ok: changes.length === 0 && serving && resumed, log: `${r.output}\nchanges: ${JSON.stringify(changes)}, serving recorded pair: ${serving}, recorded ${recorded.join(" ")} = release in git ${inGit.join(" ")}: ${resumed}` };
}

/**
 * Runs one scenario: `act` deploys with its fault (and undoes the fault), then every invariant is
 * checked, the row recorded, and asserted.
 */
async function scenario(name: string, kind: ScenarioResult["kind"], allowed: number[], act: () => Promise<DeployRun>, converge = true): Promise<void> {
  const t0 = Date.now();
  const before = await recordedPair(stack);
  const r = await act();
  const after = await recordedPair(stack);
  const blamedRelease = rollbackCommitOnTop();
  // A platform failure leaves parts of the release as far as they got; the next run resumes it,
  // and \`converges\` checks that what serves then is the recorded release.
  const releaseServing = r.code === EXIT.platform || ((r.code === 0 || (after[0] === before[0] && after[1] === before[1])) && (await waitServing(sb, after)));
  // Input refused before the engine ran changes nothing, so one clean run after a batch of them stands for each.
  const next = converge ? await converges() : { ok: true, log: "" };
  const row: ScenarioResult = {
    scenario: name,
    kind,
    outcome: OUTCOMES[r.code] ?? `exit ${r.code}`,
    exitCode: r.code,
    dataIntact: markerIntact(sb, marker),
    releaseServing,
    noSecretInLogs: !leaksSecret(sb, r.output) && !leaksSecret(sb, next.log),
    convergedOnNextRun: next.ok,
    blamedRelease,
    seconds: Math.round((Date.now() - t0) / 100) / 10,
    detail: r.output.split("\n").filter((l) => /^deploy: (REFUSED|FAILED|ROLLED BACK|PROMOTED|ROLLBACK FAILED|PLATFORM FAILURE|the rollback runs)|^ {2}- homelab:|^deploy: .*another|env\.EXTRA/.test(l)).slice(0, 4).join(" / ").slice(0, 400),
  };
  results.push(row);
  if (!converge) {
    pending.push(row);
  }
  process.stderr.write(`reliability: ${name}: ${row.outcome} in ${row.seconds}s\n`);
  assert.ok(allowed.includes(r.code), `${name}: exit ${r.code}, expected ${allowed.join(" or ")}:\n${r.output.slice(-3000)}`);
  assert.ok(row.dataIntact, `${name}: the data volume lost its marker`);
  assert.ok(row.releaseServing, `${name}: the recorded release (${after.join(" ")}) is not what serves (${String(await servingPair(sb))})`);
  assert.ok(row.noSecretInLogs, `${name}: a secret was printed`);
  assert.ok(row.convergedOnNextRun, `${name}: the next deploy did not converge:\n${next.log.slice(-3000)}`);
  if (kind === "fault") {
    assert.ok(!blamedRelease, `${name}: a rollback commit blamed a healthy release for a fault of the platform:\n${r.output.slice(-3000)}`);
  }
}

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "homelab-rel-"));
  // Two runs at once on one machine (two checkouts) need deploy users of their own.
  sb = await startSandbox(path.join(dir, "sandbox"), { vmUser: process.env.HOMELAB_REL_VM_USER ?? "homelab-rel", network: "isolated", backendPort: await freePort(), log: () => undefined });
  projectDir = cloneProject(sb.git, path.join(dir, "project"));
  sshdLog = path.join(dir, "sandbox", "vm", "sshd.log");
  stack = await sandboxStack(sb, STACK, projectDir);
  // 20s keeps the fault rows short; a loaded machine's node may need longer to get pods ready.
  // One frontend replica on the real node: a rollout waits for one readiness probe (10 s initial
  // delay), and the deadline leaves it room on a busy machine.
  await stack.setAllConfig({
    "homelab:gateDeadlineSeconds": { value: process.env.HOMELAB_REL_GATE_DEADLINE ?? "40" },
    "homelab:frontendReplicas": { value: "1" },
  });
  await release([sb.images.frontend[0], sb.images.backend.v1]);
  const first = await deploy();
  assert.equal(first.code, 0, first.output);
  writeMarker(sb, marker);
});

after(async () => {
  try {
    // A run of some rows (--test-name-pattern) replaces those rows and keeps the others.
    const file = path.join(REPO, "bench", "reliability.json");
    const earlier = fs.existsSync(file) ? (JSON.parse(fs.readFileSync(file, "utf8")) as ScenarioResult[]) : [];
    const ran = new Set(results.map((r) => r.scenario));
    fs.writeFileSync(file, JSON.stringify([...earlier.filter((r) => !ran.has(r.scenario)), ...results], null, 2) + "\n");
    // Destroy keeps the data volume; stopping the sandbox removes the engine's data with it.
    await stack?.destroy({ color: "never" }).catch(() => undefined);
  } finally {
    if (dir) {
      await stopSandbox(path.join(dir, "sandbox"), () => undefined);
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }
});

describe("faults during a deploy", { concurrency: false }, () => {
  // The remote deploy runs detached on the VM: a cut connection neither stops nor hides it. The
  // client connects again, follows the run to its verdict, and the release is promoted.
  it("the SSH connection is cut before the files move", async () => {
    await scenario("SSH connection cut before the files move", "fault", [EXIT.promoted], () => cutAt(/deploy: (pulling images|logged in)/));
  });

  it("the SSH connection is cut during the pull", async () => {
    await scenario("SSH connection cut during the pull", "fault", [EXIT.promoted], () =>
      // The registry holds the pull (stopped, it accepts and never answers) until the cut is made.
      cutAt(/deploy: pulling images/, async () => {
        const pid = registryPid();
        process.kill(pid, "SIGSTOP");
        setTimeout(() => process.kill(pid, "SIGCONT"), 3000);
        await new Promise((r) => setTimeout(r, 500));
      }),
    );
  });

  it("the SSH connection is cut during compose up", async () => {
    await scenario("SSH connection cut during compose up", "fault", [EXIT.promoted], () => cutAt(/deploy: starting/));
  });

  it("the SSH connection is cut during the health wait", async () => {
    await scenario("SSH connection cut during the health wait", "fault", [EXIT.promoted], () => cutAt(/deploy: waiting for health/));
  });

  it("the registry hangs during the VM's pull", async () => {
    await scenario("docker pull hung (registry accepts, never answers)", "fault", [EXIT.platform], async () => {
      const { to } = await target("backend");
      await release(to);
      // Not on the engine yet, so the pull must ask the registry (earlier rows pulled every image).
      spawnSync("docker", ["image", "rm", "-f", pinnedRef(sb.images, "backend", to[1])], { env: sb.docker.env(), timeout: 60_000 });
      const since = Date.now();
      const running = deploy();
      const run = await runReaches(since, /deploy: (logged in|pulling images)/);
      const pid = registryPid();
      process.kill(pid, "SIGSTOP");
      try {
        const r = await running;
        // The engine's own registry timeout or the step deadline, whichever comes first, ends it.
        assert.match(fs.readFileSync(path.join(run, "err"), "utf8"), /PULL: (the pull did not finish within \d+s|the images of the release could not be pulled|could not log in to \S+ within \d+s); the running release was not touched/);
        assert.equal(fs.readFileSync(path.join(run, "verdict"), "utf8").trim(), "13");
        assert.ok(!fs.existsSync(path.join(await deployDir(), ".docker", "config.json")), "the registry password is not left on the VM");
        return r;
      } finally {
        process.kill(pid, "SIGCONT");
      }
    });
  });

  it("the same release is deployed again on a backend that restarted once before", async () => {
    await scenario("same release again after a backend restart", "fault", [EXIT.promoted], async () => {
      // The release in git is the one the VM runs, so the deploy below brings it nothing new.
      await release(await recordedPair(stack));
      const cid = docker(sb, "ps", "-q", "--filter", "label=com.docker.compose.project=backend", "--filter", "label=com.docker.compose.service=backend");
      assert.ok(cid, "the backend runs");
      // One crash, long before this deploy: the engine restarts it (unless-stopped).
      process.kill(Number(docker(sb, "inspect", "-f", "{{.State.Pid}}", cid)), "SIGKILL");
      const end = Date.now() + 120_000;
      while (docker(sb, "inspect", "-f", "{{.RestartCount}} {{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{end}}", cid) !== "1 running healthy") {
        assert.ok(Date.now() < end, "the backend did not come back healthy after its restart");
        await new Promise((r) => setTimeout(r, 1000));
      }
      // Another gate deadline renders another deploy script: the VM runs it with the same files.
      const deadline = (await stack.getAllConfig())["homelab:gateDeadlineSeconds"].value;
      await stack.setConfig("homelab:gateDeadlineSeconds", { value: String(Number(deadline) + 1) });
      try {
        const since = Date.now();
        const r = await deploy();
        // The VM's run judged the release unchanged and healthy and touched nothing.
        const run = await runReaches(since, /deploy: healthy after/, 10_000);
        assert.match(fs.readFileSync(path.join(run, "out"), "utf8"), /is current and healthy; nothing to do/);
        assert.equal(docker(sb, "ps", "-q", "--filter", "label=com.docker.compose.project=backend", "--filter", "label=com.docker.compose.service=backend"), cid, "the container was not recreated");
        return r;
      } finally {
        await stack.setConfig("homelab:gateDeadlineSeconds", { value: deadline });
      }
    });
  });

  it("dockerd restarts while the backend deploys", async () => {
    await scenario("dockerd restarted mid-deploy", "fault", [EXIT.promoted, EXIT.platform], async () => {
      const { to } = await target("backend");
      await release(to);
      const base = acceptedSessions(sshdLog);
      const running = deploy();
      await sessionsReach(base, 2);
      await remoteDockerRunning();
      const dockerDir = path.join(dir, "sandbox", "docker");
      await stopProcess(dockerDir, "dockerd", 30_000);
      await ensureDockerEngine(dockerDir, { network: "isolated" });
      return running;
    });
  });

  it("the registry is down when a deploy starts", async () => {
    await scenario("registry down", "fault", [EXIT.platform], async () => {
      const { to } = await target("any");
      await release(to);
      const registryDir = path.join(dir, "sandbox", "registry");
      await stopProcess(registryDir, "registry");
      try {
        return await deploy();
      } finally {
        await startRegistry(registryDir);
      }
    });
  });

  it("the API server stops during the frontend rollout", async () => {
    await scenario("API server stopped during the frontend rollout", "fault", [EXIT.promoted, EXIT.platform], async () => {
      const { to } = await target("frontend");
      await release(to);
      const running = deploy();
      await rolloutStarts(to[0]);
      const clusterDir = path.join(dir, "sandbox", "cluster");
      const pidFile = path.join(clusterDir, "kwok", "clusters", "homelab", "pids", "kube-apiserver.pid");
      await stopPid(Number(fs.readFileSync(pidFile, "utf8").trim()));
      await new Promise((r) => setTimeout(r, 5000));
      await startCluster(clusterDir, { nodes: 0, log: () => undefined });
      return running;
    });
  });

  it("the VM's sshd stops before the backend deploys", async () => {
    await scenario("VM's sshd stopped during the release", "fault", [EXIT.platform], async () => {
      const { to } = await target("frontend");
      await release(to);
      const running = deploy();
      // The host check has passed once the frontend rolls out; the backend deploy comes next.
      await rolloutStarts(to[0]);
      const vmDir = path.join(dir, "sandbox", "vm");
      await stopVmSshd(vmDir);
      try {
        return await running;
      } finally {
        await restartVmSshd(vmDir, sb.vm.port);
      }
    });
  });

  it("two deploys start at once", async () => {
    const codes: number[] = [];
    await scenario("two deploys started at once", "fault", [0], async () => {
      const { to } = await target("any");
      await release(to);
      const [a, b] = await Promise.all([deploy(), deploy()]);
      codes.push(a.code, b.code);
      const refused = [a, b].find((r) => r.code !== 0);
      const promoted = [a, b].find((r) => r.code === 0);
      assert.ok(refused && promoted, `one promoted, one refused: exits ${a.code}, ${b.code}`);
      assert.equal(refused.code, 2, refused.output);
      assert.match(refused.output, /REFUSED: (another deploy|another update)/);
      return { ...promoted, output: `${a.output}\n${b.output}` };
    });
    assert.deepEqual([...codes].sort(), [0, 2]);
  });
});

describe("deploys across checkouts and a killed deploy", { concurrency: false }, () => {
  it("two checkouts of the same stack deploying at once", async () => {
    // A second clone with nothing shared but the git server and the state backend, as on another machine.
    const other = cloneProject(sb.git, path.join(dir, "project-2"));
    fs.copyFileSync(path.join(projectDir, `Pulumi.${STACK}.yaml`), path.join(other, `Pulumi.${STACK}.yaml`));
    await scenario("two checkouts of the same stack deploying at once", "fault", [0], async () => {
      const { to } = await target("any");
      await release(to);
      const [a, b] = await Promise.all([deploy(), npmDeploy(STACK, other, sb.pulumiEnv)]);
      const refused = [a, b].find((r) => r.code !== 0);
      const promoted = [a, b].find((r) => r.code === 0);
      assert.ok(refused && promoted, `one promoted, one refused: exits ${a.code}, ${b.code}\n${a.output}\n${b.output}`);
      assert.equal(refused.code, EXIT.refused, refused.output);
      assert.match(refused.output, /REFUSED: another deploy of stack reliability is running \(pid \d+ of /);
      return { ...promoted, output: `${a.output}\n${b.output}` };
    });
  });

  it("the deploy process killed with SIGKILL between the failed up and the rollback, then a second deploy", async () => {
    await scenario("deploy killed with SIGKILL between the failed up and the rollback, then a second deploy", "bad release", [0], async () => {
      const from = await recordedPair(stack);
      await clearExclusions(sb.git);
      const bad: Pair = [sb.images.frontend.find((f) => f !== from[0])!, sb.images.backend.unhealthy];
      await release(bad);
      let killed: Promise<void> | undefined;
      const first = await deploy((line) => {
        if (!killed && /^deploy: rolling back both to the last promoted pair/.test(line)) {
          killed = killDeploys();
        }
      });
      await killed;
      assert.ok(killed, `the deploy never began its rollback:\n${first.output.slice(-3000)}`);
      // Killed: the frontend may serve the failed release beside the backend its host restored.
      const second = await deploy();
      // Whether the killed deploy's lock file stayed depends on how far its pulumi got; either way
      // the second deploy runs (a stale lock of this machine is removed, as deploy-lock's engine test shows).
      assert.match(second.output, /finishing that rollback first/, second.output);
      assert.deepEqual(releaseInGit(), from, "git names the restored pair");
      assert.ok(rollbackCommitOnTop(), "the rollback is recorded in git");
      assert.deepEqual(await recordedPair(stack), from);
      return { ...second, output: `${first.output}\n${second.output}` };
    });
  });
});

/** SIGKILLs every running `npm run deploy` of this suite with all it started (pulumi included). */
async function killDeploys(): Promise<void> {
  const descendants = (pid: number): number[] => childPids(pid).flatMap((c) => [c, ...descendants(c)]);
  const cmdline = (pid: number): string => {
    try {
      return fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").replace(/\0/g, " ");
    } catch {
      return "";
    }
  };
  // npm retitles itself ("npm run deploy --stack …"), dropping "-s" and "--".
  const roots = childPids(process.pid).filter((p) => /\bdeploy\b.* --stack /.test(cmdline(p)));
  const all = roots.flatMap((r) => [r, ...descendants(r)]);
  for (const pid of all) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // gone already
    }
  }
  await new Promise((r) => setTimeout(r, 500));
}

describe("hostile input", { concurrency: false }, () => {
  for (const [label, payload] of Object.entries(PAYLOADS)) {
    it(`a release file whose backend reference carries ${label}`, async () => {
      await scenario(`release file: backend tag with ${label}`, "bad input", [2], async () => {
        const from = await recordedPair(stack);
        await clearExclusions(sb.git);
        await release(from);
        const text = serverFile(sb.git).replace(/^ {2}backend: .*$/m, `  backend: ${JSON.stringify(`${sb.registry.host}/backend:${from[1]}${payload}`)}`);
        await commitToServer(sb.git, { [RELEASE_PATH]: text }, "hostile release");
        const r = await deploy();
        assert.match(r.output, /REFUSED before any change: .*data\.backend/);
        await release(from);
        return r;
      }, false);
    });
  }

  it("the next clean deploy after the hostile release files converges", async () => {
    const next = await converges();
    for (const row of pending.splice(0)) {
      row.convergedOnNextRun = next.ok;
      row.noSecretInLogs &&= !leaksSecret(sb, next.log);
    }
    assert.ok(next.ok, next.log.slice(-3000));
  });

  it("config values carrying shell, YAML and over-long payloads, all named at once", async () => {
    await scenario("config: hosts, domain, URL and path with hostile values", "bad input", [2], async () => {
      const bad = {
        "homelab:vmHost": `vm.lan${PAYLOADS["command substitution"]}`,
        "homelab:backendAddress": `vm.lan${PAYLOADS.semicolon}`,
        "homelab:frontendHost": `website.lan${PAYLOADS["YAML document marker"]}`,
        "homelab:publicUrl": `http://website.lan/${PAYLOADS.backticks}`,
        "homelab:registry": `127.0.0.1:5000${PAYLOADS["double quote"]}`,
        "homelab:deployDir": `/opt/${PAYLOADS["very long"]}`,
      };
      const saved = await stack.getAllConfig();
      await stack.setAllConfig(Object.fromEntries(Object.entries(bad).map(([k, v]) => [k, { value: v }])));
      try {
        const r = await deploy();
        for (const key of Object.keys(bad)) {
          assert.match(r.output, new RegExp(`${key}: "`), `${key} is named`);
        }
        return r;
      } finally {
        await stack.setAllConfig(Object.fromEntries(Object.keys(bad).map((k) => [k, { value: saved[k].value }])));
      }
    });
  });

  it("a pinned tag carrying a command substitution", async () => {
    await scenario("config: pinned tag with $(…)", "bad input", [2], async () => {
      await stack.setConfig("homelab:backendTag", { value: `${sb.images.backend.v1}$(touch /tmp/pwned)` });
      try {
        const r = await deploy();
        assert.match(r.output, /REFUSED before any change: .*\n.*homelab:backendTag: "/);
        return r;
      } finally {
        await stack.removeConfig("homelab:backendTag");
      }
    });
  });

  it("a backend env value with a line break, never echoed", async () => {
    await scenario("config: backend env value with a line break", "bad input", [2], async () => {
      const saved = (await stack.getAllConfig())["homelab:backendEnv"].value;
      const canary = `canary-${crypto.randomBytes(6).toString("hex")}`;
      await stack.setConfig("homelab:backendEnv", { value: JSON.stringify({ ...(JSON.parse(saved) as Record<string, string>), EXTRA: `${canary}\nINJECTED=1` }), secret: true });
      try {
        const r = await deploy();
        assert.match(r.output, /REFUSED before any change/);
        assert.match(r.output, /EXTRA/);
        assert.ok(!r.output.includes(canary), "the secret value is not printed");
        return r;
      } finally {
        await stack.setConfig("homelab:backendEnv", { value: saved, secret: true });
      }
    });
  });
});
