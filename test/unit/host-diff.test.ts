import { describe, it } from "node:test";
import * as assert from "node:assert/strict";
import { joinBundle, parseBundle, renderBundle } from "../../lib/bundle";
import { composeToYaml, renderBackendCompose, renderEnvFile } from "../../lib/compose";
import { planServices } from "../../lib/compose-changes";

import { remoteScriptProvider } from "../../providers/remote-script";
import { DIGEST_A, DIGEST_B, TAG_A, TAG_B } from "../support/fixtures";

const IMAGE_A = `127.0.0.1:5000/backend:${TAG_A}@${DIGEST_A}`;
const IMAGE_B = `127.0.0.1:5000/backend:${TAG_B}@${DIGEST_B}`;
const compose = (image = IMAGE_A, memory = "512M") => composeToYaml(renderBackendCompose({ project: "backend", image, limits: { memory } }));
const ENV = renderEnvFile({ DATABASE_URL: "postgres://app:db-secret-456@db/app" });
const connection = { host: "127.0.0.1", port: 2222, user: "deploy", privateKey: "key" };

/** What the provider receives for a deploy: plain files, and the secret part of the bundle on stdin. */
function deployInputs(o: { compose?: string; env?: string; password?: string } = {}) {
  return {
    connection,
    create: "deploy script",
    delete: "down script",
    files: { "docker-compose.yml": o.compose ?? compose() },
    envKeys: ["DATABASE_URL"],
    stdin: renderBundle([{ name: ".env", content: o.env ?? ENV, mode: "0600" }], { registryPassword: o.password ?? "registry-pass-123" }),
  };
}

describe("deploy bundle", () => {
  it("reads back what renderBundle wrote, files and secrets apart", () => {
    const b = parseBundle(renderBundle([{ name: "Caddyfile", content: "a {\n}\n", mode: "0644" }], { registryPassword: "pw" }))!;
    assert.deepEqual(b.files, { Caddyfile: "a {\n}\n" });
    assert.deepEqual(b.secrets, { "registry-password": "pw" });
  });

  it("is the same bundle whichever input carried a file, in whatever order", () => {
    const env = { name: ".env", content: ENV, mode: "0600" as const };
    const allSecret = renderBundle([env, { name: "docker-compose.yml", content: compose(), mode: "0644" }], { registryPassword: "pw" });
    const split = joinBundle({ "docker-compose.yml": compose() }, renderBundle([env], { registryPassword: "pw" }));
    assert.notEqual(allSecret, split);
    assert.equal(parseBundle(allSecret)!.canonical, parseBundle(split)!.canonical);
    assert.notEqual(parseBundle(joinBundle({ "docker-compose.yml": compose(IMAGE_B) }, ""))!.canonical, parseBundle(joinBundle({ "docker-compose.yml": compose() }, ""))!.canonical);
  });

  it("is not a bundle when a line is something else (a value a preview does not know yet)", () => {
    assert.equal(parseBundle("04da6b54-80e4-46f7-96ec-b56ff0331ba9"), undefined);
    assert.deepEqual(parseBundle("")!.files, {});
  });
});

describe("what compose will do to each service", () => {
  const before = { "docker-compose.yml": compose(), ".env": ENV };

  it("recreates a service for a new image or limit, naming the settings", () => {
    assert.deepEqual(planServices(before, { ...before, "docker-compose.yml": compose(IMAGE_B) }), { backend: "recreated (image)" });
    assert.deepEqual(planServices(before, { ...before, "docker-compose.yml": compose(IMAGE_B, "1G") }), { backend: "recreated (deploy, image)" });
  });

  it("recreates a service whose env file changed, naming only the file", () => {
    const plan = planServices(before, { ...before, ".env": renderEnvFile({ DATABASE_URL: "postgres://app:other-secret@db/app" }) });
    assert.deepEqual(plan, { backend: "recreated (.env)" });
    assert.doesNotMatch(JSON.stringify(plan), /secret/);
  });

  it("keeps, creates and removes services", () => {
    assert.deepEqual(planServices(before, before), { backend: "kept" });
    assert.deepEqual(planServices({}, before), { backend: "created" });
    const two = composeToYaml({ name: "backend", services: { worker: { image: IMAGE_A } } });
    assert.deepEqual(planServices(before, { ...before, "docker-compose.yml": two }), { worker: "created", backend: "removed" });
  });

  it("has no plan without a readable compose file", () => {
    assert.equal(planServices(before, { ".env": ENV }), undefined);
    assert.equal(planServices(before, { "docker-compose.yml": "04da6b54-80e4-46f7-96ec-b56ff0331ba9" }), undefined);
  });
});

describe("remote script provider", () => {
  const provider = remoteScriptProvider as Required<typeof remoteScriptProvider>;

  it("sees no change, and plans nothing, where state still carries every file in the secret stdin", async () => {
    const now = deployInputs();
    const old = {
      connection,
      create: now.create,
      delete: now.delete,
      stdin: renderBundle(
        [
          { name: "docker-compose.yml", content: compose(), mode: "0644" },
          { name: ".env", content: ENV, mode: "0600" },
        ],
        { registryPassword: "registry-pass-123" },
      ),
      stdout: "deploy: healthy after 3s\n",
    };
    assert.equal((await provider.diff("id", old, now)).changes, false);
    const checked = (await provider.check(old, now)).inputs!;
    assert.equal(checked.services, undefined);
    // An update that runs anyway (an engine's choice) keeps the report and contacts nothing.
    assert.equal((await provider.update("id", old, { ...now, ...checked })).outs.stdout, old.stdout);
  });

  it("plans the recreated services for the preview, from the old and new files", async () => {
    const old = { ...deployInputs(), services: { backend: "created" } };
    const now = deployInputs({ compose: compose(IMAGE_B, "768M") });
    assert.equal((await provider.diff("id", old, now)).changes, true);
    assert.deepEqual((await provider.check(old, now)).inputs!.services, { backend: "recreated (deploy, image)" });
    const envOnly = deployInputs({ env: renderEnvFile({ DATABASE_URL: "postgres://app:rotated-789@db/app" }) });
    assert.deepEqual((await provider.check(old, envOnly)).inputs!.services, { backend: "recreated (.env)" });
    assert.deepEqual((await provider.check({}, now)).inputs!.services, { backend: "created" });
  });

  it("keeps the last plan when nothing will run, so a no-op preview shows nothing", async () => {
    const old = { ...deployInputs(), services: { backend: "recreated (image)" } };
    assert.deepEqual((await provider.check(old, deployInputs())).inputs!.services, { backend: "recreated (image)" });
    assert.equal((await provider.diff("id", old, { ...deployInputs(), services: { backend: "recreated (image)" } })).changes, false);
  });

  it("re-runs for a new registry password, though no service changes", async () => {
    const old = deployInputs();
    const now = deployInputs({ password: "rotated" });
    assert.equal((await provider.diff("id", old, now)).changes, true);
    assert.deepEqual((await provider.check(old, now)).inputs!.services, { backend: "kept" });
  });

  it("plans nothing for a script that deploys no compose file", async () => {
    const inputs = { connection, create: "host check" };
    assert.equal((await provider.check({}, inputs)).inputs!.services, undefined);
  });
});
