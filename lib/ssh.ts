import { randomBytes } from "crypto";
import { Client, ConnectConfig } from "ssh2";

/** How to reach a host over SSH. */
export interface SshEndpoint {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly privateKey: string;
  /** `type base64` public host key; the connection is refused unless the server presents it. */
  readonly hostKey?: string;
  /**
   * Without `hostKey`: accept the key the server presents and report it (ScriptResult.hostKey),
   * for the caller to pin from then on. Without either, every connection is refused. @default false
   */
  readonly trustOnFirstUse?: boolean;
  /** Connection attempts for unreachable hosts. @default 3 */
  readonly attempts?: number;
  /** Seconds per connection attempt. @default 10 */
  readonly timeoutSeconds?: number;
}

export interface ScriptResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
  /** The host key the server presented, `type base64`. */
  readonly hostKey?: string;
}

/** `type base64` of a host key blob as the SSH protocol carries it (its type name comes first). */
export function hostKeyText(blob: Buffer): string {
  const len = blob.length >= 4 ? blob.readUInt32BE(0) : 0;
  return `${blob.subarray(4, 4 + len).toString("latin1")} ${blob.toString("base64")}`;
}

/** An SSH failure before the script ran: nothing on the host was changed. */
export class SshConnectError extends Error {
  constructor(message: string, readonly kind: "unreachable" | "host-key" | "auth") {
    super(message);
    // Set again: serialized into a dynamic provider, super() does not set the message.
    this.message = message;
    this.name = "SshConnectError";
  }
}

/** The SSH connection dropped while a script ran: the host may have been changed, and no verdict came back. */
export class SshConnectionLost extends Error {
  constructor(where: string) {
    const message = `the SSH connection to ${where} was lost before the script finished (the host may have been changed)`;
    super(message);
    this.message = message;
    this.name = "SshConnectionLost";
  }
}

/** A script ran past its deadline; the client stopped waiting for it. */
export class SshDeadlineExceeded extends Error {
  constructor(where: string, seconds: number, detached: boolean) {
    const message = `the script on ${where} did not finish within ${seconds}s${detached ? " (it goes on on the host, under its own step deadlines; the next deploy there waits for it)" : ""}`;
    super(message);
    this.message = message;
    this.name = "SshDeadlineExceeded";
  }
}

/** Host key algorithms to offer for a pinned key type, so the server presents that key. */
function hostKeyAlgorithms(type: string): string[] {
  return type === "ssh-rsa" ? ["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"] : [type];
}

function connectOnce(ep: SshEndpoint, seen: { hostKey?: string }): Promise<Client> {
  const where = `${ep.user}@${ep.host}:${ep.port}`;
  return new Promise((resolve, reject) => {
    const conn = new Client();
    let hostKeyProblem: string | undefined;
    const config: ConnectConfig = {
      host: ep.host,
      port: ep.port,
      username: ep.user,
      privateKey: ep.privateKey,
      readyTimeout: (ep.timeoutSeconds ?? 10) * 1000,
      keepaliveInterval: 15_000,
    };
    if (!ep.hostKey && !ep.trustOnFirstUse) {
      reject(new SshConnectError(`no host key is pinned for ${ep.host}:${ep.port}: refusing to connect (set it, or leave it unset with trust on first use)`, "host-key"));
      return;
    }
    config.hostVerifier = (key: Buffer): boolean => {
      seen.hostKey = hostKeyText(key);
      return true;
    };
    if (ep.hostKey) {
      const [type, b64] = ep.hostKey.trim().split(/\s+/);
      const pinned = Buffer.from(b64 ?? "", "base64");
      config.algorithms = { serverHostKey: hostKeyAlgorithms(type) as NonNullable<ConnectConfig["algorithms"]>["serverHostKey"] };
      config.hostVerifier = (key: Buffer): boolean => {
        seen.hostKey = hostKeyText(key);
        if (key.equals(pinned)) {
          return true;
        }
        hostKeyProblem = `host key of ${ep.host}:${ep.port} is ${type} ${key.toString("base64")}, not the pinned ${type} ${b64}: refusing to connect`;
        return false;
      };
    }
    conn.once("ready", () => resolve(conn));
    conn.once("error", (e: Error & { level?: string; code?: string }) => {
      conn.end();
      if (hostKeyProblem) {
        reject(new SshConnectError(hostKeyProblem, "host-key"));
      } else if (e.level === "client-authentication") {
        reject(new SshConnectError(`${where} refused the SSH key (${e.message})`, "auth"));
      } else if (/handshake|negotiat/i.test(e.message) && ep.hostKey) {
        reject(new SshConnectError(`${ep.host}:${ep.port} did not offer a ${ep.hostKey.split(" ")[0]} host key: ${e.message}`, "host-key"));
      } else {
        reject(new SshConnectError(`cannot reach ${where}: ${e.code ?? e.message}`, "unreachable"));
      }
    });
    conn.connect(config);
  });
}

/** Connects, retrying only while the host is unreachable (never after a key problem). */
export async function connect(ep: SshEndpoint, seen: { hostKey?: string } = {}): Promise<Client> {
  const attempts = Math.max(1, ep.attempts ?? 3);
  for (let i = 1; ; i++) {
    try {
      return await connectOnce(ep, seen);
    } catch (e) {
      if (!(e instanceof SshConnectError) || e.kind !== "unreachable" || i >= attempts) {
        throw e;
      }
      await new Promise((r) => setTimeout(r, Math.min(5000, 500 * 2 ** i)));
    }
  }
}

/** Limits of one script run. */
export interface RunLimits {
  /** Seconds the script may run before the client closes the connection and fails. @default none */
  readonly deadlineSeconds?: number;
  readonly onLine?: (line: string) => void;
  /** Filled with the host key the server presented, as soon as it did. */
  readonly seen?: { hostKey?: string };
  /** Ends the run from this side (Ctrl-C on a followed log): resolves with code 130. */
  readonly signal?: AbortSignal;
  /**
   * Keeps the script's stdin open until the connection closes, so the script can tell (its stdin
   * ends) that the client went away. @default false
   */
  readonly holdStdin?: boolean;
}

/**
 * Runs `script` through the remote user's shell with `stdin` on its standard input. Secrets go
 * in stdin only: the script text is visible to other users of the host (ps), stdin is not.
 */
export async function runScript(ep: SshEndpoint, script: string, stdin = "", limits: RunLimits = {}): Promise<ScriptResult> {
  const seen = limits.seen ?? {};
  const conn = await connect(ep, seen);
  const where = `${ep.user}@${ep.host}:${ep.port}`;
  let timer: NodeJS.Timeout | undefined;
  try {
    return await new Promise<ScriptResult>((resolve, reject) => {
      if (limits.deadlineSeconds !== undefined) {
        timer = setTimeout(() => reject(new SshDeadlineExceeded(where, limits.deadlineSeconds!, false)), limits.deadlineSeconds * 1000);
      }
      if (limits.signal?.aborted) {
        resolve({ code: 130, stdout: "", stderr: "", hostKey: seen.hostKey });
        return;
      }
      // Closing the connection ends the remote command with it (its session's hangup).
      limits.signal?.addEventListener("abort", () => resolve({ code: 130, stdout: "", stderr: "", hostKey: seen.hostKey }), { once: true });
      // The connection dying while the script runs (keepalives unanswered, a reset) ends the wait too.
      // Deferred, so a script whose exit status arrived with the close still resolves.
      conn.once("close", () => setImmediate(() => reject(new SshConnectionLost(where))));
      conn.exec(script, (err, stream) => {
        if (err) {
          reject(err);
          return;
        }
        let stdout = "";
        let stderr = "";
        let partial = "";
        stream.on("data", (d: Buffer) => {
          stdout += d.toString();
          if (limits.onLine) {
            const lines = (partial + d.toString()).split("\n");
            partial = lines.pop() ?? "";
            lines.forEach(limits.onLine);
          }
        });
        stream.stderr.on("data", (d: Buffer) => {
          stderr += d.toString();
        });
        stream.on("close", (code: number | null | undefined, signal?: string) => {
          // No exit status and no signal: the connection went away, not the script.
          if (code === null || code === undefined) {
            if (signal) {
              resolve({ code: 128, stdout, stderr, hostKey: seen.hostKey });
            } else {
              reject(new SshConnectionLost(where));
            }
            return;
          }
          resolve({ code, stdout, stderr, hostKey: seen.hostKey });
        });
        if (limits.holdStdin) {
          stream.write(stdin);
        } else {
          stream.end(stdin);
        }
      });
    });
  } finally {
    clearTimeout(timer);
    conn.end();
  }
}

/** A script that runs detached on the host and can be followed again from another connection. */
export interface DetachedScript {
  /** Starts the run and follows it; `RUN_ID` is set before it, and stdin ends with `endLine`. */
  readonly start: string;
  /** Follows the run `RUN_ID` from its start to its exit code, from a new connection. */
  readonly follow: string;
  /** Exit code of `follow` when the host has no such run (it never started: send it again). */
  readonly noRunCode: number;
  /** Line appended to stdin, so the host can tell a bundle cut short. */
  readonly endLine: string;
  /** Seconds the client follows the run before it gives up (the run goes on). */
  readonly deadlineSeconds: number;
  /** Connections tried again after one dropped. @default 5 */
  readonly reconnects?: number;
}

/**
 * Runs a detached script: a dropped connection does not stop it on the host; the client connects
 * again (a bounded number of times, backing off) and follows it to its exit code. Returns the
 * output of the connection that saw the end (a follow prints the run's output from its start).
 */
export async function runDetached(ep: SshEndpoint, d: DetachedScript, stdin: string): Promise<ScriptResult> {
  const runId = `${Date.now()}-${randomBytes(4).toString("hex")}`;
  const withId = (script: string): string => `RUN_ID=${runId}; export RUN_ID\n${script}`;
  const end = Date.now() + d.deadlineSeconds * 1000;
  const left = (): number => Math.max(1, Math.ceil((end - Date.now()) / 1000));
  const where = `${ep.user}@${ep.host}:${ep.port}`;
  const reconnects = Math.max(0, d.reconnects ?? 5);
  let lost: Error | undefined;
  const seen: { hostKey?: string } = {};
  try {
    return await runScript(ep, withId(d.start), `${stdin}${d.endLine}\n`, { deadlineSeconds: left(), seen });
  } catch (e) {
    if (!(e instanceof SshConnectionLost)) {
      throw e instanceof SshDeadlineExceeded ? new SshDeadlineExceeded(where, d.deadlineSeconds, true) : e;
    }
    lost = e;
  }
  // Whoever answers again must be the host that took the run.
  const again: SshEndpoint = { ...ep, attempts: 1, hostKey: ep.hostKey ?? seen.hostKey };
  for (let i = 1; i <= reconnects; i++) {
    await new Promise((r) => setTimeout(r, Math.min(10_000, 1000 * 2 ** (i - 1))));
    if (Date.now() >= end) {
      break;
    }
    try {
      const r = await runScript(again, withId(d.follow), "", { deadlineSeconds: left() });
      if (r.code !== d.noRunCode) {
        return r;
      }
      // The host never got the whole run: nothing happened there, so it is sent again.
      return await runScript(again, withId(d.start), `${stdin}${d.endLine}\n`, { deadlineSeconds: left() });
    } catch (e) {
      if (e instanceof SshDeadlineExceeded) {
        throw new SshDeadlineExceeded(where, d.deadlineSeconds, true);
      }
      if (!(e instanceof SshConnectionLost) && !(e instanceof SshConnectError && e.kind === "unreachable")) {
        throw e;
      }
      lost = e;
    }
  }
  throw lost ?? new SshConnectionLost(where);
}
