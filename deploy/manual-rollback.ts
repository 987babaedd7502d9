import * as crypto from "crypto";
import { RELEASE_PARTS, findExclusion, readReleaseState } from "../lib/release";
import { DeployOptions, deploy } from "./guarded-deploy";
import { fileHistory, git } from "./git";
import { EXIT } from "./outcome";
import { openReleaseCheckout, pushReleaseChange } from "./release-commit";
import { lastPromoted, secretValues } from "./release-state";
import { notify } from "./notify";
import { MANUAL_STAGE, RollbackRecord, TagPair, failedTags, revertedCommits, rollbackChange, rollbackMessage } from "./rollback-commit";

export interface ManualRollbackOptions extends DeployOptions {
  /** The pair to return to; the previous promoted pair when unset. */
  readonly to?: TagPair;
  /** Why, for the commit and the exclusions. */
  readonly reason: string;
  /** The stage recorded as failed (its part is the one excluded). @default "manual rollback" */
  readonly stage?: string;
}

const say = (line: string): void => void process.stderr.write(`rollback: ${line}\n`);

/**
 * A rollback by hand, as the guarded deploy makes one after a failure: a commit to the branch Flux
 * watches that moves the release file to the given pair (by default the previous promoted one) and
 * excludes the tags it leaves, pushed; then the guarded deploy of it.
 */
export async function manualRollback(opts: ManualRollbackOptions): Promise<number> {
  const rc = await openReleaseCheckout(opts, say);
  if (typeof rc === "number") {
    return rc;
  }
  const { stack, co, base } = rc;
  // The file as it is on the branch: the release it names may itself be excluded already.
  const { tags: from, excluded } = readReleaseState(git(co.root, ["show", `${base}:${co.file}`]), co.file);
  let to = opts.to;
  if (!to) {
    const { previous } = await lastPromoted(stack);
    if (!previous) {
      say(`REFUSED: stack ${opts.stack} has no previous promoted release; name one with --to FRONTEND_TAG,BACKEND_TAG`);
      return EXIT.refused;
    }
    to = { frontend: previous.frontend.tag, backend: previous.backend.tag };
  }
  for (const part of RELEASE_PARTS) {
    const hit = findExclusion(excluded, part, to[part]);
    if (hit) {
      say(`REFUSED: ${part} ${to[part]} is excluded (rolled back at ${hit.at}: ${hit.reason}); a commit that removes it from data.excluded releases it`);
      return EXIT.refused;
    }
  }
  if (from.frontend === to.frontend && from.backend === to.backend) {
    say(`the release file already names frontend ${to.frontend}, backend ${to.backend}; deploying it`);
    return deploy(opts);
  }
  const record: RollbackRecord = {
    event: { id: crypto.randomUUID(), at: new Date().toISOString(), failed: from, restored: to, stage: opts.stage ?? MANUAL_STAGE, reason: opts.reason, stages: {} },
    reverts: revertedCommits(fileHistory(co, base), to),
  };
  const change = rollbackChange(record);
  const message = rollbackMessage(record);
  const pushed = await pushReleaseChange(rc, change, message, say);
  if (typeof pushed === "number") {
    return pushed;
  }
  const dropped = failedTags(from, to, record.event.stage);
  say(`committed ${pushed.slice(0, 12)} to ${co.branch}: frontend ${to.frontend}, backend ${to.backend}${dropped.length ? `; excluded ${dropped.map((d) => `${d.image} ${d.tag}`).join(", ")}` : ""}`);
  // Told once git has it, as a rollback: the deploy that follows tells what it runs.
  await notify(rc.cfg, opts.stack, [{ event: "rolled-back", pair: to, failed: from, stage: record.event.stage, reason: opts.reason, commit: { sha: pushed } }], { secrets: secretValues(rc.cfg), say, tags: rc.stack.workspace });
  return deploy(opts);
}
