import { after, before, describe, it } from "node:test";
import * as assert from "node:assert/strict";
import { execFileSync, spawn } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { up } from "../../deploy/engine";
import { runProcesses } from "../../deploy/engine-run";
import { toolchainEnv } from "../../toolchain/env";

/*
 * The deployed stack's own update lock against a real engine and file backend: a deploy killed
 * mid-update (SIGKILL to it, its pulumi and their plugins, as an OOM kill or a cancelled CI job
 * does) leaves the lock and a pending create behind; the next deploy proves the holder dead,
 * removes that lock alone, stops the plugins the dead engine left running, and converges with no
 * hand step. A `pulumi up` run by hand and killed is never judged: its lock is named, with what
 * frees it, and its plugins are not the deploy's to stop.
 */
const REPO = path.resolve(__dirname, "../..");
const PROJECT = "stack-lock-test";
let dir: string;
let saved: NodeJS.ProcessEnv;
const projectDir = (): string => path.join(dir, "project");
const slowMarker = (): string => path.join(dir, "slow");
const locks = (): string[] => fs.readdirSync(path.join(dir, "state", ".pulumi", "locks", "organization", PROJECT, "t")).filter((f) => f.endsWith(".json"));
const holders = (): string[] => {
  const d = path.join(dir, "state", ".pulumi", "homelab-lock-holders", "organization", PROJECT, "t");
  return fs.existsSync(d) ? fs.readdirSync(d) : [];
};

before(() => {
  saved = { ...process.env };
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "homelab-stack-lock-"));
  fs.mkdirSync(path.join(dir, "state"));
  Object.assign(process.env, toolchainEnv({ backendUrl: `file://${path.join(dir, "state")}` }).vars, { PULUMI_CONFIG_PASSPHRASE: "" });
  fs.mkdirSync(projectDir());
  fs.symlinkSync(path.join(REPO, "node_modules"), path.join(projectDir(), "node_modules"));
  fs.writeFileSync(path.join(projectDir(), "Pulumi.yaml"), `name: ${PROJECT}\nruntime:\n  name: nodejs\n  options:\n    typescript: false\nmain: index.js\n`);
  // One resource whose create hangs while the marker file exists: the update is killed there.
  fs.writeFileSync(
    path.join(projectDir(), "index.js"),
    `const pulumi = require("@pulumi/pulumi");
const marker = ${JSON.stringify(slowMarker())};
const provider = {
  async create() {
    const fs = require("fs");
    if (fs.existsSync(marker)) {
      fs.writeFileSync(marker + ".started", "");
      await new Promise((r) => setTimeout(r, 600000));
    }
    return { id: "slow", outs: {} };
  },
};
new pulumi.dynamic.Resource(provider, process.env.SLOW_NAME || "slow", {});
`,
  );
  execFileSync("pulumi", ["stack", "init", "t", "--cwd", projectDir(), "--non-interactive"], { env: process.env, stdio: "pipe" });
});

/**
 * The plugins a killed update left running (the engine starts them in process groups of their
 * own, so killing the deploy's group leaves them): every process working in this test's project.
 * Only the killed `pulumi up` by hand leaves some once the tests have run.
 */
function killLeftPlugins(): void {
  for (const entry of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) {
      continue;
    }
    try {
      if (fs.readlinkSync(`/proc/${entry}/cwd`).startsWith(projectDir())) {
        process.kill(Number(entry), "SIGKILL");
      }
    } catch {
      // gone, or not ours to read
    }
  }
}

after(() => {
  killLeftPlugins();
  process.env = saved;
  fs.rmSync(dir, { recursive: true, force: true });
});

async function until(what: string, check: () => boolean, timeoutMs = 120_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > end) {
      throw new Error(`timed out waiting for ${what}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Starts `command` in a process group of its own, waits for the slow create, and SIGKILLs the whole group. */
async function killMidCreate(command: string, args: string[]): Promise<void> {
  fs.writeFileSync(slowMarker(), "");
  const child = spawn(command, args, { env: process.env, stdio: "ignore", detached: true });
  const exited = new Promise((r) => child.on("exit", r));
  await until("the slow create", () => fs.existsSync(`${slowMarker()}.started`));
  process.kill(-child.pid!, "SIGKILL");
  await exited;
  fs.rmSync(slowMarker(), { force: true });
  fs.rmSync(`${slowMarker()}.started`, { force: true });
}

const upOptions = (said: string[]): Parameters<typeof up>[0] => ({
  stack: "t",
  workDir: projectDir(),
  policyPacks: [],
  onOutput: () => undefined,
  lock: { project: PROJECT, stack: "t" },
  say: (l) => said.push(l),
});

describe("the stack's update lock", { concurrency: false }, () => {
  it("left by a deploy killed mid-update, is removed by the next deploy, which converges", async () => {
    const script = `require(${JSON.stringify(path.join(REPO, "deploy/engine"))}).up({ stack: "t", workDir: ${JSON.stringify(projectDir())}, policyPacks: [], lock: { project: ${JSON.stringify(PROJECT)}, stack: "t" } })`;
    await killMidCreate(process.execPath, ["--import", "tsx", "-e", script]);
    assert.equal(locks().length, 1, "the killed update's lock stays");
    assert.equal(holders().length, 1, "its holder was recorded");
    const state = JSON.parse(execFileSync("pulumi", ["stack", "export", "--stack", "t", "--cwd", projectDir()], { env: process.env, encoding: "utf8" })) as { deployment: { pending_operations?: unknown[] } };
    assert.equal(state.deployment.pending_operations?.length, 1, "the create it was in is pending");
    const holder = JSON.parse(fs.readFileSync(path.join(dir, "state", ".pulumi", "homelab-lock-holders", "organization", PROJECT, "t", holders()[0]), "utf8")) as { run?: string };
    assert.ok(holder.run, "the holder names its engine run");
    const left = runProcesses(holder.run);
    assert.ok(left.length > 0, "the killed engine's plugins outlive it");

    const said: string[] = [];
    const run = await up(upOptions(said));
    assert.equal(run.ok, true, run.error);
    assert.match(said.join("\n"), /removed the stack's update lock left by a deploy that is gone \(pid \d+ on .*, since /);
    assert.ok(said.includes("cleared the operations the killed update left pending"), said.join("\n"));
    assert.ok(said.some((l) => /^stopped \d+ plugin process(es)? the killed update left running \(pid [\d, ]+\)$/.test(l)), said.join("\n"));
    assert.deepEqual(runProcesses(holder.run), [], "no plugin of the killed update is left");
    assert.deepEqual(locks(), []);
    assert.deepEqual(holders(), []);
    const after = JSON.parse(execFileSync("pulumi", ["stack", "export", "--stack", "t", "--cwd", projectDir()], { env: process.env, encoding: "utf8" })) as { deployment: { pending_operations?: unknown[]; resources?: { type: string }[] } };
    assert.equal(after.deployment.pending_operations?.length ?? 0, 0);
    assert.ok(after.deployment.resources?.some((r) => r.type === "pulumi-nodejs:dynamic:Resource"), "the resource was created");
  });

  it("left by a `pulumi up` run by hand, is never removed: the refusal names it", async () => {
    // A resource not created yet, so the update hangs in its create again.
    process.env.SLOW_NAME = "slow-by-hand";
    await killMidCreate("pulumi", ["up", "--yes", "--stack", "t", "--cwd", projectDir(), "--non-interactive", "--refresh"]);
    assert.equal(locks().length, 1);
    const said: string[] = [];
    const run = await up(upOptions(said));
    assert.equal(run.ok, false);
    assert.equal(run.concurrent, true);
    assert.equal(run.holders.length, 1);
    assert.equal(locks().length, 1, "not ours to remove");
    assert.deepEqual(said, []);
    execFileSync("pulumi", ["cancel", "--yes", "--stack", "t", "--cwd", projectDir()], { env: process.env, stdio: "pipe" });
    assert.deepEqual(locks(), []);
  });
});
