import * as YAML from "yaml";

/**
 * What `docker compose up -d` will do to each service, by name: `kept`, `created`, `removed`, or
 * `recreated (…)` with the settings (or env files) whose change causes it.
 */
export type ServicePlan = Record<string, string>;

type Services = Record<string, Record<string, unknown>>;

function services(compose: string | undefined): Services | undefined {
  if (compose === undefined) {
    return undefined;
  }
  try {
    const doc: unknown = YAML.parse(compose);
    const s = (doc as { services?: unknown } | null)?.services;
    return s && typeof s === "object" ? (s as Services) : undefined;
  } catch {
    return undefined;
  }
}

/** The files a service reads its environment from, as names in the deploy directory. */
function envFiles(service: Record<string, unknown>): string[] {
  const raw = service.env_file;
  const list: unknown[] = raw === undefined ? [] : Array.isArray(raw) ? raw : [raw];
  return list
    .map((e) => (typeof e === "string" ? e : (e as { path?: unknown } | null)?.path))
    .filter((p): p is string => typeof p === "string")
    .map((p) => p.replace(/^\.\//, ""));
}

function same(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/**
 * What `docker compose up -d` will do to each service when a host's files go from `before` to
 * `after` (file name to content, `.env` included): compose recreates a service whose definition
 * changed, or whose env_file changed. Env files are named, never what in them changed. Not
 * knowable without the host: an unpinned image tag that now points elsewhere. Undefined when
 * `after` has no readable compose file.
 */
export function planServices(before: Readonly<Record<string, string>>, after: Readonly<Record<string, string>>): ServicePlan | undefined {
  const next = services(after["docker-compose.yml"]);
  if (!next) {
    return undefined;
  }
  const prev = services(before["docker-compose.yml"]) ?? {};
  const out: ServicePlan = {};
  for (const name of Object.keys(next).sort()) {
    const now = next[name] ?? {};
    const was = prev[name];
    if (!was) {
      out[name] = "created";
      continue;
    }
    const keys = [...new Set([...Object.keys(was), ...Object.keys(now)])].sort();
    const reasons = keys.filter((k) => !same(was[k], now[k]));
    for (const file of envFiles(now)) {
      if (before[file] !== after[file]) {
        reasons.push(file);
      }
    }
    out[name] = reasons.length > 0 ? `recreated (${reasons.join(", ")})` : "kept";
  }
  for (const name of Object.keys(prev).sort()) {
    if (!(name in next)) {
      out[name] = "removed";
    }
  }
  return out;
}
