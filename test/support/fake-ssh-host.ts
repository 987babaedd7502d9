import * as net from "net";
import { Server, utils } from "ssh2";

/** One command the host was asked to run, with what it read on stdin. */
export interface FakeRun {
  readonly command: string;
  readonly stdin: string;
}

export interface FakeSshHost {
  readonly port: number;
  /** `ssh-ed25519 AAAA…`, to pin. */
  readonly hostKey: string;
  /** A private key the host accepts (it accepts any). */
  readonly clientKey: string;
  /** Every command run so far, oldest first. */
  readonly runs: FakeRun[];
  close(): Promise<void>;
}

/**
 * An ed25519 key pair that ssh2 itself can read back: about 1 in 256 of those it generates has its
 * public key cut short (mscdex/ssh2#1513), which fails a server's start or a login at random.
 */
export function sshKeyPair(): { private: string; public: string } {
  for (;;) {
    const pair = utils.generateKeyPairSync("ed25519");
    if (!(utils.parseKey(pair.private) instanceof Error) && !(utils.parseKey(pair.public) instanceof Error)) {
      return pair;
    }
  }
}

/**
 * An SSH server on loopback that runs nothing: every command reads its stdin to the end, prints
 * `reply(command)` and exits 0. For state the engine must record as deployed, where what a real
 * host would do is not under test.
 */
export async function startFakeSshHost(reply: (command: string) => string = () => "deploy: healthy after 0s\n"): Promise<FakeSshHost> {
  const host = sshKeyPair();
  const client = sshKeyPair();
  const runs: FakeRun[] = [];
  const conns = new Set<{ end(): unknown }>();
  const server = new Server({ hostKeys: [host.private] }, (conn) => {
    conns.add(conn);
    conn.on("close", () => conns.delete(conn));
    conn.on("authentication", (ctx) => (ctx.method === "publickey" ? ctx.accept() : ctx.reject(["publickey"])));
    conn.on("ready", () => {
      conn.on("session", (accept) => {
        accept().once("exec", (acceptExec, _reject, info) => {
          const stream = acceptExec();
          let stdin = "";
          stream.on("data", (d: Buffer) => (stdin += d.toString()));
          stream.on("end", () => {
            runs.push({ command: info.command, stdin });
            stream.write(reply(info.command));
            stream.exit(0);
            stream.end();
          });
        });
      });
    });
    conn.on("error", () => undefined);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    port: (server.address() as net.AddressInfo).port,
    hostKey: host.public.trim(),
    clientKey: client.private,
    runs,
    close: () =>
      new Promise<void>((r) => {
        conns.forEach((c) => c.end());
        server.close(() => r());
      }),
  };
}
