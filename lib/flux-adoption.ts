import { fluxSyncObjects } from "./flux-install";
import { KubeApi, KubeApiUnreachable, KubeconfigError, kubeApi } from "./kube-api";
import { embeddedCredentials } from "./validate";

/*
 * A cluster that already runs Flux (someone ran `flux bootstrap`) has a GitRepository and a
 * Kustomization in flux-system, usually named as the program's own. With server-side apply the
 * program's Kubernetes provider takes such objects over without a word and re-points them at its
 * git URL and path; with prune on, Flux then deletes what the old path applied. So the program
 * looks first, and refuses unless the user opts in (homelab:fluxAdopt).
 */

/** The namespace of the program's Flux objects (FluxBootstrap's default, which the homelab stack keeps). */
export const FLUX_NAMESPACE = "flux-system";

/**
 * The field manager the Pulumi Kubernetes provider writes with: `pulumi-kubernetes` with
 * client-side apply, `pulumi-kubernetes-<random suffix>` with server-side apply (its
 * fieldManagerName in provider/pkg/provider/provider.go; the program sets no
 * pulumi.com/patchFieldManager annotation that would rename it).
 */
export const PULUMI_FIELD_MANAGER_PREFIX = "pulumi-kubernetes";

export type FluxKind = "GitRepository" | "Kustomization";

/** Where each kind is listed in flux-system. */
export const FLUX_COLLECTIONS: Readonly<Record<FluxKind, string>> = {
  GitRepository: `/apis/source.toolkit.fluxcd.io/v1/namespaces/${FLUX_NAMESPACE}/gitrepositories`,
  Kustomization: `/apis/kustomize.toolkit.fluxcd.io/v1/namespaces/${FLUX_NAMESPACE}/kustomizations`,
};

/** The name of each Flux object the program creates, as fluxSyncObjects names them. */
export function programFluxNames(): Readonly<Record<FluxKind, string>> {
  const sync = fluxSyncObjects({ gitUrl: "", namespace: FLUX_NAMESPACE, branch: "", path: "", interval: "", timeout: "" });
  return { GitRepository: sync.gitRepository.metadata.name, Kustomization: sync.kustomization.metadata.name };
}

/** A Flux object in flux-system the program did not make. */
export interface ForeignFluxObject {
  readonly kind: FluxKind;
  readonly name: string;
  /** `spec.url` of a GitRepository. */
  readonly url?: string;
  /** `spec.path` of a Kustomization. */
  readonly path?: string;
  /** `spec.prune` of a Kustomization. */
  readonly prune?: boolean;
  /** A Kustomization's source in flux-system, `GitRepository/<name>`. */
  readonly source?: string;
  /** The field managers that wrote it (kustomize-controller after flux bootstrap, kubectl, flux…). */
  readonly managers: readonly string[];
  /** The program manages an object of this kind and name: deploying takes this one over. */
  readonly collides: boolean;
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);
const text = (v: unknown): string | undefined => (typeof v === "string" ? v : undefined);

/** The field managers recorded in an object's metadata.managedFields. */
function managers(obj: Record<string, unknown>): string[] {
  const fields = isRecord(obj.metadata) && Array.isArray(obj.metadata.managedFields) ? obj.metadata.managedFields : [];
  return [...new Set(fields.flatMap((f) => (isRecord(f) && typeof f.manager === "string" ? [f.manager] : [])))];
}

/** The program made (or already took over) the object: the Pulumi Kubernetes provider wrote it. */
export function isProgramManaged(obj: unknown): boolean {
  return isRecord(obj) && managers(obj).some((m) => m.startsWith(PULUMI_FIELD_MANAGER_PREFIX));
}

/**
 * The objects of flux-system's lists the program did not make, with what deploying would change
 * on them. Pure: the lists as the API server returns their `items`.
 */
export function foreignFluxObjects(
  listed: Readonly<Record<FluxKind, readonly unknown[]>>,
  managed: Readonly<Record<FluxKind, string>> = programFluxNames(),
): ForeignFluxObject[] {
  return (Object.keys(FLUX_COLLECTIONS) as FluxKind[]).flatMap((kind) =>
    listed[kind].flatMap((obj): ForeignFluxObject[] => {
      if (!isRecord(obj) || isProgramManaged(obj)) {
        return [];
      }
      const name = isRecord(obj.metadata) ? (text(obj.metadata.name) ?? "") : "";
      const spec = isRecord(obj.spec) ? obj.spec : {};
      const ref = isRecord(spec.sourceRef) ? spec.sourceRef : {};
      const sameNamespace = ref.namespace === undefined || ref.namespace === FLUX_NAMESPACE;
      return [
        {
          kind,
          name,
          ...(text(spec.url) !== undefined ? { url: text(spec.url) } : {}),
          ...(text(spec.path) !== undefined ? { path: text(spec.path) } : {}),
          ...(typeof spec.prune === "boolean" ? { prune: spec.prune } : {}),
          ...(typeof ref.kind === "string" && typeof ref.name === "string" && sameNamespace ? { source: `${ref.kind}/${ref.name}` } : {}),
          managers: managers(obj),
          collides: managed[kind] === name,
        },
      ];
    }),
  );
}

/** What deploying does about the Flux objects it found. */
export type FluxAdoptionVerdict =
  /** Nothing the program manages is held by something else. */
  | { readonly kind: "clear" }
  /** Objects would be taken over and homelab:fluxAdopt is off: the message names them and the ways out. */
  | { readonly kind: "refuse"; readonly message: string }
  /** homelab:fluxAdopt is on: one line per object taken over (or affected). */
  | { readonly kind: "adopt"; readonly warnings: readonly string[] };

/** What the program sets on the objects it manages. */
export interface FluxTarget {
  /** homelab:gitUrl as Flux reads it. */
  readonly gitUrl: string;
  /** homelab:gitPath. */
  readonly path: string;
}

/** A URL as messages show it: credentials in it masked. */
const shownUrl = (url: string | undefined): string => (url === undefined ? "no url" : (embeddedCredentials(url) ?? url));
const shownPath = (path: string | undefined): string => (path === undefined ? "no path (the repository's root)" : path);
const id = (o: ForeignFluxObject): string => `${o.kind}/${o.name}`;
const writtenBy = (o: ForeignFluxObject): string => (o.managers.length > 0 ? ` (written by ${o.managers.join(", ")})` : "");

/** What deploying changes on one object taken over. */
function takeover(o: ForeignFluxObject, target: FluxTarget): string {
  if (o.kind === "GitRepository") {
    return `${id(o)}${writtenBy(o)}: url ${shownUrl(o.url)} ${o.url === target.gitUrl ? "stays" : `becomes ${target.gitUrl}`}`;
  }
  const prune = o.prune === true ? "prune is on" : `prune is ${o.prune === false ? "off" : "unset"} and the program turns it on`;
  const source = `GitRepository/${programFluxNames().GitRepository}`;
  const resourced = o.source === undefined || o.source === source ? "" : `, its source ${o.source} becomes ${source}`;
  return (
    `${id(o)}${writtenBy(o)}: path ${shownPath(o.path)} ${o.path === target.path ? "stays" : `becomes ${target.path}`}${resourced}; ${prune}, so Flux then deletes everything ` +
    `${shownPath(o.path)} applied that ${target.path} of ${target.gitUrl} does not hold`
  );
}

/** A foreign Kustomization the program leaves alone, but whose GitRepository it re-points. */
function indirect(o: ForeignFluxObject, target: FluxTarget): string {
  return `${id(o)}${writtenBy(o)} is not taken over, but reads ${o.source}, which would fetch ${target.gitUrl}: it would apply ${shownPath(o.path)} of that repository instead${o.prune === true ? " and prune what it applied before" : ""}`;
}

/**
 * Decides from the foreign objects found. Only objects with a name the program manages are taken
 * over; the others stay as they are and matter only when they read a GitRepository that is. Pure.
 */
export function fluxAdoptionVerdict(objects: readonly ForeignFluxObject[], adopt: boolean, target: FluxTarget): FluxAdoptionVerdict {
  const taken = objects.filter((o) => o.collides);
  if (taken.length === 0) {
    return { kind: "clear" };
  }
  const repointed = new Set(taken.filter((o) => o.kind === "GitRepository").map(id));
  const affected = objects.filter((o) => !o.collides && o.kind === "Kustomization" && o.source !== undefined && repointed.has(o.source));
  if (adopt) {
    return {
      kind: "adopt",
      warnings: [
        ...taken.map((o) => `homelab:fluxAdopt: taking over ${takeover(o, target)}`),
        ...affected.map((o) => `homelab:fluxAdopt: ${indirect(o, target)}`),
      ],
    };
  }
  // The Kustomizations reading a re-pointed GitRepository are suspended too: they stay, and would apply the new repository.
  const suspend = [...taken, ...affected].filter((o) => o.kind === "Kustomization").map((o) => `flux suspend kustomization ${o.name}`);
  // The Kustomizations first: deleted while their GitRepository is there, nothing fails on the way.
  const remove = [...taken].sort((a, b) => (a.kind === b.kind ? 0 : a.kind === "Kustomization" ? -1 : 1)).map((o) => `kubectl -n ${FLUX_NAMESPACE} delete ${o.kind.toLowerCase()} ${o.name}`);
  return {
    kind: "refuse",
    message: [
      `${FLUX_NAMESPACE} already holds Flux objects this program did not make (flux bootstrap, or by hand), and deploying would take them over; nothing was changed:`,
      ...taken.map((o) => `  - ${takeover(o, target)}`),
      ...affected.map((o) => `  - ${indirect(o, target)}`),
      "Either:",
      `  - adopt them: check that homelab:gitUrl (${target.gitUrl}) and homelab:gitPath (${target.path}) hold what the cluster needs, then: pulumi config set homelab:fluxAdopt true`,
      `  - or delete them first${suspend.length > 0 ? ", suspended so that what they applied stays" : ""}: ${[...suspend, ...remove].join(", then ")}`,
    ].join("\n"),
  };
}

/** The API server answered, but not with the list asked for (401, 403, 500…). */
export class FluxListUnavailable extends Error {
  constructor(message: string) {
    super(message);
    this.name = "FluxListUnavailable";
  }
}

/** The items of both lists in flux-system; the API server's 404 (no Flux CRDs, or no namespace) is an empty list. */
export async function listFluxObjects(api: KubeApi): Promise<Record<FluxKind, unknown[]>> {
  const [GitRepository, Kustomization] = await Promise.all(
    (["GitRepository", "Kustomization"] as const).map(async (kind) => {
      const path = FLUX_COLLECTIONS[kind];
      const res = await api.get(path);
      // The API server's own 404 carries a Status object; anything else answering 404 is not it.
      if (res.status === 404 && isRecord(res.body) && res.body.kind === "Status") {
        return [];
      }
      if (res.status !== 200 || !isRecord(res.body) || !Array.isArray(res.body.items)) {
        throw new FluxListUnavailable(`GET ${path} on ${api.server}: ${res.status === 200 || res.status === 404 ? `${res.summary}, not the Kubernetes API's answer` : res.summary}`);
      }
      return res.body.items as unknown[];
    }),
  );
  return { GitRepository, Kustomization };
}

export interface FluxAdoptionCheck {
  /** homelab:kubeconfig. */
  readonly kubeconfig: string;
  /** homelab:kubeContext. */
  readonly context?: string;
  /** homelab:fluxAdopt. */
  readonly adopt: boolean;
  readonly target: FluxTarget;
  readonly timeoutMs?: number;
}

/**
 * Looks for Flux objects in flux-system the program would take over. Rejects with the refusal
 * (naming each object and the ways out) when homelab:fluxAdopt is off; resolves to the lines to
 * warn with: what is taken over, or why the check could not be made.
 *
 * A check that cannot be made (no answer from the API server, a kubeconfig this client cannot
 * use, the lists refused) does not block: a preview in CI may have no access to the cluster, and
 * the Kubernetes provider, which changes the objects, uses the same server and credentials, so
 * when nothing answers here nothing is applied there either. The warning says so and how to look
 * by hand; the one gap (a server that answers the provider moments later) is accepted.
 */
export async function checkFluxAdoption(o: FluxAdoptionCheck): Promise<string[]> {
  let listed: Record<FluxKind, unknown[]>;
  try {
    listed = await listFluxObjects(kubeApi(o.kubeconfig, o.context, { timeoutMs: o.timeoutMs }));
  } catch (e) {
    if (e instanceof KubeApiUnreachable || e instanceof KubeconfigError || e instanceof FluxListUnavailable) {
      return [
        `The check for Flux objects in ${FLUX_NAMESPACE} that this program did not make was skipped (${e.message}). ` +
          `Had flux bootstrap run on this cluster, deploying would take over its GitRepository and Kustomization (see homelab:fluxAdopt); ` +
          `look with: kubectl -n ${FLUX_NAMESPACE} get gitrepositories,kustomizations`,
      ];
    }
    throw e;
  }
  const verdict = fluxAdoptionVerdict(foreignFluxObjects(listed), o.adopt, o.target);
  switch (verdict.kind) {
    case "clear":
      return [];
    case "adopt":
      return [...verdict.warnings];
    case "refuse":
      throw new Error(verdict.message);
    default: {
      const exhaustive: never = verdict;
      throw new Error(`unknown verdict ${JSON.stringify(exhaustive)}`);
    }
  }
}
