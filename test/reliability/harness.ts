import { after, before } from "node:test";
import * as assert from "node:assert/strict";
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { Stack } from "@pulumi/pulumi/automation";
import { npmDeploy, DeployRun } from "../../bench/deploy-run";
import { acceptedSessions } from "../../bench/sessions";
import { kubeClient } from "../../sandbox/kube";
import { freePort, runningProcess } from "../../sandbox/processes";
import { Sandbox, sandboxStack, startSandbox, stopSandbox, writeRelease } from "../../sandbox/sandbox";
import { EXIT } from "../../deploy/outcome";
import { ROLLBACK_TRAILER, trailers } from "../../deploy/rollback-commit";
import { remoteFile } from "../../lib/host-script";
import { readReleaseState } from "../../lib/release";
import { execFileSync } from "child_process";
import { RELEASE_PATH, clearExclusions, cloneProject, serverFile } from "../../sandbox/checkout";
import {
  OUTCOMES,
  Pair,
  ScenarioResult,
  childPids,
  commandName,
  leaksSecret,
  markerIntact,
  recordedPair,
  servingPair,
  waitServing,
  writeMarker,
} from "./support";

/*
 * What the reliability files share: a private sandbox per file, the deploy run as a user runs it,
 * and `scenario`, which checks every row's invariants (the data volume keeps its marker, the
 * recorded release is what serves, nothing secret is printed, the next deploy converges with no
 * manual step) and records it in bench/reliability.json.
 */

/** The sandbox, checkout and stack one reliability file runs on, set by its `before` hook. */
class Rig {
  dir!: string;
  projectDir!: string;
  sb!: Sandbox;
  stack!: Stack;
  sshdLog!: string;
}
export const rig = new Rig();

export const STACK = "reliability";
const REPO = path.resolve(__dirname, "../..");
/** The text every backend deploy's SSH command ends with. */
const DEPLOY_SCRIPT = remoteFile("deploy.sh");
const results: ScenarioResult[] = [];
const marker = crypto.randomBytes(8).toString("hex");
/** Rows whose convergence the next batch-level clean run decides. */
export const pending: ScenarioResult[] = [];

export const deploy = (onLine?: (l: string) => void): Promise<DeployRun> => npmDeploy(STACK, rig.projectDir, rig.sb.pulumiEnv, onLine);
export const release = async (p: Pair): Promise<void> => void (await writeRelease(rig.sb, p[0], p[1]));

/**
 * A pair to deploy next: it moves `moves` (both parts when it can) and differs from what runs. A
 * fault can make a rollback exclude good tags; once the fault is gone the suite releases them, as
 * a person would, with a commit.
 */
export async function target(moves: "frontend" | "backend" | "any"): Promise<{ from: Pair; to: Pair }> {
  const from = await recordedPair(rig.stack);
  await clearExclusions(rig.sb.git);
  const pairs: Pair[] = rig.sb.images.frontend.flatMap((f) => [rig.sb.images.backend.v1, rig.sb.images.backend.v2].map((b): Pair => [f, b]));
  const candidates = pairs
    .filter((p) => p[0] !== from[0] || p[1] !== from[1])
    .filter((p) => (moves !== "frontend" || p[0] !== from[0]) && (moves !== "backend" || p[1] !== from[1]))
    .sort((a, b) => Number(b[0] !== from[0] && b[1] !== from[1]) - Number(a[0] !== from[0] && a[1] !== from[1]));
  assert.ok(candidates.length > 0, `no pair moves the ${moves} from ${from.join(" ")}`);
  return { from, to: candidates[0] };
}

/** Waits until `n` more SSH sessions than `base` were accepted by the VM (the backend deploy is the second). */
export async function sessionsReach(base: number, n: number, timeoutMs = 120_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (acceptedSessions(rig.sshdLog) < base + n) {
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
export async function remoteDockerRunning(timeoutMs = 60_000): Promise<number[]> {
  const descendants = (pid: number): number[] => childPids(pid).flatMap((c) => [c, ...descendants(c)]);
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    for (const conn of childPids(rig.sb.vm.pid)) {
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
export async function deployDir(): Promise<string> {
  return (await rig.stack.getAllConfig())["homelab:deployDir"].value;
}

/**
 * Waits until the backend deploy's run on the VM, started after `since`, has printed a line
 * matching `phase` (its progress file), and returns the run's directory. With `running`, a deploy
 * that ends first fails the wait with its output, and the wait lasts as long as the deploy may
 * take to get there on a busy machine.
 */
export async function runReaches(since: number, phase: RegExp, o: { timeoutMs?: number; running?: Promise<DeployRun> } = {}): Promise<string> {
  const timeoutMs = o.timeoutMs ?? (o.running ? 600_000 : 180_000);
  const runs = path.join(await deployDir(), ".release", "runs");
  const end = Date.now() + timeoutMs;
  let ended: DeployRun | undefined;
  void o.running?.then((r) => { ended = r; }, () => undefined);
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
    if (ended) {
      assert.fail(`the deploy ended (exit ${ended.code}) before a backend deploy run reached ${String(phase)}:\n${ended.output.slice(-3000)}`);
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
  for (const conn of childPids(rig.sb.vm.pid)) {
    const tree = [conn, ...descendants(conn)];
    // The session whose command is the deploy script: it ends with the program's remote/deploy.sh.
    if (tree.some((p) => cmdline(p).includes(DEPLOY_SCRIPT))) {
      for (const pid of tree.filter((p) => commandName(p).startsWith("sshd"))) {
        process.kill(pid, "SIGKILL");
        killed.push(pid);
      }
    }
  }
  return killed;
}

/** The registry process: stopped (SIGSTOP) it still accepts connections and never answers. */
export function registryPid(): number {
  const rec = runningProcess(path.join(rig.dir, "sandbox", "registry"), "registry");
  assert.ok(rec, "the sandbox registry runs");
  return rec.pid;
}

/** A deploy moving the backend whose SSH connection is cut once its run reaches `phase`. */
export async function cutAt(phase: RegExp, during?: () => Promise<void>): Promise<DeployRun> {
  const { to } = await target("backend");
  await release(to);
  const since = Date.now();
  const running = deploy();
  const run = await runReaches(since, phase, { running });
  await during?.();
  const killed = cutDeploySession();
  assert.ok(killed.length > 0, `no SSH session ran the backend deploy (run ${run})`);
  const r = await running;
  // The run went on without its connection, and the client picked up its verdict.
  assert.equal(fs.readFileSync(path.join(run, "verdict"), "utf8").trim(), "0", fs.readFileSync(path.join(run, "err"), "utf8"));
  return r;
}

/**
 * Waits until the frontend's Deployment names `tag`: its rollout has started. A deploy that ends
 * first, or never gets there, fails the scenario with its output, and is never left running.
 */
export async function rolloutStarts(tag: string, running: Promise<DeployRun>, timeoutMs = 300_000): Promise<void> {
  const kube = kubeClient(rig.sb.kubeconfig);
  const end = Date.now() + timeoutMs;
  let ended: DeployRun | undefined;
  void running.then((r) => { ended = r; }, () => undefined);
  for (;;) {
    const d = await kube.get<{ spec: { template: { spec: { containers: { image: string }[] } } } }>("/apis/apps/v1/namespaces/website/deployments/frontend").catch(() => undefined);
    if (d?.spec.template.spec.containers[0].image.includes(`:${tag}@`)) {
      return;
    }
    if (ended) {
      assert.fail(`the deploy ended (exit ${ended.code}) before the frontend rollout to ${tag} started:\n${ended.output.slice(-3000)}`);
    }
    if (Date.now() >= end) {
      const r = await running;
      assert.fail(`the frontend rollout to ${tag} did not start within ${timeoutMs / 1000}s; the deploy then ended (exit ${r.code}):\n${r.output.slice(-3000)}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The newest commit on the git server's branch is one of the deploy's rollback commits. */
export function rollbackCommitOnTop(): boolean {
  const body = execFileSync("git", ["--git-dir", rig.sb.git.repository, "log", "-1", "--format=%B", rig.sb.git.branch], { encoding: "utf8" });
  return ROLLBACK_TRAILER in trailers(body);
}

/** The pair the release file on the git server names. */
export function releaseInGit(): Pair {
  const { tags } = readReleaseState(serverFile(rig.sb.git, RELEASE_PATH), "release file");
  return [tags.frontend, tags.backend];
}

/**
 * The next deploy without the fault, then a preview: converged when it exits 0, the preview
 * changes nothing and the release in git is what the stack records and what serves (a release a
 * fault interrupted is resumed, not abandoned).
 */
export async function converges(): Promise<{ ok: boolean; log: string }> {
  const r = await deploy();
  if (r.code !== 0) {
    return { ok: false, log: r.output };
  }
  const pv = await rig.stack.preview({ color: "never" });
  const changes = Object.entries(pv.changeSummary).filter(([op, n]) => op !== "same" && (n ?? 0) > 0);
  const recorded = await recordedPair(rig.stack);
  const inGit = releaseInGit();
  const resumed = recorded[0] === inGit[0] && recorded[1] === inGit[1];
  const serving = await waitServing(rig.sb, recorded);
  return { ok: changes.length === 0 && serving && resumed, log: `${r.output}\nchanges: ${JSON.stringify(changes)}, serving recorded pair: ${serving}, recorded ${recorded.join(" ")} = release in git ${inGit.join(" ")}: ${resumed}` };
}

/**
 * Runs one scenario: `act` deploys with its fault (and undoes the fault), then every invariant is
 * checked, the row recorded, and asserted.
 */
export async function scenario(name: string, kind: ScenarioResult["kind"], allowed: number[], act: () => Promise<DeployRun>, converge = true): Promise<void> {
  const t0 = Date.now();
  const before = await recordedPair(rig.stack);
  let r: DeployRun;
  try {
    r = await act();
  } catch (e) {
    // A row that failed part-way leaves no deploy running to refuse the next row's.
    await killDeploys();
    throw e;
  }
  const after = await recordedPair(rig.stack);
  const blamedRelease = rollbackCommitOnTop();
  // A platform failure leaves parts of the release as far as they got; the next run resumes it,
  // and \`converges\` checks that what serves then is the recorded release.
  const releaseServing = r.code === EXIT.platform || ((r.code === 0 || (after[0] === before[0] && after[1] === before[1])) && (await waitServing(rig.sb, after)));
  // Input refused before the engine ran changes nothing, so one clean run after a batch of them stands for each.
  const next = converge ? await converges() : { ok: true, log: "" };
  const row: ScenarioResult = {
    scenario: name,
    kind,
    outcome: OUTCOMES[r.code] ?? `exit ${r.code}`,
    exitCode: r.code,
    dataIntact: markerIntact(rig.sb, marker),
    releaseServing,
    noSecretInLogs: !leaksSecret(rig.sb, r.output) && !leaksSecret(rig.sb, next.log),
    convergedOnNextRun: next.ok,
    blamedRelease,
    seconds: Math.round((Date.now() - t0) / 100) / 10,
    detail: r.output.split("\n").filter((l) => /^deploy: (REFUSED|FAILED|ROLLED BACK|PROMOTED|ROLLBACK FAILED|PLATFORM FAILURE|the rollback runs|removed the stack's update lock|stopped \d+ plugin)|^ {2}- homelab:|^deploy: .*another|env\.EXTRA/.test(l)).slice(0, 4).join(" / ").slice(0, 400),
  };
  results.push(row);
  if (!converge) {
    pending.push(row);
  }
  process.stderr.write(`reliability: ${name}: ${row.outcome} in ${row.seconds}s\n`);
  assert.ok(allowed.includes(r.code), `${name}: exit ${r.code}, expected ${allowed.join(" or ")}:\n${r.output.slice(-3000)}`);
  assert.ok(row.dataIntact, `${name}: the data volume lost its marker`);
  assert.ok(row.releaseServing, `${name}: the recorded release (${after.join(" ")}) is not what serves (${String(await servingPair(rig.sb))})`);
  assert.ok(row.noSecretInLogs, `${name}: a secret was printed`);
  assert.ok(row.convergedOnNextRun, `${name}: the next deploy did not converge:\n${next.log.slice(-3000)}`);
  if (kind === "fault") {
    assert.ok(!blamedRelease, `${name}: a rollback commit blamed a healthy release for a fault of the platform:\n${r.output.slice(-3000)}`);
  }
}



/** SIGKILLs every running `npm run deploy` of this suite with all it started (pulumi included). */
export async function killDeploys(): Promise<void> {
  for (const pid of deployTrees()) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // gone already
    }
  }
  await new Promise((r) => setTimeout(r, 500));
}

/** A process as /proc names it: its PID and its start time, so a reused PID is never taken for it. */
export interface ProcessRef {
  readonly pid: number;
  readonly started: string;
}

function procStat(pid: number): string[] | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    // Fields after the command name: state is the first, the process group the third, the start time the 20th.
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  } catch {
    return undefined;
  }
}

/** The running `npm run deploy` processes of this suite and everything they started. */
function deployTrees(): number[] {
  const descendants = (pid: number): number[] => childPids(pid).flatMap((c) => [c, ...descendants(c)]);
  // npm retitles itself ("npm run deploy --stack …"), dropping "-s" and "--".
  const roots = childPids(process.pid).filter((p) => {
    try {
      return /\bdeploy\b.* --stack /.test(fs.readFileSync(`/proc/${p}/cmdline`, "utf8").replace(/\0/g, " "));
    } catch {
      return false;
    }
  });
  return roots.flatMap((r) => [r, ...descendants(r)]);
}

/** The processes of the running deploy that the engine started in process groups of their own (its plugins). */
export function deployPlugins(): ProcessRef[] {
  const group = procStat(process.pid)?.[2];
  return deployTrees().flatMap((pid) => {
    const st = procStat(pid);
    return st && st[2] !== group ? [{ pid, started: st[19] }] : [];
  });
}

/**
 * SIGKILLs the running deploy's process group, as a cancelled CI job or a closed terminal does:
 * npm, the deploy, its engines. The plugins the engine started in groups of their own are left
 * running, as they are then; they are returned.
 */
export async function killDeployGroup(): Promise<ProcessRef[]> {
  const group = procStat(process.pid)?.[2];
  const left = deployPlugins();
  for (const pid of deployTrees()) {
    if (procStat(pid)?.[2] === group) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // gone already
      }
    }
  }
  await new Promise((r) => setTimeout(r, 500));
  return left;
}

/** Those of `procs` still running (the same PID and start time), zombies excepted. */
export function stillRunning(procs: readonly ProcessRef[]): ProcessRef[] {
  return procs.filter((p) => {
    const st = procStat(p.pid);
    return st !== undefined && st[0] !== "Z" && st[19] === p.started;
  });
}

/**
 * Puts `rows` into the summary file in place of rows of the same scenario. The files running side
 * by side take turns (mkdir is atomic); a lock older than a minute is a killed run's and is taken.
 */
async function writeRows(file: string, rows: readonly ScenarioResult[]): Promise<void> {
  const lock = `${file}.lock`;
  for (;;) {
    try {
      fs.mkdirSync(lock);
      break;
    } catch {
      const age = Date.now() - (fs.statSync(lock, { throwIfNoEntry: false })?.mtimeMs ?? Date.now());
      if (age > 60_000) {
        fs.rmSync(lock, { recursive: true, force: true });
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  try {
    const earlier = fs.existsSync(file) ? (JSON.parse(fs.readFileSync(file, "utf8")) as ScenarioResult[]) : [];
    const ran = new Set(rows.map((r) => r.scenario));
    fs.writeFileSync(file, JSON.stringify([...earlier.filter((r) => !ran.has(r.scenario)), ...rows], null, 2) + "\n");
  } finally {
    fs.rmSync(lock, { recursive: true, force: true });
  }
}

/**
 * Registers the hooks of one reliability file: a private sandbox (its deploy user named after
 * `part`, so the files run side by side), a checkout and a first promoted release; afterwards its
 * rows go into bench/reliability.json and everything is removed.
 */
export function useReliabilitySandbox(part: string): void {
  before(async () => {
    rig.dir = fs.mkdtempSync(path.join(os.tmpdir(), `homelab-rel-${part}-`));
    // Two runs at once on one machine (two checkouts) need deploy users of their own.
    rig.sb = await startSandbox(path.join(rig.dir, "sandbox"), { vmUser: `${process.env.HOMELAB_REL_VM_USER ?? "homelab-rel"}-${part}`, network: "isolated", backendPort: await freePort(), log: () => undefined });
    rig.projectDir = cloneProject(rig.sb.git, path.join(rig.dir, "project"));
    rig.sshdLog = path.join(rig.dir, "sandbox", "vm", "sshd.log");
    rig.stack = await sandboxStack(rig.sb, STACK, rig.projectDir);
    // One frontend replica on the real node: a rollout waits for one readiness probe (10 s initial
    // delay). The first deploy is set-up, not a scenario: it runs while every suite's sandbox and
    // first deploy start on the same two cores, so it gets the sandbox's own deadline (120 s).
    await rig.stack.setAllConfig({ "homelab:gateDeadlineSeconds": { value: "120" }, "homelab:frontendReplicas": { value: "1" } });
    await release([rig.sb.images.frontend[0], rig.sb.images.backend.v1]);
    const first = await deploy();
    assert.equal(first.code, 0, first.output);
    // 40 s keeps the fault rows short and still leaves a busy machine's node room to get a pod ready.
    await rig.stack.setConfig("homelab:gateDeadlineSeconds", { value: process.env.HOMELAB_REL_GATE_DEADLINE ?? "40" });
    writeMarker(rig.sb, marker);
  });

  after(async () => {
    try {
      // A run of some rows (--test-name-pattern) replaces those rows and keeps the others.
      await writeRows(path.join(REPO, "bench", "reliability.json"), results);
      // Destroy keeps the data volume; stopping the sandbox removes the engine's data with it.
      await rig.stack?.destroy({ color: "never" }).catch(() => undefined);
    } finally {
      if (rig.dir) {
        await stopSandbox(path.join(rig.dir, "sandbox"), () => undefined);
        fs.rmSync(rig.dir, { recursive: true, force: true });
      }
    }
  });
}
