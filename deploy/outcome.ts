import type { EngineEvent } from "@pulumi/pulumi/automation";
import { composeDeployName } from "../components/compose-host";
import { FRONTEND_APP_TYPE } from "../components/frontend-app";
import { GATE_PROBE_TYPE, gateProbeName } from "../components/health-gate";
import { hostCheckName } from "../components/host-check";
import { VPS_APP_TYPE, vpsComposeName } from "../components/vps-app";
import { DEPLOY_EXIT } from "../lib/remote-deploy";
import { REMOTE_SCRIPT_TYPE, remoteExitCode } from "../providers/remote-script";
import { PART } from "../stacks/names";

/** Exit codes of the guarded deploy, so automation can tell the outcomes apart. */
export const EXIT = {
  promoted: 0,
  unexpected: 1,
  /** Refused before anything changed: bad input, a policy violation, missing image, unreachable VM, lock held. */
  refused: 2,
  rolledBack: 3,
  rollbackFailed: 4,
  /** Rolled back, but the rollback commit could not be pushed: git does not record it yet. */
  notRecorded: 5,
  /**
   * The platform failed (the cluster's API, the VM's SSH or Docker engine, the registry, the
   * network), not the release: nothing excluded, nothing committed; deploying again resumes it.
   */
  platform: 6,
  /**
   * The release file names images the registry does not hold yet and the stack never promoted:
   * everything that needs no image is installed, nothing promoted. Image automation's first
   * commit is the next release.
   */
  waiting: 7,
} as const;

/** The parts of a resource's URN: `urn:pulumi:<stack>::<project>::<parent types$type>::<name>`. */
export function parseUrn(urn: string): { types: string[]; name: string } {
  const parts = urn.split("::");
  return { types: (parts[2] ?? "").split("$"), name: parts.slice(3).join("::") };
}

const KUBE_DEPLOYMENT = "kubernetes:apps/v1:Deployment";

/** A step that changed something for real (not the preview's plan, not a read or an unchanged resource). */
function appliedSteps(events: readonly EngineEvent[]): { urn: string; type: string }[] {
  return events.flatMap((e) => {
    const planning = e.resOutputsEvent?.planning ?? false;
    const m = e.resOutputsEvent?.metadata ?? e.resOpFailedEvent?.metadata;
    if (!m || planning || m.op === "same" || m.op === "read" || m.op === "refresh") {
      return [];
    }
    return [{ urn: m.urn, type: m.type }];
  });
}

const isVps = (urn: string): boolean => parseUrn(urn).types.includes(VPS_APP_TYPE);
const isFrontendWorkload = (urn: string, type: string): boolean => type === KUBE_DEPLOYMENT && parseUrn(urn).types.includes(FRONTEND_APP_TYPE);
const isRemoteDeploy = (urn: string, type: string, name: string): boolean => type === REMOTE_SCRIPT_TYPE && parseUrn(urn).name === name;
const BACKEND_DEPLOY = composeDeployName(PART.backend);
const VPS_DEPLOY = composeDeployName(vpsComposeName(PART.vps));

/** Whether the run changed what serves the homelab release: the frontend's Deployment or the backend's remote deploy. */
export function releaseMoved(events: readonly EngineEvent[]): boolean {
  return appliedSteps(events).some(({ urn, type }) => !isVps(urn) && (isFrontendWorkload(urn, type) || isRemoteDeploy(urn, type, BACKEND_DEPLOY)));
}

/** Whether the VPS's remote deploy ran (and so may have changed its host). */
export function vpsMoved(events: readonly EngineEvent[]): boolean {
  return appliedSteps(events).some(({ urn, type }) => isVps(urn) && isRemoteDeploy(urn, type, VPS_DEPLOY));
}

/**
 * What the run's refresh found differing from the recorded release: a host's drift (a stopped
 * container, another image, an edited file), a gate that no longer passes, a Kubernetes object
 * changed on the cluster. One line a finding, named by resource.
 */
export function driftFound(events: readonly EngineEvent[]): string[] {
  const found = events.flatMap((e) => {
    // A refresh reports its reads as `refresh` steps, a preview of one as `same` or `update`
    // steps; an update's own outputs carry no drift, so any step's outputs will do.
    const m = e.resOutputsEvent?.metadata;
    if (!m) {
      return [];
    }
    const name = parseUrn(m.urn).name;
    const drift = m.new?.outputs?.drift as unknown;
    if (Array.isArray(drift) && drift.length > 0) {
      return drift.map((d) => `${name}: ${String(d)}`);
    }
    const diffs = (m.diffs ?? []).filter((d) => !d.startsWith("__") && d !== "drift");
    return m.op === "refresh" && m.type.startsWith("kubernetes:") && diffs.length > 0 ? [`${name}: changed on the cluster (${diffs.join(", ")})`] : [];
  });
  return [...new Set(found)];
}

/** URNs of the resources whose step failed. */
export function failedUrns(events: readonly EngineEvent[]): string[] {
  return events.flatMap((e) => {
    const d = e.diagnosticEvent;
    const urn = e.resOpFailedEvent?.metadata.urn ?? (d?.severity === "error" ? d.urn : undefined);
    return urn && !parseUrn(urn).types.includes("pulumi:pulumi:Stack") ? [urn] : [];
  });
}

/** Whether every failed resource belongs to the VPS part. */
export function onlyVpsFailed(events: readonly EngineEvent[]): boolean {
  const failed = failedUrns(events);
  return failed.length > 0 && failed.every(isVps);
}

/**
 * Whether the VPS's previous release serves after its deploy failed, by the remote deploy's exit
 * code: restored healthy, or never touched because the pull failed.
 */
export function vpsRestored(events: readonly EngineEvent[]): boolean {
  return events.some((e) => {
    const d = e.diagnosticEvent;
    const code = d?.severity === "error" && d.urn !== undefined && isVps(d.urn) ? remoteExitCode(d.message) : undefined;
    return code === DEPLOY_EXIT.restored || code === DEPLOY_EXIT.pullFailed;
  });
}

/** Keeps a remote deploy's own verdict lines (`deploy: …`) and drops compose's progress noise. */
export function summarize(message: string): string {
  const lines = message.split("\n");
  const verdict = lines.filter((l) => /^\s*deploy: /.test(l)).map((l) => l.trim());
  return verdict.length > 0 ? [lines[0], ...verdict].join("\n") : message;
}

/** The reason a run failed: each failed resource's error, else the CLI's last lines. */
export function failureReason(events: readonly EngineEvent[], fallback: string | undefined): string {
  const diags = events
    .map((e) => e.diagnosticEvent)
    .filter((d): d is NonNullable<typeof d> => d !== undefined && d.severity === "error" && !d.message.includes("update failed"))
    .map((d) => `${d.urn ? parseUrn(d.urn).name + ": " : ""}${summarize(d.message.trim())}`);
  const policy = events
    .map((e) => e.policyEvent)
    .filter((p): p is NonNullable<typeof p> => p !== undefined && p.enforcementLevel === "mandatory")
    .map((p) => `policy ${p.policyPackName}/${p.policyName}${p.resourceUrn ? ` (${parseUrn(p.resourceUrn).name})` : ""}: ${p.message.trim().split("\n")[0]}`);
  const all = [...new Set([...policy, ...diags])];
  return all.length > 0 ? all.join("\n") : (fallback ?? "the engine failed without a message");
}

/** The stage of the release that failed, named for people, from the failed resources. */
export function failedStage(events: readonly EngineEvent[]): string {
  const failed = failedUrns(events).filter((u) => !isVps(u));
  const names = failed.map((u) => parseUrn(u).name);
  const types = failed.map((u) => parseUrn(u).types);
  if (types.some((t) => t.includes(FRONTEND_APP_TYPE))) {
    return "frontend rollout";
  }
  if (names.includes(gateProbeName(PART.frontendGate))) {
    return "frontend gate";
  }
  if (names.includes(BACKEND_DEPLOY)) {
    return "backend deploy";
  }
  if (names.includes(gateProbeName(PART.backendGate))) {
    return "backend gate";
  }
  return "update";
}

/**
 * The digests of the pair the run tried, from the goal inputs of the VM check (the first step of
 * every release) or the backend gate, which both name the two images by digest. A refresh's
 * steps carry the recorded inputs, the running pair's, so they are never read.
 */
export function plannedDigests(events: readonly EngineEvent[]): { frontend?: string; backend?: string } {
  for (const e of events) {
    const m = e.resourcePreEvent?.metadata;
    if (!m || m.op === "refresh" || m.op === "read" || m.op === "delete") {
      continue;
    }
    const name = parseUrn(m.urn).name;
    const inputs = m.new?.inputs;
    const release: unknown =
      m.type === GATE_PROBE_TYPE && name === gateProbeName(PART.backendGate) ? inputs?.release
      : m.type === REMOTE_SCRIPT_TYPE && name === hostCheckName(PART.backendVm) ? (inputs?.triggers as unknown[] | undefined)?.[0]
      : undefined;
    if (typeof release === "string") {
      const [frontend, backend] = release.split(" ").map((r) => /@(sha256:[a-f0-9]{64})$/.exec(r)?.[1]);
      if (frontend && backend) {
        return { frontend, backend };
      }
    }
  }
  return {};
}
