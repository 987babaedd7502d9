import { describe, it } from "node:test";
import * as assert from "node:assert/strict";
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import { npmDeploy } from "../../bench/deploy-run";
import { startCluster } from "../../sandbox/cluster";
import { ensureDockerEngine } from "../../sandbox/docker-engine";
import { stopPid, stopProcess } from "../../sandbox/processes";
import { startRegistry } from "../../sandbox/registry";
import { restartVmSshd, stopVmSshd } from "../../sandbox/vm";
import { EXIT } from "../../deploy/outcome";
import { RELEASE_PATH, clearExclusions, cloneProject, serverFile } from "../../sandbox/checkout";
import { commitToServer } from "../../sandbox/git-server";
import { PAYLOADS } from "../support/hostile";
import {
  STACK, converges, deploy, killDeploys, pending, release, releaseInGit, rig, rollbackCommitOnTop,
  rolloutStarts, runReaches, scenario, target, useReliabilitySandbox,
} from "./harness";
import { Pair, leaksSecret, recordedPair } from "./support";

/*
 * Faults of the platform and of the deploy process, and hostile input: dockerd restarted, the
 * registry down, the API server stopped during the frontend rollout and inside its gate's soak,
 * the VM's sshd stopped, two deploys at once from one checkout and from two, the deploy killed
 * between a failed up and its rollback, and hostile values in the release file and config. Beside
 * remote-run.test.ts, on a sandbox of its own.
 */
useReliabilitySandbox("faults");

/** The ingress serves the frontend page of `tag`. */
async function servesPage(tag: string): Promise<boolean> {
  const res = await fetch(`${rig.sb.ingressUrl}/`, { signal: AbortSignal.timeout(3000) }).catch(() => undefined);
  return res !== undefined && res.ok && (await res.text()).includes(tag);
}

describe("platform faults during a deploy", { concurrency: false }, () => {
  it("dockerd restarts while the backend deploys", async () => {
    await scenario("dockerd restarted mid-deploy", "fault", [EXIT.promoted, EXIT.platform], async () => {
      const { to } = await target("backend");
      await release(to);
      const since = Date.now();
      const running = deploy();
      // The backend's run on the VM has begun (not the refresh's reads, which run docker too).
      await runReaches(since, /deploy: (logged in|pulling images)/, { running });
      const dockerDir = path.join(rig.dir, "sandbox", "docker");
      await stopProcess(dockerDir, "dockerd", 30_000);
      await ensureDockerEngine(dockerDir, { network: "isolated" });
      return running;
    });
  });

  it("the registry is down when a deploy starts", async () => {
    await scenario("registry down", "fault", [EXIT.platform], async () => {
      const { to } = await target("any");
      await release(to);
      const registryDir = path.join(rig.dir, "sandbox", "registry");
      await stopProcess(registryDir, "registry");
      try {
        return await deploy();
      } finally {
        await startRegistry(registryDir);
      }
    });
  });

  it("the API server stops during the frontend rollout", async () => {
    await scenario("API server stopped during the frontend rollout", "fault", [EXIT.promoted, EXIT.platform], async () => {
      const { to } = await target("frontend");
      await release(to);
      const running = deploy();
      await rolloutStarts(to[0], running);
      const clusterDir = path.join(rig.dir, "sandbox", "cluster");
      const pidFile = path.join(clusterDir, "kwok", "clusters", "homelab", "pids", "kube-apiserver.pid");
      await stopPid(Number(fs.readFileSync(pidFile, "utf8").trim()));
      await new Promise((r) => setTimeout(r, 5000));
      await startCluster(clusterDir, { nodes: 0, log: () => undefined });
      return running;
    });
  });

  it("the API server stops inside the frontend gate's soak, and is still down when it ends", async () => {
    let restartsCounted: string | undefined;
    // A healthy release is promoted on its probes: a count that cannot be read blames nothing.
    await scenario("API server stopped inside the frontend gate's soak", "fault", [EXIT.promoted], async () => {
      const { to } = await target("frontend");
      await release(to);
      // A soak long enough to stop the API server inside it; the sandbox's own short one again after.
      const soak = await rig.stack.getConfig("homelab:gateSoakSeconds");
      await rig.stack.setConfig("homelab:gateSoakSeconds", { value: "15" });
      const clusterDir = path.join(rig.dir, "sandbox", "cluster");
      try {
        const running = deploy();
        await rolloutStarts(to[0], running);
        // The gate's first pass is the new page through the ingress: its soak starts then.
        for (let i = 0; i < 600 && !(await servesPage(to[0])); i++) {
          await new Promise((r) => setTimeout(r, 250));
        }
        await new Promise((r) => setTimeout(r, 2000));
        const pidFile = path.join(clusterDir, "kwok", "clusters", "homelab", "pids", "kube-apiserver.pid");
        await stopPid(Number(fs.readFileSync(pidFile, "utf8").trim()));
        await new Promise((r) => setTimeout(r, 20_000));
        await startCluster(clusterDir, { nodes: 0, log: () => undefined });
        const r = await running;
        const deployment = (await rig.stack.exportStack()).deployment as { resources: { urn: string; outputs?: { result?: { soak?: { restarts?: string } } } }[] };
        restartsCounted = deployment.resources.find((res) => res.urn.endsWith("::frontend-gate-probe"))?.outputs?.result?.soak?.restarts;
        return r;
      } finally {
        await rig.stack.setConfig("homelab:gateSoakSeconds", soak);
      }
    });
    assert.match(restartsCounted ?? "", /^not counted: /, "the gate's result says why the restarts were not counted");
  });

  it("the VM's sshd stops before the backend deploys", async () => {
    await scenario("VM's sshd stopped during the release", "fault", [EXIT.platform], async () => {
      const { to } = await target("frontend");
      await release(to);
      const running = deploy();
      // The host check has passed once the frontend rolls out; the backend deploy comes next.
      await rolloutStarts(to[0], running);
      const vmDir = path.join(rig.dir, "sandbox", "vm");
      await stopVmSshd(vmDir);
      try {
        return await running;
      } finally {
        await restartVmSshd(vmDir, rig.sb.vm.port);
      }
    });
  });

  it("two deploys start at once", async () => {
    const codes: number[] = [];
    await scenario("two deploys started at once", "fault", [0], async () => {
      const { to } = await target("any");
      await release(to);
      const [a, b] = await Promise.all([deploy(), deploy()]);
      codes.push(a.code, b.code);
      const refused = [a, b].find((r) => r.code !== 0);
      const promoted = [a, b].find((r) => r.code === 0);
      assert.ok(refused && promoted, `one promoted, one refused: exits ${a.code}, ${b.code}`);
      assert.equal(refused.code, 2, refused.output);
      assert.match(refused.output, /REFUSED: (another deploy|another update)/);
      return { ...promoted, output: `${a.output}\n${b.output}` };
    });
    assert.deepEqual([...codes].sort(), [0, 2]);
  });
});

describe("deploys across checkouts and a killed deploy", { concurrency: false }, () => {
  it("two checkouts of the same stack deploying at once", async () => {
    // A second clone with nothing shared but the git server and the state backend, as on another machine.
    const other = cloneProject(rig.sb.git, path.join(rig.dir, "project-2"));
    fs.copyFileSync(path.join(rig.projectDir, `Pulumi.${STACK}.yaml`), path.join(other, `Pulumi.${STACK}.yaml`));
    await scenario("two checkouts of the same stack deploying at once", "fault", [0], async () => {
      const { to } = await target("any");
      await release(to);
      const [a, b] = await Promise.all([deploy(), npmDeploy(STACK, other, rig.sb.pulumiEnv)]);
      const refused = [a, b].find((r) => r.code !== 0);
      const promoted = [a, b].find((r) => r.code === 0);
      assert.ok(refused && promoted, `one promoted, one refused: exits ${a.code}, ${b.code}\n${a.output}\n${b.output}`);
      assert.equal(refused.code, EXIT.refused, refused.output);
      assert.match(refused.output, /REFUSED: another deploy of stack reliability is running \(pid \d+ of /);
      return { ...promoted, output: `${a.output}\n${b.output}` };
    });
  });

  it("the deploy process killed with SIGKILL between the failed up and the rollback, then a second deploy", async () => {
    await scenario("deploy killed with SIGKILL between the failed up and the rollback, then a second deploy", "bad release", [0], async () => {
      const from = await recordedPair(rig.stack);
      await clearExclusions(rig.sb.git);
      const bad: Pair = [rig.sb.images.frontend.find((f) => f !== from[0])!, rig.sb.images.backend.unhealthy];
      await release(bad);
      let killed: Promise<void> | undefined;
      const first = await deploy((line) => {
        if (!killed && /^deploy: rolling back both to the last promoted pair/.test(line)) {
          killed = killDeploys();
        }
      });
      await killed;
      assert.ok(killed, `the deploy never began its rollback:\n${first.output.slice(-3000)}`);
      // Killed: the frontend may serve the failed release beside the backend its host restored.
      const second = await deploy();
      // Whether the killed deploy's lock file stayed depends on how far its pulumi got; either way
      // the second deploy runs (a stale lock of this machine is removed, as deploy-lock's engine test shows).
      assert.match(second.output, /finishing that rollback first/, second.output);
      assert.deepEqual(releaseInGit(), from, "git names the restored pair");
      assert.ok(rollbackCommitOnTop(), "the rollback is recorded in git");
      assert.deepEqual(await recordedPair(rig.stack), from);
      return { ...second, output: `${first.output}\n${second.output}` };
    });
  });
});

describe("hostile input", { concurrency: false }, () => {
  for (const [label, payload] of Object.entries(PAYLOADS)) {
    it(`a release file whose backend reference carries ${label}`, async () => {
      await scenario(`release file: backend tag with ${label}`, "bad input", [2], async () => {
        const from = await recordedPair(rig.stack);
        await clearExclusions(rig.sb.git);
        await release(from);
        const text = serverFile(rig.sb.git).replace(/^ {2}backend: .*$/m, `  backend: ${JSON.stringify(`${rig.sb.registry.host}/backend:${from[1]}${payload}`)}`);
        await commitToServer(rig.sb.git, { [RELEASE_PATH]: text }, "hostile release");
        const r = await deploy();
        assert.match(r.output, /REFUSED before any change: .*data\.backend/);
        await release(from);
        return r;
      }, false);
    });
  }

  it("the next clean deploy after the hostile release files converges", async () => {
    const next = await converges();
    for (const row of pending.splice(0)) {
      row.convergedOnNextRun = next.ok;
      row.noSecretInLogs &&= !leaksSecret(rig.sb, next.log);
    }
    assert.ok(next.ok, next.log.slice(-3000));
  });

  it("config values carrying shell, YAML and over-long payloads, all named at once", async () => {
    await scenario("config: hosts, domain, URL and path with hostile values", "bad input", [2], async () => {
      const bad = {
        "homelab:vmHost": `vm.lan${PAYLOADS["command substitution"]}`,
        "homelab:backendAddress": `vm.lan${PAYLOADS.semicolon}`,
        "homelab:frontendHost": `website.lan${PAYLOADS["YAML document marker"]}`,
        "homelab:publicUrl": `http://website.lan/${PAYLOADS.backticks}`,
        "homelab:registry": `127.0.0.1:5000${PAYLOADS["double quote"]}`,
        "homelab:deployDir": `/opt/${PAYLOADS["very long"]}`,
      };
      const saved = await rig.stack.getAllConfig();
      await rig.stack.setAllConfig(Object.fromEntries(Object.entries(bad).map(([k, v]) => [k, { value: v }])));
      try {
        const r = await deploy();
        for (const key of Object.keys(bad)) {
          assert.match(r.output, new RegExp(`${key}: "`), `${key} is named`);
        }
        return r;
      } finally {
        await rig.stack.setAllConfig(Object.fromEntries(Object.keys(bad).map((k) => [k, { value: saved[k].value }])));
      }
    });
  });

  it("a pinned tag carrying a command substitution", async () => {
    await scenario("config: pinned tag with $(…)", "bad input", [2], async () => {
      await rig.stack.setConfig("homelab:backendTag", { value: `${rig.sb.images.backend.v1}$(touch /tmp/pwned)` });
      try {
        const r = await deploy();
        assert.match(r.output, /REFUSED before any change: .*\n.*homelab:backendTag: "/);
        return r;
      } finally {
        await rig.stack.removeConfig("homelab:backendTag");
      }
    });
  });

  it("a backend env value with a line break, never echoed", async () => {
    await scenario("config: backend env value with a line break", "bad input", [2], async () => {
      const saved = (await rig.stack.getAllConfig())["homelab:backendEnv"].value;
      const canary = `canary-${crypto.randomBytes(6).toString("hex")}`;
      await rig.stack.setConfig("homelab:backendEnv", { value: JSON.stringify({ ...(JSON.parse(saved) as Record<string, string>), EXTRA: `${canary}\nINJECTED=1` }), secret: true });
      try {
        const r = await deploy();
        assert.match(r.output, /REFUSED before any change/);
        assert.match(r.output, /EXTRA/);
        assert.ok(!r.output.includes(canary), "the secret value is not printed");
        return r;
      } finally {
        await rig.stack.setConfig("homelab:backendEnv", { value: saved, secret: true });
      }
    });
  });
});
