import { after, describe, it } from "node:test";
import * as assert from "node:assert/strict";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { exitParams, hostScript, remoteFile } from "../../lib/host-script";
import { renderLogsScript } from "../../lib/logs";
import {
  renderDeployRunScript,
  renderDeployScript,
  renderDownScript,
  renderFollowScript,
  renderHostCheckScript,
  renderInspectScript,
  renderReadSecretScript,
} from "../../lib/remote-deploy";
import { makeCertificates } from "../support/tls";

const REMOTE = path.resolve(__dirname, "../../remote");
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "host-scripts-"));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

// Values a user could give, each hostile to a script that pasted them into its body.
const DEPLOY_DIR = "/opt/it's $(touch /tmp/pwned) `id`";
const PROJECT = "backend'; rm -rf / #";
const deployOptions = {
  deployDir: DEPLOY_DIR,
  project: PROJECT,
  files: ["docker-compose.yml", ".env", "Caddyfile"],
  registry: { server: "harbor.lan:5000", username: "robot$flux" },
  healthServices: ["backend", "worker"],
  healthUrl: "http://127.0.0.1:3001/api/health?a=1&b='2'",
  deadlineSeconds: 30,
};

/** Every script the program sends to a host, as it renders them, with the remote/ files each is made of. */
const SCRIPTS: Record<string, { script: string; files: string[] }> = {
  deploy: { script: renderDeployScript(deployOptions), files: ["process.sh", "runs.sh", "deploy.sh"] },
  "deploy run": { script: renderDeployRunScript(deployOptions), files: ["process.sh", "deploy-run.sh"] },
  follow: { script: renderFollowScript({ deployDir: DEPLOY_DIR }), files: ["process.sh", "runs.sh", "follow.sh"] },
  down: { script: renderDownScript({ deployDir: DEPLOY_DIR, project: PROJECT }), files: ["down.sh"] },
  inspect: { script: renderInspectScript({ deployDir: DEPLOY_DIR, project: PROJECT, files: ["docker-compose.yml", ".env"] }), files: ["inspect.sh"] },
  "read secret": { script: renderReadSecretScript({ deployDir: DEPLOY_DIR, project: PROJECT, service: "app", file: "/data/it's key" }), files: ["read-secret.sh"] },
  "host check": { script: renderHostCheckScript({ deployDir: DEPLOY_DIR }), files: ["host-check.sh"] },
  "host check with a registry CA": {
    script: renderHostCheckScript({ deployDir: DEPLOY_DIR, registryCa: { host: "harbor.lan:443", caCert: makeCertificates(fs.mkdtempSync(path.join(dir, "tls-"))).ca } }),
    files: ["host-check.sh"],
  },
  "host check with a registry and install": { script: renderHostCheckScript({ deployDir: DEPLOY_DIR, installDocker: true, insecureRegistry: "harbor.lan:5000" }), files: ["host-check.sh"] },
  logs: { script: renderLogsScript({ deployDir: DEPLOY_DIR, project: PROJECT }), files: ["logs.sh"] },
};

describe("host scripts", () => {
  for (const [name, { script, files }] of Object.entries(SCRIPTS)) {
    it(`${name}: passes shellcheck as sent, and is its remote/ files behind a header of quoted parameters`, () => {
      const file = path.join(dir, `${name.replace(/\W/g, "-")}.sh`);
      fs.writeFileSync(file, `#!/bin/sh\n${script}`);
      const r = spawnSync("shellcheck", ["-s", "sh", "-f", "gcc", file], { encoding: "utf8" });
      assert.equal(r.status, 0, r.stdout + r.stderr);

      // The body is the files, byte for byte: no value was pasted into them.
      const body = files.map(remoteFile).join("\n");
      assert.ok(script.endsWith(body), `${name} ends with ${files.join(" + ")}`);
      // The header alone sets the values as given, hostile ones included, and runs nothing else.
      const header = script.slice(0, script.length - body.length);
      const r2 = spawnSync("/bin/sh", ["-c", `${header}\nprintf '%s' "$DIR"`], { encoding: "utf8" });
      assert.equal(r2.status, 0, r2.stderr);
      assert.equal(r2.stdout, DEPLOY_DIR);
    });
  }

  it("passes shellcheck file by file too (the header's parameters aside)", () => {
    for (const file of fs.readdirSync(REMOTE).filter((f) => f.endsWith(".sh"))) {
      const r = spawnSync("shellcheck", ["-s", "sh", "-e", "SC2154", "-f", "gcc", path.join(REMOTE, file)], { encoding: "utf8" });
      assert.equal(r.status, 0, r.stdout + r.stderr);
    }
  });

  it("checks every file in remote/ through a script it is part of", () => {
    const used = new Set(Object.values(SCRIPTS).flatMap((s) => s.files));
    used.add("engine-allows-insecure.awk");
    assert.deepEqual(fs.readdirSync(REMOTE).sort(), [...used].sort());
  });

  it("runs a hostile value as the value it is", () => {
    const marker = path.join(dir, "pwned");
    const value = `it's $(touch ${marker}) \`touch ${marker}\` "$HOME" \\ end`;
    const r = spawnSync("/bin/sh", ["-c", `${hostScript([], { VALUE: value, N: 3 })}\nprintf '%s|%s' "$VALUE" "$N"`], { encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, `${value}|3`);
    assert.equal(fs.existsSync(marker), false);
  });

  it("refuses a parameter name that is not an upper-case shell name", () => {
    assert.throws(() => hostScript([], { "A; rm": "x" }), /host script parameter "A; rm" must be an upper-case shell name/);
    assert.throws(() => hostScript([], { dir: "x" }), /parameter "dir"/);
  });

  it("names exit codes as EXIT_ parameters", () => {
    assert.deepEqual(exitParams({ restored: 10, restoreFailed: 11, engineUnreachable: 14 }), { EXIT_RESTORED: 10, EXIT_RESTORE_FAILED: 11, EXIT_ENGINE_UNREACHABLE: 14 });
  });
});
