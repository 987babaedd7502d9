import { strict as assert } from "assert";
import { spawn } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { describe, it } from "node:test";
import { ENGINE_RUN_VAR, runProcesses, stopRunProcesses } from "../../deploy/engine-run";

function alive(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    return !stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z");
  } catch {
    return false;
  }
}

describe("an engine run's processes", () => {
  it("are the processes whose environment carries the run's marker exactly, first or later", () => {
    const proc = fs.mkdtempSync(path.join(os.tmpdir(), "homelab-proc-"));
    const env = (pid: string, vars: string[]): void => {
      fs.mkdirSync(path.join(proc, pid));
      fs.writeFileSync(path.join(proc, pid, "environ"), vars.map((v) => `${v}\0`).join(""));
    };
    env("101", [`${ENGINE_RUN_VAR}=run-1`, "PATH=/bin"]);
    env("102", ["PATH=/bin", `${ENGINE_RUN_VAR}=run-1`]);
    env("103", ["PATH=/bin", `${ENGINE_RUN_VAR}=run-10`]);
    env("104", [`X${ENGINE_RUN_VAR}=run-1`]);
    env("105", ["PATH=/bin"]);
    fs.mkdirSync(path.join(proc, "self"));
    try {
      assert.deepEqual(runProcesses("run-1", proc).sort(), [101, 102]);
      assert.deepEqual(runProcesses("run-2", proc), []);
    } finally {
      fs.rmSync(proc, { recursive: true, force: true });
    }
  });

  it("are ended: SIGTERM first, SIGKILL for what ignores it, and nothing of another run", async () => {
    const run = `test-${process.pid}-${Date.now()}`;
    const start = (script: string, marker: string): number =>
      spawn("sh", ["-c", script], { env: { ...process.env, [ENGINE_RUN_VAR]: marker }, stdio: "ignore", detached: true }).pid!;
    const polite = start("exec sleep 60", run);
    const stubborn = start('trap "" TERM; while :; do sleep 1; done', run);
    const other = start("exec sleep 60", `${run}-other`);
    try {
      await new Promise((r) => setTimeout(r, 300));
      assert.ok(runProcesses(run).includes(polite) && runProcesses(run).includes(stubborn));
      const stopped = await stopRunProcesses(run);
      assert.ok(stopped.includes(polite) && stopped.includes(stubborn), String(stopped));
      await new Promise((r) => setTimeout(r, 200));
      assert.ok(!alive(polite), "the one that ends on SIGTERM ended");
      assert.ok(!alive(stubborn), "the one that ignores SIGTERM was killed");
      assert.deepEqual(runProcesses(run), []);
      assert.ok(alive(other), "another run's process is left alone");
    } finally {
      for (const pid of [polite, stubborn, other]) {
        try {
          process.kill(-pid, "SIGKILL");
        } catch {
          // ended
        }
      }
    }
  });
});
