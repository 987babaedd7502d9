/**
 * What a Flux ImagePolicy picks from a repository's tags, as image-reflector-controller documents
 * it for a `numerical` policy: the ImageRepository drops the tags an exclusion regex matches; the
 * policy keeps the tags `filterTags.pattern` matches, extracts the named group `ts` from each
 * (`filterTags.extract: "$ts"`), orders the extracted values as numbers and, in ascending order,
 * picks the last. Release tags carry the build's unix time in that group, so the newest build wins
 * whatever its commit hash.
 */

/** The named group of a release tag pattern that holds the build's unix time. */
export const TIMESTAMP_GROUP = "ts";

/** `filterTags.extract` of the ImagePolicy: the value of the timestamp group. */
export const TIMESTAMP_EXTRACT = `$${TIMESTAMP_GROUP}`;

/**
 * The named groups a regular expression declares. Matching `(?:pattern)|` against "" always
 * succeeds (through the empty branch), and the match lists every named group, matched or not.
 */
function groupNames(pattern: string): string[] {
  return Object.keys(new RegExp(`(?:${pattern})|`).exec("")?.groups ?? {});
}

/** Why `pattern` cannot order release tags by time, if it cannot. */
export function timestampGroupProblem(pattern: string): string | undefined {
  let names: string[];
  try {
    names = groupNames(pattern);
  } catch (e) {
    return `is not a valid regular expression (${(e as Error).message})`;
  }
  if (names.includes(TIMESTAMP_GROUP)) {
    return undefined;
  }
  return (
    `has no named group (?<${TIMESTAMP_GROUP}>…) around the tag's unix time, which image automation orders the tags by ` +
    `(e.g. ^main-[a-f0-9]{7}-(?<${TIMESTAMP_GROUP}>[0-9]{10})$)`
  );
}

/** A decimal number as Go's strconv.ParseFloat reads one (its hex, Inf and NaN forms aside). */
export const DECIMAL = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

/**
 * The tag a numerical ascending ImagePolicy over `pattern` picks from `tags`, after the
 * ImageRepository's `exclusions` (regexes) dropped theirs; undefined when no tag is left.
 * As upstream, tags extracting the same value count once (the later one), and a value that is not
 * a number fails the policy (thrown, with the controller's wording).
 */
export function selectTag(tags: readonly string[], pattern: string, exclusions: readonly string[]): string | undefined {
  const filter = new RegExp(pattern);
  const excluded = exclusions.map((e) => new RegExp(e));
  const byValue = new Map<string, string>();
  for (const tag of tags) {
    if (excluded.some((e) => e.test(tag))) {
      continue;
    }
    const m = filter.exec(tag);
    if (m) {
      byValue.set(m.groups?.[TIMESTAMP_GROUP] ?? "", tag);
    }
  }
  let latest: { value: number; tag: string } | undefined;
  for (const [text, tag] of byValue) {
    if (!DECIMAL.test(text)) {
      throw new Error(`failed to parse invalid numeric value '${text}'`);
    }
    const value = Number(text);
    if (latest === undefined || value >= latest.value) {
      latest = { value, tag };
    }
  }
  return latest?.tag;
}
