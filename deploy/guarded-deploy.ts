import * as path from "path";
import { LocalWorkspace, Stack, StackNotFoundError } from "@pulumi/pulumi/automation";
import type { EngineEvent } from "@pulumi/pulumi/automation";
import type { PromotedRelease } from "../components/release-record";
import { REMOTE_SCRIPT_TYPE } from "../providers/remote-script";
import { EngineRun, up } from "./engine";
import { acquireDeployLock, defaultLockDir, lockName } from "./lock";
import { EXIT, failureReason, onlyVpsFailed, releaseMoved, vpsMoved, vpsRestored } from "./outcome";
import { PIN_KEYS, StackConfig, TagPair, activePin, configProblems, rollbackConfig, targetTags } from "./pins";

/** The policy pack of this program, enforced on every preview and update the deploy makes. */
export const POLICY_PACK = path.resolve(__dirname, "..", "policy");

export interface DeployOptions {
  readonly stack: string;
  /** The project directory (holding Pulumi.yaml). */
  readonly workDir: string;
  /** Policy packs to enforce. @default [POLICY_PACK] */
  readonly policyPacks?: readonly string[];
  /** Where locks live. @default defaultLockDir() */
  readonly lockDir?: string;
}

const say = (line: string): void => void process.stderr.write(`deploy: ${line}\n`);

function describeRunning(release: PromotedRelease | undefined): string {
  return release ? `frontend ${release.frontend.tag}, backend ${release.backend.tag}` : "nothing promoted yet";
}

/** The stack outputs the update recorded, read from its events (no further call to the CLI). */
function promotedRelease(events: readonly EngineEvent[]): PromotedRelease | undefined {
  for (const e of [...events].reverse()) {
    const m = e.resOutputsEvent?.metadata;
    if (m && !e.resOutputsEvent?.planning && m.type === "pulumi:pulumi:Stack") {
      return m.new?.outputs?.release as PromotedRelease | undefined;
    }
  }
  return undefined;
}

/**
 * A remote script whose run failed (an SSH connection cut, a timeout) may have changed its host
 * anyway, while the stack still records the inputs of the run before; with nothing to diff, the
 * rollback would not run it again. Marking its recorded state makes the next `up` run it.
 */
async function markUnfinishedRemoteRuns(stack: Stack, events: readonly EngineEvent[]): Promise<string[]> {
  const failed = new Set(events.map((e) => e.resOpFailedEvent?.metadata).filter((m) => m?.type === REMOTE_SCRIPT_TYPE).map((m) => m!.urn));
  if (failed.size === 0) {
    return [];
  }
  const state = await stack.exportStack();
  const resources = (state.deployment as { resources?: { urn: string; outputs?: Record<string, unknown> }[] }).resources ?? [];
  const marked: string[] = [];
  for (const r of resources) {
    if (failed.has(r.urn) && r.outputs) {
      r.outputs.triggers = [...((r.outputs.triggers as unknown[] | undefined) ?? []), `unfinished run ${new Date().toISOString()}`];
      marked.push(r.urn.split("::").pop() ?? r.urn);
    }
  }
  if (marked.length > 0) {
    await stack.importStack(state);
  }
  return marked;
}

class Refused extends Error {}

/**
 * The guarded deploy: `up` with the policy packs (the engine previews first and changes nothing
 * when the preview fails), and when a rollout or gate fails, `up` again with the last promoted
 * pair pinned and the failed tags excluded from image automation. Runs the `pulumi` on PATH with
 * the caller's environment: their login, backend, PULUMI_HOME and plugins.
 */
export async function deploy(opts: DeployOptions): Promise<number> {
  const policyPacks = opts.policyPacks ?? [POLICY_PACK];
  const engine = (refresh = false): Promise<EngineRun> => up({ stack: opts.stack, workDir: opts.workDir, policyPacks, refresh });
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
  const backendUrl = (await stack.workspace.whoAmI()).url ?? "";
  const lock = acquireDeployLock(opts.lockDir ?? defaultLockDir(), lockName(backendUrl, opts.stack), `stack ${opts.stack}`);
  try {
    const [outputs, cfg] = await Promise.all([stack.outputs(), stack.getAllConfig() as Promise<StackConfig>]);
    const last = outputs.release?.value as PromotedRelease | undefined;
    if (cfg["homelab:deployHomelab"]?.value === "false") {
      return await deployVpsOnly(engine, opts.stack);
    }
    const target = await settleTarget(stack, cfg, opts.workDir, last);
    say(`stack ${opts.stack}: deploying frontend ${target.tags.frontend}, backend ${target.tags.backend} (running: ${describeRunning(last)})`);

    const run = await engine();
    if (run.concurrent) {
      say(`REFUSED: another update of stack ${opts.stack} is in progress; wait for it to finish`);
      return EXIT.refused;
    }
    if (run.ok) {
      say(`PROMOTED in ${run.seconds}s: ${describeRunning(promotedRelease(run.events) ?? last)}`);
      return EXIT.promoted;
    }
    const reason = failureReason(run.events, run.error);
    if (onlyVpsFailed(run.events)) {
      // The homelab's stages did not fail: its release is not rolled back for the VPS's sake.
      return vpsFailure(run.events, reason, run.seconds);
    }
    if (!releaseMoved(run.events)) {
      say(`REFUSED before any change (${run.seconds}s):\n${reason}\nStill running: ${describeRunning(last)}`);
      return EXIT.refused;
    }
    if (!last) {
      say(`FAILED and there is no promoted release to roll back to:\n${reason}`);
      return EXIT.rollbackFailed;
    }
    say(`FAILED after ${run.seconds}s:\n${reason}`);
    say(`rolling back both to the last promoted pair: ${describeRunning(last)}`);
    const good: TagPair = { frontend: last.frontend.tag, backend: last.backend.tag };
    const pin = rollbackConfig(target.cfg, target.tags, good, reason, { up: run.seconds });
    await stack.removeConfig("homelab:excludedTags").catch(() => undefined);
    await stack.setAllConfig(pin.config, true);
    const unfinished = await markUnfinishedRemoteRuns(stack, run.events);
    if (unfinished.length > 0) {
      say(`the rollback runs ${unfinished.join(", ")} again: its failed run may have changed the host`);
    }
    // Refreshed first: a failed rollout (an API server gone mid-update) can leave the cluster on
    // the failed release while the stack records the previous one.
    const back = await engine(true);
    if (back.concurrent) {
      say(`ROLLBACK NOT RUN: another update of stack ${opts.stack} started after the failed one; the release may have moved. Check \`pulumi stack history\`.`);
      return EXIT.rollbackFailed;
    }
    if (!back.ok) {
      say(`ROLLBACK FAILED after ${back.seconds}s:\n${failureReason(back.events, back.error)}\nCheck the frontend and the VM by hand; the stack still records ${describeRunning(last)} as the last good pair.`);
      return EXIT.rollbackFailed;
    }
    say(`ROLLED BACK in ${back.seconds}s: running ${describeRunning(last)} again.`);
    say(`image automation now skips ${pin.excluded.join(", ")}; remove a tag from homelab:excludedTags once it is fixed.`);
    return EXIT.rolledBack;
  } catch (e) {
    if (e instanceof Refused) {
      say(`REFUSED before any change: ${e.message}`);
      return EXIT.refused;
    }
    throw e;
  } finally {
    lock.release();
  }
}

/**
 * Checks the config (every bad key named) and the release file, and releases a rollback pin once
 * the release file names another pair than the one that failed. Throws Refused on bad input.
 */
async function settleTarget(stack: Stack, cfg: StackConfig, workDir: string, last: PromotedRelease | undefined): Promise<{ cfg: StackConfig; tags: TagPair }> {
  const invalid = configProblems(cfg);
  if (invalid) {
    throw new Refused(invalid);
  }
  const tags = (c: StackConfig, pinned: boolean): TagPair => {
    try {
      return targetTags(c, workDir, pinned);
    } catch (e) {
      throw new Refused((e as Error).message);
    }
  };
  const pin = activePin(cfg);
  if (pin) {
    const next = tags(cfg, false);
    if (next.frontend !== pin.failed.frontend || next.backend !== pin.failed.backend) {
      say(`the release file names a new release (frontend ${next.frontend}, backend ${next.backend}); releasing the rollback pin`);
      await stack.removeAllConfig([...PIN_KEYS]);
      const released = (await stack.getAllConfig()) as StackConfig;
      return { cfg: released, tags: tags(released, true) };
    }
    say(`rolled back: still pinned to ${describeRunning(last)} until the release file names a release other than frontend ${pin.failed.frontend}, backend ${pin.failed.backend}`);
  }
  return { cfg, tags: tags(cfg, true) };
}

/** Deploys a stack without the homelab part; the VPS's host restores itself on failure. */
async function deployVpsOnly(engine: () => Promise<EngineRun>, name: string): Promise<number> {
  say(`stack ${name}: deploying the VPS app (the stack has no homelab part)`);
  const run = await engine();
  if (run.concurrent) {
    say(`REFUSED: another update of stack ${name} is in progress; wait for it to finish`);
    return EXIT.refused;
  }
  if (run.ok) {
    say(`DEPLOYED in ${run.seconds}s`);
    return EXIT.promoted;
  }
  return vpsFailure(run.events, failureReason(run.events, run.error), run.seconds);
}

/** The outcome of a failed VPS deploy: nothing is pinned; the exit code says whether the previous release is back. */
function vpsFailure(events: readonly EngineEvent[], reason: string, seconds: number): number {
  if (!vpsMoved(events)) {
    say(`REFUSED before any change (${seconds}s):\n${reason}`);
    return EXIT.refused;
  }
  if (vpsRestored(events)) {
    say(`FAILED after ${seconds}s in the VPS app; its host restored the previous release, which is serving:\n${reason}`);
    return EXIT.rolledBack;
  }
  say(`FAILED after ${seconds}s in the VPS app, and its previous release is not back (check the host):\n${reason}`);
  return EXIT.rollbackFailed;
}
