import { describe, it } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "fs";
import { builtinModules } from "module";
import * as path from "path";
import * as ts from "typescript";

/*
 * The product (the program, its components, providers and libraries, the policy pack and the
 * deploy commands) runs on a user's machine with their own Pulumi; the harness (the offline
 * toolchain, the sandbox, the benchmarks and the tests) only proves it here. Nothing of the
 * product may import the harness.
 */
const REPO = path.resolve(__dirname, "../..");
const PRODUCT = ["index.ts", "bin", "components", "crds", "deploy", "lib", "policy", "providers", "stacks"];
const HARNESS = ["toolchain", "sandbox", "bench", "test", "scripts"];

/** The TypeScript and JavaScript files of a file or folder. */
function tsFiles(entry: string): string[] {
  const full = path.join(REPO, entry);
  if (fs.statSync(full).isFile()) {
    return [full];
  }
  return fs.readdirSync(full, { withFileTypes: true }).flatMap((d) =>
    d.name === "node_modules" ? [] : d.isDirectory() ? tsFiles(path.join(entry, d.name)) : /\.(ts|js)$/.test(d.name) ? [path.join(full, d.name)] : [],
  );
}

/** Every module a file imports or requires, resolved to a path inside the repository when relative. */
function imports(file: string): string[] {
  const info = ts.preProcessFile(fs.readFileSync(file, "utf8"), true, true);
  return info.importedFiles.map((f) => (f.fileName.startsWith(".") ? path.relative(REPO, path.resolve(path.dirname(file), f.fileName)) : f.fileName));
}

describe("product and harness", () => {
  const files = PRODUCT.flatMap(tsFiles);

  it("finds the product's files", () => {
    assert.ok(files.length > 30, `only ${files.length} files`);
    assert.ok(files.some((f) => f.endsWith(path.join("deploy", "guarded-deploy.ts"))));
  });

  it("no product file imports the toolchain, the sandbox, the benchmarks, the tests or the harness scripts", () => {
    const offending = files.flatMap((f) =>
      imports(f)
        .filter((m) => HARNESS.some((h) => m === h || m.startsWith(`${h}/`)))
        .map((m) => `${path.relative(REPO, f)} imports ${m}`),
    );
    assert.deepEqual(offending, []);
  });

  it("every package the product imports is a runtime dependency", () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(REPO, "package.json"), "utf8")) as { dependencies: Record<string, string> };
    const external = new Set(
      files
        .flatMap((f) => ts.preProcessFile(fs.readFileSync(f, "utf8"), true, true).importedFiles.map((i) => i.fileName))
        .filter((m) => !m.startsWith("."))
        .map((m) => (m.startsWith("@") ? m.split("/").slice(0, 2).join("/") : m.split("/")[0]))
        .filter((m) => !m.startsWith("node:") && !builtinModules.includes(m)),
    );
    assert.ok(external.has("@pulumi/pulumi") && external.has("ssh2"), [...external].join(", "));
    const missing = [...external].filter((m) => !(m in pkg.dependencies));
    assert.deepEqual(missing, []);
  });

  it("the deploy's run-time tools are runtime dependencies too (tsx runs it; the engine compiles the program with typescript and ts-node)", () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(REPO, "package.json"), "utf8")) as { dependencies: Record<string, string>; scripts: Record<string, string> };
    assert.match(pkg.scripts.deploy, /^tsx deploy\/cli\.ts$/);
    for (const dep of ["tsx", "typescript", "ts-node", "@pulumi/policy"]) {
      assert.ok(dep in pkg.dependencies, `${dep} is not in dependencies`);
    }
  });
});
