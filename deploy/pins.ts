import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import type { ConfigMap } from "@pulumi/pulumi/automation";
import { CONFIG_KEYS, ConfigError, parseConfig } from "../lib/config";
import { parseReleaseFile } from "../lib/release";
import { RollbackEvent } from "../lib/rollback";
import { listConfig } from "../lib/stack-config";

/** A stack's config as the Automation API reads it. */
export type StackConfig = Record<string, { value: string; secret: boolean }>;

/** A frontend and backend tag pair. */
export interface TagPair {
  readonly frontend: string;
  readonly backend: string;
}

/** The config keys a rollback pin sets; removing them releases the pin. */
export const PIN_KEYS = ["homelab:frontendTag", "homelab:backendTag", "homelab:rollbackEvent"] as const;

function setting(cfg: StackConfig, key: keyof typeof CONFIG_KEYS): string {
  const fallback = (CONFIG_KEYS[key] as { default?: unknown }).default;
  return cfg[`homelab:${key}`]?.value ?? (typeof fallback === "string" ? fallback : "");
}

/** Every problem of the stack's config, each naming its key, or undefined. */
export function configProblems(cfg: StackConfig): string | undefined {
  try {
    parseConfig(Object.fromEntries(Object.entries(cfg).map(([k, v]) => [k, v.value])), (k) => cfg[k]?.secret ?? false);
    return undefined;
  } catch (e) {
    if (e instanceof ConfigError) {
      return e.message;
    }
    throw e;
  }
}

/** The tags the next `up` deploys: the release file's, unless config pins them. */
export function targetTags(cfg: StackConfig, workDir: string, pinned = true): TagPair {
  const file = path.resolve(workDir, setting(cfg, "releaseFile"));
  const release = parseReleaseFile(
    fs.readFileSync(file, "utf8"),
    setting(cfg, "releaseFile"),
    {
      registry: setting(cfg, "registry"),
      frontendRepository: setting(cfg, "frontendImage"),
      backendRepository: setting(cfg, "backendImage"),
      tagPattern: setting(cfg, "tagPattern"),
    },
    pinned ? { frontendTag: cfg["homelab:frontendTag"]?.value || undefined, backendTag: cfg["homelab:backendTag"]?.value || undefined } : {},
  );
  return { frontend: release.frontend.tag, backend: release.backend.tag };
}

/** The rollback in force: the pair that failed, while config pins the last good one. */
export function activePin(cfg: StackConfig): RollbackEvent | undefined {
  const text = cfg["homelab:rollbackEvent"]?.value;
  if (!text || !(cfg["homelab:frontendTag"]?.value || cfg["homelab:backendTag"]?.value)) {
    return undefined;
  }
  return JSON.parse(text) as RollbackEvent;
}

/** The tags excluded from image automation so far. */
export function excludedTags(cfg: StackConfig): string[] {
  return Object.entries(cfg)
    .filter(([k]) => k === "homelab:excludedTags" || k.startsWith("homelab:excludedTags["))
    .flatMap(([, v]) => (v.value.startsWith("[") ? (JSON.parse(v.value) as string[]) : [v.value]));
}

/**
 * The config a rollback writes: the last good pair pinned, the event recorded, and the failed
 * tags (those that differ from the good pair) added to the exclusions.
 */
export function rollbackConfig(cfg: StackConfig, failed: TagPair, good: TagPair, reason: string, stages: Record<string, number>): { config: ConfigMap; excluded: string[] } {
  const excluded = new Set(excludedTags(cfg));
  for (const part of ["frontend", "backend"] as const) {
    if (failed[part] !== good[part]) {
      excluded.add(failed[part]);
    }
  }
  const event: RollbackEvent = { id: crypto.randomUUID(), at: new Date().toISOString(), failed, reason: reason.slice(0, 500), stages };
  const list = [...excluded].sort();
  return {
    config: {
      "homelab:frontendTag": { value: good.frontend },
      "homelab:backendTag": { value: good.backend },
      "homelab:rollbackEvent": { value: JSON.stringify(event) },
      ...listConfig("homelab:excludedTags", list),
    },
    excluded: list,
  };
}
