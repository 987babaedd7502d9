/** Recorded by `npm run deploy` when it deployed the last good pair again after a failure. */
export interface RollbackEvent {
  /** Unique per rollback, so the same event is recorded once. */
  readonly id: string;
  readonly at: string;
  /** The tags that failed. */
  readonly failed: { readonly frontend: string; readonly backend: string };
  /** The pair deployed again. */
  readonly restored?: { readonly frontend: string; readonly backend: string };
  /** The stage that failed (e.g. "backend gate"). */
  readonly stage?: string;
  readonly reason: string;
  /** Seconds each stage of the failed deploy took (preview, up). */
  readonly stages: Readonly<Record<string, number>>;
}

/** Parses the `homelab:rollbackEvent` value; returns a problem text on bad input. */
export function parseRollbackEvent(text: string): RollbackEvent | string {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return "is not JSON";
  }
  const o = v as Partial<RollbackEvent> | null;
  const ok =
    o !== null &&
    typeof o === "object" &&
    typeof o.id === "string" &&
    typeof o.at === "string" &&
    typeof o.reason === "string" &&
    typeof o.failed?.frontend === "string" &&
    typeof o.failed?.backend === "string" &&
    typeof o.stages === "object" &&
    o.stages !== null &&
    Object.values(o.stages).every((n) => typeof n === "number");
  return ok ? (o as RollbackEvent) : "is not a rollback record {id, at, reason, failed: {frontend, backend}, stages}";
}
