import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import { ConcurrentUpdateError, EngineEvent, LocalWorkspace, Stack, StackNotFoundError } from "@pulumi/pulumi/automation";
import type { PromotedRelease } from "../components/release-record";
import { CONFIG_KEYS, ConfigError, parseConfig } from "../lib/config";
import { acquireDeployLock } from "../lib/deploy-lock";
import { parseReleaseFile } from "../lib/release";
import { RollbackEvent } from "../lib/rollback";
import { listConfig } from "../lib/stack-config";
import { cacheDir, toolchainEnv } from "../toolchain/env";

/** Exit codes, so automation can tell the outcomes apart. */
export const EXIT = {
  promoted: 0,
  unexpected: 1,
  /** Refused before anything changed: bad input, missing image, unreachable VM, lock held. */
  refused: 2,
  rolledBack: 3,
  rollbackFailed: 4,
} as const;

const REPO = path.resolve(__dirname, "..");
const REMOTE_SCRIPT = "pulumi-nodejs:dynamic/homelab:RemoteScript";

interface Options {
  stack: string;
  workDir: string;
}

function parseArgs(argv: string[]): Options {
  let stack: string | undefined;
  let workDir = REPO;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--stack" || a === "-s") {
      stack = argv[++i];
    } else if (a === "--cwd") {
      workDir = path.resolve(argv[++i] ?? "");
    } else if (a === "--help" || a === "-h") {
      process.stdout.write("usage: npm run deploy -- --stack NAME [--cwd PROJECT_DIR]\n");
      process.exit(0);
    } else {
      throw new Error(`unknown argument ${JSON.stringify(a)} (usage: npm run deploy -- --stack NAME)`);
    }
  }
  if (!stack || !/^[A-Za-z0-9_.-]+$/.test(stack)) {
    throw new Error(`--stack: ${JSON.stringify(stack ?? "")} is not a stack name (usage: npm run deploy -- --stack NAME)`);
  }
  return { stack, workDir };
}

const say = (line: string): void => void process.stderr.write(`deploy: ${line}\n`);
const secondsSince = (t: number): number => Math.round((Date.now() - t) / 100) / 10;

type Config = Record<string, { value: string; secret: boolean }>;

/** The tags the next `up` deploys: the release file's, unless config pins them. */
function targetTags(cfg: Config, workDir: string): { frontend: string; backend: string } {
  const get = (k: keyof typeof CONFIG_KEYS): string => {
    const fallback = (CONFIG_KEYS[k] as { default?: unknown }).default;
    return cfg[`homelab:${k}`]?.value ?? (typeof fallback === "string" ? fallback : "");
  };
  const file = path.resolve(workDir, get("releaseFile"));
  const release = parseReleaseFile(
    fs.readFileSync(file, "utf8"),
    get("releaseFile"),
    { registry: get("registry"), frontendRepository: get("frontendImage"), backendRepository: get("backendImage"), tagPattern: get("tagPattern") },
    { frontendTag: cfg["homelab:frontendTag"]?.value || undefined, backendTag: cfg["homelab:backendTag"]?.value || undefined },
  );
  return { frontend: release.frontend.tag, backend: release.backend.tag };
}

function configProblems(cfg: Config): string | undefined {
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

function unpinnedTags(cfg: Config, workDir: string): { frontend: string; backend: string } {
  const copy = { ...cfg };
  delete copy["homelab:frontendTag"];
  delete copy["homelab:backendTag"];
  return targetTags(copy, workDir);
}

/** Whether the failed update moved what is running: the frontend Deployment or the backend deploy. */
function releaseMoved(events: EngineEvent[]): boolean {
  return events.some((e) => {
    // A failed backend deploy has run (and restored the previous release itself).
    const m = e.resOutputsEvent?.metadata ?? e.resOpFailedEvent?.metadata;
    if (!m || m.op === "same" || m.op === "read" || m.op === "refresh") {
      return false;
    }
    const name = m.urn.split("::").pop() ?? "";
    return m.type === "kubernetes:apps/v1:Deployment" || (m.type === "pulumi-nodejs:dynamic/homelab:RemoteScript" && name === "backend-deploy");
  });
}

/** Whether a resource belongs to the VPS part of the stack (its component or any child of it). */
function inVps(urn: string): boolean {
  return urn.includes("homelab:vps:VpsApp");
}

/** URNs of the resources whose step failed. */
function failedUrns(events: EngineEvent[]): string[] {
  return events.flatMap((e) => {
    const d = e.diagnosticEvent;
    const urn = e.resOpFailedEvent?.metadata.urn ?? (d?.severity === "error" ? d.urn : undefined);
    return urn && !urn.includes("pulumi:pulumi:Stack") ? [urn] : [];
  });
}

/** Whether the VPS's remote deploy ran in this update (and so may have changed the host). */
function vpsMoved(events: EngineEvent[]): boolean {
  return events.some((e) => {
    const m = e.resOutputsEvent?.metadata ?? e.resOpFailedEvent?.metadata;
    return m !== undefined && m.op !== "same" && m.op !== "read" && m.op !== "refresh" && m.urn.endsWith("::vps-compose-deploy");
  });
}

/**
 * The outcome of a failed VPS deploy: its host restores the previous release by itself, so
 * nothing is pinned; the exit code says whether the previous release is back.
 */
function vpsFailure(events: EngineEvent[], reason: string, seconds: number): number {
  if (!vpsMoved(events)) {
    say(`REFUSED before any change (${seconds}s):\n${reason}`);
    return EXIT.refused;
  }
  if (/previous release restored and healthy/.test(reason)) {
    say(`FAILED after ${seconds}s in the VPS app; its host restored the previous release, which is serving:\n${reason}`);
    return EXIT.rolledBack;
  }
  say(`FAILED after ${seconds}s in the VPS app, and its previous release is not back (check the host):\n${reason}`);
  return EXIT.rollbackFailed;
}

/** Previews the update; a failed preview is reported as a refusal before any change (undefined). */
async function previewFirst(stack: Stack): Promise<{ seconds: number } | undefined> {
  const preview = await run(stack, "preview");
  if (!preview.ok) {
    say(`REFUSED before any change: the preview failed:\n${lastError(preview.events, preview.error)}`);
    return undefined;
  }
  say(`preview done in ${preview.seconds}s`);
  return preview;
}

/** Deploys a stack without the homelab part: preview, then up; the VPS restores itself on failure. */
async function deployVpsOnly(stack: Stack, name: string): Promise<number> {
  say(`stack ${name}: deploying the VPS app (the stack has no homelab part)`);
  const preview = await previewFirst(stack);
  if (!preview) {
    return EXIT.refused;
  }
  const up = await run(stack, "up");
  if (up.ok) {
    say(`DEPLOYED in ${up.seconds}s: ${String((await stack.outputs()).vpsImage?.value ?? "")}`);
    return EXIT.promoted;
  }
  return vpsFailure(up.events, lastError(up.events, up.error), up.seconds);
}

/**
 * A remote script whose run failed (an SSH connection cut, a timeout) may have changed its host
 * anyway, while the stack still records the inputs of the run before; with nothing to diff, the
 * rollback would not run it again. Marking its recorded state makes the next `up` run it.
 */
async function markUnfinishedRemoteRuns(stack: Stack, events: EngineEvent[]): Promise<string[]> {
  const failed = new Set(events.map((e) => e.resOpFailedEvent?.metadata).filter((m) => m?.type === REMOTE_SCRIPT).map((m) => m!.urn));
  if (failed.size === 0) {
    return [];
  }
  const state = await stack.exportStack();
  const resources = (state.deployment as { resources?: { urn: string; outputs?: Record<string, unknown> }[] }).resources ?? [];
  const marked: string[] = [];
  for (const r of resources) {
    if (failed.has(r.urn) && r.outputs) {
      r.outputs.triggers = [...((r.outputs.triggers as unknown[] | undefined) ?? []), `unfinished run ${new Date().toISOString()}`];
      marked.push(r.urn.split("::").pop() ?? r.urn);
    }
  }
  if (marked.length > 0) {
    await stack.importStack(state);
  }
  return marked;
}

/** Keeps a remote deploy's own verdict lines (`deploy: …`) and drops compose's progress noise. */
function summarize(message: string): string {
  const lines = message.split("\n");
  const verdict = lines.filter((l) => /^\s*deploy: /.test(l)).map((l) => l.trim());
  return verdict.length > 0 ? [lines[0], ...verdict].join("\n") : message;
}

function lastError(events: EngineEvent[], err: unknown): string {
  const diags = events
    .map((e) => e.diagnosticEvent)
    .filter((d): d is NonNullable<typeof d> => d !== undefined && d.severity === "error" && !d.message.includes("update failed"))
    .map((d) => `${d.urn ? d.urn.split("::").pop() + ": " : ""}${summarize(d.message.trim())}`);
  return diags.length > 0 ? diags.join("\n") : (err as Error).message.split("\n").slice(-8).join("\n");
}

async function run(stack: Stack, kind: "preview" | "up", refresh = false): Promise<{ ok: boolean; events: EngineEvent[]; error?: unknown; seconds: number }> {
  const events: EngineEvent[] = [];
  const started = Date.now();
  const onOutput = (out: string): void => void process.stdout.write(out);
  try {
    if (kind === "preview") {
      await stack.preview({ onEvent: (e) => events.push(e), onOutput, color: "never" });
    } else {
      await stack.up({ onEvent: (e) => events.push(e), onOutput, color: "never", refresh });
    }
    return { ok: true, events, seconds: secondsSince(started) };
  } catch (error) {
    if (error instanceof ConcurrentUpdateError) {
      throw error;
    }
    return { ok: false, events, error, seconds: secondsSince(started) };
  }
}

function describeRunning(release: PromotedRelease | undefined): string {
  return release ? `frontend ${release.frontend.tag}, backend ${release.backend.tag}` : "nothing promoted yet";
}

/**
 * A guarded deploy: preview, `up`, and when a rollout or gate fails, `up` again with the last
 * promoted pair pinned and the failed tags excluded from image automation.
 */
export async function deploy(opts: Options): Promise<number> {
  const tc = toolchainEnv({ backendUrl: process.env.PULUMI_BACKEND_URL });
  Object.assign(process.env, tc.vars);
  const lock = acquireDeployLock(path.join(cacheDir(), "locks"), `${crypto.createHash("sha256").update(opts.workDir).digest("hex").slice(0, 8)}-${opts.stack}`);
  try {
    const stack = await LocalWorkspace.selectStack({ stackName: opts.stack, workDir: opts.workDir }, { envVars: tc.vars });
    const outputs = await stack.outputs();
    const last = outputs.release?.value as PromotedRelease | undefined;
    let cfg = (await stack.getAllConfig()) as Config;
    if (cfg["homelab:deployHomelab"]?.value === "false") {
      return await deployVpsOnly(stack, opts.stack);
    }

    // Every config value is checked, each bad one named, before the release file or the engine.
    const invalid = configProblems(cfg);
    if (invalid) {
      say(`REFUSED before any change: ${invalid}`);
      return EXIT.refused;
    }

    // A rollback pins the last good pair until the release file moves past the failed tags.
    const rollback = cfg["homelab:rollbackEvent"]?.value;
    if (rollback && (cfg["homelab:frontendTag"]?.value || cfg["homelab:backendTag"]?.value)) {
      const failed = (JSON.parse(rollback) as RollbackEvent).failed;
      let next: { frontend: string; backend: string };
      try {
        next = unpinnedTags(cfg, opts.workDir);
      } catch (e) {
        say(`REFUSED before any change: ${(e as Error).message}`);
        return EXIT.refused;
      }
      if (next.frontend !== failed.frontend || next.backend !== failed.backend) {
        say(`the release file names a new release (frontend ${next.frontend}, backend ${next.backend}); releasing the rollback pin`);
        await stack.removeAllConfig(["homelab:frontendTag", "homelab:backendTag", "homelab:rollbackEvent"]);
        cfg = (await stack.getAllConfig()) as Config;
      } else {
        say(`rolled back: still pinned to ${describeRunning(last)} until the release file names a release other than frontend ${failed.frontend}, backend ${failed.backend}`);
      }
    }

    let target: { frontend: string; backend: string };
    try {
      target = targetTags(cfg, opts.workDir);
    } catch (e) {
      say(`REFUSED before any change: ${(e as Error).message}`);
      return EXIT.refused;
    }
    say(`stack ${opts.stack}: deploying frontend ${target.frontend}, backend ${target.backend} (running: ${describeRunning(last)})`);

    const preview = await previewFirst(stack);
    if (!preview) {
      return EXIT.refused;
    }

    const up = await run(stack, "up");
    if (up.ok) {
      const now = (await stack.outputs()).release?.value as PromotedRelease | undefined;
      say(`PROMOTED in ${up.seconds}s: ${describeRunning(now)}`);
      return EXIT.promoted;
    }
    const reason = lastError(up.events, up.error);
    const failed = failedUrns(up.events);
    if (failed.length > 0 && failed.every(inVps)) {
      // The homelab's stages did not fail: its release is not rolled back for the VPS's sake.
      return vpsFailure(up.events, reason, up.seconds);
    }
    if (!releaseMoved(up.events)) {
      say(`REFUSED before any change (${up.seconds}s):\n${reason}\nStill running: ${describeRunning(last)}`);
      return EXIT.refused;
    }
    if (!last) {
      say(`FAILED and there is no promoted release to roll back to:\n${reason}`);
      return EXIT.rollbackFailed;
    }
    say(`FAILED after ${up.seconds}s:\n${reason}`);
    say(`rolling back both to the last promoted pair: ${describeRunning(last)}`);

    const excluded = new Set<string>(JSON.parse(cfg["homelab:excludedTags"]?.value ?? "[]") as string[]);
    for (const [tag, good] of [
      [target.frontend, last.frontend.tag],
      [target.backend, last.backend.tag],
    ]) {
      if (tag !== good) {
        excluded.add(tag);
      }
    }
    const event: RollbackEvent = {
      id: crypto.randomUUID(),
      at: new Date().toISOString(),
      failed: target,
      reason: reason.slice(0, 500),
      stages: { preview: preview.seconds, up: up.seconds },
    };
    await stack.removeConfig("homelab:excludedTags").catch(() => undefined);
    await stack.setAllConfig(
      {
        "homelab:frontendTag": { value: last.frontend.tag },
        "homelab:backendTag": { value: last.backend.tag },
        "homelab:rollbackEvent": { value: JSON.stringify(event) },
        ...listConfig("homelab:excludedTags", [...excluded].sort()),
      },
      true,
    );
    const unfinished = await markUnfinishedRemoteRuns(stack, up.events);
    if (unfinished.length > 0) {
      say(`the rollback runs ${unfinished.join(", ")} again: its failed run may have changed the host`);
    }
    // Refreshed first: a failed rollout (an API server gone mid-update) can leave the cluster on
    // the failed release while the stack records the previous one.
    const back = await run(stack, "up", true);
    if (!back.ok) {
      say(`ROLLBACK FAILED after ${back.seconds}s:\n${lastError(back.events, back.error)}\nCheck the frontend and the VM by hand; the stack still records ${describeRunning(last)} as the last good pair.`);
      return EXIT.rollbackFailed;
    }
    say(`ROLLED BACK in ${back.seconds}s: running ${describeRunning(last)} again.`);
    say(`image automation now skips ${[...excluded].join(", ")}; remove a tag from homelab:excludedTags once it is fixed.`);
    return EXIT.rolledBack;
  } catch (e) {
    if (e instanceof ConcurrentUpdateError) {
      say(`REFUSED: another update of stack ${opts.stack} is in progress; wait for it to finish`);
      return EXIT.refused;
    }
    if (e instanceof StackNotFoundError) {
      say(`REFUSED: no stack ${opts.stack} in ${tc.backendUrl} (for the sandbox's stack, first: eval "$(npm run -s sandbox -- --print-env)")`);
      return EXIT.refused;
    }
    throw e;
  } finally {
    lock.release();
  }
}

if (require.main === module) {
  let opts: Options;
  try {
    opts = parseArgs(process.argv.slice(2));
  } catch (e) {
    say((e as Error).message);
    process.exit(EXIT.refused);
  }
  deploy(opts).then(
    (code) => process.exit(code),
    (e: unknown) => {
      const msg = (e as Error).message;
      say(msg.startsWith("another deploy") ? `REFUSED: ${msg}` : `unexpected error: ${msg}`);
      process.exit(msg.startsWith("another deploy") ? EXIT.refused : EXIT.unexpected);
    },
  );
}
