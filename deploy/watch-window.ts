import { PART } from "../stacks/names";
import type { Reach } from "./platform";
import type { PartStatus, StackStatus } from "./status";

/**
 * The stages a failure in the watch window after a promotion is recorded under; they start with
 * the part's name, so the rollback excludes that part's tag alone.
 */
export const WATCH_STAGE = { frontend: "frontend in its watch window", backend: "backend in its watch window" } as const;

type Part = "frontend" | "backend";

/** The parts whose tag a promotion changed (from the previous promoted pair); both for a first one. */
export function changedParts(current?: { frontend: { tag: string }; backend: { tag: string } }, previous?: { frontend: { tag: string }; backend: { tag: string } }): Part[] {
  return (["frontend", "backend"] as const).filter((p) => !previous || !current || current[p].tag !== previous[p].tag);
}

/** What a promotion's watch window needs from the stack's release record. */
export interface Promotion {
  /** When the pair was promoted (the release record's `promotedAt`). */
  readonly at?: string;
  /** The ledger's last result: a pair restored by a rollback is not watched as a new release. */
  readonly lastResult?: string;
}

/**
 * When the watch window of the last promotion ends, if it is still open at `now`: the promotion
 * is recent (within `seconds`) and was a promotion, not a rollback.
 */
export function watchWindowEnd(promotion: Promotion, seconds: number, now = new Date()): Date | undefined {
  const at = promotion.at ? Date.parse(promotion.at) : NaN;
  if (seconds <= 0 || Number.isNaN(at) || promotion.lastResult !== "promoted") {
    return undefined;
  }
  const end = new Date(at + seconds * 1000);
  return end > now ? end : undefined;
}

/** A container that keeps stopping, or whose own health check fails. */
const CONTAINER_DOWN = /^service \S+ is (restarting|exited|dead|unhealthy)$/;
/** Pods that are not Ready while the Deployment runs the recorded image. */
const PODS_DOWN = /^\d+ of \d+ pods Ready$/;
/** A gate's URL that answered, wrongly (`<url>: status 502 (expected 200)`). */
const WRONG_ANSWER = /: status \d+/;

const evidence = (p: PartStatus | undefined, pattern: RegExp): string[] => (p ? p.findings.filter((f) => pattern.test(f)) : []);

/**
 * The promoted release's own failure in what runs now, in a part the promotion changed: the
 * backend's container restarting (its count since the release started it), stopped or unhealthy,
 * the frontend's pods not Ready, or a gate's URL answering wrong. Undefined when nothing of that
 * shows, or when any part of the platform did not answer (platform faults never count against the
 * release). A part that runs something other than the recorded release (changed by hand) is
 * drift, repaired as always, not the release's failure.
 */
export function releaseFault(status: StackStatus, reach: readonly Reach[], changed: readonly Part[]): { part: Part; evidence: string } | undefined {
  if (reach.some((r) => !r.answered)) {
    return undefined;
  }
  const part = (name: string): PartStatus | undefined => status.parts.find((p) => p.part === name);
  const backend = part(PART.backend);
  const frontend = part(PART.frontend);
  // Another image or file on the host is someone's change, not this release failing.
  const moved = (p: PartStatus | undefined): boolean => (p?.findings ?? []).some((f) => /not the recorded|differs from the recorded|is missing on the host/.test(f));
  const restarted = backend?.restarts ? [`the backend's container restarted ${backend.restarts} time(s) since the release started it`] : [];
  const found: [Part, string[]][] = [
    ["backend", moved(backend) ? [] : [...evidence(backend, CONTAINER_DOWN), ...restarted]],
    ["frontend", moved(frontend) ? [] : evidence(frontend, PODS_DOWN)],
    ["frontend", moved(frontend) ? [] : evidence(part(PART.frontendGate), WRONG_ANSWER)],
    ["backend", moved(backend) ? [] : evidence(part(PART.backendGate), WRONG_ANSWER)],
  ];
  const hit = found.find(([p, lines]) => changed.includes(p) && lines.length > 0);
  return hit ? { part: hit[0], evidence: hit[1].join("; ") } : undefined;
}
