import { before, describe, it } from "node:test";
import * as assert from "node:assert/strict";
import { spawnSync } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import * as YAML from "yaml";
import { caddyfileToText, renderVpsCaddyfile } from "../../lib/caddy";
import { composeToYaml, renderVpsCompose } from "../../lib/compose";
import { ConfigError, parseConfig } from "../../lib/config";
import { HOST_CHECK_EXIT, renderHostCheckScript, renderReadSecretScript } from "../../lib/remote-deploy";
import { parseBundle } from "../../lib/bundle";
import type { ScriptIdentity } from "../../providers/remote-script";
import { shq } from "../../lib/shell";
import { apiKeyReadHint } from "../../components/vps-app";
import { parseRunningImage, renderRunningImageScript } from "../../lib/self-update";
import { DIGEST_A, VPS_SECRET_KEYS, validVpsConfig } from "../support/fixtures";
import { Recorder, installMocks, isSecret, settle, valueOf } from "../support/mocks";

describe("VPS Caddyfile", () => {
  it("serves the domain over ACME and proxies to the app's internal port", () => {
    const file = renderVpsCaddyfile({ domain: "infrakt.e4dev.app", upstreamHost: "infrakt", upstreamPort: 8000, tls: { kind: "acme", email: "ops@e4dev.app" } });
    assert.deepEqual(file, {
      global: [{ name: "email", args: ["ops@e4dev.app"] }],
      sites: [{ addresses: ["infrakt.e4dev.app"], directives: [{ name: "reverse_proxy", args: ["infrakt:8000"] }] }],
    });
    assert.equal(caddyfileToText(file), "{\n\temail ops@e4dev.app\n}\n\ninfrakt.e4dev.app {\n\treverse_proxy infrakt:8000\n}\n");
  });

  it("uses Caddy's internal CA without touching the container's trust store", () => {
    const text = caddyfileToText(renderVpsCaddyfile({ domain: "app.homelab.test", upstreamHost: "app", upstreamPort: 8000, tls: { kind: "internal" } }));
    assert.equal(text, "{\n\tskip_install_trust\n}\n\napp.homelab.test {\n\ttls internal\n\treverse_proxy app:8000\n}\n");
  });

  it("caps the request body on the app's webhook before it reaches the app", () => {
    const text = caddyfileToText(renderVpsCaddyfile({ domain: "app.homelab.test", upstreamHost: "app", upstreamPort: 8000, tls: { kind: "internal" }, webhookPath: "/api/self-update" }));
    assert.equal(
      text,
      "{\n\tskip_install_trust\n}\n\napp.homelab.test {\n\ttls internal\n\t@webhook path /api/self-update\n\trequest_body @webhook {\n\t\tmax_size 5MB\n\t}\n\treverse_proxy app:8000\n}\n",
    );
  });

  it("has no global block without options, quotes odd tokens and refuses line breaks", () => {
    assert.equal(
      caddyfileToText({ sites: [{ addresses: ["a.test"], directives: [{ name: "respond", args: ["hello world", 'say "hi"'] }] }] }),
      'a.test {\n\trespond "hello world" "say \\"hi\\""\n}\n',
    );
    assert.throws(() => caddyfileToText({ sites: [{ addresses: ["a.test\n}\nevil.test"], directives: [] }] }), /control character/);
  });
});

describe("VPS compose file", () => {
  const base = {
    project: "infrakt",
    appName: "infrakt",
    image: "ghcr.io/e4dev-solutions/e4dev-infrakt:1.4.0@sha256:" + "a".repeat(64),
    appPort: 8000,
    caddyImage: "caddy:2.10-alpine",
    caddyfileHash: "f".repeat(64),
  };

  it("renders Caddy in front of the app, which publishes no host port", () => {
    const file = renderVpsCompose({ ...base, dataPath: "/home/infrakt/.infrakt", sshKeys: { hostDir: "/opt/infrakt/ssh", mountPath: "/home/infrakt/.ssh" } });
    const logging = { driver: "json-file", options: { "max-size": "10m", "max-file": "3" } };
    assert.equal(file.services.infrakt.ports, undefined);
    assert.deepEqual(YAML.parse(composeToYaml(file)), file);
    assert.deepEqual(file, {
      name: "infrakt",
      services: {
        caddy: {
          image: "caddy:2.10-alpine",
          restart: "unless-stopped",
          ports: ["0.0.0.0:80:80", "0.0.0.0:443:443", "0.0.0.0:443:443/udp"],
          volumes: ["./Caddyfile:/etc/caddy/Caddyfile:ro", "caddy-data:/data", "caddy-config:/config"],
          labels: { "homelab.caddyfile-sha256": "f".repeat(64) },
          depends_on: { infrakt: { condition: "service_healthy" } },
          logging,
        },
        infrakt: {
          image: base.image,
          restart: "unless-stopped",
          expose: ["8000"],
          env_file: [".env"],
          volumes: ["infrakt-data:/home/infrakt/.infrakt", "/opt/infrakt/ssh:/home/infrakt/.ssh:ro"],
          healthcheck: {
            test: ["CMD", "python", "-c", "import urllib.request; urllib.request.urlopen('http://localhost:8000/api/health')"],
            interval: "5s",
            timeout: "5s",
            retries: 3,
            start_period: "15s",
          },
          logging,
        },
      },
      volumes: { "infrakt-data": {}, "caddy-data": {}, "caddy-config": {} },
    });
  });

  it("mounts the Docker socket only where asked, from where the host has it", () => {
    const off = renderVpsCompose(base).services.infrakt;
    assert.ok(!JSON.stringify(off.volumes).includes("docker.sock"));
    assert.equal(off.environment, undefined);
    const socket = renderVpsCompose({ ...base, dockerSocket: { hostPath: "/run/user/1000/docker.sock" } }).services.infrakt;
    assert.deepEqual(socket.volumes, [
      "infrakt-data:/data",
      { type: "bind", source: "/run/user/1000/docker.sock", target: "/var/run/docker.sock", bind: { create_host_path: false } },
    ]);
    assert.equal(socket.environment, undefined, "the socket alone does not make the app manage its project");
  });

  it("gives a self-updating app its project at the host's paths, so compose inside manages the same containers", () => {
    const tagged = { ...base, image: "ghcr.io/e4dev-solutions/e4dev-infrakt:latest" };
    const app = renderVpsCompose({ ...tagged, dockerSocket: { hostPath: "/var/run/docker.sock" }, selfUpdate: { deployDir: "/opt/infrakt" } }).services.infrakt;
    assert.equal(app.image, "ghcr.io/e4dev-solutions/e4dev-infrakt:latest");
    assert.deepEqual(app.volumes, [
      "infrakt-data:/data",
      { type: "bind", source: "/var/run/docker.sock", target: "/var/run/docker.sock", bind: { create_host_path: false } },
      "/opt/infrakt:/opt/infrakt:ro",
    ]);
    assert.deepEqual(app.environment, { COMPOSE_FILE: "/opt/infrakt/docker-compose.yml", COMPOSE_PROJECT_NAME: "infrakt" });
    // The project's own name and its relative paths, which compose resolves against the deploy directory.
    const file = renderVpsCompose({ ...tagged, dockerSocket: { hostPath: "/var/run/docker.sock" }, selfUpdate: { deployDir: "/opt/infrakt" } });
    assert.equal(file.name, "infrakt");
    assert.deepEqual(app.env_file, [".env"]);
    assert.ok(file.services.caddy.volumes!.includes("./Caddyfile:/etc/caddy/Caddyfile:ro"));
    assert.throws(() => renderVpsCompose({ ...tagged, selfUpdate: { deployDir: "/opt/infrakt" } }), /selfUpdate: the app needs dockerSocket/);
  });

  it("binds Caddy's ports where told (the sandbox: loopback, high ports)", () => {
    const caddy = renderVpsCompose({ ...base, bindAddress: "127.0.0.1", httpPort: 18080, httpsPort: 18443 }).services.caddy;
    assert.deepEqual(caddy.ports, ["127.0.0.1:18080:80", "127.0.0.1:18443:443", "127.0.0.1:18443:443/udp"]);
  });
});

describe("VPS config", () => {
  const parse = (overrides: Record<string, string> = {}) => parseConfig(validVpsConfig(overrides), (k) => VPS_SECRET_KEYS.includes(k));

  it("reads a VPS-only stack with the seed's defaults", () => {
    const cfg = parse();
    assert.equal(cfg.homelab, undefined);
    const s = cfg.vps!.settings;
    assert.deepEqual(s.image, { registry: "127.0.0.1:5000", repository: "infrakt", tag: "1.4.0", digest: undefined });
    assert.deepEqual(s.tls, { kind: "acme", email: undefined });
    assert.deepEqual(s.ports, { bindAddress: "0.0.0.0", http: 80, https: 443 });
    assert.deepEqual(s.webhook, { path: "/api/self-update", envName: "GITHUB_WEBHOOK_SECRET", version: 1 });
    assert.equal(s.registry.username, "_token");
    assert.equal(s.installDocker, false);
    assert.equal(s.versionOwner, "program");
    assert.equal(s.dockerSocket, false);
    assert.equal(s.dockerSocketPath, "/var/run/docker.sock");
    assert.equal(cfg.vps!.secrets.registryToken, "ghp_token-789");
  });

  it("lets the app own its version: it follows a tag and always has the socket", () => {
    const s = parse({ "homelab:vpsVersionOwner": "app", "homelab:vpsDockerSocketPath": "/run/user/1000/docker.sock" }).vps!.settings;
    assert.equal(s.versionOwner, "app");
    assert.equal(s.dockerSocket, true);
    assert.equal(s.dockerSocketPath, "/run/user/1000/docker.sock");
  });

  it("refuses an owner it does not know or a pinned digest for a self-updating app, naming key and value", () => {
    assert.throws(() => parse({ "homelab:vpsVersionOwner": "flux" }), /homelab:vpsVersionOwner: "flux" is not 'program' or 'app'/);
    assert.throws(
      () => parse({ "homelab:vpsVersionOwner": "app", "homelab:vpsImage": `127.0.0.1:5000/infrakt:1.4.0@sha256:${"b".repeat(64)}` }),
      /homelab:vpsImage: "127\.0\.0\.1:5000\/infrakt:1\.4\.0@sha256:b+\.\.\." names a digest, but with homelab:vpsVersionOwner 'app' the app follows a tag/,
    );
    // The engine passes every declared key's default, so vpsDockerSocket "false" is the default here, not a refusal.
    assert.equal(parse({ "homelab:vpsVersionOwner": "app", "homelab:vpsDockerSocket": "false" }).vps!.settings.dockerSocket, true);
    assert.throws(() => parse({ "homelab:vpsDockerSocketPath": "docker.sock" }), /homelab:vpsDockerSocketPath: "docker.sock"/);
    // The webhook's variable is only reserved where there is a webhook.
    assert.doesNotThrow(() => parse({ "homelab:vpsEnv": JSON.stringify({ GITHUB_WEBHOOK_SECRET: "theirs" }) }));
  });

  it("names every missing or bad key with its value, and never echoes a secret", () => {
    const raw = validVpsConfig({
      "homelab:vpsDomain": "app.test;rm -rf /",
      "homelab:vpsImage": "infrakt:latest",
      "homelab:vpsTls": "self-signed",
      "homelab:vpsAppName": "caddy",
      "homelab:vpsEnv": JSON.stringify({ GITHUB_WEBHOOK_SECRET: "mine" }),
      "homelab:vpsVersionOwner": "app",
      "homelab:vpsHttpsPort": "80",
    });
    delete raw["homelab:vpsHost"];
    let err: unknown;
    try {
      parseConfig(raw, (k) => VPS_SECRET_KEYS.includes(k));
    } catch (e) {
      err = e;
    }
    assert.ok(err instanceof ConfigError);
    const text = err.message;
    assert.match(text, /homelab:vpsHost: required/);
    assert.match(text, /homelab:vpsDomain: "app.test;rm -rf \/" is not a domain name/);
    assert.match(text, /homelab:vpsImage: "infrakt:latest" is not an image reference/);
    assert.match(text, /homelab:vpsTls: "self-signed" is not 'acme' or 'internal'/);
    assert.match(text, /homelab:vpsAppName: "caddy"/);
    assert.match(text, /homelab:vpsEnv: sets GITHUB_WEBHOOK_SECRET/);
    assert.match(text, /homelab:vpsHttpPort and homelab:vpsHttpsPort: both are 80/);
    assert.ok(!text.includes("ghp_token-789"));
  });

  it("refuses env values a .env file cannot hold, without echoing them", () => {
    assert.throws(() => parse({ "homelab:vpsEnv": JSON.stringify({ TOKEN: "line1\nsecret-line2" }) }), (e: Error) => {
      assert.match(e.message, /homelab:vpsEnv: the secret value has a value for TOKEN with a line break/);
      assert.ok(!e.message.includes("secret-line2"));
      return true;
    });
    assert.throws(() => parse({ "homelab:vpsEnv": JSON.stringify({ "BAD-NAME": "x" }) }), /homelab:vpsEnv: .*not an environment variable name/);
  });

  it("refuses a token set in plain text, and a stack that deploys nothing", () => {
    assert.throws(() => parseConfig(validVpsConfig(), (k) => k === "homelab:vpsPrivateKey"), /homelab:vpsRegistryToken: must be set with --secret/);
    assert.throws(() => parse({ "homelab:deployVps": "false" }), /would deploy nothing/);
  });

  it("accepts the production stack's VPS values once switched on and its secrets are set", () => {
    const prod = YAML.parse(fs.readFileSync(path.join(__dirname, "../../Pulumi.production.yaml"), "utf8")) as { config: Record<string, unknown> };
    const raw: Record<string, string> = {};
    for (const [k, v] of Object.entries(prod.config)) {
      if (k.startsWith("homelab:vps")) {
        raw[k] = String(v);
      }
    }
    const fixture = validVpsConfig();
    for (const k of ["homelab:deployHomelab", "homelab:deployVps", "homelab:vpsHost", "homelab:vpsHostKey", ...VPS_SECRET_KEYS]) {
      raw[k] = fixture[k];
    }
    const s = parseConfig(raw, (k) => VPS_SECRET_KEYS.includes(k)).vps!.settings;
    assert.equal(s.domain, "infrakt.e4dev.app");
    assert.equal(s.appName, "infrakt");
    assert.equal(s.apiKeyFile, "/home/infrakt/.infrakt/api_key.txt");
    assert.equal(s.versionOwner, "app");
    assert.equal(s.dockerSocket, true);
  });

  it("does not ask for the homelab's keys when only the VPS is deployed", () => {
    assert.doesNotThrow(() => parse());
    assert.throws(() => parse({ "homelab:deployHomelab": "true" }), /homelab:registry: required/);
  });
});

describe("VPS host check script", () => {
  it("stops with a clear error when Docker is missing and installing it is not enabled", () => {
    // A PATH with the shell's basic tools but no docker.
    const bin = fs.mkdtempSync(path.join(os.tmpdir(), "homelab-nodocker-"));
    for (const tool of ["id", "hostname", "mkdir"]) {
      const found = spawnSync("sh", ["-c", `command -v ${tool}`], { encoding: "utf8" }).stdout.trim();
      fs.symlinkSync(found, path.join(bin, tool));
    }
    const script = renderHostCheckScript({ deployDir: path.join(bin, "deploy") });
    const r = spawnSync("/bin/sh", ["-c", script], { env: { PATH: bin }, encoding: "utf8" });
    fs.rmSync(bin, { recursive: true, force: true });
    assert.equal(r.status, HOST_CHECK_EXIT.noDocker);
    assert.match(r.stderr, /host-check: docker is not installed on .*, and installing it is not enabled/);
  });

  it("runs get.docker.com's script only when it has the pinned SHA-256", () => {
    const bin = fs.mkdtempSync(path.join(os.tmpdir(), "homelab-install-"));
    try {
      for (const tool of ["id", "hostname", "mkdir", "mktemp", "sha256sum", "cut", "rm", "cat", "sh", "touch"]) {
        fs.symlinkSync(spawnSync("sh", ["-c", `command -v ${tool}`], { encoding: "utf8" }).stdout.trim(), path.join(bin, tool));
      }
      // get.docker.com as a stand-in serves it: a script that leaves a marker when it runs.
      const installer = `#!/bin/sh\ntouch ${path.join(bin, "installed")}\n`;
      fs.writeFileSync(path.join(bin, "curl"), `#!/bin/sh\nwhile [ "$1" != -o ]; do shift; done\nprintf '%s' ${shq(installer)} > "$2"\n`, { mode: 0o755 });
      const run = (sha?: string): ReturnType<typeof spawnSync> =>
        spawnSync("/bin/sh", ["-c", renderHostCheckScript({ deployDir: path.join(bin, "deploy"), installDocker: true, dockerInstallSha256: sha })], { env: { PATH: bin }, encoding: "utf8" });
      const wrong = "0".repeat(64);
      const refused = run(wrong);
      assert.equal(refused.status, HOST_CHECK_EXIT.installFailed);
      const sha = crypto.createHash("sha256").update(installer).digest("hex");
      assert.match(String(refused.stderr), new RegExp(`https://get.docker.com has SHA-256 ${sha}, not the pinned ${wrong} \\(homelab:vpsDockerInstallSha256\\); nothing was installed`));
      assert.equal(fs.existsSync(path.join(bin, "installed")), false);
      // The pinned script runs (Docker is still missing after the stand-in, so the check then says so).
      const pinned = run(sha);
      assert.equal(fs.existsSync(path.join(bin, "installed")), true, String(pinned.stderr));
      assert.equal(pinned.status, HOST_CHECK_EXIT.noDocker);
    } finally {
      fs.rmSync(bin, { recursive: true, force: true });
    }
  });

  it("installs Docker only where enabled", () => {
    assert.match(renderHostCheckScript({ deployDir: "/opt/app" }), /^INSTALL_DOCKER='0'$/m);
    const script = renderHostCheckScript({ deployDir: "/opt/app", installDocker: true });
    assert.match(script, /^INSTALL_DOCKER='1'$/m);
    assert.match(script, /curl -fsSL https:\/\/get\.docker\.com -o "\$script"/);
    assert.match(script, /\$SUDO sh "\$script"/);
    assert.match(script, /needs root or passwordless sudo/);
    assert.equal(spawnSync("sh", ["-n", "-c", script]).status, 0);
  });

  // A stand-in `docker` on PATH: `compose exec … cat FILE` prints the file once it exists in $KEYS.
  function readSecretRun(attempts: number, writeAfterMs?: number): { status: number | null; stdout: string; stderr: string } {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "homelab-read-secret-"));
    try {
      fs.writeFileSync(path.join(tmp, "docker"), '#!/bin/sh\nfor a; do last=$a; done\ncat "$KEYS$last"\n', { mode: 0o755 });
      const keys = path.join(tmp, "keys");
      fs.mkdirSync(path.join(keys, "data"), { recursive: true });
      const script = renderReadSecretScript({ deployDir: "/opt/app", project: "app", service: "app", file: "/data/api_key.txt", attempts });
      const env = { ...process.env, PATH: `${tmp}:${process.env.PATH ?? ""}`, KEYS: keys };
      const cmd = writeAfterMs === undefined ? script : `(sleep ${writeAfterMs / 1000}; printf k3y > ${path.join(keys, "data", "api_key.txt")}) & ${script}`;
      const r = spawnSync("sh", ["-c", cmd], { env, encoding: "utf8" });
      return { status: r.status, stdout: r.stdout, stderr: r.stderr };
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  }

  it("reads a secret file the app writes late, printing only its content", () => {
    const r = readSecretRun(3, 1000);
    assert.deepEqual([r.status, r.stdout], [0, "k3y"]);
  });

  it("treats a key still missing after its attempts as late, not as a failed release: nothing on stdout, a line on stderr", () => {
    const r = readSecretRun(2);
    assert.deepEqual([r.status, r.stdout], [0, ""]);
    assert.match(r.stderr, /read-secret: \/data\/api_key\.txt is still empty or missing in service app after 2 attempts/);
  });

  it("tells people how to read a late key on its host", () => {
    assert.equal(
      apiKeyReadHint({ host: "vps.example.com", port: 2222, user: "deploy", deployDir: "/opt/app", project: "app", file: "/data/api_key.txt" }),
      "ssh -p 2222 deploy@vps.example.com docker compose --project-name 'app' --project-directory '/opt/app' exec -T 'app' cat '/data/api_key.txt'",
    );
  });
});

describe("VPS stack", () => {
  let rec: Recorder;
  let outputs: import("../../stacks/vps").VpsOutputs;

  before(async () => {
    rec = installMocks();
    pulumi.runtime.setAllConfig(validVpsConfig({ "homelab:vpsTls": "internal", "homelab:vpsHttpsPort": "18443" }), VPS_SECRET_KEYS);
    const { loadConfig } = await import("../../stacks/config");
    const { vpsStack } = await import("../../stacks/vps");
    outputs = vpsStack(loadConfig().vps!, DIGEST_A);
    await valueOf(outputs.dashboardUrl);
    await settle(rec);
  });

  it("keeps the API key secret", async () => {
    assert.equal(await isSecret(outputs.apiKey), true);
    assert.equal(await isSecret(outputs.dashboardUrl), false);
  });

  it("owns the version by default: the pinned image, and no webhook, secret or socket offered", async () => {
    assert.equal(outputs.versionOwner, "program");
    assert.equal(await valueOf(outputs.dashboardUrl), "https://app.homelab.test:18443/");
    assert.equal(await valueOf(outputs.image), `127.0.0.1:5000/infrakt:1.4.0@${DIGEST_A}`);
    assert.equal(outputs.webhookUrl, undefined);
    assert.equal(outputs.webhookSecret, undefined);
    assert.equal(outputs.runningImage, undefined);
    assert.equal(rec.ofType("pulumi-nodejs:dynamic/homelab:RandomSecret").length, 0);
    assert.equal(rec.ofType("pulumi-nodejs:dynamic/homelab:RunningImage").length, 0);
    const files = rec.byName("vps-compose-deploy").inputs.files as Record<string, string>;
    const app = YAML.parse(files["docker-compose.yml"]).services.app;
    assert.equal(app.image, `127.0.0.1:5000/infrakt:1.4.0@${DIGEST_A}`);
    assert.ok(!JSON.stringify(app.volumes).includes("docker.sock"));
    assert.equal(app.environment, undefined);
  });

  it("guards the app's name, which its volumes carry: a rename is refused before anything runs unless confirmed", async () => {
    const identity = rec.byName("vps-compose-deploy").inputs.identity as ScriptIdentity;
    assert.equal(identity.value, "app");
    assert.equal(identity.what, "homelab:vpsAppName");
    const { remoteScriptProvider } = await import("../../providers/remote-script");
    const inputs = rec.byName("vps-compose-deploy").inputs;
    const renamed = { ...inputs, identity: { ...identity, value: "shop" } };
    const refused = await remoteScriptProvider.check!({ ...inputs }, renamed);
    assert.equal(refused.failures?.length, 1);
    assert.equal(refused.failures[0].property, "identity");
    assert.match(refused.failures[0].reason, /^homelab:vpsAppName: "shop" renames "app"; the app's data and Caddy's certificates are volumes named after app on the VPS, and shop would start without them/);
    assert.match(refused.failures[0].reason, /docker compose --project-name app down.* set homelab:vpsRenamedFrom app to confirm$/);
    // Confirmed, or not renamed at all, or a stack from before the guard: nothing refused.
    assert.equal((await remoteScriptProvider.check!({ ...inputs }, { ...renamed, identity: { ...identity, value: "shop", renamedFrom: "app" } })).failures, undefined);
    assert.equal((await remoteScriptProvider.check!({ ...inputs }, { ...inputs })).failures, undefined);
    assert.equal((await remoteScriptProvider.check!({ ...inputs, identity: undefined }, renamed)).failures, undefined);
  });

  it("checks the host, deploys once over one remote script, then reads the API key", () => {
    const scripts = rec.ofType("pulumi-nodejs:dynamic/homelab:RemoteScript").map((r) => r.name);
    assert.deepEqual(scripts.sort(), ["vps-api-key", "vps-compose-deploy", "vps-host-check"]);
    const deploy = rec.byName("vps-compose-deploy");
    assert.ok(deploy.secretInputs.includes("stdin"));
    // The token and the env travel in the bundle on stdin, never in the script.
    assert.ok(!String(deploy.inputs.create).includes("ghp_token-789"));
    const secret = parseBundle(String(deploy.inputs.stdin))!;
    assert.deepEqual(Object.keys(secret.files), [".env"]);
    assert.deepEqual(Object.keys(secret.secrets), ["registry-password"]);
    assert.match(String(deploy.inputs.stdin), /^file \.env 0600 /m);
    // The compose file and the Caddyfile are plain inputs, which a preview shows line by line.
    assert.ok(!deploy.secretInputs.includes("files"));
    const files = deploy.inputs.files as Record<string, string>;
    assert.deepEqual(Object.keys(files).sort(), ["Caddyfile", "docker-compose.yml"]);
    assert.equal(YAML.parse(files["docker-compose.yml"]).services.app.ports, undefined);
    assert.match(files.Caddyfile, /^app\.homelab\.test(:\d+)? \{$/m);
    assert.deepEqual(deploy.inputs.envKeys, ["LOG_LEVEL"]);
  });
});

describe("VPS app that owns its version", () => {
  let rec: Recorder;
  let app: import("../../components/vps-app").VpsApp;

  before(async () => {
    rec = installMocks();
    const { VpsApp } = await import("../../components/vps-app");
    app = new VpsApp("self", {
      connection: { host: "203.0.113.10", user: "root", privateKey: "key" },
      deployDir: "/opt/infrakt",
      appName: "infrakt",
      image: "ghcr.io/e4dev-solutions/e4dev-infrakt:latest",
      domain: "infrakt.e4dev.app",
      versionOwner: "app",
      dockerSocketPath: "/run/docker.sock",
      webhookSecret: { version: 3 },
      registry: { server: "ghcr.io", username: "_token", token: pulumi.secret("ghp_token-789") },
    });
    await valueOf(app.dashboardUrl);
    await settle(rec);
  });

  it("names the tag it follows in the compose file, with the project at the host's paths", () => {
    const files = rec.byName("self-compose-deploy").inputs.files as Record<string, string>;
    const svc = YAML.parse(files["docker-compose.yml"]).services.infrakt;
    assert.equal(svc.image, "ghcr.io/e4dev-solutions/e4dev-infrakt:latest");
    assert.ok(svc.volumes.some((v: { source?: string; target?: string }) => v.source === "/run/docker.sock" && v.target === "/var/run/docker.sock"));
    assert.ok(svc.volumes.includes("/opt/infrakt:/opt/infrakt:ro"));
    assert.equal(svc.environment.COMPOSE_PROJECT_NAME, "infrakt");
    // The app pulls its tag itself, with the registry login in .env (secret stdin, never a plain input).
    const deploy = rec.byName("self-compose-deploy");
    assert.deepEqual(deploy.inputs.envKeys, ["DOCKER_AUTH_CONFIG", "GITHUB_WEBHOOK_SECRET"]);
    const env = Buffer.from(parseBundle(String(deploy.inputs.stdin))!.files[".env"], "utf8").toString();
    const auth = /^DOCKER_AUTH_CONFIG='(.*)'$/m.exec(env)![1];
    assert.deepEqual(JSON.parse(auth), { auths: { "ghcr.io": { auth: Buffer.from("_token:ghp_token-789").toString("base64") } } });
    assert.ok(!JSON.stringify(deploy.inputs.files).includes("ghp_token-789"));
  });

  it("offers the webhook with a generated secret, rotated only by its version", async () => {
    const r = rec.byName("self-webhook-secret");
    assert.equal(r.type, "pulumi-nodejs:dynamic/homelab:RandomSecret");
    assert.equal(r.inputs.bytes, 32);
    assert.equal(r.inputs.version, 3);
    assert.equal(await valueOf(app.webhookUrl!), "https://infrakt.e4dev.app/api/self-update");
    assert.equal(await isSecret(app.webhookSecret!), true);
  });

  it("records the digest it runs after each deploy of the program, and only then", () => {
    const r = rec.byName("self-running-image");
    assert.equal(r.type, "pulumi-nodejs:dynamic/homelab:RunningImage");
    assert.equal(r.inputs.repository, "ghcr.io/e4dev-solutions/e4dev-infrakt");
    assert.match(String(r.inputs.script), /label=com\.docker\.compose\.project=infrakt/);
    assert.ok(r.dependencies.some((d) => d.endsWith("::self-compose-deploy")), r.dependencies.join(", "));
    assert.ok(r.secretInputs.includes("connection"));
  });
});

describe("running image record", () => {
  const digest = (c: string): string => `sha256:${c.repeat(64)}`;

  it("reads the digest of the repository the app follows, from the containers that run", () => {
    const out = [
      `container abc123 ghcr.io/other/mirror@${digest("c")} ghcr.io/e4dev-solutions/e4dev-infrakt@${digest("d")}`,
      `container def456 ghcr.io/e4dev-solutions/e4dev-infrakt@${digest("e")}`,
    ].join("\n");
    assert.equal(parseRunningImage(out, "ghcr.io/e4dev-solutions/e4dev-infrakt"), digest("d"));
    assert.equal(parseRunningImage(`container abc123 mirror/x@${digest("f")}\n`, "ghcr.io/e4dev-solutions/e4dev-infrakt"), digest("f"));
    assert.equal(parseRunningImage("", "x/y"), "");
    assert.equal(parseRunningImage("container abc123\n", "x/y"), "", "an image built on the host has no registry digest");
  });

  it("selects containers by the project's labels, and refuses names that are not compose names", () => {
    const script = renderRunningImageScript({ project: "infrakt", service: "infrakt" });
    assert.match(script, /--filter 'label=com\.docker\.compose\.service=infrakt'/);
    assert.equal(spawnSync("sh", ["-n", "-c", script]).status, 0);
    assert.throws(() => renderRunningImageScript({ project: "infrakt", service: "x'; rm -rf /" }), /service: "x'; rm -rf \/" is not a compose name/);
  });

  it("records again only when the program deployed, never because the app moved on", async () => {
    const { runningImageProvider } = await import("../../providers/running-image");
    const olds = { connection: { host: "h", port: 22, user: "u", privateKey: "k" }, script: "s", repository: "r", trigger: "t1", recorded: digest("a"), running: digest("b") };
    assert.deepEqual(await runningImageProvider.diff!("id", olds, { ...olds, recorded: undefined, running: undefined }), { changes: false });
    assert.deepEqual(await runningImageProvider.diff!("id", olds, { ...olds, trigger: "t2" }), { changes: true });
  });
});

describe("generated secret provider", () => {
  it("generates 32 random bytes once and is replaced only when its version or size changes", async () => {
    const { randomSecretProvider } = await import("../../providers/random-secret");
    const a = await randomSecretProvider.create({ bytes: 32, version: 1 });
    const b = await randomSecretProvider.create({ bytes: 32, version: 1 });
    assert.match(a.outs.value, /^[a-f0-9]{64}$/);
    assert.notEqual(a.outs.value, b.outs.value);
    assert.deepEqual(await randomSecretProvider.diff!(a.id, a.outs, { bytes: 32, version: 1 }), { changes: false, replaces: [], deleteBeforeReplace: false });
    assert.deepEqual(await randomSecretProvider.diff!(a.id, a.outs, { bytes: 32, version: 2 }), { changes: true, replaces: ["version"], deleteBeforeReplace: false });
    assert.deepEqual(await randomSecretProvider.diff!(a.id, a.outs, { bytes: 16, version: 1 }), { changes: true, replaces: ["bytes"], deleteBeforeReplace: false });
  });
});
