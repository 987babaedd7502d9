import { RestartSnapshot, restartsBetween } from "./restarts";
import { VersionMarker, readField, versionAt } from "./version-marker";

/** One URL a health gate checks. */
export interface ProbeTarget {
  readonly url: string;
  /** @default 200 */
  readonly expectStatus?: number;
  /** A JSON field (dot path) in the response body that must equal `equals`. */
  readonly jsonField?: { readonly path: string; readonly equals: string };
  /** The version the response must carry, where the app says it (see `VersionMarker`). */
  readonly version?: { readonly marker: VersionMarker; readonly equals: string };
}

export interface ProbeOptions {
  /** Per-attempt timeout. @default 5000 */
  readonly attemptTimeoutMs?: number;
  /** First wait between attempts; grows by `backoff` up to `maxIntervalMs`. @default 1000 */
  readonly intervalMs?: number;
  /** @default 1.5 */
  readonly backoff?: number;
  /** @default 10000 */
  readonly maxIntervalMs?: number;
  /**
   * For this long after a target's first attempt, probe it every `quickIntervalMs` instead of
   * backing off: a part that has just rolled out usually serves within seconds, and a grown
   * back-off would pass it up to a whole interval late. @default 0 (back off from the start)
   */
  readonly quickWindowMs?: number;
  /** @default 250 */
  readonly quickIntervalMs?: number;
  /** Total deadline for all targets. @default 300000 (5 minutes) */
  readonly deadlineMs?: number;
  /**
   * After every target first passes, each keeps being probed for this long; any failure in the
   * window fails the gate, so a release that answers once and then crashes is not promoted. @default 0
   */
  readonly soakMs?: number;
  /** Wait between the soak's rounds of probes. @default 1000 */
  readonly soakIntervalMs?: number;
}

export interface TargetResult {
  readonly url: string;
  readonly status: number;
  readonly attempts: number;
  readonly elapsedMs: number;
}

export interface ProbeResult {
  readonly healthy: true;
  readonly elapsedMs: number;
  readonly targets: TargetResult[];
  /**
   * How long every target kept passing after the first pass (the soak), in how many rounds, and
   * whether the restarts of what the gate guards were counted (`none`) or why not.
   */
  readonly soak?: { readonly ms: number; readonly rounds: number; readonly restarts?: string };
}

/** What the probe needs from the outside world, so tests can drive time and HTTP. */
export interface ProbeIo {
  fetch(url: string, timeoutMs: number): Promise<{ status: number; body: string; headers?: Record<string, string> }>;
  sleep(ms: number): Promise<void>;
  now(): number;
  log?(message: string): void;
  /**
   * The restarts of what the gate guards (its pods or containers), read when the soak starts and
   * when it ends; rejects when they cannot be read. Without it restarts are not counted.
   */
  restarts?(): Promise<RestartSnapshot>;
  /** What `restarts` reads, for messages. */
  readonly restartsOf?: string;
}

/** Raised when a target that passed fails again inside the soak. */
export class SoakError extends Error {
  constructor(
    readonly url: string,
    readonly outcome: string,
    readonly afterMs: number,
    readonly soakMs: number,
  ) {
    const message = `health gate failed in its soak: ${url} passed, then failed ${(afterMs / 1000).toFixed(1)}s into the ${(soakMs / 1000).toFixed(0)}s soak: ${outcome}`;
    super(message);
    this.message = message;
    this.name = "SoakError";
  }
}

/** Raised when a target does not become healthy before the deadline. */
export class HealthGateError extends Error {
  constructor(
    readonly url: string,
    readonly lastOutcome: string,
    readonly attempts: number,
    readonly elapsedMs: number,
  ) {
    const message = `health gate failed: ${url} did not become healthy after ${attempts} attempt(s) in ${(elapsedMs / 1000).toFixed(1)}s; last result: ${lastOutcome}`;
    super(message);
    // Set again: serialized into a dynamic provider, super() does not set the message.
    this.message = message;
    this.name = "HealthGateError";
  }
}


/** Judges one response; returns undefined when healthy, else why not. */
export function judge(target: ProbeTarget, status: number, body: string, headers?: Readonly<Record<string, string>>): string | undefined {
  const expected = target.expectStatus ?? 200;
  if (status !== expected) {
    return `status ${status} (expected ${expected})`;
  }
  if (target.jsonField) {
    let value: unknown;
    try {
      value = readField(body, target.jsonField.path);
    } catch {
      return `status ${status} but the body is not JSON`;
    }
    if (String(value) !== target.jsonField.equals) {
      return `status ${status} but ${target.jsonField.path} is ${JSON.stringify(value)} (expected ${JSON.stringify(target.jsonField.equals)})`;
    }
  }
  if (target.version) {
    const { marker, equals } = target.version;
    const found = versionAt(marker, { body, headers });
    if (found.value !== equals) {
      return `status ${status} but the version (${marker.kind}:${marker.name}) is ${found.value === undefined ? `unknown: ${found.missing}` : JSON.stringify(found.value)}, not ${JSON.stringify(equals)}`;
    }
  }
  return undefined;
}

/**
 * Probes each target in order until it is healthy, backing off between attempts, and throws
 * HealthGateError naming the URL, the last outcome, the attempts and the time spent when the
 * shared deadline passes.
 */
export async function probeUntilHealthy(targets: readonly ProbeTarget[], opts: ProbeOptions, io: ProbeIo): Promise<ProbeResult> {
  const attemptTimeout = opts.attemptTimeoutMs ?? 5000;
  const deadline = opts.deadlineMs ?? 300_000;
  const maxInterval = opts.maxIntervalMs ?? 10_000;
  const backoff = opts.backoff ?? 1.5;
  const start = io.now();
  const results: TargetResult[] = [];
  for (const target of targets) {
    const targetStart = io.now();
    let interval = opts.intervalMs ?? 1000;
    let attempts = 0;
    for (;;) {
      attempts++;
      const remaining = deadline - (io.now() - start);
      let outcome: string | undefined;
      let status = 0;
      try {
        const res = await io.fetch(target.url, Math.max(1, Math.min(attemptTimeout, remaining)));
        status = res.status;
        outcome = judge(target, res.status, res.body, res.headers);
      } catch (e) {
        outcome = (e as Error).message || String(e);
      }
      if (outcome === undefined) {
        results.push({ url: target.url, status, attempts, elapsedMs: io.now() - targetStart });
        io.log?.(`${target.url} healthy after ${attempts} attempt(s)`);
        break;
      }
      const elapsed = io.now() - start;
      const quick = io.now() - targetStart < (opts.quickWindowMs ?? 0);
      const wait = quick ? Math.min(interval, opts.quickIntervalMs ?? 250) : interval;
      if (elapsed + wait > deadline) {
        throw new HealthGateError(target.url, outcome, attempts, elapsed);
      }
      io.log?.(`${target.url}: ${outcome}; retrying in ${(wait / 1000).toFixed(1)}s`);
      await io.sleep(wait);
      if (!quick) {
        interval = Math.min(maxInterval, interval * backoff);
      }
    }
  }
  const soak = await soakTargets(targets, opts, io);
  return { healthy: true, elapsedMs: io.now() - start, targets: results, ...(soak ? { soak } : {}) };
}

/**
 * Probes every target in rounds for `soakMs`; throws SoakError at the first failure. The version
 * marker was checked by the first pass: in the soak, a pod leaving the rotation (draining after
 * the rollout) may still answer with the previous version, and that is not a failure.
 */
async function soakTargets(targets: readonly ProbeTarget[], opts: ProbeOptions, io: ProbeIo): Promise<ProbeResult["soak"]> {
  const soakMs = opts.soakMs ?? 0;
  if (soakMs <= 0) {
    return undefined;
  }
  const attemptTimeout = opts.attemptTimeoutMs ?? 5000;
  const interval = opts.soakIntervalMs ?? 1000;
  const start = io.now();
  const before = await readRestartsOrWhy(io);
  let rounds = 0;
  while (io.now() - start < soakMs) {
    await io.sleep(Math.min(interval, Math.max(0, soakMs - (io.now() - start))));
    rounds++;
    for (const target of targets) {
      let outcome: string | undefined;
      try {
        const res = await io.fetch(target.url, attemptTimeout);
        outcome = judge({ ...target, version: undefined }, res.status, res.body, res.headers);
      } catch (e) {
        outcome = (e as Error).message || String(e);
      }
      if (outcome !== undefined) {
        throw new SoakError(target.url, outcome, io.now() - start, soakMs);
      }
    }
  }
  const restarts = await countRestarts(before, io, start, soakMs);
  io.log?.(`every target kept passing for the ${(soakMs / 1000).toFixed(0)}s soak (${rounds} round(s))${restarts ? `; restarts: ${restarts}` : ""}`);
  return { ms: io.now() - start, rounds, ...(restarts ? { restarts } : {}) };
}

type Reading = { snapshot: RestartSnapshot } | { why: string };

async function readRestartsOrWhy(io: ProbeIo): Promise<Reading | undefined> {
  if (!io.restarts) {
    return undefined;
  }
  try {
    return { snapshot: await io.restarts() };
  } catch (e) {
    return { why: (e as Error).message };
  }
}

/**
 * Compares the restarts at the soak's end with its start: a rise throws SoakError. Returns `none`,
 * or why they were not counted (never the release's fault: a reading that failed is the platform's).
 */
async function countRestarts(before: Reading | undefined, io: ProbeIo, start: number, soakMs: number): Promise<string | undefined> {
  if (!before) {
    return undefined;
  }
  const after = await readRestartsOrWhy(io);
  if ("why" in before || !after || "why" in after) {
    const why = "why" in before ? before.why : after && "why" in after ? after.why : "no reading";
    io.log?.(`restarts in the soak were not counted: ${why}`);
    return `not counted: ${why}`;
  }
  const restarted = restartsBetween(before.snapshot, after.snapshot);
  if (restarted) {
    throw new SoakError(io.restartsOf ?? "what the gate guards", restarted, io.now() - start, soakMs);
  }
  return "none";
}

/** One attempt at each target, as a refresh reads a gate: the failures, as `URL: problem`. */
export async function probeOnce(targets: readonly ProbeTarget[], timeoutMs: number, io: Pick<ProbeIo, "fetch">): Promise<string[]> {
  const failures: string[] = [];
  for (const target of targets) {
    try {
      const res = await io.fetch(target.url, timeoutMs);
      const problem = judge(target, res.status, res.body, res.headers);
      if (problem) {
        failures.push(`${target.url}: ${problem}`);
      }
    } catch (e) {
      failures.push(`${target.url}: ${(e as Error).message}`);
    }
  }
  return failures;
}

/** The real clock and HTTP client (Node's fetch). */
export function realProbeIo(log?: (message: string) => void): ProbeIo {
  return {
    async fetch(url, timeoutMs) {
      try {
        const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs), redirect: "manual" });
        return { status: res.status, body: await res.text(), headers: Object.fromEntries(res.headers.entries()) };
      } catch (e) {
        // Node's fetch says only "fetch failed"; the cause names the real problem.
        const cause = (e as { cause?: { code?: string; message?: string } }).cause;
        throw new Error(cause?.code ?? cause?.message ?? (e as Error).message, { cause: e });
      }
    },
    sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
    now: () => Date.now(),
    log,
  };
}
