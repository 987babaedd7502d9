import { describe, it } from "node:test";
import * as assert from "node:assert/strict";
import type { EngineEvent } from "@pulumi/pulumi/automation";
import { COMPOSE_HOST_TYPE } from "../../components/compose-host";
import { FRONTEND_APP_TYPE } from "../../components/frontend-app";
import { GATE_PROBE_TYPE } from "../../components/health-gate";
import { addInterruption } from "../../deploy/interruption";
import { apiServer, platformEndpoints } from "../../deploy/platform";
import type { Reach } from "../../deploy/platform";
import { releaseHistory } from "../../deploy/releases";
import { classify, describeVerdict } from "../../deploy/verdict";
import { RELEASE_RECORD_TYPE } from "../../components/release-record";
import { REMOTE_SCRIPT_TYPE } from "../../providers/remote-script";

const STACK = "urn:pulumi:production::homelab::pulumi:pulumi:Stack";
const urn = (types: string[], name: string): string => `urn:pulumi:production::homelab::${types.join("$")}::${name}`;
const error = (u: string | undefined, message: string): EngineEvent => ({ sequence: 0, timestamp: 0, diagnosticEvent: { urn: u, message, color: "never", severity: "error" } });

const FRONTEND_DEPLOYMENT = urn([FRONTEND_APP_TYPE, "kubernetes:apps/v1:Deployment"], "frontend");
const FRONTEND_GATE = urn(["homelab:release:HealthGate", GATE_PROBE_TYPE], "frontend-gate-probe");
const BACKEND_GATE = urn(["homelab:release:HealthGate", GATE_PROBE_TYPE], "backend-gate-probe");
const BACKEND_DEPLOY = urn([COMPOSE_HOST_TYPE, REMOTE_SCRIPT_TYPE], "backend-deploy");
const HOST_CHECK = urn(["homelab:host:HostCheck", REMOTE_SCRIPT_TYPE], "backend-vm-check");

const ALL_UP: Reach[] = [
  { part: "Kubernetes API", address: "127.0.0.1:6443", answered: true },
  { part: "backend VM (SSH)", address: "127.0.0.1:2222", answered: true },
  { part: "registry", address: "127.0.0.1:5000", answered: true },
  { part: "ingress", address: "127.0.0.1:8080", answered: true },
];
const down = (part: Reach["part"]): Reach[] => ALL_UP.map((r) => (r.part === part ? { ...r, answered: false } : r));

describe("who is at fault when a release fails", () => {
  it("blames a frontend whose pods crash-loop or never turn Ready, naming the pods", () => {
    const v = classify(
      [error(FRONTEND_DEPLOYMENT, "updating failed: Resource 'frontend' was updated but failed to initialize\n[Pod website/frontend-6d9f-x2]: containers with unready status: [frontend] -- [CrashLoopBackOff] back-off 20s restarting failed container")],
      undefined,
      ALL_UP,
    );
    assert.equal(v.fault, "release");
    assert.equal(v.part, "frontend");
    assert.match(v.evidence, /\[Pod website\/frontend-6d9f-x2\]: containers with unready status: \[frontend\] -- \[CrashLoopBackOff\]/);
  });

  it("blames the platform for a rollout cut by the API server, whether its address answers now or not", () => {
    const cut = error(FRONTEND_DEPLOYMENT, 'updating failed: Get "https://127.0.0.1:6443/apis/apps/v1/namespaces/website/deployments/frontend": dial tcp 127.0.0.1:6443: connect: connection refused');
    assert.deepEqual(classify([cut], undefined, ALL_UP), { fault: "platform", part: "Kubernetes API", evidence: (classify([cut], undefined, ALL_UP) as { evidence: string }).evidence });
    const v = classify([error(FRONTEND_DEPLOYMENT, "updating failed: the rollout stopped")], undefined, down("Kubernetes API"));
    assert.equal(v.fault, "platform");
    assert.equal(v.part, "Kubernetes API");
    assert.match(v.evidence, /127\.0\.0\.1:6443 does not answer/);
  });

  it("blames the registry, not the release, for a pod whose image cannot be pulled", () => {
    const v = classify([error(FRONTEND_DEPLOYMENT, "failed\n[Pod website/frontend-1]: containers with incomplete status: [frontend] -- [ImagePullBackOff] Back-off pulling image")], undefined, ALL_UP);
    assert.deepEqual([v.fault, v.part], ["platform", "registry"]);
  });

  it("treats a rollout failure without evidence from its pods as the platform's (unknown stays unknown)", () => {
    const v = classify([error(FRONTEND_DEPLOYMENT, "updating failed: 1 error occurred: timed out")], undefined, ALL_UP);
    assert.equal(v.fault, "platform");
  });

  it("blames a release whose gate got a wrong HTTP answer while the platform answers", () => {
    const msg = "health gate failed: http://127.0.0.1:8080/api/health did not become healthy after 4 attempt(s) in 20.1s; last result: status 502 (expected 200)";
    const v = classify([error(BACKEND_GATE, msg)], undefined, ALL_UP);
    assert.deepEqual(v, { fault: "release", part: "backend", evidence: "backend-gate-probe: status 502 (expected 200)" });
    const f = classify([error(FRONTEND_GATE, msg.replace("status 502 (expected 200)", 'status 200 but version is "1.0" (expected "1.1")'))], undefined, ALL_UP);
    assert.deepEqual([f.fault, f.part], ["release", "frontend"]);
  });

  it("does not blame the release when the gate still got the previous release's version: the traffic had not switched", () => {
    const msg = 'health gate failed: http://127.0.0.1:8080/ did not become healthy after 66 attempt(s) in 36.1s; last result: status 200 but the version (meta:app-version) is "main-9b4046a-1796678358", not "main-dd6e7ad-1796678359"';
    const previous = { frontend: "main-9b4046a-1796678358", backend: "main-ae987d3-1796678360" };
    const v = classify([error(FRONTEND_GATE, msg)], undefined, ALL_UP, previous);
    assert.deepEqual([v.fault, v.part], ["platform", "ingress"]);
    assert.match((v as { evidence: string }).evidence, /^the previous frontend release main-9b4046a-1796678358 still answered at the gate's URL instead of the new one/);
    // Another build's version (a stale image under a new tag) is the release's, as is any answer without a previous release to compare.
    const stale = classify([error(FRONTEND_GATE, msg)], undefined, ALL_UP, { ...previous, frontend: "main-0a0a0a0-1796678000" });
    assert.deepEqual([stale.fault, stale.part], ["release", "frontend"]);
    assert.deepEqual(classify([error(FRONTEND_GATE, msg)], undefined, ALL_UP).fault, "release");
  });

  it("does not blame the release for a gate failure while a host it runs on does not answer", () => {
    const msg = "health gate failed: http://127.0.0.1:8080/api/health did not become healthy after 4 attempt(s) in 20.1s; last result: status 502 (expected 200)";
    const v = classify([error(BACKEND_GATE, msg)], undefined, down("backend VM (SSH)"));
    assert.deepEqual([v.fault, v.part], ["platform", "backend VM (SSH)"]);
    const noAnswer = classify([error(FRONTEND_GATE, msg.replace("status 502 (expected 200)", "ECONNREFUSED"))], undefined, ALL_UP);
    assert.deepEqual([noAnswer.fault, noAnswer.part], ["platform", "ingress"]);
  });

  it("blames a release that passed its gate and then stopped answering in the soak, unless the platform is down too", () => {
    const msg = "health gate failed in its soak: http://127.0.0.1:3001/api/health passed, then failed 7.2s into the 24s soak: ECONNREFUSED";
    assert.deepEqual(classify([error(BACKEND_GATE, msg)], undefined, ALL_UP), {
      fault: "release",
      part: "backend",
      evidence: "backend-gate-probe: passed, then failed 7.2s into the 24s soak: ECONNREFUSED",
    });
    const cut = classify([error(BACKEND_GATE, msg)], undefined, down("backend VM (SSH)"));
    assert.deepEqual([cut.fault, cut.part], ["platform", "backend VM (SSH)"]);
  });

  it("reads the remote deploy's exit code: a failed health check is the release's, a pull or an engine is the platform's", () => {
    const unhealthy = classify([error(BACKEND_DEPLOY, "update on 127.0.0.1 exited with code 10:\ndeploy: service backend is unhealthy\ndeploy: FAILED: health check failed\ndeploy: previous release restored and healthy")], undefined, ALL_UP);
    assert.deepEqual([unhealthy.fault, unhealthy.part], ["release", "backend"]);
    assert.match(unhealthy.evidence, /service backend is unhealthy/);
    const pull = classify([error(BACKEND_DEPLOY, "update on 127.0.0.1 exited with code 13:\ndeploy: PULL: the images of the release could not be pulled; the running release was not touched")], undefined, ALL_UP);
    assert.deepEqual([pull.fault, pull.part], ["platform", "registry"]);
    const engine = classify([error(BACKEND_DEPLOY, "update on 127.0.0.1 exited with code 14:\ndeploy: ENGINE: the Docker engine on vm does not answer")], undefined, ALL_UP);
    assert.deepEqual([engine.fault, engine.part], ["platform", "backend VM's Docker engine"]);
    const check = classify([error(HOST_CHECK, "create on 127.0.0.1 exited with code 22:\nhost-check: deploy cannot reach the Docker engine on vm")], undefined, ALL_UP);
    assert.deepEqual([check.fault, check.part], ["platform", "backend VM's Docker engine"]);
    const lost = classify([error(BACKEND_DEPLOY, "update on 127.0.0.1 exited with code 18:\ndeploy: pulling images\ndeploy: LOST: run 17-3 on vm ended without a verdict (killed, or the host restarted); the next deploy brings back the current release first")], undefined, ALL_UP);
    assert.deepEqual([lost.fault, lost.part], ["platform", "backend VM (SSH)"]);
    assert.match(lost.evidence, /LOST: run 17-3 on vm ended without a verdict/);
  });

  it("blames the VM's Docker engine when a read of the host finds it not answering (a refresh while dockerd restarts)", () => {
    const message = "read on 10.252.122.3 exited with code 1:\nCannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?";
    const v = classify([error(BACKEND_DEPLOY, `backend-deploy: ${message}`)], undefined, ALL_UP);
    assert.deepEqual([v.fault, v.part], ["platform", "backend VM's Docker engine"]);
    assert.equal(v.evidence, "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?");
    // Any other failed read stays unknown: nothing says the platform is to blame.
    assert.deepEqual(classify([error(BACKEND_DEPLOY, "read on 10.252.122.3 exited with code 1:\nsomething else")], undefined, ALL_UP).part, "unknown");
  });

  it("blames the VM's SSH for a connection refused or lost mid-deploy", () => {
    for (const message of ["cannot reach deploy@127.0.0.1:2222: ECONNREFUSED", "the SSH connection to deploy@127.0.0.1:2222 was lost before the script finished (the host may have been changed)"]) {
      const v = classify([error(BACKEND_DEPLOY, message)], undefined, ALL_UP);
      assert.deepEqual([v.fault, v.part], ["platform", "backend VM (SSH)"], message);
    }
  });

  it("names a registry that cannot be reached before any change, and leaves other refusals unknown", () => {
    const reg = classify([error(undefined, "cannot reach the registry for 127.0.0.1:5000/backend:v2: ECONNREFUSED")], undefined, down("registry"));
    assert.deepEqual([reg.fault, reg.part], ["platform", "registry"]);
    const missing = classify([error(STACK, "Error: image 127.0.0.1:5000/backend:v9 is not in the registry (no such tag)")], undefined, ALL_UP);
    assert.deepEqual([missing.fault, missing.part], ["platform", "unknown"]);
  });

  it("says who is at fault in one line", () => {
    assert.equal(describeVerdict({ fault: "platform", part: "registry", evidence: "x" }), "the platform failed (registry), not the release: x");
    assert.equal(describeVerdict({ fault: "release", part: "backend", evidence: "y" }), "the backend release is at fault: y");
  });
});

describe("the platform a release needs", () => {
  it("finds the API server of the kubeconfig's context, the VM, the registry and the ingress in the config", () => {
    const kubeconfig = "apiVersion: v1\nclusters:\n- name: a\n  cluster: {server: 'https://127.0.0.1:6443'}\n- name: b\n  cluster: {server: 'https://127.0.0.2:7443'}\ncontexts:\n- name: one\n  context: {cluster: a}\n- name: two\n  context: {cluster: b}\ncurrent-context: one\n";
    assert.equal(apiServer(kubeconfig, ""), "https://127.0.0.1:6443");
    assert.equal(apiServer(kubeconfig, "two"), "https://127.0.0.2:7443");
    const cfg = {
      "homelab:kubeconfig": { value: kubeconfig, secret: true },
      "homelab:vmHost": { value: "127.0.0.1", secret: false },
      "homelab:vmPort": { value: "2222", secret: false },
      "homelab:registry": { value: "127.0.0.1:5000", secret: false },
      "homelab:publicUrl": { value: "http://127.0.0.1:8080", secret: false },
    };
    assert.deepEqual(platformEndpoints(cfg), [
      { part: "Kubernetes API", host: "127.0.0.1", port: 6443 },
      { part: "backend VM (SSH)", host: "127.0.0.1", port: 2222 },
      { part: "registry", host: "127.0.0.1", port: 5000 },
      { part: "ingress", host: "127.0.0.1", port: 8080 },
    ]);
  });
});

describe("an interruption in the ledger and the release history", () => {
  it("is appended to the release record's ledger and listed without blaming a commit", () => {
    const record = {
      urn: "urn:pulumi:production::homelab::x::release-record",
      type: RELEASE_RECORD_TYPE,
      outputs: { release: { frontend: { tag: "f1", digest: "sha256:a" }, backend: { tag: "b1", digest: "sha256:b" } }, ledger: [] as unknown[] },
    };
    assert.equal(addInterruption([record], { at: "2026-11-30T10:00:00.000Z", target: { frontend: "f2", backend: "b2" }, stage: "frontend rollout", part: "Kubernetes API", evidence: "connection refused" }), true);
    assert.deepEqual(record.outputs.ledger, [
      { at: "2026-11-30T10:00:00.000Z", result: "interrupted", frontend: "f1@sha256:a", backend: "b1@sha256:b", failed: { frontend: "f2", backend: "b2" }, reason: "frontend rollout: platform (Kubernetes API): connection refused" },
    ]);
    const history = releaseHistory(
      [{ sha: "c".repeat(40), at: "2026-11-30T09:00:00Z", author: "fluxcdbot", subject: "release", body: "", text: "data:\n  frontend: r/frontend:f2\n  backend: r/backend:b2\n" }],
      record.outputs.ledger as never,
    );
    assert.deepEqual(history.map((h) => [h.kind, h.frontend, h.backend, h.sha]), [
      ["interrupted", "f2", "b2", ""],
      ["release", "f2", "b2", "c".repeat(40)],
    ]);
    assert.equal(addInterruption([], { at: "x", target: { frontend: "a", backend: "b" }, stage: "s", part: "unknown", evidence: "e" }), false);
  });
});
