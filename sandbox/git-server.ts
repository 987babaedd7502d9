// The sandbox's git host: a real sshd on a loopback port serving one bare repository as a
// dedicated system user, whose only authorized key is a fresh ed25519 deploy key forced through
// git-shell, the way a git host serves a read-write deploy key. Flux's GitRepository and the
// deploy reach it exactly as production reaches its git host: an ssh:// URL, the deploy key and
// a known_hosts line pinning the server's host key.

import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { CommandRun, portOpen, readState, recordAlive, runCommand, stopProcess, updateState } from "./processes";
import { ensureKeyPair, ensureLoginUser, hostPort, prepareSshDir, publicKeyOf, removeUser, run, startSshd, writeKnownHosts, writeSshdConfig } from "./sshd";

const REPO = path.resolve(__dirname, "..");
/** Name of the sshd process in the directory's state (distinct from the VM's `sshd`). */
const PROCESS = "git-sshd";
const REPOSITORY = "website.git";
const BRANCH = "master";

/** The files the repository is seeded with, copied from this repository: what Flux applies. */
export const SEED_FILES = ["flux/clusters/production/kustomization.yaml", "flux/clusters/production/release.yaml"] as const;

/** Author (and committer) of the seed commit and, by default, of commitToServer's commits. */
export const SANDBOX_AUTHOR = { name: "homelab sandbox", email: "sandbox@homelab.test" } as const;

export interface GitServerOptions {
  /** System user the server runs git as, created if missing. @default "homelab-git" */
  readonly user?: string;
  /**
   * Files of the initial commit (relative path -> content), pushed when the branch does not
   * exist yet. @default this repository's SEED_FILES
   */
  readonly seed?: Record<string, string>;
  /** @default 15000 */
  readonly timeoutMs?: number;
}

export interface GitServer {
  readonly host: "127.0.0.1";
  readonly port: number;
  readonly user: string;
  /** Absolute path of the bare repository on this machine (also the path in `url`). */
  readonly repository: string;
  /** `ssh://USER@127.0.0.1:PORT/<absolute path>/website.git` */
  readonly url: string;
  /** The branch seeded and served ("master"). */
  readonly branch: string;
  /** The server's host key, `ssh-ed25519 AAAA…` (no comment). */
  readonly hostKey: string;
  /** The known_hosts line pinning the host key: `[127.0.0.1]:PORT ssh-ed25519 AAAA…`. */
  readonly knownHosts: string;
  /** A known_hosts file holding `knownHosts` alone. */
  readonly knownHostsFile: string;
  /** The deploy key (read-write), OpenSSH armour. */
  readonly privateKey: string;
  /** Path of the deploy key (mode 0600, owned by root). */
  readonly privateKeyFile: string;
  /** PID of sshd. */
  readonly pid: number;
  /** Arguments for the `ssh` client as the deploy key with the pinned host key (destination last, no command). */
  sshArgs(): string[];
  /**
   * Environment for git clients: GIT_SSH_COMMAND using the deploy key only (IdentitiesOnly), the
   * pinned host key (UserKnownHostsFile, StrictHostKeyChecking=yes), BatchMode and no ssh_config.
   */
  gitEnv(): Record<string, string>;
  /** Stops sshd and removes what startGitServer created: keys, config, the repository and the user (only if it created it). */
  stop(): Promise<void>;
}

interface GitServerResources {
  port: number;
  user: string;
  createdUser: boolean;
}

const LABEL = "git server";

function shellQuote(v: string): string {
  return /^[A-Za-z0-9_./=:@%+,-]+$/.test(v) ? v : `'${v.replace(/'/g, `'\\''`)}'`;
}

function gitShellPath(): string {
  const r = spawnSync("sh", ["-c", "command -v git-shell"], { encoding: "utf8" });
  const p = r.stdout.trim();
  if (r.status !== 0 || !path.isAbsolute(p)) {
    throw new Error("git server: git-shell not found on PATH (apt-get install git)");
  }
  return p;
}

/** Git's environment without the machine's or the user's git config, so results do not depend on them. */
export const ISOLATED_GIT_ENV = { GIT_CONFIG_NOSYSTEM: "1", GIT_CONFIG_GLOBAL: "/dev/null", GIT_TERMINAL_PROMPT: "0" } as const;

/** Runs git in isolation from local git config; fails on a non-zero exit unless `check` is false. */
async function git(cwd: string, args: string[], env: Record<string, string>, opts: { check?: boolean; timeoutMs?: number } = {}): Promise<CommandRun> {
  const r = await runCommand("git", args, { cwd, env: { ...process.env, ...ISOLATED_GIT_ENV, ...env }, timeoutMs: opts.timeoutMs });
  if (r.status !== 0 && (opts.check ?? true)) {
    throw new Error(`git server: git ${args.join(" ")} failed (exit ${r.status}): ${r.stderr.trim() || r.stdout.trim()}`);
  }
  return r;
}

function seedFiles(): Record<string, string> {
  return Object.fromEntries(SEED_FILES.map((f) => [f, fs.readFileSync(path.join(REPO, f), "utf8")]));
}

/**
 * Starts (or reuses, when a previous call in `dir` left it running) the sandbox's git server:
 * `sshd -D` on 127.0.0.1 and a free port (kept across restarts), with its own host key and
 * config in `dir`, one bare repository `<dir>/repos/website.git` owned by the git user, and the
 * deploy key forced through git-shell. Seeds the branch with one commit when it does not exist.
 */
export async function startGitServer(dir: string, opts: GitServerOptions = {}): Promise<GitServer> {
  dir = path.resolve(dir);
  const user = opts.user ?? "homelab-git";
  const sshDir = path.join(dir, "git-ssh");
  const hostKeyFile = path.join(sshDir, "ssh_host_ed25519_key");
  const deployKeyFile = path.join(sshDir, "deploy_ed25519");
  const authorizedKeys = path.join(sshDir, "authorized_keys");
  const configFile = path.join(sshDir, "sshd_config");
  const knownHostsFile = path.join(sshDir, "known_hosts");
  const logFile = path.join(dir, `${PROCESS}.log`);
  const reposDir = path.join(dir, "repos");
  const repository = path.join(reposDir, REPOSITORY);

  const handle = (port: number, pid: number): GitServer => {
    const hostKey = publicKeyOf(`${hostKeyFile}.pub`);
    const sshOptions = [
      "-F", "/dev/null",
      "-i", deployKeyFile,
      "-o", "IdentitiesOnly=yes",
      "-o", "BatchMode=yes",
      "-o", "StrictHostKeyChecking=yes",
      "-o", `UserKnownHostsFile=${knownHostsFile}`,
      "-o", "GlobalKnownHostsFile=/dev/null",
      "-o", "ConnectTimeout=10",
    ];
    return {
      host: "127.0.0.1",
      port,
      user,
      repository,
      url: `ssh://${user}@127.0.0.1:${port}${repository}`,
      branch: BRANCH,
      hostKey,
      knownHosts: `[127.0.0.1]:${port} ${hostKey}`,
      knownHostsFile,
      privateKey: fs.readFileSync(deployKeyFile, "utf8"),
      privateKeyFile: deployKeyFile,
      pid,
      sshArgs: () => [...sshOptions, "-p", String(port), `${user}@127.0.0.1`],
      gitEnv: () => ({ GIT_SSH_COMMAND: ["ssh", ...sshOptions].map(shellQuote).join(" ") }),
      stop: () => stopGitServer(dir),
    };
  };

  const state = readState(dir);
  const res = state.resources.git as GitServerResources | undefined;
  const existing = state.processes[PROCESS];
  if (res && res.user === user && recordAlive(existing) && fs.existsSync(deployKeyFile) && fs.existsSync(repository) && (await portOpen("127.0.0.1", res.port))) {
    return handle(res.port, existing.pid);
  }
  if (existing) {
    await stopProcess(dir, PROCESS);
  }
  const gitShell = gitShellPath();

  const resources: GitServerResources = res ?? { port: 0, user, createdUser: false };
  if (resources.user !== user) {
    throw new Error(`git server: ${dir} was set up for user ${resources.user}, not ${user}; stop it first`);
  }
  const save = (): void => {
    updateState(dir, (s) => {
      s.resources.git = resources;
    });
  };
  prepareSshDir(sshDir, dir);
  save();
  // git-shell is the forced command of the one key, so the user's own shell stays /bin/sh.
  const pw = ensureLoginUser(LABEL, user, undefined, {
    onCreated: () => {
      resources.createdUser = true;
      save();
    },
  });

  // Keys: a host key for the server and the deploy key; generated once per dir.
  ensureKeyPair(LABEL, hostKeyFile, "", "generating the host key");
  ensureKeyPair(LABEL, deployKeyFile, `${user}-deploy@sandbox`, "generating the deploy key");
  // The one authorized key may run git's own commands (upload-pack, receive-pack, upload-archive) and nothing else.
  const restrictions = `command="${gitShell} -c \\"$SSH_ORIGINAL_COMMAND\\"",no-pty,no-port-forwarding,no-agent-forwarding,no-X11-forwarding`;
  fs.writeFileSync(authorizedKeys, `${restrictions} ${publicKeyOf(`${deployKeyFile}.pub`)} ${user}-deploy@sandbox\n`, { mode: 0o644 });

  // The bare repository, owned by the git user (again on every start: the user may be new).
  if (!fs.existsSync(repository)) {
    fs.mkdirSync(reposDir, { recursive: true, mode: 0o755 });
    run(LABEL, "git", ["init", "--quiet", "--bare", `--initial-branch=${BRANCH}`, repository], "creating the bare repository");
  }
  fs.chmodSync(reposDir, 0o755);
  run(LABEL, "chown", ["-R", `${pw.uid}:${pw.gid}`, repository], "handing the repository to the git user");

  const port = await hostPort(resources.port);
  resources.port = port;
  save();
  writeKnownHosts(knownHostsFile, port, hostKeyFile);
  writeSshdConfig(LABEL, configFile, {
    port,
    hostKeyFile,
    pidFile: path.join(dir, `${PROCESS}.pid`),
    authorizedKeys,
    user,
    uid: pw.uid,
    extra: ["DisableForwarding yes", "PermitTTY no", "PermitUserRC no", "PermitTunnel no"],
  });

  try {
    const rec = await startSshd(dir, { name: PROCESS, configFile, logFile, port, what: "git server's sshd", timeoutMs: opts.timeoutMs ?? 15_000 });
    const server = handle(port, rec.pid);
    // Never empty: the branch gets a first commit, over SSH like every other push.
    const heads = await git(dir, ["ls-remote", "--heads", server.url, BRANCH], server.gitEnv());
    if (heads.stdout.trim() === "") {
      await commitToServer(server, opts.seed ?? seedFiles(), "sandbox: initial commit (flux/clusters/production)");
    }
    return server;
  } catch (e) {
    await stopGitServer(dir);
    throw e;
  }
}

/** Stops the git server started in `dir` (see GitServer.stop). */
export async function stopGitServer(dir: string): Promise<void> {
  dir = path.resolve(dir);
  if (!fs.existsSync(dir)) {
    return;
  }
  await stopProcess(dir, PROCESS);
  const res = readState(dir).resources.git as GitServerResources | undefined;
  if (res?.createdUser) {
    removeUser(LABEL, res.user);
  }
  fs.rmSync(path.join(dir, "git-ssh"), { recursive: true, force: true });
  fs.rmSync(path.join(dir, "repos"), { recursive: true, force: true });
  fs.rmSync(path.join(dir, `${PROCESS}.pid`), { force: true });
  updateState(dir, (s) => {
    delete s.resources.git;
  });
}

/**
 * Pushes `files` (relative path -> content) as one commit on the server's branch (creating the
 * branch if the repository is empty), with `message` and `author` (also the committer), through
 * a temporary clone over SSH with the deploy key. Returns the new commit's sha. A push that
 * loses a race with another one fails: nothing is forced.
 */
export async function commitToServer(
  server: GitServer,
  files: Record<string, string>,
  message: string,
  author: { name: string; email: string } = SANDBOX_AUTHOR,
  opts: { signingKeyFile?: string } = {},
): Promise<string> {
  const names = Object.keys(files);
  for (const f of names) {
    const n = path.posix.normalize(f);
    if (path.posix.isAbsolute(n) || n === "." || n === ".." || n.startsWith("../") || n.split("/").includes(".git")) {
      throw new Error(`git server: ${JSON.stringify(f)} is not a path inside the repository`);
    }
  }
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "hl-git-commit-"));
  const env = {
    ...server.gitEnv(),
    GIT_AUTHOR_NAME: author.name,
    GIT_AUTHOR_EMAIL: author.email,
    GIT_COMMITTER_NAME: author.name,
    GIT_COMMITTER_EMAIL: author.email,
  };
  try {
    const work = path.join(tmp, "work");
    await git(tmp, ["clone", "--quiet", "--no-checkout", server.url, work], env);
    const upstream = `refs/remotes/origin/${server.branch}`;
    const exists = (await git(work, ["rev-parse", "--verify", "--quiet", upstream], env, { check: false })).status === 0;
    if (exists) {
      await git(work, ["checkout", "--quiet", "-B", server.branch, upstream], env);
    } else {
      await git(work, ["symbolic-ref", "HEAD", `refs/heads/${server.branch}`], env);
    }
    for (const [f, content] of Object.entries(files)) {
      const target = path.join(work, f);
      fs.mkdirSync(path.dirname(target), { recursive: true });
      fs.writeFileSync(target, content);
    }
    if (names.length > 0) {
      await git(work, ["add", "--", ...names], env);
    }
    // With a key: signed as git signs with SSH keys (gpg.format ssh), the way a trusted person's commit is.
    const sign = opts.signingKeyFile ? ["-c", "gpg.format=ssh", "-c", `user.signingkey=${opts.signingKeyFile}`, "commit", "-S"] : ["commit"];
    await git(work, [...sign, "--quiet", "--allow-empty", "--no-verify", "-m", message], env);
    await git(work, ["push", "--quiet", "origin", `HEAD:refs/heads/${server.branch}`], env);
    return (await git(work, ["rev-parse", "HEAD"], env)).stdout.trim();
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}
