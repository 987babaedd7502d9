import * as path from "path";
import { LocalWorkspace } from "@pulumi/pulumi/automation";
import { readReleaseState } from "../lib/release";
import { pulumiNotFound } from "./engine";
import { DeployOptions, deploy } from "./guarded-deploy";
import { git } from "./git";
import { liveStatus } from "./live-status";
import { manualRollback } from "./manual-rollback";
import { EXIT } from "./outcome";
import { checkPlatform } from "./platform";
import { StackConfig, lastPromoted, setting } from "./release-state";
import { ROLLBACK_TRAILER, trailers } from "./rollback-commit";
import { WATCH_STAGE, changedParts, releaseFault, watchWindowEnd } from "./watch-window";

export interface WatchOptions extends DeployOptions {
  /** Seconds between looks at the branch. @default 30 */
  readonly intervalSeconds?: number;
  /** Seconds between checks of what runs, between release commits; a part that differs is repaired. @default 300 */
  readonly checkEverySeconds?: number;
  /** Stops the watch (after the deploy in progress). */
  readonly signal?: AbortSignal;
  /** Called with each deploy's outcome. */
  readonly onOutcome?: (code: number, head: string) => void;
}

const say = (line: string): void => void process.stderr.write(`watch: ${line}\n`);
const OUTCOME: Record<number, string> = {
  [EXIT.promoted]: "promoted",
  [EXIT.unexpected]: "unexpected error",
  [EXIT.refused]: "refused",
  [EXIT.rolledBack]: "rolled back",
  [EXIT.rollbackFailed]: "rollback failed",
  [EXIT.notRecorded]: "rolled back, not recorded in git",
  [EXIT.platform]: "the platform failed; resuming with back-off",
  [EXIT.waiting]: "waiting for the first image; image automation's first commit is deployed next",
  [-1]: "another deploy of the stack is running; trying again after it",
};

/** The longest wait between resumes while the platform stays down. */
const MAX_BACKOFF_MS = 10 * 60 * 1000;

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => {
      clearTimeout(t);
      resolve();
    }, { once: true });
  });
}

function isAncestor(root: string, a: string, b: string): boolean {
  try {
    git(root, ["merge-base", "--is-ancestor", a, b]);
    return true;
  } catch {
    return false;
  }
}

/** Whether every commit in `from..to` carries the deploy's rollback trailer. */
function onlyRollbacks(root: string, from: string, to: string): boolean {
  const bodies = git(root, ["log", "--format=%B%x1e", `${from}..${to}`]).split("\x1e").map((b) => b.trim()).filter(Boolean);
  return bodies.length > 0 && bodies.every((b) => ROLLBACK_TRAILER in trailers(b));
}

/**
 * Whether rollback commits on top of what was deployed need no deploy: the pair the release file
 * names at `sha` is the one the stack records as running. A trailer alone proves nothing (anyone
 * can write one), and a rollback by hand that found the stack busy has not been deployed yet.
 */
async function rollbackIsLive(stack: WatchedStack, root: string, file: string, sha: string): Promise<boolean> {
  try {
    return namesRunningPair(git(root, ["show", `${sha}:${file}`]), file, (await lastPromoted(stack)).current);
  } catch {
    return false;
  }
}

/** Whether a release file's text names the pair the stack records as running. */
export function namesRunningPair(text: string, file: string, current: { frontend: { tag: string }; backend: { tag: string } } | undefined): boolean {
  const { tags } = readReleaseState(text, file);
  return current !== undefined && current.frontend.tag === tags.frontend && current.backend.tag === tags.backend;
}

/** An error for the log: a CLI missing from PATH in one line, not the Automation API's report. */
const describe = (e: unknown): string => pulumiNotFound(e)?.message ?? (e as Error).message;

/** Another deploy of the stack (from another checkout or machine) held the lock: nothing was tried. */
const BUSY = -1;

/** One guarded deploy; an error it throws is reported and counts as unexpected, and the watch goes on. */
async function deployOnce(opts: WatchOptions, onCheckout?: (commit: string) => void): Promise<number> {
  let busy = false;
  try {
    const code = await deploy({ ...opts, unattended: true, onLockHeld: () => (busy = true), onCheckout });
    return busy ? BUSY : code;
  } catch (e) {
    say(`unexpected error: ${describe(e)}`);
    return EXIT.unexpected;
  }
}

type WatchedStack = Awaited<ReturnType<typeof LocalWorkspace.selectStack>>;

/** The end of the last promotion's watch window, if it is open now, and the parts it changed. */
async function openWindow(stack: WatchedStack, cfg: StackConfig): Promise<{ end: Date; changed: ReturnType<typeof changedParts> } | undefined> {
  try {
    const last = await lastPromoted(stack);
    const end = watchWindowEnd(last.promotion, Number(setting(cfg, "postPromotionWatchSeconds")));
    return end ? { end, changed: changedParts(last.current, last.previous) } : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Reads what runs. Inside the last promotion's watch window, the promoted release's own failure
 * (a crash loop, a gate answering wrong, while the platform answers) rolls it back, with a
 * rollback commit; otherwise a part that differs from the recorded release is repaired by the
 * guarded deploy with the same gates.
 */
async function checkAndRepair(opts: WatchOptions, stack: WatchedStack, cfg: StackConfig): Promise<void> {
  let status: Awaited<ReturnType<typeof liveStatus>>;
  try {
    status = await liveStatus(stack, opts.workDir);
    for (const p of status.parts.filter((x) => x.findings.length > 0)) {
      say(`${p.part}: ${p.findings.join("; ")}`);
    }
  } catch (e) {
    say(`cannot read what runs: ${describe(e)}`);
    return;
  }
  // In the window a container's restarts count too, though it runs and so agrees.
  const window = await openWindow(stack, cfg);
  const fault = window ? releaseFault(status, await checkPlatform(cfg), window.changed) : undefined;
  if (status.agree && !fault) {
    say("every part runs the recorded release");
    return;
  }
  if (window && fault) {
    say(`the promoted release fails in its watch window (until ${window.end.toISOString()}): ${fault.part}: ${fault.evidence}; rolling it back`);
    const code = await manualRollback({ ...opts, reason: `${fault.part} failed after its promotion: ${fault.evidence}`, stage: WATCH_STAGE[fault.part] }).catch((e: unknown) => {
      say(`unexpected error: ${describe(e)}`);
      return EXIT.unexpected;
    });
    say(`rollback: ${OUTCOME[code] ?? `exit ${code}`}`);
    opts.onOutcome?.(code, "watch-window rollback");
    return;
  }
  say("repairing: deploying the recorded release again");
  const code = await deployOnce(opts);
  say(`repair: ${OUTCOME[code] ?? `exit ${code}`}`);
  opts.onOutcome?.(code, "repair");
}

/**
 * Follows the branch Flux watches and runs the guarded deploy on each new commit, one at a time: a
 * commit that arrives during a deploy is deployed next, and rollback commits whose pair already
 * runs are not deployed again. The first look deploys what the branch says now. Between commits it checks
 * what runs every `checkEverySeconds` (at every look while a promotion's watch window is open)
 * and repairs a part that differs, or rolls back a promoted release that fails in its window.
 * Runs until stopped.
 */
export async function watch(opts: WatchOptions): Promise<void> {
  const interval = (opts.intervalSeconds ?? 30) * 1000;
  const stack = await LocalWorkspace.selectStack({ stackName: opts.stack, workDir: opts.workDir });
  const cfg = (await stack.getAllConfig()) as StackConfig;
  const branch = setting(cfg, "gitBranch");
  const root = git(opts.workDir, ["rev-parse", "--show-toplevel"]).trim();
  const releaseFile = path.relative(root, path.resolve(opts.workDir, setting(cfg, "releaseFile")));
  say(`following ${branch} of ${setting(cfg, "gitUrl")} every ${interval / 1000}s for stack ${opts.stack}`);
  const checkEvery = (opts.checkEverySeconds ?? 300) * 1000;
  let lastCheck = Date.now();
  let deployed: string | undefined;
  // Resumes of a release the platform interrupted: the same commit again, waiting longer each time.
  let resumes = 0;
  while (!opts.signal?.aborted) {
    let upstream: string;
    try {
      git(root, ["fetch", "--quiet", "origin", `+refs/heads/${branch}:refs/remotes/origin/${branch}`]);
      upstream = git(root, ["rev-parse", `refs/remotes/origin/${branch}`]).trim();
    } catch (e) {
      say(`cannot fetch ${branch}: ${(e as Error).message}; trying again in ${interval / 1000}s`);
      await sleep(interval, opts.signal);
      continue;
    }
    if (upstream !== deployed) {
      if (deployed !== undefined && onlyRollbacks(root, deployed, upstream) && (await rollbackIsLive(stack, root, releaseFile, upstream))) {
        deployed = upstream;
      } else {
        say(`deploying ${branch} at ${upstream.slice(0, 12)}`);
        // The deploy fetches again: a commit pushed since this look is the one it deploys and the one named.
        let looked = upstream;
        const code = await deployOnce(opts, (commit) => (looked = commit));
        // Deployed: the commit looked at, or the deploy's own rollback commit on top of it. A
        // refused commit is not tried again until another one arrives.
        say(`${looked.slice(0, 12)}: ${OUTCOME[code] ?? `exit ${code}`}`);
        opts.onOutcome?.(code, looked);
        if (code === BUSY) {
          // Not deployed: the same commit is tried again once the other deploy is done.
          await sleep(interval, opts.signal);
          continue;
        }
        if (code === EXIT.platform) {
          // Not deployed: the same commit is tried again once the platform may be back.
          resumes++;
          const wait = Math.min(MAX_BACKOFF_MS, interval * 2 ** Math.min(resumes, 10));
          say(`resuming ${looked.slice(0, 12)} in ${Math.round(wait / 1000)}s`);
          await sleep(wait, opts.signal);
          continue;
        }
        resumes = 0;
        lastCheck = Date.now();
        const head = git(root, ["rev-parse", "HEAD"]).trim();
        deployed = head !== looked && isAncestor(root, looked, head) ? head : looked;
        continue;
      }
    }
    // A promotion's watch window is checked at every look at the branch, not every few minutes.
    const every = (await openWindow(stack, cfg)) ? Math.min(checkEvery, interval) : checkEvery;
    if (Date.now() - lastCheck >= every) {
      lastCheck = Date.now();
      await checkAndRepair(opts, stack, cfg);
      continue;
    }
    await sleep(Math.min(interval, Math.max(1000, every - (Date.now() - lastCheck))), opts.signal);
  }
  say("stopped");
}
