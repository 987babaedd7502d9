import * as pulumi from "@pulumi/pulumi";
import type * as command from "@pulumi/command";

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
  /** How many failed dials before giving up. @default 3 */
  readonly dialErrorLimit?: number;
}

/** The connection arguments of remote.Command, with the private key always wrapped as a secret. */
export function connectionArgs(target: SshTarget): command.types.input.remote.ConnectionArgs {
  return {
    host: target.host,
    port: target.port ?? 22,
    user: target.user,
    privateKey: pulumi.secret(target.privateKey),
    hostKey: target.hostKey,
    dialErrorLimit: target.dialErrorLimit ?? 3,
    perDialTimeout: 10,
  };
}
