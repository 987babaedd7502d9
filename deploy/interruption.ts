import { LEDGER_LIMIT, LedgerEntry, RELEASE_RECORD_TYPE } from "../components/release-record";
import type { PlatformPart } from "./platform";
import type { TagPair } from "./rollback-commit";

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
