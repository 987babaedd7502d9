import { tagProblem } from "./validate";

/** A container image reference split into its parts: `registry/repository:tag[@digest]`. */
export interface ImageRef {
  readonly registry: string;
  readonly repository: string;
  readonly tag: string;
  readonly digest?: string;
}

const REF = /^([A-Za-z0-9.-]+(?::[0-9]{1,5})?)\/([a-z0-9]+(?:[._/-][a-z0-9]+)*):([A-Za-z0-9_][A-Za-z0-9_.-]{0,127})(?:@(sha256:[a-f0-9]{64}))?$/;

/** Parses `registry/repository:tag[@sha256:…]`; the registry part is required. */
export function parseImageRef(ref: string): ImageRef {
  const m = REF.exec(ref);
  if (!m) {
    throw new Error(
      `image reference ${JSON.stringify(ref)} is not of the form registry/repository:tag[@sha256:digest]`,
    );
  }
  return { registry: m[1], repository: m[2], tag: m[3], digest: m[4] };
}

/** Renders a reference; with a digest the runtime pulls exactly that content whatever the tag says. */
export function formatImageRef(ref: ImageRef): string {
  const base = `${ref.registry}/${ref.repository}:${ref.tag}`;
  return ref.digest ? `${base}@${ref.digest}` : base;
}

/**
 * Throws unless `tag` is an image tag and matches the release pattern; `field` names where the tag
 * came from. The tag grammar holds whatever the pattern allows, since tags reach YAML and shells.
 */
export function checkTag(field: string, tag: string, pattern: string): void {
  const shown = JSON.stringify(tag.length > 80 ? `${tag.slice(0, 77)}...` : tag);
  const problem = tagProblem(tag);
  if (problem) {
    throw new Error(`${field}: tag ${shown} ${problem}`);
  }
  if (!new RegExp(pattern).test(tag)) {
    throw new Error(`${field}: tag ${shown} does not match the release pattern ${pattern}`);
  }
}
