// Lets Node.js require the project's TypeScript files: each is transpiled (no type check; `npm run
// check` type-checks) and the result kept in node_modules/.cache, keyed by the file's content, so
// a program run, a preview and the policy pack transpile only what changed since the last run.
"use strict";
const crypto = require("crypto");
const fs = require("fs");
const path = require("path");

const CACHE = path.join(__dirname, "..", "node_modules", ".cache", "homelab-transpiled");
// Part of every key: a change here or in the TypeScript release gives fresh output.
const OPTIONS = { module: "commonjs", target: "es2022", esModuleInterop: true, resolveJsonModule: true, inlineSourceMap: true };

let ts;
let version;

function transpile(source, filename) {
  ts = ts ?? require("typescript");
  return ts.transpileModule(source, { fileName: filename, compilerOptions: ts.convertCompilerOptionsFromJson(OPTIONS, "").options }).outputText;
}

function typescriptVersion() {
  version = version ?? require("typescript/package.json").version;
  return version;
}

function cached(source, filename) {
  const key = crypto.createHash("sha256").update(JSON.stringify([typescriptVersion(), OPTIONS, filename, source])).digest("hex");
  const file = path.join(CACHE, `${key}.js`);
  try {
    return fs.readFileSync(file, "utf8");
  } catch {
    const out = transpile(source, filename);
    try {
      // Written whole, then renamed: runs side by side never read half a file.
      fs.mkdirSync(CACHE, { recursive: true });
      const tmp = `${file}.${process.pid}.tmp`;
      fs.writeFileSync(tmp, out);
      fs.renameSync(tmp, file);
    } catch {
      // A cache that cannot be written costs only the next run's time.
    }
    return out;
  }
}

// Stack traces name the TypeScript lines, from the inline source maps.
process.setSourceMapsEnabled(true);
require.extensions[".ts"] = (module, filename) => {
  module._compile(cached(fs.readFileSync(filename, "utf8"), filename), filename);
};

module.exports = { CACHE };
