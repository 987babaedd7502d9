import { describe, it } from "node:test";
import * as assert from "node:assert/strict";
import { PENDING_ROLLBACK_OUTPUT, PendingRollback, StateResource, pendingRollbackOf, setPendingRollback } from "../../deploy/interruption";

const PENDING: PendingRollback = {
  event: {
    id: "0d6f2c1e-7d7e-4a5e-9a55-3f1b1b0c2a11",
    at: "2026-12-01T03:00:00.000Z",
    failed: { frontend: "main-bbbbbbb-1764500100", backend: "main-bbbbbbb-1764500100" },
    restored: { frontend: "main-aaaaaaa-1764500000", backend: "main-aaaaaaa-1764500000" },
    stage: "backend deploy",
    reason: "the backend's health check failed",
    stages: { up: 42 },
  },
};

const deployment = (): StateResource[] => [
  { urn: "urn:pulumi:prod::homelab-stack::pulumi:pulumi:Stack::homelab-stack-prod", type: "pulumi:pulumi:Stack", outputs: { apiUrl: "http://website.lan/api" } },
  { urn: "urn:pulumi:prod::homelab-stack::homelab:release:ReleaseRecord::release", type: "homelab:release:ReleaseRecord" },
];

describe("the marker of a rollback begun", () => {
  it("is kept on the root stack resource beside its outputs, and read back", () => {
    const resources = deployment();
    assert.equal(pendingRollbackOf(resources), undefined);
    assert.equal(setPendingRollback(resources, PENDING), true);
    assert.deepEqual(resources[0].outputs, { apiUrl: "http://website.lan/api", [PENDING_ROLLBACK_OUTPUT]: PENDING });
    assert.deepEqual(pendingRollbackOf(JSON.parse(JSON.stringify(resources)) as StateResource[]), PENDING);
  });

  it("is cleared once the rollback finished, changing nothing when there is none", () => {
    const resources = deployment();
    setPendingRollback(resources, PENDING);
    assert.equal(setPendingRollback(resources, undefined), true);
    assert.deepEqual(resources[0].outputs, { apiUrl: "http://website.lan/api" });
    assert.equal(setPendingRollback(resources, undefined), false);
  });

  it("is not read from a value that is not a rollback, nor written without a root", () => {
    const resources = deployment();
    resources[0].outputs![PENDING_ROLLBACK_OUTPUT] = { event: { id: "x" } };
    assert.equal(pendingRollbackOf(resources), undefined);
    assert.equal(setPendingRollback([resources[1]], PENDING), false);
  });
});
