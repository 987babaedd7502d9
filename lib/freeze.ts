import * as YAML from "yaml";

/** A freeze of releases, as the release file records it: who, when, why. */
export interface Freeze {
  readonly by: string;
  readonly at: string;
  readonly reason: string;
}

const MAX_BY = 200;
const MAX_REASON = 1000;

/** Who froze and why are anyone's text: one line each, no control characters, bounded. */
function problemOf(f: Record<string, unknown>): string | undefined {
  for (const key of ["by", "at", "reason"] as const) {
    if (typeof f[key] !== "string" || String(f[key]).trim() === "") {
      return `needs ${key} as text`;
    }
  }
  const { by, at, reason } = f as unknown as Freeze;
  // eslint-disable-next-line no-control-regex
  if ([by, at, reason].some((v) => /[\x00-\x1f\x7f]/.test(v))) {
    return "holds a control character or a line break";
  }
  if (by.length > MAX_BY || reason.length > MAX_REASON) {
    return `is too long (by up to ${MAX_BY}, reason up to ${MAX_REASON} characters)`;
  }
  if (Number.isNaN(Date.parse(at))) {
    return `at ${JSON.stringify(at.slice(0, 40))} is not a time`;
  }
  return undefined;
}

/** Reads `data.frozen` (a YAML block of by, at and reason); undefined when releases are not frozen. */
export function parseFreeze(value: unknown, source: string): Freeze | undefined {
  if (value === undefined || value === null || value === "") {
    return undefined;
  }
  const where = `${source}: data.frozen`;
  if (typeof value !== "string") {
    throw new Error(`${where} must be a YAML block in a string (frozen: |), got ${typeof value}`);
  }
  let parsed: unknown;
  try {
    parsed = YAML.parse(value);
  } catch (e) {
    throw new Error(`${where}: not valid YAML: ${(e as Error).message}`, { cause: e });
  }
  if (!parsed || typeof parsed !== "object" || Array.isArray(parsed)) {
    throw new Error(`${where} must hold by, at and reason`);
  }
  const problem = problemOf(parsed as Record<string, unknown>);
  if (problem) {
    throw new Error(`${where} ${problem}`);
  }
  const f = parsed as Freeze;
  return { by: f.by, at: f.at, reason: f.reason };
}

/** One line naming a freeze. */
export function describeFreeze(f: Freeze): string {
  return `frozen by ${f.by} at ${f.at}: ${JSON.stringify(f.reason)}`;
}

/**
 * Why a frozen release file may not be deployed, or undefined when it may: while frozen, only the
 * pair the stack runs is deployed (its repairs, and the rollback commits that return to it).
 */
export function frozenRefusal(
  freeze: Freeze | undefined,
  file: { readonly source: string; readonly frontend: string; readonly backend: string },
  running: { readonly frontend: string; readonly backend: string } | undefined,
): string | undefined {
  if (!freeze || (running && running.frontend === file.frontend && running.backend === file.backend)) {
    return undefined;
  }
  return (
    `releases are ${describeFreeze(freeze)}. ${file.source} names frontend ${file.frontend}, backend ${file.backend}, ` +
    (running ? `but the stack runs frontend ${running.frontend}, backend ${running.backend}` : "and the stack has promoted nothing yet") +
    `: a new pair is not deployed until \`npm run unfreeze\` (a commit that removes data.frozen). The running pair's repairs and rollbacks still run.`
  );
}
