import { describe, it } from "node:test";
import * as assert from "node:assert/strict";
import { execFileSync } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { CACHE } from "../../bin/transpile";

const REGISTER = path.resolve(__dirname, "../../bin/transpile.js");

/** Runs plain Node.js (no tsx) with the project's loader, requiring `file` and printing `what`. */
function load(file: string, what: string): string {
  return execFileSync(process.execPath, ["-e", `require(${JSON.stringify(REGISTER)}); const m = require(${JSON.stringify(file)}); console.log(${what});`], { encoding: "utf8" }).trim();
}

function cachedFor(marker: string): string[] {
  return fs.readdirSync(CACHE).filter((f) => f.endsWith(".js") && fs.readFileSync(path.join(CACHE, f), "utf8").includes(marker));
}

describe("bin/transpile.js: the program's TypeScript through a cache", () => {
  it("runs a TypeScript file, keeps its output, and transpiles again only when the source changes", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "transpile-"));
    const marker = `marker_${crypto.randomBytes(6).toString("hex")}`;
    const file = path.join(dir, "m.ts");
    try {
      fs.writeFileSync(file, `export const ${marker}: number = 1;\nexport function where(): string { return new Error("here").stack ?? ""; }\n`);
      assert.equal(load(file, `m.${marker}`), "1");
      assert.equal(cachedFor(marker).length, 1, "one cached output for the first source");
      // Read from the cache: the same output, no second entry.
      assert.equal(load(file, `m.${marker}`), "1");
      assert.equal(cachedFor(marker).length, 1);
      // Stack traces name the TypeScript file through the inline source map.
      assert.match(load(file, "m.where()"), /m\.ts:2:/);

      fs.writeFileSync(file, `export const ${marker}: number = 2;\n`);
      assert.equal(load(file, `m.${marker}`), "2", "a changed source is transpiled again, not served stale");
      assert.equal(cachedFor(marker).length, 2);
    } finally {
      for (const f of cachedFor(marker)) {
        fs.rmSync(path.join(CACHE, f));
      }
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
