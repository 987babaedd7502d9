import { after, describe, it } from "node:test";
import * as assert from "node:assert/strict";
import { spawn, spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { parseArgs } from "../../deploy/cli";
import { logSecrets } from "../../deploy/logs";
import { revealed } from "../../deploy/release-state";
import { labelSelector, lineSplitter, logsInvocation, parseSince, parseTail, podLogPath, renderLogsScript } from "../../lib/logs";

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "homelab-logs-"));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

describe("homelab logs: what it asks for", () => {
  it("takes one part, --follow, --since and --tail, checking each by name", () => {
    const o = parseArgs(["logs", "--stack", "production", "backend", "--since", "10m", "--tail", "50", "-f"], "/repo");
    assert.equal(o.command, "logs");
    assert.deepEqual(o.logs, { part: "backend", tail: 50, sinceSeconds: 600, follow: true });
    assert.deepEqual(parseArgs(["logs", "frontend", "--stack", "p"], "/repo").logs, { part: "frontend", tail: 100, sinceSeconds: undefined, follow: false });
    assert.throws(() => parseArgs(["logs", "--stack", "p"], "/repo"), /name one part: frontend, backend, vps \(usage: npm run logs --/);
    assert.throws(() => parseArgs(["logs", "--stack", "p", "db"], "/repo"), /name one part: frontend, backend, vps \(not "db"\)/);
    assert.throws(() => parseArgs(["logs", "--stack", "p", "backend", "vps"], "/repo"), /not "backend" "vps"/);
    assert.throws(() => parseArgs(["logs", "--stack", "p", "backend", "--since", "yesterday"], "/repo"), /--since: "yesterday" is not a duration like 30s, 10m, 2h or 1d/);
    assert.throws(() => parseArgs(["logs", "--stack", "p", "backend", "--tail", "-5"], "/repo"), /--tail needs a value|--tail: "-5"/);
    // Other commands still take no word of their own.
    assert.throws(() => parseArgs(["status", "--stack", "p", "backend"], "/repo"), /unknown argument "backend"/);
  });

  it("reads durations and line counts, refusing what is not one", () => {
    assert.deepEqual(["30s", "10m", "2h", "1d"].map(parseSince), [30, 600, 7200, 86400]);
    for (const bad of ["0s", "10", "1w", "31d", "-1m", "1.5h"]) {
      assert.throws(() => parseSince(bad), /--since/, bad);
    }
    assert.deepEqual(["0", "100", "100000"].map(parseTail), [0, 100, 100000]);
    for (const bad of ["", "x", "100001", "1e3"]) {
      assert.throws(() => parseTail(bad), /--tail/, bad);
    }
  });

  it("asks the API for one container's log with the window's parameters", () => {
    assert.equal(
      podLogPath("website", "frontend-abc", "frontend", { tail: 20, sinceSeconds: 600, follow: true }),
      "/api/v1/namespaces/website/pods/frontend-abc/log?container=frontend&timestamps=true&tailLines=20&sinceSeconds=600&follow=true",
    );
    assert.equal(podLogPath("website", "p", "c", { tail: 5, follow: false }), "/api/v1/namespaces/website/pods/p/log?container=c&timestamps=true&tailLines=5");
    assert.equal(labelSelector({ app: "frontend", tier: "web" }), "app=frontend,tier=web");
  });

  it("splits streamed text into whole lines, keeping a cut one until its end arrives", () => {
    const lines: string[] = [];
    const s = lineSplitter((l) => lines.push(l));
    s.push("one\ntw");
    s.push("o\nthree");
    assert.deepEqual(lines, ["one", "two"]);
    s.flush();
    assert.deepEqual(lines, ["one", "two", "three"]);
  });

  it("reads a host's recorded connection out of the state, where it is a secret", () => {
    const secret = (v: unknown): unknown => ({ "4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270", plaintext: JSON.stringify(v) });
    const connection = { host: "10.0.0.5", port: 22, user: "deploy", privateKey: "KEY" };
    assert.deepEqual(revealed({ connection: secret(connection), logs: "set -u", list: [secret("a"), "b"] }), { connection, logs: "set -u", list: ["a", "b"] });
  });

  it("never prints a secret of the stack, nor a value of the backend's environment", () => {
    const cfg = {
      "homelab:registryPassword": { value: "hunter22", secret: true },
      "homelab:backendEnv": { value: JSON.stringify({ DATABASE_URL: "postgres://u:pw@db/app", PORT: "80" }), secret: true },
      "homelab:vmHost": { value: "10.0.0.5", secret: false },
    };
    const secrets = logSecrets(cfg);
    assert.ok(secrets.includes("hunter22") && secrets.includes("postgres://u:pw@db/app"));
    assert.ok(!secrets.includes("80"), "values too short to mean anything are not masked");
    assert.ok(!secrets.includes("10.0.0.5"));
  });
});

describe("homelab logs: the host's script", () => {
  const script = (): string => logsInvocation(renderLogsScript({ deployDir: path.join(dir, "it's here"), project: "backend" }), { tail: 10, sinceSeconds: 600, follow: true });

  it("passes shellcheck, its values quoted as parameters", () => {
    const file = path.join(dir, "logs.sh");
    fs.writeFileSync(file, `#!/bin/sh\n${script()}`);
    const r = spawnSync("shellcheck", ["-s", "sh", file], { encoding: "utf8" });
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.match(script(), /^set -- '10' '600' '1'\n/);
  });

  it("runs docker compose logs of the project and stops a follower once its client goes away", async () => {
    const deployDir = path.join(dir, "it's here");
    fs.mkdirSync(deployDir, { recursive: true });
    fs.writeFileSync(path.join(deployDir, "docker-compose.yml"), "services: {}\n");
    const bin = path.join(dir, "bin");
    fs.mkdirSync(bin, { recursive: true });
    const pidFile = path.join(dir, "follower.pid");
    // A docker that logs forever, as `compose logs --follow` does.
    fs.writeFileSync(path.join(bin, "docker"), `#!/bin/sh\necho $$ > '${pidFile}'\necho "args: $*"\nwhile :; do echo tick; sleep 0.1; done\n`, { mode: 0o755 });
    const child = spawn("sh", ["-c", script()], { env: { ...process.env, PATH: `${bin}:${process.env.PATH ?? ""}` }, stdio: ["pipe", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    await new Promise((r) => setTimeout(r, 700));
    assert.match(out, new RegExp(`^args: compose --project-name backend --project-directory ${deployDir.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")} -f .*/docker-compose.yml logs --no-color --timestamps --tail 10 --since 600s --follow$`, "m"));
    assert.match(out, /tick/);
    // The client goes away: the session's stdin ends.
    child.stdin.end();
    const code = await new Promise<number | null>((r) => child.on("exit", r));
    assert.notEqual(code, null);
    const pid = Number(fs.readFileSync(pidFile, "utf8"));
    await new Promise((r) => setTimeout(r, 200));
    assert.throws(() => process.kill(pid, 0), "the follower is gone");
  });

  it("without --follow, prints everything however slow docker is, though the client ends stdin at once", () => {
    const deployDir = path.join(dir, "slow project");
    fs.mkdirSync(deployDir, { recursive: true });
    fs.writeFileSync(path.join(deployDir, "docker-compose.yml"), "services: {}\n");
    const bin = path.join(dir, "slow-bin");
    fs.mkdirSync(bin, { recursive: true });
    // A busy host: the logs come half a second after the command starts.
    fs.writeFileSync(path.join(bin, "docker"), `#!/bin/sh\nsleep 0.5\necho "args: $*"\necho last line\n`, { mode: 0o755 });
    const r = spawnSync("sh", ["-c", logsInvocation(renderLogsScript({ deployDir, project: "vps" }), { tail: 50, follow: false })], {
      env: { ...process.env, PATH: `${bin}:${process.env.PATH ?? ""}` },
      input: "",
      encoding: "utf8",
    });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /logs --no-color --timestamps --tail 50$/m);
    assert.match(r.stdout, /^last line$/m);
  });

  it("says when the host has no such project", () => {
    const r = spawnSync("sh", ["-c", logsInvocation(renderLogsScript({ deployDir: path.join(dir, "none"), project: "x" }), { tail: 1, follow: false })], { encoding: "utf8" });
    assert.equal(r.status, 3);
    assert.match(r.stderr, /no compose project in .*none/);
  });
});
