import { after, before, describe, it } from "node:test";
import * as assert from "node:assert/strict";
import { ChildProcess, spawn } from "child_process";
import * as fs from "fs";
import * as net from "net";
import * as path from "path";
import { Server } from "ssh2";
import { sshKeyPair } from "../support/fake-ssh-host";
import { FakeDockerHost, fakeDockerHost } from "../support/fake-docker";
import { BUNDLE_END, DEPLOY_EXIT, FOLLOW_NO_RUN, renderDeployScript, renderFollowScript } from "../../lib/remote-deploy";
import { renderBundle } from "../../lib/bundle";
import { remoteFile } from "../../lib/host-script";
import { SshEndpoint, runDetached, runScript } from "../../lib/ssh";

/*
 * runDetached against an SSH server on loopback that runs each command under /bin/sh here (with
 * the stand-in docker), and that can drop a connection the way a network cut does: the session's
 * shell loses its output and the client its socket. The deploy itself must go on, and the client
 * must pick up its verdict over a new connection.
 */
let host: FakeDockerHost;
let state: string;
let deployDir: string;
let server: Server;
let ep: SshEndpoint;
/** Cut the next connection whose command matches, this many ms after it starts. */
let cut: { match: (command: string) => boolean; afterMs: number } | undefined;
const commands: string[] = [];
// Told apart by the program's own host scripts, which each command ends with.
const isDeployStart = (command: string): boolean => command.includes(remoteFile("deploy.sh"));
const isFollow = (command: string): boolean => command.includes(remoteFile("follow.sh"));
const shells = new Set<ChildProcess>();

before(async () => {
  host = fakeDockerHost("ssh-detached-");
  ({ state, deployDir } = host);
  const hostKey = sshKeyPair();
  const clientKey = sshKeyPair();
  server = new Server({ hostKeys: [hostKey.private] }, (conn) => {
    conn.on("authentication", (ctx) => (ctx.method === "publickey" ? ctx.accept() : ctx.reject(["publickey"])));
    conn.on("error", () => undefined);
    conn.on("ready", () => {
      conn.on("session", (accept) => {
        accept().once("exec", (acceptExec, _reject, info) => {
          const stream = acceptExec();
          commands.push(info.command);
          const sh = spawn("/bin/sh", ["-c", info.command], { env: host.env() });
          shells.add(sh);
          stream.pipe(sh.stdin);
          sh.stdout.on("data", (d: Buffer) => stream.write(d));
          sh.stderr.on("data", (d: Buffer) => stream.stderr.write(d));
          sh.on("close", (code) => {
            shells.delete(sh);
            stream.exit(code ?? 255);
            stream.end();
          });
          if (cut && cut.match(info.command)) {
            const ms = cut.afterMs;
            cut = undefined;
            setTimeout(() => {
              // As sshd killed on a cut: the session's shell dies with its pipes, the socket drops.
              sh.stdout.destroy();
              sh.stderr.destroy();
              sh.kill("SIGHUP");
              (conn as unknown as { _sock: net.Socket })._sock.destroy();
            }, ms);
          }
        });
      });
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  ep = { host: "127.0.0.1", port: (server.address() as net.AddressInfo).port, user: "deploy", privateKey: clientKey.private, hostKey: hostKey.public.trim(), attempts: 1 };
});

after(async () => {
  for (const sh of shells) {
    sh.kill();
  }
  await new Promise<void>((r) => server.close(() => r()));
  host.remove();
});

const compose = (image: string): string => `name: backend\nservices:\n  backend:\n    image: ${image}\n`;

function detachedDeploy(image: string): Promise<{ code: number; stdout: string; stderr: string }> {
  const start = renderDeployScript({ deployDir, project: "backend", files: ["docker-compose.yml", ".env"], healthServices: ["backend"], deadlineSeconds: 5 });
  const bundle = renderBundle([
    { name: "docker-compose.yml", content: compose(image), mode: "0644" },
    { name: ".env", content: "A='1'\n", mode: "0600" },
  ]);
  return runDetached(ep, { start, follow: renderFollowScript({ deployDir }), noRunCode: FOLLOW_NO_RUN, endLine: BUNDLE_END, deadlineSeconds: 60, reconnects: 4 }, bundle);
}

describe("a detached deploy over SSH", () => {
  it("goes on when the connection is cut during the pull, and the client picks up its verdict over a new one", async () => {
    commands.length = 0;
    cut = { match: isDeployStart, afterMs: 1500 };
    const r = await detachedDeploy("r/backend:slow-1");
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /deploy: pulling images[\s\S]*deploy: healthy after/, "the follow prints the run's output from its start");
    assert.ok(commands.some(isFollow), "a follow script ran: the connection was cut");
    assert.equal(fs.readFileSync(path.join(deployDir, ".release/current/docker-compose.yml"), "utf8"), compose("r/backend:slow-1"));
  });

  it("reports a failed run's verdict after a cut as the run's own exit code", async () => {
    commands.length = 0;
    cut = { match: isDeployStart, afterMs: 1500 };
    const r = await detachedDeploy("r/backend:slow-unhealthy-2");
    assert.equal(r.code, DEPLOY_EXIT.restored, r.stderr);
    assert.ok(commands.some(isFollow), "a follow script ran: the connection was cut");
    assert.match(r.stderr, /previous release restored and healthy/);
    assert.equal(fs.readFileSync(path.join(state, "running"), "utf8").trim(), "r/backend:slow-1");
  });

  it("sends the run again when the connection dropped before the host had all of it", async () => {
    // Cut at once: the bundle may not have arrived, so the host has no run of that id.
    commands.length = 0;
    cut = { match: isDeployStart, afterMs: 0 };
    const r = await detachedDeploy("r/backend:good-3");
    assert.equal(r.code, 0, r.stderr);
    assert.ok(commands.some(isFollow), "a follow script ran: the connection was cut");
    assert.equal(fs.readFileSync(path.join(state, "running"), "utf8").trim(), "r/backend:good-3");
  });
});

describe("host keys", () => {
  const run = (target: SshEndpoint) => runScript(target, "echo ok", "");

  it("refuses a host with no pinned key unless trust on first use is on", async () => {
    await assert.rejects(run({ ...ep, hostKey: undefined }), /no host key is pinned for 127\.0\.0\.1:\d+: refusing to connect/);
  });

  it("on first use reports the key the host presented, which then pins it", async () => {
    const first = await run({ ...ep, hostKey: undefined, trustOnFirstUse: true });
    assert.equal(first.code, 0);
    assert.equal(first.hostKey, ep.hostKey);
    assert.equal((await run({ ...ep, hostKey: first.hostKey })).code, 0);
  });

  it("refuses a host whose key changed", async () => {
    const other = sshKeyPair().public.trim();
    await assert.rejects(run({ ...ep, hostKey: other }), /host key of 127\.0\.0\.1:\d+ is ssh-ed25519 .*, not the pinned ssh-ed25519 .*: refusing to connect/);
  });

  it("the provider pins the first key in state and refuses another one later", async () => {
    const { remoteScriptProvider } = await import("../../providers/remote-script");
    const tofu = { ...ep, hostKey: undefined, trustOnFirstUse: true };
    const created = await remoteScriptProvider.create({ connection: tofu, create: "echo one" });
    assert.equal(created.outs.pinnedHostKey, ep.hostKey);
    const updated = await remoteScriptProvider.update!(created.id, created.outs, { connection: tofu, create: "echo two" });
    assert.equal(updated.outs!.pinnedHostKey, ep.hostKey);
    const stolen = { ...created.outs, pinnedHostKey: sshKeyPair().public.trim() };
    await assert.rejects(remoteScriptProvider.update!(created.id, stolen, { connection: tofu, create: "echo three" }), /not the pinned ssh-ed25519/);
    // A configured key wins and nothing stays pinned.
    const configured = await remoteScriptProvider.update!(created.id, created.outs, { connection: ep, create: "echo four" });
    assert.ok(!("pinnedHostKey" in configured.outs!));
    // The engine's wire format (a protobuf Struct) has no undefined: outputs never hold one.
    for (const outs of [created.outs, updated.outs, configured.outs]) {
      assert.ok(!Object.values(outs as object).includes(undefined), JSON.stringify(outs));
    }
  });
});
