import { describe, it } from "node:test";
import * as assert from "node:assert/strict";
import * as YAML from "yaml";
import { composeToYaml, renderBackendCompose, renderEnvFile } from "../../lib/compose";

describe("backend compose file", () => {
  it("renders the seeds' service definition with a pinned image", () => {
    const file = renderBackendCompose({ project: "backend", image: "r:5000/backend:t@sha256:x", containerName: "edwards-backend" });
    assert.deepEqual(file, {
      name: "backend",
      services: {
        backend: {
          image: "r:5000/backend:t@sha256:x",
          container_name: "edwards-backend",
          restart: "unless-stopped",
          env_file: [".env"],
          ports: ["0.0.0.0:3001:3001"],
          volumes: ["backend-data:/data"],
          healthcheck: {
            test: [
              "CMD-SHELL",
              `node -e "require('http').get('http://localhost:3001/api/health', (r) => process.exit(r.statusCode === 200 ? 0 : 1)).on('error', () => process.exit(1))"`,
            ],
            interval: "30s",
            timeout: "3s",
            retries: 3,
            start_period: "40s",
          },
          logging: { driver: "json-file", options: { "max-size": "10m", "max-file": "3" } },
          deploy: { resources: { limits: { cpus: "2", memory: "512M" }, reservations: { cpus: "0.5", memory: "256M" } } },
        },
      },
      volumes: { "backend-data": {} },
    });
  });

  it("escapes $ as $$ everywhere, so compose substitutes nothing from .env into a health check", () => {
    const file = renderBackendCompose({ project: "p", image: "r/x:y", healthcheckTest: ["CMD-SHELL", "test \"$(cat /run/ok)\" = yes && echo $HOME $$"] });
    const parsed = YAML.parse(composeToYaml(file)) as typeof file;
    assert.deepEqual(parsed.services.backend.healthcheck?.test, ["CMD-SHELL", "test \"$$(cat /run/ok)\" = yes && echo $$HOME $$$$"]);
  });

  it("serialises to YAML that parses back to the same object", () => {
    const file = renderBackendCompose({ project: "p", image: "r/x:y", port: 4000 });
    assert.deepEqual(YAML.parse(composeToYaml(file)), file);
  });
});

describe(".env file", () => {
  it("quotes values literally and sorts keys", () => {
    assert.equal(renderEnvFile({ B: "two words", A: "x$HOME" }), "A='x$HOME'\nB='two words'\n");
    assert.equal(renderEnvFile({ Q: `it's "fine" \\o/` }), `Q="it's \\"fine\\" \\\\o/"\n`);
    // compose-go takes a \ before the closing quote as escaping it: such a value goes bare.
    assert.equal(renderEnvFile({ W: "C:\\data\\", X: "it's C:\\" }), "W=C:\\data\\\nX=it's C:\\\n");
    assert.equal(renderEnvFile({}), "");
  });
  it("refuses what a .env file cannot carry", () => {
    assert.throws(() => renderEnvFile({ "BAD-KEY": "x" }), /env: key "BAD-KEY" is not a valid environment variable name/);
    assert.throws(() => renderEnvFile({ K: "a\nb" }), /env.K: a value with a line break/);
    assert.throws(() => renderEnvFile({ K: "it's $x" }), /env.K: a value holding both ' and \$/);
    assert.throws(() => renderEnvFile({ K: `it's "quoted"` }), /env.K: a value holding ' and ending in "/);
    for (const value of ["$HOME\\", "a #b\\", " x\\", "'x\\"]) {
      assert.throws(() => renderEnvFile({ K: value }), /env.K: a value ending in \\ and holding # or \$, a leading quote or spaces at its ends/, value);
    }
  });
});
