import { after, before, describe, it } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "fs";
import * as http from "http";
import { AddressInfo } from "net";
import * as os from "os";
import * as path from "path";
import { parseChallenge, resolveDigest } from "../../lib/registry-client";
import { TAG_A, TAG_B } from "../support/fixtures";
import { RunningRegistry, startRegistry } from "../support/registry";
import { makeCertificates } from "../support/tls";

describe("registry digest lookup against a real registry (htpasswd auth)", () => {
  let dir: string;
  let registry: RunningRegistry;
  let pushed: string;

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "registry-client-"));
    registry = await startRegistry(dir);
    pushed = await registry.push("backend", TAG_A);
  });
  after(async () => {
    await registry.stop({ keepData: false });
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const ref = (tag: string): { registry: string; repository: string; tag: string } => ({ registry: registry.host, repository: "backend", tag });

  it("resolves a tag to the digest the registry serves", async () => {
    assert.equal(await resolveDigest(ref(TAG_A), { username: registry.username, password: registry.password }, true), pushed);
  });

  it("names the image when the tag is missing", async () => {
    await assert.rejects(
      resolveDigest(ref(TAG_B), { username: registry.username, password: registry.password }, true),
      new RegExp(`image ${registry.host}/backend:${TAG_B} is not in the registry \\(no such tag\\)`),
    );
  });

  it("says the credentials were refused", async () => {
    await assert.rejects(
      resolveDigest(ref(TAG_A), { username: registry.username, password: "wrong" }, true),
      new RegExp(`registry ${registry.host} refused the credentials of "robot" for ${registry.host}/backend:${TAG_A}`),
    );
  });
});

describe("registry digest lookup over https with the registry's own CA (homelab:registryCaCert)", () => {
  let dir: string;
  let registry: RunningRegistry;
  let certs: ReturnType<typeof makeCertificates>;
  let pushed: string;

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "registry-client-tls-"));
    certs = makeCertificates(fs.mkdtempSync(path.join(dir, "pki-")));
    registry = await startRegistry(path.join(dir, "registry"), { tls: { certificate: certs.serverCert, key: certs.serverKey, ca: certs.ca } });
    pushed = await registry.push("backend", TAG_A);
  });
  after(async () => {
    await registry.stop({ keepData: false });
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const ref = { registry: "", repository: "backend", tag: TAG_A };
  const creds = (): { username: string; password: string } => ({ username: registry.username, password: registry.password });

  it("resolves the digest with the CA, the credentials going over https", async () => {
    assert.equal(registry.scheme, "https");
    assert.equal(await resolveDigest({ ...ref, registry: registry.host }, creds(), false, { caCert: certs.ca }), pushed);
  });

  it("refuses the registry's certificate without the CA or with another, saying what to set", async () => {
    await assert.rejects(resolveDigest({ ...ref, registry: registry.host }, creds(), false), /set homelab:registryCaCert to the CA's PEM\)$/);
    await assert.rejects(resolveDigest({ ...ref, registry: registry.host }, creds(), false, { caCert: certs.otherCa }), /does not chain to homelab:registryCaCert\)$/);
  });
});

describe("registry digest lookup with token auth", () => {
  let server: http.Server;
  let host: string;
  const digest = `sha256:${"c".repeat(64)}`;
  before(async () => {
    server = http.createServer((req, res) => {
      const url = new URL(req.url ?? "/", `http://${host}`);
      if (url.pathname === "/service/token") {
        const ok = req.headers.authorization === `Basic ${Buffer.from("robot$ci:pw").toString("base64")}` && url.searchParams.get("scope") === "repository:frontend:pull";
        res.writeHead(ok ? 200 : 401, { "content-type": "application/json" }).end(ok ? '{"token":"t0k"}' : "{}");
      } else if (req.headers.authorization === "Bearer t0k") {
        res.writeHead(200, { "docker-content-digest": digest }).end();
      } else {
        res.writeHead(401, { "www-authenticate": `Bearer realm="http://${host}/service/token",service="harbor-registry"` }).end();
      }
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => server.close());

  it("fetches a pull token with the credentials, as Harbor requires", async () => {
    assert.equal(await resolveDigest({ registry: host, repository: "frontend", tag: TAG_A }, { username: "robot$ci", password: "pw" }, true), digest);
    await assert.rejects(resolveDigest({ registry: host, repository: "frontend", tag: TAG_A }, { username: "robot$ci", password: "no" }, true), /refused the credentials of "robot\$ci".*token endpoint answered 401/);
  });

  it("parses challenges", () => {
    assert.deepEqual(parseChallenge('Bearer realm="https://h/service/token",service="harbor-registry",scope="repository:a:pull"'), {
      scheme: "bearer",
      params: { realm: "https://h/service/token", service: "harbor-registry", scope: "repository:a:pull" },
    });
  });
});
