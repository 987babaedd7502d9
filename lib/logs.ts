import { hostScript } from "./host-script";
import { shq } from "./shell";

/*
 * `homelab logs`: what each part printed. The frontend's pods are read from the Kubernetes API;
 * the hosts' compose projects over the same pinned SSH the deploy uses, by a script the program
 * renders with the project's directory and name, given the caller's choices as parameters.
 */

export const LOG_PARTS = ["frontend", "backend", "vps"] as const;
export type LogPart = (typeof LOG_PARTS)[number];

/** What to show: the last `tail` lines, none older than `sinceSeconds`, and whether to follow. */
export interface LogWindow {
  readonly tail: number;
  readonly sinceSeconds?: number;
  readonly follow: boolean;
}

const UNITS: Readonly<Record<string, number>> = { s: 1, m: 60, h: 3600, d: 86400 };

/** `--since` as seconds: a number and a unit (`30s`, `10m`, `2h`, `1d`), at most 30 days. */
export function parseSince(v: string): number {
  const m = /^(\d{1,7})([smhd])$/.exec(v);
  const seconds = m ? Number(m[1]) * UNITS[m[2]] : NaN;
  if (!m || seconds < 1 || seconds > 30 * 86400) {
    throw new Error(`--since: ${JSON.stringify(v)} is not a duration like 30s, 10m, 2h or 1d (at most 30d)`);
  }
  return seconds;
}

/** `--tail` as a number of lines, 0 to 100000. */
export function parseTail(v: string): number {
  const n = Number(v);
  if (!/^\d{1,6}$/.test(v) || n > 100_000) {
    throw new Error(`--tail: ${JSON.stringify(v)} is not a number of lines from 0 to 100000`);
  }
  return n;
}

/**
 * The script that prints a compose project's logs on its host (remote/logs.sh): `docker compose
 * logs` of the project the deploy wrote. Its window ($1 tail, $2 since in seconds or empty, $3
 * `follow` or empty) comes from `logsInvocation`.
 */
export function renderLogsScript(o: { deployDir: string; project: string }): string {
  return hostScript(["logs.sh"], { DIR: o.deployDir, PROJECT: o.project });
}

/** The logs script run with the window's values, each quoted as one parameter. */
export function logsInvocation(script: string, w: LogWindow): string {
  return `set -- ${shq(String(w.tail))} ${shq(w.sinceSeconds === undefined ? "" : String(w.sinceSeconds))} ${shq(w.follow ? "1" : "")}\n${script}`;
}

/** The API path of one container's log in a pod. */
export function podLogPath(namespace: string, pod: string, container: string, w: LogWindow): string {
  const q = new URLSearchParams({ container, timestamps: "true", tailLines: String(w.tail) });
  if (w.sinceSeconds !== undefined) {
    q.set("sinceSeconds", String(w.sinceSeconds));
  }
  if (w.follow) {
    q.set("follow", "true");
  }
  return `/api/v1/namespaces/${encodeURIComponent(namespace)}/pods/${encodeURIComponent(pod)}/log?${q.toString()}`;
}

/** The label selector of a Deployment's pods (`spec.selector.matchLabels`), as the API takes it. */
export function labelSelector(matchLabels: Readonly<Record<string, string>>): string {
  return Object.entries(matchLabels)
    .map(([k, v]) => `${k}=${v}`)
    .join(",");
}

/**
 * Splits a stream's text into whole lines, keeping a cut line until the rest of it arrives;
 * `flush` returns what is left at the end.
 */
export function lineSplitter(onLine: (line: string) => void): { push(text: string): void; flush(): void } {
  let partial = "";
  return {
    push(text: string) {
      const lines = (partial + text).split("\n");
      partial = lines.pop() ?? "";
      lines.forEach(onLine);
    },
    flush() {
      if (partial) {
        onLine(partial);
        partial = "";
      }
    },
  };
}
