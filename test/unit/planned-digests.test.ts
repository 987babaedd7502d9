import { describe, it } from "node:test";
import * as assert from "node:assert/strict";
import type { EngineEvent, OpType } from "@pulumi/pulumi/automation";
import { gateProbeName, GATE_PROBE_TYPE } from "../../components/health-gate";
import { hostCheckName } from "../../components/host-check";
import { plannedDigests } from "../../deploy/outcome";
import { REMOTE_SCRIPT_TYPE } from "../../providers/remote-script";
import { PART } from "../../stacks/names";

const digest = (c: string): string => `sha256:${c.repeat(64)}`;
const ref = (part: string, tag: string, d: string): string => `harbor.example/homelab/${part}:${tag}@${d}`;
const OLD = `${ref("frontend", "main-41f4c4a-1800000000", digest("8"))} ${ref("backend", "main-41f4c4a-1800000000", digest("9"))}`;
const NEW = `${ref("frontend", "main-81338a1-1900000000", digest("1"))} ${ref("backend", "main-81338a1-1900000000", digest("2"))}`;

function pre(op: OpType, type: string, name: string, inputs: Record<string, unknown>): EngineEvent {
  const urn = `urn:pulumi:production::homelab::homelab:x:Parent$${type}::${name}`;
  return { sequence: 0, timestamp: 0, resourcePreEvent: { metadata: { op, urn, type, new: { urn, type, inputs, outputs: {} }, provider: "" } } } as unknown as EngineEvent;
}

const checkStep = (op: OpType, release: string): EngineEvent => pre(op, REMOTE_SCRIPT_TYPE, hostCheckName(PART.backendVm), { triggers: [release] });
const gateStep = (op: OpType, release: string): EngineEvent => pre(op, GATE_PROBE_TYPE, gateProbeName(PART.backendGate), { release });

describe("the failed pair's digests in a rollback commit", () => {
  it("come from what the update planned, never from the refresh's recorded inputs of the running pair", () => {
    // A failed frontend: the refresh reads the gate and the check with the running pair's inputs
    // first; the update then plans the VM check with the new pair and stops before the backend gate.
    const events = [gateStep("refresh", OLD), checkStep("refresh", OLD), checkStep("update", NEW)];
    assert.deepEqual(plannedDigests(events), { frontend: digest("1"), backend: digest("2") });
  });

  it("are read from the backend gate's planned inputs when the VM check is unchanged", () => {
    assert.deepEqual(plannedDigests([gateStep("refresh", OLD), gateStep("update", NEW)]), { frontend: digest("1"), backend: digest("2") });
  });

  it("are unknown when the update planned neither, rather than the running pair's", () => {
    assert.deepEqual(plannedDigests([gateStep("refresh", OLD), checkStep("read", OLD), checkStep("delete", OLD)]), {});
  });

  it("ignore steps of other resources and releases without digests", () => {
    const other = pre("update", REMOTE_SCRIPT_TYPE, "vps-check", { triggers: [NEW] });
    assert.deepEqual(plannedDigests([other, checkStep("update", "no image yet")]), {});
  });
});
