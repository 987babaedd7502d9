import { after, before, describe, it } from "node:test";
import * as assert from "node:assert/strict";
import { execFileSync, spawn, spawnSync } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as http from "http";
import * as https from "https";
import * as net from "net";
import * as os from "os";
import * as path from "path";
import { EngineEvent, Stack, UpResult } from "@pulumi/pulumi/automation";
import { Sandbox, sandboxStack, startSandbox, vpsConfig } from "../../sandbox/sandbox";
import { freePort } from "../../sandbox/processes";
import { VPS_APP_PORT, VPS_SELF_UPDATE_LOG, VPS_WEBHOOK_PATH, tagAppImage } from "../../sandbox/vps-images";
import { EXIT, driftFound } from "../../deploy/outcome";
import { liveStatus } from "../../deploy/live-status";
import { runDeploy } from "../support/deploy-run";
import { linkProgram } from "../../sandbox/checkout";
import { tearDownSandboxStack } from "../support/sandbox-stack";

/*
 * The VPS part end to end, for real: a VPS-only stack deployed over SSH to the sandbox's second
 * sshd host, a real Caddy (Debian's binary in a locally built image) terminating HTTPS with its
 * internal CA for a test domain, the sandbox registry with token auth, and the real engine.
 */
const STACK = "vps-e2e";
const REPO = path.resolve(__dirname, "../..");

let dir: string;
let projectDir: string;
let sb: Sandbox;
let stack: Stack;
let started = 0;
/** Everything the engine printed during this suite. */
const logs: string[] = [];

function timed(name: string, fn: () => Promise<void> | void): void {
  it(name, async () => {
    const t = Date.now();
    try {
      await fn();
    } catch (e) {
      // Said here too: the runner's own summary can be cut short when it exits.
      process.stderr.write(`e2e vps: ${name}: FAILED: ${(e as Error).stack ?? String(e)}\n`);
      throw e;
    } finally {
      process.stderr.write(`e2e vps: ${name}: ${((Date.now() - t) / 1000).toFixed(1)}s\n`);
    }
  });
}

function vps(): NonNullable<Sandbox["vps"]> {
  return sb.vps!;
}

function docker(...args: string[]): string {
  return execFileSync("docker", args, { env: sb.docker.env(), encoding: "utf8" }).trim();
}

/** A variable of a running container's environment (read with `env`, so no value is on a command line). */
function containerEnv(id: string, name: string): string | undefined {
  const line = docker("exec", id, "env").split("\n").find((l) => l.startsWith(`${name}=`));
  return line?.slice(name.length + 1);
}

function container(service: string): string {
  return docker("ps", "-q", "--filter", "label=com.docker.compose.project=app", "--filter", `label=com.docker.compose.service=${service}`);
}

/** `npm run deploy` on the stack, with what it printed. */
async function guardedDeploy(): Promise<{ code: number; log: string }> {
  const r = await runDeploy(STACK, projectDir);
  logs.push(r.log);
  return r;
}

async function up(): Promise<UpResult> {
  return stack.up({ color: "never", onOutput: (o) => logs.push(o) });
}

/** Stack outputs with their secret flags. */
async function outputs(): Promise<Record<string, { value: unknown; secret: boolean }>> {
  return stack.outputs();
}

/** GET over HTTPS through Caddy on loopback, as a client resolving the domain to 127.0.0.1 would. */
function get(urlPath: string, ca?: string): Promise<{ status: number; body: string; altNames: string; issuer: string }> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      { host: "127.0.0.1", port: vps().httpsPort, servername: vps().domain, path: urlPath, headers: { host: vps().domain }, ca, timeout: 10_000 },
      (res) => {
        const cert = (res.socket as import("tls").TLSSocket).getPeerCertificate();
        let body = "";
        res.on("data", (c: Buffer) => (body += c.toString()));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body, altNames: cert.subjectaltname ?? "", issuer: String(cert.issuer?.CN ?? "") }));
      },
    );
    req.on("timeout", () => req.destroy(new Error("timed out")));
    req.on("error", reject);
    req.end();
  });
}

/** POST over HTTPS through Caddy, as the git host delivers a webhook. */
function post(urlPath: string, body: string, headers: Record<string, string>, ca: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        method: "POST",
        host: "127.0.0.1",
        port: vps().httpsPort,
        servername: vps().domain,
        path: urlPath,
        headers: { host: vps().domain, "content-type": "application/json", "content-length": String(Buffer.byteLength(body)), ...headers },
        ca,
        timeout: 30_000,
      },
      (res) => {
        let text = "";
        res.on("data", (c: Buffer) => (text += c.toString()));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body: text }));
      },
    );
    req.on("timeout", () => req.destroy(new Error("timed out")));
    req.on("error", reject);
    req.end(body);
  });
}

/** Waits until the app's update container has finished (it removes itself). */
async function updateFinished(timeoutMs = 150_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (docker("ps", "-a", "-q", "--filter", "name=^app-self-update$") !== "") {
    assert.ok(Date.now() < end, "the update container did not finish in time");
    await new Promise((r) => setTimeout(r, 500));
  }
}

function caddyRoot(): string {
  return docker("exec", container("caddy"), "cat", "/data/caddy/pki/authorities/local/root.crt");
}

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: "127.0.0.1", port, timeout: 2000 }, () => {
      s.destroy();
      resolve(true);
    });
    s.on("error", () => resolve(false));
    s.on("timeout", () => {
      s.destroy();
      resolve(false);
    });
  });
}

function deployDir(): string {
  return path.join(vps().vm.workDir, "app");
}

before(async () => {
  started = Date.now();
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "homelab-e2e-vps-"));
  projectDir = path.join(dir, "project");
  fs.mkdirSync(projectDir);
  linkProgram(projectDir);
  sb = await startSandbox(path.join(dir, "sandbox"), {
    vmUser: "homelab-e2e-vm",
    vps: { user: "homelab-e2e-vps" },
    // Caddy reaches the app across the compose network: an engine that manages its own iptables
    // rules lets that traffic through even where the host's FORWARD policy is DROP.
    network: "default",
    backendPort: await freePort(),
  });
  stack = await sandboxStack(sb, STACK, projectDir);
  // A stack with only the VPS part: nothing of the homelab is deployed or required.
  await stack.setConfig("homelab:deployHomelab", { value: "false" });
  process.stderr.write(`e2e vps: sandbox ready in ${((Date.now() - started) / 1000).toFixed(1)}s\n`);
});

after(async () => {
  try {
    await tearDownSandboxStack(stack, STACK, sb, dir);
  } finally {
    process.stderr.write(`e2e vps: total ${((Date.now() - started) / 1000).toFixed(1)}s\n`);
  }
});

describe("VPS app behind Caddy, end to end", { concurrency: false }, () => {
  let apiKey = "";
  let webhookSecret = "";
  let firstWebhookSecret = "";

  timed("1. a fresh up serves the app over HTTPS through Caddy, with a certificate for the domain", async () => {
    const r = await up();
    assert.equal(r.summary.result, "succeeded");
    const out = await outputs();
    const base = `https://${vps().domain}:${vps().httpsPort}`;
    assert.deepEqual(out.vpsDashboardUrl, { value: `${base}/`, secret: false });
    assert.deepEqual(out.vpsVersionOwner, { value: "program", secret: false });
    assert.equal(out.vpsWebhookUrl, undefined, "the program owns the version: no webhook is offered");
    assert.match(String(out.vpsImage.value), new RegExp(`/vps-app:${vps().images.app.v1}@sha256:[a-f0-9]{64}$`));
    assert.equal(out.frontendUrl, undefined, "a VPS-only stack deploys nothing of the homelab");

    const ca = caddyRoot();
    const res = await get("/api/health", ca);
    assert.equal(res.status, 200);
    assert.equal((JSON.parse(res.body) as { version: string }).version, vps().images.app.v1);
    assert.match(res.altNames, new RegExp(`DNS:${vps().domain.replace(/\./g, "\\.")}`));
    assert.match(res.issuer, /Caddy Local Authority/);
    // The certificate is checked for real: without Caddy's root the client refuses it.
    await assert.rejects(get("/api/health"), /self[- ]signed|unable to (get|verify)/);
    // Plain HTTP answers with a redirect to HTTPS.
    const plain = await new Promise<http.IncomingMessage>((resolve, reject) =>
      http.get({ host: "127.0.0.1", port: vps().httpPort, path: "/api/health", headers: { host: vps().domain } }, resolve).on("error", reject),
    );
    plain.resume();
    assert.equal(plain.statusCode, 308);
    assert.equal(plain.headers.location, `https://${vps().domain}/api/health`);
  });

  timed("2. the app publishes no port: only Caddy is reachable from the host", async () => {
    const bindings = JSON.parse(docker("inspect", "-f", "{{json .HostConfig.PortBindings}}", container("app"))) as Record<string, unknown> | null;
    assert.deepEqual(bindings ?? {}, {});
    assert.equal(await portOpen(VPS_APP_PORT), false);
    assert.equal(await portOpen(vps().httpsPort), true);
  });

  timed("3. the API key is a secret output matching the host; .env is 0600; no webhook secret or socket while the program owns the version", async () => {
    const out = await outputs();
    assert.equal(out.vpsApiKey.secret, true);
    assert.equal(out.vpsWebhookSecret, undefined);
    apiKey = String(out.vpsApiKey.value);
    assert.match(apiKey, /^[a-f0-9]{48}$/);
    assert.equal(docker("exec", container("app"), "cat", "/data/api_key.txt"), apiKey);
    const envFile = path.join(deployDir(), ".env");
    assert.equal(fs.statSync(envFile).mode & 0o777, 0o600);
    const env = fs.readFileSync(envFile, "utf8");
    assert.ok(!env.includes("GITHUB_WEBHOOK_SECRET"));
    assert.ok(env.includes("APP_ENV='sandbox'"));
    assert.equal(containerEnv(container("app"), "GITHUB_WEBHOOK_SECRET"), undefined);
    // The app's SSH key directory is mounted read-only; neither the socket nor the project is.
    const mounts = JSON.parse(docker("inspect", "-f", "{{json .Mounts}}", container("app"))) as { Destination: string; RW: boolean }[];
    assert.deepEqual(mounts.find((m) => m.Destination === "/home/app/.ssh")?.RW, false);
    assert.deepEqual(mounts.filter((m) => m.Destination === "/var/run/docker.sock" || m.Destination === deployDir()), []);
  });

  timed("4. a re-run changes nothing and keeps the same API key", async () => {
    const appBefore = container("app");
    const r = await up();
    const changes = Object.entries(r.summary.resourceChanges ?? {}).filter(([op]) => op !== "same");
    assert.deepEqual(changes, []);
    const out = await outputs();
    assert.equal(out.vpsApiKey.value, apiKey);
    assert.equal(container("app"), appBefore);
  });

  timed("5. a wrong registry token is refused before anything changes", async () => {
    const appBefore = container("app");
    const caddyBefore = container("caddy");
    await stack.setConfig("homelab:vpsRegistryToken", { value: "wrong-token-31337", secret: true });
    try {
      const err = await up().then(
        () => undefined,
        (e: unknown) => e as Error,
      );
      assert.ok(err, "the up must fail");
      assert.match(err.message, /refused the credentials of/);
      assert.ok(!err.message.includes("wrong-token-31337"));
    } finally {
      await stack.setAllConfig(vpsConfig(sb, vps()), true);
    }
    assert.equal(container("app"), appBefore);
    assert.equal(container("caddy"), caddyBefore);
    assert.equal((await get("/api/health", caddyRoot())).status, 200);
  });

  timed("6. an unhealthy release fails under npm run deploy, and the previous one keeps serving", async () => {
    await stack.setAllConfig(vpsConfig(sb, vps(), vps().images.app.unhealthy), true);
    await stack.setConfig("homelab:vpsDeadlineSeconds", { value: "20" });
    try {
      // The guarded deploy: the host restores the previous release, and says so.
      const r = await guardedDeploy();
      assert.equal(r.code, EXIT.rolledBack, r.log);
      assert.match(r.log, /FAILED after .* in the VPS app; its host restored the previous release/);
      // Compose waits for the app's health before it starts Caddy: it fails, or outlasts the step's deadline.
      assert.match(r.log, /deploy: FAILED: compose up (failed: .*(unhealthy|dependency failed)|did not finish within \d+s)/);
    } finally {
      await stack.setAllConfig(vpsConfig(sb, vps()), true);
    }
    const res = await get("/api/health", caddyRoot());
    assert.equal(res.status, 200);
    assert.equal((JSON.parse(res.body) as { version: string }).version, vps().images.app.v1);
    // The next clean up converges with nothing to do: the host already runs the restored release.
    const r = await up();
    assert.equal(r.summary.result, "succeeded");
  });

  timed("7. npm run deploy moves to a new release, keeping the app's data (same API key)", async () => {
    await stack.setAllConfig(vpsConfig(sb, vps(), vps().images.app.v2), true);
    const r = await guardedDeploy();
    assert.equal(r.code, EXIT.promoted, r.log);
    assert.match(r.log, new RegExp(`DEPLOYED in .*/vps-app:${vps().images.app.v2}@sha256:`));
    const res = await get("/api/health", caddyRoot());
    assert.equal((JSON.parse(res.body) as { version: string }).version, vps().images.app.v2);
    const out = await outputs();
    assert.equal(out.vpsApiKey.value, apiKey);

    // Its logs over the pinned SSH, then followed until Ctrl-C, which ends the remote follower too.
    const bin = path.join(REPO, "bin", "homelab.js");
    const args = ["logs", "vps", "--stack", STACK, "--cwd", projectDir];
    const shown = spawnSync(process.execPath, [bin, ...args, "--tail", "50"], { env: { ...process.env, ...sb.pulumiEnv }, encoding: "utf8", timeout: 120_000 });
    assert.equal(shown.status, 0, shown.stderr);
    assert.match(shown.stdout, new RegExp(`app ${vps().images.app.v2} listening on ${VPS_APP_PORT}`));
    // The remote `docker compose … logs --follow`, by its arguments (NUL-separated in /proc).
    const followers = (): string[] =>
      fs.readdirSync("/proc").filter((p) => {
        try {
          return /^\d+$/.test(p) && fs.readFileSync(`/proc/${p}/cmdline`, "utf8").split("\0").join(" ").includes("logs --no-color --timestamps --tail 5 --follow");
        } catch {
          return false;
        }
      });
    assert.deepEqual(followers(), [], "no follower before");
    const follow = spawn(process.execPath, [bin, ...args, "--follow", "--tail", "5"], { env: { ...process.env, ...sb.pulumiEnv }, stdio: ["ignore", "pipe", "pipe"] });
    const exited = new Promise<number | null>((r) => follow.on("exit", (code) => r(code)));
    let seen = "";
    follow.stdout.setEncoding("utf8").on("data", (t: string) => (seen += t));
    const end = Date.now() + 60_000;
    while (!/listening on/.test(seen) || followers().length === 0) {
      assert.ok(Date.now() < end, `no followed line: ${seen}`);
      await new Promise((r) => setTimeout(r, 200));
    }
    follow.kill("SIGINT");
    assert.equal(await exited, 0, "Ctrl-C ends a followed log cleanly");
    const gone = Date.now() + 15_000;
    while (followers().length > 0) {
      assert.ok(Date.now() < gone, `the remote follower outlived the client: ${followers().join(", ")}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  });

  timed("7b. the app's container removed by hand is found by status and by refresh, and the next deploy brings it back with its data", async () => {
    docker("rm", "-f", container("app"));
    const status = await liveStatus(stack, projectDir);
    assert.equal(status.agree, false);
    assert.deepEqual(status.parts.find((p) => p.part === "vps")?.findings, ["service app has no container"]);
    const events: EngineEvent[] = [];
    await stack.previewRefresh({ onEvent: (e) => events.push(e), color: "never" });
    assert.ok(driftFound(events).includes("vps-compose-deploy: service app has no container"), JSON.stringify(driftFound(events)));
    const r = await guardedDeploy();
    assert.equal(r.code, EXIT.promoted, r.log);
    assert.match(r.log, /REPAIRED in [\d.]+s: .*\/vps-app:/);
    const res = await get("/api/health", caddyRoot());
    assert.equal((JSON.parse(res.body) as { version: string }).version, vps().images.app.v2);
    assert.equal(docker("exec", container("app"), "cat", "/data/api_key.txt"), apiKey, "the new container has the app's data (the same API key)");
    assert.equal((await liveStatus(stack, projectDir)).agree, true);
  });

  const SELF_TAG = "stable";
  const signed = (secret: string, body: string): Record<string, string> => ({
    "x-github-event": "push",
    "x-hub-signature-256": `sha256=${crypto.createHmac("sha256", secret).update(body).digest("hex")}`,
  });
  const pushEvent = JSON.stringify({ ref: "refs/heads/main", after: "1".repeat(40) });
  let v2Digest = "";
  let webhookPath = "";

  timed("8a. the app takes over its version: the compose file names the tag, the webhook and its secret are offered, compose inside manages the same containers", async () => {
    v2Digest = await tagAppImage(sb.registry, vps().images.app.v2, SELF_TAG);
    await stack.setConfig("homelab:vpsVersionOwner", { value: "app" });
    await stack.setConfig("homelab:vpsImage", { value: `${vps().images.appRepository}:${SELF_TAG}` });
    await stack.setConfig("homelab:vpsWebhookPath", { value: VPS_WEBHOOK_PATH });
    // The sandbox's engine listens on a socket of its own, not /var/run/docker.sock.
    await stack.setConfig("homelab:vpsDockerSocketPath", { value: sb.docker.socket });
    const r = await up();
    assert.equal(r.summary.result, "succeeded");
    const out = await outputs();
    const ref = `${vps().images.appRepository}:${SELF_TAG}`;
    assert.deepEqual(out.vpsVersionOwner, { value: "app", secret: false });
    assert.deepEqual(out.vpsImage, { value: `${ref}@${v2Digest}`, secret: false });
    assert.deepEqual(out.vpsRunningImage, { value: `${ref}@${v2Digest}`, secret: false });
    assert.equal(out.vpsWebhookSecret.secret, true);
    webhookSecret = String(out.vpsWebhookSecret.value);
    assert.match(webhookSecret, /^[a-f0-9]{64}$/);
    webhookPath = new URL(String(out.vpsWebhookUrl.value)).pathname;
    assert.equal(webhookPath, VPS_WEBHOOK_PATH);
    const app = container("app");
    assert.equal(docker("inspect", "-f", "{{.Config.Image}}", app), ref);
    assert.equal(containerEnv(app, "GITHUB_WEBHOOK_SECRET"), webhookSecret);
    assert.equal(containerEnv(app, "COMPOSE_FILE"), path.join(deployDir(), "docker-compose.yml"));
    // Compose in the app's container, with the project's own files, sees the containers the program deployed.
    const inside = docker("exec", app, "docker", "compose", "ps", "-q").split("\n").sort();
    const outside = docker("ps", "-q", "--no-trunc", "--filter", "label=com.docker.compose.project=app").split("\n").sort();
    assert.deepEqual(inside, outside);
    assert.equal(docker("exec", app, "cat", "/data/api_key.txt"), apiKey, "the switch keeps the data");
    const again = await up();
    assert.deepEqual(Object.entries(again.summary.resourceChanges ?? {}).filter(([op]) => op !== "same"), []);
  });

  timed("8b. a webhook call with a wrong signature is refused and changes nothing", async () => {
    const app = container("app");
    const ca = caddyRoot();
    const res = await post(webhookPath, pushEvent, signed("not-the-secret", pushEvent), ca);
    assert.equal(res.status, 401, res.body);
    const unsigned = await post(webhookPath, pushEvent, { "x-github-event": "push" }, ca);
    assert.equal(unsigned.status, 401, unsigned.body);
    assert.equal(docker("ps", "-a", "-q", "--filter", "name=^app-self-update$"), "");
    assert.equal(container("app"), app);
  });

  timed("8c. a failed update (an unhealthy image under the tag) leaves the previous container serving", async () => {
    const app = container("app");
    await tagAppImage(sb.registry, vps().images.app.unhealthy, SELF_TAG);
    const ca = caddyRoot();
    const res = await post(webhookPath, pushEvent, signed(webhookSecret, pushEvent), ca);
    assert.equal(res.status, 202, res.body);
    await updateFinished();
    assert.match(docker("exec", app, "cat", VPS_SELF_UPDATE_LOG), /FAILED: the new container is running unhealthy; the previous container keeps serving/);
    assert.equal(container("app"), app);
    assert.equal((JSON.parse((await get("/api/health", ca)).body) as { version: string }).version, vps().images.app.v2);
    // The tag on the host names what runs again.
    assert.equal(docker("image", "inspect", "-f", "{{.Id}}", `${vps().images.appRepository}:${SELF_TAG}`), docker("inspect", "-f", "{{.Image}}", app));
  });

  timed("8d. a new image under the same tag, a signed webhook through Caddy: the new version serves, the data stays, Caddy never stops, and the next up changes nothing", async () => {
    const caddy = container("caddy");
    const v3Digest = await tagAppImage(sb.registry, vps().images.app.v3, SELF_TAG);
    const ca = caddyRoot();
    const res = await post(webhookPath, pushEvent, signed(webhookSecret, pushEvent), ca);
    assert.equal(res.status, 202, res.body);
    // Caddy answers throughout the update.
    const statuses: number[] = [];
    const poll = (async () => {
      while (docker("ps", "-a", "-q", "--filter", "name=^app-self-update$") !== "") {
        statuses.push(await get("/api/health", ca).then((r) => r.status, () => 0));
        await new Promise((r) => setTimeout(r, 200));
      }
    })();
    await updateFinished();
    await poll;
    assert.ok(statuses.length > 0);
    assert.deepEqual(statuses.filter((s) => s !== 200), [], `answers during the update: ${statuses.join(",")}`);
    const health = await get("/api/health", ca);
    assert.equal((JSON.parse(health.body) as { version: string }).version, vps().images.app.v3);
    const app = container("app");
    assert.match(docker("exec", app, "cat", VPS_SELF_UPDATE_LOG), new RegExp(`now running .*${v3Digest}`));
    assert.equal(docker("exec", app, "cat", "/data/api_key.txt"), apiKey, "the updated app has its data");
    assert.equal(container("caddy"), caddy, "Caddy was not restarted");

    // The program does not take the app back: a refresh and an up change nothing.
    await stack.refresh({ color: "never", onOutput: (o) => logs.push(o) });
    const r = await up();
    assert.deepEqual(Object.entries(r.summary.resourceChanges ?? {}).filter(([op]) => op !== "same"), []);
    assert.equal(container("app"), app);
    const ref = `${vps().images.appRepository}:${SELF_TAG}`;
    const out = await outputs();
    assert.equal(out.vpsImage.value, `${ref}@${v2Digest}`, "the digest recorded at the program's deploy");
    assert.equal(out.vpsRunningImage.value, `${ref}@${v3Digest}`, "what runs now");
    const status = await liveStatus(stack, projectDir);
    assert.equal(status.agree, true, JSON.stringify(status));
    assert.equal(status.parts.find((p) => p.part === "vps")?.running, `${ref}@${v3Digest}, updated by the app, healthy`);
  });

  timed("8. bumping the version rotates the webhook secret, and the app gets the new one", async () => {
    await stack.setConfig("homelab:vpsWebhookSecretVersion", { value: "2" });
    await up();
    const rotated = String((await outputs()).vpsWebhookSecret.value);
    assert.equal((JSON.parse((await get("/api/health", caddyRoot())).body) as { version: string }).version, vps().images.app.v3, "a deploy of the program follows the tag");
    assert.match(rotated, /^[a-f0-9]{64}$/);
    assert.notEqual(rotated, webhookSecret);
    firstWebhookSecret = webhookSecret;
    assert.equal(containerEnv(container("app"), "GITHUB_WEBHOOK_SECRET"), rotated);
    webhookSecret = rotated;
  });

  timed("9. neither the API key, the webhook secrets, the token nor the SSH key is in the state or the logs", () => {
    // The state backend's files as they rest on disk: checkpoints, backups and history.
    const stateFiles: string[] = [];
    const walk = (d: string): void => {
      for (const e of fs.readdirSync(d, { withFileTypes: true })) {
        const p = path.join(d, e.name);
        if (e.isDirectory()) {
          walk(p);
        } else {
          stateFiles.push(fs.readFileSync(p, "utf8"));
        }
      }
    };
    walk(path.join(sb.dir, "state"));
    const state = stateFiles.join("\n");
    assert.match(state, /vps-api-key/);
    const appLogs = docker("logs", container("app"));
    const haystacks = { state, engineOutput: logs.join(""), appLogs };
    const secrets = { apiKey, webhookSecret, firstWebhookSecret, registryToken: sb.registry.password, sshKey: vps().vm.privateKey.split("\n")[1] };
    for (const [where, text] of Object.entries(haystacks)) {
      assert.ok(text.length > 0, where);
      for (const [what, value] of Object.entries(secrets)) {
        assert.ok(value.length >= 16, what);
        assert.ok(!text.includes(value), `${what} appears in plain text in ${where}`);
      }
    }
    // The state does hold them, encrypted.
    assert.match(state, /"ciphertext":"[^"]+"/);
  });

  timed("10. destroy stops the stack and keeps the app's data and Caddy's certificates", async () => {
    await stack.destroy({ color: "never" });
    assert.equal(container("app"), "");
    assert.equal(container("caddy"), "");
    const volumes = docker("volume", "ls", "-q").split("\n");
    for (const v of ["app_app-data", "app_caddy-data", "app_caddy-config"]) {
      assert.ok(volumes.includes(v), `${v} kept`);
    }
  });
});
