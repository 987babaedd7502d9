import { describe, it } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "fs";
import * as path from "path";
import { spawnSync } from "child_process";
import { pinnedRef } from "../../sandbox/images";
import { EXIT } from "../../deploy/outcome";
import { DeployRun } from "../../bench/deploy-run";
import {
  cutAt, deploy, deployDir, deployPlugins, killDeployGroup, registryPid, release, rig, rolloutStarts, runReaches, scenario, stillRunning, target,
  useReliabilitySandbox,
} from "./harness";
import { Pair } from "./support";
import { commandName, docker, recordedPair } from "./support";

/*
 * The backend's deploy on the VM runs detached: the SSH connection cut before the files move,
 * during the pull, during compose up and during the health wait, each promoted; a pull the
 * registry never answers, ended by the step deadline with the running release untouched; the same
 * release again on a backend that restarted before, a no-op. And the deploy killed with SIGKILL
 * while its engine previews, during the frontend rollout and during the backend's run on the VM:
 * the next deploy converges with no hand step. Beside faults.test.ts, on a sandbox of its own.
 */
useReliabilitySandbox("remote");

describe("faults during a deploy", { concurrency: false }, () => {
  // The remote deploy runs detached on the VM: a cut connection neither stops nor hides it. The
  // client connects again, follows the run to its verdict, and the release is promoted.
  it("the SSH connection is cut before the files move", async () => {
    await scenario("SSH connection cut before the files move", "fault", [EXIT.promoted], () => cutAt(/deploy: (pulling images|logged in)/));
  });

  it("the SSH connection is cut during the pull", async () => {
    await scenario("SSH connection cut during the pull", "fault", [EXIT.promoted], () =>
      // The registry holds the pull (stopped, it accepts and never answers) until the cut is made.
      cutAt(/deploy: pulling images/, async () => {
        const pid = registryPid();
        process.kill(pid, "SIGSTOP");
        setTimeout(() => process.kill(pid, "SIGCONT"), 3000);
        await new Promise((r) => setTimeout(r, 500));
      }),
    );
  });

  it("the SSH connection is cut during compose up", async () => {
    await scenario("SSH connection cut during compose up", "fault", [EXIT.promoted], () => cutAt(/deploy: starting/));
  });

  it("the SSH connection is cut during the health wait", async () => {
    await scenario("SSH connection cut during the health wait", "fault", [EXIT.promoted], () => cutAt(/deploy: waiting for health/));
  });

  it("the registry hangs during the VM's pull", async () => {
    await scenario("docker pull hung (registry accepts, never answers)", "fault", [EXIT.platform], async () => {
      const { to } = await target("backend");
      await release(to);
      // Not on the engine yet, so the pull must ask the registry (earlier rows pulled every image).
      spawnSync("docker", ["image", "rm", "-f", pinnedRef(rig.sb.images, "backend", to[1])], { env: rig.sb.docker.env(), timeout: 60_000 });
      const since = Date.now();
      const running = deploy();
      const run = await runReaches(since, /deploy: (logged in|pulling images)/, { running });
      const pid = registryPid();
      process.kill(pid, "SIGSTOP");
      try {
        const r = await running;
        // The engine's own registry timeout or the step deadline, whichever comes first, ends it.
        assert.match(fs.readFileSync(path.join(run, "err"), "utf8"), /PULL: (the pull did not finish within \d+s|the images of the release could not be pulled|could not log in to \S+ within \d+s); the running release was not touched/);
        assert.equal(fs.readFileSync(path.join(run, "verdict"), "utf8").trim(), "13");
        assert.ok(!fs.existsSync(path.join(await deployDir(), ".docker", "config.json")), "the registry password is not left on the VM");
        return r;
      } finally {
        process.kill(pid, "SIGCONT");
      }
    });
  });

  it("the same release is deployed again on a backend that restarted once before", async () => {
    await scenario("same release again after a backend restart", "fault", [EXIT.promoted], async () => {
      // The release in git is the one the VM runs, so the deploy below brings it nothing new.
      await release(await recordedPair(rig.stack));
      const cid = docker(rig.sb, "ps", "-q", "--filter", "label=com.docker.compose.project=backend", "--filter", "label=com.docker.compose.service=backend");
      assert.ok(cid, "the backend runs");
      // One crash, long before this deploy: the engine restarts it (unless-stopped).
      process.kill(Number(docker(rig.sb, "inspect", "-f", "{{.State.Pid}}", cid)), "SIGKILL");
      const end = Date.now() + 120_000;
      while (docker(rig.sb, "inspect", "-f", "{{.RestartCount}} {{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{end}}", cid) !== "1 running healthy") {
        assert.ok(Date.now() < end, "the backend did not come back healthy after its restart");
        await new Promise((r) => setTimeout(r, 1000));
      }
      // Another gate deadline renders another deploy script: the VM runs it with the same files.
      const deadline = (await rig.stack.getAllConfig())["homelab:gateDeadlineSeconds"].value;
      await rig.stack.setConfig("homelab:gateDeadlineSeconds", { value: String(Number(deadline) + 1) });
      try {
        const since = Date.now();
        const r = await deploy();
        // The VM's run judged the release unchanged and healthy and touched nothing.
        const run = await runReaches(since, /deploy: healthy after/, { timeoutMs: 10_000 });
        assert.match(fs.readFileSync(path.join(run, "out"), "utf8"), /is current and healthy; nothing to do/);
        assert.equal(docker(rig.sb, "ps", "-q", "--filter", "label=com.docker.compose.project=backend", "--filter", "label=com.docker.compose.service=backend"), cid, "the container was not recreated");
        return r;
      } finally {
        await rig.stack.setConfig("homelab:gateDeadlineSeconds", { value: deadline });
      }
    });
  });
});

/**
 * Deploys a new pair, SIGKILLs the deploy's process group once `reached` returns, then deploys
 * again with nothing done by hand: that deploy promotes the pair, and no process of the killed
 * run is left. With `updating`, the engine was killed inside its update, holding the stack's lock:
 * the next deploy proves the holder dead, removes the lock and stops the plugins it left.
 */
async function killedAt(point: string, updating: boolean, reached: (running: Promise<DeployRun>, to: Pair, since: number) => Promise<void>): Promise<void> {
  await scenario(`deploy killed with SIGKILL ${point}, then the next deploy`, "fault", [EXIT.promoted], async () => {
    const { to } = await target("any");
    await release(to);
    const since = Date.now();
    const running = deploy();
    await reached(running, to, since);
    const left = await killDeployGroup();
    assert.ok(left.length > 0, "the engine had started its plugins when the deploy was killed");
    const killed = await running;
    const next = await deploy();
    assert.equal(next.code, EXIT.promoted, `the deploy after the killed one:\n${next.output.slice(-3000)}`);
    assert.deepEqual(await recordedPair(rig.stack), to, "the next deploy promoted the pair the killed one was deploying");
    if (updating) {
      assert.match(next.output, /^deploy: removed the stack's update lock left by a deploy that is gone \(pid \d+ on /m, next.output.slice(-3000));
      assert.match(next.output, /^deploy: stopped \d+ plugin process(es)? the killed update left running \(pid [\d, ]+\)$/m, next.output.slice(-3000));
    }
    assert.deepEqual(stillRunning(left), [], `processes of the killed deploy still run (of ${left.length} left: ${left.map((p) => p.pid).join(", ")})`);
    return { ...next, output: `${killed.output}\n${next.output}` };
  });
}

describe("the deploy killed with SIGKILL (its process group, as a cancelled job or a closed laptop)", { concurrency: false }, () => {
  it("while its engine previews", async () => {
    // The engine previews before it takes the stack's update lock: only the deploy lock is left.
    await killedAt("while its engine previews", false, async (running) => {
      let ended = false;
      void running.then(() => (ended = true));
      // The engine's resource plugins are up (they live as long as the preview; a plugin the
      // engine only asks for its version is gone again at once): it is evaluating the program.
      while (!deployPlugins().some((p) => commandName(p.pid).startsWith("pulumi-resource"))) {
        if (ended) {
          assert.fail(`the deploy ended before its engine started a plugin:\n${(await running).output.slice(-3000)}`);
        }
        await new Promise((r) => setTimeout(r, 50));
      }
    });
  });

  it("during the frontend rollout", async () => {
    await killedAt("during the frontend rollout", true, (running, to) => rolloutStarts(to[0], running));
  });

  it("during the backend's run on the VM", async () => {
    await killedAt("during the backend's run on the VM", true, async (running, _to, since) => {
      await runReaches(since, /deploy: (pulling images|logged in)/, { running });
    });
  });
});
