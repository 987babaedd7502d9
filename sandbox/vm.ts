// The sandbox's "backend VM": a real sshd on a loopback port whose only allowed user is a
// dedicated deploy user with a fresh ed25519 key, in the Docker socket's group, with the docker
// compose v2 plugin installed; sessions get DOCKER_HOST pointing at the sandbox's engine.

import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { portOpen, readState, recordAlive, stopProcess, updateState } from "./processes";
import { ensureKeyPair, ensureLoginUser, hostPort, passwd, prepareSshDir, publicKeyOf, removeUser, startSshd, writeKnownHosts, writeSshdConfig } from "./sshd";

export interface VmOptions {
  /** The engine sessions use (`ensureDockerEngine`): DOCKER_HOST and the socket's group. */
  readonly docker: { readonly host: string; readonly group: string };
  /** Path of the docker compose v2 CLI plugin binary (e.g. `toolchainEnv().dockerCompose`). */
  readonly composePlugin: string;
  /** @default "homelab-deploy" */
  readonly user?: string;
  /**
   * Also install the plugin in /usr/local/lib/docker/cli-plugins (if none is there), as the
   * docker-compose-plugin package does on a real VM. Needed by the deploy script, which sets
   * DOCKER_CONFIG to the deploy directory, so the docker CLI no longer looks in
   * ~/.docker/cli-plugins. Removed again by stop() when this call installed it.
   * @default true
   */
  readonly systemPlugin?: boolean;
  /**
   * The local address sshd listens on, and the VM's address for whoever reaches it (an address
   * of sandbox/vm-address.ts when the cluster must reach it too). @default "127.0.0.1"
   */
  readonly address?: string;
  /** @default 15000 */
  readonly timeoutMs?: number;
}

export interface Vm {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  /** The deploy user's private key (OpenSSH PEM armour). */
  readonly privateKey: string;
  /** Path of the private key file (mode 0600, owned by root). */
  readonly privateKeyFile: string;
  /** The server's host key, `ssh-ed25519 AAAA…` (no comment). */
  readonly hostKey: string;
  /** A known_hosts file pinning `hostKey` for `[host]:port`. */
  readonly knownHostsFile: string;
  /** A directory under the sandbox the deploy user owns, for deploy directories. */
  readonly workDir: string;
  /** PID of sshd. */
  readonly pid: number;
  /** Arguments for the `ssh` client that log in as the deploy user with the pinned host key. */
  sshArgs(): string[];
  /**
   * Stops sshd and removes what startVm created: config, keys, known_hosts, the work directory
   * (unless `keepWorkDir`), the plugin copies and the deploy user (only if startVm created it).
   */
  stop(opts?: { keepWorkDir?: boolean }): Promise<void>;
}

interface VmResources {
  port: number;
  address?: string;
  user: string;
  createdUser: boolean;
  addedToGroup?: string;
  createdFiles: string[];
  createdDirs: string[];
}

const SYSTEM_PLUGIN = "/usr/local/lib/docker/cli-plugins/docker-compose";

const LABEL = "vm";

/**
 * Starts (or reuses, when a previous call in `dir` left it running) the sandbox VM: `sshd -D`
 * on its address (127.0.0.1 unless given) and a free port, with its own host key and config in `dir`, accepting only the
 * deploy user's fresh key.
 */
export async function startVm(dir: string, opts: VmOptions): Promise<Vm> {
  dir = path.resolve(dir);
  const user = opts.user ?? "homelab-deploy";
  const address = opts.address ?? "127.0.0.1";
  const sshDir = path.join(dir, "ssh");
  const hostKeyFile = path.join(sshDir, "ssh_host_ed25519_key");
  const userKeyFile = path.join(sshDir, "deploy_ed25519");
  const authorizedKeys = path.join(sshDir, "authorized_keys");
  const configFile = path.join(sshDir, "sshd_config");
  const knownHostsFile = path.join(sshDir, "known_hosts");
  const logFile = path.join(dir, "sshd.log");
  const workDir = path.join(dir, "work");

  const handle = (port: number, pid: number): Vm => {
    const hostKey = publicKeyOf(`${hostKeyFile}.pub`);
    return {
      host: address,
      port,
      user,
      privateKey: fs.readFileSync(userKeyFile, "utf8"),
      privateKeyFile: userKeyFile,
      hostKey,
      knownHostsFile,
      workDir,
      pid,
      sshArgs: () => [
        "-i", userKeyFile,
        "-p", String(port),
        "-o", "IdentitiesOnly=yes",
        "-o", "BatchMode=yes",
        "-o", "StrictHostKeyChecking=yes",
        "-o", `UserKnownHostsFile=${knownHostsFile}`,
        "-o", "GlobalKnownHostsFile=/dev/null",
        "-o", "ConnectTimeout=10",
        `${user}@${address}`,
      ],
      stop: (o) => stopVm(dir, o),
    };
  };

  const state = readState(dir);
  const res = state.resources.vm as VmResources | undefined;
  const existing = state.processes.sshd;
  if (res && (res.address ?? "127.0.0.1") === address && recordAlive(existing) && fs.existsSync(userKeyFile) && (await portOpen(address, res.port))) {
    return handle(res.port, existing.pid);
  }
  if (existing) {
    await stopProcess(dir, "sshd");
  }
  if (!fs.existsSync(opts.composePlugin)) {
    throw new Error(`vm: docker compose plugin not found at ${opts.composePlugin} (build it with npm run toolchain)`);
  }

  const resources: VmResources = res ?? { port: 0, user, createdUser: false, createdFiles: [], createdDirs: [] };
  const save = (): void => {
    updateState(dir, (s) => {
      s.resources.vm = resources;
    });
  };
  prepareSshDir(sshDir, dir);
  save();
  // The deploy user runs docker through the engine's group.
  const pw = ensureLoginUser(LABEL, user, opts.docker.group, {
    onCreated: () => {
      resources.createdUser = true;
      save();
    },
    onAddedToGroup: (group) => {
      resources.addedToGroup = group;
      save();
    },
  });

  // The compose plugin where a user install puts it, and (see systemPlugin) system-wide.
  const installPlugin = (target: string, owner?: { uid: number; gid: number }): void => {
    if (fs.existsSync(target)) {
      return;
    }
    const parent = path.dirname(target);
    for (let p = parent; !fs.existsSync(p); p = path.dirname(p)) {
      resources.createdDirs.unshift(p);
    }
    fs.mkdirSync(parent, { recursive: true });
    fs.copyFileSync(opts.composePlugin, target);
    fs.chmodSync(target, 0o755);
    if (owner) {
      for (let p = target; p.startsWith(pw.home + "/"); p = path.dirname(p)) {
        fs.chownSync(p, owner.uid, owner.gid);
      }
    }
    resources.createdFiles.push(target);
    save();
  };
  installPlugin(path.join(pw.home, ".docker", "cli-plugins", "docker-compose"), pw);
  if (opts.systemPlugin ?? true) {
    installPlugin(SYSTEM_PLUGIN);
  }

  fs.mkdirSync(workDir, { recursive: true });
  fs.chownSync(workDir, pw.uid, pw.gid);
  fs.chmodSync(workDir, 0o750);

  // Keys: a host key for the server, a key pair for the deploy user; generated once per dir.
  ensureKeyPair(LABEL, hostKeyFile, "", "generating the host key");
  ensureKeyPair(LABEL, userKeyFile, `${user}@sandbox`, "generating the deploy key");
  fs.writeFileSync(authorizedKeys, fs.readFileSync(`${userKeyFile}.pub`, "utf8"), { mode: 0o644 });

  const port = await hostPort(resources.port);
  resources.port = port;
  resources.address = address;
  save();
  writeKnownHosts(knownHostsFile, port, hostKeyFile, address);
  writeSshdConfig(LABEL, configFile, {
    port,
    address,
    hostKeyFile,
    pidFile: path.join(dir, "sshd.pid"),
    authorizedKeys,
    user,
    uid: pw.uid,
    extra: [`SetEnv DOCKER_HOST=${opts.docker.host}`, "AllowTcpForwarding no", "X11Forwarding no"],
  });

  let rec;
  try {
    rec = await startSshd(dir, { name: "sshd", configFile, logFile, port, address, what: "sshd", timeoutMs: opts.timeoutMs ?? 15_000 });
  } catch (e) {
    await stopVm(dir);
    throw e;
  }
  return handle(port, rec.pid);
}

/** Stops the VM started in `dir` (see Vm.stop). */
export async function stopVm(dir: string, opts: { keepWorkDir?: boolean } = {}): Promise<void> {
  dir = path.resolve(dir);
  await stopProcess(dir, "sshd");
  const res = readState(dir).resources.vm as VmResources | undefined;
  if (res) {
    for (const f of res.createdFiles) {
      fs.rmSync(f, { force: true });
    }
    for (const d of [...res.createdDirs].reverse()) {
      try {
        fs.rmdirSync(d);
      } catch {
        // not empty: someone else uses it too
      }
    }
    if (res.addedToGroup && passwd(res.user)) {
      spawnSync("gpasswd", ["-d", res.user, res.addedToGroup]);
    }
    if (res.createdUser) {
      removeUser(LABEL, res.user);
    }
  }
  fs.rmSync(path.join(dir, "ssh"), { recursive: true, force: true });
  fs.rmSync(path.join(dir, "sshd.pid"), { force: true });
  if (!opts.keepWorkDir) {
    fs.rmSync(path.join(dir, "work"), { recursive: true, force: true });
  }
  updateState(dir, (s) => {
    delete s.resources.vm;
  });
}

/** Stops the VM's sshd alone, as a host whose SSH service went down; `restartVmSshd` brings it back. */
export async function stopVmSshd(dir: string): Promise<void> {
  await stopProcess(path.resolve(dir), "sshd");
}

/** Starts the VM's sshd again on its port with its config and keys; returns its PID. */
export async function restartVmSshd(dir: string, port: number): Promise<number> {
  dir = path.resolve(dir);
  const address = (readState(dir).resources.vm as VmResources | undefined)?.address;
  const rec = await startSshd(dir, { name: "sshd", configFile: path.join(dir, "ssh", "sshd_config"), logFile: path.join(dir, "sshd.log"), port, address, what: "sshd", timeoutMs: 15_000 });
  return rec.pid;
}
