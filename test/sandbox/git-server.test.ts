import { after, before, describe, it } from "node:test";
import * as assert from "node:assert/strict";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { opensshArmour } from "../support/fixtures";
import { processesMentioning } from "../support/leftovers";
import { GitServer, ISOLATED_GIT_ENV, SEED_FILES, commitToServer, startGitServer } from "../../sandbox/git-server";
import { CommandRun, isAlive, readState, runCommand } from "../../sandbox/processes";

/*
 * The sandbox's git server for real: sshd on loopback, the deploy key forced through git-shell,
 * one bare repository. Clones and pushes go over SSH exactly as Flux and the deploy reach a git
 * host. Needs root and Debian's openssh-server and git.
 */

const REPO = path.resolve(__dirname, "../..");
const USER = "homelab-git";

let dir: string;
let server: GitServer;
let userExisted = false;

/** Runs a command asynchronously (so the test's own timers keep running), git isolated from local config. */
function exec(cmd: string, args: string[], env: Record<string, string> = {}, cwd?: string): Promise<CommandRun> {
  return runCommand(cmd, args, { cwd, env: { ...process.env, ...ISOLATED_GIT_ENV, ...env } });
}

let clones = 0;
/** A fresh clone of the server's repository over SSH with gitEnv(); asserts it succeeds. */
async function clone(): Promise<string> {
  const target = path.join(dir, `clone-${++clones}`);
  const r = await exec("git", ["clone", "--branch", server.branch, server.url, target], server.gitEnv());
  assert.equal(r.status, 0, r.stderr);
  return target;
}

async function gitIn(cwd: string, ...args: string[]): Promise<string> {
  const r = await exec("git", args, {}, cwd);
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.trim();
}

/** A throwaway ed25519 key pair in `dir`; returns `[privateKeyFile, "type key"]`. */
function keyPair(name: string): [string, string] {
  const file = path.join(dir, name);
  const r = spawnSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "", "-f", file], { encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  const [type, key] = fs.readFileSync(`${file}.pub`, "utf8").split(/\s+/);
  return [file, `${type} ${key}`];
}

describe("sandbox: git server over SSH (deploy key through git-shell)", { concurrency: false }, () => {
  before(async () => {
    dir = fs.mkdtempSync("/tmp/hl-git-");
    userExisted = spawnSync("getent", ["passwd", USER]).status === 0;
    server = await startGitServer(dir, { user: USER });
  });

  after(async () => {
    // Best effort when a test failed half-way; the last test checks the clean stop itself.
    try {
      await server?.stop();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("describes itself as production's git settings do, and starts idempotently", async () => {
    assert.equal(server.url, `ssh://${USER}@127.0.0.1:${server.port}${dir}/repos/website.git`);
    assert.equal(server.branch, "master");
    assert.match(server.hostKey, /^ssh-ed25519 [A-Za-z0-9+/=]+$/);
    assert.equal(server.knownHosts, `[127.0.0.1]:${server.port} ${server.hostKey}`);
    assert.equal(fs.readFileSync(server.knownHostsFile, "utf8"), `${server.knownHosts}\n`);
    assert.match(server.privateKey, new RegExp(`^${opensshArmour("BEGIN")}\\n[\\s\\S]+\\n${opensshArmour("END")}\\n$`));
    assert.equal(fs.readFileSync(server.privateKeyFile, "utf8"), server.privateKey);
    assert.equal(fs.statSync(server.privateKeyFile).mode & 0o777, 0o600);
    const sshCommand = server.gitEnv().GIT_SSH_COMMAND;
    for (const part of [`-i ${server.privateKeyFile}`, "IdentitiesOnly=yes", `UserKnownHostsFile=${server.knownHostsFile}`, "StrictHostKeyChecking=yes", "BatchMode=yes"]) {
      assert.ok(sshCommand.includes(part), `GIT_SSH_COMMAND lacks ${part}: ${sshCommand}`);
    }

    // The one authorized key is the deploy key, forced through git-shell with no pty or forwarding.
    const gitShell = spawnSync("sh", ["-c", "command -v git-shell"], { encoding: "utf8" }).stdout.trim();
    const deployPub = fs.readFileSync(`${server.privateKeyFile}.pub`, "utf8").split(/\s+/).slice(0, 2).join(" ");
    const lines = fs.readFileSync(path.join(dir, "git-ssh", "authorized_keys"), "utf8").trim().split("\n");
    assert.equal(lines.length, 1);
    assert.ok(
      lines[0].startsWith(`command="${gitShell} -c \\"$SSH_ORIGINAL_COMMAND\\"",no-pty,no-port-forwarding,no-agent-forwarding,no-X11-forwarding ${deployPub}`),
      lines[0],
    );

    const again = await startGitServer(dir, { user: USER });
    assert.equal(again.pid, server.pid);
    assert.equal(again.port, server.port);
    assert.equal(again.url, server.url);
    assert.equal(again.privateKey, server.privateKey);
    assert.ok(isAlive(server.pid));
  });

  it("clones over SSH with gitEnv(): master holds one seed commit with the repository's Flux files", async () => {
    const c = await clone();
    assert.equal(await gitIn(c, "rev-parse", "--abbrev-ref", "HEAD"), "master");
    assert.equal(await gitIn(c, "rev-list", "--count", "HEAD"), "1");
    assert.deepEqual((await gitIn(c, "ls-files")).split("\n").sort(), [...SEED_FILES].sort());
    for (const f of SEED_FILES) {
      assert.equal(fs.readFileSync(path.join(c, f), "utf8"), fs.readFileSync(path.join(REPO, f), "utf8"), f);
    }
    // The bare repository on disk belongs to the git user and has master as its HEAD.
    const st = fs.statSync(path.join(dir, "repos", "website.git", "objects"));
    assert.equal(st.uid, Number(spawnSync("id", ["-u", USER], { encoding: "utf8" }).stdout.trim()));
    assert.equal(fs.readFileSync(path.join(dir, "repos", "website.git", "HEAD"), "utf8").trim(), "ref: refs/heads/master");
  });

  it("pushes: commitToServer adds one commit on master that a fresh clone sees", async () => {
    const before = await gitIn(await clone(), "rev-parse", "HEAD");
    const release = "# a release pushed by the test\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: website-release\n";
    const sha = await commitToServer(
      server,
      { "flux/clusters/production/release.yaml": release, "notes/pushed.txt": "pushed over ssh\n" },
      "release: pushed by the git server test",
      { name: "Test Author", email: "test@homelab.test" },
    );
    assert.match(sha, /^[0-9a-f]{40}$/);
    const c = await clone();
    assert.equal(await gitIn(c, "rev-parse", "HEAD"), sha);
    assert.equal(await gitIn(c, "rev-parse", "HEAD^"), before);
    assert.equal(await gitIn(c, "log", "-1", "--format=%an <%ae>|%cn <%ce>|%s"), "Test Author <test@homelab.test>|Test Author <test@homelab.test>|release: pushed by the git server test");
    assert.equal(fs.readFileSync(path.join(c, "flux/clusters/production/release.yaml"), "utf8"), release);
    assert.equal(fs.readFileSync(path.join(c, "notes/pushed.txt"), "utf8"), "pushed over ssh\n");
    assert.equal(
      fs.readFileSync(path.join(c, "flux/clusters/production/kustomization.yaml"), "utf8"),
      fs.readFileSync(path.join(REPO, "flux/clusters/production/kustomization.yaml"), "utf8"),
      "files not named are kept",
    );

    // A plain git push with gitEnv() works too, and fetch sees it from another clone.
    fs.writeFileSync(path.join(c, "notes/pushed.txt"), "pushed again\n");
    await gitIn(c, "-c", "user.name=t", "-c", "user.email=t@homelab.test", "commit", "-qam", "second push");
    const push = await exec("git", ["push", "-q", "origin", "master"], server.gitEnv(), c);
    assert.equal(push.status, 0, push.stderr);
    assert.equal(await gitIn(await clone(), "log", "-1", "--format=%s"), "second push");
  });

  it("the deploy key gets no shell, no command and no forwarding: git-shell refuses", async () => {
    for (const command of ["true", "id", "sh -c id", "cat /etc/passwd"]) {
      const r = await exec("ssh", [...server.sshArgs(), command]);
      assert.notEqual(r.status, 0, `${command}: ${r.stdout}`);
      assert.equal(r.stdout, "", `${command} printed ${r.stdout}`);
      assert.match(r.stderr, /fatal: unrecognized command/, command);
    }
    // No command at all asks for a login shell: the forced command runs git-shell with nothing.
    const login = await exec("ssh", [...server.sshArgs()]);
    assert.notEqual(login.status, 0);
    assert.equal(login.stdout, "");
    assert.match(login.stderr, /fatal: unrecognized command ''/);
    // A pty is refused, and so is a tunnel (stdio forwarding to the server's own port).
    const tty = await exec("ssh", ["-tt", ...server.sshArgs(), "id"]);
    assert.notEqual(tty.status, 0);
    assert.equal(tty.stdout.replace(/\r/g, "").includes("uid="), false, tty.stdout);
    assert.match(tty.stderr, /PTY allocation request failed/);
    const tunnel = await exec("ssh", ["-W", `127.0.0.1:${server.port}`, ...server.sshArgs()]);
    assert.notEqual(tunnel.status, 0);
    assert.match(tunnel.stderr, /administratively prohibited|forwarding disabled|open failed/i, tunnel.stderr);
  });

  it("a client pinning another host key is refused: Host key verification failed", async () => {
    const [, wrongHostKey] = keyPair("wrong_host_key");
    const wrongKnownHosts = path.join(dir, "wrong_known_hosts");
    fs.writeFileSync(wrongKnownHosts, `[127.0.0.1]:${server.port} ${wrongHostKey}\n`);
    const env = { GIT_SSH_COMMAND: server.gitEnv().GIT_SSH_COMMAND.replace(`UserKnownHostsFile=${server.knownHostsFile}`, `UserKnownHostsFile=${wrongKnownHosts}`) };
    assert.ok(env.GIT_SSH_COMMAND.includes(wrongKnownHosts));
    const r = await exec("git", ["ls-remote", server.url], env);
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /Host key verification failed/);

    // No pinned key at all is refused as well (StrictHostKeyChecking=yes, BatchMode).
    const empty = path.join(dir, "empty_known_hosts");
    fs.writeFileSync(empty, "");
    const unknown = await exec("git", ["ls-remote", server.url], { GIT_SSH_COMMAND: server.gitEnv().GIT_SSH_COMMAND.replace(`UserKnownHostsFile=${server.knownHostsFile}`, `UserKnownHostsFile=${empty}`) });
    assert.notEqual(unknown.status, 0);
    assert.match(unknown.stderr, /Host key verification failed/);
  });

  it("another key, or another user, is refused: Permission denied", async () => {
    const [wrongKey] = keyPair("wrong_client_key");
    const env = { GIT_SSH_COMMAND: server.gitEnv().GIT_SSH_COMMAND.replace(`-i ${server.privateKeyFile}`, `-i ${wrongKey}`) };
    assert.ok(env.GIT_SSH_COMMAND.includes(wrongKey));
    const r = await exec("git", ["ls-remote", server.url], env);
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /Permission denied \(publickey\)/);

    const root = await exec("git", ["ls-remote", server.url.replace(`${USER}@`, "root@")], server.gitEnv());
    assert.notEqual(root.status, 0);
    assert.match(root.stderr, /Permission denied \(publickey\)/);
    assert.match(fs.readFileSync(path.join(dir, "git-sshd.log"), "utf8"), /User root from 127\.0\.0\.1 not allowed because not listed in AllowUsers/);
  });

  it("stops by PID: no sshd left, the repository and keys gone, the user removed if it was created", async () => {
    const recorded = Object.values(readState(dir).processes);
    assert.deepEqual(
      recorded.map((p) => [p.name, p.pid]),
      [["git-sshd", server.pid]],
    );
    await server.stop();
    assert.equal(isAlive(server.pid, recorded[0].startTime), false, `sshd (pid ${server.pid}) is still alive`);
    assert.deepEqual(readState(dir).processes, {});
    assert.equal(readState(dir).resources.git, undefined);
    assert.equal(fs.existsSync(path.join(dir, "repos")), false);
    assert.equal(fs.existsSync(server.privateKeyFile), false);
    if (!userExisted) {
      assert.equal(spawnSync("getent", ["passwd", USER]).status, 2, "the git user startGitServer created is removed");
      assert.equal(fs.existsSync(`/home/${USER}`), false);
    }
    // Nothing started for the server (sshd or its sessions) is left.
    assert.deepEqual(processesMentioning(dir), []);
    // Stopping again is harmless.
    await server.stop();
  });
});
