import { describe, it } from "node:test";
import * as assert from "node:assert/strict";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { BIN_COMMANDS, binCommand, binUsage } from "../../deploy/homelab";
import { ARGUMENTS } from "../../deploy/cli";

const REPO = path.resolve(__dirname, "../..");
const BIN = path.join(REPO, "bin", "homelab.js");

/** The bin run as npm runs it: node, the file, the arguments; no pulumi on PATH. */
function homelab(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  return spawnSync(process.execPath, [BIN, ...args], { cwd: REPO, encoding: "utf8", env: { ...process.env, PATH: path.dirname(process.execPath) } });
}

describe("the homelab bin", () => {
  it("is the package's bin, an executable file that starts with a node shebang", () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(REPO, "package.json"), "utf8")) as { bin: Record<string, string> };
    assert.deepEqual(pkg.bin, { homelab: "bin/homelab.js" });
    assert.ok((fs.statSync(BIN).mode & 0o111) !== 0, "executable");
    assert.match(fs.readFileSync(BIN, "utf8"), /^#!\/usr\/bin\/env node\n/);
  });

  it("takes each deploy command and init by its word; help in any spelling; anything else is named", () => {
    for (const c of BIN_COMMANDS) {
      assert.deepEqual(binCommand([c, "--stack", "lab"]), { command: c });
    }
    for (const h of ["help", "--help", "-h"]) {
      assert.deepEqual(binCommand([h]), { help: true });
    }
    assert.deepEqual(binCommand([]), { problem: "no command given" });
    assert.deepEqual(binCommand(["--stack", "lab"]), { problem: '"--stack" is not a command: the command comes first' });
    assert.deepEqual(binCommand(["destroy"]), { problem: 'unknown command "destroy"' });
  });

  it("its help lists every command with the arguments the npm scripts take", () => {
    const usage = binUsage();
    for (const c of BIN_COMMANDS) {
      assert.match(usage, new RegExp(`^  homelab ${c} --stack NAME`, "m"));
    }
    for (const [c, args] of Object.entries(ARGUMENTS)) {
      assert.ok(usage.includes(`homelab ${c} ${args}`), c);
    }
  });

  it("prints its help on stdout and exits 0; an unknown command goes to stderr with exit 2 and nothing on stdout", () => {
    const help = homelab("help");
    assert.equal(help.status, 0, help.stderr);
    assert.equal(help.stdout, `${binUsage()}\n`);
    const bad = homelab("destroy", "--stack", "lab");
    assert.equal(bad.status, 2);
    assert.equal(bad.stdout, "");
    assert.match(bad.stderr, /^homelab: unknown command "destroy"\n/);
  });

  it("hands each command its own arguments: a bad one is refused by name, exit 2, stdout empty (a script reading --json gets nothing else)", () => {
    const status = homelab("status", "--stack", "a b", "--json");
    assert.equal(status.status, 2);
    assert.equal(status.stdout, "");
    assert.match(status.stderr, /--stack: "a b" is not a stack name \(usage: npm run status -- /);
    // `deploy` is the one command whose npm script has no word of its own.
    const deploy = homelab("deploy", "--stack", "lab", "--interval", "0");
    assert.equal(deploy.status, 2);
    assert.match(deploy.stderr, /--interval: "0" is not a number of seconds from 1 to 86400/);
    const init = homelab("init", "--stack", "lab", "--no-such-flag", "x");
    assert.equal(init.status, 2);
    assert.equal(init.stdout, "");
    assert.match(init.stderr, /^init: /);
  });
});
