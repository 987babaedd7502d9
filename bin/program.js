// The Pulumi program's entry point (package.json `main`): index.ts, transpiled through the cache.
"use strict";
require("./transpile");
module.exports = require("../index.ts");
