import { after, before, describe, it } from "node:test";
import * as assert from "node:assert/strict";
import { execFileSync, spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { EngineEvent, Stack } from "@pulumi/pulumi/automation";
import { EXIT } from "../../deploy/outcome";
import { Sandbox, sandboxStack, startSandbox, writeRelease } from "../../sandbox/sandbox";
import { kubeClient } from "../../sandbox/kube";
import { runDeploy } from "../support/deploy-run";
import { runDeployCli, userPulumiEnv } from "../support/user-env";
import { linkProgram } from "../support/local-stack";
import { tearDownSandboxStack } from "../support/sandbox-stack";
import { freePort } from "../../sandbox/processes";

/*
 * End to end, for real: the sandbox (dockerd, registry, sshd VM, kwok cluster, ingress
 * stand-in), the real engine, and the guarded deploy, through the scenarios a release can take.
 */
const STACK = "e2e";

let dir: string;
let projectDir: string;
let sb: Sandbox;
let stack: Stack;
let started = 0;

function timed(name: string, fn: () => Promise<void>): void {
  it(name, async () => {
    const t = Date.now();
    try {
      await fn();
    } finally {
      process.stderr.write(`e2e: ${name}: ${((Date.now() - t) / 1000).toFixed(1)}s\n`);
    }
  });
}

async function outputs(): Promise<Record<string, unknown>> {
  return Object.fromEntries(Object.entries(await stack.outputs()).map(([k, v]) => [k, v.value]));
}

async function health(): Promise<{ status: number; version?: string }> {
  const res = await fetch(`http://127.0.0.1:${sb.backendPort}/api/health`, { signal: AbortSignal.timeout(5000) }).catch(() => undefined);
  if (!res) {
    return { status: 0 };
  }
  const body = res.ok ? ((await res.json()) as { version?: string }) : {};
  return { status: res.status, version: body.version };
}

function docker(...args: string[]): string {
  return execFileSync("docker", args, { env: sb.docker.env(), encoding: "utf8" }).trim();
}

function release(frontendTag: string, backendTag: string): void {
  writeRelease(sb.releaseFile, sb.images, frontendTag, backendTag);
}

function run(): Promise<{ code: number; log: string }> {
  return runDeploy(STACK, projectDir);
}

function sshKey(): { privateKey: string; hostKey: string } {
  const file = path.join(dir, `key-${Date.now()}`);
  spawnSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", file]);
  const pub = fs.readFileSync(`${file}.pub`, "utf8").split(" ").slice(0, 2).join(" ");
  return { privateKey: fs.readFileSync(file, "utf8"), hostKey: pub };
}

before(async () => {
  started = Date.now();
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "homelab-e2e-"));
  projectDir = path.join(dir, "project");
  fs.mkdirSync(projectDir);
  linkProgram(projectDir);
  sb = await startSandbox(path.join(dir, "sandbox"), { vmUser: "homelab-e2e", network: "isolated", backendPort: await freePort() });
  stack = await sandboxStack(sb, STACK, projectDir);
  await stack.setAllConfig({ "homelab:gateDeadlineSeconds": { value: "25" } });
  process.stderr.write(`e2e: sandbox ready in ${((Date.now() - started) / 1000).toFixed(1)}s\n`);
});

after(async () => {
  try {
    await tearDownSandboxStack(stack, STACK, sb, dir);
  } finally {
    process.stderr.write(`e2e: total ${((Date.now() - started) / 1000).toFixed(1)}s\n`);
  }
});

describe("sandbox end to end", { concurrency: false }, () => {
  let firstBoot = "";
  const v1 = (): [string, string] => [sb.images.frontend[0], sb.images.backend.v1];
  const v2 = (): [string, string] => [sb.images.frontend[1], sb.images.backend.v2];

  timed("1. a fresh up, run as a user runs it, passes every gate and publishes URLs and tags", async () => {
    release(...v1());
    // `npm run deploy` in a process of its own with the user's pulumi on PATH, their PULUMI_HOME and
    // a backend of the test's: none of the toolchain's environment.
    const env = userPulumiEnv(path.join(dir, "user"), { url: sb.pulumiEnv.PULUMI_BACKEND_URL, passphraseFile: sb.pulumiEnv.PULUMI_CONFIG_PASSPHRASE_FILE });
    const r = await runDeployCli(["--stack", STACK, "--cwd", projectDir], env);
    assert.equal(r.code, EXIT.promoted, r.log);
    assert.match(r.log, /Policies:|homelab-guardrails/, "the policy pack ran");
    assert.match(r.log, /PROMOTED in [\d.]+s: frontend \S+, backend \S+/);
    const out = await outputs();
    assert.equal(out.frontendUrl, `${sb.ingressUrl}/`);
    assert.equal(out.apiUrl, `${sb.ingressUrl}/api`);
    assert.match(String(out.backendImage), new RegExp(`/backend:${v1()[1]}@sha256:`));
    assert.match(String(out.frontendImage), new RegExp(`/frontend:${v1()[0]}@sha256:`));
    assert.deepEqual(await health(), { status: 200, version: v1()[1] });
    const viaIngress = (await (await fetch(`${sb.ingressUrl}/api/health`)).json()) as { version: string };
    assert.equal(viaIngress.version, v1()[1]);
    assert.match(await (await fetch(`${sb.ingressUrl}/`)).text(), new RegExp(v1()[0]));
    firstBoot = docker("exec", "homelab-sandbox-backend", "cat", "/data/first-boot.txt");
    assert.ok(firstBoot.length > 0);
  });

  timed("2. up again with nothing changed changes nothing and runs no remote command", async () => {
    const events: EngineEvent[] = [];
    const r = await stack.up({ onEvent: (e) => events.push(e), color: "never" });
    const changes = Object.entries(r.summary.resourceChanges ?? {}).filter(([op]) => op !== "same");
    assert.deepEqual(changes, []);
    const remote = events.filter((e) => e.resOutputsEvent?.metadata.type === "pulumi-nodejs:dynamic/homelab:RemoteScript");
    assert.ok(remote.length >= 2);
    assert.ok(remote.every((e) => e.resOutputsEvent?.metadata.op === "same"));
  });

  timed("3. a new tag pair is promoted and the previous pair recorded", async () => {
    release(...v2());
    const r = await run();
    assert.equal(r.code, EXIT.promoted, r.log);
    const out = await outputs();
    const current = out.release as { frontend: { tag: string }; backend: { tag: string } };
    const previous = out.previousRelease as { frontend: { tag: string }; backend: { tag: string } };
    assert.deepEqual([current.frontend.tag, current.backend.tag], v2());
    assert.deepEqual([previous.frontend.tag, previous.backend.tag], v1());
    const ledger = out.ledger as { result: string; backend: string }[];
    assert.deepEqual(ledger.map((e) => e.result), ["promoted", "promoted"]);
    assert.match(ledger[1].backend, new RegExp(`^${v2()[1]}@sha256:`));
    assert.deepEqual(await health(), { status: 200, version: v2()[1] });
  });

  for (const bad of ["unhealthy", "crash"] as const) {
    timed(`4. a backend that is ${bad} fails its gate and both roll back to the last good pair`, async () => {
      release(sb.images.frontend[0], sb.images.backend[bad]);
      const r = await run();
      assert.equal(r.code, EXIT.rolledBack, r.log);
      assert.match(r.log, /ROLLED BACK/);
      assert.deepEqual(await health(), { status: 200, version: v2()[1] });
      const out = await outputs();
      const current = out.release as { frontend: { tag: string }; backend: { tag: string } };
      assert.deepEqual([current.frontend.tag, current.backend.tag], v2(), "outputs still show the last good pair");
      assert.match(String(out.frontendImage), new RegExp(`/frontend:${v2()[0]}@`));
      const deployment = await kubeClient(sb.kubeconfig).get<{ spec: { template: { spec: { containers: { image: string }[] } } } }>("/apis/apps/v1/namespaces/website/deployments/frontend");
      assert.match(deployment!.spec.template.spec.containers[0].image, new RegExp(`/frontend:${v2()[0]}@`), "the frontend is back on the previous tag");
      assert.equal(docker("exec", "homelab-sandbox-backend", "cat", "/data/first-boot.txt"), firstBoot);
      const ledger = out.ledger as { result: string; failed?: { backend: string } }[];
      assert.equal(ledger[ledger.length - 1].result, "rolled-back");
      assert.equal(ledger[ledger.length - 1].failed?.backend, sb.images.backend[bad]);
      assert.ok((out.imageAutomationExclusions as string[]).some((x) => x.includes(sb.images.backend[bad])));
      // The next deploy of the release file's new pair releases the pin.
      release(...v2());
    });
  }

  timed("5. a missing tag, a malformed tag, a bad config value and a plan the policy pack rejects are refused before any change", async () => {
    const before = await outputs();
    release(sb.images.frontend[1], "main-1234567-1999999999");
    let r = await run();
    assert.equal(r.code, EXIT.refused, r.log);
    assert.match(r.log, /backend:main-1234567-1999999999 is not in the registry/);
    release(sb.images.frontend[1], "latest");
    r = await run();
    assert.equal(r.code, EXIT.refused, r.log);
    assert.match(r.log, /tag "latest" does not match the release pattern/);
    release(...v2());
    await stack.setConfig("homelab:vmPort", { value: "70000" });
    r = await run();
    await stack.setConfig("homelab:vmPort", { value: String(sb.vm.port) });
    assert.equal(r.code, EXIT.refused, r.log);
    assert.match(r.log, /homelab:vmPort: "70000" is not an integer from 1 to 65535/);
    // Valid config, but a plan the mandatory policy pack rejects: refused before anything changes.
    release(...v1());
    await stack.setConfig("homelab:vmSkipHostKeyCheck", { value: "true" });
    r = await run();
    await stack.removeConfig("homelab:vmSkipHostKeyCheck");
    release(...v2());
    assert.equal(r.code, EXIT.refused, r.log);
    assert.match(r.log, /policy homelab-guardrails\/remote-host-key-pinned/);
    assert.deepEqual((await outputs()).release, before.release);
    assert.deepEqual(await health(), { status: 200, version: v2()[1] });
  });

  timed("6. an unreachable VM, a wrong host key and a wrong SSH key are refused with nothing changed", async () => {
    const before = await outputs();
    const other = sshKey();
    const cases: [string, Record<string, { value: string; secret?: boolean }>, RegExp][] = [
      ["unreachable", { "homelab:vmPort": { value: String(await freePort()) } }, /cannot reach homelab-e2e@127\.0\.0\.1/],
      ["host key", { "homelab:vmHostKey": { value: other.hostKey } }, /not the pinned ssh-ed25519 .*refusing to connect/],
      ["ssh key", { "homelab:vmPrivateKey": { value: other.privateKey, secret: true } }, /refused the SSH key/],
    ];
    for (const [label, change, expected] of cases) {
      release(...v1());
      await stack.setAllConfig(change);
      const r = await run();
      await stack.setAllConfig({
        "homelab:vmPort": { value: String(sb.vm.port) },
        "homelab:vmHostKey": { value: sb.vm.hostKey },
        "homelab:vmPrivateKey": { value: sb.vm.privateKey, secret: true },
      });
      assert.equal(r.code, EXIT.refused, `${label}: ${r.log}`);
      assert.match(r.log, expected, label);
      assert.deepEqual((await outputs()).release, before.release, label);
      assert.deepEqual(await health(), { status: 200, version: v2()[1] }, label);
    }
    release(...v2());
  });

  timed("7. destroy removes what the stack created and keeps the data volume", async () => {
    await stack.destroy({ color: "never" });
    assert.equal(docker("ps", "-aq", "--filter", "name=homelab-sandbox-backend"), "");
    assert.match(docker("volume", "ls", "--format", "{{.Name}}"), /backend-data/);
    assert.equal((await health()).status, 0);
  });
});
