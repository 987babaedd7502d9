/**
 * Flux image automation's Setters strategy as pure functions: which files it reads, which lines a
 * setter marker names, what each setter writes, and the commit message it renders.
 *
 * Upstream (image-automation-controller, internal/update): a YAML file (`.yaml`, `.yml` or a file
 * named `Kustomization`) containing the token `"$imagepolicy"` is parsed; a scalar field whose line
 * comment is the JSON object `{"$imagepolicy": "<ns>:<policy>[:tag|:name|:digest]"}` takes the
 * value of that setter: the whole reference `<name>:<tag>[@<digest>]`, the tag, the name or the
 * digest of the policy's `status.latestRef`. A file that does not parse is skipped; a marker naming
 * a policy without a latest image is left alone.
 * @see https://fluxcd.io/flux/guides/image-update/#configure-image-update-for-custom-resources
 * @see https://fluxcd.io/flux/components/image/imageupdateautomations/#marking-images-for-update
 *
 * Here only the bytes of a marked value change: the rest of its line (the marker included) and of
 * the file stay as they were, where upstream re-serialises the files it changes with kyaml.
 */

import * as YAML from "yaml";

/** What the automation screens files for, quotes included (upstream's `fmt.Sprintf("%q", "$imagepolicy")`). */
export const SETTER_TOKEN = '"$imagepolicy"';

/** The message upstream commits with when `messageTemplate` is empty. */
export const DEFAULT_COMMIT_MESSAGE = "Update from image update automation";

/** The latest image an ImagePolicy reports (`status.latestRef`). */
export interface LatestImage {
  readonly name: string;
  readonly tag: string;
  readonly digest?: string;
}

/** An ImagePolicy as the setters see it. */
export interface PolicyLatest {
  readonly namespace: string;
  readonly name: string;
  readonly latest: LatestImage;
}

/** One value a setter changed (upstream's `update.Change`). */
export interface SetterChange {
  readonly oldValue: string;
  readonly newValue: string;
  readonly setter: string;
}

export interface SetterResult {
  /** The file's text, with the marked values rewritten. */
  readonly text: string;
  /** What changed, in the order the values appear in the file. */
  readonly changes: readonly SetterChange[];
  /** Why the file was left alone, when it does not parse as YAML. */
  readonly problem?: string;
}

/**
 * The setters one or more policies define, by name: `<ns>:<policy>` (the whole reference),
 * `<ns>:<policy>:tag`, `<ns>:<policy>:name` and, when the policy reports a digest,
 * `<ns>:<policy>:digest`. Upstream also defines the digest setter with an empty value; without
 * digest reflection a `:digest` marker is left alone here instead of being emptied.
 */
export function setterValues(policies: readonly PolicyLatest[]): Map<string, string> {
  const values = new Map<string, string>();
  for (const p of policies) {
    const base = `${p.namespace}:${p.name}`;
    const { name, tag, digest } = p.latest;
    values.set(base, `${name}:${tag}${digest ? `@${digest}` : ""}`);
    values.set(`${base}:tag`, tag);
    values.set(`${base}:name`, name);
    if (digest) {
      values.set(`${base}:digest`, digest);
    }
  }
  return values;
}

/** Whether the automation reads the file at all: a YAML file name, and the token in its content. */
export function isSetterCandidate(fileName: string, content: string): boolean {
  const base = fileName.split("/").pop() ?? "";
  return (/\.ya?ml$/.test(base) || base === "Kustomization") && content.includes(SETTER_TOKEN);
}

/**
 * The setter a line comment names (its text after `#`), or undefined. As kyaml reads it: leading
 * `#`s trimmed, then a JSON object of strings whose `$imagepolicy` is not empty; anything else is
 * an ordinary comment.
 */
export function setterMarker(comment: string): string | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(comment.replace(/^#+/, ""));
  } catch {
    return undefined;
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    return undefined;
  }
  const entries = Object.entries(parsed as Record<string, unknown>);
  if (!entries.every(([, v]) => typeof v === "string")) {
    return undefined;
  }
  const name = (parsed as Record<string, string>)["$imagepolicy"];
  return name ? name : undefined;
}

/** Whether `value` reads back as the same string when written plain, in YAML 1.1 and 1.2 alike. */
function plainSafe(value: string): boolean {
  if (value === "" || /^\s|\s$|[\n\r\t]|: |\s#|^[-?:,[\]{}#&*!|>'"%@`]/.test(value)) {
    return false;
  }
  return (["1.1", "1.2"] as const).every((version) => {
    try {
      return YAML.parse(value, { version }) === value;
    } catch {
      return false;
    }
  });
}

/**
 * A scalar's new source in its old style. A plain value that would no longer read as a string
 * (`1800000000`, `yes`) is double-quoted, as kyaml does for string setters.
 */
function renderScalar(value: string, type: YAML.Scalar.Type | undefined): string {
  if (type === YAML.Scalar.QUOTE_SINGLE) {
    return `'${value.replace(/'/g, "''")}'`;
  }
  if (type === YAML.Scalar.PLAIN && plainSafe(value)) {
    return value;
  }
  return JSON.stringify(value);
}

/** The comment on the rest of the line after `end`, without its `#`, if the line has one. */
function lineComment(text: string, end: number): string | undefined {
  const eol = text.indexOf("\n", end);
  const rest = text.slice(end, eol < 0 ? undefined : eol).replace(/\r$/, "");
  return /^[ \t]+#(.*)$/.exec(rest)?.[1];
}

/**
 * Rewrites the values whose line carries a setter marker naming one of `values`. Only plain and
 * quoted scalars are set (keys, block scalars and aliases are not image fields). A value already
 * equal to its setter's is no change, so an up-to-date file comes back identical.
 */
export function applySetters(text: string, values: ReadonlyMap<string, string>): SetterResult {
  const docs = YAML.parseAllDocuments(text);
  const list = Array.isArray(docs) ? docs : [];
  const broken = list.find((d) => d.errors.length > 0);
  if (broken) {
    return { text, changes: [], problem: `not valid YAML: ${broken.errors[0].message.split("\n")[0]}` };
  }
  const edits: { start: number; end: number; source: string; change: SetterChange }[] = [];
  for (const doc of list) {
    YAML.visit(doc, {
      Scalar(key, node) {
        const range = node.range;
        const type = node.type;
        if (key === "key" || !range || range[0] === range[1] || (type !== YAML.Scalar.PLAIN && type !== YAML.Scalar.QUOTE_SINGLE && type !== YAML.Scalar.QUOTE_DOUBLE)) {
          return;
        }
        const comment = lineComment(text, range[1]);
        const setter = comment === undefined ? undefined : setterMarker(comment);
        const value = setter === undefined ? undefined : values.get(setter);
        if (setter === undefined || value === undefined) {
          return;
        }
        // A plain scalar's value is its source (`5.0.0`, `1800000000`), whatever it resolves to.
        const old = type === YAML.Scalar.PLAIN && typeof node.source === "string" ? node.source : String(node.value);
        if (old !== value) {
          edits.push({ start: range[0], end: range[1], source: renderScalar(value, type), change: { oldValue: old, newValue: value, setter } });
        }
      },
    });
  }
  let out = text;
  for (const e of [...edits].sort((a, b) => b.start - a.start)) {
    out = out.slice(0, e.start) + e.source + out.slice(e.end);
  }
  return { text: out, changes: edits.map((e) => e.change) };
}

/** Changes counted once each, first seen first (upstream's `Result.Changes()`, in a fixed order). */
export function uniqueChanges(changes: readonly SetterChange[]): SetterChange[] {
  const seen = new Set<string>();
  return changes.filter((c) => {
    const k = JSON.stringify([c.oldValue, c.newValue, c.setter]);
    return seen.has(k) ? false : (seen.add(k), true);
  });
}

type Piece = { kind: "text"; text: string } | { kind: "range"; body: Piece[] } | { kind: "field"; field: keyof SetterChange };

const FIELDS: Record<string, keyof SetterChange> = { ".OldValue": "oldValue", ".NewValue": "newValue", ".Setter": "setter" };

/**
 * Renders a commit `messageTemplate` (Go text/template) for the one shape this project's template
 * uses: text, trim markers (`{{-`, `-}}`), comments, and `{{ range .Changed.Changes }}` … `{{ end }}`
 * around `{{ .OldValue }}`, `{{ .NewValue }}` and `{{ .Setter }}`. Anything else (other data,
 * functions, pipelines, variables, nested ranges) is not rendered here: undefined, and the caller
 * falls back to fallbackCommitMessage rather than guess at Go's semantics. An empty template
 * gives upstream's default message.
 */
export function renderCommitMessage(template: string, changes: readonly SetterChange[]): string | undefined {
  if (template === "") {
    return DEFAULT_COMMIT_MESSAGE;
  }
  // Lex: text and actions; a trim marker eats the whitespace beside it, as Go's lexer does.
  const tokens: ({ kind: "text"; text: string } | { kind: "action"; body: string })[] = [];
  let rest = template;
  let trimNext = false;
  while (rest.length > 0) {
    const open = rest.indexOf("{{");
    let text = open < 0 ? rest : rest.slice(0, open);
    if (trimNext) {
      text = text.replace(/^[ \t\r\n]+/, "");
    }
    if (open < 0) {
      tokens.push({ kind: "text", text });
      break;
    }
    const close = rest.indexOf("}}", open + 2);
    if (close < 0) {
      return undefined;
    }
    let inner = rest.slice(open + 2, close);
    if (/^-[ \t\r\n]/.test(inner)) {
      text = text.replace(/[ \t\r\n]+$/, "");
      inner = inner.slice(1);
    }
    trimNext = /[ \t\r\n]-$/.test(inner);
    if (trimNext) {
      inner = inner.slice(0, -1);
    }
    tokens.push({ kind: "text", text }, { kind: "action", body: inner.trim() });
    rest = rest.slice(close + 2);
  }
  // Parse into pieces: one level of range over .Changed.Changes, fields only inside it.
  const top: Piece[] = [];
  let body: Piece[] | undefined;
  for (const t of tokens) {
    const into = body ?? top;
    if (t.kind === "text") {
      into.push(t);
    } else if (/^\/\*[\s\S]*\*\/$/.test(t.body)) {
      continue;
    } else if (/^range[ \t]+\.Changed\.Changes$/.test(t.body) && body === undefined) {
      body = [];
    } else if (t.body === "end" && body !== undefined) {
      top.push({ kind: "range", body });
      body = undefined;
    } else if (t.body in FIELDS && body !== undefined) {
      body.push({ kind: "field", field: FIELDS[t.body] });
    } else {
      return undefined;
    }
  }
  if (body !== undefined) {
    return undefined;
  }
  const unique = uniqueChanges(changes);
  const render = (pieces: readonly Piece[], change?: SetterChange): string =>
    pieces
      .map((p) => {
        switch (p.kind) {
          case "text":
            return p.text;
          case "field":
            return change?.[p.field] ?? "";
          case "range":
            return unique.map((c) => render(p.body, c)).join("");
          default: {
            const never: never = p;
            throw new Error(`unknown template piece ${JSON.stringify(never)}`);
          }
        }
      })
      .join("");
  return render(top);
}

/** The message used when a template is beyond renderCommitMessage: upstream's default, then each change. */
export function fallbackCommitMessage(changes: readonly SetterChange[]): string {
  return `${DEFAULT_COMMIT_MESSAGE}\n\n${uniqueChanges(changes).map((c) => `- ${c.oldValue} -> ${c.newValue}\n`).join("")}`;
}
