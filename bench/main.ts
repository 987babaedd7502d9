import { execFile, execFileSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { promisify } from "util";
import { Stack } from "@pulumi/pulumi/automation";
import { kubeClient } from "../sandbox/kube";
import { freePort } from "../sandbox/processes";
import { Sandbox, sandboxStack, startSandbox, stopSandbox, writeRelease } from "../sandbox/sandbox";
import { clearExclusions, cloneProject } from "../sandbox/checkout";
import { npmDeploy } from "./deploy-run";
import { parseTimings } from "../deploy/phases";
import { prepareFloor, removeFloor, servesText, servesVersion } from "./floor";
import { prepareAnsiblePeer, removeAnsiblePeer } from "./peers/ansible";
import { prepareFluxPeer, removeFluxPeer } from "./peers/flux";
import { ensureAnsible } from "./peers/setup";
import { profileDir, withProfiles } from "./profile";
import { renderReport } from "./report";
import { BenchResults, ScalePoint } from "./results";
import { scalePoint, scaleStack } from "./scale-stack";
import { countSessions } from "./sessions";
import { Figure, figure, ratio } from "./stats";
import { Timeline, criticalPath, slowestSteps, stageSeconds, timed } from "./timeline";
import { CACHE as TRANSPILE_CACHE } from "../bin/transpile";

/*
 * `npm run bench`: the program's costs on the sandbox against the floor of doing the same by hand,
 * every figure a median over --runs runs, every ratio taken run by run. Writes bench/results.json
 * and BENCHMARKS.md.
 *
 *   --runs N            runs per figure (default 5)
 *   --frontends 1,5,20  scale points: frontend workloads (with one service)
 *   --services 1,3,10   scale points: services on the VM (with one frontend)
 *   --only a,b          sections: promotion, noop, rollback, soak, peers, evaluation, scale (default all)
 *   --profiles a,b      workload profiles of the peers section: trivial, seed-shaped (default both)
 *   --dir DIR --keep    reuse / keep a sandbox directory (default: a fresh temporary one, removed)
 *   --out DIR           where results.json and BENCHMARKS.md go (default: the repository)
 *   --report            only render BENCHMARKS.md again from the results.json in --out
 */

const run = promisify(execFile);
const REPO = path.resolve(__dirname, "..");
const STACK = "bench";
/** The frontend rollout's surge (lib/config.ts): "1" is the one-pod-at-a-time rollout it replaced. */
const SURGE_KEY = "homelab:frontendRolloutSurge";

interface Args {
  runs: number;
  frontends: number[];
  services: number[];
  only: Set<string>;
  profiles: Set<string>;
  dir?: string;
  keep: boolean;
  out: string;
  report: boolean;
}

function parseArgs(argv: string[]): Args {
  const a: Args = { runs: 5, frontends: [1, 5, 20], services: [1, 3, 10], only: new Set(["promotion", "noop", "rollback", "soak", "peers", "evaluation", "scale"]), profiles: new Set(["trivial", "seed-shaped"]), keep: false, out: REPO, report: false };
  const list = (v: string | undefined): number[] => (v ?? "").split(",").map(Number).filter((n) => Number.isInteger(n) && n > 0);
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    const v = (): string => {
      if (argv[i + 1] === undefined) {
        throw new Error(`bench: ${k} needs a value`);
      }
      return argv[++i];
    };
    if (k === "--runs") {
      a.runs = Math.max(1, Number(v()));
    } else if (k === "--frontends") {
      a.frontends = list(v());
    } else if (k === "--services") {
      a.services = list(v());
    } else if (k === "--only") {
      a.only = new Set(v().split(","));
    } else if (k === "--profiles") {
      a.profiles = new Set(v().split(","));
    } else if (k === "--dir") {
      a.dir = path.resolve(v());
    } else if (k === "--report") {
      a.report = true;
    } else if (k === "--keep") {
      a.keep = true;
    } else if (k === "--out") {
      a.out = path.resolve(v());
    } else {
      throw new Error(`bench: unknown argument ${k}`);
    }
  }
  return a;
}

const log = (line: string): void => void process.stderr.write(`bench: ${line}\n`);

async function waitUntil(check: () => Promise<boolean>, what: string, timeoutMs = 180_000): Promise<number> {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) {
      throw new Error(`bench: ${what} not reached within ${timeoutMs / 1000}s`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return Date.now();
}

async function evaluation(mode: "program" | "empty"): Promise<number> {
  const r = await run(process.execPath, ["--import", "tsx", path.join(__dirname, "evaluate.ts"), mode], { cwd: REPO });
  return (JSON.parse(r.stdout) as { seconds: number }).seconds;
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  if (args.report) {
    const results = JSON.parse(fs.readFileSync(path.join(args.out, "bench", "results.json"), "utf8")) as BenchResults;
    fs.writeFileSync(path.join(args.out, "BENCHMARKS.md"), renderReport(results));
    return;
  }
  const started = Date.now();
  const machine = {
    cpu: os.cpus()[0]?.model ?? "unknown",
    cores: os.cpus().length,
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    kernel: os.release(),
    node: process.version,
    loadavgAtStart: os.loadavg().map((x) => Math.round(x * 100) / 100),
  };
  const base = args.dir ?? fs.mkdtempSync(path.join(os.tmpdir(), "homelab-bench-"));
  const sandboxDir = path.join(base, "sandbox");
  const projectDir = path.join(base, "project");
  let sb: Sandbox | undefined;
  const stacks: Stack[] = [];
  try {
    log(`sandbox in ${sandboxDir}`);
    sb = await startSandbox(sandboxDir, { vmUser: "homelab-bench", network: "isolated", backendPort: await freePort(), log: () => undefined });
    // The seed-shaped profile's images join the demo images where the peers section runs.
    const built = args.only.has("peers") ? await withProfiles(sb, profileDir(base)) : undefined;
    const s: Sandbox = built ? { ...sb, images: built.images } : sb;
    if (!fs.existsSync(projectDir)) {
      cloneProject(s.git, projectDir);
    }
    const stack = await sandboxStack(s, STACK, projectDir);
    stacks.push(stack);
    await stack.setAllConfig({ "homelab:gateDeadlineSeconds": { value: "20" } });
    const sshdLog = path.join(s.vm.workDir, "..", "sshd.log");
    if (!fs.existsSync(sshdLog)) {
      throw new Error(`bench: no sshd log at ${sshdLog}`);
    }
    const A: [string, string] = [s.images.frontend[0], s.images.backend.v1];
    const B: [string, string] = [s.images.frontend[1], s.images.backend.v2];
    const backendUrl = `http://${s.backendHost}:${s.backendPort}/api/health`;
    const env = s.pulumiEnv;
    // A release is a commit on the git host; a bare `pulumi up` reads the checkout, so it pulls first.
    const release = async (p: [string, string]): Promise<void> => {
      await writeRelease(s, p[0], p[1]);
      execFileSync("git", ["pull", "--quiet", "--ff-only"], { cwd: projectDir, env: { ...process.env, ...env } });
    };

    const results: BenchResults = { date: new Date().toISOString(), machine, runs: args.runs, seconds: 0 };
    // Written after every section, so an interrupted run still leaves what it measured.
    const save = (): void => {
      results.seconds = Math.round((Date.now() - started) / 1000);
      fs.writeFileSync(path.join(args.out, "bench", "results.json"), JSON.stringify(results, null, 2) + "\n");
      fs.writeFileSync(path.join(args.out, "BENCHMARKS.md"), renderReport(results));
    };

    // Warm-up: the stack is created on pair A, then a rollback so the exclusion list is set
    // before anything is measured.
    log("warm-up: first deploy, one rollback");
    await release(A);
    await npmDeploy(STACK, projectDir, env).then((r) => must(r.code === 0, `first deploy exited ${r.code}:\n${r.output}`));
    await release([B[0], s.images.backend.crash]);
    await npmDeploy(STACK, projectDir, env).then((r) => must(r.code === 3, `warm-up rollback exited ${r.code}:\n${r.output}`));
    await clearExclusions(s.git);
    await release(A);
    await timed(stack, "up");

    /**
     * A release whose backend crashes on start, its frontend `frontendTag`: the frontend moves, the
     * backend fails, both return to `good`. Seconds from the verdict (`FAILED`) until the page,
     * the backend on the VM and `/api/health` through the ingress all serve `good`, and until the
     * deploy exits; the failed `up`'s own seconds. The crashing tag is left excluded.
     */
    const rollback = async (frontendTag: string, good: [string, string]): Promise<{ toHealthy: number; toExit: number; failedUp: number }> => {
      await release([frontendTag, s.images.backend.crash]);
      let verdict = 0;
      let healthy: Promise<number> | undefined;
      const onGood = async (): Promise<boolean> =>
        (await servesVersion(backendUrl, good[1])) && (await servesVersion(`${s.ingressUrl}/api/health`, good[1])) && (await servesText(`${s.ingressUrl}/`, good[0]));
      const r = await npmDeploy(STACK, projectDir, env, (line) => {
        if (!verdict && line.includes("deploy: FAILED after")) {
          verdict = Date.now();
          healthy = waitUntil(onGood, "both on the previous pair");
        }
      });
      const exited = Date.now();
      must(r.code === 3 && verdict > 0 && healthy !== undefined, `rollback deploy exited ${r.code}:\n${r.output}`);
      const failedUp = /FAILED after ([0-9.]+)s/.exec(r.output);
      return { toHealthy: ((await healthy!) - verdict) / 1000, toExit: (exited - verdict) / 1000, failedUp: failedUp ? Number(failedUp[1]) : NaN };
    };

    const live = await kubeClient(s.kubeconfig).get<Record<string, unknown>>("/apis/apps/v1/namespaces/website/deployments/frontend");
    const floor = await prepareFloor(s, path.join(base, "floor"), await freePort(), live!);
    await floor.frontend(A[0]);
    await floor.backend(A[1]);

    const empty = await scaleStack(s, path.join(base, "scale-project"), "providers-only");
    stacks.push(empty);
    await empty.setConfig("scale:empty", { value: "true" });
    await empty.up({ color: "never" });

    if (args.only.has("promotion") || args.only.has("noop") || args.only.has("rollback")) {
      const p = { deployPhases: [] as Record<string, number>[], cliUp: [] as number[], floorFrontend: [] as number[], floorBackend: [] as number[], floor: [] as number[], up: [] as number[], deploy: [] as number[], upSessions: [] as number[], deploySessions: [] as number[], timelines: [] as Timeline[] };
      const n = { deploy: [] as number[], deployPhases: [] as Record<string, number>[], up: [] as number[], preview: [] as number[], previewFresh: [] as number[], empty: [] as number[], sessions: [] as number[], timelines: [] as Timeline[] };
      const rb = { toHealthy: [] as number[], toExit: [] as number[], failedUp: [] as number[], floor: [] as number[] };
      for (let i = 0; i < args.runs; i++) {
        log(`run ${i + 1}/${args.runs}`);
        // Floor: both moved by hand to B, then back to A (the way the program moves them below).
        const ff = await floor.frontend(B[0]);
        const fb = await floor.backend(B[1]);
        p.floorFrontend.push(ff);
        p.floorBackend.push(fb);
        p.floor.push(ff + fb);
        const back = (await floor.frontend(A[0])) + (await floor.backend(A[1]));

        // Promotion with `pulumi up` to B, then with `npm run deploy` back to A.
        await release(B);
        const up = await countSessions(sshdLog, () => timed(stack, "up"));
        must(up.result.changes.update !== undefined, "promotion changed nothing");
        p.up.push(up.result.seconds);
        p.upSessions.push(up.sessions);
        p.timelines.push(up.result);
        await release(A);
        const dep = await countSessions(sshdLog, () => npmDeploy(STACK, projectDir, env));
        must(dep.result.code === 0, `deploy exited ${dep.result.code}:\n${dep.result.output}`);
        p.deploy.push(dep.result.seconds);
        p.deployPhases.push(parseTimings(dep.result.output));
        p.deploySessions.push(dep.sessions);
        // The same change with the CLI as a user runs it (`pulumi up --yes` previews first), to B and back to A.
        await release(B);
        const cliStarted = Date.now();
        await run("pulumi", ["up", "--yes", "--non-interactive", "--stack", STACK, "--cwd", projectDir], { env: { ...process.env, ...env }, maxBuffer: 64 * 1024 * 1024 });
        p.cliUp.push((Date.now() - cliStarted) / 1000);
        await release(A);
        await timed(stack, "up");

        // No-op: nothing changed since the deploy above.
        const pv = await timed(stack, "preview");
        must(Object.keys(pv.changes).length === 0, `no-op preview shows changes: ${JSON.stringify(pv.changes)}`);
        n.preview.push(pv.seconds);
        // The same preview with the program's transpile cache emptied, as the first run after a change to every file.
        fs.rmSync(TRANSPILE_CACHE, { recursive: true, force: true });
        n.previewFresh.push((await timed(stack, "preview")).seconds);
        const nu = await countSessions(sshdLog, () => timed(stack, "up"));
        must(Object.keys(nu.result.changes).length === 0, `no-op up changed ${JSON.stringify(nu.result.changes)}`);
        n.up.push(nu.result.seconds);
        n.sessions.push(nu.sessions);
        n.timelines.push(nu.result);
        n.empty.push((await timed(empty, "preview")).seconds);
        // The guarded deploy of nothing new, right after the no-op `up`.
        const nd = await npmDeploy(STACK, projectDir, env);
        must(nd.code === 0, `no-op deploy exited ${nd.code}:\n${nd.output}`);
        n.deploy.push(nd.seconds);
        n.deployPhases.push(parseTimings(nd.output));
        log(`run ${i + 1}: floor ${ff.toFixed(1)}+${fb.toFixed(1)}s, up ${up.result.seconds.toFixed(1)}s (${up.sessions} ssh), deploy ${dep.result.seconds.toFixed(1)}s, no-op preview ${pv.seconds.toFixed(1)}s (transpile cache empty ${n.previewFresh[i].toFixed(1)}s), up ${nu.result.seconds.toFixed(1)}s, providers-only preview ${n.empty[i].toFixed(1)}s, no-op deploy ${n.deploy[i].toFixed(1)}s`);

        if (args.only.has("rollback")) {
          const r = await rollback(B[0], A);
          rb.toHealthy.push(r.toHealthy);
          rb.toExit.push(r.toExit);
          rb.failedUp.push(r.failedUp);
          rb.floor.push(back);
          log(`run ${i + 1}: rollback verdict → healthy ${rb.toHealthy[i].toFixed(1)}s, → exit ${rb.toExit[i].toFixed(1)}s`);
          // The crashing tag is excluded now; a person releases it again for the next run.
          await clearExclusions(s.git);
          await release(A);
          await timed(stack, "up");
        }
      }
      const stageRuns: Record<string, number[]> = {};
      for (const t of p.timelines) {
        for (const [k, v] of Object.entries(stageSeconds(t))) {
          (stageRuns[k] ??= []).push(v);
        }
      }
      results.promotion = {
        floor: { frontend: figure(p.floorFrontend), backend: figure(p.floorBackend), total: figure(p.floor) },
        up: figure(p.up),
        upRatio: ratio(p.up, p.floor),
        deploy: figure(p.deploy),
        deployRatio: ratio(p.deploy, p.floor),
        deployOverUp: ratio(p.deploy, p.up),
        cliUp: figure(p.cliUp),
        deployOverCliUp: ratio(p.deploy, p.cliUp),
        deployPhases: phaseFigures(p.deployPhases),
        stages: Object.fromEntries(Object.entries(stageRuns).map(([k, v]) => [k, figure(v)])),
        stageRatios: {
          frontend: ratio(stageRuns.frontend ?? [], p.floorFrontend),
          backend: ratio(stageRuns.backend ?? [], p.floorBackend),
        },
        sshSessions: { up: p.upSessions, deploy: p.deploySessions },
        slowestSteps: slowestSteps(medianRun(p.timelines)),
        timeline: criticalPath(medianRun(p.timelines)),
      };
      results.noop = {
        up: figure(n.up),
        preview: figure(n.preview),
        emptyPreview: figure(n.empty),
        upRatio: ratio(n.up, n.empty),
        previewRatio: ratio(n.preview, n.empty),
        previewFreshTranspile: figure(n.previewFresh),
        freshTranspileCost: ratio(n.previewFresh, n.preview),
        sshSessions: n.sessions,
        upStages: stageSeconds(medianRun(n.timelines)),
        deploy: figure(n.deploy),
        deployOverUp: ratio(n.deploy, n.up),
        deployPhases: phaseFigures(n.deployPhases),
      };
      save();
      if (args.only.has("rollback")) {
        results.rollback = {
          verdictToHealthy: figure(rb.toHealthy),
          verdictToExit: figure(rb.toExit),
          failedUp: figure(rb.failedUp),
          floor: figure(rb.floor),
          ratio: ratio(rb.toHealthy, rb.floor),
        };
      }
    }

    if (args.only.has("soak")) {
      // The promotion with the production soak (Pulumi.production.yaml) and with the sandbox's
      // short one, run by run, so the soak's cost is a chosen number, not a surprise.
      const key = "homelab:gateSoakSeconds";
      const short = await stack.getConfig(key);
      const production = 60;
      const q = { with: [] as number[], without: [] as number[] };
      try {
        for (let i = 0; i < args.runs; i++) {
          await stack.setConfig(key, { value: String(production) });
          await release(B);
          const w = await timed(stack, "up");
          must(w.changes.update !== undefined, "soak: promotion changed nothing");
          q.with.push(w.seconds);
          await stack.setConfig(key, short);
          await release(A);
          const wo = await timed(stack, "up");
          must(wo.changes.update !== undefined, "soak: promotion changed nothing");
          q.without.push(wo.seconds);
          log(`soak run ${i + 1}: up with a ${production}s soak ${w.seconds.toFixed(1)}s, with ${short.value}s ${wo.seconds.toFixed(1)}s`);
        }
      } finally {
        await stack.setConfig(key, short);
      }
      results.soak = {
        // Alone, the section is merged into an earlier run's results: it carries its own date.
        ...(args.only.size === 1 ? { date: new Date().toISOString() } : {}),
        seconds: production,
        shortSeconds: Number(short.value),
        with: figure(q.with),
        without: figure(q.without),
        cost: figure(q.with.map((w, i) => w - q.without[i])),
        ratio: ratio(q.with, q.without),
      };
      save();
    }

    if (args.only.has("peers") && built) {
      // The tools a homelab user would run instead, on the same sandbox in the same run: each
      // moved to B and back to A next to the program and the floor, ratios run by run; once per
      // workload profile.
      const ansible = ensureAnsible(log);
      must(ansible.kubernetesClient, "peers: the kubernetes client does not import in the Ansible venv");
      const ap = await prepareAnsiblePeer(s, ansible, path.join(base, "ansible"), await freePort(), live!);
      const fp = await prepareFluxPeer(s, live!);
      results.peers = { ansible: { version: ansible.version, kubernetesClient: ansible.kubernetesClient }, profiles: [] };
      // The seed-shaped backend alone takes 20 s to answer: the gates get the seeds' own room.
      await stack.setAllConfig({ "homelab:gateDeadlineSeconds": { value: "120" } });
      for (const prof of built.profiles.filter((p) => args.profiles.has(p.name))) {
        const [pa, pb] = [prof.a, prof.b];
        log(`peers (${prof.name}): every one on pair A first`);
        // The program pulls B once, so no one's first move to it is also the node's first pull.
        await release(pb);
        await timed(stack, "up");
        await release(pa);
        await timed(stack, "up");
        await floor.frontend(pa[0]);
        await floor.backend(pa[1]);
        await ap.promotion(pa[0], pa[1]);
        await fp.frontend(pa[0]);
        const q = {
          floorFrontend: [] as number[], floorBackend: [] as number[], floor: [] as number[], floorBack: [] as number[],
          ourFrontend: [] as number[], ourBackend: [] as number[], up: [] as number[], upBack: [] as number[], timelines: [] as Timeline[], noop: [] as Timeline[],
          flux: [] as number[], fluxBack: [] as number[], ansibleFrontend: [] as number[], ansibleBackend: [] as number[], ansible: [] as number[], ansibleBack: [] as number[],
          rollback: [] as number[], rollbackExit: [] as number[], oneAtATime: [] as number[], oneAtATimeFrontend: [] as number[],
        };
        for (let i = 0; i < args.runs; i++) {
          log(`peers (${prof.name}): run ${i + 1}/${args.runs}`);
          const ff = await floor.frontend(pb[0]);
          const fb = await floor.backend(pb[1]);
          q.floorFrontend.push(ff);
          q.floorBackend.push(fb);
          q.floor.push(ff + fb);
          await release(pb);
          const up = await timed(stack, "up");
          must(up.changes.update !== undefined, "peers: promotion changed nothing");
          const st = stageSeconds(up);
          q.up.push(up.seconds);
          q.timelines.push(up);
          q.ourFrontend.push(st.frontend ?? NaN);
          q.ourBackend.push(st.backend ?? NaN);
          q.flux.push(await fp.frontend(pb[0]));
          const pr = await ap.promotion(pb[0], pb[1]);
          q.ansible.push(pr.seconds);
          q.ansibleFrontend.push(pr.plays.frontend ?? NaN);
          q.ansibleBackend.push(pr.plays.backend ?? NaN);
          // Back to the previous pair, each the way it would re-apply it.
          q.floorBack.push((await floor.frontend(pa[0])) + (await floor.backend(pa[1])));
          await release(pa);
          const back = await timed(stack, "up");
          must(back.changes.update !== undefined, "peers: the move back changed nothing");
          q.upBack.push(back.seconds);
          q.fluxBack.push(await fp.frontend(pa[0]));
          q.ansibleBack.push((await ap.promotion(pa[0], pa[1])).seconds);
          const nu = await timed(stack, "up");
          must(Object.keys(nu.changes).length === 0, `peers: no-op up changed ${JSON.stringify(nu.changes)}`);
          q.noop.push(nu);
          // A release whose backend crashes, rolled back by the guarded deploy; the peers' and the
          // floor's counterpart is re-applying the previous pair, measured above.
          const rb = await rollback(pb[0], pa);
          q.rollback.push(rb.toHealthy);
          q.rollbackExit.push(rb.toExit);
          await clearExclusions(s.git);
          await release(pa);
          await timed(stack, "up");
          // The same promotion with the frontend's old rollout, one new pod after another: the
          // change this section measures, before (here) and after (the promotion above).
          await stack.setConfig(SURGE_KEY, { value: "1" });
          await release(pb);
          const one = await timed(stack, "up");
          q.oneAtATime.push(one.seconds);
          q.oneAtATimeFrontend.push(stageSeconds(one).frontend ?? NaN);
          await stack.removeConfig(SURGE_KEY);
          await release(pa);
          await timed(stack, "up");
          log(
            `peers (${prof.name}): run ${i + 1}: floor ${ff.toFixed(1)}+${fb.toFixed(1)}s; up ${up.seconds.toFixed(1)}s (frontend ${q.ourFrontend[i].toFixed(1)}s, backend ${q.ourBackend[i].toFixed(1)}s); ` +
              `Flux frontend ${q.flux[i].toFixed(1)}s; Ansible ${pr.seconds.toFixed(1)}s (frontend ${q.ansibleFrontend[i].toFixed(1)}s, backend ${q.ansibleBackend[i].toFixed(1)}s); ` +
              `back: floor ${q.floorBack[i].toFixed(1)}s, up ${back.seconds.toFixed(1)}s, Flux ${q.fluxBack[i].toFixed(1)}s, Ansible ${q.ansibleBack[i].toFixed(1)}s; ` +
              `rollback verdict → healthy ${rb.toHealthy.toFixed(1)}s; up with one new pod at a time ${one.seconds.toFixed(1)}s (frontend ${q.oneAtATimeFrontend[i].toFixed(1)}s)`,
          );
        }
        const stageRuns: Record<string, number[]> = {};
        for (const t of q.timelines) {
          for (const [k, v] of Object.entries(stageSeconds(t))) {
            (stageRuns[k] ??= []).push(v);
          }
        }
        results.peers.profiles.push({
          name: prof.name,
          description: prof.description,
          floor: { frontend: figure(q.floorFrontend), backend: figure(q.floorBackend), total: figure(q.floor), back: figure(q.floorBack) },
          frontend: {
            ours: figure(q.ourFrontend), flux: figure(q.flux), ansible: figure(q.ansibleFrontend),
            oursOverFlux: ratio(q.ourFrontend, q.flux), oursOverAnsible: ratio(q.ourFrontend, q.ansibleFrontend), oursOverFloor: ratio(q.ourFrontend, q.floorFrontend),
          },
          backend: { ours: figure(q.ourBackend), ansible: figure(q.ansibleBackend), oursOverAnsible: ratio(q.ourBackend, q.ansibleBackend), oursOverFloor: ratio(q.ourBackend, q.floorBackend) },
          promotion: { ours: figure(q.up), ansible: figure(q.ansible), oursOverAnsible: ratio(q.up, q.ansible), oursOverFloor: ratio(q.up, q.floor) },
          back: { ours: figure(q.upBack), ansible: figure(q.ansibleBack), flux: figure(q.fluxBack), oursOverAnsible: ratio(q.upBack, q.ansibleBack), oursOverFloor: ratio(q.upBack, q.floorBack) },
          stages: Object.fromEntries(Object.entries(stageRuns).map(([k, v]) => [k, figure(v)])),
          noop: {
            up: figure(q.noop.map((t) => t.seconds)),
            before: figure(q.noop.map((t) => stageSeconds(t)["before the first step"] ?? NaN)),
            after: figure(q.noop.map((t) => stageSeconds(t)["after the last step"] ?? NaN)),
          },
          rollback: {
            verdictToHealthy: figure(q.rollback),
            verdictToExit: figure(q.rollbackExit),
            oursOverFloor: ratio(q.rollback, q.floorBack),
            oursOverAnsible: ratio(q.rollback, q.ansibleBack),
          },
          phases: { promotion: criticalPath(medianRun(q.timelines)), noop: criticalPath(medianRun(q.noop)) },
          rolloutSurge: {
            oneAtATime: figure(q.oneAtATime),
            allAtOnce: figure(q.up),
            frontendOneAtATime: figure(q.oneAtATimeFrontend),
            frontendAllAtOnce: figure(q.ourFrontend),
            cut: ratio(q.up, q.oneAtATime),
          },
        });
        save();
      }
      // The program back on the trivial pair A, where the sections after this one start.
      await stack.setAllConfig({ "homelab:gateDeadlineSeconds": { value: "20" } });
      await release(A);
      await timed(stack, "up");
      await floor.frontend(A[0]);
      await floor.backend(A[1]);
      await removeAnsiblePeer(s);
      await removeFluxPeer(s);
    }

    if (args.only.has("evaluation")) {
      log("evaluation under mocks");
      const prog: number[] = [];
      const emp: number[] = [];
      for (let i = 0; i < args.runs; i++) {
        emp.push(await evaluation("empty"));
        prog.push(await evaluation("program"));
      }
      results.evaluation = { program: figure(prog), empty: figure(emp), ratio: ratio(prog, emp) };
      save();
    }

    if (args.only.has("scale")) {
      const points: [number, number][] = [];
      for (const f of args.frontends) {
        points.push([f, args.services[0] ?? 1]);
      }
      for (const m of args.services.slice(1)) {
        points.push([args.frontends[0] ?? 1, m]);
      }
      const scale = await scaleStack(s, path.join(base, "scale-project"), "scale");
      stacks.push(scale);
      const out: ScalePoint[] = [];
      for (const [f, m] of points) {
        log(`scale: ${f} frontends, ${m} services`);
        await scale.setAllConfig(scalePoint(s, f, m, A[0], A[1]));
        const created = await timed(scale, "up");
        const pv: number[] = [];
        const up: number[] = [];
        const sessions: number[] = [];
        const fl: number[] = [];
        await floor.scale(A[0], A[1], f, m);
        for (let i = 0; i < args.runs; i++) {
          const pair = i % 2 === 0 ? B : A;
          fl.push(await floor.scale(pair[0], pair[1], f, m));
          await scale.setAllConfig(scalePoint(s, f, m, pair[0], pair[1]));
          pv.push((await timed(scale, "preview")).seconds);
          const u = await countSessions(sshdLog, () => timed(scale, "up"));
          up.push(u.result.seconds);
          sessions.push(u.sessions);
        }
        log(`scale: ${f} × ${m}: floor ${fl.map((x) => x.toFixed(1)).join(" ")}, preview ${pv.map((x) => x.toFixed(1)).join(" ")}, up ${up.map((x) => x.toFixed(1)).join(" ")}, sessions ${sessions.join(" ")}`);
        out.push({ frontends: f, services: m, resources: created.steps.filter((st) => st.op !== "delete").length, create: created.seconds, preview: figure(pv), up: figure(up), floor: figure(fl), upRatio: ratio(up, fl), sshSessions: sessions, previewRuns: pv, upRuns: up });
      }
      const first = out[0];
      results.scale = {
        points: out.map((pt) => ({ ...pt, previewGrowth: ratio(pt.previewRuns, first.previewRuns), upGrowth: ratio(pt.upRuns, first.upRuns) })),
      };
      log("scale: destroying");
      await scale.destroy({ color: "never" });
    }

    save();
    await removeFloor(s, path.join(base, "floor"));
    log(`done in ${results.seconds}s: ${path.join(args.out, "bench", "results.json")}, ${path.join(args.out, "BENCHMARKS.md")}`);
  } finally {
    if (!args.keep) {
      for (const st of stacks.reverse()) {
        await st.destroy({ color: "never" }).catch(() => undefined);
      }
      if (sb) {
        await run("docker", ["volume", "prune", "-af"], { env: sb.docker.env() }).catch(() => undefined);
      }
      await stopSandbox(sandboxDir, () => undefined);
      fs.rmSync(base, { recursive: true, force: true });
    }
  }
}

/** The run whose whole time is the median (the upper one of an even count). */
function medianRun(ts: Timeline[]): Timeline {
  return [...ts].sort((a, b) => a.seconds - b.seconds)[Math.floor(ts.length / 2)];
}

/** Each phase's figure over the runs that printed it (the deploy's `timings:` line), in the order first printed. */
function phaseFigures(runs: readonly Record<string, number>[]): Record<string, Figure> {
  const names = [...new Set(runs.flatMap((r) => Object.keys(r)))];
  return Object.fromEntries(names.map((k) => [k, figure(runs.filter((r) => k in r).map((r) => r[k]))]));
}

function must(ok: boolean, message: string): void {
  if (!ok) {
    throw new Error(`bench: ${message}`);
  }
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    log((e as Error).stack ?? String(e));
    process.exit(1);
  },
);
