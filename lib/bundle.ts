/** A file the deploy writes into the deploy directory. */
export interface BundleFile {
  /** Plain file name inside the deploy directory. */
  readonly name: string;
  readonly content: string;
  /** Octal mode; secret-bearing files use 0600. */
  readonly mode: "0600" | "0644";
}

/** Secrets the deploy script consumes but never writes to disk as plain files. */
export interface BundleSecrets {
  /** Password or token for `docker login --password-stdin`. */
  readonly registryPassword?: string;
}

const FILE_NAME = /^[A-Za-z0-9._-]+$/;

function b64(text: string): string {
  return Buffer.from(text, "utf8").toString("base64");
}

/**
 * Renders what the deploy script reads on stdin: one line per entry, `kind name mode base64`.
 * Everything that may be secret travels here, never on a command line.
 */
export function renderBundle(files: readonly BundleFile[], secrets: BundleSecrets = {}): string {
  const lines: string[] = [];
  for (const f of files) {
    if (!FILE_NAME.test(f.name) || f.name === "." || f.name === "..") {
      throw new Error(`bundle: file name ${JSON.stringify(f.name)} must be a plain file name`);
    }
    lines.push(`file ${f.name} ${f.mode} ${b64(f.content)}`);
  }
  if (secrets.registryPassword !== undefined) {
    lines.push(`secret registry-password - ${b64(secrets.registryPassword)}`);
  }
  return lines.join("\n") + "\n";
}

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
