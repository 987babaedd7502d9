import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { GitRepository, Kustomization } from "../crds/flux";
import { FLUX_SIGNERS_NAME, FLUX_SYNC_NAME, FluxControllers, fluxGitAuthData, fluxInstallObjects, fluxSignersData, fluxSyncObjects, readFluxManifests } from "../lib/flux-install";

/** Where Flux's install manifests (CRDs and controllers) come from. */
export type FluxManifestSource =
  /** An https URL; with `sha256`, its text must have that SHA-256 or nothing of it is applied. */
  | { readonly kind: "url"; readonly url: string; readonly sha256?: string }
  /** A directory of YAML files, for clusters without internet access. */
  | { readonly kind: "directory"; readonly path: string };

export interface FluxBootstrapArgs {
  /** Flux's install manifests. */
  readonly manifests: FluxManifestSource;
  /** Install the controllers and CRDs; false when Flux is already installed. @default true */
  readonly install?: boolean;
  /**
   * Where Flux's controllers run: "external" installs the CRDs and namespace only, for controllers
   * run outside the cluster (see fluxInstallObjects). @default "in-cluster"
   */
  readonly controllers?: FluxControllers;
  /** Refuse to delete Flux's installation (it is never deleted with the stack either way). @default false */
  readonly protect?: boolean;
  /** @default "flux-system" */
  readonly namespace?: string;
  /** Repository Flux syncs (ssh:// or https://). */
  readonly gitUrl: pulumi.Input<string>;
  /** @default "master" */
  readonly branch?: string;
  /** Path in the repository the Kustomization applies. @default "./flux/clusters/production" */
  readonly path?: string;
  /** How often Flux fetches the repository. @default "1m" */
  readonly interval?: string;
  /** Private deploy key for ssh:// repositories (a secret). */
  readonly deployKey?: pulumi.Input<string>;
  /** known_hosts line of the git server, required with a deploy key. */
  readonly knownHosts?: pulumi.Input<string>;
  /**
   * SSH public keys, as authorized_keys lines, one of which must have signed the branch's head
   * commit for Flux to apply it (the GitRepository's verify). @default none: not verified
   */
  readonly verifySigners?: string;
  /** How long the Kustomization waits for what it applied to become healthy. @default "5m" */
  readonly timeout?: string;
}

/**
 * Flux on the cluster: its controllers and CRDs, the `flux-system` GitRepository with its deploy
 * key, and the `flux-system` Kustomization that applies the cluster path. The CRDs are installed
 * strictly before any custom resource is created; other components' Flux objects depend on this
 * component as a whole.
 */
export class FluxBootstrap extends pulumi.ComponentResource {
  /** Namespace of Flux's objects. */
  public readonly namespace: pulumi.Output<string>;
  /** Name of the GitRepository image automation pushes through. */
  public readonly gitRepositoryName: pulumi.Output<string>;

  constructor(name: string, args: FluxBootstrapArgs, opts?: pulumi.ComponentResourceOptions) {
    super("homelab:flux:FluxBootstrap", name, {}, opts);
    const ns = args.namespace ?? "flux-system";
    const branch = args.branch ?? "master";
    const path = args.path ?? "./flux/clusters/production";
    const interval = args.interval ?? "1m";
    const timeout = args.timeout ?? "5m";
    const install = args.install ?? true;
    if (args.deployKey !== undefined && args.knownHosts === undefined) {
      throw new pulumi.ResourceError("FluxBootstrap: knownHosts is required with a deployKey, so Flux can verify the git server", this);
    }

    const controllers = args.controllers ?? "in-cluster";
    const installed: pulumi.Resource[] = [];
    if (install) {
      const manifests = args.manifests;
      // In-cluster, the provider reads the manifests itself; external controllers need them read
      // here to leave the controllers out, and pinned ones to check what was downloaded.
      const pinned = manifests.kind === "url" && manifests.sha256 !== undefined;
      const source =
        controllers === "in-cluster" && !pinned
          ? { files: [manifests.kind === "url" ? manifests.url : `${manifests.path.replace(/\/+$/, "")}/*.yaml`] }
          : { objs: pulumi.output(readFluxManifests(manifests).then((objs) => fluxInstallObjects(objs, controllers))) };
      // Deleting Flux's CRDs deletes every Flux object in the cluster, so the stack never does.
      installed.push(new k8s.yaml.v2.ConfigGroup(`${name}-install`, source, { parent: this, protect: args.protect ?? false, retainOnDelete: true }));
    }

    let secretName: string | undefined;
    if (args.deployKey !== undefined) {
      secretName = FLUX_SYNC_NAME;
      installed.push(
        new k8s.core.v1.Secret(
          `${name}-git-auth`,
          {
            metadata: { name: secretName, namespace: ns },
            type: "Opaque",
            stringData: fluxGitAuthData(pulumi.secret(args.deployKey), pulumi.output(args.knownHosts!)),
          },
          { parent: this, dependsOn: installed.slice() },
        ),
      );
    }

    let verifySecretName: string | undefined;
    if (args.verifySigners !== undefined) {
      verifySecretName = FLUX_SIGNERS_NAME;
      installed.push(
        new k8s.core.v1.Secret(
          `${name}-signers`,
          { metadata: { name: verifySecretName, namespace: ns }, type: "Opaque", stringData: fluxSignersData(args.verifySigners) },
          { parent: this, dependsOn: installed.slice() },
        ),
      );
    }

    const sync = fluxSyncObjects({ gitUrl: args.gitUrl, namespace: ns, branch, path, interval, timeout, secretName, verifySecretName });
    const repo = new GitRepository(`${name}-source`, sync.gitRepository, { parent: this, dependsOn: installed });
    new Kustomization(`${name}-sync`, sync.kustomization, { parent: this, dependsOn: [repo] });

    this.namespace = pulumi.output(ns);
    this.gitRepositoryName = repo.metadata.name;
    this.registerOutputs({ namespace: this.namespace, gitRepositoryName: this.gitRepositoryName });
  }
}
