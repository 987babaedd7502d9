import type { StateResource } from "./interruption";
import type { Stack } from "@pulumi/pulumi/automation";
import { PromotedRelease, RELEASE_RECORD_TYPE } from "../components/release-record";
import { CONFIG_KEYS, ConfigError, parseConfig } from "../lib/config";
import { Release, parseReleaseFile } from "../lib/release";
import { readReleaseFileText } from "../lib/release-file";
import type { Promotion } from "./watch-window";

/** A stack's config as the Automation API reads it. */
export type StackConfig = Record<string, { value: string; secret: boolean }>;

/** A config value, or its default. */
export function setting(cfg: StackConfig, key: keyof typeof CONFIG_KEYS): string {
  const fallback = (CONFIG_KEYS[key] as { default?: unknown }).default;
  const value = cfg[`homelab:${key}`]?.value;
  return value !== undefined && value !== "" ? value : typeof fallback === "string" ? fallback : JSON.stringify(fallback ?? "");
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

/** The release the next `up` deploys: the release file's, with the stack's own overrides. */
export function readRelease(cfg: StackConfig, workDir: string): Release {
  return parseReleaseFile(
    readReleaseFileText(workDir, setting(cfg, "releaseFile")),
    setting(cfg, "releaseFile"),
    {
      registry: setting(cfg, "registry"),
      frontendRepository: setting(cfg, "frontendImage"),
      backendRepository: setting(cfg, "backendImage"),
      tagPattern: setting(cfg, "tagPattern"),
    },
    { frontendTag: cfg["homelab:frontendTag"]?.value || undefined, backendTag: cfg["homelab:backendTag"]?.value || undefined },
  );
}

/** The secret values of the stack's config, for redaction. */
export function secretValues(cfg: StackConfig): string[] {
  return Object.values(cfg)
    .filter((v) => v.secret && v.value)
    .map((v) => v.value);
}

/**
 * The last promoted pair, as the release record in the stack's state holds it: it is written as
 * soon as the backend gate passes, even when a later part of the same update (the VPS) fails and
 * the stack's outputs keep the value of the update before.
 */
export async function lastPromoted(stack: Stack): Promise<LastPromoted> {
  return promotedIn(stateResources(await stack.exportStack()));
}

const SECRET_SIG = "4dabf18193072939515e22adb298388d";
const SECRET_SIG_VALUE = "1b47061264138c4ac30d75fd1eb44270";

/**
 * A state value with its secrets as plain values: `pulumi stack export --show-secrets` writes each
 * secret as an object carrying the secret signature and the value's JSON as `plaintext`.
 */
export function revealed(value: unknown): unknown {
  if (Array.isArray(value)) {
    return value.map(revealed);
  }
  if (typeof value !== "object" || value === null) {
    return value;
  }
  const o = value as Record<string, unknown>;
  if (o[SECRET_SIG] === SECRET_SIG_VALUE && typeof o.plaintext === "string") {
    return revealed(JSON.parse(o.plaintext) as unknown);
  }
  return Object.fromEntries(Object.entries(o).map(([k, v]) => [k, revealed(v)]));
}

/** The resources of an exported stack state (`pulumi stack export`). */
export type { StateResource };

export function stateResources(state: { deployment: unknown }): StateResource[] {
  return (state.deployment as { resources?: StateResource[] } | undefined)?.resources ?? [];
}

export interface LastPromoted {
  readonly current?: PromotedRelease;
  readonly previous?: PromotedRelease;
  readonly promotion: Promotion;
}

/** The last promoted pair, from the release record among a state's resources. */
export function promotedIn(resources: readonly StateResource[]): LastPromoted {
  const record = resources.find((r) => r.type === RELEASE_RECORD_TYPE);
  const ledger = (record?.outputs?.ledger as { result?: string }[] | undefined) ?? [];
  return {
    current: record?.outputs?.release as PromotedRelease | undefined,
    previous: (record?.outputs?.previous as PromotedRelease | null | undefined) ?? undefined,
    promotion: { at: record?.outputs?.promotedAt as string | undefined, lastResult: ledger[ledger.length - 1]?.result },
  };
}
