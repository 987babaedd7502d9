import { Client, ConnectConfig } from "ssh2";

/** How to reach a host over SSH. */
export interface SshEndpoint {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly privateKey: string;
  /** `type base64` public host key; the connection is refused unless the server presents it. */
  readonly hostKey?: string;
  /** Connection attempts for unreachable hosts. @default 3 */
  readonly attempts?: number;
  /** Seconds per connection attempt. @default 10 */
  readonly timeoutSeconds?: number;
}

export interface ScriptResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
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

/** Host key algorithms to offer for a pinned key type, so the server presents that key. */
function hostKeyAlgorithms(type: string): string[] {
  return type === "ssh-rsa" ? ["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"] : [type];
}

function connectOnce(ep: SshEndpoint): Promise<Client> {
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
    if (ep.hostKey) {
      const [type, b64] = ep.hostKey.trim().split(/\s+/);
      const pinned = Buffer.from(b64 ?? "", "base64");
      config.algorithms = { serverHostKey: hostKeyAlgorithms(type) as NonNullable<ConnectConfig["algorithms"]>["serverHostKey"] };
      config.hostVerifier = (key: Buffer): boolean => {
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
export async function connect(ep: SshEndpoint): Promise<Client> {
  const attempts = Math.max(1, ep.attempts ?? 3);
  for (let i = 1; ; i++) {
    try {
      return await connectOnce(ep);
    } catch (e) {
      if (!(e instanceof SshConnectError) || e.kind !== "unreachable" || i >= attempts) {
        throw e;
      }
      await new Promise((r) => setTimeout(r, Math.min(5000, 500 * 2 ** i)));
    }
  }
}

/**
 * Runs `script` through the remote user's shell with `stdin` on its standard input. Secrets go
 * in stdin only: the script text is visible to other users of the host (ps), stdin is not.
 */
export async function runScript(ep: SshEndpoint, script: string, stdin = "", onLine?: (line: string) => void): Promise<ScriptResult> {
  const conn = await connect(ep);
  try {
    return await new Promise<ScriptResult>((resolve, reject) => {
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
          if (onLine) {
            const lines = (partial + d.toString()).split("\n");
            partial = lines.pop() ?? "";
            lines.forEach(onLine);
          }
        });
        stream.stderr.on("data", (d: Buffer) => {
          stderr += d.toString();
        });
        stream.on("close", (code: number | null | undefined, signal?: string) => {
          // No exit status and no signal: the connection went away, not the script.
          if (code === null || code === undefined) {
            if (signal) {
              resolve({ code: 128, stdout, stderr });
            } else {
              reject(new SshConnectionLost(`${ep.user}@${ep.host}:${ep.port}`));
            }
            return;
          }
          resolve({ code, stdout, stderr });
        });
        stream.end(stdin);
      });
    });
  } finally {
    conn.end();
  }
}
