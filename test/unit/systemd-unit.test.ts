import { after, describe, it } from "node:test";
import * as assert from "node:assert/strict";
import { ChildProcess, spawn, spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { CONFIG_KEYS } from "../../lib/config";
import { SECRET_KEYS, releaseText, validConfig } from "../support/fixtures";

const REPO = path.resolve(__dirname, "../..");
const UNIT = path.join(REPO, "deploy", "systemd", "homelab-deploy.service");
const ENV_EXAMPLE = path.join(REPO, "deploy", "systemd", "homelab-deploy.env.example");
const SYSTEMD_ANALYZE = "/usr/bin/systemd-analyze";

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "homelab-systemd-"));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** The unit's settings by section, in order; comments are lines of their own in systemd's syntax. */
function settings(text: string): Map<string, [string, string][]> {
  const sections = new Map<string, [string, string][]>();
  let current: [string, string][] = [];
  for (const line of text.split("\n").map((l) => l.trim())) {
    if (line === "" || line.startsWith("#") || line.startsWith(";")) {
      continue;
    }
    const section = /^\[(.+)\]$/.exec(line);
    if (section) {
      current = [];
      sections.set(section[1], current);
      continue;
    }
    const eq = line.indexOf("=");
    current.push([line.slice(0, eq), line.slice(eq + 1)]);
  }
  return sections;
}

const unitText = fs.readFileSync(UNIT, "utf8");
const service = new Map(settings(unitText).get("Service"));

/** systemd's time span (`135min`, `2h 15min`, `7920`) in seconds. */
function timeSpan(value: string): number {
  const units: Record<string, number> = { "": 1, s: 1, sec: 1, min: 60, m: 60, h: 3600, hr: 3600 };
  return [...value.matchAll(/(\d+)\s*([a-z]*)/g)].reduce((sum, [, n, unit]) => sum + Number(n) * units[unit], 0);
}

/** ExecStart's words: the watcher's entry point as the unit starts it. */
const execStart = (service.get("ExecStart") ?? "").split(/\s+/);

describe("the --watch service's systemd unit", () => {
  it("runs the watcher itself as the main process, so a stop's SIGTERM reaches it", () => {
    assert.ok(path.isAbsolute(execStart[0]) && path.basename(execStart[0]) === "node", execStart[0]);
    assert.deepEqual(execStart.slice(1, 7), ["--import", "tsx", "deploy/cli.ts", "--watch", "--stack", "production"]);
    assert.equal(service.get("WorkingDirectory"), "/opt/homelab-stack");
  });

  it("signals only the watcher on stop and waits for a whole deploy at the default deadlines", () => {
    assert.equal(service.get("KillMode"), "mixed");
    assert.equal(service.get("Restart"), "on-failure");
    const gate = (CONFIG_KEYS.gateDeadlineSeconds as { default: number }).default;
    assert.equal((CONFIG_KEYS.vmStepDeadlineSeconds as { default: number }).default, 0, "a step's deadline is the gate's");
    // One `up`: the rollout and the frontend gate, the backend's run on the VM as ComposeHost
    // follows it (6 steps + 3 waits of the deadline, + 60 s), the backend gate. A rollback repeats it.
    const oneUp = gate + gate + (9 * gate + 60) + gate;
    assert.ok(timeSpan(service.get("TimeoutStopSec") ?? "0") >= 2 * oneUp, service.get("TimeoutStopSec"));
  });

  it("puts the Pulumi CLI's directory on PATH and keeps comments off the settings' lines", () => {
    const env = service.get("Environment") ?? "";
    assert.match(env, /^PATH=/);
    assert.ok(env.slice(5).split(":").some((d) => d.endsWith("/.pulumi/bin")), env);
    assert.equal(service.get("EnvironmentFile"), "/etc/homelab-deploy.env");
    // Anything after a value, `#` included, is part of it: EnvironmentFile= would name another file.
    const inline = [...settings(unitText).values()].flat().filter(([, v]) => v.includes("#"));
    assert.deepEqual(inline, []);
  });

  it("comes with an example environment of placeholders for the backend and the passphrase", () => {
    const lines = fs.readFileSync(ENV_EXAMPLE, "utf8").split("\n").map((l) => l.trim());
    const names = lines.map((l) => /^#?\s*([A-Z_]+)=/.exec(l)?.[1]).filter(Boolean);
    assert.deepEqual(names.sort(), ["PULUMI_ACCESS_TOKEN", "PULUMI_BACKEND_URL", "PULUMI_CONFIG_PASSPHRASE"]);
    const set = lines.filter((l) => l !== "" && !l.startsWith("#"));
    for (const l of set) {
      assert.match(l, /^[A-Z_]+=[^#\s]+$/);
    }
    assert.ok(set.some((l) => /^PULUMI_CONFIG_PASSPHRASE=replace-with-/.test(l)), set.join("\n"));
  });

  const noAnalyze = !fs.existsSync(SYSTEMD_ANALYZE) && "systemd-analyze is not installed";

  /** `systemd-analyze verify` of the unit with its ExecStart binary replaced by `binary`. */
  function verify(binary: string): { status: number | null; output: string } {
    const dir = fs.mkdtempSync(path.join(tmp, "unit-"));
    const copy = path.join(dir, "homelab-deploy.service");
    // verify checks that ExecStart's binary exists; /usr/bin/node need not be on this machine.
    fs.writeFileSync(copy, unitText.replace(/^ExecStart=\S+/m, `ExecStart=${binary}`));
    const r = spawnSync(SYSTEMD_ANALYZE, ["verify", copy], { encoding: "utf8" });
    return { status: r.status, output: `${r.stdout}${r.stderr}` };
  }

  it("passes systemd-analyze verify", () => {
    assert.ok(!noAnalyze, "systemd-analyze is missing: npm run setup installs Debian's systemd");
    const r = verify(process.execPath);
    assert.equal(r.output.split("\n").filter((l) => l.includes("homelab-deploy")).join("\n"), "");
    assert.equal(r.status, 0, r.output);
    // The same check fails on a unit it cannot start, so a pass above means something.
    const broken = verify(path.join(tmp, "no-such-node"));
    assert.notEqual(broken.status, 0);
    assert.match(broken.output, /no-such-node/);
  });
});

// ---------------------------------------------------------------------------------------------
// A stop as the unit delivers it: SIGTERM to the watcher alone while its deploy runs.

/** How long the stand-in engine takes for its `pulumi up`: the deploy in progress. */
const DEPLOY_SECONDS = 4;

/**
 * A `pulumi` that answers the Automation API's calls from files and plays the deploy's `pulumi up`
 * as a few seconds' work, noting when it starts and ends. For the deploy lock's inline update it
 * runs the watcher's program over gRPC, as the CLI does, without a resource monitor.
 */
const FAKE_PULUMI = `
const fs = require("fs");
const path = require("path");
const args = process.argv.slice(2);
const state = process.env.FAKE_PULUMI_STATE;
const note = (name, text) => fs.writeFileSync(path.join(state, name), text);
fs.appendFileSync(path.join(state, "calls"), JSON.stringify({ pid: process.pid, args }) + "\\n");
const flag = (name) => args[args.indexOf(name) + 1];
const client = args.find((a) => a.startsWith("--client="));
const [verb, sub] = args;
if (verb === "version") {
  process.stdout.write("v3.276.0\\n");
} else if (verb === "stack" && (sub === "select" || sub === "init")) {
  // the stack exists
} else if (verb === "config") {
  process.stdout.write(fs.readFileSync(path.join(state, "config.json")));
} else if (verb === "stack" && sub === "export") {
  process.stdout.write(JSON.stringify({ version: 3, deployment: { resources: [] } }));
} else if (verb === "stack" && sub === "output") {
  process.stdout.write("{}");
} else if (verb === "stack" && sub === "history") {
  process.stdout.write("[]");
} else if (verb === "up" && client) {
  const modules = path.join(process.env.FAKE_PULUMI_REPO, "node_modules");
  const grpc = require(path.join(modules, "@grpc/grpc-js"));
  const lang = require(path.join(modules, "@pulumi/pulumi/proto/language_pb.js"));
  const rpc = require(path.join(modules, "@pulumi/pulumi/proto/language_grpc_pb.js"));
  const runtime = new rpc.LanguageRuntimeClient(client.slice("--client=".length), grpc.credentials.createInsecure());
  const req = new lang.RunRequest();
  req.setProject("lock");
  req.setStack(flag("--stack"));
  req.setMonitorAddress("");
  runtime.run(req, (err, res) => {
    const error = err ? err.message : res.getError();
    if (error) {
      process.stderr.write("fake pulumi: the program failed: " + error + "\\n");
    }
    process.exit(error ? 1 : 0);
  });
} else if (verb === "up") {
  note("deploy-started", String(process.pid));
  process.on("SIGTERM", () => {
    note("deploy-signalled", "SIGTERM");
    process.exit(143);
  });
  setTimeout(() => {
    note("deploy-finished", String(Date.now()));
    process.exit(0);
  }, ${DEPLOY_SECONDS * 1000});
} else {
  process.stderr.write("fake pulumi: unexpected command: " + args.join(" ") + "\\n");
  process.exit(1);
}
`;

/** Stands in for ssh to the git host: runs git's own command on the local bare repository. */
const FAKE_SSH = `#!/bin/sh
for last; do :; done
exec sh -c "$(printf '%s' "$last" | sed "s|'/website.git'|'$FAKE_GIT_REPO'|")"
`;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function until(what: string, ms: number, ok: () => boolean): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) {
      throw new Error(`timed out waiting for ${what}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe("stopping the --watch service", () => {
  let watcher: ChildProcess | undefined;
  after(() => {
    // Only if an assertion failed midway: the watcher's own process group, which this test started.
    if (watcher?.pid && watcher.exitCode === null && watcher.signalCode === null) {
      process.kill(-watcher.pid, "SIGKILL");
    }
  });

  it("lets the deploy in progress finish, then the watcher exits 0", async () => {
    const dir = fs.mkdtempSync(path.join(tmp, "stop-"));
    const bin = path.join(dir, "bin");
    const state = path.join(dir, "state");
    fs.mkdirSync(bin);
    fs.mkdirSync(state);
    fs.writeFileSync(path.join(bin, "pulumi"), `#!${process.execPath}\n${FAKE_PULUMI}`, { mode: 0o755 });
    fs.writeFileSync(path.join(bin, "ssh"), FAKE_SSH, { mode: 0o755 });

    // The git host: a bare repository reached through the config's ssh:// URL.
    const gitUrl = "ssh://git@127.0.0.1:2223/website.git";
    const bare = path.join(dir, "website.git");
    const env: NodeJS.ProcessEnv = {
      HOME: dir,
      PATH: [bin, path.dirname(process.execPath), "/usr/local/bin", "/usr/bin", "/bin"].join(":"),
      GIT_SSH_COMMAND: path.join(bin, "ssh"),
      GIT_SSH_VARIANT: "ssh",
      FAKE_GIT_REPO: bare,
      FAKE_PULUMI_STATE: state,
      FAKE_PULUMI_REPO: REPO,
      GIT_AUTHOR_NAME: "test",
      GIT_AUTHOR_EMAIL: "test@example.test",
      GIT_COMMITTER_NAME: "test",
      GIT_COMMITTER_EMAIL: "test@example.test",
    };
    const git = (cwd: string, ...args: string[]): void => {
      const r = spawnSync("git", args, { cwd, env, encoding: "utf8" });
      assert.equal(r.status, 0, `git ${args.join(" ")}: ${r.stderr}`);
    };
    git(dir, "init", "--quiet", "--bare", "--initial-branch=master", bare);
    const seed = path.join(dir, "seed");
    fs.mkdirSync(path.join(seed, "flux", "clusters", "production"), { recursive: true });
    fs.writeFileSync(path.join(seed, "Pulumi.yaml"), "name: homelab-stack\nruntime: nodejs\n");
    fs.writeFileSync(path.join(seed, "flux", "clusters", "production", "release.yaml"), releaseText());
    git(seed, "init", "--quiet", "--initial-branch=master");
    git(seed, "add", ".");
    git(seed, "commit", "--quiet", "-m", "release");
    git(seed, "push", "--quiet", bare, "master");
    const checkout = path.join(dir, "checkout");
    git(dir, "clone", "--quiet", gitUrl, checkout);

    const config = Object.entries(validConfig({ "homelab:gitUrl": gitUrl }));
    fs.writeFileSync(path.join(state, "config.json"), JSON.stringify(Object.fromEntries(config.map(([k, v]) => [k, { value: v, secret: SECRET_KEYS.includes(k) }]))));

    // ExecStart's command line, with this machine's node and the test's checkout.
    const [, ...args] = execStart;
    const stderr: string[] = [];
    watcher = spawn(process.execPath, [...args, "--cwd", checkout], { cwd: REPO, env, stdio: ["ignore", "pipe", "pipe"], detached: true });
    watcher.stdout!.resume();
    watcher.stderr!.setEncoding("utf8").on("data", (t: string) => stderr.push(t));
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>((resolve) =>
      watcher!.on("exit", (code, signal) => resolve({ code, signal, at: Date.now() })),
    );
    const log = (): string => `${stderr.join("")}\ncalls:\n${fs.existsSync(path.join(state, "calls")) ? fs.readFileSync(path.join(state, "calls"), "utf8") : ""}`;

    const ended = (): boolean => watcher!.exitCode !== null || watcher!.signalCode !== null;
    await until("the deploy's pulumi up", 90_000, () => fs.existsSync(path.join(state, "deploy-started")) || ended()).catch((e: Error) => {
      throw new Error(`${e.message}\n${log()}`);
    });
    assert.ok(!ended(), `the watcher ended before deploying:\n${log()}`);
    const deployPid = Number(fs.readFileSync(path.join(state, "deploy-started"), "utf8"));

    // KillMode=mixed: SIGTERM to the main process only.
    process.kill(watcher.pid!, "SIGTERM");
    const sentAt = Date.now();
    let timer: NodeJS.Timeout | undefined;
    const end = await Promise.race([exited, new Promise<undefined>((r) => (timer = setTimeout(() => r(undefined), 60_000)))]);
    clearTimeout(timer);
    assert.ok(end, `the watcher did not exit within 60 s of SIGTERM:\n${log()}`);
    assert.deepEqual([end.code, end.signal], [0, null], log());

    assert.equal(fs.existsSync(path.join(state, "deploy-signalled")), false, "the deploy's pulumi got the signal too");
    assert.ok(fs.existsSync(path.join(state, "deploy-finished")), `the deploy was cut short:\n${log()}`);
    const finishedAt = Number(fs.readFileSync(path.join(state, "deploy-finished"), "utf8"));
    assert.ok(sentAt < finishedAt && finishedAt <= end.at, "the deploy was not in progress when the watcher got SIGTERM, or outlived it");
    const text = stderr.join("");
    const order = ["watch: SIGTERM: stopping after the deploy in progress", "deploy: PROMOTED", "watch: stopped"].map((l) => text.indexOf(l));
    assert.ok(order.every((i, n) => i >= 0 && (n === 0 || i > order[n - 1])), text);
    // Nothing of the unit is left for the final SIGKILL: the deploy's pulumi, the lock's, every one.
    const pids = fs.readFileSync(path.join(state, "calls"), "utf8").trim().split("\n").map((l) => (JSON.parse(l) as { pid: number }).pid);
    assert.ok(pids.includes(deployPid));
    assert.deepEqual(pids.filter(alive), []);
  });
});
