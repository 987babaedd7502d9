import * as YAML from "yaml";
import { ImageRef, checkTag, parseImageRef } from "./image-ref";

/** The frontend and backend images one release deploys together. */
export interface Release {
  readonly frontend: ImageRef;
  readonly backend: ImageRef;
}

/** What the release file must agree with. */
export interface ReleaseExpectations {
  readonly registry: string;
  readonly frontendRepository: string;
  readonly backendRepository: string;
  readonly tagPattern: string;
}

/** Tags pinned in stack config win over the release file. */
export interface ReleasePins {
  readonly frontendTag?: string;
  readonly backendTag?: string;
}

/** The ConfigMap name of the release file; Flux applies it so the cluster records the release too. */
export const RELEASE_CONFIGMAP = "website-release";

/**
 * Reads the release file: a ConfigMap whose `data.frontend` and `data.backend` carry image
 * references, each followed by a Flux setter comment so ImageUpdateAutomation rewrites them.
 * `source` names the file in error messages.
 */
export function parseReleaseFile(text: string, source: string, expect: ReleaseExpectations, pins: ReleasePins = {}): Release {
  let doc: unknown;
  try {
    doc = YAML.parse(text);
  } catch (e) {
    throw new Error(`${source}: not valid YAML: ${(e as Error).message}`, { cause: e });
  }
  const data = (doc as { data?: Record<string, unknown> } | null)?.data;
  if (!data || typeof data !== "object") {
    throw new Error(`${source}: expected a ConfigMap with a data section holding "frontend" and "backend" image references`);
  }
  const read = (key: "frontend" | "backend", repository: string, pin: string | undefined): ImageRef => {
    const value = data[key];
    if (typeof value !== "string") {
      throw new Error(`${source}: data.${key} must be an image reference string, got ${JSON.stringify(value)}`);
    }
    let ref: ImageRef;
    try {
      ref = parseImageRef(value);
    } catch (e) {
      throw new Error(`${source}: data.${key}: ${(e as Error).message}`, { cause: e });
    }
    if (ref.registry !== expect.registry || ref.repository !== repository) {
      throw new Error(
        `${source}: data.${key} is ${JSON.stringify(value)}, expected an image of ${expect.registry}/${repository}`,
      );
    }
    const tag = pin ?? ref.tag;
    checkTag(pin ? `homelab:${key}Tag` : `${source}: data.${key}`, tag, expect.tagPattern);
    return { registry: ref.registry, repository: ref.repository, tag };
  };
  return {
    frontend: read("frontend", expect.frontendRepository, pins.frontendTag),
    backend: read("backend", expect.backendRepository, pins.backendTag),
  };
}

/**
 * Renders a release file. The setter comments name the ImagePolicy objects Flux uses,
 * so the automation keeps the two lines current.
 */
export function renderReleaseFile(release: Release, policyNamespace = "flux-system"): string {
  const doc = new YAML.Document({
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: { name: RELEASE_CONFIGMAP, namespace: policyNamespace },
    data: {
      frontend: `${release.frontend.registry}/${release.frontend.repository}:${release.frontend.tag}`,
      backend: `${release.backend.registry}/${release.backend.repository}:${release.backend.tag}`,
    },
  });
  doc.commentBefore =
    " The release `pulumi up` deploys. Flux image automation rewrites the image lines\n" +
    " through their setter comments; edit by hand only to pin a release.";
  const data = doc.get("data") as YAML.YAMLMap;
  for (const item of data.items as YAML.Pair<YAML.Scalar, YAML.Scalar>[]) {
    const name = String(item.key.value);
    item.value!.comment = ` {"$imagepolicy": "${policyNamespace}:${name}"}`;
  }
  return doc.toString({ lineWidth: 0 });
}
