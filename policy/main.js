// The pack's entry point. The Pulumi SDK loads a TypeScript pack through ts-node with full type
// checking on every preview and on every update; `npm run check` type-checks the pack already, so
// here each file is only transpiled, which starts the pack in a fraction of that time.
"use strict";
const fs = require("fs");
const ts = require("typescript");

require.extensions[".ts"] = (module, filename) => {
  const { outputText } = ts.transpileModule(fs.readFileSync(filename, "utf8"), {
    fileName: filename,
    compilerOptions: {
      module: ts.ModuleKind.CommonJS,
      target: ts.ScriptTarget.ES2022,
      esModuleInterop: true,
      inlineSourceMap: true,
    },
  });
  module._compile(outputText, filename);
};

require("./index.ts");
