import type { EngineEvent } from "@pulumi/pulumi/automation";
import { composeDeployName } from "../components/compose-host";
import { FRONTEND_APP_TYPE } from "../components/frontend-app";
import { gateProbeName } from "../components/health-gate";
import { hostCheckName, hostKeyPinName } from "../components/host-check";
import { VPS_APP_TYPE } from "../components/vps-app";
import { DEPLOY_EXIT, HOST_CHECK_EXIT } from "../lib/remote-deploy";
import { remoteExitCode } from "../providers/remote-script";
import { PART } from "../stacks/names";
import { parseUrn } from "./outcome";
import type { PlatformPart, Reach } from "./platform";

/**
 * Who a failed run is blamed on. A release is at fault only on evidence from its own workload
 * while the platform answered; everything else, the unknown included, is the platform's, so a
 * good release is never excluded for a platform's sake.
 */
export type Verdict =
  | { readonly fault: "release"; readonly part: "frontend" | "backend"; readonly evidence: string }
  | { readonly fault: "platform"; readonly part: PlatformPart; readonly evidence: string };

/** Transport failures: the far side did not answer, whatever the release. */
const TRANSPORT =
  /ECONNREFUSED|ECONNRESET|ETIMEDOUT|EHOSTUNREACH|ENETUNREACH|ENOTFOUND|EAI_AGAIN|EPIPE|connection refused|connection reset|no route to host|i\/o timeout|handshake timeout|context deadline exceeded|unexpected EOF|client connection lost|unreachable|cannot reach|was lost|currently unable to handle|Service Unavailable|TimeoutError|aborted/i;
/** The Kubernetes provider's report of a pod of the rollout, e.g. `[Pod website/frontend-x]: containers with unready status`. */
const POD_EVIDENCE = /\[Pod [^\]]+\]:[^\n]*/g;
/** A pod whose image the node could not pull: the registry (or the way to it) failed, not the release. */
const IMAGE_PULL = /ErrImagePull|ImagePullBackOff|pull access denied|failed to pull/i;

interface Failure {
  readonly name: string;
  readonly types: string[];
  readonly message: string;
}

/** The errors of the homelab part and of the program, in the order the engine reported them. */
function failures(events: readonly EngineEvent[]): Failure[] {
  return events.flatMap((e) => {
    const d = e.diagnosticEvent;
    if (d?.severity !== "error") {
      return [];
    }
    // The program's own errors come without a resource.
    const { types, name } = d.urn ? parseUrn(d.urn) : { types: [], name: "" };
    // The stack's own errors (the program's: a registry that does not answer) count; the VPS's do not.
    if (types.includes(VPS_APP_TYPE)) {
      return [];
    }
    return [{ name, types, message: d.message.trim() }];
  });
}

const firstLine = (text: string): string => text.split("\n").find((l) => l.trim() !== "")?.trim() ?? text;
/** The remote deploy's own verdict lines, which name what failed on the host. */
const deployLines = (text: string): string =>
  text
    .split("\n")
    .filter((l) => /^\s*deploy: /.test(l))
    .map((l) => l.trim())
    .slice(0, 4)
    .join("; ");

/** A platform part that did not answer when checked after the failure. */
function silent(reach: readonly Reach[], parts: readonly PlatformPart[]): Reach | undefined {
  return reach.find((r) => parts.includes(r.part) && !r.answered);
}

const platform = (part: PlatformPart, evidence: string): Verdict => ({ fault: "platform", part, evidence });

function judgeFrontendRollout(f: Failure, reach: readonly Reach[]): Verdict {
  const pods = [...f.message.matchAll(POD_EVIDENCE)].map((m) => m[0].trim());
  if (pods.length > 0 && !pods.some((p) => IMAGE_PULL.test(p))) {
    return { fault: "release", part: "frontend", evidence: pods.slice(0, 3).join("; ") };
  }
  if (pods.some((p) => IMAGE_PULL.test(p))) {
    return platform("registry", `the cluster's node could not pull the image: ${pods.find((p) => IMAGE_PULL.test(p))}`);
  }
  const api = silent(reach, ["Kubernetes API"]);
  if (api || TRANSPORT.test(f.message)) {
    return platform("Kubernetes API", api ? `${api.address} does not answer; ${firstLine(f.message)}` : firstLine(f.message));
  }
  return platform("unknown", `the rollout failed without evidence from its pods: ${firstLine(f.message)}`);
}

/** The tags of the release a deploy was moving from. */
export interface PreviousTags {
  readonly frontend: string;
  readonly backend: string;
}

function judgeGate(f: Failure, part: "frontend" | "backend", reach: readonly Reach[], previous?: PreviousTags): Verdict {
  const last = /last result: (.*)$/m.exec(f.message)?.[1] ?? firstLine(f.message);
  const down = silent(reach, part === "frontend" ? ["Kubernetes API", "ingress"] : ["Kubernetes API", "ingress", "backend VM (SSH)"]);
  if (down) {
    return platform(down.part, `${down.address} does not answer; the gate saw: ${last}`);
  }
  // The release being replaced answered the gate: the traffic has not switched to the new one (an
  // ingress still routing to the old pods, say, after the API server it watches came back). That
  // says nothing of the new release, which another deploy tries again once the way switches.
  const answered = /the version \([^)]*\) is "([^"]*)"/.exec(f.message)?.[1];
  if (previous && answered !== undefined && answered === previous[part]) {
    return platform("ingress", `the previous ${part} release ${answered} still answered at the gate's URL instead of the new one; the gate saw: ${last}`);
  }
  // It passed, then stopped answering or answered wrong in its soak while the platform answers:
  // the release went down on the way that had just worked.
  const soak = /passed, then failed .*$/m.exec(f.message)?.[0];
  if (soak) {
    return { fault: "release", part, evidence: `${gateProbeName(part === "frontend" ? PART.frontendGate : PART.backendGate)}: ${soak}` };
  }
  // An HTTP answer came back: the way to the release works, and the release answered wrong.
  if (/^status \d+/.test(last)) {
    return { fault: "release", part, evidence: `${gateProbeName(part === "frontend" ? PART.frontendGate : PART.backendGate)}: ${last}` };
  }
  return platform(TRANSPORT.test(last) ? "ingress" : "unknown", `the gate got no HTTP answer: ${last}`);
}

/** What the docker CLI says when its engine does not answer. */
const DOCKER_DOWN = /Cannot connect to the Docker daemon at \S+ Is the docker daemon running\?|Is the docker daemon running\?/;

function judgeRemote(f: Failure, reach: readonly Reach[]): Verdict {
  const code = remoteExitCode(f.message);
  const vm = silent(reach, ["backend VM (SSH)"]);
  if (code === DEPLOY_EXIT.restored || code === DEPLOY_EXIT.restoreFailed || code === DEPLOY_EXIT.noPrevious) {
    return { fault: "release", part: "backend", evidence: deployLines(f.message) || firstLine(f.message) };
  }
  if (code === DEPLOY_EXIT.pullFailed) {
    return platform("registry", `the VM could not pull the release's images: ${deployLines(f.message)}`);
  }
  // Another deploy held the host, or the run never arrived whole: nothing changed there.
  if (code === DEPLOY_EXIT.busy || code === DEPLOY_EXIT.incomplete) {
    return platform("backend VM (SSH)", deployLines(f.message) || firstLine(f.message));
  }
  // The run was killed or the VM restarted under it: the host's doing, and the next run undoes it.
  if (code === DEPLOY_EXIT.lost) {
    return platform("backend VM (SSH)", deployLines(f.message) || firstLine(f.message));
  }
  if (code === DEPLOY_EXIT.engineUnreachable || code === HOST_CHECK_EXIT.noEngine) {
    return platform("backend VM's Docker engine", firstLine(f.message.split("\n").slice(1).join("\n")) || firstLine(f.message));
  }
  // A read of the host (a refresh) whose docker found no engine: the engine restarting or down.
  const noEngine = DOCKER_DOWN.exec(f.message);
  if (noEngine) {
    return platform("backend VM's Docker engine", noEngine[0]);
  }
  if (code === undefined && (vm || TRANSPORT.test(f.message))) {
    return platform("backend VM (SSH)", firstLine(f.message));
  }
  return platform("unknown", firstLine(f.message));
}

/**
 * Classifies a failed run of the homelab part from the engine's errors and what of the platform
 * answered just after. The first failing stage decides; a failure outside the release's stages
 * (the cluster or the registry before the rollout) is the platform's.
 */
export function classify(events: readonly EngineEvent[], fallback: string | undefined, reach: readonly Reach[], previous?: PreviousTags): Verdict {
  const all = failures(events);
  const by = (name: string): Failure | undefined => all.find((f) => f.name === name);
  const frontend = all.find((f) => f.types.includes(FRONTEND_APP_TYPE));
  if (frontend) {
    return judgeFrontendRollout(frontend, reach);
  }
  const frontendGate = by(gateProbeName(PART.frontendGate));
  if (frontendGate) {
    return judgeGate(frontendGate, "frontend", reach, previous);
  }
  const remote = by(composeDeployName(PART.backend)) ?? by(hostCheckName(PART.backendVm)) ?? by(hostKeyPinName(PART.backendVm));
  if (remote) {
    return judgeRemote(remote, reach);
  }
  const backendGate = by(gateProbeName(PART.backendGate));
  if (backendGate) {
    return judgeGate(backendGate, "backend", reach, previous);
  }
  const text = [...all.map((f) => f.message), fallback ?? ""].join("\n");
  if (/cannot reach the registry/.test(text)) {
    return platform("registry", firstLine(/cannot reach the registry.*$/m.exec(text)?.[0] ?? text));
  }
  if (TRANSPORT.test(text)) {
    const down = reach.find((r) => !r.answered);
    return platform(down?.part ?? "network", `${down ? `${down.address} does not answer; ` : ""}${firstLine(text)}`);
  }
  return platform("unknown", firstLine(text));
}

/** One line for people: who is at fault and on what evidence. */
export function describeVerdict(v: Verdict): string {
  return v.fault === "release" ? `the ${v.part} release is at fault: ${v.evidence}` : `the platform failed (${v.part}), not the release: ${v.evidence}`;
}
