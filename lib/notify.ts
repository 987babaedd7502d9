import * as crypto from "crypto";

/*
 * Notifications of what a deploy did, rendered for each kind of receiver. Pure: the deploy sends
 * what these return (deploy/notify.ts). Every target's URL is a secret (Slack's and Discord's
 * carry their token), so no message here ever names one.
 */

export const NOTIFY_KINDS = ["webhook", "ntfy", "discord", "slack"] as const;
export type NotifyKind = (typeof NOTIFY_KINDS)[number];

/** One receiver, as homelab:notify lists them. */
export interface NotifyTarget {
  readonly kind: NotifyKind;
  readonly url: string;
  /** webhook: signs each body with HMAC-SHA256 under this key, in `X-Signature: sha256=<hex>` (as Flux's generic-hmac provider). */
  readonly hmacKey?: string;
}

export const NOTIFY_EVENTS = ["promoted", "repaired", "rolled-back", "rollback-failed", "platform-failure", "frozen", "unfrozen"] as const;
export type NotifyEventKind = (typeof NOTIFY_EVENTS)[number];

/** What happened, as every receiver is told it. */
export interface NotifyEvent {
  readonly event: NotifyEventKind;
  readonly stack: string;
  /** When it happened (ISO 8601). */
  readonly at: string;
  /** The pair running now (promoted, repaired, rolled back), or the one the event is about. */
  readonly pair?: { readonly frontend: string; readonly backend: string };
  /** The pair that failed (rolled back, rollback failed) or was interrupted (platform failure). */
  readonly failed?: { readonly frontend: string; readonly backend: string };
  /** The stage that failed. */
  readonly stage?: string;
  /** Why, in a few lines. */
  readonly reason?: string;
  /** The commit that records it (a rollback, a freeze), with a web link where the git host has one. */
  readonly commit?: { readonly sha: string; readonly url?: string };
}

/** An HTTP request to send. */
export interface NotifyRequest {
  readonly url: string;
  readonly headers: Record<string, string>;
  readonly body: string;
}

/** Where a body can go; longer reasons are cut. */
const MAX_REASON = 1500;

const TITLES: Readonly<Record<NotifyEventKind, string>> = {
  promoted: "promoted",
  repaired: "repaired",
  "rolled-back": "ROLLED BACK",
  "rollback-failed": "ROLLBACK FAILED",
  "platform-failure": "PLATFORM FAILURE",
  frozen: "releases frozen",
  unfrozen: "releases unfrozen",
};

const pairText = (p: { frontend: string; backend: string }): string => `frontend ${p.frontend}, backend ${p.backend}`;

/** The event in one title line and a few body lines, for the kinds that take text. */
export function notifyText(e: NotifyEvent): { title: string; lines: string[] } {
  const title = `${e.stack}: ${TITLES[e.event]}${e.pair && (e.event === "promoted" || e.event === "repaired") ? ` ${pairText(e.pair)}` : ""}`;
  const lines: string[] = [];
  if (e.failed) {
    lines.push(`failed: ${pairText(e.failed)}${e.stage ? ` (${e.stage})` : ""}`);
  }
  if (e.pair && e.event !== "promoted" && e.event !== "repaired") {
    lines.push(`running: ${pairText(e.pair)}`);
  }
  if (e.reason) {
    lines.push(e.reason.length > MAX_REASON ? `${e.reason.slice(0, MAX_REASON)}…` : e.reason);
  }
  if (e.commit) {
    lines.push(`commit ${e.commit.sha.slice(0, 12)}${e.commit.url ? `: ${e.commit.url}` : ""}`);
  }
  return { title, lines };
}

/** The HMAC-SHA256 signature of a body, as `sha256=<hex>`. */
export function signature(body: string, key: string): string {
  return `sha256=${crypto.createHmac("sha256", key).update(body).digest("hex")}`;
}

/** The request that tells a target about an event. */
export function renderNotification(target: NotifyTarget, e: NotifyEvent): NotifyRequest {
  const { title, lines } = notifyText(e);
  const json = (value: unknown): NotifyRequest => {
    const body = JSON.stringify(value);
    const headers: Record<string, string> = { "content-type": "application/json" };
    if (target.kind === "webhook" && target.hmacKey) {
      headers["x-signature"] = signature(body, target.hmacKey);
    }
    return { url: target.url, headers, body };
  };
  switch (target.kind) {
    case "webhook":
      return json({ ...e, reason: e.reason?.slice(0, MAX_REASON), title });
    case "discord":
      // A message's content holds at most 2000 characters.
      return json({ content: [`**${title}**`, ...lines].join("\n").slice(0, 2000) });
    case "slack":
      return json({ text: [`*${title}*`, ...lines].join("\n") });
    case "ntfy": {
      const bad = e.event === "rolled-back" || e.event === "rollback-failed" || e.event === "platform-failure";
      const headers: Record<string, string> = {
        // Header values are ASCII: the title travels without what HTTP cannot carry.
        title: title.replace(/[^\x20-\x7e]/g, "?"),
        priority: e.event === "rollback-failed" ? "urgent" : bad ? "high" : "default",
        tags: bad ? "warning" : "white_check_mark",
        "content-type": "text/plain; charset=utf-8",
      };
      if (e.commit?.url) {
        headers.click = e.commit.url;
      }
      return { url: target.url, headers, body: lines.join("\n") || title };
    }
  }
}

/** Where people read a commit, for git hosts with known web URLs (and any https remote); else undefined. */
export function commitUrl(gitUrl: string, sha: string): string | undefined {
  let host: string;
  let repoPath: string;
  const scp = /^(?:[^@/]+@)?([^:/]+):(?!\/)(.+)$/.exec(gitUrl);
  if (/^(https?|ssh):\/\//.test(gitUrl)) {
    let u: URL;
    try {
      u = new URL(gitUrl);
    } catch {
      return undefined;
    }
    host = u.hostname;
    repoPath = u.pathname.replace(/^\/+/, "");
    // An ssh remote's web pages are known only for the big hosts; an https remote's are its own URL.
    if (u.protocol === "ssh:" && !KNOWN_HOSTS.includes(host)) {
      return undefined;
    }
    if (u.protocol !== "ssh:") {
      host = u.host;
    }
  } else if (scp) {
    host = scp[1];
    repoPath = scp[2];
    if (!KNOWN_HOSTS.includes(host)) {
      return undefined;
    }
  } else {
    return undefined;
  }
  repoPath = repoPath.replace(/\.git$/, "").replace(/\/+$/, "");
  if (!/^[0-9a-f]{7,64}$/.test(sha) || !repoPath) {
    return undefined;
  }
  if (host === "bitbucket.org") {
    return `https://${host}/${repoPath}/commits/${sha}`;
  }
  return `https://${host}/${repoPath}${host === "gitlab.com" ? "/-" : ""}/commit/${sha}`;
}

const KNOWN_HOSTS = ["github.com", "gitlab.com", "codeberg.org", "bitbucket.org"];

/** Parses homelab:notify (a JSON list of targets); throws naming the entry and field, never a URL or key. */
export function parseNotifyTargets(text: string): NotifyTarget[] {
  if (!text.trim()) {
    return [];
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch {
    throw new Error('is not JSON: a list like [{"kind": "slack", "url": "https://hooks.slack.com/services/…"}]');
  }
  if (!Array.isArray(data)) {
    throw new Error('is not a JSON list: write [{"kind": …, "url": …}, …]');
  }
  return data.map((entry: unknown, i) => {
    const where = `entry ${i}`;
    if (typeof entry !== "object" || entry === null || Array.isArray(entry)) {
      throw new Error(`${where} is not an object with kind and url`);
    }
    const { kind, url, hmacKey, ...rest } = entry as Record<string, unknown>;
    const extra = Object.keys(rest);
    if (extra.length > 0) {
      throw new Error(`${where}: unknown field ${JSON.stringify(extra[0])} (the fields are kind, url and, for a webhook, hmacKey)`);
    }
    if (typeof kind !== "string" || !(NOTIFY_KINDS as readonly string[]).includes(kind)) {
      throw new Error(`${where}: kind ${JSON.stringify(kind)} is not one of ${NOTIFY_KINDS.join(", ")}`);
    }
    if (typeof url !== "string") {
      throw new Error(`${where} (${kind}): url is missing`);
    }
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw new Error(`${where} (${kind}): url is not a URL`);
    }
    if (parsed.protocol !== "https:" && parsed.protocol !== "http:") {
      throw new Error(`${where} (${kind}): url is not http(s) but ${parsed.protocol}`);
    }
    if (hmacKey !== undefined && (kind !== "webhook" || typeof hmacKey !== "string" || hmacKey.length < 16)) {
      throw new Error(`${where} (${kind}): hmacKey ${kind !== "webhook" ? "is for webhooks only" : "must be a string of 16 characters or more"}`);
    }
    return { kind: kind as NotifyKind, url, ...(typeof hmacKey === "string" ? { hmacKey } : {}) };
  });
}

/** A target named for people and logs: its kind and host, never its URL's path or query (they carry tokens). */
export function targetName(t: NotifyTarget): string {
  try {
    return `${t.kind} ${new URL(t.url).host}`;
  } catch {
    return t.kind;
  }
}

/** The stack tag holding the last notification the deploys sent: what and when, and who heard it. */
export const LAST_NOTIFICATION_TAG = "homelab:last-notification";

/** Stack tag values are short (Pulumi Cloud keeps 256 characters). */
const TAG_LIMIT = 256;

/** The last notification sent, as its stack tag records it. Receivers by kind and host (targetName), never by URL. */
export interface NotificationRecord {
  readonly event: NotifyEventKind;
  readonly at: string;
  readonly delivered: string[];
  readonly failed: string[];
}

/** The record as a tag value, receivers dropped from the end (and counted) until it fits. */
export function notificationTag(r: NotificationRecord): string {
  const delivered = [...r.delivered];
  const failed = [...r.failed];
  let dropped = 0;
  const text = (): string => JSON.stringify({ event: r.event, at: r.at, delivered, failed, ...(dropped ? { more: dropped } : {}) });
  while (text().length > TAG_LIMIT && delivered.length + failed.length > 0) {
    (failed.length > 0 ? failed : delivered).pop();
    dropped++;
  }
  return text();
}

/** The record a tag value holds; undefined for anything else. */
export function parseNotificationTag(text: string | undefined): NotificationRecord | undefined {
  try {
    const v = JSON.parse(text ?? "") as Partial<NotificationRecord>;
    const names = (x: unknown): x is string[] => Array.isArray(x) && x.every((n) => typeof n === "string");
    if (NOTIFY_EVENTS.includes(v.event as NotifyEventKind) && typeof v.at === "string" && names(v.delivered) && names(v.failed)) {
      return { event: v.event!, at: v.at, delivered: v.delivered, failed: v.failed };
    }
  } catch {
    // not a record
  }
  return undefined;
}
