import { describe, it } from "node:test";
import * as assert from "node:assert/strict";
import { GATE_PROBE_TYPE } from "../../components/health-gate";
import { RELEASE_RECORD_TYPE } from "../../components/release-record";
import { parseArgs } from "../../deploy/cli";
import { GateGlance, QuickStatus, formatQuickStatus, glanceCondition, glanceGates, readPolicies, selectedTag, stateGates, statePolicies } from "../../deploy/quick-status";
import { promotedIn, type StateResource } from "../../deploy/release-state";
import { STATUS_EXIT, statusExit } from "../../deploy/status";
import type { KubeApi, KubeResponse } from "../../lib/kube-api";
import type { Release } from "../../lib/release";

const urn = (type: string, name: string): string => `urn:pulumi:production::homelab::${type}::${name}`;

const RESOURCES: StateResource[] = [
  { urn: urn(`homelab:release:HealthGate$${GATE_PROBE_TYPE}`, "frontend-gate-probe"), type: GATE_PROBE_TYPE, outputs: { targets: [{ url: "http://web/" }] } },
  { urn: urn(`homelab:release:HealthGate$${GATE_PROBE_TYPE}`, "backend-gate-probe"), type: GATE_PROBE_TYPE, outputs: { targets: [{ url: "http://vm/api/health", jsonField: { path: "version", equals: "b2" } }] } },
  { urn: urn("kubernetes:image.toolkit.fluxcd.io/v1:ImagePolicy", "image-automation-backend-policy"), type: "kubernetes:image.toolkit.fluxcd.io/v1:ImagePolicy", outputs: { metadata: { name: "backend", namespace: "flux-system" } } },
  { urn: urn("kubernetes:image.toolkit.fluxcd.io/v1:ImagePolicy", "image-automation-frontend-policy"), type: "kubernetes:image.toolkit.fluxcd.io/v1:ImagePolicy", outputs: { metadata: { name: "frontend", namespace: "flux-system" } } },
  {
    urn: urn(RELEASE_RECORD_TYPE, "release-record"),
    type: RELEASE_RECORD_TYPE,
    outputs: {
      release: { frontend: { image: "r/frontend", tag: "f2", digest: "sha256:ff" }, backend: { image: "r/backend", tag: "b2", digest: "sha256:bb" } },
      promotedAt: "2026-12-07T10:00:00.000Z",
      ledger: [{ result: "promoted" }],
    },
  },
];

const RELEASE = { frontend: { tag: "f2" }, backend: { tag: "b2" }, excluded: [] } as unknown as Release;

function api(answers: Record<string, KubeResponse>): KubeApi & { asked: string[] } {
  const asked: string[] = [];
  return {
    server: "https://k3s:6443",
    asked,
    stream: () => Promise.reject(new Error("a glance streams nothing")),
    get(path: string) {
      asked.push(path);
      return Promise.resolve(answers[path] ?? { status: 404, body: {}, summary: "HTTP 404: not found" });
    },
  };
}

describe("status --quick", () => {
  it("finds the gates, the ImagePolicies and the promoted pair in the state", () => {
    assert.deepEqual(stateGates(RESOURCES), [
      { part: "frontend-gate", targets: [{ url: "http://web/" }] },
      { part: "backend-gate", targets: [{ url: "http://vm/api/health", jsonField: { path: "version", equals: "b2" } }] },
    ]);
    assert.deepEqual(statePolicies(RESOURCES), [
      { namespace: "flux-system", name: "backend" },
      { namespace: "flux-system", name: "frontend" },
    ]);
    const promoted = promotedIn(RESOURCES);
    assert.equal(promoted.current?.backend.tag, "b2");
    assert.deepEqual(promoted.promotion, { at: "2026-12-07T10:00:00.000Z", lastResult: "promoted" });
    assert.deepEqual(promotedIn([]).promotion, { at: undefined, lastResult: undefined });
  });

  it("reads a policy's selection from status.latestRef (v1) or the tag of status.latestImage, with a registry port", () => {
    assert.equal(selectedTag({ status: { latestRef: { name: "reg:5000/backend", tag: "main-abc1234-1800000000" } } }), "main-abc1234-1800000000");
    assert.equal(selectedTag({ status: { latestImage: "reg:5000/backend:main-abc1234-1800000000" } }), "main-abc1234-1800000000");
    assert.equal(selectedTag({ status: { latestImage: "reg:5000/backend" } }), undefined);
    assert.equal(selectedTag({ status: {} }), undefined);
    assert.equal(selectedTag(undefined), undefined);
  });

  it("says what image automation would commit next, and why a policy could not be read", async () => {
    const k = api({
      "/apis/image.toolkit.fluxcd.io/v1/namespaces/flux-system/imagepolicies/backend": { status: 200, body: { status: { latestRef: { tag: "b3" } } }, summary: "" },
    });
    const glances = await readPolicies(k, statePolicies(RESOURCES), RELEASE);
    assert.deepEqual(glances, [
      { policy: "flux-system/backend", selected: "b3", releaseFile: "b2", next: true },
      { policy: "flux-system/frontend", releaseFile: "f2", next: false, problem: "HTTP 404: not found" },
    ]);
    const same = await readPolicies(api({ "/apis/image.toolkit.fluxcd.io/v1/namespaces/flux-system/imagepolicies/backend": { status: 200, body: { status: { latestRef: { tag: "b2" } } }, summary: "" } }), [{ namespace: "flux-system", name: "backend" }], RELEASE);
    assert.deepEqual(same, [{ policy: "flux-system/backend", selected: "b2", releaseFile: "b2", next: false }]);
  });

  it("probes each gate's URLs once, as a refresh judges them: a wrong answer or no answer is down", async () => {
    const fetched: [string, number][] = [];
    const io = {
      fetch(url: string, timeoutMs: number) {
        fetched.push([url, timeoutMs]);
        if (url === "http://web/") {
          return Promise.resolve({ status: 200, body: "<html>" });
        }
        return Promise.resolve({ status: 200, body: JSON.stringify({ version: "b1" }) });
      },
    };
    const gates = await glanceGates(stateGates(RESOURCES), io);
    assert.deepEqual(fetched, [["http://web/", 2000], ["http://vm/api/health", 2000]]);
    assert.deepEqual(gates.map((g) => [g.part, g.condition]), [["frontend-gate", "agrees"], ["backend-gate", "down"]]);
    assert.match(gates[1].failures[0], /^http:\/\/vm\/api\/health: .*version/);
    const refused = await glanceGates(stateGates(RESOURCES).slice(0, 1), { fetch: () => Promise.reject(new Error("connect ECONNREFUSED")) });
    assert.deepEqual(refused[0].failures, ["http://web/: connect ECONNREFUSED"]);
  });

  it("exits as status does: 0 when every gate passes, 3 when one fails, 4 when the API server did not answer", () => {
    const up: GateGlance = { part: "g", urls: [], condition: "agrees", failures: [] };
    const down: GateGlance = { ...up, condition: "down" };
    assert.equal(statusExit({ condition: glanceCondition([up, up], false) }), STATUS_EXIT.agrees);
    assert.equal(statusExit({ condition: glanceCondition([up], true) }), STATUS_EXIT.unreachable);
    assert.equal(statusExit({ condition: glanceCondition([up, down], true) }), STATUS_EXIT.down);
  });

  it("prints one line per gate and policy, the recorded pair and the freeze", () => {
    const q: QuickStatus = {
      stack: "production",
      quick: true,
      condition: "down",
      recorded: { frontend: "f2@sha256:ff", backend: "b2@sha256:bb", at: "2026-12-07T10:00:00.000Z", lastResult: "promoted" },
      gates: [
        { part: "frontend-gate", urls: ["http://web/"], condition: "agrees", failures: [] },
        { part: "backend-gate", urls: ["http://vm/api/health"], condition: "down", failures: ["http://vm/api/health: status 503 (expected 200)"] },
      ],
      automation: [{ policy: "flux-system/backend", selected: "b3", releaseFile: "b2", next: true }],
      frozen: { by: "Ada <ada@example.org>", at: "2026-12-07T09:00:00Z", reason: "demo" },
      lastNotification: { event: "frozen", at: "2026-12-07T09:00:01Z", delivered: ["webhook hooks.example.org"], failed: [] },
    };
    assert.deepEqual(formatQuickStatus(q).split("\n"), [
      "stack production: backend-gate failing (quick: no refresh, nothing read over SSH; npm run status without --quick reads every part)",
      "recorded   frontend f2@sha256:ff, backend b2@sha256:bb, promoted 2026-12-07T10:00:00.000Z; last deploy: promoted",
      "gate       frontend-gate: passes (http://web/)",
      "gate       backend-gate: FAILS: http://vm/api/health: status 503 (expected 200)",
      "automation flux-system/backend selected b3; image automation commits it next (the release file names b2)",
      "notified   frozen at 2026-12-07T09:00:01Z: delivered to webhook hooks.example.org",
      "frozen     by Ada <ada@example.org> at 2026-12-07T09:00:00Z: demo",
    ]);
  });

  it("is an option of status only", () => {
    assert.equal(parseArgs(["status", "--stack", "production", "--quick", "--json"], "/repo").quick, true);
    assert.equal(parseArgs(["status", "--stack", "production"], "/repo").quick, false);
    assert.throws(() => parseArgs(["--stack", "production", "--quick"], "/repo"), /unknown option "--quick"/);
  });
});
