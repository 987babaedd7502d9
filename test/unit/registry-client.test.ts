import { after, before, describe, it } from "node:test";
import * as assert from "node:assert/strict";
import * as crypto from "crypto";
import * as http from "http";
import type { AddressInfo } from "net";
import { resolveDigest, tokenEndpointProblem } from "../../lib/registry-client";

const DIGEST = `sha256:${"a".repeat(64)}`;
// Made at test time, never committed.
const CREDS = { username: "robot", password: crypto.randomBytes(12).toString("hex") };

/** A loopback server recording the Authorization header of every request. */
async function server(handle: (req: http.IncomingMessage, res: http.ServerResponse) => void, host = "127.0.0.1"): Promise<{ host: string; seen: (string | undefined)[]; close(): void }> {
  const seen: (string | undefined)[] = [];
  const s = http.createServer((req, res) => {
    seen.push(req.headers.authorization);
    handle(req, res);
  });
  await new Promise<void>((r) => s.listen(0, host, r));
  return { host: `${host}:${(s.address() as AddressInfo).port}`, seen, close: () => s.close() };
}

describe("registry credentials go only to the registry", () => {
  let elsewhere: Awaited<ReturnType<typeof server>>;
  let registry: Awaited<ReturnType<typeof server>>;
  let realm = "";

  before(async () => {
    elsewhere = await server((_req, res) => res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ token: "t" })), "127.0.0.2");
    registry = await server((req, res) => {
      if (req.url?.startsWith("/token")) {
        res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ token: "t" }));
      } else if (req.headers.authorization === "Bearer t") {
        res.writeHead(200, { "docker-content-digest": DIGEST }).end();
      } else {
        res.writeHead(401, { "www-authenticate": `Bearer realm="${realm}",service="registry"` }).end();
      }
    });
  });

  after(() => {
    registry.close();
    elsewhere.close();
  });

  const ref = (): { registry: string; repository: string; tag: string } => ({ registry: registry.host, repository: "backend", tag: "main-1a2b3c4-1764500000" });

  it("sends them to the registry's own token endpoint", async () => {
    realm = `http://${registry.host}/token`;
    assert.equal(await resolveDigest(ref(), CREDS, true), DIGEST);
  });

  it("refuses a token endpoint on another host, sending it nothing", async () => {
    realm = `http://${elsewhere.host}/token`;
    const before = elsewhere.seen.length;
    await assert.rejects(resolveDigest(ref(), CREDS, true), /asks for a token for .*backend:main-1a2b3c4-1764500000, and its token endpoint is http:\/\/127\.0\.0\.2:\d+, not the registry's own host: the credentials are not sent there \(allow an https token host with homelab:registryTokenHosts\)/);
    assert.equal(elsewhere.seen.length, before);
  });

  it("lets an anonymous pull ask any token endpoint (there is nothing to leak)", async () => {
    realm = `http://${elsewhere.host}/token`;
    assert.equal(await resolveDigest(ref(), undefined, true), DIGEST);
    assert.deepEqual(elsewhere.seen.slice(-1), [undefined]);
  });

  it("judges token endpoints by host, scheme and the hosts allowed", () => {
    assert.equal(tokenEndpointProblem("https://harbor.lan/service/token", "harbor.lan", false), undefined);
    assert.equal(tokenEndpointProblem("http://192.168.0.40:5000/service/token", "192.168.0.40:5000", true), undefined);
    assert.match(tokenEndpointProblem("http://harbor.lan/service/token", "harbor.lan", false) ?? "", /over plain HTTP/);
    assert.equal(tokenEndpointProblem("https://auth.docker.io/token", "registry-1.docker.io", false, ["auth.docker.io"]), undefined);
    assert.match(tokenEndpointProblem("http://auth.docker.io/token", "registry-1.docker.io", true, ["auth.docker.io"]) ?? "", /not the registry's own host/);
    assert.match(tokenEndpointProblem("https://evil.example/token", "registry-1.docker.io", false, ["auth.docker.io"]) ?? "", /not the registry's own host/);
    assert.match(tokenEndpointProblem("not a url", "harbor.lan", false) ?? "", /is not a URL/);
  });
});
