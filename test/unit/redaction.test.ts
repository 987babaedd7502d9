import { describe, it } from "node:test";
import * as assert from "node:assert/strict";
import * as crypto from "crypto";
import { redactingWriter } from "../../deploy/engine";
import { secretValues } from "../../deploy/release-state";

/** Feeds `chunks` through the writer as the engine's output arrives, and returns what was printed. */
function printed(chunks: readonly string[], secrets: readonly string[]): string {
  let out = "";
  const w = redactingWriter((t) => (out += t), secrets);
  for (const c of chunks) {
    w.write(c);
  }
  w.flush();
  return out;
}

describe("what the deploy prints of the engine's output", () => {
  // Secret values are made at test time, never committed.
  const value = (): string => crypto.randomBytes(12).toString("hex");
  const registryPassword = value();
  const dbPassword = value();
  const vpsKey = value();
  const keyBody = crypto.randomBytes(30).toString("base64");
  const cfg = {
    "homelab:registryPassword": { value: registryPassword, secret: true },
    "homelab:backendEnv": { value: JSON.stringify({ DATABASE_URL: `postgres://app:${dbPassword}@db/app`, PORT: "3001" }), secret: true },
    "homelab:vpsEnv": { value: JSON.stringify({ STRIPE_KEY: vpsKey }), secret: true },
    "homelab:vmPrivateKey": { value: ["-----BEGIN OPENSSH", "PRIVATE KEY-----"].join(" ") + `\n${keyBody}\n` + ["-----END OPENSSH", "PRIVATE KEY-----"].join(" "), secret: true },
    "homelab:vmHost": { value: "192.168.0.50", secret: false },
  };
  const secrets = secretValues(cfg);

  it("hides every configured secret in application logs a failed release printed, even split across chunks", () => {
    const logs = [
      `  pulumi-nodejs:dynamic/homelab:RemoteScript (backend-deploy):\n    error: deploy: the backend's health check failed; its last log lines:\n    backend-1  | connecting to postgres://app:${dbPassword.slice(0, 5)}`,
      `${dbPassword.slice(5)}@db/app\n    backend-1  | stripe key ${vpsKey} rejected\n    backend-1  | login ${registryPassword}\n`,
      `    backend-1  | ${keyBody}\n    deploy: restored the previous release`,
    ];
    const out = printed(logs, secrets);
    for (const s of [dbPassword, vpsKey, registryPassword, keyBody]) {
      assert.ok(!out.includes(s), `${s} is hidden:\n${out}`);
    }
    assert.match(out, /connecting to \[secret\]\n/);
    assert.match(out, /PORT|3001|192\.168\.0\.50|deploy: restored the previous release$/, "the rest is printed as it came");
    assert.ok(out.endsWith("deploy: restored the previous release"), "an unfinished last line is printed at the end");
  });

  it("passes output through untouched when nothing is secret", () => {
    assert.equal(printed(["@ updating....", ".."], []), "@ updating......");
  });
});
