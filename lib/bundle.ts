import { BundleFile, renderBundle } from "./remote-deploy";

/** What a deploy bundle carries, read back from its lines (see renderBundle). */
export interface ParsedBundle {
  /** File contents by name. */
  readonly files: Readonly<Record<string, string>>;
  /** Secret values by name (e.g. `registry-password`). */
  readonly secrets: Readonly<Record<string, string>>;
  /** One line per entry, sorted: equal for bundles that write the same files and secrets. */
  readonly canonical: string;
}

const LINE = /^(file|secret) (\S+) (\S+) ([A-Za-z0-9+/=]*)$/;

/**
 * Reads a bundle back; undefined when `text` is not one (an unknown value in a preview, a
 * script's own stdin). A later line for the same entry wins, as it does in the deploy script.
 */
export function parseBundle(text: string): ParsedBundle | undefined {
  const entries = new Map<string, string>();
  const files: Record<string, string> = {};
  const secrets: Record<string, string> = {};
  for (const line of text.split("\n")) {
    if (line === "") {
      continue;
    }
    const m = LINE.exec(line);
    if (!m) {
      return undefined;
    }
    const [, kind, name, , data] = m;
    const value = Buffer.from(data, "base64").toString("utf8");
    (kind === "file" ? files : secrets)[name] = value;
    entries.set(`${kind} ${name}`, line);
  }
  const canonical = [...entries.keys()]
    .sort()
    .map((k) => entries.get(k))
    .join("\n");
  return { files, secrets, canonical };
}

/**
 * The whole bundle a script reads: the plain files (mode 0644) ahead of the secret part. Plain
 * files travel as their own input so a preview can show their text; the host gets one stream.
 */
export function joinBundle(plainFiles: Readonly<Record<string, string>> | undefined, secretPart: string | undefined): string {
  const names = Object.keys(plainFiles ?? {}).sort();
  const plain = names.length > 0 ? renderBundle(names.map((name): BundleFile => ({ name, content: plainFiles![name], mode: "0644" }))) : "";
  return plain + (secretPart ?? "");
}
