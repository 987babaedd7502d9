import { after, before, describe, it } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import { DIGEST_A, DIGEST_B, SECRET_KEYS, TAG_A, TAG_B, releaseText, validConfig, excludedBlock } from "../support/fixtures";
import { Recorder, installMocks, isSecret, settle, valueOf } from "../support/mocks";
import { parseBundle } from "../../lib/bundle";

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "homelab-unit-"));
let rec: Recorder;
let outputs: import("../../stacks/homelab").HomelabOutputs;

before(async () => {
  fs.mkdirSync(path.join(dir, "flux/clusters/production"), { recursive: true });
  fs.writeFileSync(
    path.join(dir, "flux/clusters/production/release.yaml"),
    releaseText(TAG_A, TAG_B, "127.0.0.1:5000", excludedBlock([{ image: "backend", tag: "main-bad0bad-1707350000" }, { image: "frontend", tag: "main-bad0bad-1707360000" }])),
  );
  rec = installMocks();
  pulumi.runtime.setAllConfig(validConfig(), SECRET_KEYS);
  const { loadConfig } = await import("../../stacks/config");
  const { homelabStack } = await import("../../stacks/homelab");
  outputs = homelabStack(loadConfig(dir).homelab!, { kind: "resolved", digests: { frontend: DIGEST_A, backend: DIGEST_B } });
  await valueOf(outputs.release!);
  await settle(rec);
});

after(() => fs.rmSync(dir, { recursive: true, force: true }));

/** What a resource waits for: its own dependencies and its component parent's (children wait for their parent). */
function deps(name: string): string[] {
  const r = rec.byName(name);
  const parent = rec.resources.find((p) => p.urn === r.parent);
  return [...r.dependencies, ...(parent?.dependencies ?? [])];
}
function urn(name: string): string {
  return rec.byName(name).urn;
}

describe("homelab stack", () => {
  it("pins the frontend Deployment to tag and digest, with probes, limits, labels and non-root", () => {
    const d = rec.byName("frontend-deployment");
    assert.equal(d.type, "kubernetes:apps/v1:Deployment");
    const spec = d.inputs.spec as any;
    const c = spec.template.spec.containers[0];
    assert.equal(c.image, `127.0.0.1:5000/frontend:${TAG_A}@${DIGEST_A}`);
    assert.equal(c.readinessProbe.initialDelaySeconds, 10);
    assert.equal(c.readinessProbe.httpGet.path, "/");
    assert.deepEqual(c.resources, { requests: { cpu: "50m", memory: "64Mi" }, limits: { cpu: "500m", memory: "256Mi" } });
    assert.equal(spec.template.spec.securityContext.runAsNonRoot, true);
    assert.equal(spec.replicas, 2);
    // Every new pod at once, no old one gone before a new one is ready.
    assert.deepEqual(spec.strategy.rollingUpdate, { maxUnavailable: 0, maxSurge: "100%" });
    // A leaving pod serves on while Traefik drops it from its endpoints, inside its grace period.
    assert.deepEqual(c.lifecycle, { preStop: { sleep: { seconds: 15 } } });
    assert.equal(spec.template.spec.terminationGracePeriodSeconds, 45);
    assert.equal(spec.template.metadata.labels["app.kubernetes.io/version"], TAG_A);
    assert.deepEqual(spec.selector.matchLabels, { "app.kubernetes.io/name": "frontend", "app.kubernetes.io/instance": "frontend" });
    assert.equal((d.inputs.metadata as any).namespace, "website");
    assert.deepEqual(spec.template.spec.imagePullSecrets, [{ name: "frontend-registry" }]);
  });

  it("routes /api to the VM through a selector-less Service and EndpointSlice, ahead of /", () => {
    const svc = rec.byName("frontend-backend-service").inputs as any;
    assert.equal(svc.spec.selector, undefined);
    assert.deepEqual(svc.spec.ports, [{ name: "http", port: 3001, targetPort: 3001 }]);
    const slice = rec.byName("frontend-backend-endpoints").inputs as any;
    assert.equal(slice.addressType, "IPv4");
    assert.deepEqual(slice.endpoints[0].addresses, ["127.0.0.1"]);
    assert.equal(slice.metadata.labels["kubernetes.io/service-name"], "backend-service");
    const api = rec.byName("frontend-ingress-api").inputs as any;
    const web = rec.byName("frontend-ingress-web").inputs as any;
    assert.equal(api.spec.rules[0].http.paths[0].path, "/api");
    assert.equal(api.spec.rules[0].http.paths[0].backend.service.name, "backend-service");
    assert.equal(web.spec.rules[0].http.paths[0].path, "/");
    assert.equal(web.spec.rules[0].http.paths[0].backend.service.name, "frontend-service");
    assert.ok(
      Number(api.metadata.annotations["traefik.ingress.kubernetes.io/router.priority"]) >
        Number(web.metadata.annotations["traefik.ingress.kubernetes.io/router.priority"]),
    );
    assert.equal(api.spec.ingressClassName, "traefik");
  });

  it("installs Flux before its GitRepository and Kustomization, with the deploy key as a secret", () => {
    const install = rec.byName("flux-install");
    assert.equal(install.type, "kubernetes:yaml/v2:ConfigGroup");
    assert.deepEqual(install.inputs.files, ["https://github.com/fluxcd/flux2/releases/download/v2.9.5/install.yaml"]);
    const secret = rec.byName("flux-git-auth");
    assert.ok(secret.secretInputs.includes("stringData"));
    assert.ok(deps("flux-git-auth").includes(install.urn));
    const repo = rec.byName("flux-source");
    assert.equal(repo.type, "kubernetes:source.toolkit.fluxcd.io/v1:GitRepository");
    assert.deepEqual((repo.inputs.spec as any).ref, { branch: "master" });
    assert.equal((repo.inputs.spec as any).secretRef.name, "flux-system");
    assert.ok(deps("flux-source").includes(install.urn));
    const ks = rec.byName("flux-sync");
    assert.equal(ks.type, "kubernetes:kustomize.toolkit.fluxcd.io/v1:Kustomization");
    assert.deepEqual(ks.inputs.spec, {
      interval: "10m",
      path: "./flux/clusters/production",
      prune: true,
      wait: true,
      timeout: "5m",
      sourceRef: { kind: "GitRepository", name: "flux-system" },
    });
  });

  it("creates image automation with the seeds' policy and the excluded tag", () => {
    const repo = rec.byName("image-automation-backend-repository");
    assert.equal(repo.type, "kubernetes:image.toolkit.fluxcd.io/v1:ImageRepository");
    assert.deepEqual(repo.inputs.spec, {
      image: "127.0.0.1:5000/backend",
      interval: "1m",
      secretRef: { name: "harbor-credentials" },
      insecure: true,
      exclusionList: ["^.*\\.sig$", "^main-bad0bad-1707350000$"],
    });
    // Each image excludes only its own rolled-back tags.
    assert.deepEqual((rec.byName("image-automation-frontend-repository").inputs.spec as { exclusionList: string[] }).exclusionList, ["^.*\\.sig$", "^main-bad0bad-1707360000$"]);
    const policy = rec.byName("image-automation-frontend-policy");
    assert.deepEqual(policy.inputs.spec, {
      imageRepositoryRef: { name: "frontend" },
      filterTags: { pattern: "^main-[a-f0-9]{7}-(?<ts>[0-9]{10})$", extract: "$ts" },
      policy: { numerical: { order: "asc" } },
    });
    const update = rec.byName("image-automation-update").inputs.spec as any;
    assert.equal(update.update.strategy, "Setters");
    assert.equal(update.update.path, "./flux/clusters/production");
    assert.equal(update.git.checkout.ref.branch, "master");
    assert.equal(update.git.push.branch, "master");
    assert.match(update.git.commit.messageTemplate, /range \.Changed\.Changes/);
    assert.equal(update.suspend, undefined, "not frozen: Flux writes release commits");
    const creds = rec.byName("image-automation-registry-credentials");
    assert.equal((creds.inputs.metadata as any).name, "harbor-credentials");
    assert.equal(creds.inputs.type, "kubernetes.io/dockerconfigjson");
    assert.ok(creds.secretInputs.includes("stringData"));
    const json = JSON.parse((creds.inputs.stringData as any)[".dockerconfigjson"]);
    assert.equal(json.auths["127.0.0.1:5000"].username, "robot$flux");
    // Custom resources wait for the CRDs Flux installs.
    assert.ok(deps("image-automation-frontend-repository").includes(urn("flux-install")));
  });

  it("records which parts go out without their version checked (no marker, no version field configured)", () => {
    const record = rec.byName("release-record");
    assert.deepEqual((record.inputs.release as { unverified?: string[] }).unverified, ["frontend", "backend"]);
  });

  it("gives each gate's soak where to read restarts, kept secret: the release's pods by label, the backend container over the pinned SSH", () => {
    const front = rec.byName("frontend-gate-probe");
    assert.ok(front.secretInputs.includes("restarts"));
    const pods = front.inputs.restarts as { kind: string; namespace: string; selector: string; kubeconfig: string };
    assert.deepEqual([pods.kind, pods.namespace, pods.selector], ["pods", "website", `app.kubernetes.io/instance=frontend,app.kubernetes.io/version=${TAG_A}`]);
    assert.ok(pods.kubeconfig.length > 0);
    const back = rec.byName("backend-gate-probe");
    assert.ok(back.secretInputs.includes("restarts"));
    const vm = back.inputs.restarts as { kind: string; services: string[]; inspectScript: string; connection: { hostKey?: string; privateKey: string } };
    assert.deepEqual([vm.kind, vm.services], ["compose", ["backend"]]);
    assert.equal(vm.inspectScript, (rec.byName("backend-deploy").inputs as { inspect: string }).inspect);
    assert.ok(vm.connection.hostKey && vm.connection.privateKey);
  });

  it("orders the release: VM check, frontend, frontend gate, backend, backend gate, record", () => {
    assert.ok(deps("frontend-deployment").includes(urn("backend-vm-check")), "frontend waits for the VM check");
    assert.ok(deps("frontend-gate-probe").includes(urn("frontend-deployment")), "frontend gate waits for the rollout");
    assert.ok(deps("backend-deploy").includes(urn("frontend-gate-probe")), "backend waits on the frontend gate");
    assert.ok(deps("backend-gate-probe").includes(urn("backend-deploy")), "backend gate waits for the backend");
    assert.ok(deps("release-record").includes(urn("backend-gate-probe")), "promotion waits on the backend gate");
    assert.ok(!deps("backend-deploy").includes(urn("backend-gate-probe")));
  });

  it("runs the backend deploy over SSH with the pinned host key, the compose file plain and the secrets on stdin", () => {
    const cmd = rec.byName("backend-deploy");
    assert.equal(cmd.type, "pulumi-nodejs:dynamic/homelab:RemoteScript");
    const conn = cmd.inputs.connection as any;
    assert.equal(conn.host, "127.0.0.1");
    assert.equal(conn.port, 2222);
    assert.equal(conn.user, "deploy");
    assert.match(conn.hostKey, /^ssh-ed25519 /);
    assert.ok(cmd.secretInputs.includes("connection"), "the private key must be secret");
    assert.ok(cmd.secretInputs.includes("stdin"), "the secret part of the bundle must be secret");
    const create = cmd.inputs.create as string;
    assert.doesNotMatch(create, /registry-pass-123|db-secret-456/);
    assert.match(create, /DIR='\/opt\/backend'/);
    assert.match(cmd.inputs.delete as string, /compose down --remove-orphans/);
    assert.doesNotMatch(cmd.inputs.delete as string, /-v\b|--volumes/);
    // The compose file is a plain input a preview shows; the .env and the password are not.
    assert.ok(!cmd.secretInputs.includes("files") && !cmd.secretInputs.includes("envKeys"));
    const files = cmd.inputs.files as Record<string, string>;
    assert.deepEqual(Object.keys(files), ["docker-compose.yml"]);
    assert.match(files["docker-compose.yml"], new RegExp(`image: 127.0.0.1:5000/backend:${TAG_B}@${DIGEST_B}`));
    assert.deepEqual(cmd.inputs.envKeys, ["DATABASE_URL", "NODE_ENV"]);
    assert.doesNotMatch(JSON.stringify([files, cmd.inputs.envKeys]), /registry-pass-123|db-secret-456|production/);
    const bundle = parseBundle(String(cmd.inputs.stdin))!;
    assert.deepEqual(Object.keys(bundle.files), [".env"]);
    assert.match(bundle.files[".env"], /DATABASE_URL='postgres:\/\/app:db-secret-456@db\/app'/);
    assert.equal(bundle.secrets["registry-password"], "registry-pass-123");
  });

  it("gates on the public frontend URL, then the VM and the ingress route", () => {
    const fg = rec.byName("frontend-gate-probe");
    assert.equal(fg.type, "pulumi-nodejs:dynamic/homelab:HealthGate");
    assert.deepEqual(fg.inputs.targets, [{ url: "http://127.0.0.1:8080/" }]);
    assert.equal((fg.inputs.options as any).deadlineMs, 300000);
    // The seeds' "1-2 min" before the next stage: every gate soaks a minute by default.
    assert.equal((fg.inputs.options as any).soakMs, 60000);
    const bg = rec.byName("backend-gate-probe");
    assert.deepEqual(
      (bg.inputs.targets as { url: string }[]).map((t) => t.url),
      ["http://127.0.0.1:3001/api/health", "http://127.0.0.1:8080/api/health"],
    );
  });

  it("keeps secrets out of plain outputs and marks the kubeconfig secret", async () => {
    const k3s = rec.byName("k3s");
    assert.equal(k3s.type, "pulumi:providers:kubernetes");
    assert.ok(k3s.secretInputs.includes("kubeconfig"));
    assert.equal(await valueOf(outputs.frontendUrl), "http://127.0.0.1:8080/");
    assert.equal(await valueOf(outputs.apiUrl), "http://127.0.0.1:8080/api");
    assert.equal(await isSecret(outputs.release!), false);
    const text = JSON.stringify(await valueOf(outputs.release!));
    assert.doesNotMatch(text, /registry-pass-123|db-secret-456|PRIVATE KEY/);
  });

  it("gives every component child its parent", () => {
    const components = new Map(rec.resources.filter((r) => r.type.startsWith("homelab:")).map((r) => [r.name, r.urn]));
    for (const child of ["frontend-deployment", "flux-source", "backend-deploy", "frontend-gate-probe", "image-automation-update"]) {
      const parent = rec.byName(child).parent;
      assert.ok([...components.values()].includes(parent), `${child} has a component parent`);
    }
  });
});
