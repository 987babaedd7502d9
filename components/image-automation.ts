import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { ImagePolicy, ImageRepository, ImageUpdateAutomation } from "../crds/flux";
import { renderDockerConfigJson } from "../lib/dockerconfig";
import { TIMESTAMP_EXTRACT, timestampGroupProblem } from "../lib/image-policy";

/** One image Flux watches; `name` is the ImagePolicy the release file's setter comment names. */
export interface WatchedImage {
  readonly name: string;
  /** Repository inside the registry. */
  readonly repository: string;
  /** Exact tags the scan ignores: releases that were rolled back. @default [] */
  readonly excludedTags?: readonly string[];
}

export interface ImageAutomationArgs {
  /** Registry host:port (Harbor). */
  readonly registry: string;
  /** The registry speaks plain HTTP. @default false */
  readonly insecure?: boolean;
  /** PEM CA certificate(s) the registry's https certificate chains to, beyond the system roots. @default none */
  readonly caCert?: string;
  readonly username: pulumi.Input<string>;
  readonly password: pulumi.Input<string>;
  readonly images: readonly WatchedImage[];
  /**
   * Only tags matching this pattern are candidates. Its named group `ts` (e.g.
   * `^main-[a-f0-9]{7}-(?<ts>[0-9]{10})$`) holds the build's unix time: the candidates are ordered
   * by it as numbers and the highest wins, so the newest build is picked whatever its commit hash.
   * @see https://fluxcd.io/flux/components/image/imagepolicies/#filter-tags
   */
  readonly tagPattern: string;
  /** @default "1m" */
  readonly interval?: string;
  /** GitRepository the automation commits through. */
  readonly gitRepositoryName: pulumi.Input<string>;
  /** @default "master" */
  readonly branch?: string;
  /** Path whose setter comments are updated. @default "./flux/clusters/production" */
  readonly path?: string;
  readonly author: { readonly name: string; readonly email: string };
  /** @default "flux-system" */
  readonly namespace?: string;
  /** Stop writing release commits while releases are frozen (Flux's `spec.suspend`). @default false */
  readonly suspend?: boolean;
  /** SSH private key (a secret) each automation commit is signed with. @default none: unsigned */
  readonly signingKey?: pulumi.Input<string>;
}

/** The Secret holding the registry's CA (`ca.crt`), when it has its own. */
export const REGISTRY_CA_SECRET = "harbor-ca";

/** The Secret holding the key image automation signs its commits with. */
export const SIGNING_KEY_SECRET = "image-automation-signing";

/** Lists each changed image as `old -> new` in the automation's commit message. */
export const COMMIT_MESSAGE_TEMPLATE = `chore(release): update image tags

{{ range .Changed.Changes -}}
- {{ .OldValue }} -> {{ .NewValue }}
{{ end -}}
`;

/** Escapes a literal tag for Flux's exclusion regexes. */
export function exclusionPattern(tag: string): string {
  return `^${tag.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}$`;
}

/**
 * Flux image automation: per image an ImageRepository scanning the registry with the
 * `harbor-credentials` Secret and an ImagePolicy picking the newest release tag; one
 * ImageUpdateAutomation writing the picks back to git through setter comments.
 */
export class ImageAutomation extends pulumi.ComponentResource {
  /** ImagePolicy names, in the order of `images`. */
  public readonly policyNames: pulumi.Output<string[]>;
  /** Regexes each ImageRepository excludes, by image name. */
  public readonly exclusionList: pulumi.Output<Record<string, string[]>>;

  constructor(name: string, args: ImageAutomationArgs, opts?: pulumi.ComponentResourceOptions) {
    super("homelab:flux:ImageAutomation", name, {}, opts);
    const ns = args.namespace ?? "flux-system";
    const interval = args.interval ?? "1m";
    const branch = args.branch ?? "master";
    const path = args.path ?? "./flux/clusters/production";
    const patternProblem = timestampGroupProblem(args.tagPattern);
    if (patternProblem) {
      throw new pulumi.ResourceError(`ImageAutomation: tagPattern ${JSON.stringify(args.tagPattern)} ${patternProblem}`, this);
    }

    const credentials = new k8s.core.v1.Secret(
      `${name}-registry-credentials`,
      {
        metadata: { name: "harbor-credentials", namespace: ns },
        type: "kubernetes.io/dockerconfigjson",
        stringData: {
          ".dockerconfigjson": pulumi
            .all([args.username, args.password])
            .apply(([u, p]) => pulumi.secret(renderDockerConfigJson(args.registry, u, p))),
        },
      },
      { parent: this },
    );

    // A CA certificate is not secret; Flux reads it from a Secret all the same (certSecretRef).
    const ca =
      args.caCert === undefined
        ? undefined
        : new k8s.core.v1.Secret(
            `${name}-registry-ca`,
            { metadata: { name: REGISTRY_CA_SECRET, namespace: ns }, type: "Opaque", stringData: { "ca.crt": args.caCert } },
            { parent: this },
          );

    const policies: pulumi.Resource[] = [];
    const exclusions: Record<string, string[]> = {};
    for (const image of args.images) {
      // Listing exclusions replaces Flux's default, so keep its signature-tag rule.
      const exclusionList = ["^.*\\.sig$", ...(image.excludedTags ?? []).map(exclusionPattern)];
      exclusions[image.name] = exclusionList;
      const repo = new ImageRepository(
        `${name}-${image.name}-repository`,
        {
          metadata: { name: image.name, namespace: ns },
          spec: {
            image: `${args.registry}/${image.repository}`,
            interval,
            secretRef: { name: "harbor-credentials" },
            insecure: args.insecure ?? false,
            ...(ca ? { certSecretRef: { name: REGISTRY_CA_SECRET } } : {}),
            exclusionList,
          },
        },
        { parent: this, dependsOn: ca ? [credentials, ca] : [credentials] },
      );
      policies.push(
        new ImagePolicy(
          `${name}-${image.name}-policy`,
          {
            metadata: { name: image.name, namespace: ns },
            spec: {
              imageRepositoryRef: { name: image.name },
              // Ordered by the build time the pattern extracts: an alphabetical order of whole tags
              // would let the highest commit hash win instead of the newest build.
              filterTags: { pattern: args.tagPattern, extract: TIMESTAMP_EXTRACT },
              policy: { numerical: { order: "asc" } },
            },
          },
          { parent: this, dependsOn: [repo] },
        ),
      );
    }

    const signing: pulumi.Resource[] = [];
    if (args.signingKey !== undefined) {
      signing.push(
        new k8s.core.v1.Secret(
          `${name}-signing-key`,
          // `identity`: where image-automation-controller reads an SSH signing key.
          { metadata: { name: SIGNING_KEY_SECRET, namespace: ns }, type: "Opaque", stringData: { identity: pulumi.secret(args.signingKey) } },
          { parent: this },
        ),
      );
    }

    new ImageUpdateAutomation(
      `${name}-update`,
      {
        metadata: { name: "flux-system", namespace: ns },
        spec: {
          interval,
          sourceRef: { kind: "GitRepository", name: args.gitRepositoryName },
          git: {
            checkout: { ref: { branch } },
            commit: {
              author: { name: args.author.name, email: args.author.email },
              messageTemplate: COMMIT_MESSAGE_TEMPLATE,
              ...(args.signingKey !== undefined ? { signingKey: { secretRef: { name: SIGNING_KEY_SECRET }, type: "ssh" as const } } : {}),
            },
            push: { branch },
          },
          update: { path, strategy: "Setters" },
          // Only while frozen: lifting the freeze drops the field, and Flux resumes.
          ...(args.suspend ? { suspend: true } : {}),
        },
      },
      { parent: this, dependsOn: [...policies, ...signing] },
    );

    this.policyNames = pulumi.output(args.images.map((i) => i.name));
    this.exclusionList = pulumi.output(exclusions);
    this.registerOutputs({ policyNames: this.policyNames, exclusionList: this.exclusionList });
  }
}
