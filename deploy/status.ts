import type { EngineEvent } from "@pulumi/pulumi/automation";
import { composeDeployName } from "../components/compose-host";
import { FRONTEND_APP_TYPE } from "../components/frontend-app";
import { gateProbeName } from "../components/health-gate";
import type { PromotedRelease } from "../components/release-record";
import { vpsComposeName, vpsRunningImageName } from "../components/vps-app";
import { composeImages, stopsService } from "../lib/live";
import { PART } from "../stacks/names";
import { parseUrn } from "./outcome";

/**
 * How a part stands against the recorded release, from best to worst for whoever is paged:
 * it agrees; it serves, but not as recorded (drift); it could not be read (unreachable); it does
 * not serve (down).
 */
export type Condition = "agrees" | "drift" | "unreachable" | "down";
const SEVERITY: readonly Condition[] = ["agrees", "drift", "unreachable", "down"];

/** One part of the stack: what the stack records and what runs, and whether they agree. */
export interface PartStatus {
  readonly part: string;
  readonly recorded: string;
  readonly running: string;
  readonly condition: Condition;
  /** What differs; empty when the part runs what is recorded. */
  readonly findings: string[];
  /** For a host: how often its containers restarted since they were created. */
  readonly restarts?: number;
}

export interface StackStatus {
  readonly stack: string;
  readonly agree: boolean;
  /** The worst part's condition. */
  readonly condition: Condition;
  readonly parts: PartStatus[];
}

/**
 * Exit codes of `npm run status`: the worst part's condition, so cron or a monitor can tell a
 * part that does not serve (3) from one it could not reach (4) and from drift (1). 2: the
 * command or the stack could not be read at all.
 */
export const STATUS_EXIT = { agrees: 0, drift: 1, unreadable: 2, down: 3, unreachable: 4 } as const;

/** The worst of some conditions; "agrees" for none. */
export function worst(conditions: readonly Condition[]): Condition {
  return conditions.reduce<Condition>((w, c) => (SEVERITY.indexOf(c) > SEVERITY.indexOf(w) ? c : w), "agrees");
}

/** The exit code of a status. */
export function statusExit(s: Pick<StackStatus, "condition">): number {
  return STATUS_EXIT[s.condition];
}

interface Read {
  readonly name: string;
  readonly types: string[];
  readonly type: string;
  readonly outputs: Record<string, unknown>;
}

/** What a refresh read of each resource: the outputs event (after the read), else the step's announcement. */
function reads(events: readonly EngineEvent[]): Read[] {
  const byUrn = new Map<string, Read>();
  for (const e of events) {
    const outputs = e.resOutputsEvent?.metadata;
    const m = outputs ?? e.resourcePreEvent?.metadata;
    // The outputs event carries what the read found (a preview of a refresh reports it as `same`).
    if (!m || (!outputs && m.op !== "refresh") || (!outputs && byUrn.has(m.urn))) {
      continue;
    }
    const { types, name } = parseUrn(m.urn);
    byUrn.set(m.urn, { name, types, type: m.type, outputs: (m.new?.outputs ?? m.old?.outputs ?? {}) as Record<string, unknown> });
  }
  return [...byUrn.values()];
}

/** The errors of resources a refresh could not read, by name. */
function unreadable(events: readonly EngineEvent[]): Map<string, string> {
  const out = new Map<string, string>();
  for (const e of events) {
    const d = e.diagnosticEvent;
    if (d?.severity === "error" && d.urn) {
      out.set(parseUrn(d.urn).name, d.message.trim().split("\n")[0]);
    }
  }
  return out;
}

const driftOf = (r: Read | undefined): string[] => (Array.isArray(r?.outputs.drift) ? (r.outputs.drift as unknown[]).map(String) : []);

/** A part that could not be read. */
const unread = (part: string, recorded: string, error: string | undefined): PartStatus => ({
  part,
  recorded,
  running: "unknown",
  condition: "unreachable",
  findings: [`cannot read: ${error ?? "not in the stack"}`],
});

function hostPart(part: string, recorded: string, r: Read | undefined, error: string | undefined): PartStatus {
  if (error || !r) {
    return unread(part, recorded, error);
  }
  const findings = driftOf(r);
  const condition: Condition = findings.length === 0 ? "agrees" : findings.some(stopsService) ? "down" : "drift";
  const counts = typeof r.outputs.restarts === "object" && r.outputs.restarts !== null ? Object.values(r.outputs.restarts as Record<string, unknown>).map(Number) : [];
  const restarts = counts.reduce((a, b) => a + (Number.isFinite(b) ? b : 0), 0);
  return { part, recorded, running: findings.length === 0 ? "as recorded, healthy" : "differs", condition, findings, ...(counts.length > 0 ? { restarts } : {}) };
}

/**
 * The VPS app where it owns its version: recorded is the digest running when the program last
 * deployed, running the one read now; a newer one is the app's own update, not a difference.
 */
function selfUpdatingPart(tag: string, self: Read, r: Read | undefined, error: string | undefined): PartStatus {
  const recordedDigest = typeof self.outputs.recorded === "string" ? self.outputs.recorded : "";
  const runningDigest = typeof self.outputs.running === "string" ? self.outputs.running : "";
  const part = hostPart(PART.vps, recordedDigest ? `${tag}@${recordedDigest}` : tag, r, error);
  if (part.running === "unknown") {
    return part;
  }
  const moved = runningDigest && runningDigest !== recordedDigest ? ", updated by the app" : "";
  const running = runningDigest ? `${tag}@${runningDigest}${moved}` : `${tag}, not running`;
  return { ...part, running: part.findings.length === 0 ? `${running}, healthy` : running };
}

function gatePart(part: string, r: Read | undefined, error: string | undefined): PartStatus {
  const targets = Array.isArray(r?.outputs.targets) ? (r.outputs.targets as { url: string }[]).map((t) => t.url).join(", ") : "";
  if (error || !r) {
    return unread(part, targets, error);
  }
  const findings = driftOf(r);
  // A gate that no longer passes is what visitors meet: the part is down for them.
  return { part, recorded: targets, running: findings.length === 0 ? "answering as expected" : "failing", condition: findings.length === 0 ? "agrees" : "down", findings };
}

interface DeploymentOutputs {
  spec?: { replicas?: number; template?: { spec?: { containers?: { image?: string }[] } } };
  status?: { readyReplicas?: number; updatedReplicas?: number };
}

function frontendPart(release: PromotedRelease | undefined, r: Read | undefined, error: string | undefined): PartStatus {
  const recorded = release ? `${release.frontend.tag}@${release.frontend.digest}` : "nothing promoted";
  if (error || !r) {
    return unread(PART.frontend, recorded, error);
  }
  const d = r.outputs as DeploymentOutputs;
  const image = d.spec?.template?.spec?.containers?.[0]?.image ?? "";
  const want = d.spec?.replicas ?? 1;
  const ready = d.status?.readyReplicas ?? 0;
  const findings: string[] = [];
  if (release && !image.endsWith(`:${release.frontend.tag}@${release.frontend.digest}`)) {
    findings.push(`the Deployment runs ${image}, not the recorded ${recorded}`);
  }
  if (want < 1) {
    findings.push(`the Deployment is scaled to ${want}`);
  } else if (ready < want) {
    findings.push(`${ready} of ${want} pods Ready`);
  }
  const condition: Condition = findings.length === 0 ? "agrees" : ready === 0 ? "down" : "drift";
  return { part: PART.frontend, recorded, running: `${ready}/${want} Ready on ${image.split("/").pop() ?? image}`, condition, findings };
}

/** The status of every part from a refresh's reads (`pulumi refresh --preview-only`) and the recorded release. */
export function stackStatus(stack: string, events: readonly EngineEvent[], release: PromotedRelease | undefined): StackStatus {
  const all = reads(events);
  const errors = unreadable(events);
  const byName = (name: string): Read | undefined => all.find((r) => r.name === name);
  const parts: PartStatus[] = [];
  const deployment = all.find((r) => r.type === "kubernetes:apps/v1:Deployment" && r.types.includes(FRONTEND_APP_TYPE));
  if (deployment || release) {
    const name = deployment?.name ?? PART.frontend;
    parts.push(frontendPart(release, deployment, errors.get(name)));
    parts.push(gatePart(PART.frontendGate, byName(gateProbeName(PART.frontendGate)), errors.get(gateProbeName(PART.frontendGate))));
    const backendName = composeDeployName(PART.backend);
    parts.push(hostPart(PART.backend, release ? `${release.backend.tag}@${release.backend.digest}` : "nothing promoted", byName(backendName), errors.get(backendName)));
    parts.push(gatePart(PART.backendGate, byName(gateProbeName(PART.backendGate)), errors.get(gateProbeName(PART.backendGate))));
  }
  const vpsName = composeDeployName(vpsComposeName(PART.vps));
  const vps = byName(vpsName);
  if (vps || errors.has(vpsName)) {
    const compose = typeof vps?.outputs.files === "object" && vps.outputs.files !== null ? (vps.outputs.files as Record<string, string>)["docker-compose.yml"] : undefined;
    const images = compose ? composeImages(compose) : {};
    const appImage = Object.entries(images).find(([service]) => service !== "caddy")?.[1];
    const self = byName(vpsRunningImageName(PART.vps));
    parts.push(self && appImage ? selfUpdatingPart(appImage, self, vps, errors.get(vpsName)) : hostPart(PART.vps, appImage ?? "the recorded compose project", vps, errors.get(vpsName)));
  }
  return { stack, agree: parts.every((p) => p.findings.length === 0), condition: worst(parts.map((p) => p.condition)), parts };
}

/** The status as a table for people. */
export function formatStatus(s: StackStatus): string {
  const rows = s.parts.map((p) => [p.part, p.recorded, p.running, p.findings.length === 0 ? p.condition : `${p.condition}: ${p.findings.join("; ")}`]);
  const head = ["part", "recorded", "running", "condition"];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => Math.min(r[i].length, 72))));
  const line = (r: string[]): string => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]))).join("  ");
  const summary = s.agree ? "every part runs the recorded release" : `some parts differ from the recorded release (worst: ${s.condition})`;
  return [`stack ${s.stack}: ${summary}`, line(head), ...rows.map(line)].join("\n");
}
