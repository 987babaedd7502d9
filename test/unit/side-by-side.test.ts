import { strict as assert } from "assert";
import { describe, it } from "node:test";
import { FailureLog, marksFailure } from "../side-by-side";

describe("side-by-side's failure log", () => {
  it("knows the spec reporter's, TAP's and the scenarios' failure lines, and nothing else", () => {
    assert.ok(marksFailure("  ✖ 3. the SSH connection is cut during compose up (1234ms)"));
    assert.ok(marksFailure("not ok 4 - the registry hangs"));
    assert.ok(marksFailure("e2e vps: 6. an unhealthy release: FAILED: deploy exited 1"));
    assert.ok(!marksFailure("  ✔ 2. passes (10ms)"));
    assert.ok(!marksFailure("deploy: FAILED: compose up did not finish within 20s"));
    assert.ok(!marksFailure("deploy: FAILED after 82.3s in the VPS app; its host restored the previous release"));
  });

  it("keeps each failure line with the lines after it, and only those", () => {
    const log = new FailureLog();
    for (const line of ["ok 1", "noise", "✖ broke", "  error: boom", "  at x"]) {
      log.add(line);
    }
    assert.deepEqual(log.lines, ["✖ broke", "  error: boom", "  at x"]);
  });
});
