import { describe, it } from "node:test";
import * as assert from "node:assert/strict";
import { PhaseClock, parseTimings } from "../../deploy/phases";

describe("the deploy's phase timings", () => {
  it("names each phase with the time since the last mark, and the total since the start", () => {
    let t = 1000;
    const clock = new PhaseClock(1000, () => t);
    t = 2200;
    clock.mark("start-up");
    t = 2500;
    clock.mark("deploy lock");
    assert.equal(clock.line(), "timings: start-up 1.2s, deploy lock 0.3s, total 1.5s");
  });

  it("splits the engine's run into its halves, the last taking the remainder so the phases sum to the whole", () => {
    let t = 0;
    const clock = new PhaseClock(0, () => t);
    t = 20_000;
    // The CLI's own halves (16.5 s) leave out its spawn and the events' read: the update takes them.
    clock.markParts([
      { name: "refresh and preview", seconds: 6.25 },
      { name: "update", seconds: 10.25 },
    ]);
    assert.deepEqual(parseTimings(clock.line()), { "refresh and preview": 6.3, update: 13.8, total: 20 });
  });

  it("reads the line back from a deploy's output, and nothing from output without one", () => {
    const output = "deploy: PROMOTED in 12.1s: frontend a, backend b\ndeploy: timings: start-up 1.2s, git sync 0.4s, after the update 0.9s, total 14.0s\n";
    assert.deepEqual(parseTimings(output), { "start-up": 1.2, "git sync": 0.4, "after the update": 0.9, total: 14 });
    assert.deepEqual(parseTimings("deploy: REFUSED before any change"), {});
  });
});
