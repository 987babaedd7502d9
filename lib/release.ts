import * as YAML from "yaml";
import { ImageRef, checkTag, parseImageRef } from "./image-ref";
import { Freeze, parseFreeze } from "./freeze";
import { RollbackEvent, parseRollbackEvent } from "./rollback";
import { tagProblem } from "./validate";

/** The two parts of a release. */
export type ReleasePart = "frontend" | "backend";
export const RELEASE_PARTS: readonly ReleasePart[] = ["frontend", "backend"];

/** A tag image automation must never select again, with when and why it was excluded. */
export interface ExcludedTag {
  readonly image: ReleasePart;
  readonly tag: string;
  readonly at: string;
  readonly reason: string;
}

/**
 * The whole release state, as the release file in git carries it: the frontend and backend images
 * deployed together, the tags excluded from image automation, and the last rollback.
 */
export interface Release {
  readonly frontend: ImageRef;
  readonly backend: ImageRef;
  readonly excluded: readonly ExcludedTag[];
  readonly rollback?: RollbackEvent;
  /** Releases are frozen: only the running pair is deployed until it is lifted. */
  readonly frozen?: Freeze;
}

/** What the release file must agree with. */
export interface ReleaseExpectations {
  readonly registry: string;
  readonly frontendRepository: string;
  readonly backendRepository: string;
  readonly tagPattern: string;
}

/** Tags set in stack config win over the release file (a local override; the deploy never writes them). */
export interface ReleasePins {
  readonly frontendTag?: string;
  readonly backendTag?: string;
}

/** The ConfigMap name of the release file; Flux applies it so the cluster records the release too. */
export const RELEASE_CONFIGMAP = "website-release";

const MAX_REASON = 1000;

function parseExcluded(text: unknown, source: string): ExcludedTag[] {
  if (text === undefined || text === null || text === "") {
    return [];
  }
  const where = `${source}: data.excluded`;
  if (typeof text !== "string") {
    throw new Error(`${where} must be a YAML list in a string (excluded: |), got ${typeof text}`);
  }
  let list: unknown;
  try {
    list = YAML.parse(text);
  } catch (e) {
    throw new Error(`${where}: not valid YAML: ${(e as Error).message}`, { cause: e });
  }
  if (list === null) {
    return [];
  }
  if (!Array.isArray(list)) {
    throw new Error(`${where} must be a list of {image, tag, at, reason}`);
  }
  return list.map((item: unknown, i) => {
    const e = item as Partial<ExcludedTag> | null;
    const at = `${where}[${i}]`;
    if (!e || typeof e !== "object") {
      throw new Error(`${at} must be {image, tag, at, reason}`);
    }
    if (e.image !== "frontend" && e.image !== "backend") {
      throw new Error(`${at}.image is ${JSON.stringify(e.image)}, expected "frontend" or "backend"`);
    }
    const tag = String(e.tag ?? "");
    const problem = tagProblem(tag);
    if (problem) {
      throw new Error(`${at}.tag ${JSON.stringify(tag.slice(0, 80))} ${problem}`);
    }
    const reason = String(e.reason ?? "");
    return { image: e.image, tag, at: String(e.at ?? ""), reason: reason.length > MAX_REASON ? `${reason.slice(0, MAX_REASON - 1)}…` : reason };
  });
}

function parseRollback(text: unknown, source: string): RollbackEvent | undefined {
  if (text === undefined || text === null || text === "") {
    return undefined;
  }
  let value: unknown;
  try {
    value = typeof text === "string" ? YAML.parse(text) : text;
  } catch (e) {
    throw new Error(`${source}: data.rollback: not valid YAML: ${(e as Error).message}`, { cause: e });
  }
  const event = parseRollbackEvent(JSON.stringify(value));
  if (typeof event === "string") {
    throw new Error(`${source}: data.rollback ${event}`);
  }
  return event;
}

/** `{ frozen }` while the file records a freeze, else nothing. */
function frozenOf(data: Record<string, unknown>, source: string): { frozen?: Freeze } {
  const frozen = parseFreeze(data.frozen, source);
  return frozen ? { frozen } : {};
}

/** The exclusion naming `tag` of `part`, if any. */
export function findExclusion(excluded: readonly ExcludedTag[], part: ReleasePart, tag: string): ExcludedTag | undefined {
  return excluded.find((e) => e.image === part && e.tag === tag);
}

/**
 * Reads the release file: a ConfigMap whose `data.frontend` and `data.backend` carry image
 * references, each followed by a Flux setter comment so ImageUpdateAutomation rewrites them;
 * `data.excluded` lists the tags that were rolled back, and `data.rollback` the last rollback.
 * A release naming an excluded tag is refused. `source` names the file in error messages.
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
  const excluded = parseExcluded(data.excluded, source);
  const read = (key: ReleasePart, repository: string, pin: string | undefined): ImageRef => {
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
      throw new Error(`${source}: data.${key} is ${JSON.stringify(value)}, expected an image of ${expect.registry}/${repository}`);
    }
    const tag = pin ?? ref.tag;
    const field = pin ? `homelab:${key}Tag` : `${source}: data.${key}`;
    checkTag(field, tag, expect.tagPattern);
    const exclusion = findExclusion(excluded, key, tag);
    if (exclusion) {
      throw new Error(
        `${field}: tag ${tag} is excluded: it was rolled back at ${exclusion.at} (${exclusion.reason.split("\n")[0]}). ` +
          `A commit that removes it from data.excluded releases it.`,
      );
    }
    return { registry: ref.registry, repository: ref.repository, tag };
  };
  return {
    frontend: read("frontend", expect.frontendRepository, pins.frontendTag),
    backend: read("backend", expect.backendRepository, pins.backendTag),
    excluded,
    rollback: parseRollback(data.rollback, source),
    ...frozenOf(data, source),
  };
}

/**
 * The release file's state as it stands, without judging it: the tags it names (whatever they are,
 * excluded or not), the exclusions and the last rollback. For tools that change or show the file.
 */
export function readReleaseState(text: string, source: string): { tags: Record<ReleasePart, string>; excluded: ExcludedTag[]; rollback?: RollbackEvent; frozen?: Freeze } {
  let doc: unknown;
  try {
    doc = YAML.parse(text);
  } catch (e) {
    throw new Error(`${source}: not valid YAML: ${(e as Error).message}`, { cause: e });
  }
  const data = (doc as { data?: Record<string, unknown> } | null)?.data ?? {};
  const tag = (part: ReleasePart): string => {
    const v = data[part];
    if (typeof v !== "string") {
      throw new Error(`${source}: data.${part} must be an image reference string`);
    }
    return parseImageRef(v).tag;
  };
  return {
    tags: { frontend: tag("frontend"), backend: tag("backend") },
    excluded: parseExcluded(data.excluded, source),
    rollback: parseRollback(data.rollback, source),
    ...frozenOf(data, source),
  };
}

/** The image tags of a release, by part. */
export function releaseTags(release: Pick<Release, ReleasePart>): { frontend: string; backend: string } {
  return { frontend: release.frontend.tag, backend: release.backend.tag };
}

function blockText(value: unknown): YAML.Scalar {
  const node = new YAML.Scalar(YAML.stringify(value, { lineWidth: 0 }));
  node.type = YAML.Scalar.BLOCK_LITERAL;
  return node;
}

/** What a change to the release file sets. Unset fields keep what the file says. */
export interface ReleaseChange {
  readonly tags?: Partial<Record<ReleasePart, string>>;
  /** Exclusions to add (an exclusion of the same image and tag is replaced). */
  readonly exclude?: readonly ExcludedTag[];
  /** Exclusions to remove, by image and tag. */
  readonly release?: readonly { readonly image: ReleasePart; readonly tag: string }[];
  readonly rollback?: RollbackEvent;
  /** A freeze to record, or null to lift the one recorded. */
  readonly frozen?: Freeze | null;
}

/**
 * Applies a change to the release file's text and returns the new text. The document is edited in
 * place, so comments, key order and the setter markers that image automation follows stay.
 */
export function updateReleaseFile(text: string, change: ReleaseChange): string {
  const doc = YAML.parseDocument(text);
  if (doc.errors.length > 0) {
    throw new Error(`the release file is not valid YAML: ${doc.errors[0].message}`);
  }
  const data = doc.get("data", true);
  if (!YAML.isMap(data)) {
    throw new Error("the release file has no data section");
  }
  for (const part of RELEASE_PARTS) {
    const tag = change.tags?.[part];
    if (tag === undefined) {
      continue;
    }
    const node = data.get(part, true);
    if (!YAML.isScalar(node) || typeof node.value !== "string") {
      throw new Error(`the release file has no data.${part} image reference`);
    }
    const ref = parseImageRef(node.value);
    // The scalar node is kept, and with it the setter comment image automation follows.
    node.value = `${ref.registry}/${ref.repository}:${tag}`;
  }
  if (change.exclude || change.release) {
    let list = parseExcluded(YAML.isScalar(data.get("excluded", true)) ? (data.get("excluded", true) as YAML.Scalar).value : undefined, "release file");
    const drop = [...(change.exclude ?? []), ...(change.release ?? [])];
    list = list.filter((e) => !drop.some((d) => d.image === e.image && d.tag === e.tag));
    list.push(...(change.exclude ?? []));
    if (list.length > 0) {
      data.set("excluded", blockText(list));
    } else {
      data.delete("excluded");
    }
  }
  if (change.rollback) {
    data.set("rollback", blockText(change.rollback));
  }
  if (change.frozen === null) {
    data.delete("frozen");
  } else if (change.frozen) {
    data.set("frozen", blockText(change.frozen));
  }
  return doc.toString({ lineWidth: 0 });
}

/**
 * Renders a release file. The setter comments name the ImagePolicy objects Flux uses,
 * so the automation keeps the two lines current.
 */
export function renderReleaseFile(release: Pick<Release, ReleasePart> & Partial<Release>, policyNamespace = "flux-system"): string {
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
    " The release `pulumi up` deploys. Flux image automation rewrites the image lines through\n" +
    " their setter comments; a rollback is a commit that moves them back and lists the failed\n" +
    " tags under `excluded`, which image automation never selects again.";
  const data = doc.get("data") as YAML.YAMLMap;
  for (const item of data.items as YAML.Pair<YAML.Scalar, YAML.Scalar>[]) {
    const name = String(item.key.value);
    item.value!.comment = ` {"$imagepolicy": "${policyNamespace}:${name}"}`;
  }
  const text = doc.toString({ lineWidth: 0 });
  return release.excluded?.length || release.rollback ? updateReleaseFile(text, { exclude: release.excluded, rollback: release.rollback }) : text;
}
