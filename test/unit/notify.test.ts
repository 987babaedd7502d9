import { after, before, describe, it } from "node:test";
import * as assert from "node:assert/strict";
import * as crypto from "crypto";
import * as http from "http";
import type { AddressInfo } from "net";
import { notify, sendNotifications } from "../../deploy/notify";
import { describeNotification } from "../../deploy/quick-status";
import {
  LAST_NOTIFICATION_TAG, NotifyEvent, commitUrl, notificationTag, notifyText, parseNotificationTag, parseNotifyTargets, renderNotification, signature, targetName,
} from "../../lib/notify";
import { CONFIG_KEYS, ConfigError, parseConfig } from "../../lib/config";

const ROLLED_BACK: NotifyEvent = {
  event: "rolled-back",
  stack: "production",
  at: "2026-12-07T10:00:00.000Z",
  pair: { frontend: "main-aaaaaaa-1700000000", backend: "main-bbbbbbb-1700000000" },
  failed: { frontend: "main-ccccccc-1800000000", backend: "main-ddddddd-1800000000" },
  stage: "backend gate",
  reason: "http://vm/api/health: status 503 (expected 200)",
  commit: { sha: "0123456789abcdef0123456789abcdef01234567", url: "https://github.com/me/lab/commit/0123456789abcdef0123456789abcdef01234567" },
};

const KEY = "0123456789abcdef-hmac";

describe("notifications: what each receiver gets", () => {
  it("a webhook gets the event as JSON, signed as Flux's generic-hmac provider signs: X-Signature: sha256=<hex HMAC of the body>", () => {
    const req = renderNotification({ kind: "webhook", url: "https://hooks.example.org/deploys", hmacKey: KEY }, ROLLED_BACK);
    const body = JSON.parse(req.body) as NotifyEvent & { title: string };
    assert.equal(body.event, "rolled-back");
    assert.deepEqual(body.failed, ROLLED_BACK.failed);
    assert.equal(body.commit?.url, ROLLED_BACK.commit?.url);
    assert.equal(body.title, "production: ROLLED BACK");
    const expected = crypto.createHmac("sha256", KEY).update(req.body).digest("hex");
    assert.equal(req.headers["x-signature"], `sha256=${expected}`);
    assert.equal(signature(req.body, KEY), `sha256=${expected}`);
    assert.equal(renderNotification({ kind: "webhook", url: "https://h/" }, ROLLED_BACK).headers["x-signature"], undefined, "unsigned without a key");
  });

  it("Slack and Discord get their message JSON; Discord's stays within its 2000 characters", () => {
    const slack = JSON.parse(renderNotification({ kind: "slack", url: "https://hooks.slack.com/services/T/B/x" }, ROLLED_BACK).body) as { text: string };
    assert.match(slack.text, /^\*production: ROLLED BACK\*\nfailed: frontend main-ccccccc-1800000000, backend main-ddddddd-1800000000 \(backend gate\)\nrunning: frontend main-aaaaaaa/);
    assert.match(slack.text, /commit 0123456789ab: https:\/\/github\.com\/me\/lab\/commit\//);
    const long = { ...ROLLED_BACK, reason: "x".repeat(5000) };
    const discord = JSON.parse(renderNotification({ kind: "discord", url: "https://discord.com/api/webhooks/1/t" }, long).body) as { content: string };
    assert.ok(discord.content.length <= 2000);
    assert.match(discord.content, /^\*\*production: ROLLED BACK\*\*/);
  });

  it("ntfy gets text with its Title, Priority, Tags and Click headers, ASCII only", () => {
    const req = renderNotification({ kind: "ntfy", url: "https://ntfy.sh/my-lab" }, { ...ROLLED_BACK, stack: "prod—east" });
    assert.equal(req.headers.title, "prod?east: ROLLED BACK");
    assert.equal(req.headers.priority, "high");
    assert.equal(req.headers.tags, "warning");
    assert.equal(req.headers.click, ROLLED_BACK.commit?.url);
    assert.match(req.body, /^failed: frontend main-ccccccc/);
    const promoted = renderNotification({ kind: "ntfy", url: "https://ntfy.sh/my-lab" }, { event: "promoted", stack: "p", at: "t", pair: ROLLED_BACK.pair });
    assert.deepEqual([promoted.headers.priority, promoted.headers.tags, promoted.body], ["default", "white_check_mark", "p: promoted frontend main-aaaaaaa-1700000000, backend main-bbbbbbb-1700000000"]);
    assert.equal(renderNotification({ kind: "ntfy", url: "https://n/t" }, { ...ROLLED_BACK, event: "rollback-failed" }).headers.priority, "urgent");
  });

  it("titles every event", () => {
    for (const [event, title] of [
      ["promoted", "s: promoted frontend f, backend b"],
      ["repaired", "s: repaired frontend f, backend b"],
      ["rolled-back", "s: ROLLED BACK"],
      ["rollback-failed", "s: ROLLBACK FAILED"],
      ["platform-failure", "s: PLATFORM FAILURE"],
      ["frozen", "s: releases frozen"],
      ["unfrozen", "s: releases unfrozen"],
    ] as const) {
      assert.equal(notifyText({ event, stack: "s", at: "t", pair: { frontend: "f", backend: "b" } }).title, title);
    }
  });

  it("links a commit where the git host has web pages, and nowhere else", () => {
    const sha = "0123456789abcdef0123456789abcdef01234567";
    assert.equal(commitUrl("git@github.com:me/lab.git", sha), `https://github.com/me/lab/commit/${sha}`);
    assert.equal(commitUrl("ssh://git@github.com/me/lab.git", sha), `https://github.com/me/lab/commit/${sha}`);
    assert.equal(commitUrl("https://gitlab.com/group/sub/lab.git", sha), `https://gitlab.com/group/sub/lab/-/commit/${sha}`);
    assert.equal(commitUrl("git@codeberg.org:me/lab.git", sha), `https://codeberg.org/me/lab/commit/${sha}`);
    assert.equal(commitUrl("git@bitbucket.org:me/lab.git", sha), `https://bitbucket.org/me/lab/commits/${sha}`);
    assert.equal(commitUrl("https://git.lab.example:3000/me/lab.git", sha), `https://git.lab.example:3000/me/lab/commit/${sha}`);
    // An ssh remote of one's own server: its web pages (if any) are unknown.
    assert.equal(commitUrl("ssh://git@192.0.2.10:2222/srv/lab.git", sha), undefined);
    assert.equal(commitUrl("git@forge.home:me/lab.git", sha), undefined);
    assert.equal(commitUrl("git@github.com:me/lab.git", "not-a-sha"), undefined);
  });
});

describe("homelab:notify", () => {
  it("takes a JSON list of kinds and URLs, with an HMAC key for webhooks", () => {
    assert.deepEqual(parseNotifyTargets(""), []);
    assert.deepEqual(parseNotifyTargets('[{"kind":"slack","url":"https://hooks.slack.com/services/T/B/x"},{"kind":"webhook","url":"http://127.0.0.1:9/h","hmacKey":"0123456789abcdef"}]'), [
      { kind: "slack", url: "https://hooks.slack.com/services/T/B/x" },
      { kind: "webhook", url: "http://127.0.0.1:9/h", hmacKey: "0123456789abcdef" },
    ]);
  });

  it("refuses a bad entry by its index and field, never printing its URL or key", () => {
    const secretUrl = "https://hooks.slack.com/services/T000/B000/SECRETTOKEN";
    for (const [text, message] of [
      ["{", /is not JSON/],
      ['{"kind":"slack"}', /is not a JSON list/],
      ['["x"]', /entry 0 is not an object/],
      [`[{"kind":"teams","url":"${secretUrl}"}]`, /entry 0: kind "teams" is not one of webhook, ntfy, discord, slack/],
      ['[{"kind":"slack"}]', /entry 0 \(slack\): url is missing/],
      ['[{"kind":"slack","url":"hooks.slack.com/x"}]', /entry 0 \(slack\): url is not a URL/],
      ['[{"kind":"slack","url":"ftp://h/x"}]', /url is not http\(s\) but ftp:/],
      [`[{"kind":"slack","url":"${secretUrl}","hmacKey":"0123456789abcdefSECRET"}]`, /hmacKey is for webhooks only/],
      ['[{"kind":"webhook","url":"https://h/","hmacKey":"short"}]', /hmacKey must be a string of 16 characters or more/],
      [`[{"kind":"slack","url":"${secretUrl}","token":"x"}]`, /unknown field "token"/],
    ] as const) {
      assert.throws(
        () => parseNotifyTargets(text),
        (e: Error) => message.test(e.message) && !e.message.includes("SECRET"),
        text,
      );
    }
  });

  it("is a secret in the stack's config, checked before anything changes", () => {
    assert.equal(CONFIG_KEYS.notify.kind, "secret");
    const base = { "homelab:deployHomelab": "false", "homelab:deployVps": "false" };
    const problems = (value: string, secret: boolean): string => {
      try {
        parseConfig({ ...base, "homelab:notify": value }, (k) => secret && k === "homelab:notify");
        return "";
      } catch (e) {
        return e instanceof ConfigError ? e.message : String(e);
      }
    };
    assert.match(problems('[{"kind":"slack","url":"https://hooks.slack.com/services/T/B/SECRETTOKEN"}]', false), /homelab:notify: must be set with --secret/);
    const bad = problems('[{"kind":"teams","url":"https://hooks.slack.com/services/T/B/SECRETTOKEN"}]', true);
    assert.match(bad, /homelab:notify: the secret value entry 0: kind "teams" is not one of/);
    assert.doesNotMatch(bad, /SECRETTOKEN/);
  });

  it("names a target by kind and host only", () => {
    assert.equal(targetName({ kind: "discord", url: "https://discord.com/api/webhooks/1/SECRET" }), "discord discord.com");
  });
});

describe("notifications: sending", () => {
  interface Received {
    readonly path: string;
    readonly headers: http.IncomingHttpHeaders;
    readonly body: string;
  }
  const received: Received[] = [];
  let answers: number[] = [];
  let server: http.Server;
  let base = "";

  before(async () => {
    server = http.createServer((req, res) => {
      let body = "";
      req.on("data", (d: Buffer) => (body += d.toString()));
      req.on("end", () => {
        received.push({ path: req.url ?? "", headers: req.headers, body });
        if (req.url === "/hang") {
          return; // never answers
        }
        res.statusCode = answers.shift() ?? 200;
        res.end("ok");
      });
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => {
    server.closeAllConnections();
    server.close();
  });

  const noWait = (): Promise<void> => Promise.resolve();

  it("posts to each target; a webhook's receiver can check the signature over the bytes it got", async () => {
    received.length = 0;
    const lines: string[] = [];
    const out = await sendNotifications(
      [
        { kind: "webhook", url: `${base}/hook`, hmacKey: KEY },
        { kind: "ntfy", url: `${base}/topic` },
      ],
      ROLLED_BACK,
      { secrets: [], say: (l) => lines.push(l), sleep: noWait },
    );
    assert.deepEqual(out.map((d) => [d.ok, d.attempts]), [[true, 1], [true, 1]]);
    assert.deepEqual(lines, []);
    const hook = received.find((r) => r.path === "/hook")!;
    assert.equal(hook.headers["x-signature"], `sha256=${crypto.createHmac("sha256", KEY).update(hook.body).digest("hex")}`);
    assert.equal((JSON.parse(hook.body) as NotifyEvent).stack, "production");
    assert.equal(received.find((r) => r.path === "/topic")?.headers.title, "production: ROLLED BACK");
  });

  it("tries a busy receiver again, and gives up on one that refuses the request, saying so once without its URL", async () => {
    received.length = 0;
    answers = [503, 502, 200];
    const lines: string[] = [];
    const [busy] = await sendNotifications([{ kind: "slack", url: `${base}/services/T/B/SECRET` }], ROLLED_BACK, { secrets: [], say: (l) => lines.push(l), sleep: noWait });
    assert.deepEqual([busy.ok, busy.attempts, received.length], [true, 3, 3]);
    received.length = 0;
    answers = [404];
    const [gone] = await sendNotifications([{ kind: "slack", url: `${base}/services/T/B/SECRET` }], ROLLED_BACK, { secrets: [], say: (l) => lines.push(l), sleep: noWait });
    assert.deepEqual([gone.ok, received.length], [false, 1]);
    assert.equal(lines.length, 1);
    assert.match(lines[0], /^notification to slack 127\.0\.0\.1:\d+ not delivered \(HTTP 404\); the deploy's outcome stands$/);
    answers = [];
  });

  it("records the last notice in the stack's tag: the event, when, and who heard it by kind and host, never a URL", async () => {
    const tags: [string, string, string][] = [];
    const lines: string[] = [];
    // A port just freed: the ntfy receiver is not there.
    const closed = http.createServer();
    await new Promise<void>((r) => closed.listen(0, "127.0.0.1", r));
    const gone = `127.0.0.1:${(closed.address() as AddressInfo).port}`;
    await new Promise<void>((r) => closed.close(() => r()));
    const cfg = { "homelab:notify": { value: JSON.stringify([{ kind: "webhook", url: `${base}/hook?token=abc` }, { kind: "ntfy", url: `http://${gone}/ntfy/topic` }]), secret: true } };
    await notify(cfg, "production", [{ event: "promoted", pair: { frontend: "f1", backend: "b1" } }, { event: "frozen", reason: "demo" }], {
      secrets: [],
      say: (l) => lines.push(l),
      attempts: 1,
      tags: { setTag: (stack, key, value) => Promise.resolve(void tags.push([stack, key, value])) },
    });
    assert.equal(tags.length, 1, "one record: the last notice");
    const [stack, key, value] = tags[0];
    assert.deepEqual([stack, key], ["production", LAST_NOTIFICATION_TAG]);
    assert.doesNotMatch(value, /token|\/hook|\/ntfy/);
    const rec = parseNotificationTag(value)!;
    assert.equal(rec.event, "frozen");
    assert.ok(!Number.isNaN(Date.parse(rec.at)));
    const host = new URL(base).host;
    assert.deepEqual([rec.delivered, rec.failed], [[`webhook ${host}`], [`ntfy ${gone}`]]);
    assert.equal(describeNotification(rec), `frozen at ${rec.at}: delivered to webhook ${host}; NOT delivered to ntfy ${gone}`);
  });

  it("says a tag it cannot write, and goes on", async () => {
    const lines: string[] = [];
    const cfg = { "homelab:notify": { value: JSON.stringify([{ kind: "webhook", url: `${base}/ok` }]), secret: true } };
    await notify(cfg, "production", [{ event: "unfrozen" }], { secrets: [], say: (l) => lines.push(l), attempts: 1, tags: { setTag: () => Promise.reject(new Error("stack tags are not supported\nmore")) } });
    assert.deepEqual(lines, ["the last notification was sent but not recorded in the stack's tags: stack tags are not supported"]);
  });

  it("bounds a receiver that never answers, and one that is not there, in time and attempts; never throws", async () => {
    const lines: string[] = [];
    // A port just freed: nothing listens on it.
    const closed = http.createServer();
    await new Promise<void>((r) => closed.listen(0, "127.0.0.1", r));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((r) => closed.close(() => r()));
    const started = Date.now();
    const out = await sendNotifications(
      [
        { kind: "webhook", url: `${base}/hang` },
        { kind: "webhook", url: `http://127.0.0.1:${port}/nothing-listens` },
      ],
      ROLLED_BACK,
      { secrets: [], say: (l) => lines.push(l), timeoutMs: 300, attempts: 2, sleep: noWait },
    );
    assert.deepEqual(out.map((d) => [d.ok, d.attempts]), [[false, 2], [false, 2]]);
    assert.ok(Date.now() - started < 5000);
    assert.equal(lines.length, 2);
    assert.ok(lines.some((l) => /no answer within 0\.3 s/.test(l)));
    assert.ok(lines.some((l) => /ECONNREFUSED/.test(l)));
    assert.ok(lines.every((l) => !l.includes("/hang") && !l.includes("nothing-listens")));
  });
});

describe("the last notification's record", () => {
  it("fits a stack tag's 256 characters, dropping receivers and counting them", () => {
    const many = Array.from({ length: 20 }, (_, i) => `webhook receiver-${i}.example.org:8443`);
    const text = notificationTag({ event: "rolled-back", at: "2026-12-07T10:00:00.000Z", delivered: many, failed: many });
    assert.ok(text.length <= 256, String(text.length));
    const back = JSON.parse(text) as { more: number; delivered: string[]; failed: string[] };
    assert.equal(back.more + back.delivered.length + back.failed.length, 40);
    assert.equal(parseNotificationTag(text)?.event, "rolled-back");
  });

  it("reads nothing from a value that is not one", () => {
    for (const v of [undefined, "", "x", "{}", '{"event":"nope","at":"t","delivered":[],"failed":[]}', '{"event":"promoted","at":"t","delivered":[1],"failed":[]}']) {
      assert.equal(parseNotificationTag(v), undefined, String(v));
    }
    assert.equal(describeNotification(undefined), "none recorded");
  });
});
