// Background processes of the local sandbox: started detached with a log file and a pidfile
// under a directory, recorded in that directory's state file, and stopped by PID only.

import { spawn } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as net from "net";
import * as os from "os";
import * as path from "path";

/** File under a sandbox directory that records what the sandbox started there. */
export const STATE_FILE = "sandbox-state.json";

/** One process the sandbox started. */
export interface ProcessRecord {
  /** Name unique within the directory, e.g. `dockerd`, `sshd`, `registry`. */
  readonly name: string;
  readonly pid: number;
  /** Start time of the process (clock ticks since boot, /proc/PID/stat field 22); guards against PID reuse. */
  readonly startTime?: number;
  readonly command: string;
  readonly args: readonly string[];
  readonly logFile: string;
  readonly pidFile: string;
  readonly startedAt: string;
}

/** What a directory's state file holds. */
export interface SandboxState {
  processes: Record<string, ProcessRecord>;
  /** Free-form records of other things components created (users, files), by component. */
  resources: Record<string, unknown>;
}

export function statePath(dir: string): string {
  return path.join(dir, STATE_FILE);
}

export function readState(dir: string): SandboxState {
  try {
    const raw = JSON.parse(fs.readFileSync(statePath(dir), "utf8")) as Partial<SandboxState>;
    return { processes: raw.processes ?? {}, resources: raw.resources ?? {} };
  } catch {
    return { processes: {}, resources: {} };
  }
}

/** Applies `change` to the state file (read, modify, atomic rename). */
export function updateState(dir: string, change: (s: SandboxState) => void): SandboxState {
  fs.mkdirSync(dir, { recursive: true });
  const state = readState(dir);
  change(state);
  const tmp = `${statePath(dir)}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify(state, null, 2) + "\n");
  fs.renameSync(tmp, statePath(dir));
  return state;
}

/** Start time of a live process from /proc, or undefined when there is no such process. */
export function processStartTime(pid: number): number | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    // Fields after the command name (which is in parentheses and may hold spaces).
    const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // rest[0] is field 3 (state); field 22 (starttime) is rest[19].
    if (rest[0] === "Z" || rest[0] === "X") {
      return undefined;
    }
    return Number(rest[19]);
  } catch {
    return undefined;
  }
}

/**
 * Whether `pid` is alive (not a zombie) and, when `startTime` is given, is still the process
 * that was recorded rather than a later one that reuses the PID.
 */
export function isAlive(pid: number, startTime?: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) {
    return false;
  }
  const st = processStartTime(pid);
  if (st === undefined) {
    return false;
  }
  return startTime === undefined || st === startTime;
}

export function recordAlive(rec: ProcessRecord | undefined): rec is ProcessRecord {
  return rec !== undefined && isAlive(rec.pid, rec.startTime);
}

export interface StartProcessOptions {
  readonly name: string;
  readonly command: string;
  readonly args: readonly string[];
  readonly env?: NodeJS.ProcessEnv;
  readonly cwd?: string;
  /** @default <dir>/<name>.log */
  readonly logFile?: string;
  /** @default <dir>/<name>.pid */
  readonly pidFile?: string;
}

/**
 * Starts `command` detached (own session, not tied to this Node process), output appended to a
 * log file, writes its PID to a pidfile and records it in the state file. The process must stay
 * in the foreground (no daemonising fork), so the PID recorded is the daemon's.
 */
export function startProcess(dir: string, o: StartProcessOptions): ProcessRecord {
  fs.mkdirSync(dir, { recursive: true });
  const logFile = o.logFile ?? path.join(dir, `${o.name}.log`);
  const pidFile = o.pidFile ?? path.join(dir, `${o.name}.pid`);
  const fd = fs.openSync(logFile, "a");
  let child;
  try {
    child = spawn(o.command, [...o.args], {
      detached: true,
      stdio: ["ignore", fd, fd],
      env: o.env ?? process.env,
      cwd: o.cwd ?? dir,
    });
  } finally {
    fs.closeSync(fd);
  }
  const pid = child.pid;
  if (pid === undefined) {
    throw new Error(`${o.name}: could not start ${o.command} (is it installed?); see ${logFile}`);
  }
  child.on("error", () => undefined);
  child.unref();
  const rec: ProcessRecord = {
    name: o.name,
    pid,
    startTime: processStartTime(pid),
    command: o.command,
    args: [...o.args],
    logFile,
    pidFile,
    startedAt: new Date().toISOString(),
  };
  fs.writeFileSync(pidFile, `${pid}\n`);
  updateState(dir, (s) => {
    s.processes[o.name] = rec;
  });
  return rec;
}

/** The recorded process `name` in `dir` if it is still alive. */
export function runningProcess(dir: string, name: string): ProcessRecord | undefined {
  const rec = readState(dir).processes[name];
  return recordAlive(rec) ? rec : undefined;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Stops one process by PID: SIGTERM, waits up to `timeoutMs`, then SIGKILL and waits again.
 * Does nothing if the PID is gone or (with `startTime`) now names another process.
 */
export async function stopPid(pid: number, opts: { startTime?: number; timeoutMs?: number } = {}): Promise<void> {
  if (!isAlive(pid, opts.startTime)) {
    return;
  }
  const signal = (sig: NodeJS.Signals): void => {
    try {
      process.kill(pid, sig);
    } catch {
      // already gone
    }
  };
  signal("SIGTERM");
  const deadline = Date.now() + (opts.timeoutMs ?? 15_000);
  while (Date.now() < deadline) {
    if (!isAlive(pid, opts.startTime)) {
      return;
    }
    await sleep(50);
  }
  signal("SIGKILL");
  const killDeadline = Date.now() + 5_000;
  while (Date.now() < killDeadline) {
    if (!isAlive(pid, opts.startTime)) {
      return;
    }
    await sleep(50);
  }
  throw new Error(`process ${pid} did not exit after SIGKILL`);
}

/** Stops the recorded process `name` in `dir`, removes its pidfile and its state entry. */
export async function stopProcess(dir: string, name: string, timeoutMs?: number): Promise<void> {
  const rec = readState(dir).processes[name];
  if (!rec) {
    return;
  }
  await stopPid(rec.pid, { startTime: rec.startTime, timeoutMs });
  fs.rmSync(rec.pidFile, { force: true });
  updateState(dir, (s) => {
    delete s.processes[name];
  });
}

/** Last lines of a log file, for error messages. */
export function logTail(logFile: string, lines = 15): string {
  try {
    return fs.readFileSync(logFile, "utf8").trimEnd().split("\n").slice(-lines).join("\n");
  } catch {
    return "(no log)";
  }
}

export interface WaitOptions {
  /** What is being waited for, named in the timeout error (e.g. `sshd on 127.0.0.1:2222`). */
  readonly what: string;
  /** @default 30000 */
  readonly timeoutMs?: number;
  /** Log of the process, named (with its last lines) in the error. */
  readonly logFile?: string;
  /** Fail early when this process has exited. */
  readonly pid?: number;
  /** @default 100 */
  readonly intervalMs?: number;
}

function waitError(o: WaitOptions, detail: string): Error {
  const log = o.logFile ? `; log ${o.logFile}:\n${logTail(o.logFile)}` : "";
  return new Error(`${o.what} ${detail}${log}`);
}

/** Polls `check` until it returns true; throws a timeout error naming `what` and the log. */
export async function waitFor(check: () => Promise<boolean> | boolean, o: WaitOptions): Promise<void> {
  const timeoutMs = o.timeoutMs ?? 30_000;
  const deadline = Date.now() + timeoutMs;
  let last = "";
  for (;;) {
    try {
      if (await check()) {
        return;
      }
    } catch (e) {
      last = e instanceof Error ? e.message : String(e);
    }
    if (o.pid !== undefined && !isAlive(o.pid)) {
      throw waitError(o, `did not come up: process ${o.pid} exited`);
    }
    if (Date.now() >= deadline) {
      throw waitError(o, `did not come up within ${Math.round(timeoutMs / 1000)}s${last ? ` (last error: ${last})` : ""}`);
    }
    await sleep(o.intervalMs ?? 100);
  }
}

/** Whether something accepts TCP connections on host:port. */
export function portOpen(host: string, port: number, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect({ host, port });
    const done = (ok: boolean): void => {
      sock.destroy();
      resolve(ok);
    };
    sock.setTimeout(timeoutMs, () => done(false));
    sock.once("connect", () => done(true));
    sock.once("error", () => done(false));
  });
}

/** Waits until host:port accepts TCP connections. */
export function waitForPort(host: string, port: number, o: Omit<WaitOptions, "what"> & { what?: string }): Promise<void> {
  return waitFor(() => portOpen(host, port), { ...o, what: o.what ?? `${host}:${port}` });
}

/**
 * Waits until `url` answers with a status `accept` takes (default 2xx). Only for loopback
 * URLs: the sandbox never contacts other addresses.
 */
export function waitForUrl(
  url: string,
  o: Omit<WaitOptions, "what"> & { what?: string; accept?: (status: number) => boolean; init?: RequestInit },
): Promise<void> {
  const accept = o.accept ?? ((s: number) => s >= 200 && s < 300);
  return waitFor(
    async () => {
      const res = await fetch(url, { ...o.init, signal: AbortSignal.timeout(2000) });
      await res.arrayBuffer();
      if (!accept(res.status)) {
        throw new Error(`HTTP ${res.status}`);
      }
      return true;
    },
    { ...o, what: o.what ?? url },
  );
}

/**
 * A free TCP port on loopback, below the kernel's ephemeral range and Kubernetes' NodePorts: a port the kernel hands to
 * any other process's `listen(0)` or outgoing connection could be taken the moment a sandbox
 * service restarts, and the sandbox's services come back at the address they had.
 *
 * A port is free when nothing listens on it, but it is picked well before the service that gets
 * it listens (a cluster's five ports go to kwokctl together). So each port handed out is reserved
 * until its service has long started: never twice by this process, and not by another for
 * PORT_RESERVATION_MS (a file per port in `reservations`), so sandboxes started at once by
 * different test runners never share one.
 */
export async function freePort(reservations = PORT_RESERVATIONS): Promise<number> {
  // Kubernetes' NodePort range starts at 30000; stay below both.
  const ceiling = Math.min(ephemeralRange()[0], 30000);
  const floor = 20000;
  for (let i = 0; ceiling - floor > 1000 && i < 50; i++) {
    const port = floor + crypto.randomInt(ceiling - floor);
    if (!handedOut.has(port) && reservePort(reservations, port) && (await canListen(port))) {
      handedOut.add(port);
      return port;
    }
  }
  return listenOn(0);
}

/** Where ports handed out are reserved, shared by every process of this user on the machine. */
const PORT_RESERVATIONS = path.join(os.tmpdir(), "homelab-sandbox-ports");
/** Longer than any sandbox part takes from its port's pick to listening on it. */
const PORT_RESERVATION_MS = 15 * 60_000;
const handedOut = new Set<number>();

/** Reserves `port` for this process unless another reserved it within PORT_RESERVATION_MS. */
export function reservePort(dir: string, port: number): boolean {
  const file = path.join(dir, String(port));
  try {
    fs.mkdirSync(dir, { recursive: true });
    if (Date.now() - fs.statSync(file).mtimeMs < PORT_RESERVATION_MS) {
      return false;
    }
    fs.rmSync(file, { force: true });
  } catch {
    // no reservation yet
  }
  try {
    // wx: of two processes reserving at once, one fails here.
    fs.writeFileSync(file, `${process.pid}\n`, { flag: "wx" });
    return true;
  } catch {
    return false;
  }
}

/** The kernel's ephemeral port range (net.ipv4.ip_local_port_range). */
function ephemeralRange(): [number, number] {
  try {
    const [a, b] = fs.readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/).map(Number);
    if (Number.isInteger(a) && Number.isInteger(b)) {
      return [a, b];
    }
  } catch {
    // Not Linux: fall through to the usual defaults.
  }
  return [32768, 60999];
}

async function canListen(port: number): Promise<boolean> {
  try {
    await listenOn(port);
    return true;
  } catch {
    return false;
  }
}

/** Binds 127.0.0.1:port, releases it, and returns the port bound. */
function listenOn(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(port, "127.0.0.1", () => {
      const bound = (server.address() as net.AddressInfo).port;
      server.close(() => resolve(bound));
    });
  });
}

/** What a command printed and how it exited. */
export interface CommandRun {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * Runs a command without blocking the event loop (so timers and servers in this process keep
 * running), collecting its output; killed after `timeoutMs`.
 */
export function runCommand(cmd: string, args: readonly string[], o: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<CommandRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: o.cwd, env: o.env ?? process.env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), o.timeoutMs ?? 60_000);
    child.on("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on("close", (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    });
  });
}

