import { describe, it } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "fs";
import * as path from "path";
import { spawnSync } from "child_process";
import { pinnedRef } from "../../sandbox/images";
import { EXIT } from "../../deploy/outcome";
import { cutAt, deploy, deployDir, registryPid, release, rig, runReaches, scenario, target, useReliabilitySandbox } from "./harness";
import { docker, recordedPair } from "./support";

/*
 * The backend's deploy on the VM runs detached: the SSH connection cut before the files move,
 * during the pull, during compose up and during the health wait, each promoted; a pull the
 * registry never answers, ended by the step deadline with the running release untouched; the same
 * release again on a backend that restarted before, a no-op. Beside faults.test.ts, on a sandbox
 * of its own.
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
