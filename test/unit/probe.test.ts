import { after, before, describe, it } from "node:test";
import * as assert from "node:assert/strict";
import * as http from "http";
import { AddressInfo } from "net";
import { HealthGateError, ProbeIo, SoakError, judge, probeUntilHealthy, realProbeIo } from "../../lib/probe";
import { parseVersionMarker, versionAt } from "../../lib/version-marker";

/** A clock and HTTP stub: each URL answers from its list of responses, the last one repeating. */
function fakeIo(responses: Record<string, ({ status: number; body?: string; headers?: Record<string, string> } | Error)[]>): ProbeIo & { slept: number[]; t: number } {
  const io = {
    t: 0,
    slept: [] as number[],
    fetch(url: string) {
      const list = responses[url];
      const next = list.length > 1 ? list.shift()! : list[0];
      io.t += 10;
      return next instanceof Error ? Promise.reject(next) : Promise.resolve({ status: next.status, body: next.body ?? "", headers: next.headers });
    },
    sleep(ms: number) {
      io.slept.push(ms);
      io.t += ms;
      return Promise.resolve();
    },
    now: () => io.t,
  };
  return io;
}

describe("health probe", () => {
  it("retries with backoff until healthy", async () => {
    const io = fakeIo({ "http://a/": [new Error("connect ECONNREFUSED"), { status: 503 }, { status: 200 }] });
    const r = await probeUntilHealthy([{ url: "http://a/" }], { intervalMs: 1000, backoff: 2, maxIntervalMs: 3000 }, io);
    assert.equal(r.targets[0].attempts, 3);
    assert.deepEqual(io.slept, [1000, 2000]);
  });

  it("probes every 250 ms in its quick window after the first attempt, then backs off as before", async () => {
    const io = fakeIo({ "http://a/": [...Array.from({ length: 10 }, () => ({ status: 503 })), { status: 200 }] });
    const r = await probeUntilHealthy([{ url: "http://a/" }], { intervalMs: 1000, backoff: 2, maxIntervalMs: 8000, quickWindowMs: 2000, quickIntervalMs: 250 }, io);
    assert.equal(r.targets[0].attempts, 11);
    // Eight quick waits fill the 2 s window (each attempt also takes the fake's 10 ms), then 1 s, 2 s: the back-off did not grow inside the window.
    assert.deepEqual(io.slept, [250, 250, 250, 250, 250, 250, 250, 250, 1000, 2000]);
  });

  it("fails after the deadline naming the URL, last outcome, attempts and time", async () => {
    const io = fakeIo({ "http://b/api/health": [{ status: 500 }] });
    await assert.rejects(
      probeUntilHealthy([{ url: "http://b/api/health" }], { intervalMs: 1000, backoff: 1, deadlineMs: 5000 }, io),
      (e: unknown) => {
        assert.ok(e instanceof HealthGateError);
        assert.equal(e.url, "http://b/api/health");
        assert.equal(e.attempts, 5);
        assert.match(e.message, /http:\/\/b\/api\/health did not become healthy after 5 attempt\(s\) in 4\.\ds; last result: status 500 \(expected 200\)/);
        return true;
      },
    );
  });

  it("checks every target in order", async () => {
    const io = fakeIo({ "http://vm/": [{ status: 200 }], "http://ingress/": [{ status: 404 }, { status: 200 }] });
    const r = await probeUntilHealthy([{ url: "http://vm/" }, { url: "http://ingress/" }], { intervalMs: 10 }, io);
    assert.deepEqual(r.targets.map((t) => [t.url, t.attempts]), [["http://vm/", 1], ["http://ingress/", 2]]);
  });

  it("matches a JSON field", () => {
    const t = { url: "x", jsonField: { path: "build.version", equals: "main-abc1234-1707300000" } };
    assert.equal(judge(t, 200, '{"build":{"version":"main-abc1234-1707300000"}}'), undefined);
    assert.equal(judge(t, 200, '{"build":{"version":"old"}}'), 'status 200 but build.version is "old" (expected "main-abc1234-1707300000")');
    assert.equal(judge(t, 200, "<html>"), "status 200 but the body is not JSON");
    assert.equal(judge({ url: "x", expectStatus: 204 }, 200, ""), "status 200 (expected 204)");
  });
});

describe("health probe over real HTTP", () => {
  let server: http.Server;
  let base: string;
  let hits = 0;
  before(async () => {
    server = http.createServer((req, res) => {
      hits++;
      if (req.url === "/api/health" && hits >= 3) {
        res.writeHead(200, { "content-type": "application/json" }).end('{"version":"v2"}');
      } else {
        res.writeHead(503).end("starting");
      }
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => new Promise<void>((r) => server.close(() => r())));

  it("passes once the server answers 200 with the expected version", async () => {
    const r = await probeUntilHealthy([{ url: `${base}/api/health`, jsonField: { path: "version", equals: "v2" } }], { intervalMs: 20, deadlineMs: 5000 }, realProbeIo());
    assert.equal(r.targets[0].attempts, 3);
    assert.equal(r.targets[0].status, 200);
  });

  it("reports a refused connection clearly", async () => {
    const closed = http.createServer();
    await new Promise<void>((r) => closed.listen(0, "127.0.0.1", r));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((r) => closed.close(() => r()));
    await assert.rejects(
      probeUntilHealthy([{ url: `http://127.0.0.1:${port}/` }], { intervalMs: 20, deadlineMs: 100 }, realProbeIo()),
      new RegExp(`http://127.0.0.1:${port}/ did not become healthy .* last result: ECONNREFUSED$`),
    );
  });
});

describe("the version a gate checks", () => {
  const TAG = "main-81338a1-1900000000";
  const OLD = "main-41f4c4a-1800000000";

  it("reads a meta tag of the page, in either attribute order and quoting", () => {
    const meta = parseVersionMarker("meta:app-version");
    assert.deepEqual(versionAt(meta, { body: `<head><meta charset="utf-8"><meta name="app-version" content="${TAG}"></head>` }), { value: TAG });
    assert.deepEqual(versionAt(meta, { body: `<META content='${TAG}' NAME=app-version>` }), { value: TAG });
    assert.deepEqual(versionAt(meta, { body: `<meta name="generator" content="${TAG}">` }), { missing: 'no <meta name="app-version"> in the page' });
  });

  it("reads a response header whatever its case, and a JSON field", () => {
    assert.deepEqual(versionAt(parseVersionMarker("header:X-App-Version"), { body: "", headers: { "x-app-version": ` ${TAG} ` } }), { value: TAG });
    assert.deepEqual(versionAt(parseVersionMarker("header:X-App-Version"), { body: "", headers: {} }), { missing: "no X-App-Version header" });
    assert.deepEqual(versionAt(parseVersionMarker("json:build.tag"), { body: JSON.stringify({ build: { tag: TAG } }) }), { value: TAG });
    assert.deepEqual(versionAt(parseVersionMarker("json:build.tag"), { body: "<html>" }), { missing: "the body is not JSON" });
    assert.deepEqual(versionAt(parseVersionMarker("json:build"), { body: JSON.stringify({ build: { tag: TAG } }) }), { missing: "no build field" });
  });

  it("refuses a marker it cannot read, saying what it expects", () => {
    assert.throws(() => parseVersionMarker("X-App-Version"), /^Error: is not header:NAME, json:FIELD\.PATH or meta:NAME$/);
    assert.throws(() => parseVersionMarker("header:X App"), /names "X App", which is not a header name/);
    assert.throws(() => parseVersionMarker("json:build..tag"), /names "build\.\.tag", which is not a JSON field path/);
  });

  it("fails a page that answers with another version, naming both", () => {
    const t = { url: "x", version: { marker: parseVersionMarker("meta:app-version"), equals: TAG } };
    assert.equal(judge(t, 200, `<meta name="app-version" content="${TAG}">`), undefined);
    assert.equal(judge(t, 200, `<meta name="app-version" content="${OLD}">`), `status 200 but the version (meta:app-version) is "${OLD}", not "${TAG}"`);
    assert.equal(judge(t, 200, "<p>no marker</p>"), `status 200 but the version (meta:app-version) is unknown: no <meta name="app-version"> in the page, not "${TAG}"`);
  });

  it("keeps probing until an old pod's answers stop, then passes", async () => {
    const t = { url: "http://web/", version: { marker: parseVersionMarker("header:X-App-Version"), equals: TAG } };
    const io = fakeIo({ "http://web/": [{ status: 200, headers: { "x-app-version": OLD } }, { status: 200, headers: { "x-app-version": TAG } }] });
    const r = await probeUntilHealthy([t], { intervalMs: 1000 }, io);
    assert.equal(r.targets[0].attempts, 2);
  });
});

describe("the gate's soak", () => {
  it("keeps probing every target for the soak after the first pass, and passes when nothing failed", async () => {
    const io = fakeIo({ "http://vm/": [{ status: 200 }], "http://ingress/": [{ status: 200 }] });
    const r = await probeUntilHealthy([{ url: "http://vm/" }, { url: "http://ingress/" }], { soakMs: 5000, soakIntervalMs: 1000 }, io);
    assert.ok(r.soak && r.soak.rounds >= 4 && r.soak.ms >= 5000, JSON.stringify(r.soak));
    assert.ok(io.slept.every((ms) => ms <= 1000), String(io.slept));
  });

  it("fails a release that answers once and then crashes inside the window, naming the answer and when", async () => {
    const io = fakeIo({ "http://web/": [{ status: 200 }, { status: 200 }, { status: 200 }, new Error("ECONNREFUSED")] });
    await assert.rejects(
      probeUntilHealthy([{ url: "http://web/" }], { soakMs: 60_000, soakIntervalMs: 1000 }, io),
      (e: unknown) => {
        assert.ok(e instanceof SoakError);
        assert.equal(e.outcome, "ECONNREFUSED");
        assert.match(e.message, /^health gate failed in its soak: http:\/\/web\/ passed, then failed 3\.\ds into the 60s soak: ECONNREFUSED$/);
        return true;
      },
    );
  });

  it("does not fail on a draining pod's previous version once the first pass saw the new one", async () => {
    const t = { url: "http://web/", version: { marker: parseVersionMarker("header:X-App-Version"), equals: "new" } };
    const io = fakeIo({ "http://web/": [{ status: 200, headers: { "x-app-version": "new" } }, { status: 200, headers: { "x-app-version": "old" } }, { status: 200, headers: { "x-app-version": "new" } }] });
    const r = await probeUntilHealthy([t], { soakMs: 3000, soakIntervalMs: 1000 }, io);
    assert.equal(r.soak?.rounds, 3);
  });

  it("fails a release whose pods restarted between the soak's start and end though every probe passed, naming the pod, count and last exit", async () => {
    const readings = [{ "web-1": { restarts: 0 } }, { "web-1": { restarts: 2, lastExit: "exit code 1, Error" } }];
    const io = { ...fakeIo({ "http://web/": [{ status: 200 }] }), restarts: () => Promise.resolve(readings.shift()!), restartsOf: "the pods app=web in site" };
    await assert.rejects(
      probeUntilHealthy([{ url: "http://web/" }], { soakMs: 3000, soakIntervalMs: 1000 }, io),
      (e: unknown) => {
        assert.ok(e instanceof SoakError);
        assert.match(e.message, /^health gate failed in its soak: the pods app=web in site passed, then failed 3\.\ds into the 3s soak: web-1 restarted 2 time\(s\) \(last: exit code 1, Error\)$/);
        return true;
      },
    );
    assert.equal(readings.length, 0, "read at the soak's start and at its end");
  });

  it("passes when nothing restarted in the window, restarts from before it included, and says so", async () => {
    const readings = [{ backend: { restarts: 3 } }, { backend: { restarts: 3 } }];
    const io = { ...fakeIo({ "http://vm/": [{ status: 200 }] }), restarts: () => Promise.resolve(readings.shift()!) };
    const r = await probeUntilHealthy([{ url: "http://vm/" }], { soakMs: 2000, soakIntervalMs: 1000 }, io);
    assert.equal(r.soak?.restarts, "none");
  });

  it("blames nothing when the restarts cannot be read (the API server down): the soak passes and says why they were not counted", async () => {
    const readings: (() => Promise<Record<string, { restarts: number }>>)[] = [() => Promise.resolve({ "web-1": { restarts: 0 } }), () => Promise.reject(new Error("the API server https://127.0.0.1:6443 did not answer"))];
    const io = { ...fakeIo({ "http://web/": [{ status: 200 }] }), restarts: () => readings.shift()!() };
    const r = await probeUntilHealthy([{ url: "http://web/" }], { soakMs: 2000, soakIntervalMs: 1000 }, io);
    assert.equal(r.soak?.restarts, "not counted: the API server https://127.0.0.1:6443 did not answer");
  });

  it("reads no restarts without a soak", async () => {
    let reads = 0;
    const io = { ...fakeIo({ "http://web/": [{ status: 200 }] }), restarts: () => Promise.resolve({ x: { restarts: ++reads } }) };
    await probeUntilHealthy([{ url: "http://web/" }], { soakMs: 0 }, io);
    assert.equal(reads, 0);
  });

  it("is off at 0: the first good answer passes", async () => {
    const io = fakeIo({ "http://web/": [{ status: 200 }, new Error("never asked")] });
    const r = await probeUntilHealthy([{ url: "http://web/" }], { soakMs: 0 }, io);
    assert.equal(r.soak, undefined);
    assert.deepEqual(io.slept, []);
  });
});
