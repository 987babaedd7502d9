import { before, describe, it } from "node:test";
import * as assert from "node:assert/strict";
import * as pulumi from "@pulumi/pulumi";
import { Recorder, installMocks, settle } from "../support/mocks";

let rec: Recorder;

before(async () => {
  rec = installMocks();
  const { RemoteScript } = await import("../../providers/remote-script");
  const connection = { host: "127.0.0.1", port: 22, user: "deploy", privateKey: pulumi.secret("key") };
  new RemoteScript("plain-files", { connection, create: "deploy", files: { "docker-compose.yml": "services: {}\n" }, stdin: pulumi.secret("file .env 0600 \n") });
  new RemoteScript("secret-files", { connection, create: "deploy", files: pulumi.secret({ "docker-compose.yml": "services: {}\n" }) });
  new RemoteScript("no-files", { connection, create: "check" });
  await settle(rec);
});

describe("remote script inputs", () => {
  it("keeps the services plan as secret as the files it is read from", () => {
    assert.ok(!rec.byName("plain-files").secretInputs.includes("files"));
    assert.ok(!rec.byName("plain-files").secretInputs.includes("services"));
    assert.ok(rec.byName("plain-files").secretInputs.includes("stdin"));
    assert.ok(rec.byName("secret-files").secretInputs.includes("files"));
    assert.ok(rec.byName("secret-files").secretInputs.includes("services"));
    assert.ok(!rec.byName("no-files").secretInputs.includes("services"));
  });
});
