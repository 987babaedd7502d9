import { KubeApiUnreachable, kubeApi } from "./kube-api";
import { parseInspect } from "./live";
import { SshEndpoint, runScript } from "./ssh";

/*
 * Restarts inside a gate's soak. A release that crashes and is restarted between two probes can
 * answer every probe; its pods' or container's restart count cannot hide it. The gate reads the
 * count when its soak starts and again when it ends: any rise fails the stage. A count that
 * cannot be read (the API server or the VM's SSH down) is the platform's problem, never the
 * release's, so it is reported and nothing is blamed.
 */

/** Where a gate reads the restarts of the part it guards. */
export type RestartSource =
  | {
      readonly kind: "pods";
      /** Kubeconfig text (a secret). */
      readonly kubeconfig: string;
      readonly context?: string;
      readonly namespace: string;
      /** Label selector of the release's pods, e.g. `app.kubernetes.io/instance=frontend,app.kubernetes.io/version=v2`. */
      readonly selector: string;
    }
  | {
      readonly kind: "compose";
      readonly connection: SshEndpoint;
      /** The host's read-only inspect script (lib/remote-deploy.ts renderInspectScript). */
      readonly inspectScript: string;
      /** The services whose containers count. */
      readonly services: readonly string[];
    };

/** One pod or container: how often it restarted, and its last exit where known. */
export interface RestartCount {
  readonly restarts: number;
  readonly lastExit?: string;
  /** Not running now (a container's status other than `running`). */
  readonly notRunning?: string;
}

/** Restart counts by pod name or compose service. */
export type RestartSnapshot = Readonly<Record<string, RestartCount>>;

/** Raised when a source could not be read; the platform's fault, never the release's. */
export class RestartsUnreadable extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "RestartsUnreadable";
  }
}

interface PodLike {
  metadata?: { name?: string };
  status?: {
    containerStatuses?: {
      restartCount?: number;
      lastState?: { terminated?: { exitCode?: number; reason?: string } };
    }[];
  };
}

/** The restarts of each pod of a Pod list (the API's `PodList`), its containers summed. */
export function podRestarts(podList: unknown): RestartSnapshot {
  const items = (podList as { items?: PodLike[] } | undefined)?.items;
  if (!Array.isArray(items)) {
    throw new RestartsUnreadable("the API server's answer is not a pod list");
  }
  const out: Record<string, RestartCount> = {};
  for (const pod of items) {
    const name = pod.metadata?.name;
    if (!name) {
      continue;
    }
    let restarts = 0;
    let lastExit: string | undefined;
    for (const c of pod.status?.containerStatuses ?? []) {
      restarts += c.restartCount ?? 0;
      const t = c.lastState?.terminated;
      if (t) {
        lastExit = `exit code ${t.exitCode ?? "unknown"}${t.reason ? `, ${t.reason}` : ""}`;
      }
    }
    out[name] = lastExit ? { restarts, lastExit } : { restarts };
  }
  return out;
}

/** The restarts of each named service's container, from the host's inspect script output. */
export function composeRestarts(inspectOutput: string, services: readonly string[]): RestartSnapshot {
  const live = parseInspect(inspectOutput);
  if (!live.engineUp) {
    throw new RestartsUnreadable("the VM's Docker engine does not answer");
  }
  const out: Record<string, RestartCount> = {};
  for (const c of live.containers) {
    if (services.includes(c.service)) {
      out[c.service] = c.status === "running" ? { restarts: c.restarts } : { restarts: c.restarts, notRunning: c.status };
    }
  }
  return out;
}

/**
 * What restarted between two snapshots, as one line, or undefined. A pod or container first seen
 * in `after` counts every restart it has; one that is gone from `after` is not judged here (the
 * probes see a part that stopped serving).
 */
export function restartsBetween(before: RestartSnapshot, after: RestartSnapshot): string | undefined {
  const found: string[] = [];
  for (const [name, now] of Object.entries(after).sort(([a], [b]) => a.localeCompare(b))) {
    const added = now.restarts - (before[name]?.restarts ?? 0);
    if (added > 0) {
      found.push(`${name} restarted ${added} time(s)${now.lastExit ? ` (last: ${now.lastExit})` : ""}`);
    } else if (now.notRunning && !before[name]?.notRunning) {
      found.push(`${name} is ${now.notRunning}`);
    }
  }
  return found.length > 0 ? found.join("; ") : undefined;
}

/** What a source covers, for messages: never a credential. */
export function describeSource(source: RestartSource): string {
  return source.kind === "pods"
    ? `the pods ${source.selector} in ${source.namespace}`
    : `the ${source.services.join(", ")} container(s) on ${source.connection.host}`;
}

/** Reads a source once. Rejects with RestartsUnreadable when it cannot be read. */
export async function readRestarts(source: RestartSource, timeoutMs = 10_000): Promise<RestartSnapshot> {
  if (source.kind === "pods") {
    const api = kubeApi(source.kubeconfig, source.context, { timeoutMs });
    let res;
    try {
      res = await api.get(`/api/v1/namespaces/${encodeURIComponent(source.namespace)}/pods?labelSelector=${encodeURIComponent(source.selector)}`);
    } catch (e) {
      throw new RestartsUnreadable(e instanceof KubeApiUnreachable ? e.message : `the API server could not be asked: ${(e as Error).message}`, { cause: e });
    }
    if (res.status !== 200) {
      throw new RestartsUnreadable(`the API server answered the pod list with ${res.summary}`);
    }
    return podRestarts(res.body);
  }
  let r;
  try {
    r = await runScript({ ...source.connection, attempts: 1 }, source.inspectScript, "", { deadlineSeconds: Math.ceil(timeoutMs / 1000) + 30 });
  } catch (e) {
    throw new RestartsUnreadable(`${source.connection.host} could not be read over SSH: ${(e as Error).message}`, { cause: e });
  }
  if (r.code !== 0) {
    throw new RestartsUnreadable(`the inspect script on ${source.connection.host} exited with code ${r.code}`);
  }
  return composeRestarts(r.stdout, source.services);
}
