import * as pulumi from "@pulumi/pulumi";
import type { RemoteScriptArgs } from "../providers/remote-script";

/** How the program reaches a host over SSH. */
export interface SshTarget {
  readonly host: pulumi.Input<string>;
  /** @default 22 */
  readonly port?: pulumi.Input<number>;
  readonly user: pulumi.Input<string>;
  /** Private key of `user` (a secret). */
  readonly privateKey: pulumi.Input<string>;
  /** The host's public key; every connection is refused unless the server presents it. */
  readonly hostKey?: pulumi.Input<string>;
  /** Connection attempts while the host is unreachable. @default 3 */
  readonly attempts?: number;
}

/** The connection of a RemoteScript, with the private key always wrapped as a secret. */
export function connectionArgs(target: SshTarget): RemoteScriptArgs["connection"] {
  return {
    host: target.host,
    port: target.port ?? 22,
    user: target.user,
    privateKey: pulumi.secret(target.privateKey),
    hostKey: target.hostKey,
    attempts: target.attempts ?? 3,
  };
}
