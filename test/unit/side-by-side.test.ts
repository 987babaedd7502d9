import { strict as assert } from "assert";
import * as fs from "fs";
import * as path from "path";
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

describe("npm test's deploys part", () => {
  // Each file runs under a test runner of its own or after the one before it: a runner reports a
  // later file only once the earlier ones end, and its forced exit can cut what it held back.
  it("runs every e2e and reliability file once, no runner holding two files at once", () => {
    const repo = path.resolve(__dirname, "../..");
    const scripts = (JSON.parse(fs.readFileSync(path.join(repo, "package.json"), "utf8")) as { scripts: Record<string, string> }).scripts;
    const parts = scripts["test:deploys"].split(" ").filter((w) => w.startsWith("test:"));
    const named = parts.flatMap((p) => scripts[p].split(" ").filter((w) => w.endsWith(".test.ts")));
    const files = ["e2e", "reliability"].flatMap((d) => fs.readdirSync(path.join(repo, "test", d)).filter((f) => f.endsWith(".test.ts")).map((f) => `test/${d}/${f}`));
    assert.deepEqual([...named].sort(), files.sort());
    for (const p of parts) {
      const many = scripts[p].split(" ").filter((w) => w.endsWith(".test.ts")).length > 1;
      assert.ok(!many || scripts[p].includes("--test-concurrency=1"), `${p} runs its files one after another`);
    }
  });
});
