// The pack's entry point: its TypeScript runs transpiled through the project's cache (see
// bin/transpile.js); `npm run check` type-checks it.
"use strict";
require("../bin/transpile");
require("./index.ts");
