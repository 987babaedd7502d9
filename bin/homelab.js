#!/usr/bin/env node
// The `homelab` bin: runs deploy/homelab.ts through tsx, as the npm scripts run the deploy.
"use strict";
require("tsx/cjs/api").register();
require("../deploy/homelab.ts").main(process.argv.slice(2));
