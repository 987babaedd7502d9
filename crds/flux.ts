import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";

/*
 * Typed wrappers for the Flux custom resources this program creates. Flux v2.7 made the image
 * automation APIs GA, and Flux v2.9 (the version installed by default) serves
 * image.toolkit.fluxcd.io/v1; v1beta2, which the original manifests used, is deprecated.
 * source.toolkit.fluxcd.io/v1 and kustomize.toolkit.fluxcd.io/v1 have been GA since Flux v2.0.
 */

export const SOURCE_API = "source.toolkit.fluxcd.io/v1";
export const KUSTOMIZE_API = "kustomize.toolkit.fluxcd.io/v1";
export const IMAGE_API = "image.toolkit.fluxcd.io/v1";

type Meta = pulumi.Input<k8s.types.input.meta.v1.ObjectMeta>;

interface LocalRef {
  name: pulumi.Input<string>;
}

export interface GitRepositorySpec {
  url: pulumi.Input<string>;
  ref: { branch: pulumi.Input<string> };
  interval: pulumi.Input<string>;
  secretRef?: LocalRef;
  timeout?: pulumi.Input<string>;
  /** Signatures the head commit (HEAD), its tag or both must carry, by a key in the Secret. */
  verify?: { mode: "HEAD" | "Tag" | "TagAndHEAD"; secretRef: LocalRef };
}

export interface KustomizationSpec {
  interval: pulumi.Input<string>;
  path: pulumi.Input<string>;
  prune: boolean;
  sourceRef: { kind: "GitRepository"; name: pulumi.Input<string> };
  timeout?: pulumi.Input<string>;
  wait?: boolean;
  healthChecks?: { apiVersion: string; kind: string; name: pulumi.Input<string>; namespace: pulumi.Input<string> }[];
}

export interface ImageRepositorySpec {
  image: pulumi.Input<string>;
  interval: pulumi.Input<string>;
  secretRef?: LocalRef;
  insecure?: boolean;
  /** A Secret whose `ca.crt` holds the CA the registry's https certificate chains to. */
  certSecretRef?: LocalRef;
  /** Regular expressions of tags never scanned (Flux excludes `^.*\.sig$` by default; listing any replaces that). */
  exclusionList?: pulumi.Input<string>[];
}

export interface ImagePolicySpec {
  imageRepositoryRef: LocalRef;
  policy: { alphabetical: { order: "asc" | "desc" } } | { semver: { range: string } } | { numerical: { order: "asc" | "desc" } };
  filterTags?: { pattern: pulumi.Input<string>; extract: string };
}

export interface ImageUpdateAutomationSpec {
  interval: pulumi.Input<string>;
  sourceRef: { kind: "GitRepository"; name: pulumi.Input<string> };
  git: {
    checkout: { ref: { branch: pulumi.Input<string> } };
    commit: {
      author: { name: pulumi.Input<string>; email: pulumi.Input<string> };
      messageTemplate: string;
      /** Sign each commit with the key in the Secret: `identity` for ssh, `git.asc` for gpg. */
      signingKey?: { secretRef: LocalRef; type: "gpg" | "ssh" };
    };
    push: { branch: pulumi.Input<string> };
  };
  update: { path: pulumi.Input<string>; strategy: "Setters" };
  /** Flux stops writing commits while true (a freeze). */
  suspend?: boolean;
}

export interface FluxResourceArgs<Spec> {
  metadata: Meta;
  spec: Spec;
}

/** The constructor every wrapper has: a fixed apiVersion and kind, with a typed spec. */
export type FluxResourceClass<Spec> = new (name: string, args: FluxResourceArgs<Spec>, opts?: pulumi.CustomResourceOptions) => k8s.apiextensions.CustomResource;

function fluxResource<Spec>(apiVersion: string, kind: string): FluxResourceClass<Spec> {
  return class extends k8s.apiextensions.CustomResource {
    constructor(name: string, args: FluxResourceArgs<Spec>, opts?: pulumi.CustomResourceOptions) {
      super(name, { apiVersion, kind, metadata: args.metadata, spec: args.spec }, opts);
    }
  };
}

export const GitRepository = fluxResource<GitRepositorySpec>(SOURCE_API, "GitRepository");
export const Kustomization = fluxResource<KustomizationSpec>(KUSTOMIZE_API, "Kustomization");
export const ImageRepository = fluxResource<ImageRepositorySpec>(IMAGE_API, "ImageRepository");
export const ImagePolicy = fluxResource<ImagePolicySpec>(IMAGE_API, "ImagePolicy");
export const ImageUpdateAutomation = fluxResource<ImageUpdateAutomationSpec>(IMAGE_API, "ImageUpdateAutomation");
