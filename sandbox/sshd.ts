// What the sandbox's SSH hosts (the backend VM, the VPS and the git host) share: a real sshd of
// their own on a loopback port, with its own host key, config and a dedicated system user.

import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { ProcessRecord, freePort, portOpen, startProcess, waitFor } from "./processes";

/** Runs a command; `label` names the host in the error when it fails. */
export function run(label: string, cmd: string, args: string[], what: string): string {
  const r = spawnSync(cmd, args, { encoding: "utf8" });
  if (r.status !== 0) {
    throw new Error(`${label}: ${what} failed (${cmd} ${args.join(" ")}): ${(r.stderr || r.stdout || String(r.error)).trim()}`);
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
 * Makes `sshDir` for a host's authorized_keys: sshd reads that file as the login user, so the
 * directory and every one above it up to `root` (often a 0700 mkdtemp) must be traversable.
 */
export function prepareSshDir(sshDir: string, root: string): void {
  fs.mkdirSync(sshDir, { recursive: true });
  fs.chmodSync(sshDir, 0o711);
  makeTraversable(root);
}

/** What ensureLoginUser did, for the caller to record and undo on stop. */
export interface LoginUserChanges {
  /** Called right after the user is created, before anything else can fail. */
  readonly onCreated: () => void;
  /** Called right after an existing user is added to `group`. */
  readonly onAddedToGroup?: (group: string) => void;
}

/**
 * A system user that logs in with a key only: created with /bin/sh (sshd runs forced commands
 * with `$SHELL -c`) when missing, put in `group` when given, and its password set to `*`
 * (no password, yet not locked as `!` is, which sshd refuses without PAM).
 */
export function ensureLoginUser(label: string, user: string, group: string | undefined, changes: LoginUserChanges): { uid: number; gid: number; home: string } {
  let pw = passwd(user);
  if (!pw) {
    const groups = group ? ["--groups", group] : [];
    run(label, "useradd", ["--system", "--create-home", "--home-dir", `/home/${user}`, "--shell", "/bin/sh", ...groups, user], `creating user ${user}`);
    changes.onCreated();
    pw = passwd(user);
    if (!pw) {
      throw new Error(`${label}: user ${user} not found right after useradd`);
    }
  } else if (group && !run(label, "id", ["-nG", user], "id").split(/\s+/).includes(group)) {
    run(label, "usermod", ["-aG", group, user], `adding ${user} to ${group}`);
    changes.onAddedToGroup?.(group);
  }
  run(label, "usermod", ["-p", "*", user], `unlocking ${user} for key login`);
  return pw;
}

/** Generates an ed25519 key pair at `file` unless one is there: keys are made once per directory. */
export function ensureKeyPair(label: string, file: string, comment: string, what: string): void {
  if (!fs.existsSync(file)) {
    run(label, "ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", file], what);
  }
}

/** The port the host used before when it is still free, else a free one. */
export async function hostPort(previous: number): Promise<number> {
  return previous && !(await portOpen("127.0.0.1", previous)) ? previous : freePort();
}

/** Writes the known_hosts line pinning the host key for `[address]:port`. */
export function writeKnownHosts(file: string, port: number, hostKeyFile: string, address = "127.0.0.1"): void {
  fs.writeFileSync(file, `[${address}]:${port} ${publicKeyOf(`${hostKeyFile}.pub`)}\n`);
}

export interface SshdConfig {
  readonly port: number;
  /** The one local address sshd listens on. @default "127.0.0.1" */
  readonly address?: string;
  readonly hostKeyFile: string;
  readonly pidFile: string;
  readonly authorizedKeys: string;
  /** The one user allowed in; its uid decides StrictModes. */
  readonly user: string;
  readonly uid: number;
  /** Host-specific directives (forwarding, TTYs, environment). */
  readonly extra: readonly string[];
}

/** Writes an sshd_config that accepts only `user`'s keys on loopback, and has sshd check it. */
export function writeSshdConfig(label: string, file: string, c: SshdConfig): void {
  const config = [
    `Port ${c.port}`,
    `ListenAddress ${c.address ?? "127.0.0.1"}`,
    `HostKey ${c.hostKeyFile}`,
    `PidFile ${c.pidFile}`,
    `AuthorizedKeysFile ${c.authorizedKeys}`,
    "PubkeyAuthentication yes",
    "PasswordAuthentication no",
    "KbdInteractiveAuthentication no",
    "HostbasedAuthentication no",
    "PermitRootLogin no",
    "PermitEmptyPasswords no",
    "UsePAM no",
    `AllowUsers ${c.user}`,
    // StrictModes refuses keys below a group/world-writable directory such as /tmp.
    `StrictModes ${strictModesOk(c.authorizedKeys, c.uid) ? "yes" : "no"}`,
    ...c.extra,
    "PrintMotd no",
    "LogLevel VERBOSE",
    "",
  ].join("\n");
  fs.writeFileSync(file, config, { mode: 0o600 });
  ensurePrivilegeSeparationDir();
  run(label, "/usr/sbin/sshd", ["-t", "-f", file], "checking sshd_config");
}

/**
 * sshd (even `sshd -t`) needs /run/sshd. Debian's service creates it at boot; on a host where
 * that service never ran (a fresh container) nothing has.
 */
function ensurePrivilegeSeparationDir(): void {
  fs.mkdirSync("/run/sshd", { recursive: true, mode: 0o755 });
}

/** Starts `sshd -D` with the config, recorded in `dir`'s state as `name`, and waits for its port. */
export async function startSshd(
  dir: string,
  o: { name: string; configFile: string; logFile: string; port: number; address?: string; what: string; timeoutMs: number },
): Promise<ProcessRecord> {
  const address = o.address ?? "127.0.0.1";
  ensurePrivilegeSeparationDir();
  const rec = startProcess(dir, {
    name: o.name,
    command: "/usr/sbin/sshd",
    args: ["-D", "-f", o.configFile, "-E", o.logFile],
    logFile: path.join(dir, `${o.name}.stderr.log`),
  });
  await waitFor(() => portOpen(address, o.port), { what: `${o.what} on ${address}:${o.port}`, timeoutMs: o.timeoutMs, pid: rec.pid, logFile: o.logFile });
  return rec;
}

/** Removes a system user this sandbox created (and its home), if it is still there. */
export function removeUser(label: string, user: string): void {
  if (!passwd(user)) {
    return;
  }
  const r = spawnSync("userdel", ["--remove", user], { encoding: "utf8" });
  if (r.status !== 0 && !/mail spool/.test(r.stderr)) {
    throw new Error(`${label}: userdel ${user} failed: ${r.stderr.trim()}`);
  }
}
