import { spawn } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import type { EngineEvent } from "@pulumi/pulumi/automation";
import { ENGINE_RUN_VAR } from "./engine-run";
import { LockHolder, lockHolders, recordEngine, removeDeadDeployLocks } from "./lock";
import { redact } from "./rollback-commit";

/**
 * The Pulumi CLI could not be started (spawn's ENOENT): said in one line with what to do, instead
 * of `spawn pulumi ENOENT`. Nothing ran.
 */
export class PulumiNotFound extends Error {
  constructor(readonly command: string, options?: ErrorOptions) {
    const what = command.includes("/") ? `the Pulumi CLI (${command}) was not found` : `the Pulumi CLI (${command}) was not found on PATH`;
    super(
      `${what}: install Pulumi 3.276 or newer (https://www.pulumi.com/docs/install/); ` +
        `as a systemd service, the unit's Environment=PATH= must include its directory (the installer puts it in ~/.pulumi/bin)`,
      options,
    );
  }
}

/**
 * The error as PulumiNotFound when it, or an error it wraps, says the CLI could not be started:
 * the engine's own spawn, or the Automation API, which reports it only in its message
 * (`Command failed with ENOENT: pulumi version` … `spawn pulumi ENOENT`).
 */
export function pulumiNotFound(e: unknown): PulumiNotFound | undefined {
  for (let cause = e; cause instanceof Error; cause = cause.cause) {
    if (cause instanceof PulumiNotFound) {
      return cause;
    }
    const spawned = /\bspawn (\S*pulumi) ENOENT\b/.exec(cause.message);
    if (spawned) {
      return new PulumiNotFound(spawned[1], { cause: e });
    }
  }
  return undefined;
}

/**
 * Where `command` would be started from: the first executable file of that name in PATH's
 * directories, as a spawn looks for it (without PATH, /usr/bin:/bin), or undefined.
 */
export function findOnPath(command: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const dirs = command.includes("/") ? [""] : (env.PATH ?? "/usr/bin:/bin").split(path.delimiter);
  for (const dir of dirs) {
    // An empty entry is the current directory.
    const file = path.resolve(dir || ".", command);
    try {
      fs.accessSync(file, fs.constants.X_OK);
      if (fs.statSync(file).isFile()) {
        return file;
      }
    } catch {
      // not here
    }
  }
  return undefined;
}

/** What one run of the engine did. */
export interface EngineRun {
  readonly ok: boolean;
  /** Every engine event of the run, preview phase included (those carry `planning`). */
  readonly events: EngineEvent[];
  /** The CLI's own error text when it failed (its last lines). */
  readonly error?: string;
  /** Another update of the stack held its lock. */
  readonly concurrent: boolean;
  /** Who held it, as the CLI named them (a file or cloud-storage backend names them). */
  readonly holders: readonly LockHolder[];
  readonly seconds: number;
  /** Seconds until the CLI began the update half of an `up` (its preview, refresh included, before); unset when it never began. */
  readonly previewSeconds?: number;
}

export interface UpOptions {
  readonly stack: string;
  /** The project directory (holding Pulumi.yaml). */
  readonly workDir: string;
  /** Policy packs enforced on the preview and the update (directories). */
  readonly policyPacks: readonly string[];
  /** Refresh the stack's state from the providers first. @default false */
  readonly refresh?: boolean;
  /** Where the engine's progress goes. @default process.stdout */
  readonly onOutput?: (text: string) => void;
  /** The `pulumi` command. @default "pulumi" (the one on PATH) */
  readonly pulumi?: string;
  /**
   * Secret values to keep out of everything printed: the engine's output carries what the hosts
   * printed (a failed release's application logs among it), which may hold them.
   * @default []
   */
  readonly secrets?: readonly string[];
  /**
   * The stack's project and name, to record this engine as the holder of the stack's update lock
   * (so a deploy killed mid-update leaves a lock the next one can prove dead and remove) and to
   * remove such a lock when it refuses the update. @default none: a lock is only reported
   */
  readonly lock?: { readonly project: string; readonly stack: string };
  /** Says what happened to a lock a killed deploy left. */
  readonly say?: (line: string) => void;
}

/**
 * Wraps `write` so that every secret value is replaced before it is written. Text is passed on a
 * line at a time, so a value split across two chunks of output is still found.
 */
export function redactingWriter(write: (text: string) => void, secrets: readonly string[]): { write(text: string): void; flush(): void } {
  if (secrets.length === 0) {
    return { write, flush: () => undefined };
  }
  let pending = "";
  return {
    write(text) {
      pending += text;
      const end = pending.lastIndexOf("\n");
      // A line this long is no progress line; it goes out whole even without its end.
      const cut = end >= 0 ? end + 1 : pending.length > 65536 ? pending.length : 0;
      if (cut > 0) {
        write(redact(pending.slice(0, cut), secrets));
        pending = pending.slice(cut);
      }
    },
    flush() {
      if (pending) {
        write(redact(pending, secrets));
        pending = "";
      }
    },
  };
}

// The texts with which the service and the file backends refuse an update while another holds the lock.
const CONCURRENT = ["[409] Conflict: Another update is currently in progress", "the stack is currently locked by"];

/**
 * `pulumi up --yes` with the policy packs: the engine previews first, with every policy enforced,
 * and changes nothing when the preview fails; then it updates, enforcing them again. One engine
 * invocation does both, so the preview costs no second start of the CLI and its plugins.
 */
export async function up(opts: UpOptions): Promise<EngineRun> {
  const args = ["up", "--yes"];
  for (const pack of opts.policyPacks) {
    args.push("--policy-pack", pack);
  }
  if (opts.refresh) {
    args.push("--refresh");
  }
  const run = await runCli(args, opts);
  // A deploy killed mid-update left the stack locked: its lock removed, the creates it left
  // pending dropped from the state (the program's creates are idempotent: the update makes them
  // again), and the update runs again.
  if (run.concurrent && opts.lock && (await removeDeadDeployLocks(run.holders, opts.say))) {
    const cleared = await runCli(["refresh", "--yes", "--skip-preview", "--clear-pending-creates"], opts);
    if (!cleared.ok) {
      return cleared;
    }
    opts.say?.("cleared the operations the killed update left pending");
    return runCli(args, opts);
  }
  return run;
}

/**
 * `pulumi refresh --preview-only`: every resource is read (the hosts, the gates, the cluster) and
 * nothing is written, not even the state.
 */
export function readLive(opts: Pick<UpOptions, "stack" | "workDir" | "onOutput" | "pulumi" | "secrets">): Promise<EngineRun> {
  return runCli(["refresh", "--preview-only"], opts);
}

async function runCli(command: string[], opts: Pick<UpOptions, "stack" | "workDir" | "onOutput" | "pulumi" | "secrets" | "lock">): Promise<EngineRun> {
  const started = Date.now();
  const logDir = fs.mkdtempSync(path.join(os.tmpdir(), "homelab-deploy-"));
  const eventLog = path.join(logDir, "events.jsonl");
  const args = [...command, "--stack", opts.stack, "--cwd", opts.workDir, "--event-log", eventLog, "--color", "never"];
  if (!process.stdout.isTTY) {
    args.push("--non-interactive");
  }
  const out = redactingWriter(opts.onOutput ?? ((t: string) => void process.stdout.write(t)), opts.secrets ?? []);
  let updateBegan: number | undefined;
  try {
    const { code, stderr } = await new Promise<{ code: number; stderr: string }>((resolve, reject) => {
      // --event-log is among the CLI's debug commands (the Automation API turns them on the same way).
      // Every plugin inherits the run's marker: a later deploy finds them by it if this run dies.
      const engineRun = crypto.randomUUID();
      const child = spawn(opts.pulumi ?? "pulumi", args, { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, PULUMI_DEBUG_COMMANDS: "true", [ENGINE_RUN_VAR]: engineRun } });
      let errText = "";
      let tail = "";
      child.stdout.setEncoding("utf8").on("data", (t: string) => {
        out.write(t);
        // The CLI heads the update half of an `up` with `Updating (<stack>):`, after its preview.
        if (updateBegan === undefined && /(^|\n)Updating \(/.test(tail + t)) {
          updateBegan = Date.now();
        }
        tail = (tail + t).slice(-200);
      });
      child.stderr.setEncoding("utf8").on("data", (t: string) => {
        errText += t;
        out.write(t);
      });
      child.on("error", (e: NodeJS.ErrnoException) =>
        reject(
          e.code === "ENOENT"
            ? new PulumiNotFound(opts.pulumi ?? "pulumi", { cause: e })
            : new Error(`could not run ${opts.pulumi ?? "pulumi"} (${e.message}): install the Pulumi CLI and put it on PATH`, { cause: e }),
        ),
      );
      // Recorded now, before the engine can take the stack's lock: a deploy killed at any moment
      // after leaves a lock whose holder the next deploy can judge.
      const identity =
        opts.lock && child.pid !== undefined ? recordEngine({ project: opts.lock.project, stack: opts.lock.stack.split("/").pop()! }, child.pid, engineRun) : undefined;
      child.on("close", (c) => {
        if (identity) {
          fs.rmSync(identity, { force: true });
        }
        out.flush();
        resolve({ code: c ?? 1, stderr: redact(errText, opts.secrets ?? []) });
      });
    });
    const events = readEvents(eventLog);
    const concurrent = code !== 0 && CONCURRENT.some((t) => stderr.includes(t));
    return {
      ok: code === 0,
      events,
      error: code === 0 ? undefined : stderr.trim().split("\n").slice(-8).join("\n"),
      concurrent,
      holders: concurrent ? lockHolders(stderr) : [],
      seconds: Math.round((Date.now() - started) / 100) / 10,
      ...(updateBegan !== undefined ? { previewSeconds: (updateBegan - started) / 1000 } : {}),
    };
  } finally {
    fs.rmSync(logDir, { recursive: true, force: true });
  }
}

function readEvents(file: string): EngineEvent[] {
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch {
    return [];
  }
  const events: EngineEvent[] = [];
  for (const line of text.split("\n")) {
    if (line.trim()) {
      try {
        events.push(JSON.parse(line) as EngineEvent);
      } catch {
        // a line cut by a killed engine
      }
    }
  }
  return events;
}
