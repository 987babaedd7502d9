import { EngineEvent, Stack } from "@pulumi/pulumi/automation";

/** When each resource step started and finished, as the engine reported it (receipt time, ms). */
export interface Step {
  readonly urn: string;
  readonly name: string;
  readonly type: string;
  readonly op: string;
  readonly start: number;
  readonly end: number;
}

export interface Timeline {
  /** Wall-clock seconds of the whole operation. */
  readonly seconds: number;
  readonly t0: number;
  readonly steps: Step[];
  /** Operations other than "same", by op. */
  readonly changes: Record<string, number>;
}

/** Runs `pulumi up` or `pulumi preview` and records every resource step from the engine's events. */
export async function timed(stack: Stack, kind: "up" | "preview"): Promise<Timeline> {
  const starts = new Map<string, number>();
  const steps: Step[] = [];
  const onEvent = (e: EngineEvent): void => {
    const now = Date.now();
    const pre = e.resourcePreEvent?.metadata;
    if (pre) {
      starts.set(pre.urn, now);
    }
    const done = e.resOutputsEvent?.metadata ?? e.resOpFailedEvent?.metadata;
    if (done) {
      steps.push({
        urn: done.urn,
        name: done.urn.split("::").pop() ?? "",
        type: done.type,
        op: done.op,
        start: starts.get(done.urn) ?? now,
        end: now,
      });
    }
  };
  const t0 = Date.now();
  const r =
    kind === "up"
      ? await stack.up({ onEvent, color: "never" })
      : await stack.preview({ onEvent, color: "never" });
  const seconds = (Date.now() - t0) / 1000;
  const summary = "summary" in r ? r.summary.resourceChanges : r.changeSummary;
  const changes = Object.fromEntries(Object.entries(summary ?? {}).filter(([op, n]) => op !== "same" && (n ?? 0) > 0)) as Record<string, number>;
  return { seconds, t0, steps, changes };
}

/** The promotion stages, named by the resources the program gives each one. */
export const STAGES: readonly { readonly stage: string; readonly prefix: string }[] = [
  { stage: "VM check", prefix: "backend-vm" },
  { stage: "frontend gate", prefix: "frontend-gate" },
  { stage: "frontend", prefix: "frontend" },
  { stage: "backend gate", prefix: "backend-gate" },
  { stage: "backend", prefix: "backend" },
  { stage: "release record", prefix: "release" },
  { stage: "Flux", prefix: "flux" },
  { stage: "image automation", prefix: "image-automation" },
];

export function stageOf(name: string): string {
  return STAGES.find((s) => name.startsWith(s.prefix))?.stage ?? "other";
}

/**
 * Seconds per stage of one `up`: from the first step of the stage starting to its last step
 * finishing; "before the first step" covers engine start, program evaluation and the registry
 * look-ups, "after the last step" the state write and the engine's exit.
 */
export function stageSeconds(t: Timeline): Record<string, number> {
  const out: Record<string, number> = {};
  const changed = t.steps.filter((s) => s.op !== "same");
  for (const { stage } of STAGES) {
    const steps = changed.filter((s) => stageOf(s.name) === stage);
    if (steps.length > 0) {
      out[stage] = (Math.max(...steps.map((s) => s.end)) - Math.min(...steps.map((s) => s.start))) / 1000;
    }
  }
  if (t.steps.length > 0) {
    out["before the first step"] = (Math.min(...t.steps.map((s) => s.start)) - t.t0) / 1000;
    out["after the last step"] = t.seconds - (Math.max(...t.steps.map((s) => s.end)) - t.t0) / 1000;
  }
  return out;
}

/** Seconds of each step that changed something, longest first. */
export function slowestSteps(t: Timeline, n = 8): { name: string; op: string; seconds: number }[] {
  return t.steps
    .filter((s) => s.op !== "same")
    .map((s) => ({ name: s.name, op: s.op, seconds: (s.end - s.start) / 1000 }))
    .sort((a, b) => b.seconds - a.seconds)
    .slice(0, n);
}

/**
 * The median run's changed steps in start order, with what lies between them: engine start and
 * program evaluation before the first, the engine's own work (registrations, diffs of unchanged
 * resources, scheduling) between steps, and the state write after the last. Seconds from the start.
 */
export function criticalPath(t: Timeline): { what: string; from: number; to: number }[] {
  const rel = (ms: number): number => Math.round((ms - t.t0) / 10) / 100;
  const changed = t.steps.filter((s) => s.op !== "same").sort((a, b) => a.start - b.start);
  const out: { what: string; from: number; to: number }[] = [];
  if (changed.length === 0 && t.steps.length > 0) {
    // A no-op: the phases are the engine's start, reading and diffing every resource, and its end.
    const first = Math.min(...t.steps.map((s) => s.start));
    const last = Math.max(...t.steps.map((s) => s.end));
    return [
      { what: "engine start, program evaluation, registry look-ups", from: 0, to: rel(first) },
      { what: `${t.steps.length} unchanged resources read and diffed`, from: rel(first), to: rel(last) },
      { what: "state write, engine exit", from: rel(last), to: Math.round(t.seconds * 100) / 100 },
    ];
  }
  let cursor = t.t0;
  for (const s of changed) {
    if (s.start > cursor) {
      out.push({ what: out.length === 0 ? "engine start, program evaluation, registry look-ups" : "engine between steps", from: rel(cursor), to: rel(s.start) });
    }
    out.push({ what: `${s.name} (${s.op})`, from: rel(s.start), to: rel(s.end) });
    cursor = Math.max(cursor, s.end);
  }
  out.push({ what: "state write, engine exit", from: rel(cursor), to: Math.round(t.seconds * 100) / 100 });
  return out;
}
