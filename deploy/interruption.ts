import { LEDGER_LIMIT, LedgerEntry, RELEASE_RECORD_TYPE } from "../components/release-record";
import type { PlatformPart } from "./platform";
import type { RollbackRecord, TagPair } from "./rollback-commit";

/** A release the platform cut short: what was being deployed, where it stopped and why. */
export interface Interruption {
  readonly at: string;
  readonly target: TagPair;
  readonly stage: string;
  readonly part: PlatformPart;
  readonly evidence: string;
}

/** A resource of an exported stack's deployment, as far as the deploy edits it. */
export interface StateResource {
  readonly urn: string;
  readonly type: string;
  outputs?: Record<string, unknown>;
}

/**
 * Appends the interruption to the release record's ledger in an exported deployment, so that the
 * stack's own history (and `npm run releases`) shows it; the record's next update carries the
 * ledger on. Returns whether there was a record to write to.
 */
export function addInterruption(resources: readonly StateResource[], i: Interruption): boolean {
  const record = resources.find((r) => r.type === RELEASE_RECORD_TYPE);
  const outputs = record?.outputs;
  const release = outputs?.release as { frontend?: { tag: string; digest: string }; backend?: { tag: string; digest: string } } | undefined;
  if (!outputs || !release?.frontend || !release.backend) {
    return false;
  }
  const entry: LedgerEntry = {
    at: i.at,
    result: "interrupted",
    frontend: `${release.frontend.tag}@${release.frontend.digest}`,
    backend: `${release.backend.tag}@${release.backend.digest}`,
    failed: i.target,
    reason: `${i.stage}: platform (${i.part}): ${i.evidence}`,
  };
  outputs.ledger = [...((outputs.ledger as LedgerEntry[] | undefined) ?? []), entry].slice(-LEDGER_LIMIT);
  return true;
}

/** The root stack resource's output that marks a rollback begun and not yet finished. */
export const PENDING_ROLLBACK_OUTPUT = "pendingRollback";

/** A rollback a deploy began: what failed, what it restores, and why, as its commit records them. */
export type PendingRollback = RollbackRecord;

const rootOf = (resources: readonly StateResource[]): StateResource | undefined => resources.find((r) => r.type === "pulumi:pulumi:Stack");

/**
 * Records a rollback as begun (or, with undefined, as finished) on the root stack resource of an
 * exported deployment. The program's next successful update replaces the root's outputs with its
 * own, so a rollback that completes clears it by itself. Returns whether the deployment changed.
 */
export function setPendingRollback(resources: readonly StateResource[], pending: PendingRollback | undefined): boolean {
  const root = rootOf(resources);
  if (!root) {
    return false;
  }
  const outputs = root.outputs ?? {};
  if (pending === undefined && !(PENDING_ROLLBACK_OUTPUT in outputs)) {
    return false;
  }
  if (pending === undefined) {
    delete outputs[PENDING_ROLLBACK_OUTPUT];
  } else {
    outputs[PENDING_ROLLBACK_OUTPUT] = pending;
  }
  root.outputs = outputs;
  return true;
}

/** The rollback a deploy began and did not finish, if the deployment records one. */
export function pendingRollbackOf(resources: readonly StateResource[]): PendingRollback | undefined {
  const p = rootOf(resources)?.outputs?.[PENDING_ROLLBACK_OUTPUT] as PendingRollback | undefined;
  return p?.event?.id && p.event.failed && p.event.restored ? p : undefined;
}
