import { after, before, describe, it } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "fs";
import * as http from "http";
import * as net from "net";
import * as os from "os";
import * as path from "path";
import { ConfigMap, EngineEvent } from "@pulumi/pulumi/automation";
import { ensureFluxManifests } from "../../sandbox/flux-manifests";
import { HOST_KEY, TAG_A, TAG_B, fakePrivateKey } from "../support/fixtures";
import { updateReleaseFile } from "../../lib/release";
import { LocalStack, createLocalStack } from "../support/local-stack";
import { SandboxCluster, embeddedKubeconfig, startCluster } from "../../sandbox/cluster";
import { RunningRegistry, startRegistry } from "../support/registry";

/*
 * `pulumi preview` of the real program with the real engine, provider and policy pack, against
 * loopback targets: a real registry holding the release's images, a real API server (kwok), and
 * an SSH port and a health URL that count every connection (a preview must make none).
 */
let work: string;
let registry: RunningRegistry;
let local: LocalStack;
let httpHits = 0;
let sshConnections = 0;
let httpServer: http.Server;
let sshServer: net.Server;
const events: EngineEvent[] = [];
let digests: { frontend: string; backend: string };
let vpsDigest: string;
let summary: Record<string, number> | undefined;
let stdout = "";
let cluster: SandboxCluster;
let clientKeyData = "";
const POLICY = path.resolve(__dirname, "../../policy");

before(async () => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), "homelab-preview-"));
  registry = await startRegistry(path.join(work, "registry"));
  digests = { frontend: await registry.push("frontend", TAG_A), backend: await registry.push("backend", TAG_B) };
  vpsDigest = await registry.push("vps-app", "1.0.0");
  httpServer = http.createServer((_req, res) => {
    httpHits++;
    res.end("ok");
  });
  await new Promise<void>((r) => httpServer.listen(0, "127.0.0.1", r));
  sshServer = net.createServer((s) => {
    sshConnections++;
    s.destroy();
  });
  await new Promise<void>((r) => sshServer.listen(0, "127.0.0.1", r));
  const releaseFile = path.join(work, "release.yaml");
  fs.writeFileSync(
    releaseFile,
    `apiVersion: v1\nkind: ConfigMap\nmetadata: {name: website-release, namespace: flux-system}\ndata:\n` +
      `  frontend: ${registry.host}/frontend:${TAG_A} # {"$imagepolicy": "flux-system:frontend"}\n` +
      `  backend: ${registry.host}/backend:${TAG_B} # {"$imagepolicy": "flux-system:backend"}\n`,
  );
  cluster = await startCluster(path.join(work, "cluster"), { nodes: 1, log: () => undefined });
  // Its certificates embedded, as k3s writes it: the client key's data is then a secret to look for.
  const kubeconfig = embeddedKubeconfig(cluster.kubeconfig);
  clientKeyData = /client-key-data: (\S+)/.exec(kubeconfig)?.[1] ?? "";
  const publicUrl = `http://127.0.0.1:${(httpServer.address() as net.AddressInfo).port}`;
  const config: ConfigMap = {
    "homelab:registry": { value: registry.host },
    "homelab:registryUsername": { value: registry.username },
    "homelab:registryPassword": { value: registry.password, secret: true },
    "homelab:kubeconfig": { value: kubeconfig, secret: true },
    "homelab:publicUrl": { value: publicUrl },
    "homelab:vmHost": { value: "127.0.0.1" },
    "homelab:vmPort": { value: String((sshServer.address() as net.AddressInfo).port) },
    "homelab:vmUser": { value: "deploy" },
    "homelab:vmHostKey": { value: HOST_KEY },
    "homelab:vmPrivateKey": { value: fakePrivateKey(), secret: true },
    "homelab:gitUrl": { value: "ssh://git@127.0.0.1:1/website.git" },
    "homelab:gitKnownHosts": { value: `127.0.0.1 ${HOST_KEY}` },
    "homelab:gitDeployKey": { value: fakePrivateKey(), secret: true },
    "homelab:backendEnv": { value: JSON.stringify({ API_SECRET: "backend-secret-321" }), secret: true },
    "homelab:releaseFile": { value: releaseFile },
    "homelab:fluxManifests": { value: ensureFluxManifests() },
    // The VPS part too, reached on the same counting SSH port.
    "homelab:deployVps": { value: "true" },
    "homelab:vpsHost": { value: "127.0.0.1" },
    "homelab:vpsPort": { value: String((sshServer.address() as net.AddressInfo).port) },
    "homelab:vpsHostKey": { value: HOST_KEY },
    "homelab:vpsPrivateKey": { value: fakePrivateKey(), secret: true },
    "homelab:vpsDomain": { value: "app.homelab.test" },
    "homelab:vpsImage": { value: `${registry.host}/vps-app:1.0.0` },
    "homelab:vpsRegistryUsername": { value: registry.username },
    "homelab:vpsRegistryToken": { value: registry.password, secret: true },
    "homelab:vpsRegistryInsecure": { value: "true" },
  };
  local = await createLocalStack(config, "preview");
  const result = await local.stack.preview({ onEvent: (e) => events.push(e), color: "never", diff: true, policyPacks: [POLICY] });
  summary = result.changeSummary;
  stdout = result.stdout;
});

after(async () => {
  // Each step runs even when an earlier one fails, so nothing is left running.
  const steps: (() => Promise<void> | void)[] = [
    () => local?.cleanup(),
    () => registry?.stop({ keepData: false }),
    () => cluster?.stop(),
    () => {
      httpServer?.closeAllConnections();
      httpServer?.close();
      sshServer?.close();
    },
    () => fs.rmSync(work, { recursive: true, force: true }),
  ];
  for (const step of steps) {
    await Promise.resolve()
      .then(step)
      .catch((e: unknown) => process.stderr.write(`cleanup: ${(e as Error).message}\n`));
  }
});

function planned(): Map<string, { op: string; type: string }> {
  const steps = new Map<string, { op: string; type: string }>();
  for (const e of events) {
    const m = e.resourcePreEvent?.metadata;
    if (m) {
      steps.set(m.urn.split("::").pop()!, { op: m.op, type: m.type });
    }
  }
  return steps;
}

describe("pulumi preview of the local stack (real engine)", () => {
  it("plans to create every stage of the release", () => {
    const steps = planned();
    const expected: [string, string][] = [
      ["k3s", "pulumi:providers:kubernetes"],
      ["flux-install", "kubernetes:yaml/v2:ConfigGroup"],
      ["flux-source", "kubernetes:source.toolkit.fluxcd.io/v1:GitRepository"],
      ["flux-sync", "kubernetes:kustomize.toolkit.fluxcd.io/v1:Kustomization"],
      ["image-automation-frontend-repository", "kubernetes:image.toolkit.fluxcd.io/v1:ImageRepository"],
      ["image-automation-backend-policy", "kubernetes:image.toolkit.fluxcd.io/v1:ImagePolicy"],
      ["image-automation-update", "kubernetes:image.toolkit.fluxcd.io/v1:ImageUpdateAutomation"],
      ["backend-vm-check", "pulumi-nodejs:dynamic/homelab:RemoteScript"],
      ["frontend-deployment", "kubernetes:apps/v1:Deployment"],
      ["frontend-ingress-api", "kubernetes:networking.k8s.io/v1:Ingress"],
      ["frontend-backend-endpoints", "kubernetes:discovery.k8s.io/v1:EndpointSlice"],
      ["frontend-gate-probe", "pulumi-nodejs:dynamic/homelab:HealthGate"],
      ["backend-deploy", "pulumi-nodejs:dynamic/homelab:RemoteScript"],
      ["backend-gate-probe", "pulumi-nodejs:dynamic/homelab:HealthGate"],
      ["release-record", "pulumi-nodejs:dynamic/homelab:ReleaseRecord"],
      ["vps", "homelab:vps:VpsApp"],
      ["vps-host-check", "pulumi-nodejs:dynamic/homelab:RemoteScript"],
      ["vps-compose-deploy", "pulumi-nodejs:dynamic/homelab:RemoteScript"],
      ["vps-api-key", "pulumi-nodejs:dynamic/homelab:RemoteScript"],
    ];
    for (const [name, type] of expected) {
      const step = steps.get(name);
      assert.ok(step, `preview plans ${name}; planned: ${[...steps.keys()].join(", ")}`);
      assert.equal(step.type, type, name);
      assert.equal(step.op, "create", name);
    }
    assert.ok((summary?.create ?? 0) >= expected.length, JSON.stringify(summary));
  });

  it("protects what must not be deleted by accident, and never deletes the namespace or Flux's CRDs", () => {
    const state = new Map<string, { protect?: boolean; retainOnDelete?: boolean }>();
    for (const e of events) {
      const m = e.resourcePreEvent?.metadata;
      if (m?.new) {
        state.set(m.urn.split("::").pop()!, { protect: m.new.protect, retainOnDelete: m.new.retainOnDelete });
      }
    }
    for (const name of ["frontend-namespace", "flux-install"]) {
      assert.deepEqual(state.get(name), { protect: true, retainOnDelete: true }, name);
    }
    for (const name of ["backend-deploy", "vps-compose-deploy"]) {
      assert.equal(state.get(name)?.protect, true, name);
    }
    // The program owns the VPS app's version here: no webhook, so no secret to generate.
    assert.equal(state.get("vps-webhook-secret"), undefined);
    assert.notEqual(state.get("frontend-deployment")?.protect, true);
  });

  it("resolved the release's tags to their digests in the registry", () => {
    assert.match(stdout, new RegExp(`${registry.host}/frontend:${TAG_A}@${digests.frontend}`));
    assert.match(stdout, new RegExp(`vpsImage\\s*: "${registry.host}/vps-app:1\\.0\\.0@${vpsDigest}"`));
  });

  it("shows what each host will get: the backend's compose file, the VPS's Caddyfile, the .env's variable names", () => {
    assert.match(stdout, new RegExp(`docker-compose\\.yml: \\(yaml\\) \\{[^]*image\\s*: "${registry.host}/backend:${TAG_B}@${digests.backend}"`));
    assert.match(stdout, /Caddyfile\s*: "app\.homelab\.test \{\\n\\treverse_proxy app:8000/);
    assert.match(stdout, /envKeys\s*: \[\s*\[0\]: "API_SECRET"\s*\]/);
  });

  it("contacts neither the VM, the VPS nor the health URLs during preview", () => {
    assert.equal(sshConnections, 0);
    assert.equal(httpHits, 0);
  });

  it("warns that the plain-HTTP registry's password and images cross the network unencrypted", () => {
    const warnings = events.flatMap((e) => (e.diagnosticEvent?.severity === "warning" ? [e.diagnosticEvent.message] : []));
    assert.ok(
      warnings.some((w) => w.includes(`homelab:registryInsecure: the registry ${registry.host} is reached over plain HTTP`)),
      `the warnings: ${JSON.stringify(warnings)}`,
    );
  });

  it("ran the policy pack on the plan, which passed", () => {
    assert.match(stdout, /homelab-guardrails/);
    const violations = events.filter((e) => e.policyEvent && e.policyEvent.enforcementLevel === "mandatory");
    assert.deepEqual(violations.map((e) => e.policyEvent?.message), []);
  });

  it("refuses a new pair while the release file is frozen, naming who froze it, when and why", async () => {
    const file = path.join(work, "release.yaml");
    const text = fs.readFileSync(file, "utf8");
    fs.writeFileSync(file, updateReleaseFile(text, { frozen: { by: "Ada", at: "2026-12-07T09:00:00Z", reason: "demo day" } }));
    try {
      await assert.rejects(
        local.stack.preview({ color: "never", policyPacks: [POLICY] }),
        /releases are frozen by Ada at 2026-12-07T09:00:00Z: "demo day"\. .*release\.yaml names frontend \S+, backend \S+, and the stack has promoted nothing yet/,
      );
    } finally {
      fs.writeFileSync(file, text);
    }
  });

  it("refuses the old switch that turned host-key checking off", async () => {
    await local.stack.setAllConfig({ "homelab:vmSkipHostKeyCheck": { value: "true" } });
    await local.stack.removeConfig("homelab:vmHostKey");
    await assert.rejects(local.stack.preview({ color: "never", policyPacks: [POLICY] }), /homelab:vmSkipHostKeyCheck: "true" no longer turns host-key checking off/);
  });

  it("shows no secret in the plan or the engine events", () => {
    const text = stdout + JSON.stringify(events);
    assert.ok(clientKeyData.length > 40, "the kubeconfig embeds its client key");
    // The key's data, not the field's name: the serialized gate provider's code names the field.
    for (const secret of [registry.password, "backend-secret-321", "PRIVATE KEY", clientKeyData.slice(0, 40)]) {
      assert.ok(!text.includes(secret), `preview output leaks ${secret.slice(0, 4)}…`);
    }
  });
});
