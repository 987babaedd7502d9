import { after, before, describe, it } from "node:test";
import * as assert from "node:assert/strict";
import { execFileSync, spawnSync } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as http from "http";
import type { AddressInfo } from "net";
import * as os from "os";
import * as path from "path";
import { EngineEvent, Stack } from "@pulumi/pulumi/automation";
import { EXIT } from "../../deploy/outcome";
import { Sandbox, sandboxStack, startSandbox, stopSandbox, writeRelease } from "../../sandbox/sandbox";
import { HostSnapshot, hostSnapshot, leftoversSince } from "../support/leftovers";
import { kubeClient } from "../../sandbox/kube";
import { runDeploy } from "../support/deploy-run";
import { runDeployCli, userPulumiEnv } from "../support/user-env";
import { RELEASE_PATH, cloneProject, clearExclusions, serverFile } from "../../sandbox/checkout";
import { PAUSE_IMAGE } from "../../sandbox/node";
import { FLAKY_SECONDS } from "../../sandbox/images";
import { copyImageTag } from "../../sandbox/registry";
import { readReleaseState } from "../../lib/release";
import { manualRollback } from "../../deploy/manual-rollback";
import { watch } from "../../deploy/watch";
import { ROLLBACK_TRAILER, trailers } from "../../deploy/rollback-commit";
import { tearDownSandboxStack } from "../support/sandbox-stack";
import { freePort, stopProcess, waitFor } from "../../sandbox/processes";
import { requestReconcile } from "../../sandbox/flux-controllers";
import { ensureDockerEngine } from "../../sandbox/docker-engine";
import { liveStatus } from "../../deploy/live-status";
import type { Condition } from "../../deploy/status";
import { GATE_PROBE_TYPE } from "../../components/health-gate";
import { RestartSource, readRestarts, restartsBetween } from "../../lib/restarts";
import { renderInspectScript } from "../../lib/remote-deploy";
import type { QuickStatus } from "../../deploy/quick-status";
import type { NotifyEvent } from "../../lib/notify";
import { acceptedSessions } from "../../bench/sessions";
import { driftFound } from "../../deploy/outcome";
import { markerIntact, writeMarker } from "../reliability/support";

/*
 * End to end, for real: the sandbox (dockerd, registry, sshd VM, git host, a Kubernetes control
 * plane with a real kubelet node, Traefik), the real engine, and the guarded deploy run from a clone of the git host's repository,
 * through the scenarios a release can take. Releases arrive as commits on the git host, the way
 * image automation makes them.
 */
const STACK = "e2e";
const GATE_DEADLINE_SECONDS = 40;
const REPO = path.resolve(__dirname, "../..");

let dir: string;
let projectDir: string;
let sb: Sandbox;
let stack: Stack;
let started = 0;
let hostBefore: HostSnapshot;
let torn = false;

function timed(name: string, fn: () => Promise<void>): void {
  it(name, async () => {
    const t = Date.now();
    try {
      await fn();
    } catch (e) {
      // Said here too: the runner's own summary can be cut short when it exits.
      process.stderr.write(`e2e: ${name}: FAILED: ${(e as Error).stack ?? String(e)}\n`);
      throw e;
    } finally {
      process.stderr.write(`e2e: ${name}: ${((Date.now() - t) / 1000).toFixed(1)}s\n`);
    }
  });
}

async function outputs(): Promise<Record<string, unknown>> {
  return Object.fromEntries(Object.entries(await stack.outputs()).map(([k, v]) => [k, v.value]));
}

async function health(): Promise<{ status: number; version?: string }> {
  const res = await fetch(`http://${sb.backendHost}:${sb.backendPort}/api/health`, { signal: AbortSignal.timeout(5000) }).catch(() => undefined);
  if (!res) {
    return { status: 0 };
  }
  const body = res.ok ? ((await res.json()) as { version?: string }) : {};
  return { status: res.status, version: body.version };
}

function docker(...args: string[]): string {
  return execFileSync("docker", args, { env: sb.docker.env(), encoding: "utf8" }).trim();
}

function release(frontendTag: string, backendTag: string): Promise<string> {
  return writeRelease(sb, frontendTag, backendTag);
}

/**
 * The deploy's receivers, as a user's webhook endpoint and ntfy server would be: one HTTP server
 * on loopback, a signed webhook on /hook and an ntfy topic on /ntfy/lab.
 */
const HMAC_KEY = crypto.randomBytes(16).toString("hex");
const received: { path: string; headers: http.IncomingHttpHeaders; body: string }[] = [];
let receiver: http.Server | undefined;

async function startReceiver(): Promise<string> {
  receiver = http.createServer((req, res) => {
    let body = "";
    req.on("data", (d: Buffer) => (body += d.toString()));
    req.on("end", () => {
      received.push({ path: req.url ?? "", headers: req.headers, body });
      res.statusCode = 200;
      res.end();
    });
  });
  await new Promise<void>((r) => receiver!.listen(0, "127.0.0.1", r));
  return `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`;
}

/** The webhook's notices since `from` (an index into what was received), each signature checked. */
function notices(from = 0): NotifyEvent[] {
  return received.slice(from).filter((r) => r.path === "/hook").map((r) => {
    assert.equal(r.headers["x-signature"], `sha256=${crypto.createHmac("sha256", HMAC_KEY).update(r.body).digest("hex")}`, "the webhook's body is signed");
    return JSON.parse(r.body) as NotifyEvent;
  });
}

/** The git host's branch: its last commit's message and the release file it holds. */
function server(): { sha: string; message: string; state: ReturnType<typeof readReleaseState>; subjects: string[] } {
  const git = (...args: string[]): string => execFileSync("git", ["--git-dir", sb.git.repository, ...args], { encoding: "utf8" });
  return {
    sha: git("rev-parse", sb.git.branch).trim(),
    message: git("log", "-1", "--format=%B", sb.git.branch),
    state: readReleaseState(serverFile(sb.git), RELEASE_PATH),
    subjects: git("log", "--format=%s", sb.git.branch).trim().split("\n"),
  };
}

/**
 * The rollback commit names the failed part by its own digest: the failed image is another build
 * than the restored one, so the two digests of that part differ.
 */
function assertFailedDigestsDiffer(message: string, part: "frontend" | "backend"): void {
  const digestOf = (line: string): string | undefined => new RegExp(`^${line}:.*\\b${part} [^@,\\s]+@(sha256:[a-f0-9]{64})`, "m").exec(message)?.[1];
  const failed = digestOf("Failed");
  const restored = digestOf("Restored");
  assert.ok(failed && restored, `both digests of the ${part} in:\n${message}`);
  assert.notEqual(failed, restored, `the failed ${part}'s digest is the restored one's:\n${message}`);
}

async function imageRepositoryExclusions(name: string): Promise<string[]> {
  const repo = await kubeClient(sb.kubeconfig).get<{ spec: { exclusionList: string[] } }>(`/apis/image.toolkit.fluxcd.io/v1/namespaces/flux-system/imagerepositories/${name}`);
  return repo!.spec.exclusionList;
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
  hostBefore = hostSnapshot();
  sb = await startSandbox(path.join(dir, "sandbox"), { vmUser: "homelab-e2e", network: "isolated", backendPort: await freePort() });
  projectDir = cloneProject(sb.git, path.join(dir, "project"));
  stack = await sandboxStack(sb, STACK, projectDir);
  // One replica: each healthy rollout waits for one readiness probe (10 s initial delay), not two.
  await stack.setAllConfig({ "homelab:gateDeadlineSeconds": { value: String(GATE_DEADLINE_SECONDS) }, "homelab:frontendReplicas": { value: "1" } });
  const receiverUrl = await startReceiver();
  await stack.setConfig("homelab:notify", {
    value: JSON.stringify([
      { kind: "webhook", url: `${receiverUrl}/hook`, hmacKey: HMAC_KEY },
      { kind: "ntfy", url: `${receiverUrl}/ntfy/lab` },
    ]),
    secret: true,
  });
  process.stderr.write(`e2e: sandbox ready in ${((Date.now() - started) / 1000).toFixed(1)}s\n`);
});

after(async () => {
  receiver?.closeAllConnections();
  receiver?.close();
  try {
    await tearDownSandboxStack(torn ? undefined : stack, STACK, sb, dir);
  } finally {
    process.stderr.write(`e2e: total ${((Date.now() - started) / 1000).toFixed(1)}s\n`);
  }
});

describe("sandbox end to end", { concurrency: false }, () => {
  let firstBoot = "";
  const v1 = (): [string, string] => [sb.images.frontend[0], sb.images.backend.v1];
  const v2 = (): [string, string] => [sb.images.frontend[1], sb.images.backend.v2];

  timed("1. a fresh up, run as a user runs it, passes every gate and publishes URLs and tags", async () => {
    await release(...v1());
    // `npm run deploy` in a process of its own with the user's pulumi on PATH, their PULUMI_HOME and
    // a backend of the test's: none of the toolchain's environment.
    const env = userPulumiEnv(path.join(dir, "user"), { url: sb.pulumiEnv.PULUMI_BACKEND_URL, passphraseFile: sb.pulumiEnv.PULUMI_CONFIG_PASSPHRASE_FILE });
    const r = await runDeployCli(["--stack", STACK, "--cwd", projectDir], env);
    assert.equal(r.code, EXIT.promoted, r.log);
    assert.match(r.log, /Policies:|homelab-guardrails/, "the policy pack ran");
    // Its receivers heard of it: the signed webhook and the ntfy topic.
    assert.deepEqual(notices().map((n) => [n.event, n.stack, n.pair?.frontend, n.pair?.backend]), [["promoted", STACK, ...v1()]]);
    assert.equal(received.find((x) => x.path === "/ntfy/lab")?.headers.title, `${STACK}: promoted frontend ${v1()[0]}, backend ${v1()[1]}`);
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
    // Each gate's soak read its part's restarts, the pods through the API, the container over SSH.
    const deployment = (await stack.exportStack()).deployment as { resources: { type: string; urn: string; outputs?: { result?: { soak?: { restarts?: string } } } }[] };
    const soaks = deployment.resources.filter((res) => res.type === GATE_PROBE_TYPE).map((res) => [res.urn.split("::").pop(), res.outputs?.result?.soak?.restarts]);
    assert.deepEqual(soaks.sort(), [["backend-gate-probe", "none"], ["frontend-gate-probe", "none"]]);
    // What the backend gate's soak reads sees a restart Docker made: the process ends, as in a crash.
    const source: RestartSource = {
      kind: "compose",
      connection: { host: sb.vm.host, port: sb.vm.port, user: sb.vm.user, privateKey: sb.vm.privateKey, hostKey: sb.vm.hostKey },
      inspectScript: renderInspectScript({ deployDir: path.join(sb.vm.workDir, "backend"), project: "backend", files: ["docker-compose.yml", ".env"] }),
      services: ["backend"],
    };
    const before = await readRestarts(source);
    const count = (): number => Number(docker("inspect", "-f", "{{.RestartCount}}", "homelab-sandbox-backend"));
    const counted = count();
    spawnSync("docker", ["exec", "homelab-sandbox-backend", "/bin/busybox", "kill", "-TERM", "1"], { env: sb.docker.env(), stdio: "ignore" });
    await waitFor(() => count() > counted, { what: "Docker restarting the backend", timeoutMs: 60_000, intervalMs: 500 });
    assert.equal(restartsBetween(before, await readRestarts(source)), "backend restarted 1 time(s)");
    await waitFor(async () => (await health()).status === 200, { what: "the backend answering again", timeoutMs: 60_000, intervalMs: 500 });
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

  timed("3. a new tag pair committed to git is promoted and the previous pair recorded", async () => {
    const sha = await release(...v2());
    const r = await run();
    assert.equal(r.code, EXIT.promoted, r.log);
    assert.match(r.log, new RegExp(`from master at ${sha.slice(0, 7)}`), "the deploy fast-forwarded its checkout to the commit");
    const out = await outputs();
    const current = out.release as { frontend: { tag: string }; backend: { tag: string } };
    const previous = out.previousRelease as { frontend: { tag: string }; backend: { tag: string } };
    assert.deepEqual([current.frontend.tag, current.backend.tag], v2());
    assert.deepEqual([previous.frontend.tag, previous.backend.tag], v1());
    const ledger = out.ledger as { result: string; backend: string }[];
    assert.deepEqual(ledger.map((e) => e.result), ["promoted", "promoted"]);
    assert.match(ledger[1].backend, new RegExp(`^${v2()[1]}@sha256:`));
    assert.deepEqual(await health(), { status: 200, version: v2()[1] });
    // Flux's controllers, syncing through the program's GitRepository and Kustomization, bring
    // the same commit's release file to the cluster.
    await requestReconcile(sb.kubeconfig, "GitRepository", "flux-system");
    await requestReconcile(sb.kubeconfig, "Kustomization", "flux-system");
    await waitFor(async () => {
      const cm = await kubeClient(sb.kubeconfig).get<{ data?: Record<string, string> }>("/api/v1/namespaces/flux-system/configmaps/website-release");
      return (cm?.data?.frontend ?? "").includes(v2()[0]) && (cm?.data?.backend ?? "").includes(v2()[1]);
    }, { what: "Flux applying the promoted release file", timeoutMs: 90_000, intervalMs: 1000 });
  });

  for (const bad of ["unhealthy", "crash"] as const) {
    timed(`4. a backend that is ${bad} fails its gate; both roll back and the rollback is a commit in git`, async () => {
      const before = server().subjects.length;
      const heard = received.length;
      const released = await release(sb.images.frontend[0], sb.images.backend[bad]);
      let raced = "";
      // The crashing release also races image automation: a bot commit lands while the rollback runs.
      const r = await runDeploy(STACK, projectDir, bad === "crash" ? {
        onLine: (line) => {
          if (!raced && line.includes("rolling back both")) {
            raced = "pending";
            // Image automation moves the backend to v1 meanwhile: a newer release, not a failed one.
            void release(sb.images.frontend[0], v1()[1]).then((sha) => (raced = sha));
          }
        },
      } : {});
      assert.equal(r.code, EXIT.rolledBack, r.log);
      assert.match(r.log, /ROLLED BACK/);
      assert.match(r.log, /FAILED after [\d.]+s in the backend (gate|deploy)/);
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

      // Git records it: a commit naming stage, reason, both pairs and the time, excluding the bad tag.
      const git = server();
      assert.equal(git.subjects[0], `Roll back to frontend ${v2()[0]}, backend ${v2()[1]}`);
      assert.match(git.message, new RegExp(`The backend (gate|deploy) failed for frontend ${sb.images.frontend[0]}, backend ${sb.images.backend[bad]}`));
      assert.match(git.message, new RegExp(`Restored: frontend ${v2()[0]}@sha256:[a-f0-9]{64}, backend ${v2()[1]}@sha256:`));
      assertFailedDigestsDiffer(git.message, "backend");
      assert.match(git.message, new RegExp(`^This reverts commit ${released}\\.$`, "m"), "the commit names the release commit it undoes");
      assert.match(git.message, /^Reason:\n {2}\S/m);
      assert.match(git.message, /^At: +\d{4}-\d\d-\d\dT/m);
      assert.ok(ROLLBACK_TRAILER in trailers(git.message));
      assert.ok(!git.message.includes(sb.registry.password) && !git.message.includes("hello from the sandbox"), "no secret in the commit");
      assert.ok(git.state.excluded.some((e) => e.image === "backend" && e.tag === sb.images.backend[bad]));
      assert.ok(!git.state.excluded.some((e) => e.image === "frontend"), "the backend's failure does not blame the frontend");
      assert.ok((await imageRepositoryExclusions("backend")).includes(`^${sb.images.backend[bad]}$`), "image automation skips the bad tag");
      // The receivers heard of the rollback: both pairs, the stage, the reason and the commit.
      const told = notices(heard);
      assert.deepEqual(told.map((n) => n.event), ["rolled-back"]);
      assert.deepEqual(told[0].failed, { frontend: sb.images.frontend[0], backend: sb.images.backend[bad] });
      assert.deepEqual(told[0].pair, { frontend: v2()[0], backend: v2()[1] });
      assert.match(told[0].stage ?? "", /^backend (gate|deploy)$/);
      assert.equal(told[0].commit?.sha, git.sha, "the notice names the rollback commit on the branch");
      assert.ok(received.slice(heard).every((x) => !x.body.includes(sb.registry.password) && !x.body.includes("hello from the sandbox")), "no secret in a notification");
      if (bad === "unhealthy") {
        assert.deepEqual(git.state.tags, { frontend: v2()[0], backend: v2()[1] });
        assert.equal(git.subjects.length, before + 2);
        // A deploy from a fresh clone on "another machine" changes nothing. (A real repository
        // commits its stack file; the test's is copied.)
        const fresh = cloneProject(sb.git, path.join(dir, `fresh-${Date.now()}`));
        fs.copyFileSync(path.join(projectDir, `Pulumi.${STACK}.yaml`), path.join(fresh, `Pulumi.${STACK}.yaml`));
        const ledgerBefore = ledger.length;
        const again = await runDeploy(STACK, fresh);
        assert.equal(again.code, EXIT.promoted, again.log);
        assert.equal(((await outputs()).ledger as unknown[]).length, ledgerBefore, "nothing new recorded");
        assert.equal(docker("exec", "homelab-sandbox-backend", "cat", "/data/first-boot.txt"), firstBoot);
      } else {
        // The push raced the bot's commit: the rollback was made again on top of it, never forced.
        assert.match(raced, /^[0-9a-f]{40}$/);
        assert.match(r.log, /made again on top of 1 newer commit\(s\)/);
        assert.equal(git.subjects[1], `Update release: frontend ${sb.images.frontend[0]}, backend ${v1()[1]}`);
        assert.deepEqual(git.state.tags, { frontend: v2()[0], backend: v1()[1] }, "the failed frontend goes back; the bot's newer backend stays, to be deployed next");
      }
    });
  }

  for (const bad of ["unready", "crash"] as const) {
    const what = bad === "unready" ? "never passes its readiness probe" : "crash-loops";
    timed(`4${bad === "unready" ? "c" : "d"}. a frontend that ${what} on the node fails its rollout within the deadline; both roll back`, async () => {
      const good = v2();
      const faulty = sb.images.frontendFaults[bad];
      const released = await release(faulty, v1()[1]);
      const r = await run();
      assert.equal(r.code, EXIT.rolledBack, r.log);
      const failed = /FAILED after ([\d.]+)s in the frontend/.exec(r.log);
      assert.ok(failed, r.log);
      // The rollout's deadline is the gate deadline (the provider's own 5-minute default would
      // exceed the bound below); the rest of the time is the preview and refresh before it.
      assert.match(r.log, /timed out waiting to be Ready/);
      assert.ok(Number(failed[1]) <= GATE_DEADLINE_SECONDS + 150, `failed after ${failed[1]}s`);
      assert.match(r.log, /\[Pod website\/frontend-/, "the evidence names the failing pods");
      assert.match(r.log, bad === "unready" ? /unready|not ready|Readiness/i : /CrashLoopBackOff|back-off|restarting failed container|Error/i);
      const deployment = await kubeClient(sb.kubeconfig).get<{ spec: { template: { spec: { containers: { image: string }[] } } } }>("/apis/apps/v1/namespaces/website/deployments/frontend");
      assert.match(deployment!.spec.template.spec.containers[0].image, new RegExp(`/frontend:${good[0]}@`), "the frontend is back on the last good tag");
      assert.match(await (await fetch(`${sb.ingressUrl}/`)).text(), new RegExp(good[0]), "Traefik serves the last good frontend");
      assert.deepEqual(await health(), { status: 200, version: good[1] }, "the backend never left the last good release");
      // No pod of the failed release is left running on the node.
      const pods = await kubeClient(sb.kubeconfig).get<{ items: { spec: { containers: { image: string }[] }; metadata: { deletionTimestamp?: string } }[] }>("/api/v1/namespaces/website/pods");
      assert.ok(!pods!.items.some((p) => !p.metadata.deletionTimestamp && p.spec.containers[0].image.includes(faulty)), "the failed pods are gone");
      const git = server();
      assert.equal(git.subjects[0], `Roll back to frontend ${good[0]}, backend ${good[1]}`);
      assert.match(git.message, new RegExp(`The frontend (rollout|deploy|gate)? ?failed for frontend ${faulty}`));
      assertFailedDigestsDiffer(git.message, "frontend");
      assert.match(git.message, new RegExp(`^This reverts commit ${released}\\.$`, "m"), "the commit names the release commit it undoes");
      assert.ok(git.state.excluded.some((e) => e.image === "frontend" && e.tag === faulty), "the failed frontend tag is excluded");
      assert.ok(!git.state.excluded.some((e) => e.image === "backend" && e.tag === v1()[1]), "the frontend's failure does not blame the backend");
    });
  }

  timed("4e. a frontend that answers with another build's version fails its gate; both roll back", async () => {
    const good = v2();
    // A stale build pushed under a new tag: v1's page, which names v1's tag in its version marker.
    const stale = `main-5ca1e00-${String(Math.floor(Date.now() / 1000))}`;
    await copyImageTag(sb.registry, "frontend", sb.images.frontend[0], stale);
    const released = await release(stale, good[1]);
    const r = await run();
    assert.equal(r.code, EXIT.rolledBack, r.log);
    assert.match(r.log, /FAILED after [\d.]+s in the frontend gate/);
    assert.match(r.log, new RegExp(`the version \\(meta:app-version\\) is "${sb.images.frontend[0]}", not "${stale}"`));
    assert.match(await (await fetch(`${sb.ingressUrl}/`)).text(), new RegExp(good[0]), "Traefik serves the last good frontend");
    const git = server();
    assert.equal(git.subjects[0], `Roll back to frontend ${good[0]}, backend ${good[1]}`);
    assert.match(git.message, new RegExp(`^This reverts commit ${released}\\.$`, "m"));
    assert.ok(git.state.excluded.some((e) => e.image === "frontend" && e.tag === stale), "the stale tag is excluded");
  });

  timed("4f. a backend that passes its gate, then crash-loops inside the soak, fails it; both roll back", async () => {
    const good = v2();
    // A soak longer than the flaky backend's healthy start, so its first answers pass and the soak catches the crash.
    const soak = await stack.getConfig("homelab:gateSoakSeconds");
    await stack.setConfig("homelab:gateSoakSeconds", { value: String(FLAKY_SECONDS * 2) });
    let r: { code: number; log: string };
    let released: string;
    try {
      released = await release(v1()[0], sb.images.backend.flaky);
      r = await run();
    } finally {
      // The sandbox's own short soak again (not the default minute).
      await stack.setConfig("homelab:gateSoakSeconds", soak);
    }
    assert.equal(r.code, EXIT.rolledBack, r.log);
    assert.match(r.log, /FAILED after [\d.]+s in the backend gate/);
    assert.match(r.log, /health gate failed in its soak: .+ passed, then failed [\d.]+s into the \d+s soak/);
    assert.deepEqual(await health(), { status: 200, version: good[1] });
    assert.match(await (await fetch(`${sb.ingressUrl}/`)).text(), new RegExp(good[0]), "the frontend is back on the last good pair too");
    assert.equal(docker("exec", "homelab-sandbox-backend", "cat", "/data/first-boot.txt"), firstBoot);
    const git = server();
    assert.equal(git.subjects[0], `Roll back to frontend ${good[0]}, backend ${good[1]}`);
    assert.match(git.message, new RegExp(`^This reverts commit ${released}\\.$`, "m"));
    assert.ok(git.state.excluded.some((e) => e.image === "backend" && e.tag === sb.images.backend.flaky));
  });

  timed("5. a missing tag, a malformed tag, an excluded tag and bad config values are refused before any change", async () => {
    const before = await outputs();
    await release(sb.images.frontend[1], "main-1234567-1999999999");
    let r = await run();
    assert.equal(r.code, EXIT.refused, r.log);
    assert.match(r.log, /backend:main-1234567-1999999999 is not in the registry/);
    await release(sb.images.frontend[1], "latest");
    r = await run();
    assert.equal(r.code, EXIT.refused, r.log);
    assert.match(r.log, /tag "latest" does not match the release pattern/);
    // A person commits a rolled-back tag: refused, naming it.
    await release(sb.images.frontend[1], sb.images.backend.unhealthy);
    r = await run();
    assert.equal(r.code, EXIT.refused, r.log);
    assert.match(r.log, new RegExp(`data.backend: tag ${sb.images.backend.unhealthy} is excluded: it was rolled back at`));
    await release(...v2());
    await stack.setConfig("homelab:vmPort", { value: "70000" });
    r = await run();
    await stack.setConfig("homelab:vmPort", { value: String(sb.vm.port) });
    assert.equal(r.code, EXIT.refused, r.log);
    assert.match(r.log, /homelab:vmPort: "70000" is not an integer from 1 to 65535/);
    // The setting that once turned host-key checking off is refused, naming what to do instead.
    await release(...v1());
    await stack.setConfig("homelab:vmSkipHostKeyCheck", { value: "true" });
    r = await run();
    await stack.removeConfig("homelab:vmSkipHostKeyCheck");
    await release(...v2());
    assert.equal(r.code, EXIT.refused, r.log);
    assert.match(r.log, /homelab:vmSkipHostKeyCheck: "true" no longer turns host-key checking off/);
    assert.deepEqual((await outputs()).release, before.release);
    assert.deepEqual(await health(), { status: 200, version: v2()[1] });
  });

  timed("6. an unreachable VM stops the deploy as the platform's failure; a wrong host key and a wrong SSH key are refused; nothing changes", async () => {
    const before = await outputs();
    const other = sshKey();
    const cases: [string, Record<string, { value: string; secret?: boolean }>, RegExp, number][] = [
      ["unreachable", { "homelab:vmPort": { value: String(await freePort()) } }, new RegExp(`PLATFORM FAILURE before any change .*\\(backend VM \\(SSH\\)\\).*cannot reach homelab-e2e@${sb.vm.host.replace(/\./g, "\\.")}`), EXIT.platform],
      ["host key", { "homelab:vmHostKey": { value: other.hostKey } }, /not the pinned ssh-ed25519 .*refusing to connect/, EXIT.refused],
      ["ssh key", { "homelab:vmPrivateKey": { value: other.privateKey, secret: true } }, /refused the SSH key/, EXIT.refused],
    ];
    for (const [label, change, expected, exit] of cases) {
      await release(...v1());
      await stack.setAllConfig(change);
      const heard = received.length;
      const r = await run();
      await stack.setAllConfig({
        "homelab:vmPort": { value: String(sb.vm.port) },
        "homelab:vmHostKey": { value: sb.vm.hostKey },
        "homelab:vmPrivateKey": { value: sb.vm.privateKey, secret: true },
      });
      assert.equal(r.code, exit, `${label}: ${r.log}`);
      assert.match(r.log, expected, label);
      // The platform's failure is told; a refusal (nothing happened) is not.
      assert.deepEqual(notices(heard).map((n) => [n.event, n.failed?.backend]), exit === EXIT.platform ? [["platform-failure", v1()[1]]] : [], label);
      assert.deepEqual((await outputs()).release, before.release, label);
      assert.deepEqual(await health(), { status: 200, version: v2()[1] }, label);
    }
    await release(...v2());
  });

  timed("7. npm run rollback makes the same kind of commit and deploys it; npm run releases shows the history", async () => {
    const heard = received.length;
    const code = await manualRollback({ stack: STACK, workDir: projectDir, to: { frontend: v1()[0], backend: v1()[1] }, reason: "e2e: checkout page broken" });
    assert.equal(code, EXIT.promoted);
    assert.deepEqual(await health(), { status: 200, version: v1()[1] });
    const git = server();
    // Told as a rollback with its reason and commit, then as the promotion of the pair it restores.
    assert.deepEqual(notices(heard).map((n) => [n.event, n.pair?.backend, n.reason ?? "", n.commit?.sha ?? ""]), [
      ["rolled-back", v1()[1], "e2e: checkout page broken", git.sha],
      ["promoted", v1()[1], "", ""],
    ]);
    assert.equal(git.subjects[0], `Roll back to frontend ${v1()[0]}, backend ${v1()[1]}`);
    assert.match(git.message, new RegExp(`Rolled back by hand from frontend ${v2()[0]}, backend ${v2()[1]}\\.`));
    assert.match(git.message, /Reason:\n {2}e2e: checkout page broken/);
    assert.deepEqual(git.state.tags, { frontend: v1()[0], backend: v1()[1] });
    assert.ok(git.state.excluded.some((e) => e.image === "backend" && e.tag === v2()[1]), "the tags it left are excluded");
    // Through the package's bin, as a script would run it.
    const history = execFileSync(process.execPath, [path.join(REPO, "bin", "homelab.js"), "releases", "--stack", STACK, "--cwd", projectDir, "--json"], { encoding: "utf8", env: process.env });
    const entries = JSON.parse(history) as { kind: string; frontend: string; backend: string; reason?: string; gates?: { frontendMs: number } }[];
    assert.equal(entries[0].kind, "rollback");
    assert.deepEqual([entries[0].frontend, entries[0].backend], v1());
    assert.match(entries[0].reason ?? "", /^manual rollback: e2e: checkout page broken$/);
    assert.ok(entries.some((e) => e.kind === "rollback" && /^backend (gate|deploy): /.test(e.reason ?? "")), "the automatic rollbacks are listed with their reasons");
    assert.ok(entries.some((e) => e.kind === "release" && e.backend === v2()[1] && typeof e.gates?.frontendMs === "number"), "promotions carry their gate timings");
    // The same history as one page: a row per entry, a chart per promotion.
    const pageFile = path.join(os.tmpdir(), `homelab-e2e-releases-${process.pid}.html`);
    try {
      execFileSync(process.execPath, [path.join(REPO, "bin", "homelab.js"), "releases", "--stack", STACK, "--cwd", projectDir, "--html", pageFile], { encoding: "utf8", env: process.env });
      const pageText = fs.readFileSync(pageFile, "utf8");
      assert.deepEqual([...pageText.matchAll(/<tr class="[^"]*" data-kind="(\w+)">/g)].map((m) => m[1]), entries.map((e) => e.kind));
      assert.equal((pageText.match(/<svg class="gates"/g) ?? []).length, entries.filter((e) => e.gates).length);
    } finally {
      fs.rmSync(pageFile, { force: true });
    }
  });

  timed("8. --watch deploys each new commit on the branch, one at a time", async () => {
    await clearExclusions(sb.git);
    const outcomes: { code: number; head: string }[] = [];
    const stop = new AbortController();
    const watching = watch({ stack: STACK, workDir: projectDir, intervalSeconds: 1, signal: stop.signal, onOutcome: (code, head) => outcomes.push({ code, head }) });
    try {
      const waitFor = async (n: number): Promise<void> => {
        for (let i = 0; i < 300 && outcomes.length < n; i++) {
          await new Promise((r) => setTimeout(r, 1000));
        }
      };
      await waitFor(1);
      const bot = await release(...v2());
      await waitFor(2);
      assert.equal(outcomes.length, 2, JSON.stringify(outcomes));
      assert.deepEqual(outcomes[1], { code: EXIT.promoted, head: bot });
      assert.deepEqual(await health(), { status: 200, version: v2()[1] });
    } finally {
      stop.abort();
      await watching;
    }
  });

  timed("8a. a backend that crashes after its promotion, inside its watch window, is rolled back by --watch", async () => {
    const good = v2();
    const outcomes: { code: number; head: string }[] = [];
    const stop = new AbortController();
    const watching = watch({ stack: STACK, workDir: projectDir, intervalSeconds: 2, checkEverySeconds: 600, signal: stop.signal, onOutcome: (code, head) => outcomes.push({ code, head }) });
    const waitFor = async (what: string, found: () => boolean): Promise<void> => {
      for (let i = 0; i < 300 && !found(); i++) {
        await new Promise((r) => setTimeout(r, 1000));
      }
      assert.ok(found(), `${what}: ${JSON.stringify(outcomes)}`);
    };
    let released = "";
    try {
      await waitFor("the first look", () => outcomes.length >= 1);
      released = await release(good[0], v1()[1]);
      await waitFor("the new backend deployed", () => outcomes.some((o) => o.head === released));
      assert.deepEqual(outcomes.find((o) => o.head === released), { code: EXIT.promoted, head: released });
      // The promoted backend's process ends (as a crash would), and Docker restarts its container.
      // The exec may be killed with the container it stops, so its own exit says nothing: the
      // restart count does.
      const restarts = (): number => Number(docker("inspect", "-f", "{{.RestartCount}}", "homelab-sandbox-backend"));
      const before = restarts();
      spawnSync("docker", ["exec", "homelab-sandbox-backend", "/bin/busybox", "kill", "-TERM", "1"], { env: sb.docker.env(), stdio: "ignore" });
      await waitFor("Docker restarting the backend", () => restarts() > before);
      await waitFor("the watch window's rollback", () => outcomes.some((o) => o.head === "watch-window rollback"));
      assert.equal(outcomes.find((o) => o.head === "watch-window rollback")?.code, EXIT.promoted, "the restored pair deployed");
    } finally {
      stop.abort();
      await watching;
    }
    assert.deepEqual(await health(), { status: 200, version: good[1] });
    const git = server();
    assert.equal(git.subjects[0], `Roll back to frontend ${good[0]}, backend ${good[1]}`);
    assert.equal(trailers(git.message)["Homelab-Failed-Stage"], "backend in its watch window");
    assert.match(git.message, /restarted \d+ time\(s\) since the release started it|service backend is (restarting|exited)/);
    assert.match(git.message, new RegExp(`^This reverts commit ${released}\\.$`, "m"));
    assert.ok(git.state.excluded.some((e) => e.image === "backend" && e.tag === v1()[1]));
    assert.ok(!git.state.excluded.some((e) => e.image === "frontend"), "the frontend did not change, so it is not blamed");
  });

  describe("8b. every run checks what is live", { concurrency: false }, () => {
    const marker = `live-${Date.now()}`;
    const deployDir = (): string => path.join(sb.vm.workDir, "backend");
    const kube = (): ReturnType<typeof kubeClient> => kubeClient(sb.kubeconfig);

    /** The fault is found by `status` (as `condition`) and by a refresh, then repaired by the next deploy with every gate passing. */
    async function foundAndRepaired(finding: RegExp, condition: Condition): Promise<void> {
      const heard = received.length;
      const status = await liveStatus(stack, projectDir);
      assert.equal(status.agree, false, JSON.stringify(status, null, 2));
      assert.equal(status.condition, condition, JSON.stringify(status, null, 2));
      assert.ok(
        status.parts.some((p) => p.findings.some((f) => finding.test(f))),
        `status names the fault: ${JSON.stringify(status.parts.map((p) => p.findings))}`,
      );
      const events: EngineEvent[] = [];
      await stack.previewRefresh({ onEvent: (e) => events.push(e), color: "never" });
      const drift = driftFound(events);
      assert.ok(drift.some((d) => finding.test(d)), `refresh shows the drift: ${JSON.stringify(drift)}`);
      const r = await run();
      assert.equal(r.code, EXIT.promoted, r.log);
      assert.match(r.log, /REPAIRED in [\d.]+s, every gate passing/);
      const told = notices(heard);
      assert.deepEqual(told.map((n) => [n.event, n.pair?.backend]), [["repaired", v2()[1]]]);
      assert.match(told[0].reason ?? "", finding);
      assert.deepEqual(await health(), { status: 200, version: v2()[1] });
      assert.ok(markerIntact(sb, marker), "the data volume kept its marker");
      const after = await liveStatus(stack, projectDir);
      assert.equal(after.agree, true, JSON.stringify(after, null, 2));
    }

    timed("a healthy no-op deploy runs no remote deploy and status agrees", async () => {
      writeMarker(sb, marker);
      const heard = received.length;
      const r = await run();
      assert.deepEqual(notices(heard), [], "a deploy that changed nothing tells no one");
      assert.equal(r.code, EXIT.promoted, r.log);
      assert.doesNotMatch(r.log, /REPAIRED|no longer runs/);
      assert.doesNotMatch(r.log, /backend-deploy\s+(updating|updated)|vps-compose-deploy\s+(updating|updated)/, "no remote deploy ran");
      // `npx homelab status --json`, as the README has scripts run it: stdout holds only the JSON.
      const cli = spawnSync("npx", ["--no", "homelab", "status", "--stack", STACK, "--cwd", projectDir, "--json"], {
        cwd: REPO,
        env: { ...process.env, ...sb.pulumiEnv },
        encoding: "utf8",
      });
      assert.equal(cli.status, 0, cli.stderr.slice(-3000));
      const parsed = JSON.parse(cli.stdout) as { agree: boolean; parts: { part: string }[] };
      assert.equal(parsed.agree, true);
      assert.deepEqual(parsed.parts.map((p) => p.part), ["frontend", "frontend-gate", "backend", "backend-gate"]);

      // The quick glance: the state, one probe per gate URL, nothing over SSH.
      const sshdLog = path.join(sb.vm.workDir, "..", "sshd.log");
      const sessions = acceptedSessions(sshdLog);
      assert.ok(sessions > 0, `the VM's sshd log ${sshdLog} counts the deploys' sessions`);
      const started = Date.now();
      const quick = spawnSync(process.execPath, [path.join(REPO, "bin", "homelab.js"), "status", "--quick", "--stack", STACK, "--cwd", projectDir, "--json"], {
        env: { ...process.env, ...sb.pulumiEnv },
        encoding: "utf8",
      });
      console.log(`# status --quick answered in ${((Date.now() - started) / 1000).toFixed(1)} s`);
      assert.equal(quick.status, 0, quick.stderr.slice(-3000));
      const glance = JSON.parse(quick.stdout) as QuickStatus;
      assert.equal(glance.condition, "agrees");
      assert.equal(glance.recorded.backend?.split("@")[0], v2()[1]);
      assert.deepEqual(glance.gates.map((g) => [g.part, g.condition]), [["frontend-gate", "agrees"], ["backend-gate", "agrees"]]);
      assert.equal(glance.frozen, undefined);
      // The last notification the deploys sent, from the stack's tag: the last the webhook heard.
      const lastHeard = notices().pop();
      assert.ok(lastHeard, "the deploys notified the receiver");
      const receiverHost = `127.0.0.1:${(receiver!.address() as AddressInfo).port}`;
      assert.deepEqual(glance.lastNotification, { event: lastHeard.event, at: lastHeard.at, delivered: [`webhook ${receiverHost}`, `ntfy ${receiverHost}`], failed: [] });
      // The ImagePolicies read from the cluster (the kubeconfig's CA and client files read in). This
      // sandbox runs no image controllers, so no policy has selected a tag.
      assert.equal(glance.automationProblem, undefined);
      assert.deepEqual(glance.automation.map((p) => [p.policy, p.problem, p.selected, p.next]).sort(), [
        ["flux-system/backend", undefined, undefined, false],
        ["flux-system/frontend", undefined, undefined, false],
      ]);
      assert.deepEqual(glance.automation.map((p) => p.releaseFile).sort(), [...v2()].sort());
      assert.equal(acceptedSessions(sshdLog), sessions, "the glance opened no SSH session on the VM");

      // Logs: the backend's compose project over the pinned SSH.
      const logs = (...args: string[]): ReturnType<typeof spawnSync> =>
        spawnSync(process.execPath, [path.join(REPO, "bin", "homelab.js"), "logs", "--stack", STACK, "--cwd", projectDir, ...args], { env: { ...process.env, ...sb.pulumiEnv }, encoding: "utf8", timeout: 120_000 });
      const backendLogs = logs("backend", "--tail", "50");
      assert.equal(backendLogs.status, 0, String(backendLogs.stderr));
      assert.match(String(backendLogs.stdout), new RegExp(`backend ${v2()[1]} listening on`));
      // The frontend's pods, through the API server: each line after its pod's name and time.
      const frontendLogs = logs("frontend", "--tail", "20");
      assert.equal(frontendLogs.status, 0, String(frontendLogs.stderr));
      assert.match(String(frontendLogs.stdout), new RegExp(`^frontend-\\S+ \\S+ serving /www on port \\d+ as ${v2()[0]}$`, "m"));
      assert.ok(![backendLogs.stdout, frontendLogs.stdout].some((o) => String(o).includes(sb.registry.password)));
    });

    timed("the backend container stopped by hand", async () => {
      docker("stop", "homelab-sandbox-backend");
      await foundAndRepaired(/service backend is exited/, "down");
    });

    timed("the frontend Deployment scaled to zero by hand", async () => {
      await kube().patch("/apis/apps/v1/namespaces/website/deployments/frontend", { spec: { replicas: 0 } });
      // Traefik drops a Service without endpoints: `/` has no route once no pod is ready.
      for (let i = 0; i < 60; i++) {
        const res = await fetch(`${sb.ingressUrl}/`, { signal: AbortSignal.timeout(5000) }).catch(() => undefined);
        if (res?.status === 404 || res?.status === 503) {
          break;
        }
        await new Promise((r) => setTimeout(r, 500));
      }
      await foundAndRepaired(/scaled to 0|frontend-gate-probe: .*status (404|503)/, "down");
    });

    timed("the backend's compose file edited on the VM", async () => {
      fs.appendFileSync(path.join(deployDir(), "docker-compose.yml"), "# edited by hand\n");
      await foundAndRepaired(/docker-compose\.yml on the host differs from the recorded release/, "drift");
      assert.doesNotMatch(fs.readFileSync(path.join(deployDir(), "docker-compose.yml"), "utf8"), /edited by hand/);
    });

    timed("the VM's Docker engine restarted: status tells what runs as it is, and a deploy leaves it healthy", async () => {
      const dockerDir = path.join(dir, "sandbox", "docker");
      await stopProcess(dockerDir, "dockerd", 30_000);
      await ensureDockerEngine(dockerDir, { network: "isolated" });
      // What really runs, read apart from the program: the backend's container and its health.
      await new Promise((r) => setTimeout(r, 3000));
      const state = docker("inspect", "-f", "{{.State.Status}}", "homelab-sandbox-backend");
      const status = await liveStatus(stack, projectDir);
      const backend = status.parts.find((p) => p.part === "backend")!;
      assert.equal(backend.findings.length === 0, state === "running", `status says ${JSON.stringify(backend)} while the container is ${state}`);
      const r = await run();
      assert.equal(r.code, EXIT.promoted, r.log);
      assert.deepEqual(await health(), { status: 200, version: v2()[1] });
      assert.ok(markerIntact(sb, marker), "the data volume kept its marker");
      assert.equal((await liveStatus(stack, projectDir)).agree, true);
    });
  });

  timed("9. destroy removes what the stack created and keeps the data volume", async () => {
    await stack.destroy({ color: "never" });
    assert.equal(docker("ps", "-aq", "--filter", "name=homelab-sandbox-backend"), "");
    assert.match(docker("volume", "ls", "--format", "{{.Name}}"), /backend-data/);
    assert.equal((await health()).status, 0);
  });

  timed("10. stopping the sandbox leaves no process, mount, network interface, address, iptables chain or container", async () => {
    const sandboxDir = path.join(dir, "sandbox");
    // A pod running at stop time (the node's own pause image: no registry or pull secret needed
    // now that the stack is gone).
    const kube = kubeClient(sb.kubeconfig);
    await kube.post("/api/v1/namespaces/default/pods", {
      apiVersion: "v1", kind: "Pod", metadata: { name: "left-running" },
      spec: { automountServiceAccountToken: false, containers: [{ name: "holder", image: PAUSE_IMAGE, imagePullPolicy: "Never" }] },
    });
    await waitFor(async () => (await kube.get<{ status?: { phase?: string } }>("/api/v1/namespaces/default/pods/left-running"))?.status?.phase === "Running",
      { what: "a pod running on the node", timeoutMs: 60_000, intervalMs: 500 });
    // This sandbox's own interfaces: the node's bridge and the pods' veths on it, the VM's address.
    const own = [sb.node.bridge, ...execFileSync("ip", ["-o", "link", "show", "master", sb.node.bridge], { encoding: "utf8" })
      .split("\n").map((l) => l.split(":")[1]?.trim().split("@")[0] ?? "").filter(Boolean)];
    assert.ok(own.length > 1, `the running pod has a veth on ${sb.node.bridge}: ${own.join(", ")}`);
    await tearDownSandboxStack(stack, STACK, sb, undefined);
    torn = true;
    await stopSandbox(sandboxDir, () => undefined);
    const after = hostSnapshot();
    assert.deepEqual(own.filter((l) => after.links.includes(l)), [], "the node's interfaces are gone");
    assert.ok(!after.addresses.some((a) => a.includes(` ${sb.vm.host}/`)), `the VM's address ${sb.vm.host} is gone`);
    // Other sandboxes on the machine (the other suites' beside this one, a developer's) may add
    // interfaces of their own meanwhile, and an engine with Docker's default networking its
    // DOCKER chains: this sandbox's engine is isolated and makes none. Every kubelet on a host
    // makes and shares the same three canary chains, so while another sandbox's node runs they
    // belong to no one node (the sandbox suite's node test, with no other kubelet running, checks
    // that a node removes them). Every other chain, mount and process is compared as a whole.
    const sharedByKubelets = /^chains: \S+ \S+ KUBE-(KUBELET-CANARY|IPTABLES-HINT|FIREWALL)$/;
    assert.deepEqual(leftoversSince(hostBefore, after, sandboxDir).filter((l) => !/^(links|addresses): |^chains: \S+ \S+ DOCKER(-\S+)?$/.test(l) && !sharedByKubelets.test(l)), []);
    assert.equal(fs.existsSync(sandboxDir), false);
  });
});
