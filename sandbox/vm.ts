// The sandbox's "backend VM": a real sshd on a loopback port whose only allowed user is a
// dedicated deploy user with a fresh ed25519 key, in the Docker socket's group, with the docker
// compose v2 plugin installed; sessions get DOCKER_HOST pointing at the sandbox's engine.

import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { freePort, portOpen, readState, recordAlive, startProcess, stopProcess, updateState, waitFor } from "./processes";

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
  /** @default 15000 */
  readonly timeoutMs?: number;
}

export interface Vm {
  readonly host: "127.0.0.1";
  readonly port: number;
  readonly user: string;
  /** The deploy user's private key (OpenSSH PEM armour). */
  readonly privateKey: string;
  /** Path of the private key file (mode 0600, owned by root). */
  readonly privateKeyFile: string;
  /** The server's host key, `ssh-ed25519 AAAA…` (no comment). */
  readonly hostKey: string;
  /** A known_hosts file pinning `hostKey` for `[127.0.0.1]:port`. */
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
  user: string;
  createdUser: boolean;
  addedToGroup?: string;
  createdFiles: string[];
  createdDirs: string[];
}

const SYSTEM_PLUGIN = "/usr/local/lib/docker/cli-plugins/docker-compose";

function run(cmd: string, args: string[], what: string): string {
  const r = spawnSync(cmd, args, { encoding: "utf8" });
  if (r.status !== 0) {
    throw new Error(`vm: ${what} failed (${cmd} ${args.join(" ")}): ${(r.stderr || r.stdout || String(r.error)).trim()}`);
  }
  return r.stdout;
}

/** A user's passwd entry, or undefined when there is no such user. */
export function passwd(user: string): { uid: number; gid: number; home: string } | undefined {
  const r = spawnSync("getent", ["passwd", user], { encoding: "utf8" });
  if (r.status !== 0) {
    return undefined;
  }
  const f = r.stdout.trim().split(":");
  return { uid: Number(f[2]), gid: Number(f[3]), home: f[5] };
}

/** Whether sshd's StrictModes would accept `file`: it and every parent owned by root or `uid`, none group/world-writable. */
export function strictModesOk(file: string, uid: number): boolean {
  for (let p = path.dirname(file); ; p = path.dirname(p)) {
    const st = fs.statSync(p);
    if ((st.uid !== 0 && st.uid !== uid) || (st.mode & 0o022) !== 0) {
      return false;
    }
    if (p === "/") {
      return true;
    }
  }
}

/** `type key` of an OpenSSH public key file, without its comment. */
export function publicKeyOf(pubFile: string): string {
  const [type, key] = fs.readFileSync(pubFile, "utf8").trim().split(/\s+/);
  return `${type} ${key}`;
}

/** Makes every directory from `/` to `dir` traversable by others (a mkdtemp dir is 0700). */
export function makeTraversable(dir: string): void {
  for (let p = path.resolve(dir); p !== "/"; p = path.dirname(p)) {
    const st = fs.statSync(p);
    if ((st.mode & 0o001) === 0) {
      fs.chmodSync(p, (st.mode & 0o7777) | 0o011);
    }
  }
}

/**
 * Starts (or reuses, when a previous call in `dir` left it running) the sandbox VM: `sshd -D`
 * on 127.0.0.1 and a free port, with its own host key and config in `dir`, accepting only the
 * deploy user's fresh key.
 */
export async function startVm(dir: string, opts: VmOptions): Promise<Vm> {
  dir = path.resolve(dir);
  const user = opts.user ?? "homelab-deploy";
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
      host: "127.0.0.1",
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
        `${user}@127.0.0.1`,
      ],
      stop: (o) => stopVm(dir, o),
    };
  };

  const state = readState(dir);
  const res = state.resources.vm as VmResources | undefined;
  const existing = state.processes.sshd;
  if (res && recordAlive(existing) && fs.existsSync(userKeyFile) && (await portOpen("127.0.0.1", res.port))) {
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
  fs.mkdirSync(sshDir, { recursive: true });
  // sshd reads authorized_keys as the deploy user; the keys themselves are 0600.
  fs.chmodSync(sshDir, 0o711);
  makeTraversable(dir);
  save();

  // The deploy user: no password (`*`, not locked `!`, which sshd refuses without PAM), /bin/sh.
  let pw = passwd(user);
  if (!pw) {
    run("useradd", ["--system", "--create-home", "--home-dir", `/home/${user}`, "--shell", "/bin/sh", "--groups", opts.docker.group, user], `creating user ${user}`);
    resources.createdUser = true;
    save();
    pw = passwd(user)!;
  } else if (!run("id", ["-nG", user], "id").split(/\s+/).includes(opts.docker.group)) {
    run("usermod", ["-aG", opts.docker.group, user], `adding ${user} to ${opts.docker.group}`);
    resources.addedToGroup = opts.docker.group;
    save();
  }
  run("usermod", ["-p", "*", user], `unlocking ${user} for key login`);

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
  if (!fs.existsSync(hostKeyFile)) {
    run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "", "-f", hostKeyFile], "generating the host key");
  }
  if (!fs.existsSync(userKeyFile)) {
    run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", `${user}@sandbox`, "-f", userKeyFile], "generating the deploy key");
  }
  fs.writeFileSync(authorizedKeys, fs.readFileSync(`${userKeyFile}.pub`, "utf8"), { mode: 0o644 });

  if (!fs.existsSync("/run/sshd")) {
    fs.mkdirSync("/run/sshd", { mode: 0o755 });
  }
  let port = resources.port;
  if (!port || (await portOpen("127.0.0.1", port))) {
    port = await freePort();
  }
  resources.port = port;
  save();
  fs.writeFileSync(`${knownHostsFile}`, `[127.0.0.1]:${port} ${publicKeyOf(`${hostKeyFile}.pub`)}\n`);

  const config = [
    `Port ${port}`,
    "ListenAddress 127.0.0.1",
    `HostKey ${hostKeyFile}`,
    `PidFile ${path.join(dir, "sshd.pid")}`,
    `AuthorizedKeysFile ${authorizedKeys}`,
    "PubkeyAuthentication yes",
    "PasswordAuthentication no",
    "KbdInteractiveAuthentication no",
    "HostbasedAuthentication no",
    "PermitRootLogin no",
    "PermitEmptyPasswords no",
    "UsePAM no",
    `AllowUsers ${user}`,
    // StrictModes refuses keys below a group/world-writable directory such as /tmp.
    `StrictModes ${strictModesOk(authorizedKeys, pw.uid) ? "yes" : "no"}`,
    `SetEnv DOCKER_HOST=${opts.docker.host}`,
    "AllowTcpForwarding no",
    "X11Forwarding no",
    "PrintMotd no",
    "LogLevel VERBOSE",
    "",
  ].join("\n");
  fs.writeFileSync(configFile, config, { mode: 0o600 });
  run("/usr/sbin/sshd", ["-t", "-f", configFile], "checking sshd_config");

  const rec = startProcess(dir, {
    name: "sshd",
    command: "/usr/sbin/sshd",
    args: ["-D", "-f", configFile, "-E", logFile],
    logFile: path.join(dir, "sshd.stderr.log"),
  });
  try {
    await waitFor(() => portOpen("127.0.0.1", port), {
      what: `sshd on 127.0.0.1:${port}`,
      timeoutMs: opts.timeoutMs ?? 15_000,
      pid: rec.pid,
      logFile,
    });
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
    if (res.createdUser && passwd(res.user)) {
      const r = spawnSync("userdel", ["--remove", res.user], { encoding: "utf8" });
      if (r.status !== 0 && !/mail spool/.test(r.stderr)) {
        throw new Error(`vm: userdel ${res.user} failed: ${r.stderr.trim()}`);
      }
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
