import { LocalWorkspace, Stack } from "@pulumi/pulumi/automation";
import { commitSigners, vetIncoming } from "./commit-trust";
import { Checkout, commitFileChange, fetchUpstream, moveCheckoutTo, pushFileChange, syncCheckout } from "./git";
import { LockHeld, acquireDeployLock } from "./lock";
import { EXIT } from "./outcome";
import { StackConfig, configProblems, setting } from "./release-state";

/** A stack and its checkout, brought up to date with the branch Flux watches. */
export interface ReleaseCheckout {
  readonly stack: Stack;
  readonly cfg: StackConfig;
  readonly co: Checkout;
  /** The branch's commit the change is made on. */
  readonly base: string;
}

/** Opens the stack and its checkout for a commit to the release file; a refusal is said and returned as an exit code. */
export async function openReleaseCheckout(opts: { stack: string; workDir: string }, say: (line: string) => void): Promise<ReleaseCheckout | number> {
  const stack = await LocalWorkspace.selectStack({ stackName: opts.stack, workDir: opts.workDir });
  const cfg = (await stack.getAllConfig()) as StackConfig;
  const invalid = configProblems(cfg);
  if (invalid) {
    say(`REFUSED: ${invalid}`);
    return EXIT.refused;
  }
  try {
    const co = syncCheckout(opts.workDir, setting(cfg, "releaseFile"), setting(cfg, "gitUrl"), setting(cfg, "gitBranch"), vetIncoming(cfg, false), commitSigners(cfg));
    return { stack, cfg, co, base: fetchUpstream(co) };
  } catch (e) {
    say(`REFUSED: ${(e as Error).message}`);
    return EXIT.refused;
  }
}

/**
 * Commits a change of the release file on the branch and pushes it while the stack's deploy lock
 * is held, so no deploy runs meanwhile and misses it. Returns the pushed commit, or the exit code
 * of a refusal (the lock held, the push refused), which it has said.
 */
export async function pushReleaseChange(rc: ReleaseCheckout, change: (text: string) => string, message: string, say: (line: string) => void): Promise<string | number> {
  let lock: Awaited<ReturnType<typeof acquireDeployLock>>;
  try {
    lock = await acquireDeployLock({ project: (await rc.stack.workspace.projectSettings()).name, stack: rc.stack.name, say });
  } catch (e) {
    if (e instanceof LockHeld) {
      say(`REFUSED: ${e.message}; nothing was committed`);
      return EXIT.refused;
    }
    throw e;
  }
  try {
    const pushed = pushFileChange(rc.co, change, message, { base: rc.base, sha: commitFileChange(rc.co, rc.base, change, message) });
    moveCheckoutTo(rc.co, pushed.sha);
    return pushed.sha;
  } catch (e) {
    say(`NOT RECORDED: ${(e as Error).message}; nothing was deployed`);
    return EXIT.refused;
  } finally {
    await lock.release();
  }
}
