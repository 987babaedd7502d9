import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import * as YAML from "yaml";
import { hostProblem } from "./validate";

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
 * in-cluster install applies), or an https URL, refused unless its text has the SHA-256 `sha256`
 * when one is pinned.
 */
export async function readFluxManifests(source: { kind: "url"; url: string; sha256?: string } | { kind: "directory"; path: string }): Promise<unknown[]> {
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
  const text = await res.text();
  const got = crypto.createHash("sha256").update(text).digest("hex");
  if (source.sha256 !== undefined && got !== source.sha256) {
    throw new Error(`homelab:fluxManifestsSha256: ${source.url} has SHA-256 ${got}, not the pinned ${source.sha256}; nothing of it was applied`);
  }
  return parseManifests(text, source.url);
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
  /** Secret holding the SSH keys the head commit must be signed by (fluxSignersData); none: not verified. */
  readonly verifySecretName?: string;
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
      spec: {
        url: o.gitUrl,
        ref: { branch: o.branch },
        interval: o.interval,
        secretRef: o.secretName ? { name: o.secretName } : undefined,
        // HEAD: the commit the branch points to must carry a signature by one of the Secret's keys.
        ...(o.verifySecretName ? { verify: { mode: "HEAD" as const, secretRef: { name: o.verifySecretName } } } : {}),
      },
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

/** The Secret of the keys the flux-system GitRepository verifies its head commit's signature with. */
export const FLUX_SIGNERS_NAME = "flux-system-signers";

/**
 * The signers Secret's data: SSH public keys in authorized_keys lines, under a name ending in
 * `.sshpub`, which source-controller reads as SSH keys (other names as OpenPGP keyrings).
 */
export function fluxSignersData<S>(authorizedKeys: S): { "signers.sshpub": S } {
  return { "signers.sshpub": authorizedKeys };
}

/** The deploy-key Secret's data, under the keys source-controller reads for ssh:// repositories. */
export function fluxGitAuthData<S>(deployKey: S, knownHosts: S): { identity: S; known_hosts: S } {
  return { identity: deployKey, known_hosts: knownHosts };
}

/** Git's scp-like address `[user@]host:path`, the form forges offer as their ssh clone address. */
export interface ScpAddress {
  readonly user?: string;
  readonly host: string;
  readonly path: string;
}

/**
 * The parts of `value` when git reads it as an scp-like address: no `://`, and a colon before the
 * first slash (git's own rule; a bracketed host may hold colons). Undefined otherwise.
 */
export function parseScpAddress(value: string): ScpAddress | undefined {
  if (value.includes("://")) {
    return undefined;
  }
  const m = /^(?:([^@/]*)@)?(\[[^\]/]*\]|[^@/:[\]]*):([\s\S]*)$/.exec(value);
  return m ? { user: m[1], host: m[2], path: m[3] } : undefined;
}

/**
 * The ssh:// URL Flux reads for an scp-like address: `git@host:owner/repo.git` becomes
 * `ssh://git@host/owner/repo.git`. The path is taken from the server's root, as forges (GitHub,
 * GitLab, Gitea) resolve it.
 */
export function scpToSshUrl(a: ScpAddress): string {
  return `ssh://${a.user === undefined ? "" : `${a.user}@`}${a.host}/${a.path.replace(/^\/+/, "")}`;
}

/** What keeps an scp-like address from naming a repository Flux can fetch, if anything. */
export function scpAddressProblem(a: ScpAddress): string | undefined {
  const why = (reason: string): string => `is not a valid scp-style git address (user@host:owner/repo.git): ${reason}`;
  const user = a.user === undefined ? "" : `${a.user}@`;
  if (a.user !== undefined && !/^[A-Za-z0-9._-]+$/.test(a.user)) {
    return why(`the user before @ is ${a.user ? "not a user name" : "empty"}`);
  }
  if (!a.host) {
    return why("it names no host before the colon");
  }
  if (a.user === undefined && /^(ssh|https?|git|file)$/i.test(a.host)) {
    return why(`a URL's scheme is followed by ://, as in ${a.host}://host/owner/repo.git`);
  }
  if (a.host.startsWith("[") ? !/^\[[0-9A-Fa-f:.]+\]$/.test(a.host) : hostProblem(a.host)) {
    return why(`the host ${JSON.stringify(a.host.slice(0, 40))} is not a host name or IP address`);
  }
  // The form has no port: digits after the colon start the path, though they read like a port.
  const port = /^(\d{1,5})(?:\/(.*))?$/.exec(a.path);
  if (port) {
    const rest = port[2] ?? "owner/repo.git";
    return why(
      `${port[1]} after the colon is read as the start of the path, not as a port: ` +
        `with port ${port[1]}, write ssh://${user}${a.host}:${port[1]}/${rest}; for a path that starts with ${port[1]}, write ssh://${user}${a.host}/${port[1]}/${rest}`,
    );
  }
  if (!a.path.replace(/^\/+/, "")) {
    return why("it names no repository after the colon");
  }
  if (a.path.replace(/^\/+/, "").startsWith("~")) {
    // Flux's git client does not expand ~ in ssh:// paths.
    return why(`Flux cannot read a path under the home directory (~): write the absolute path, ssh://${user}${a.host}/<absolute path>`);
  }
  if (!/^[A-Za-z0-9._/+-]+$/.test(a.path) || a.path.split("/").includes("..")) {
    return why("the path holds characters other than letters, digits and . _ / + - (or a .. segment)");
  }
  return undefined;
}

/** `homelab:gitUrl` as Flux's GitRepository takes it: an scp-like address as its ssh:// URL, any URL as it is. */
export function fluxGitUrl(value: string): string {
  const scp = parseScpAddress(value);
  return scp ? scpToSshUrl(scp) : value;
}
