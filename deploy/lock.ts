import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { fileURLToPath } from "url";
import { ConcurrentUpdateError, LocalWorkspace, Stack } from "@pulumi/pulumi/automation";
import { stopRunProcesses } from "./engine-run";

/** A held deploy lock; release it when the deploy ends. */
export interface DeployLock {
  /** The lock stack, for messages (`pulumi cancel --stack …`). */
  readonly stack: string;
  release(): Promise<void>;
}

/** Another deploy holds the lock (or a killed one left it where it cannot be recovered safely). */
export class LockHeld extends Error {}

/** A holder of a state backend's update lock, as the CLI names it when it refuses an update. */
export interface LockHolder {
  /** Where the lock file is (`file:///…/.pulumi/locks/…/<id>.json?…`, `s3://…`). */
  readonly url: string;
  readonly user: string;
  readonly host: string;
  readonly pid: number;
  readonly since: string;
}

/**
 * The lock stack of a stack: the same stack name (and organization, when the name is qualified)
 * in the project `<project>-deploy-lock`, so it lives in the same state backend.
 */
export function lockStackName(project: string, stack: string): { project: string; stack: string } {
  const parts = stack.split("/");
  const name = parts[parts.length - 1];
  const lockProject = `${parts.length === 3 ? parts[1] : project}-deploy-lock`;
  return { project: lockProject, stack: parts.length > 1 ? `${parts[0]}/${lockProject}/${name}` : name };
}

/** The holders the CLI lists when a file, S3, GCS or Azure backend refuses an update. */
export function lockHolders(message: string): LockHolder[] {
  const all = [...message.matchAll(/^\s*(\S+): created by (.*)@(\S+) \(pid (\d+)\) at (\S+)\s*$/gm)].map((m) => ({ url: m[1], user: m[2], host: m[3], pid: Number(m[4]), since: m[5] }));
  // A file backend can list one holder's lock twice (its metadata file `<id>.json.attrs` too).
  const seen = new Set<string>();
  return all.filter((h) => {
    const key = `${h.pid}@${h.host}@${h.since}`;
    const first = !/\.attrs(\?|$)/.test(h.url) && !seen.has(key);
    seen.add(key);
    return first;
  });
}

/** The CLI's own error line in an Automation API error, else its last line. */
function cliError(message: string): string {
  return /^error: (.*)$/m.exec(message)?.[1] ?? message.trim().split("\n").slice(-1)[0];
}

function alive(pid: number): boolean {
  try {
    // A killed process its parent has not reaped yet is gone all the same.
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    if (stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z")) {
      return false;
    }
  } catch {
    // no /proc here, or no such process: kill says which
  }
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * What tells one running system from another on the same host name: its boot and its PID
 * namespace (a container on the host's network has the host's name, and its own PIDs).
 */
export interface HostIdentity {
  readonly bootId: string;
  readonly pidNamespace: string;
}

/** A deploy lock's holder as its taker recorded it: the system it ran in, and the engine's PID there. */
export interface HolderIdentity extends HostIdentity {
  readonly pid: number;
  /** The engine run's marker (see engine-run.ts), by which the plugins it left are found. */
  readonly run?: string;
}

/** This process's boot and PID namespace; empty where the system does not say (not Linux). */
export function thisSystem(): HostIdentity {
  const read = (f: () => string): string => {
    try {
      return f().trim();
    } catch {
      return "";
    }
  };
  return { bootId: read(() => fs.readFileSync("/proc/sys/kernel/random/boot_id", "utf8")), pidNamespace: read(() => fs.readlinkSync("/proc/self/ns/pid")) };
}

/**
 * Where the identity of a file backend lock's holder is kept: beside the backend's locks, never
 * among them, where the CLI counts every file as a lock.
 */
export function identityFile(lockFile: string): string | undefined {
  const m = /^(.*[\\/]\.pulumi)[\\/]locks[\\/](.+)\.json$/.exec(lockFile);
  return m ? path.join(m[1], "homelab-lock-holders", `${m[2]}.json`) : undefined;
}

/**
 * Where a deploy records an engine it starts for a stack (see recordEngine), beside the identities
 * of that stack's locks.
 */
function engineRecordFile(holdersDir: string, pid: number): string {
  return path.join(holdersDir, `engine-${pid}.json`);
}

/**
 * What was recorded of the process holding `lockFile` with `pid`: the identity its taker wrote
 * beside the lock, else the record of the engine its deploy started (written before the engine
 * could take any lock, so a deploy killed the moment its engine locks the stack is still judged).
 */
export function holderIdentity(lockFile: string, pid: number): HolderIdentity | undefined {
  const perLock = identityFile(lockFile);
  if (!perLock) {
    return undefined;
  }
  const id = readIdentity(perLock) ?? readIdentity(engineRecordFile(path.dirname(perLock), pid));
  return id && id.pid === pid ? id : undefined;
}

/** What a taker recorded of a file backend lock's holder, if anything. */
function recordedHolder(h: LockHolder): HolderIdentity | undefined {
  return h.url.startsWith("file://") ? holderIdentity(fileURLToPath(h.url.replace(/\?.*$/, "")), h.pid) : undefined;
}

function readIdentity(file: string | undefined): HolderIdentity | undefined {
  try {
    const id = JSON.parse(fs.readFileSync(file ?? "", "utf8")) as Partial<HolderIdentity>;
    return typeof id.bootId === "string" && typeof id.pidNamespace === "string" && typeof id.pid === "number" ? (id as HolderIdentity) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The lock file a holder left, when it is safe to remove: a file backend's lock written on this
 * machine by a process that is gone. Where its taker recorded its system: gone with an earlier
 * boot; never judged from another PID namespace, whose processes this one cannot see. A holder on
 * another machine, or on a backend whose files this process cannot remove one by one, is never
 * judged stale.
 */
export function staleLockFile(
  holder: LockHolder,
  hostname = os.hostname(),
  isAlive = alive,
  here: HostIdentity = thisSystem(),
  identityOf: (lockFile: string, pid: number) => HolderIdentity | undefined = holderIdentity,
): string | undefined {
  if (!holder.url.startsWith("file://") || holder.host !== hostname) {
    return undefined;
  }
  const file = fileURLToPath(holder.url.replace(/\?.*$/, ""));
  const id = identityOf(file, holder.pid);
  if (id && id.bootId && here.bootId && id.bootId !== here.bootId) {
    return file;
  }
  if (id && id.pidNamespace !== here.pidNamespace) {
    return undefined;
  }
  return isAlive(holder.pid) ? undefined : file;
}

/** The parent of a process, from /proc; undefined where there is none to read. */
function parentOf(pid: number): number | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
  } catch {
    return undefined;
  }
}

/** The file backend's root of this process's state, from the environment or the CLI's credentials file. */
function fileBackendRoot(): string | undefined {
  let url = process.env.PULUMI_BACKEND_URL;
  if (!url) {
    try {
      const home = process.env.PULUMI_HOME ?? path.join(os.homedir(), ".pulumi");
      url = (JSON.parse(fs.readFileSync(path.join(home, "credentials.json"), "utf8")) as { current?: string }).current;
    } catch {
      return undefined;
    }
  }
  return url?.startsWith("file://") ? fileURLToPath(url.replace(/\?.*$/, "")) : undefined;
}

/**
 * Records the engine just started for `lock`'s stack (`pid`, its run marker) with this system's
 * boot and PID namespace, before it can take the stack's lock: if this deploy is killed once the
 * engine holds the lock, the next one can prove the holder dead. Returns the file written, to
 * remove when the engine ends. Best effort, for a file backend.
 */
export function recordEngine(lock: { project: string; stack: string }, pid: number, run: string): string | undefined {
  const root = fileBackendRoot();
  if (!root) {
    return undefined;
  }
  const file = engineRecordFile(path.join(root, ".pulumi", "homelab-lock-holders", "organization", lock.project, lock.stack), pid);
  try {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, JSON.stringify({ ...thisSystem(), pid, run } satisfies HolderIdentity));
    return file;
  } catch {
    return undefined;
  }
}

/**
 * Records who holds the lock just taken, beside the lock file the engine (a child of this process)
 * wrote: this system's boot and PID namespace. Returns the file written, to remove on release.
 * Best effort: without it, staleness is judged from the host name and PID alone, as before.
 */
export function recordHolder(lock: { project: string; stack: string }, run?: string): string | undefined {
  const root = fileBackendRoot();
  if (!root) {
    return undefined;
  }
  const dir = path.join(root, ".pulumi", "locks", "organization", lock.project, lock.stack);
  try {
    for (const name of fs.readdirSync(dir).filter((n) => n.endsWith(".json"))) {
      const lockFile = path.join(dir, name);
      const { pid } = JSON.parse(fs.readFileSync(lockFile, "utf8")) as { pid?: number };
      const target = identityFile(lockFile);
      if (typeof pid === "number" && parentOf(pid) === process.pid && target) {
        fs.mkdirSync(path.dirname(target), { recursive: true });
        fs.writeFileSync(target, JSON.stringify({ ...thisSystem(), pid, ...(run ? { run } : {}) } satisfies HolderIdentity));
        return target;
      }
    }
  } catch {
    // Not this layout, or not readable: judged as before.
  }
  return undefined;
}

// The lock stack holds no secrets; a fixed, empty passphrase lets any machine open it whatever
// secrets provider the deployed stack uses.
const LOCK_ENV: Record<string, string> = { PULUMI_CONFIG_PASSPHRASE: "", ...(process.env.PULUMI_CONFIG_PASSPHRASE_FILE ? { PULUMI_CONFIG_PASSPHRASE_FILE: "" } : {}) };

/** The lock stack, in a workspace of its own (a temporary directory the automation API makes). */
async function lockStack(project: string, stack: string): Promise<Stack> {
  const args = { ...lockStackName(project, stack), program: () => Promise.resolve() };
  const open = (): Promise<Stack> => LocalWorkspace.createOrSelectStack({ stackName: args.stack, projectName: args.project, program: args.program }, { envVars: LOCK_ENV });
  try {
    return await open();
  } catch (e) {
    // Two first deploys create it at once: one of them finds it made.
    if (/already exists/.test((e as Error).message)) {
      return open();
    }
    throw e;
  }
}

export interface LockOptions {
  /** The project of the deployed stack (Pulumi.yaml's name). */
  readonly project: string;
  /** The deployed stack. */
  readonly stack: string;
  /** For messages. @default `stack <stack>` */
  readonly what?: string;
  /** Says what happened to a lock a killed deploy left. */
  readonly say?: (line: string) => void;
}

/**
 * Takes the deploy lock of a stack: an update of its lock stack (see `lockStackName`) held open
 * until `release`. The state backend's own update lock makes it atomic and visible to every
 * checkout and machine that uses the backend. When the holder dies its lock file stays; one of a
 * file backend left by a process of this machine that is gone is removed (that file alone, so a
 * lock another process takes meanwhile is never touched) and the lock taken again. Throws
 * LockHeld naming the holder otherwise.
 */
export async function acquireDeployLock(opts: LockOptions): Promise<DeployLock> {
  const what = opts.what ?? `stack ${opts.stack}`;
  const stack = await lockStack(opts.project, opts.stack);
  const dropWorkspace = (): void => fs.rmSync(stack.workspace.workDir, { recursive: true, force: true });
  try {
    return await hold(stack, opts, what, dropWorkspace);
  } catch (e) {
    dropWorkspace();
    throw e;
  }
}

async function hold(stack: Stack, opts: LockOptions, what: string, dropWorkspace: () => void): Promise<DeployLock> {
  for (let attempt = 0; attempt < 3; attempt++) {
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    let taken!: () => void;
    const held = new Promise<"held">((r) => (taken = () => r("held")));
    // The program runs only once the engine holds the stack's lock; it keeps the update open.
    const update = stack.up({
      color: "never",
      program: async () => {
        taken();
        await released;
      },
    });
    const first = await Promise.race([held, update.then(() => "ended" as const, (e: unknown) => e as Error)]);
    if (first === "held") {
      const names = lockStackName(opts.project, opts.stack);
      const identity = recordHolder({ project: names.project, stack: names.stack.split("/").pop() ?? names.stack });
      return {
        stack: stack.name,
        async release() {
          release();
          await update.catch(() => undefined);
          if (identity) {
            fs.rmSync(identity, { force: true });
          }
          dropWorkspace();
        },
      };
    }
    const message = first === "ended" ? "the lock's update ended before it was held" : first.message;
    if (/JSON/.test(message)) {
      // A lock file another process is writing reads as cut JSON: never stale, it is theirs a moment later.
      if (attempt === 2) {
        throw new LockHeld(`another deploy of ${what} is taking the lock (its lock file cannot be read yet: ${cliError(message)}); wait for it to finish`, { cause: first });
      }
      await new Promise((r) => setTimeout(r, 1000));
      continue;
    }
    if (!(first instanceof ConcurrentUpdateError) && !/currently locked|\[409\]/.test(message)) {
      throw new Error(`could not take the deploy lock (stack ${stack.name}): ${cliError(message)}`, { cause: first });
    }
    const holders = lockHolders(message);
    const stale = holders.flatMap((h) => {
      const file = staleLockFile(h);
      return file ? [{ h, file }] : [];
    });
    if (holders.length > 0 && stale.length === holders.length) {
      removeLocks(stale, "the deploy lock", opts.say);
      continue;
    }
    if (attempt === 0 && holders.length > 0) {
      // Two takers at the same instant can each see the other's lock file and both back off:
      // look once more, a moment later, before refusing.
      await new Promise((r) => setTimeout(r, 500 + Math.random() * 1000));
      continue;
    }
    const here = thisSystem();
    const elsewhere = (h: LockHolder): string => {
      const id = recordedHolder(h);
      return id && id.pidNamespace !== here.pidNamespace ? ` in another PID namespace (${id.pidNamespace}: a container?), whose processes this one cannot see` : "";
    };
    const who = holders.length > 0 ? holders.map((h) => `pid ${h.pid} of ${h.user} on ${h.host}${elsewhere(h)}, since ${h.since}`).join("; ") : "an update of its lock stack is in progress";
    const names = lockStackName(opts.project, opts.stack);
    throw new LockHeld(
      `another deploy of ${what} is running (${who}); wait for it to finish. ` +
        `If none runs (a deploy killed on another machine), \`pulumi cancel\` of stack ${names.stack} in project ${names.project} frees it.`,
      { cause: first },
    );
  }
  throw new LockHeld(`another deploy of ${what} took the lock each time it was free; wait for it to finish`);
}

/** Removes lock files judged stale, each with its metadata and its recorded holder. */
function removeLocks(stale: readonly { h: LockHolder; file: string }[], what: string, say?: (line: string) => void): void {
  for (const { h, file } of stale) {
    fs.rmSync(file, { force: true });
    fs.rmSync(`${file}.attrs`, { force: true });
    const identity = identityFile(file);
    if (identity) {
      fs.rmSync(identity, { force: true });
      fs.rmSync(engineRecordFile(path.dirname(identity), h.pid), { force: true });
    }
    say?.(`removed ${what} left by a deploy that is gone (pid ${h.pid} on ${h.host}, since ${h.since})`);
  }
}

/**
 * Removes the deployed stack's update locks that a killed deploy left: only locks whose holder a
 * deploy recorded (an engine it ran on this machine, see recordHolder) and that is gone. A lock
 * of a `pulumi up` run by hand, or from another machine, is never judged. Returns true when every
 * holder was such a lock, so the update may be tried again.
 */
export async function removeDeadDeployLocks(holders: readonly LockHolder[], say?: (line: string) => void): Promise<boolean> {
  const stale = holders.flatMap((h) => {
    const id = recordedHolder(h);
    const file = id ? staleLockFile(h) : undefined;
    return file ? [{ h, file, run: id?.run }] : [];
  });
  if (holders.length === 0 || stale.length !== holders.length) {
    return false;
  }
  removeLocks(stale, "the stack's update lock", say);
  // The dead engine's plugins outlive it (they run in process groups of their own).
  for (const { run } of stale) {
    const stopped = run ? await stopRunProcesses(run) : [];
    if (stopped.length > 0) {
      say?.(`stopped ${stopped.length} plugin process${stopped.length === 1 ? "" : "es"} the killed update left running (pid ${stopped.join(", ")})`);
    }
  }
  return true;
}
