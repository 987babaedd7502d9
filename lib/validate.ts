/** Small validators shared by config parsing; each returns an error text or undefined. */
import { envValueProblem } from "./compose";

const LABEL = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;
const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

export function isIpv4(value: string): boolean {
  return IPV4.test(value);
}

/** A DNS name or an IPv4 address. */
export function hostProblem(value: string): string | undefined {
  if (isIpv4(value)) {
    return undefined;
  }
  if (value.length > 253 || !value.split(".").every((l) => LABEL.test(l)) || /^[0-9.]+$/.test(value)) {
    return "is not a host name or IPv4 address";
  }
  return undefined;
}

/** A public DNS name with at least two labels, as certificates are issued for (no IPs, no wildcards). */
export function domainProblem(value: string): string | undefined {
  const labels = value.split(".");
  return value.length <= 253 && labels.length >= 2 && labels.every((l) => /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/.test(l)) && !/^[0-9]+$/.test(labels[labels.length - 1])
    ? undefined
    : "is not a domain name (lowercase labels of letters, digits and '-', at least two)";
}

export function portProblem(value: number): string | undefined {
  return Number.isInteger(value) && value >= 1 && value <= 65535 ? undefined : "is not a port (1-65535)";
}

/**
 * The URL with its credentials masked, when it carries any: a password, or a user of an http(s)
 * URL (where a user alone is a token); else undefined. An ssh user (`ssh://git@host/…`) is a name.
 */
export function embeddedCredentials(value: string): string | undefined {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return undefined;
  }
  if (!url.password && !(url.username && /^https?:$/.test(url.protocol))) {
    return undefined;
  }
  return `${url.protocol}//***@${url.host}${url.pathname}`;
}

/** `host[:port]`, as registries are named in image references. */
export function hostPortProblem(value: string): string | undefined {
  const m = /^([^:]+)(?::(\d{1,5}))?$/.exec(value);
  if (!m) {
    return "is not host[:port]";
  }
  return hostProblem(m[1]) ?? (m[2] !== undefined ? portProblem(Number(m[2])) : undefined);
}

export function urlProblem(value: string, schemes: readonly string[] = ["http:", "https:"]): string | undefined {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return "is not a URL";
  }
  if (!schemes.includes(url.protocol)) {
    return `must use ${schemes.map((s) => s.replace(":", "")).join(" or ")}`;
  }
  if (/[\s"'`$\\;]/.test(value)) {
    return "contains whitespace, quotes, backticks, $, ; or backslashes";
  }
  if (value.length > 2048) {
    return "is longer than 2048 characters";
  }
  // The host reaches probes, Flux and the ingress: it must be a host name, IPv4 or [IPv6] address.
  if (!url.hostname.startsWith("[") && hostProblem(url.hostname)) {
    return `has a host ${JSON.stringify(url.hostname.slice(0, 40))} that is not a host name or IPv4 address`;
  }
  return undefined;
}

/** A Kubernetes object name (DNS-1123 label). */
export function k8sNameProblem(value: string): string | undefined {
  return /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(value) ? undefined : "is not a DNS-1123 label (lowercase letters, digits, '-')";
}

/** A rollout's maxSurge as config gives it: a count from 1 or a percentage from 1% to 100%. */
export function surgeProblem(value: string): string | undefined {
  return /^([1-9][0-9]{0,2}|([1-9][0-9]?|100)%)$/.test(value) ? undefined : "is not a pod count from 1 to 999 or a percentage from 1% to 100%";
}

/** A validated surge as Kubernetes takes it: a number for a count, the string for a percentage. */
export function surge(value: string): number | string {
  return value.endsWith("%") ? value : Number(value);
}

/** A Flux/Go duration such as `1m`, `30s`, `1m30s`. */
export function durationProblem(value: string): string | undefined {
  return /^([0-9]+(ms|s|m|h))+$/.test(value) ? undefined : "is not a duration like 30s, 1m or 1h30m";
}

const UNIT_MS: Readonly<Record<string, number>> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** A duration (`1h30m`) in milliseconds; NaN when it is not one. */
export function durationMs(value: string): number {
  if (durationProblem(value)) {
    return NaN;
  }
  return [...value.matchAll(/([0-9]+)(ms|s|m|h)/g)].reduce((sum, m) => sum + Number(m[1]) * UNIT_MS[m[2]], 0);
}

/** A polling interval: a duration of at least `minSeconds`, so nothing polls without pause. */
export function intervalProblem(minSeconds: number): (value: string) => string | undefined {
  return (value) => durationProblem(value) ?? (durationMs(value) < minSeconds * 1000 ? `is shorter than ${minSeconds}s: Flux would poll without pause` : undefined);
}

/**
 * Whether a regular expression repeats a group that itself repeats, like `(a+)+` or `(\d*)*`:
 * the shape whose matching time explodes on a near-miss (ReDoS). Groups are reduced from the
 * innermost out, remembering which hold a repetition.
 */
export function nestedQuantifier(pattern: string): boolean {
  // Escapes and classes repeat nothing by themselves: one plain character each.
  let p = pattern.replace(/\\./g, "x").replace(/\[(?:\\.|[^\]])*\]/g, "x");
  const repeats = /[+*]|\{\d+,\d*\}/;
  for (;;) {
    const inner = /\((?:\?(?:<[^>]*>|[:=!]))?([^()]*)\)([+*]|\{\d+,\d*\}|\{\d+\})?/.exec(p);
    if (!inner) {
      return false;
    }
    if (inner[2] && repeats.test(inner[1]) && inner[2] !== "?") {
      return true;
    }
    // The group becomes one character: Q when it repeats inside, so an outer repetition sees it.
    p = p.slice(0, inner.index) + (repeats.test(inner[1]) ? "Q+" : "x") + p.slice(inner.index + inner[0].length);
  }
}

export function absolutePathProblem(value: string): string | undefined {
  if (!/^\/[A-Za-z0-9._/-]*$/.test(value) || value.split("/").includes("..")) {
    return "is not an absolute path of letters, digits, '.', '_', '-' and '/'";
  }
  // Linux's limits (PATH_MAX, NAME_MAX): a longer path fails only on the host, mid-deploy.
  return value.length > 4095 || value.split("/").some((part) => part.length > 255) ? "is longer than a path may be (4095, 255 per name)" : undefined;
}

/** An image tag as registries accept it: up to 128 letters, digits, '_', '.', '-', not starting with '.' or '-'. */
export function tagProblem(value: string): string | undefined {
  return /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/.test(value) ? undefined : "is not an image tag (up to 128 letters, digits, '_', '.', '-')";
}

/**
 * The backend's environment as JSON: an object of strings whose names are variable names and whose
 * values a .env file can hold literally. Never shows a value (they are secrets), only its name.
 */
export function envProblem(text: string): string | undefined {
  let o: unknown;
  try {
    o = JSON.parse(text);
  } catch {
    return "is not JSON";
  }
  if (!o || typeof o !== "object" || Array.isArray(o)) {
    return "is not a JSON object of strings";
  }
  for (const [name, value] of Object.entries(o as Record<string, unknown>)) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) {
      return `has a name ${JSON.stringify(name.slice(0, 40))} that is not an environment variable name`;
    }
    if (typeof value !== "string") {
      return `has a value for ${name} that is not a string`;
    }
    const problem = envValueProblem(value);
    if (problem) {
      return `has a value for ${name} ${problem}`;
    }
  }
  return undefined;
}

export function regexProblem(value: string): string | undefined {
  try {
    new RegExp(value);
    return undefined;
  } catch (e) {
    return `is not a valid regular expression (${(e as Error).message})`;
  }
}

/** An OpenSSH public host key line, `type base64`, as ssh-keyscan prints it (without the host). */
export function hostKeyProblem(value: string): string | undefined {
  return /^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)) [A-Za-z0-9+/]+={0,3}$/.test(value)
    ? undefined
    : "is not a public host key of the form 'ssh-ed25519 AAAA…' (see ssh-keyscan)";
}

export function privateKeyProblem(value: string): string | undefined {
  return /^-----BEGIN [A-Z ]*PRIVATE KEY-----\n[\s\S]+\n-----END [A-Z ]*PRIVATE KEY-----\s*$/.test(value)
    ? undefined
    : "is not a PEM/OpenSSH private key (-----BEGIN … PRIVATE KEY-----)";
}

/** Rejects characters that could break out of a shell word, a YAML scalar or a header. */
export function plainTextProblem(value: string): string | undefined {
  // eslint-disable-next-line no-control-regex -- control characters are exactly what is refused
  return /[\0-\x1f\x7f`$\\"']/.test(value) ? "contains control characters, quotes, backticks, $ or backslashes" : undefined;
}
