import { describe, it } from "node:test";
import * as assert from "node:assert/strict";
import type { Reach } from "../../deploy/platform";
import { type PartStatus, type StackStatus, worst } from "../../deploy/status";
import { partsAtFault } from "../../deploy/rollback-commit";
import { WATCH_STAGE, changedParts, releaseFault, watchWindowEnd } from "../../deploy/watch-window";
import { namesRunningPair } from "../../deploy/watch";
import { TAG_A, TAG_B, releaseText } from "../support/fixtures";

const ALL_UP: Reach[] = [
  { part: "Kubernetes API", address: "127.0.0.1:6443", answered: true },
  { part: "backend VM (SSH)", address: "127.0.0.1:2222", answered: true },
  { part: "registry", address: "127.0.0.1:5000", answered: true },
  { part: "ingress", address: "127.0.0.1:8080", answered: true },
];

const BOTH = ["frontend", "backend"] as const;

function status(findings: Partial<Record<"frontend" | "frontend-gate" | "backend" | "backend-gate", string[]>>, backendRestarts?: number): StackStatus {
  const parts: PartStatus[] = (["frontend", "frontend-gate", "backend", "backend-gate"] as const).map((part) => ({
    part,
    recorded: "r",
    running: "x",
    condition: (findings[part] ?? []).length > 0 ? "drift" : "agrees",
    findings: findings[part] ?? [],
    ...(part === "backend" && backendRestarts !== undefined ? { restarts: backendRestarts } : {}),
  }));
  return { stack: "production", agree: parts.every((p) => p.findings.length === 0), condition: worst(parts.map((p) => p.condition)), parts };
}

describe("the watch window after a promotion", () => {
  const at = "2026-12-07T10:00:00.000Z";

  it("is open for its length after a promotion, and closed after it, at 0, or after a rollback", () => {
    assert.deepEqual(watchWindowEnd({ at, lastResult: "promoted" }, 600, new Date("2026-12-07T10:09:59Z")), new Date("2026-12-07T10:10:00.000Z"));
    assert.equal(watchWindowEnd({ at, lastResult: "promoted" }, 600, new Date("2026-12-07T10:10:01Z")), undefined);
    assert.equal(watchWindowEnd({ at, lastResult: "promoted" }, 0, new Date("2026-12-07T10:00:01Z")), undefined);
    // The pair a rollback restored is not a new release on trial.
    assert.equal(watchWindowEnd({ at, lastResult: "rolled-back" }, 600, new Date("2026-12-07T10:00:01Z")), undefined);
    assert.equal(watchWindowEnd({ lastResult: "promoted" }, 600), undefined);
  });

  it("blames the backend for a crash-looping or unhealthy container, naming it", () => {
    assert.deepEqual(releaseFault(status({ backend: ["service backend is restarting"], "backend-gate": ["http://vm:3001/api/health: ECONNREFUSED"] }), ALL_UP, BOTH), {
      part: "backend",
      evidence: "service backend is restarting",
    });
    assert.equal(releaseFault(status({ backend: ["service backend is unhealthy"] }), ALL_UP, BOTH)?.part, "backend");
  });

  it("blames the frontend for pods that are not Ready, or a page answering wrong", () => {
    assert.deepEqual(releaseFault(status({ frontend: ["0 of 2 pods Ready"] }), ALL_UP, BOTH), { part: "frontend", evidence: "0 of 2 pods Ready" });
    assert.deepEqual(releaseFault(status({ "frontend-gate": ["http://web/: status 500 (expected 200)"] }), ALL_UP, BOTH), { part: "frontend", evidence: "http://web/: status 500 (expected 200)" });
  });

  it("blames nothing while a part of the platform does not answer, for a gate without an answer, or for a change by hand", () => {
    const down = ALL_UP.map((r) => (r.part === "backend VM (SSH)" ? { ...r, answered: false } : r));
    assert.equal(releaseFault(status({ backend: ["service backend is restarting"] }), down, BOTH), undefined);
    assert.equal(releaseFault(status({ "backend-gate": ["http://vm:3001/api/health: ECONNREFUSED"] }), ALL_UP, BOTH), undefined);
    assert.equal(releaseFault(status({ backend: ["the Docker engine does not answer"] }), ALL_UP, BOTH), undefined);
    assert.equal(releaseFault(status({ backend: ["cannot read: ssh: handshake failed"] }), ALL_UP, BOTH), undefined);
    assert.equal(releaseFault(status({ backend: ["service backend runs other:1, not the recorded r", "service backend is exited"] }), ALL_UP, BOTH), undefined);
    assert.equal(releaseFault(status({ frontend: ["the Deployment runs x, not the recorded y", "0 of 2 pods Ready"] }), ALL_UP, BOTH), undefined);
    assert.equal(releaseFault(status({ frontend: ["the Deployment is scaled to 0"] }), ALL_UP, BOTH), undefined);
  });

  it("blames the backend for restarts of the container the release started, though it runs again", () => {
    const running = status({}, 3);
    assert.equal(running.agree, true);
    assert.deepEqual(releaseFault(running, ALL_UP, BOTH), { part: "backend", evidence: "the backend's container restarted 3 time(s) since the release started it" });
    assert.equal(releaseFault(status({}, 0), ALL_UP, BOTH), undefined);
  });

  it("blames only a part the promotion changed: an older container's restarts are not this release's", () => {
    assert.equal(releaseFault(status({}, 3), ALL_UP, ["frontend"]), undefined);
    assert.equal(releaseFault(status({ frontend: ["1 of 2 pods Ready"] }), ALL_UP, ["backend"]), undefined);
    const pair = (f: string, b: string): { frontend: { tag: string }; backend: { tag: string } } => ({ frontend: { tag: f }, backend: { tag: b } });
    assert.deepEqual(changedParts(pair("f2", "b1"), pair("f1", "b1")), ["frontend"]);
    assert.deepEqual(changedParts(pair("f2", "b2"), pair("f1", "b1")), ["frontend", "backend"]);
    assert.deepEqual(changedParts(pair("f1", "b1"), undefined), ["frontend", "backend"]);
  });

  it("records the rollback under a stage that excludes the failing part's tag alone", () => {
    assert.deepEqual(partsAtFault(WATCH_STAGE.backend), ["backend"]);
    assert.deepEqual(partsAtFault(WATCH_STAGE.frontend), ["frontend"]);
  });
});

describe("--watch and rollback commits", () => {
  const pair = (f: string, b: string): { frontend: { tag: string }; backend: { tag: string } } => ({ frontend: { tag: f }, backend: { tag: b } });

  it("skips a rollback commit only when the pair it names is the one running, whatever its trailer says", () => {
    const text = releaseText(TAG_A, TAG_B);
    assert.equal(namesRunningPair(text, "release.yaml", pair(TAG_A, TAG_B)), true);
    // A rollback by hand that found the stack busy, or a forged trailer: not running, so deployed.
    assert.equal(namesRunningPair(text, "release.yaml", pair(TAG_A, TAG_A)), false);
    assert.equal(namesRunningPair(text, "release.yaml", undefined), false);
  });
});
