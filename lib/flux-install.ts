import * as fs from "fs";
import * as path from "path";
import * as YAML from "yaml";

/**
 * Where Flux's controllers run. `in-cluster`: the install manifests as they are, controllers
 * included. `external`: the controllers run elsewhere (another cluster, a machine outside it, the
 * sandbox), so the cluster gets Flux's API and nothing that runs or authorises a controller.
 */
export type FluxControllers = "in-cluster" | "external";

export const FLUX_CONTROLLERS: readonly FluxControllers[] = ["in-cluster", "external"];

/** Name of the GitRepository, Kustomization and deploy-key Secret the bootstrap creates. */
export const FLUX_SYNC_NAME = "flux-system";

interface ManifestObject {
  readonly kind?: unknown;
  readonly metadata?: { readonly name?: unknown; readonly labels?: Record<string, unknown> };
}

/** Roles Kubernetes aggregates into view, edit and admin: they are for people, not controllers. */
function isAggregatedRole(o: ManifestObject): boolean {
  return o.kind === "ClusterRole" && Object.keys(o.metadata?.labels ?? {}).some((l) => l.startsWith("rbac.authorization.k8s.io/aggregate-to-"));
}

/**
 * The objects of Flux's install manifests the bootstrap applies. With external controllers only
 * the CustomResourceDefinitions, the Namespace and the aggregated view/edit roles stay; the
 * controllers' Deployments, Services, ServiceAccounts, their roles and bindings (one binds
 * cluster-admin), NetworkPolicies and the ResourceQuota of their pods are left out, so no
 * privileged account is left behind without a controller.
 */
export function fluxInstallObjects<T>(objects: readonly T[], controllers: FluxControllers): T[] {
  switch (controllers) {
    case "in-cluster":
      return [...objects];
    case "external": {
      const kept = objects.filter((o) => {
        const m = o as ManifestObject;
        return m.kind === "CustomResourceDefinition" || m.kind === "Namespace" || isAggregatedRole(m);
      });
      if (!kept.some((o) => (o as ManifestObject).kind === "CustomResourceDefinition")) {
        throw new Error("Flux's install manifests hold no CustomResourceDefinition: nothing to install for external controllers");
      }
      return kept;
    }
    default: {
      const exhaustive: never = controllers;
      throw new Error(`unknown Flux controllers placement ${JSON.stringify(exhaustive)}`);
    }
  }
}

/** The objects of a multi-document YAML text, empty documents skipped. */
export function parseManifests(text: string, source: string): unknown[] {
  return YAML.parseAllDocuments(text).flatMap((doc, i) => {
    if (doc.errors.length > 0) {
      throw new Error(`${source}: document ${i + 1}: ${doc.errors[0].message}`);
    }
    const value: unknown = doc.toJS();
    return value === null || value === undefined ? [] : [value];
  });
}

/**
 * Reads Flux's install manifests: a directory's `*.yaml` files in name order (the files the
 * in-cluster install applies), or an https URL.
 */
export async function readFluxManifests(source: { kind: "url"; url: string } | { kind: "directory"; path: string }): Promise<unknown[]> {
  if (source.kind === "directory") {
    const files = fs.readdirSync(source.path).filter((f) => f.endsWith(".yaml")).sort();
    return files.flatMap((f) => {
      const file = path.join(source.path, f);
      return parseManifests(fs.readFileSync(file, "utf8"), file);
    });
  }
  const res = await fetch(source.url, { signal: AbortSignal.timeout(60_000) });
  if (!res.ok) {
    throw new Error(`${source.url}: HTTP ${res.status}`);
  }
  return parseManifests(await res.text(), source.url);
}

export interface FluxSyncOptions<S> {
  /** Repository Flux syncs (ssh:// or https://). */
  readonly gitUrl: S;
  readonly namespace: string;
  readonly branch: string;
  readonly path: string;
  /** How often the repository is fetched. */
  readonly interval: string;
  /** How long the Kustomization waits for what it applied. */
  readonly timeout: string;
  /** Secret holding the deploy key and known_hosts; none for a public https repository. */
  readonly secretName?: string;
}

/**
 * The `flux-system` GitRepository and Kustomization, as plain objects: what the bootstrap creates
 * and what the sandbox's tests create when they run Flux without the program.
 */
export function fluxSyncObjects<S>(o: FluxSyncOptions<S>) {
  const metadata = { name: FLUX_SYNC_NAME, namespace: o.namespace };
  return {
    gitRepository: {
      apiVersion: "source.toolkit.fluxcd.io/v1",
      kind: "GitRepository",
      metadata,
      spec: { url: o.gitUrl, ref: { branch: o.branch }, interval: o.interval, secretRef: o.secretName ? { name: o.secretName } : undefined },
    },
    kustomization: {
      apiVersion: "kustomize.toolkit.fluxcd.io/v1",
      kind: "Kustomization",
      metadata,
      spec: {
        interval: "10m",
        path: o.path,
        prune: true,
        wait: true,
        timeout: o.timeout,
        sourceRef: { kind: "GitRepository" as const, name: FLUX_SYNC_NAME },
      },
    },
  };
}

/** The deploy-key Secret's data, under the keys source-controller reads for ssh:// repositories. */
export function fluxGitAuthData<S>(deployKey: S, knownHosts: S): { identity: S; known_hosts: S } {
  return { identity: deployKey, known_hosts: knownHosts };
}
