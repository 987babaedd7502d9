import { LAST_NOTIFICATION_TAG, NotifyEvent, NotifyTarget, commitUrl, notificationTag, parseNotifyTargets, renderNotification, targetName } from "../lib/notify";
import { StackConfig, setting } from "./release-state";
import { redact } from "./rollback-commit";

/** What a deploy tells its receivers once it has its outcome: the event less its stack and time. */
export type Notice = Omit<NotifyEvent, "stack" | "at">;

export interface SendOptions {
  /** Each attempt's limit. @default 3000 */
  readonly timeoutMs?: number;
  /** Attempts per target. @default 3 */
  readonly attempts?: number;
  /** Values never to print (the stack's secrets). */
  readonly secrets: readonly string[];
  readonly say: (line: string) => void;
  readonly fetch?: typeof fetch;
  readonly sleep?: (ms: number) => Promise<void>;
}

export interface Delivery {
  readonly target: string;
  readonly ok: boolean;
  readonly attempts: number;
}

/**
 * Sends an event to every target at once, each bounded in time and tried a few times. Never
 * throws: a receiver that cannot be reached is said once and changes nothing of the outcome.
 */
export async function sendNotifications(targets: readonly NotifyTarget[], event: NotifyEvent, o: SendOptions): Promise<Delivery[]> {
  const attempts = o.attempts ?? 3;
  const timeoutMs = o.timeoutMs ?? 3000;
  const doFetch = o.fetch ?? fetch;
  const sleep = o.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  // The URLs are secrets too (their paths and queries carry tokens).
  const hide = [...o.secrets, ...targets.map((t) => t.url), ...targets.flatMap((t) => (t.hmacKey ? [t.hmacKey] : []))];
  return Promise.all(
    targets.map(async (target): Promise<Delivery> => {
      const req = renderNotification(target, event);
      let last = "";
      for (let i = 1; i <= attempts; i++) {
        try {
          const res = await doFetch(req.url, { method: "POST", headers: req.headers, body: req.body, redirect: "manual", signal: AbortSignal.timeout(timeoutMs) });
          await res.arrayBuffer().catch(() => undefined);
          if (res.ok) {
            return { target: targetName(target), ok: true, attempts: i };
          }
          last = `HTTP ${res.status}`;
          // A refusal of the request itself does not change on a retry; a busy receiver may.
          if (res.status >= 400 && res.status < 500 && res.status !== 408 && res.status !== 429) {
            break;
          }
        } catch (e) {
          const err = e as Error;
          last = err.name === "TimeoutError" ? `no answer within ${timeoutMs / 1000} s` : ((err.cause as Error | undefined)?.message ?? err.message);
        }
        if (i < attempts) {
          await sleep(500 * i);
        }
      }
      o.say(`notification to ${targetName(target)} not delivered (${redact(last, hide)}); the deploy's outcome stands`);
      return { target: targetName(target), ok: false, attempts };
    }),
  );
}

/** The stack's receivers (homelab:notify), or none when it lists none or cannot be read. */
export function notifyTargets(cfg: StackConfig, say: (line: string) => void): NotifyTarget[] {
  try {
    return parseNotifyTargets(setting(cfg, "notify"));
  } catch (e) {
    // The config check refuses this before a deploy starts; anything else only loses the notice.
    say(`homelab:notify: ${(e as Error).message}; nothing sent`);
    return [];
  }
}

/** Where the last notification is recorded: the stack's tags, which `status --quick` reads. */
export interface TagStore {
  setTag(stackName: string, key: string, value: string): Promise<void>;
}

/**
 * Tells the stack's receivers about each notice, with the commit's web link where the git host has
 * one, and records the last in the stack's tag LAST_NOTIFICATION_TAG (a tag that cannot be
 * written is said, and changes nothing of the outcome).
 */
export async function notify(
  cfg: StackConfig,
  stack: string,
  notices: readonly Notice[],
  o: Omit<SendOptions, "secrets"> & { secrets: readonly string[]; tags?: TagStore },
): Promise<void> {
  const targets = notices.length > 0 ? notifyTargets(cfg, o.say) : [];
  if (targets.length === 0) {
    return;
  }
  const gitUrl = setting(cfg, "gitUrl");
  let last: { event: NotifyEvent; deliveries: Delivery[] } | undefined;
  for (const n of notices) {
    const url = n.commit ? commitUrl(gitUrl, n.commit.sha) : undefined;
    const commit = n.commit ? { sha: n.commit.sha, ...(url ? { url } : {}) } : undefined;
    const event: NotifyEvent = { ...n, ...(commit ? { commit } : {}), ...(n.reason ? { reason: redact(n.reason, o.secrets) } : {}), stack, at: new Date().toISOString() };
    last = { event, deliveries: await sendNotifications(targets, event, o) };
  }
  if (last && o.tags) {
    const record = { event: last.event.event, at: last.event.at, delivered: last.deliveries.filter((d) => d.ok).map((d) => d.target), failed: last.deliveries.filter((d) => !d.ok).map((d) => d.target) };
    await o.tags.setTag(stack, LAST_NOTIFICATION_TAG, notificationTag(record)).catch((e: unknown) => o.say(`the last notification was sent but not recorded in the stack's tags: ${redact((e as Error).message.split("\n")[0], o.secrets)}`));
  }
}
