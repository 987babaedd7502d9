import * as crypto from "crypto";
import * as YAML from "yaml";

/** One container of a compose project, as the host reports it. */
export interface LiveContainer {
  readonly service: string;
  readonly status: string;
  readonly health: string;
  readonly restarts: number;
  readonly image: string;
}

/** What a compose project's host runs, read by the inspect script (lib/remote-deploy.ts). */
export interface LiveProject {
  /** SHA-256 of each release file on the host, or `missing`. */
  readonly files: Record<string, string>;
  readonly engineUp: boolean;
  readonly containers: LiveContainer[];
}

/** Parses the inspect script's output. */
export function parseInspect(text: string): LiveProject {
  const files: Record<string, string> = {};
  const containers: LiveContainer[] = [];
  let engineUp = true;
  for (const line of text.split("\n")) {
    const [kind, ...rest] = line.trim().split(/\s+/);
    if (kind === "file" && rest.length >= 2) {
      files[rest[0]] = rest[1];
    } else if (kind === "engine" && rest[0] === "down") {
      engineUp = false;
    } else if (kind === "container" && rest.length >= 5) {
      containers.push({ service: rest[0], status: rest[1], health: rest[2], restarts: Number(rest[3]) || 0, image: rest.slice(4).join(" ") });
    }
  }
  return { files, engineUp, containers };
}

export const sha256 = (text: string): string => crypto.createHash("sha256").update(text, "utf8").digest("hex");

/** The image each service of a compose file names. */
export function composeImages(compose: string): Record<string, string> {
  const doc = YAML.parse(compose) as { services?: Record<string, { image?: string }> } | null;
  return Object.fromEntries(Object.entries(doc?.services ?? {}).map(([name, s]) => [name, s?.image ?? ""]));
}

/**
 * Whether a finding of `findDrift` means a service does not run (no container, not running,
 * unhealthy, no Docker engine), as against one that runs other files or another image.
 */
export function stopsService(finding: string): boolean {
  return /^service \S+ (has no container|is \S+)$|^the Docker engine does not answer$/.test(finding);
}

/**
 * What differs between the recorded release (its files, by content) and what the host runs: a
 * file changed or missing, a service without a container, stopped, unhealthy or on another image.
 * Findings name files and services only, never content.
 */
export function findDrift(recordedFiles: Readonly<Record<string, string>>, live: LiveProject): string[] {
  const findings: string[] = [];
  for (const [name, content] of Object.entries(recordedFiles).sort(([a], [b]) => a.localeCompare(b))) {
    const hash = live.files[name];
    if (hash === undefined || hash === "missing") {
      findings.push(`${name} is missing on the host`);
    } else if (hash !== sha256(content)) {
      findings.push(`${name} on the host differs from the recorded release`);
    }
  }
  if (!live.engineUp) {
    return [...findings, "the Docker engine does not answer"];
  }
  const compose = recordedFiles["docker-compose.yml"];
  const images = compose ? composeImages(compose) : {};
  for (const [service, image] of Object.entries(images)) {
    const running = live.containers.filter((c) => c.service === service);
    if (running.length === 0) {
      findings.push(`service ${service} has no container`);
      continue;
    }
    for (const c of running) {
      if (c.status !== "running") {
        findings.push(`service ${service} is ${c.status}`);
      } else if (c.health === "unhealthy") {
        findings.push(`service ${service} is unhealthy`);
      }
      if (image && c.image !== image) {
        findings.push(`service ${service} runs ${c.image}, not the recorded ${image}`);
      }
    }
  }
  return findings;
}
