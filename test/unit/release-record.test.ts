import { describe, it } from "node:test";
import * as assert from "node:assert/strict";
import { LEDGER_LIMIT, PromotedRelease, RecordOutputs, appendLedger, recordProvider } from "../../components/release-record";
import { DIGEST_A, DIGEST_B, TAG_A, TAG_B } from "../support/fixtures";

function pair(tag: string, digest: string, ms = 100): PromotedRelease {
  return {
    frontend: { image: `r/frontend:${tag}@${digest}`, tag, digest },
    backend: { image: `r/backend:${tag}@${digest}`, tag, digest },
    gates: { frontendMs: ms, backendMs: ms },
  };
}

describe("release record", () => {
  it("records the first promotion with no previous pair", async () => {
    const r = await recordProvider.create({ release: pair(TAG_A, DIGEST_A) });
    const outs = r.outs as RecordOutputs;
    assert.equal(outs.previous, null);
    assert.equal(outs.ledger.length, 1);
    assert.equal(outs.ledger[0].backend, `${TAG_A}@${DIGEST_A}`);
  });

  it("moves current to previous on a new pair and appends to the ledger", async () => {
    const first = (await recordProvider.create({ release: pair(TAG_A, DIGEST_A) })).outs as RecordOutputs;
    const diff = await recordProvider.diff!("id", first, { release: pair(TAG_B, DIGEST_B) });
    assert.equal(diff.changes, true);
    const second = (await recordProvider.update!("id", first, { release: pair(TAG_B, DIGEST_B) })).outs as RecordOutputs;
    assert.deepEqual(second.previous, first.release);
    assert.equal(second.release.frontend.tag, TAG_B);
    assert.deepEqual(second.ledger.map((e) => e.frontend), [`${TAG_A}@${DIGEST_A}`, `${TAG_B}@${DIGEST_B}`]);
  });

  it("ignores changed gate timings for the same pair", async () => {
    const first = (await recordProvider.create({ release: pair(TAG_A, DIGEST_A, 100) })).outs as RecordOutputs;
    assert.equal((await recordProvider.diff!("id", first, { release: pair(TAG_A, DIGEST_A, 999) })).changes, false);
  });

  it("writes into the ledger which parts were promoted without their version checked, and nothing when both were", () => {
    assert.deepEqual(appendLedger([], { ...pair(TAG_A, DIGEST_A), unverified: ["frontend"] }, "t0")[0].unverified, ["frontend"]);
    assert.equal("unverified" in appendLedger([], pair(TAG_A, DIGEST_A), "t0")[0], false);
  });

  it("keeps a bounded ledger", () => {
    let ledger = appendLedger([], pair(TAG_A, DIGEST_A), "t0");
    for (let i = 1; i <= LEDGER_LIMIT + 5; i++) {
      ledger = appendLedger(ledger, pair(TAG_B, DIGEST_B), `t${i}`);
    }
    assert.equal(ledger.length, LEDGER_LIMIT);
    assert.equal(ledger[ledger.length - 1].at, `t${LEDGER_LIMIT + 5}`);
  });
});

describe("release record rollbacks", () => {
  const event = { id: "rb-1", at: "2026-11-21T00:00:00Z", failed: { frontend: TAG_B, backend: TAG_B }, reason: "backend gate failed", stages: { preview: 3, up: 40 } };

  it("records a rollback to the recorded pair once, keeping current and previous", async () => {
    const first = (await recordProvider.create({ release: pair(TAG_A, DIGEST_A) })).outs as RecordOutputs;
    assert.equal((await recordProvider.diff!("id", first, { release: pair(TAG_A, DIGEST_A), rollback: event })).changes, true);
    const rolled = (await recordProvider.update!("id", first, { release: pair(TAG_A, DIGEST_A), rollback: event })).outs as RecordOutputs;
    assert.deepEqual(rolled.release, first.release);
    assert.equal(rolled.promotedAt, first.promotedAt);
    assert.deepEqual(rolled.ledger.map((e) => e.result), ["promoted", "rolled-back"]);
    assert.deepEqual(rolled.ledger[1].failed, { frontend: TAG_B, backend: TAG_B });
    assert.equal(rolled.ledger[1].backend, `${TAG_A}@${DIGEST_A}`);
    assert.equal((await recordProvider.diff!("id", rolled, { release: pair(TAG_A, DIGEST_A), rollback: event })).changes, false, "the same event is not recorded twice");
  });
});
