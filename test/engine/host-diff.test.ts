import { after, before, describe, it } from "node:test";
import * as assert from "node:assert/strict";
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import { LocalWorkspace, PulumiCommand, Stack } from "@pulumi/pulumi/automation";
import { ComposeHost } from "../../components/compose-host";
import { VpsApp } from "../../components/vps-app";
import { composeToYaml, renderBackendCompose } from "../../lib/compose";
import { toolchainEnv } from "../../toolchain/env";
import { parseBundle } from "../../lib/bundle";
import { BUNDLE_END } from "../../lib/remote-deploy";
import { FakeSshHost, startFakeSshHost } from "../support/fake-ssh-host";
import { DIGEST_A, DIGEST_B, TAG_A, TAG_B } from "../support/fixtures";

/*
 * What a reviewer reads in `pulumi preview --diff` when a change reaches the hosts: the backend's
 * compose file (a new tag, a new memory limit, a new database password in `.env`) and the VPS's
 * Caddyfile (a new domain). The real engine previews the program's own ComposeHost and VpsApp
 * against state a first `up` recorded; that `up` ran its scripts on a loopback SSH server that
 * only accepts them (what a host does with them is the sandbox suites' business).
 * HOST_DIFF_PRINT=1 prints the preview.
 */
const SECRETS = { env: "db-secret-4711", nextEnv: "db-secret-9904", registry: "registry-pass-0815", vpsToken: "ghp_vps-token-4242", apiKey: "api-key-from-the-app" };

interface Release {
  readonly backendImage: string;
  readonly memory: string;
  readonly dbPassword: string;
  readonly domain: string;
}

const FIRST: Release = { backendImage: `127.0.0.1:5000/backend:${TAG_A}@${DIGEST_A}`, memory: "512M", dbPassword: SECRETS.env, domain: "app.homelab.test" };
const NEXT: Release = { backendImage: `127.0.0.1:5000/backend:${TAG_B}@${DIGEST_B}`, memory: "768M", dbPassword: SECRETS.nextEnv, domain: "shop.homelab.test" };

let host: FakeSshHost;
let stack: Stack;
let dir: string;
let release: Release = FIRST;
let text = "";
let events = "";
let noop: Record<string, number> | undefined;
let runsAfterUp = 0;

function program(): void {
  const connection = { host: "127.0.0.1", port: host.port, user: "deploy", privateKey: pulumi.secret(host.clientKey), hostKey: host.hostKey };
  new ComposeHost("backend", {
    connection,
    deployDir: "/opt/backend",
    project: "backend",
    compose: composeToYaml(renderBackendCompose({ project: "backend", image: release.backendImage, limits: { memory: release.memory } })),
    env: pulumi.secret({ DATABASE_URL: `postgres://app:${release.dbPassword}@db/app`, NODE_ENV: "production" }),
    registry: { server: "127.0.0.1:5000", username: "robot$deploy", password: pulumi.secret(SECRETS.registry) },
    healthServices: ["backend"],
  });
  new VpsApp("vps", {
    connection,
    image: "127.0.0.1:5000/vps-app:1.0.0@" + DIGEST_A,
    domain: release.domain,
    tls: { kind: "internal" },
    registry: { server: "127.0.0.1:5000", username: "_token", token: pulumi.secret(SECRETS.vpsToken) },
    env: pulumi.secret({ LOG_LEVEL: "info" }),
    apiKeyFile: "/data/api_key.txt",
  });
}

before(async () => {
  host = await startFakeSshHost((command) => (command.includes("api_key.txt") ? SECRETS.apiKey : "deploy: healthy after 0s\n"));
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "homelab-host-diff-"));
  fs.mkdirSync(path.join(dir, "state"));
  const tc = toolchainEnv({ backendUrl: `file://${path.join(dir, "state")}` });
  const envVars = { ...tc.vars, PULUMI_CONFIG_PASSPHRASE: crypto.randomBytes(16).toString("hex") };
  Object.assign(process.env, envVars);
  const pulumiCommand = await PulumiCommand.get({ skipVersionCheck: false });
  stack = await LocalWorkspace.createStack(
    { stackName: `host-diff-${crypto.randomBytes(3).toString("hex")}`, projectName: "homelab-host-diff", program: () => Promise.resolve(program()) },
    { workDir: dir, envVars, pulumiCommand },
  );
  await stack.up({ color: "never" });
  runsAfterUp = host.runs.length;
  noop = (await stack.preview({ color: "never", diff: true })).changeSummary;
  release = NEXT;
  const preview = await stack.preview({
    color: "never",
    diff: true,
    // The SDK's debug log echoes RPC responses verbatim; like `pulumi preview` without --debug, leave it out.
    onEvent: (e) => (events += (e.diagnosticEvent?.severity as string | undefined) === "debug" ? "" : JSON.stringify(e)),
  });
  text = preview.stdout;
  if (process.env.HOST_DIFF_PRINT) {
    process.stdout.write(text);
  }
});

after(async () => {
  try {
    await stack?.destroy({ color: "never" });
  } finally {
    await host?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

/** The preview's lines for one resource, from its header to the next resource's. */
function section(name: string): string {
  const start = text.indexOf(`::${name}]`);
  assert.ok(start >= 0, `the preview shows ${name}:\n${text}`);
  const end = text.indexOf("pulumi-nodejs:dynamic", start);
  return text.slice(start, end < 0 ? undefined : end);
}

describe("pulumi preview --diff of a change on the hosts (real engine)", () => {
  it("shows the backend's new image and memory limit as changed keys of its compose file", () => {
    const backend = section("backend-deploy");
    assert.match(backend, /~ files\s*: \{\s*~ docker-compose\.yml: \(yaml\)/);
    assert.match(backend, new RegExp(`~ image\\s*: "127\\.0\\.0\\.1:5000/backend:${TAG_A}@${DIGEST_A}" => "127\\.0\\.0\\.1:5000/backend:${TAG_B}@${DIGEST_B}"`));
    assert.match(backend, /~ memory: "512M" => "768M"/);
  });

  it("shows the VPS's Caddyfile as changed lines", () => {
    const vps = section("vps-compose-deploy");
    assert.match(vps, /~ Caddyfile\s*:\s*\n/);
    assert.match(vps, /^\s*- app\.homelab\.test \{$/m);
    assert.match(vps, /^\s*\+ shop\.homelab\.test \{$/m);
    assert.match(vps, /reverse_proxy app:8000/);
  });

  it("says which services will be recreated and why, naming .env but not what changed in it", () => {
    assert.match(section("backend-deploy"), /backend: "created" => "recreated \(deploy, image, \.env\)"/);
    const vps = section("vps-compose-deploy");
    assert.match(vps, /caddy: "created" => "recreated \(labels\)"/);
    assert.match(vps, /app\s*: "created" => "kept"/);
  });

  it("shows the .env's variable names and keeps the secret part of the bundle hidden", () => {
    const backend = section("backend-deploy");
    assert.match(backend, /envKeys\s*: \[\s*\[0\]: "DATABASE_URL"\s*\[1\]: "NODE_ENV"/);
    // The engine does not say whether a secret changed; the services plan names the .env instead.
    assert.match(backend, /stdin\s*: \[secret\]/);
  });

  it("shows no secret value in the preview or its engine events", () => {
    assert.ok(events.length > 0);
    const all = text + events;
    const secrets = [...Object.values(SECRETS), "PRIVATE KEY", host.clientKey.split("\n")[1]];
    for (const secret of secrets) {
      assert.ok(!all.includes(secret), `the preview leaks ${secret.slice(0, 6)}…`);
    }
  });

  it("sent each host the plain files and the secrets as one bundle, and previews contacted none", () => {
    // A detached deploy's stdin ends with the line that marks the bundle complete.
    const bundleOf = (stdin: string): ReturnType<typeof parseBundle> => parseBundle(stdin.split("\n").filter((l) => l !== BUNDLE_END).join("\n"));
    const deploy = host.runs.find((r) => bundleOf(r.stdin)?.files["docker-compose.yml"]?.includes("backend:"));
    assert.ok(deploy, `a run carried the backend's bundle: ${host.runs.map((r) => r.command.slice(0, 60)).join(" | ")}`);
    assert.ok(deploy.stdin.trimEnd().endsWith(BUNDLE_END), "the detached deploy's bundle ends with its end line");
    const bundle = bundleOf(deploy.stdin)!;
    assert.deepEqual(Object.keys(bundle.files).sort(), [".env", "docker-compose.yml"]);
    assert.match(bundle.files[".env"], new RegExp(SECRETS.env));
    assert.equal(bundle.secrets["registry-password"], SECRETS.registry);
    assert.equal(host.runs.length, runsAfterUp);
  });

  it("changes nothing in a preview of the same release", () => {
    assert.deepEqual(Object.keys(noop ?? {}), ["same"], JSON.stringify(noop));
  });
});
