import * as fs from "fs";
import { LocalWorkspace } from "@pulumi/pulumi/automation";
import { GATE_PROBE_TYPE } from "../components/health-gate";
import type { Freeze } from "../lib/freeze";
import { LAST_NOTIFICATION_TAG, NotificationRecord, parseNotificationTag } from "../lib/notify";
import { KubeApi, KubeApiUnreachable, KubeconfigError, inlineKubeconfigFiles, kubeApi } from "../lib/kube-api";
import { ProbeIo, ProbeTarget, probeOnce, realProbeIo } from "../lib/probe";
import { RELEASE_PARTS, type Release } from "../lib/release";
import { parseUrn } from "./outcome";
import { StackConfig, StateResource, promotedIn, readRelease, secretValues, setting, stateResources } from "./release-state";
import { redact } from "./rollback-commit";
import { Condition, worst } from "./status";

/*
 * `status --quick`: a glance in about a second. Nothing is refreshed and nothing is read over SSH:
 * what the stack's state records, one probe of each gate's URLs, what image automation has
 * selected (the ImagePolicies' status on the cluster) against the release file, and the freeze.
 */

/** Each of the glance's probes and API reads gets this long: a glance must stay one. */
export const QUICK_TIMEOUT_MS = 2000;

const IMAGE_POLICY_TYPE = "kubernetes:image.toolkit.fluxcd.io/v1:ImagePolicy";

export interface GateGlance {
  /** The gate's name (`frontend-gate`, `backend-gate`). */
  readonly part: string;
  readonly urls: string[];
  readonly condition: "agrees" | "down";
  /** `URL: problem` for each URL that failed its one probe. */
  readonly failures: string[];
}

export interface PolicyGlance {
  /** The ImagePolicy, `namespace/name`. */
  readonly policy: string;
  /** The tag the policy selected (its `status.latestRef`); absent until it has selected one. */
  readonly selected?: string;
  /** The tag the release file names for the same image. */
  readonly releaseFile?: string;
  /** Image automation will commit the selected tag: it differs from the release file's. */
  readonly next: boolean;
  /** Why the policy could not be read. */
  readonly problem?: string;
}

export interface QuickStatus {
  readonly stack: string;
  readonly quick: true;
  /** The worst of the gates (agrees or down) and the cluster's answer (unreachable). */
  readonly condition: Condition;
  /** The last promoted pair, as the state records it. */
  readonly recorded: { readonly frontend?: string; readonly backend?: string; readonly at?: string; readonly lastResult?: string };
  readonly gates: GateGlance[];
  readonly automation: PolicyGlance[];
  /** Why image automation could not be read at all (a kubeconfig this client cannot use, no answer). */
  readonly automationProblem?: string;
  readonly frozen?: Freeze;
  /** Why the release file could not be read. */
  readonly releaseFileProblem?: string;
  /** The last notification the deploys sent (the stack's tag); absent when none is recorded. */
  readonly lastNotification?: NotificationRecord;
}

/** A gate's probe in the state: its name and what it checks. */
export interface StateGate {
  readonly part: string;
  readonly targets: ProbeTarget[];
}

/** The gates the state records, in the state's order. */
export function stateGates(resources: readonly StateResource[]): StateGate[] {
  return resources
    .filter((r) => r.type === GATE_PROBE_TYPE && Array.isArray(r.outputs?.targets))
    .map((r) => ({ part: parseUrn(r.urn).name.replace(/-probe$/, ""), targets: r.outputs!.targets as ProbeTarget[] }));
}

/** The ImagePolicies the state records, as `namespace/name`. */
export function statePolicies(resources: readonly StateResource[]): { namespace: string; name: string }[] {
  return resources
    .filter((r) => r.type === IMAGE_POLICY_TYPE)
    .map((r) => r.outputs?.metadata as { namespace?: string; name?: string } | undefined)
    .filter((m): m is { namespace: string; name: string } => typeof m?.name === "string" && typeof m.namespace === "string");
}

/** The tag an ImagePolicy selected: `status.latestRef.tag` (v1), else the tag of `status.latestImage` (older APIs). */
export function selectedTag(policy: unknown): string | undefined {
  const status = (policy as { status?: { latestRef?: { tag?: unknown }; latestImage?: unknown } } | undefined)?.status;
  if (typeof status?.latestRef?.tag === "string") {
    return status.latestRef.tag;
  }
  const image = typeof status?.latestImage === "string" ? status.latestImage : "";
  const at = image.lastIndexOf(":");
  return at > image.lastIndexOf("/") && at >= 0 ? image.slice(at + 1) : undefined;
}

/** Reads each policy's selection; a policy that cannot be read says why. Throws KubeApiUnreachable when the API server does not answer. */
export async function readPolicies(api: KubeApi, policies: readonly { namespace: string; name: string }[], release: Release | undefined): Promise<PolicyGlance[]> {
  return Promise.all(
    policies.map(async ({ namespace, name }) => {
      const res = await api.get(`/apis/image.toolkit.fluxcd.io/v1/namespaces/${encodeURIComponent(namespace)}/imagepolicies/${encodeURIComponent(name)}`);
      const part = RELEASE_PARTS.find((p) => p === name);
      const releaseFile = part && release ? release[part].tag : undefined;
      if (res.status !== 200) {
        return { policy: `${namespace}/${name}`, releaseFile, next: false, problem: res.summary };
      }
      const selected = selectedTag(res.body);
      return { policy: `${namespace}/${name}`, selected, releaseFile, next: selected !== undefined && releaseFile !== undefined && selected !== releaseFile };
    }),
  );
}

/** Probes each gate's URLs once. */
export async function glanceGates(gates: readonly StateGate[], io: Pick<ProbeIo, "fetch">): Promise<GateGlance[]> {
  return Promise.all(
    gates.map(async (g) => {
      const failures = await probeOnce(g.targets, QUICK_TIMEOUT_MS, io);
      return { part: g.part, urls: g.targets.map((t) => t.url), condition: failures.length === 0 ? "agrees" : "down", failures } as const;
    }),
  );
}

/** The glance's condition: a failing gate is down; an API server that did not answer, unreachable. */
export function glanceCondition(gates: readonly GateGlance[], automationUnreachable: boolean): Condition {
  return worst([...gates.map((g) => g.condition), automationUnreachable ? "unreachable" : "agrees"]);
}

/** The quick glance of a stack: its state, one probe per gate URL, image automation's selection, the freeze. */
export async function quickStatus(stackName: string, workDir: string): Promise<QuickStatus> {
  // Straight from the workspace, with --stack: selecting the stack first would cost a CLI run.
  const ws = await LocalWorkspace.create({ workDir });
  const [state, cfg, tag] = await Promise.all([
    ws.exportStack(stackName),
    ws.getAllConfig(stackName) as Promise<StackConfig>,
    // A stack whose deploys never notified has no such tag; a backend without tags has none either.
    ws.getTag(stackName, LAST_NOTIFICATION_TAG).catch(() => undefined),
  ]);
  const lastNotification = parseNotificationTag(tag);
  const resources = stateResources(state);
  const { current, promotion } = promotedIn(resources);
  let release: Release | undefined;
  let releaseFileProblem: string | undefined;
  try {
    release = readRelease(cfg, workDir);
  } catch (e) {
    releaseFileProblem = (e as Error).message;
  }
  const policies = statePolicies(resources);
  const automation = async (): Promise<{ glances: PolicyGlance[]; problem?: string; unreachable: boolean }> => {
    if (policies.length === 0) {
      return { glances: [], unreachable: false };
    }
    try {
      // Run where the kubeconfig's files are: they are read in (kubectl reads them too).
      const kubeconfig = inlineKubeconfigFiles(cfg["homelab:kubeconfig"]?.value ?? "", (f) => fs.readFileSync(f));
      const api = kubeApi(kubeconfig, setting(cfg, "kubeContext") || undefined, { timeoutMs: QUICK_TIMEOUT_MS });
      return { glances: await readPolicies(api, policies, release), unreachable: false };
    } catch (e) {
      if (e instanceof KubeconfigError || e instanceof KubeApiUnreachable) {
        return { glances: [], problem: e.message, unreachable: e instanceof KubeApiUnreachable };
      }
      throw e;
    }
  };
  const [gates, auto] = await Promise.all([glanceGates(stateGates(resources), realProbeIo()), automation()]);
  const secrets = secretValues(cfg);
  const clean = (t: string): string => redact(t, secrets);
  return {
    stack: stackName,
    quick: true,
    condition: glanceCondition(gates, auto.unreachable),
    recorded: {
      frontend: current ? `${current.frontend.tag}@${current.frontend.digest}` : undefined,
      backend: current ? `${current.backend.tag}@${current.backend.digest}` : undefined,
      at: promotion.at,
      lastResult: promotion.lastResult,
    },
    gates: gates.map((g) => ({ ...g, failures: g.failures.map(clean) })),
    automation: auto.glances,
    ...(auto.problem ? { automationProblem: clean(auto.problem) } : {}),
    ...(release?.frozen ? { frozen: release.frozen } : {}),
    ...(releaseFileProblem ? { releaseFileProblem: clean(releaseFileProblem) } : {}),
    ...(lastNotification ? { lastNotification } : {}),
  };
}

/** The last notification in one line: what, when, who heard it and who did not. */
export function describeNotification(n: NotificationRecord | undefined): string {
  if (!n) {
    return "none recorded";
  }
  const heard = n.delivered.length > 0 ? `delivered to ${n.delivered.join(", ")}` : "delivered to no receiver";
  return `${n.event} at ${n.at}: ${heard}${n.failed.length > 0 ? `; NOT delivered to ${n.failed.join(", ")}` : ""}`;
}

/** The glance as lines for people. */
export function formatQuickStatus(q: QuickStatus): string {
  const down = q.gates.filter((g) => g.condition === "down").map((g) => g.part);
  const head = down.length > 0 ? `${down.join(" and ")} failing` : q.gates.length > 0 ? "every gate passes" : "no gate recorded";
  const lines = [`stack ${q.stack}: ${head} (quick: no refresh, nothing read over SSH; npm run status without --quick reads every part)`];
  lines.push(
    q.recorded.frontend
      ? `recorded   frontend ${q.recorded.frontend}, backend ${q.recorded.backend ?? "?"}${q.recorded.at ? `, promoted ${q.recorded.at}` : ""}${q.recorded.lastResult ? `; last deploy: ${q.recorded.lastResult}` : ""}`
      : "recorded   nothing promoted yet",
  );
  for (const g of q.gates) {
    lines.push(`gate       ${g.part}: ${g.condition === "agrees" ? `passes (${[...new Set(g.urls)].join(", ")})` : `FAILS: ${g.failures.join("; ")}`}`);
  }
  for (const p of q.automation) {
    const what = p.problem
      ? `cannot read: ${p.problem}`
      : !p.selected
        ? "has selected no tag yet"
        : `selected ${p.selected}${p.next ? `; image automation commits it next (the release file names ${p.releaseFile})` : ", as the release file names"}`;
    lines.push(`automation ${p.policy} ${what}`);
  }
  if (q.automationProblem) {
    lines.push(`automation not read: ${q.automationProblem}`);
  }
  lines.push(`notified   ${describeNotification(q.lastNotification)}`);
  lines.push(q.frozen ? `frozen     by ${q.frozen.by} at ${q.frozen.at}: ${q.frozen.reason}` : q.releaseFileProblem ? `release    file not read: ${q.releaseFileProblem}` : "frozen     no");
  return lines.join("\n");
}
