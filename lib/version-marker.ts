/*
 * How a gate reads which version answered: a response header, a JSON field of the body, or an
 * HTML meta tag of the page.
 */

/**
 * Where a response says which version answered: a response header, a JSON field (dot path) of
 * the body, or the `content` of an HTML `<meta name=…>` tag of the page.
 */
export interface VersionMarker {
  readonly kind: "header" | "json" | "meta";
  readonly name: string;
}

/** Parses `header:NAME`, `json:PATH` or `meta:NAME`; throws saying what is wrong with it (after the text). */
export function parseVersionMarker(text: string): VersionMarker {
  const m = /^(header|json|meta):(.+)$/.exec(text);
  if (!m) {
    throw new Error("is not header:NAME, json:FIELD.PATH or meta:NAME");
  }
  const kind = m[1] as VersionMarker["kind"];
  const name = m[2];
  const valid = kind === "header" ? /^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/ : kind === "json" ? /^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$/ : /^[A-Za-z0-9_.:-]+$/;
  if (!valid.test(name)) {
    throw new Error(`names ${JSON.stringify(name)}, which is not a ${kind === "header" ? "header name" : kind === "json" ? "JSON field path like version or build.tag" : "meta tag name"}`);
  }
  return { kind, name };
}

/** The `content` of the page's `<meta name="NAME" content="…">` (either attribute order), if any. */
function metaContent(html: string, name: string): string | undefined {
  for (const tag of html.match(/<meta\b[^>]*>/gi) ?? []) {
    const attr = (a: string): string | undefined => new RegExp(`\\b${a}\\s*=\\s*(?:"([^"]*)"|'([^']*)'|([^\\s"'>]+))`, "i").exec(tag)?.slice(1).find((v) => v !== undefined);
    if (attr("name")?.toLowerCase() === name.toLowerCase()) {
      return attr("content");
    }
  }
  return undefined;
}

/** The version a response carries at `marker`, or why it carries none. */
export function versionAt(marker: VersionMarker, res: { body: string; headers?: Readonly<Record<string, string>> }): { value?: string; missing?: string } {
  if (marker.kind === "header") {
    const value = Object.entries(res.headers ?? {}).find(([k]) => k.toLowerCase() === marker.name.toLowerCase())?.[1];
    return value === undefined ? { missing: `no ${marker.name} header` } : { value: value.trim() };
  }
  if (marker.kind === "meta") {
    const value = metaContent(res.body, marker.name);
    return value === undefined ? { missing: `no <meta name="${marker.name}"> in the page` } : { value: value.trim() };
  }
  let value: unknown;
  try {
    value = readField(res.body, marker.name);
  } catch {
    return { missing: "the body is not JSON" };
  }
  return typeof value === "string" || typeof value === "number" || typeof value === "boolean" ? { value: String(value) } : { missing: `no ${marker.name} field` };
}

/** A JSON field by dot path (`build.tag`) of a body; throws when the body is not JSON. */
export function readField(body: string, path: string): unknown {
  let value: unknown = JSON.parse(body);
  for (const part of path.split(".")) {
    if (value === null || typeof value !== "object") {
      return undefined;
    }
    value = (value as Record<string, unknown>)[part];
  }
  return value;
}
