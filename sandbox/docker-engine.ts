// The sandbox's Docker engine: the machine's own if one answers on /var/run/docker.sock,
// else a dockerd of its own with every path (data, exec root, pidfile, socket) under a directory.

import { spawnSync } from "child_process";
import * as fs from "fs";
import * as http from "http";
import * as path from "path";
import { isAlive, readState, recordAlive, startProcess, stopPid, stopProcess, updateState, waitFor } from "./processes";

export const SYSTEM_DOCKER_SOCKET = "/var/run/docker.sock";

export interface DockerEngine {
  /** DOCKER_HOST value, `unix://…`. */
  readonly host: string;
  /** Path of the engine's socket. */
  readonly socket: string;
  /** Group owning the socket; a user in it may use the engine. */
  readonly group: string;
  /** PID of the dockerd this sandbox started; undefined when the machine's engine is used. */
  readonly startedPid?: number;
  /** Environment for the docker CLI: `base` plus DOCKER_HOST. */
  env(base?: NodeJS.ProcessEnv): NodeJS.ProcessEnv;
  /**
   * Stops the dockerd this sandbox started (after removing its containers and networks) and
   * removes its exec root, socket and, unless `keepData`, its data root; with default networking,
   * also the docker0 bridge, iptables rules, FORWARD policy and ip_forward it changed (unless
   * they predate it or another dockerd runs). A no-op for the machine's engine.
   */
  stop(opts?: { keepData?: boolean }): Promise<void>;
}

export interface DockerEngineOptions {
  /** Group given the socket of a dockerd started here (created if missing). @default "docker" */
  readonly group?: string;
  /** Start an own dockerd even when the machine's engine answers. @default false */
  readonly forceOwn?: boolean;
  /**
   * `default`: Docker's default networking (docker0 bridge, iptables rules), which works here.
   * `isolated`: `--bridge=none --iptables=false --ip-forward=false` for hosts where that is not
   * possible or wanted; user-defined networks and ports published on 127.0.0.1 then go through
   * docker-proxy, and the host's iptables and ip_forward stay untouched.
   * @default "default"
   */
  readonly network?: "default" | "isolated";
  /** @default 60000 */
  readonly timeoutMs?: number;
}

/** Whether a Docker engine answers `GET /_ping` on a unix socket. */
export function pingDocker(socket: string, timeoutMs = 2000): Promise<boolean> {
  return new Promise((resolve) => {
    if (!fs.existsSync(socket)) {
      resolve(false);
      return;
    }
    const req = http.request({ socketPath: socket, path: "/_ping", method: "GET", timeout: timeoutMs }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on("timeout", () => req.destroy());
    req.on("error", () => resolve(false));
    req.end();
  });
}

function groupOfFile(file: string): string {
  const gid = fs.statSync(file).gid;
  const r = spawnSync("getent", ["group", String(gid)], { encoding: "utf8" });
  return r.status === 0 ? r.stdout.split(":")[0] : String(gid);
}

function ensureGroup(group: string): void {
  if (spawnSync("getent", ["group", group]).status === 0) {
    return;
  }
  const r = spawnSync("groupadd", ["--system", group], { encoding: "utf8" });
  if (r.status !== 0) {
    throw new Error(`docker-engine: groupadd ${group} failed: ${r.stderr.trim()}`);
  }
}

/** What Docker's default networking changes on the host, as it was before dockerd started. */
interface HostNetBefore {
  /** Docker's iptables chains existed already (another engine's): leave all rules alone. */
  dockerChains: boolean;
  forwardPolicy?: string;
  ipForward?: string;
}

function iptables(args: string[]): { ok: boolean; out: string } {
  const r = spawnSync("iptables", args, { encoding: "utf8" });
  return { ok: r.status === 0, out: r.stdout ?? "" };
}

function hostNetBefore(): HostNetBefore {
  const filter = iptables(["-S"]);
  const nat = iptables(["-t", "nat", "-S"]);
  let ipForward: string | undefined;
  try {
    ipForward = fs.readFileSync("/proc/sys/net/ipv4/ip_forward", "utf8").trim();
  } catch {
    ipForward = undefined;
  }
  return {
    dockerChains: /^-N DOCKER/m.test(filter.out) || /^-N DOCKER/m.test(nat.out),
    forwardPolicy: /^-P FORWARD (\S+)/m.exec(filter.out)?.[1],
    ipForward,
  };
}

/** PIDs of live (not zombie) dockerd processes other than `except`. */
function otherDockerds(except?: number): number[] {
  return fs
    .readdirSync("/proc")
    .filter((p) => /^\d+$/.test(p) && Number(p) !== except && isAlive(Number(p)))
    .filter((p) => {
      try {
        return fs.readFileSync(`/proc/${p}/comm`, "utf8").trim() === "dockerd";
      } catch {
        return false;
      }
    })
    .map(Number);
}

/**
 * Undoes what dockerd's default networking left on the host once it has exited: its iptables
 * rules and chains, the FORWARD policy and ip_forward. Only when no Docker chains existed before
 * it started and no other dockerd runs now.
 */
function restoreHostNet(before: HostNetBefore): void {
  if (before.dockerChains || otherDockerds().length > 0) {
    return;
  }
  for (const table of ["filter", "nat"]) {
    const lines = iptables(["-t", table, "-S"]).out.split("\n");
    for (const line of lines) {
      if (/^-A /.test(line) && /DOCKER|docker0|br-[0-9a-f]{12}/.test(line)) {
        iptables(["-t", table, "-D", ...line.slice(3).split(" ")]);
      }
    }
    for (const line of lines) {
      const chain = /^-N (DOCKER\S*)/.exec(line)?.[1];
      if (chain) {
        iptables(["-t", table, "-F", chain]);
      }
    }
    for (const line of lines) {
      const chain = /^-N (DOCKER\S*)/.exec(line)?.[1];
      if (chain) {
        iptables(["-t", table, "-X", chain]);
      }
    }
  }
  if (before.forwardPolicy) {
    iptables(["-P", "FORWARD", before.forwardPolicy]);
  }
  if (before.ipForward !== undefined) {
    try {
      fs.writeFileSync("/proc/sys/net/ipv4/ip_forward", `${before.ipForward}\n`);
    } catch {
      // read-only /proc/sys: nothing to restore
    }
  }
}

function linkExists(name: string): boolean {
  return fs.existsSync(`/sys/class/net/${name}`);
}

function makeEngine(socket: string, group: string, stop: DockerEngine["stop"], startedPid?: number): DockerEngine {
  const host = `unix://${socket}`;
  return {
    host,
    socket,
    group,
    startedPid,
    env: (base = process.env) => ({ ...base, DOCKER_HOST: host }),
    stop,
  };
}

/**
 * Unmounts whatever is still mounted at or below `dir` (deepest first): what a dockerd, its
 * containers or a node left there, also after they were killed.
 */
export function unmountBelow(dir: string): void {
  const root = path.resolve(dir);
  const mounts = fs
    .readFileSync("/proc/self/mounts", "utf8")
    .split("\n")
    .map((l) => l.split(" ")[1]?.replace(/\\040/g, " "))
    .filter((m): m is string => !!m && (m === root || m.startsWith(`${root}/`)))
    .sort((a, b) => b.length - a.length);
  for (const m of mounts) {
    spawnSync("umount", ["-l", m]);
  }
}

/** PIDs of the processes whose command line names a path under `dir`: what an engine there started. */
function processesNaming(dir: string): number[] {
  const needle = `${path.resolve(dir)}/`;
  return fs
    .readdirSync("/proc")
    .filter((p) => /^\d+$/.test(p) && Number(p) !== process.pid)
    .filter((p) => {
      try {
        return fs.readFileSync(`/proc/${p}/cmdline`, "utf8").replace(/\0/g, " ").includes(needle);
      } catch {
        return false;
      }
    })
    .map(Number);
}

/** What a dockerd started in a directory changed on the host, kept in its state file. */
interface EngineRecord {
  network?: "default" | "isolated";
  createdDocker0?: boolean;
  hostNet?: HostNetBefore;
}

/**
 * Stops the dockerd started in `dir` (its containers and networks first, when it still answers)
 * and removes everything it made, from what the state file recorded: also when it was killed
 * earlier and left its mounts, docker0 and iptables rules behind.
 */
export async function stopDockerEngine(dir: string, o: { keepData?: boolean } = {}): Promise<void> {
  dir = path.resolve(dir);
  const socket = path.join(dir, "docker.sock");
  const dataRoot = path.join(dir, "docker-data");
  const execRoot = path.join(dir, "docker-exec");
  const rec = readState(dir).processes.dockerd;
  if (recordAlive(rec) && (await pingDocker(socket))) {
    // Containers and networks first: dockerd leaves user-defined bridges behind otherwise.
    const env = { ...process.env, DOCKER_HOST: `unix://${socket}` };
    const ids = spawnSync("docker", ["ps", "-aq"], { env, encoding: "utf8" }).stdout.split(/\s+/).filter(Boolean);
    if (ids.length) {
      spawnSync("docker", ["rm", "-f", "-v", ...ids], { env, encoding: "utf8", timeout: 60_000 });
    }
    spawnSync("docker", ["network", "prune", "-f"], { env, encoding: "utf8", timeout: 60_000 });
  }
  // dockerd exits only after its containers are stopped and containerd is down.
  await stopProcess(dir, "dockerd", 30_000);
  // A dockerd that was killed leaves its containerd and shims running, holding its mounts.
  for (const pid of processesNaming(dir)) {
    await stopPid(pid, { timeoutMs: 10_000 });
  }
  const res = readState(dir).resources["docker-engine"] as EngineRecord | undefined;
  if (res?.createdDocker0 && linkExists("docker0") && otherDockerds().length === 0) {
    spawnSync("ip", ["link", "delete", "docker0"]);
  }
  if (res?.hostNet) {
    restoreHostNet(res.hostNet);
  }
  unmountBelow(execRoot);
  unmountBelow(dataRoot);
  fs.rmSync(execRoot, { recursive: true, force: true });
  fs.rmSync(socket, { force: true });
  fs.rmSync(path.join(dir, "dockerd.pid"), { force: true });
  if (!o.keepData) {
    fs.rmSync(dataRoot, { recursive: true, force: true, maxRetries: 5 });
  }
  updateState(dir, (st) => {
    delete st.resources["docker-engine"];
  });
}

/**
 * A Docker engine for the sandbox. Reuses the machine's engine on /var/run/docker.sock when it
 * answers (and never stops it); else reuses a dockerd a previous call started in `dir`; else
 * starts `dockerd` with `--data-root`, `--exec-root`, `--pidfile` and socket under `dir`.
 */
export async function ensureDockerEngine(dir: string, opts: DockerEngineOptions = {}): Promise<DockerEngine> {
  dir = path.resolve(dir);
  if (!opts.forceOwn && (await pingDocker(SYSTEM_DOCKER_SOCKET))) {
    return makeEngine(SYSTEM_DOCKER_SOCKET, groupOfFile(SYSTEM_DOCKER_SOCKET), () => Promise.resolve());
  }
  const group = opts.group ?? "docker";
  const socket = path.join(dir, "docker.sock");
  const dataRoot = path.join(dir, "docker-data");
  const execRoot = path.join(dir, "docker-exec");
  if (Buffer.byteLength(socket) > 100) {
    throw new Error(`docker-engine: socket path ${socket} is too long for a unix socket; use a shorter directory`);
  }
  fs.mkdirSync(dir, { recursive: true });
  // The deploy user reaches the socket through this directory.
  fs.chmodSync(dir, 0o755);

  const stop = (o: { keepData?: boolean } = {}): Promise<void> => stopDockerEngine(dir, o);

  const existing = readState(dir).processes.dockerd;
  if (recordAlive(existing) && (await pingDocker(socket))) {
    return makeEngine(socket, groupOfFile(socket), stop, existing.pid);
  }
  if (recordAlive(existing)) {
    // Alive but not answering: give it a moment, it may still be starting.
    try {
      await waitFor(() => pingDocker(socket), { what: "dockerd", timeoutMs: 20_000, pid: existing.pid, logFile: existing.logFile });
      return makeEngine(socket, groupOfFile(socket), stop, existing.pid);
    } catch {
      await stopProcess(dir, "dockerd");
    }
  }

  // A dockerd of this directory that was killed leaves its exec root behind (containerd's pid
  // file, sockets, mounts, maybe the containerd itself): a new dockerd waits on those for a
  // containerd that never answers. Nothing of the dead engine's runtime state is kept.
  for (const pid of processesNaming(dir)) {
    await stopPid(pid, { timeoutMs: 10_000 });
  }
  unmountBelow(execRoot);
  fs.rmSync(execRoot, { recursive: true, force: true, maxRetries: 5 });

  ensureGroup(group);
  const network = opts.network ?? "default";
  // A dockerd of this directory that was killed left its record: what it found on the host is
  // still what a stop must restore (its docker0 and chains are still there now).
  const earlier = readState(dir).resources["docker-engine"] as EngineRecord | undefined;
  const createdDocker0 = earlier?.createdDocker0 ?? (network === "default" && !linkExists("docker0"));
  const hostNet = earlier?.hostNet ?? hostNetBefore();
  fs.rmSync(socket, { force: true });
  fs.rmSync(path.join(dir, "dockerd.pid"), { force: true });
  const args = [
    `--data-root=${dataRoot}`,
    `--exec-root=${execRoot}`,
    `--pidfile=${path.join(dir, "dockerd.pid")}`,
    `--host=unix://${socket}`,
    `--group=${group}`,
    "--storage-driver=overlay2",
    ...(network === "isolated" ? ["--bridge=none", "--iptables=false", "--ip6tables=false", "--ip-forward=false"] : []),
  ];
  const rec = startProcess(dir, { name: "dockerd", command: "dockerd", args, pidFile: path.join(dir, "dockerd.sandbox.pid") });
  updateState(dir, (s) => {
    s.resources["docker-engine"] = { socket, dataRoot, execRoot, network, createdDocker0, hostNet };
  });
  try {
    await waitFor(() => pingDocker(socket), {
      what: `dockerd (socket ${socket})`,
      timeoutMs: opts.timeoutMs ?? 60_000,
      pid: rec.pid,
      logFile: rec.logFile,
    });
  } catch (e) {
    await stop();
    throw e;
  }
  return makeEngine(socket, group, stop, rec.pid);
}
