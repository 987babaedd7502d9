import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import { LocalWorkspace, Stack, StackNotFoundError } from "@pulumi/pulumi/automation";
import type { EngineEvent } from "@pulumi/pulumi/automation";
import { PromotedRelease } from "../components/release-record";
import { REMOTE_SCRIPT_TYPE } from "../providers/remote-script";
import { commitSigners, vetIncoming } from "./commit-trust";
import { EngineRun, up } from "./engine";
import { DeployLock, LockHeld, acquireDeployLock } from "./lock";
import { Release, releaseTags } from "../lib/release";
import { PhaseClock } from "./phases";
import { Checkout, commitFileChange, commitWithTrailer, dropUnpushedCommit, fetchUpstream, fileHistory, git, moveCheckoutTo, pushFileChange, syncCheckout } from "./git";
import { EXIT, driftFound, failedStage, failureReason, onlyVpsFailed, plannedDigests, releaseMoved, vpsMoved, vpsRestored } from "./outcome";
import { StackConfig, configProblems, lastPromoted, promotedIn, readRelease, secretValues, setting, stateResources } from "./release-state";
import { ROLLBACK_TRAILER, RollbackRecord, TagPair, failedTags, redact, revertedCommits, rollbackChange, rollbackMessage } from "./rollback-commit";
import { checkPlatform } from "./platform";
import { Verdict, classify, describeVerdict } from "./verdict";
import { Interruption, PendingRollback, StateResource, addInterruption, pendingRollbackOf, setPendingRollback } from "./interruption";
import { waitingLine } from "../stacks/first-release";
import { stackFileName } from "../lib/stack-file";
import { Notice, TagStore, notify } from "./notify";

/** The policy pack of this program, enforced on every preview and update the deploy makes. */
export const POLICY_PACK = path.resolve(__dirname, "..", "policy");

export interface DeployOptions {
  readonly stack: string;
  /** The project directory (holding Pulumi.yaml). */
  readonly workDir: string;
  /** Policy packs to enforce. @default [POLICY_PACK] */
  readonly policyPacks?: readonly string[];
  /** Told when the deploy was refused because another deploy of the stack holds the lock. */
  readonly onLockHeld?: () => void;
  /**
   * No person runs this deploy (`--watch`): commits no trusted key signed may change the release
   * file alone (see commit-trust.ts). @default false
   */
  readonly unattended?: boolean;
  /** Told the commit the deploy looks at once its checkout is in step with the branch (it may be newer than one fetched before). */
  readonly onCheckout?: (commit: string) => void;
}

const say = (line: string): void => void process.stderr.write(`deploy: ${line}\n`);

/** A file's text, or undefined when it cannot be read. */
function readIfThere(file: string): string | undefined {
  try {
    return fs.readFileSync(file, "utf8");
  } catch {
    return undefined;
  }
}

function describeRunning(release: PromotedRelease | undefined): string {
  return release ? `frontend ${release.frontend.tag}, backend ${release.backend.tag}` : "nothing promoted yet";
}

/** The stack's outputs the update recorded, read from its events (no further call to the CLI); undefined when it recorded none. */
function stackOutputs(events: readonly EngineEvent[]): Record<string, unknown> | undefined {
  for (const e of [...events].reverse()) {
    const m = e.resOutputsEvent?.metadata;
    if (m && !e.resOutputsEvent?.planning && m.type === "pulumi:pulumi:Stack") {
      return (m.new?.outputs ?? {}) as Record<string, unknown>;
    }
  }
  return undefined;
}

/** A stack output the update recorded, read from its events. */
const stackOutput = (events: readonly EngineEvent[], key: string): unknown => stackOutputs(events)?.[key];

const promotedRelease = (events: readonly EngineEvent[]): PromotedRelease | undefined => stackOutput(events, "release") as PromotedRelease | undefined;

/**
 * A remote script whose run failed (an SSH connection cut, a timeout) may have changed its host
 * anyway, while the stack still records the inputs of the run before; with nothing to diff, the
 * rollback would not run it again. Marking its recorded state makes the next `up` run it.
 */
async function markUnfinishedRemoteRuns(stack: Stack, events: readonly EngineEvent[], record: { interruption?: Interruption; pending?: PendingRollback } = {}): Promise<string[]> {
  const { interruption, pending } = record;
  const failed = new Set(events.map((e) => e.resOpFailedEvent?.metadata).filter((m) => m?.type === REMOTE_SCRIPT_TYPE).map((m) => m!.urn));
  if (failed.size === 0 && !interruption && !pending) {
    return [];
  }
  const state = await stack.exportStack();
  const resources = (state.deployment as { resources?: StateResource[] }).resources ?? [];
  const marked: string[] = [];
  for (const r of resources) {
    if (failed.has(r.urn) && r.outputs) {
      r.outputs.triggers = [...((r.outputs.triggers as unknown[] | undefined) ?? []), `unfinished run ${new Date().toISOString()}`];
      marked.push(r.urn.split("::").pop() ?? r.urn);
    }
  }
  const recorded = interruption ? addInterruption(resources, interruption) : false;
  // One import: the rollback's marker and the runs to repeat become durable together.
  const begun = pending ? setPendingRollback(resources, pending) : false;
  if (marked.length > 0 || recorded || begun) {
    await stack.importStack(state);
  }
  return marked;
}

/** Says what the run's refresh found no longer running the recorded release (the run deploys it again); returns the findings. */
function reportDrift(events: readonly EngineEvent[], secrets: readonly string[]): string[] {
  const drift = driftFound(events).map((d) => redact(d, secrets));
  if (drift.length > 0) {
    say(`found what no longer runs the recorded release; deploying it again:\n  ${drift.join("\n  ")}`);
  }
  return drift;
}

class Refused extends Error {}

const pairOf = (r: PromotedRelease): TagPair => ({ frontend: r.frontend.tag, backend: r.backend.tag });

/**
 * The guarded deploy: the release is what the branch Flux watches says. The checkout is brought up
 * to date with it first; then `up` with the policy packs (the engine previews first and changes
 * nothing when the preview fails). When a rollout or gate fails, the last promoted pair is deployed
 * again (refreshed first) and the rollback is committed to the branch: the release file back on
 * that pair, the failed tags excluded from image automation, and the reasons in the message. Runs
 * the `pulumi` and `git` on PATH with the caller's environment: their login, backend, PULUMI_HOME,
 * plugins and git credentials.
 */
export async function deploy(opts: DeployOptions): Promise<number> {
  const told: Told = { notices: [] };
  const code = await guardedDeploy(opts, told);
  // After the lock is released: a slow receiver holds up no other deploy.
  if (told.cfg && told.notices.length > 0) {
    await notify(told.cfg, opts.stack, told.notices, { secrets: secretValues(told.cfg), say, tags: told.tags });
  }
  return code;
}

/** What the deploy tells its receivers, and the config that names them. */
interface Told {
  cfg?: StackConfig;
  /** Where the last notification is recorded (the stack's workspace). */
  tags?: TagStore;
  readonly notices: Notice[];
}

async function guardedDeploy(opts: DeployOptions, told: Told): Promise<number> {
  // From the process's start: loading the deploy itself is part of what it costs.
  const clock = new PhaseClock();
  clock.mark("start-up");
  const policyPacks = opts.policyPacks ?? [POLICY_PACK];
  // Set once the stack's config is read: nothing the engine prints before then carries a secret of it.
  let secrets: readonly string[] = [];
  let stack: Stack;
  try {
    stack = await LocalWorkspace.selectStack({ stackName: opts.stack, workDir: opts.workDir });
  } catch (e) {
    if (e instanceof StackNotFoundError) {
      say(`REFUSED: no stack ${opts.stack} in this backend (pulumi whoami -v shows which; pulumi stack init ${opts.stack} creates it)`);
      return EXIT.refused;
    }
    throw e;
  }
  told.tags = stack.workspace;
  const [project, config] = await Promise.all([stack.workspace.projectSettings(), stack.getAllConfig()]);
  secrets = secretValues(config as StackConfig);
  clock.mark("stack and config");
  // The engine records itself as the holder of the stack's lock, and removes one a killed deploy left.
  const stackLock = { project: project.name, stack: opts.stack };
  const engine = (refresh = false): Promise<EngineRun> => up({ stack: opts.stack, workDir: opts.workDir, policyPacks, refresh, secrets, lock: stackLock, say });
  let lock: DeployLock;
  try {
    lock = await acquireDeployLock({ project: project.name, stack: opts.stack, say });
    clock.mark("deploy lock");
  } catch (e) {
    if (e instanceof LockHeld) {
      opts.onLockHeld?.();
      say(`REFUSED: ${e.message}`);
      return EXIT.refused;
    }
    throw e;
  }
  let engineRan = false;
  try {
    let cfg = config as StackConfig;
    told.cfg = cfg;
    if (cfg["homelab:deployHomelab"]?.value === "false") {
      return await deployVpsOnly(engine, opts.stack, secrets, told);
    }
    const invalid = configProblems(cfg);
    if (invalid) {
      throw new Refused(invalid);
    }
    const state = stack.exportStack().then(stateResources);
    // Awaited below; a refusal before then must not leave it rejected unhandled.
    state.catch(() => undefined);
    const pending = pendingRollbackOf(await state);
    clock.mark("state");
    if (pending && dropUnpushedCommit(opts.workDir, setting(cfg, "gitBranch"), ROLLBACK_TRAILER, pending.event.id)) {
      say(`dropped the rollback commit a killed deploy made and never pushed; it is made again on top of ${setting(cfg, "gitBranch")}`);
    }
    let co: Checkout;
    let release: Release;
    // Read again after the sync only if it changed it (or it is not where it can be compared).
    const stackFile = path.join(opts.workDir, stackFileName(opts.stack.split("/").pop()!));
    const stackFileBefore = readIfThere(stackFile);
    try {
      // Vetted with the signers of the checkout as it was: what the fast-forward brings cannot vouch for itself.
      co = syncCheckout(opts.workDir, setting(cfg, "releaseFile"), setting(cfg, "gitUrl"), setting(cfg, "gitBranch"), vetIncoming(cfg, opts.unattended ?? false), commitSigners(cfg));
      opts.onCheckout?.(git(co.root, ["rev-parse", "HEAD"]).trim());
      if (pending) {
        finishRollbackCommit(co, pending);
      }
    } catch (e) {
      throw new Refused((e as Error).message);
    }
    clock.mark("git sync");
    // The stack file travels in git with its encrypted secrets: what the fast-forward brought is
    // what the engine runs with, so it is what is checked and kept out of the output.
    if (stackFileBefore === undefined || readIfThere(stackFile) !== stackFileBefore) {
      cfg = (await stack.getAllConfig()) as StackConfig;
      told.cfg = cfg;
      secrets = secretValues(cfg);
    }
    const invalidAfterSync = configProblems(cfg);
    if (invalidAfterSync) {
      throw new Refused(invalidAfterSync);
    }
    clock.mark("config after sync");
    try {
      release = readRelease(cfg, opts.workDir);
    } catch (e) {
      throw new Refused((e as Error).message);
    }
    const target = releaseTags(release);
    const last = promotedIn(await state).current;
    say(`stack ${opts.stack}: deploying frontend ${target.frontend}, backend ${target.backend} from ${co.branch} at ${git(co.root, ["rev-parse", "--short", "HEAD"]).trim()} (running: ${describeRunning(last)})`);

    // Refreshed every time: each part is read (hosts, gates, the cluster) and whatever no longer
    // runs the recorded release is deployed and gated again in the same update.
    const run = await engine(true);
    engineRan = true;
    clock.markParts(
      run.previewSeconds === undefined
        ? [{ name: "refresh and preview", seconds: run.seconds }]
        : [
            { name: "refresh and preview", seconds: run.previewSeconds },
            { name: "update", seconds: run.seconds - run.previewSeconds },
          ],
    );
    if (run.concurrent) {
      say(anotherUpdate(opts.stack, run));
      return EXIT.refused;
    }
    const drift = reportDrift(run.events, secretValues(cfg));
    if (run.ok) {
      if (pending) {
        await clearPendingRollback(stack);
        say(`the rollback a killed deploy left unfinished is complete`);
      }
      const recorded = stackOutputs(run.events);
      const waitingFor = (recorded ? recorded.waitingForImages : (await stack.outputs()).waitingForImages?.value) as string[] | undefined;
      if (waitingFor && waitingFor.length > 0) {
        say(`WAITING after ${run.seconds}s: ${waitingLine(waitingFor)}`);
        return EXIT.waiting;
      }
      const now = promotedRelease(run.events) ?? (await lastPromoted(stack)).current;
      const running = describeRunning(now);
      const moved = releaseMoved(run.events) && !(last && last.frontend.tag === target.frontend && last.backend.tag === target.backend);
      const unchecked = moved && now?.unverified?.length ? `; which version answers was not checked for the ${now.unverified.join(" and ")}` : "";
      say(drift.length > 0 && !moved ? `REPAIRED in ${run.seconds}s, every gate passing: ${running}` : `PROMOTED in ${run.seconds}s: ${running}${drift.length > 0 ? " (and repaired)" : ""}${unchecked}`);
      // A deploy that changed nothing tells no one: --watch runs one every few minutes.
      if (now && (moved || drift.length > 0)) {
        told.notices.push({ event: moved ? "promoted" : "repaired", pair: pairOf(now), ...(drift.length > 0 ? { reason: `found and deployed again: ${drift.join("; ")}` } : {}) });
      }
      return EXIT.promoted;
    }
    const reason = redact(failureReason(run.events, run.error), secretValues(cfg));
    if (onlyVpsFailed(run.events)) {
      // The homelab's stages did not fail: its release is not rolled back for the VPS's sake.
      return vpsFailure(run.events, reason, run.seconds, told);
    }
    const verdict = classify(run.events, run.error, await checkPlatform(cfg), last ? { frontend: last.frontend.tag, backend: last.backend.tag } : undefined);
    if (!releaseMoved(run.events)) {
      if (verdict.fault === "platform" && verdict.part !== "unknown") {
        say(`PLATFORM FAILURE before any change (${run.seconds}s): ${redact(describeVerdict(verdict), secretValues(cfg))}\nNothing changed, nothing excluded. Deploy again once the ${verdict.part} answers.\nStill running: ${describeRunning(last)}`);
        told.notices.push({ event: "platform-failure", failed: target, ...(last ? { pair: pairOf(last) } : {}), reason: `before any change: ${describeVerdict(verdict)}` });
        return EXIT.platform;
      }
      say(`REFUSED before any change (${run.seconds}s):\n${reason}\nStill running: ${describeRunning(last)}`);
      return EXIT.refused;
    }
    if (verdict.fault === "platform") {
      return await platformFailure({ stack, cfg, run, verdict, target, last, told });
    }
    if (!last) {
      say(`FAILED and there is no promoted release to roll back to (${redact(describeVerdict(verdict), secretValues(cfg))}):\n${reason}`);
      told.notices.push({ event: "rollback-failed", failed: target, stage: failedStage(run.events), reason: `no promoted release to roll back to: ${describeVerdict(verdict)}` });
      return EXIT.rollbackFailed;
    }
    return await rollBack({ stack, engine, co, cfg, run, reason: `${redact(describeVerdict(verdict), secretValues(cfg))}\n${reason}`, failed: target, last, told });
  } catch (e) {
    if (e instanceof Refused) {
      say(`REFUSED before any change: ${e.message}`);
      return EXIT.refused;
    }
    throw e;
  } finally {
    await lock.release();
    clock.mark(engineRan ? "after the update" : "until refused");
    say(clock.line());
  }
}

/** Clears the marker of a rollback begun, where the update that finished it left it. */
async function clearPendingRollback(stack: Stack): Promise<void> {
  const state = await stack.exportStack();
  if (setPendingRollback((state.deployment as { resources?: StateResource[] }).resources ?? [], undefined)) {
    await stack.importStack(state);
  }
}

/**
 * The first step of a deploy after one that was killed mid-rollback: the rollback's commit is put
 * on the branch, unless it already is there, and the checkout moved to it; the deploy that follows
 * deploys what git then says (the restored pair, or a newer release) to both parts.
 */
function finishRollbackCommit(co: Checkout, pending: PendingRollback): void {
  const e = pending.event;
  say(`the rollback of frontend ${e.failed.frontend}, backend ${e.failed.backend} to frontend ${e.restored.frontend}, backend ${e.restored.backend} (${e.stage}, ${e.at}) did not finish (its deploy was stopped, or it failed); finishing that rollback first`);
  const base = fetchUpstream(co);
  if (commitWithTrailer(co, ROLLBACK_TRAILER, e.id)) {
    moveCheckoutTo(co, base);
    return;
  }
  const change = rollbackChange(pending);
  const message = rollbackMessage(pending);
  try {
    const pushed = pushFileChange(co, change, message, { base, sha: commitFileChange(co, base, change, message) });
    moveCheckoutTo(co, pushed.sha);
    say(`recorded the rollback in git: ${pushed.sha.slice(0, 12)} on ${co.branch}`);
  } catch (err) {
    // Deployed from the local commit all the same; the next deploy drops it and pushes it again.
    moveCheckoutTo(co, commitFileChange(co, base, change, message));
    say(`NOT RECORDED yet: the rollback commit could not be pushed to ${co.branch} (${(err as Error).message}); deploying it from this checkout`);
  }
}

interface PlatformContext {
  readonly stack: Stack;
  readonly cfg: StackConfig;
  readonly run: EngineRun;
  readonly verdict: Extract<Verdict, { fault: "platform" }>;
  readonly target: TagPair;
  readonly last: PromotedRelease | undefined;
  readonly told: Told;
}

/**
 * The platform failed mid-release: the release is not blamed. Nothing is excluded or committed;
 * the remote runs the failure cut short are marked to run again, the interruption goes into the
 * stack's ledger, and the next deploy (the release file still names the target) resumes it.
 */
async function platformFailure(c: PlatformContext): Promise<number> {
  const secrets = secretValues(c.cfg);
  const evidence = redact(describeVerdict(c.verdict), secrets);
  say(`PLATFORM FAILURE after ${c.run.seconds}s in the ${failedStage(c.run.events)}: ${evidence}`);
  const interruption: Interruption = { at: new Date().toISOString(), target: c.target, stage: failedStage(c.run.events), part: c.verdict.part, evidence: evidence.slice(0, 2000) };
  const unfinished = await markUnfinishedRemoteRuns(c.stack, c.run.events, { interruption });
  say(
    `Nothing excluded and nothing committed: frontend ${c.target.frontend}, backend ${c.target.backend} stays the release in git. ` +
      `Parts of it may already run beside the last promoted pair (${describeRunning(c.last)}), which the stack still records.` +
      (unfinished.length > 0 ? ` The next deploy runs ${unfinished.join(", ")} again.` : "") +
      ` Deploy again once the ${c.verdict.part} answers; it resumes the release.`,
  );
  c.told.notices.push({ event: "platform-failure", failed: c.target, ...(c.last ? { pair: pairOf(c.last) } : {}), stage: failedStage(c.run.events), reason: evidence });
  return EXIT.platform;
}

interface RollbackContext {
  readonly stack: Stack;
  readonly engine: (refresh?: boolean) => Promise<EngineRun>;
  readonly co: Checkout;
  readonly cfg: StackConfig;
  readonly run: EngineRun;
  readonly reason: string;
  readonly failed: TagPair;
  readonly last: PromotedRelease;
  readonly told: Told;
}

/**
 * Deploys the last promoted pair again and records the rollback in git: the commit is made on top
 * of the branch and checked out first (so the deploy reads the restored release file), then pushed
 * once the rollback ran, made again on top of any commit that raced it.
 */
async function rollBack(c: RollbackContext): Promise<number> {
  const stage = failedStage(c.run.events);
  say(`FAILED after ${c.run.seconds}s in the ${stage}:\n${c.reason}`);
  const restored = pairOf(c.last);
  const record: RollbackRecord = {
    event: { id: crypto.randomUUID(), at: new Date().toISOString(), failed: c.failed, restored, stage, reason: c.reason.slice(0, 2000), stages: { up: c.run.seconds } },
    digests: { failed: plannedDigests(c.run.events), restored: { frontend: c.last.frontend.digest, backend: c.last.backend.digest } },
    reverts: revertedCommits(fileHistory(c.co, "HEAD"), restored),
  };
  // Durable before anything else: a deploy killed from here on is finished by the next one,
  // which also runs the remote deploys the failed update cut short.
  // History's start times have whole seconds; the failed update started well before this.
  const failedAt = new Date(Math.floor(Date.now() / 1000) * 1000);
  const unfinished = await markUnfinishedRemoteRuns(c.stack, c.run.events, { pending: record });
  say(`rolling back both to the last promoted pair: ${describeRunning(c.last)}`);
  const change = rollbackChange(record);
  const message = rollbackMessage(record);
  const base = fetchUpstream(c.co);
  const commit = commitFileChange(c.co, base, change, message);
  moveCheckoutTo(c.co, commit);

  if (unfinished.length > 0) {
    say(`the rollback runs ${unfinished.join(", ")} again: its failed run may have changed the host`);
  }
  // Another update of the stack since the failed one (a \`pulumi up\` by hand, from anywhere) has
  // moved the release: the rollback is not deployed over it.
  const other = await updateSince(c.stack, failedAt);
  // Refreshed first: a failed rollout (an API server gone mid-update) can leave the cluster on
  // the failed release while the stack records the previous one.
  const back = other ? undefined : await c.engine(true);
  let outcome: number;
  if (other || back?.concurrent) {
    say(
      `RELEASE MOVED BY ANOTHER UPDATE: ${other ?? `an update of stack ${c.stack.name} is running`}, after the failed one; the rollback is not deployed over it. ` +
        `The failed tags are still excluded in git; check \`pulumi stack history\` and deploy again to bring both parts to what git says.`,
    );
    outcome = EXIT.rollbackFailed;
  } else if (!back!.ok) {
    say(`ROLLBACK FAILED after ${back!.seconds}s:\n${redact(failureReason(back!.events, back!.error), secretValues(c.cfg))}\nCheck the frontend and the VM by hand; the stack still records ${describeRunning(c.last)} as the last good pair. The next deploy tries the rollback again first.`);
    outcome = EXIT.rollbackFailed;
  } else {
    say(`ROLLED BACK in ${back!.seconds}s: running ${describeRunning(c.last)} again.`);
    outcome = EXIT.rolledBack;
  }
  const tell = (sha: string): void =>
    void c.told.notices.push({
      event: outcome === EXIT.rolledBack ? "rolled-back" : "rollback-failed",
      pair: restored,
      failed: c.failed,
      stage,
      reason: c.reason,
      commit: { sha },
    });
  // The failed pair stays excluded whether or not the rollback deploy succeeded: it did fail.
  try {
    const pushed = pushFileChange(c.co, change, message, { base, sha: commit });
    tell(pushed.sha);
    if (pushed.sha !== commit) {
      moveCheckoutTo(c.co, pushed.sha);
    }
    // Done only once git has it: until then the rollback stays pending in the stack's state, and
    // the next deploy, from this checkout or a fresh one, pushes it before anything else.
    if (outcome === EXIT.rolledBack) {
      await clearPendingRollback(c.stack);
    }
    const excluded = failedTags(c.failed, restored, stage);
    say(
      `recorded in git: ${pushed.sha.slice(0, 12)} on ${c.co.branch}${pushed.retries > 0 ? ` (made again on top of ${pushed.retries} newer commit(s))` : ""}; ` +
        (excluded.length > 0 ? `image automation now skips ${excluded.map((x) => `${x.image} ${x.tag}`).join(", ")}` : "nothing excluded"),
    );
  } catch (e) {
    tell(commit);
    say(
      `NOT RECORDED: the rollback commit ${commit.slice(0, 12)} could not be pushed to ${c.co.branch}: ${(e as Error).message}\n` +
        `The rollback stays pending in the stack's state: the next deploy, from any checkout, pushes it before it deploys anything (or push it now with \`git push origin ${c.co.branch}\`).`,
    );
    return outcome === EXIT.rolledBack ? EXIT.notRecorded : outcome;
  }
  return outcome;
}

/**
 * The newest update or destroy of the stack that started at `since` or later, described for
 * people, if any (by start time: self-managed backends number every update 0).
 */
async function updateSince(stack: Stack, since: Date): Promise<string | undefined> {
  const u = (await stack.history(10, 1)).find((h) => new Date(h.startTime).getTime() >= since.getTime() && (h.kind === "update" || h.kind === "destroy"));
  if (!u) {
    return undefined;
  }
  const by = u.environment?.["exec.kind"] ?? u.environment?.["git.author"];
  return `stack ${stack.name} had another ${u.kind} (${u.result}, started ${new Date(u.startTime).toISOString()}${by ? `, ${by}` : ""})`;
}

/** Deploys a stack without the homelab part; the VPS's host restores itself on failure. */
async function deployVpsOnly(engine: (refresh?: boolean) => Promise<EngineRun>, name: string, secrets: readonly string[], told: Told): Promise<number> {
  say(`stack ${name}: deploying the VPS app (the stack has no homelab part)`);
  // Refreshed: a VPS app that no longer runs as recorded is deployed again.
  const run = await engine(true);
  if (run.concurrent) {
    say(anotherUpdate(name, run));
    return EXIT.refused;
  }
  const drift = reportDrift(run.events, secrets);
  if (run.ok) {
    const image = stackOutput(run.events, "vpsImage");
    say(`${drift.length > 0 ? "REPAIRED" : "DEPLOYED"} in ${run.seconds}s${typeof image === "string" ? `: ${image}` : ""}`);
    if (drift.length > 0 || vpsMoved(run.events)) {
      told.notices.push({ event: drift.length > 0 ? "repaired" : "promoted", stage: "VPS app", reason: `${typeof image === "string" ? `running ${image}` : "deployed"}${drift.length > 0 ? `; found and deployed again: ${drift.join("; ")}` : ""}` });
    }
    return EXIT.promoted;
  }
  return vpsFailure(run.events, redact(failureReason(run.events, run.error), secrets), run.seconds, told);
}

/** The outcome of a failed VPS deploy: nothing is pinned; the exit code says whether the previous release is back. */
function vpsFailure(events: readonly EngineEvent[], reason: string, seconds: number, told: Told): number {
  if (!vpsMoved(events)) {
    say(`REFUSED before any change (${seconds}s):\n${reason}`);
    return EXIT.refused;
  }
  if (vpsRestored(events)) {
    say(`FAILED after ${seconds}s in the VPS app; its host restored the previous release, which is serving:\n${reason}`);
    told.notices.push({ event: "rolled-back", stage: "VPS app", reason: `its host restored the previous release: ${reason}` });
    return EXIT.rolledBack;
  }
  say(`FAILED after ${seconds}s in the VPS app, and its previous release is not back (check the host):\n${reason}`);
  told.notices.push({ event: "rollback-failed", stage: "VPS app", reason });
  return EXIT.rollbackFailed;
}

/**
 * The refusal when another update holds the stack. A lock a killed deploy of this machine left is
 * removed before this is said (see up); any other is named, with what frees it once none runs.
 */
function anotherUpdate(stack: string, run: EngineRun): string {
  const who = run.holders.map((h) => `pid ${h.pid} of ${h.user} on ${h.host}, since ${h.since}`).join("; ");
  return (
    `REFUSED: another update of stack ${stack} is in progress${who ? ` (${who})` : ""}; wait for it to finish. ` +
    `If none runs (a \`pulumi up\` killed by hand, or a deploy killed on another machine), \`pulumi cancel --stack ${stack}\` frees it`
  );
}
