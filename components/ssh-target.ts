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
  /**
   * The host's public key; every connection is refused unless the server presents it. When
   * unset, the first connection pins the key the host presents (trust on first use, kept in the
   * stack's state) and every later one is refused unless the host presents it again.
   */
  readonly hostKey?: pulumi.Input<string>;
  /**
   * `hostKey` was not configured but pinned on first contact (a HostKeyPin's): it is checked as
   * strictly, and scripts that pinned a key of their own before are refused if it differs.
   */
  readonly pinnedOnFirstContact?: boolean;
  /** What sets `hostKey`, for the warning of trust on first use. @default "its host key" */
  readonly hostKeySetting?: string;
  /** Connection attempts while the host is unreachable. @default 3 */
  readonly attempts?: number;
}

/**
 * Warns, loudly, each run that a host's key was not configured and what was pinned instead, so
 * the operator can compare it with the host's own and set it.
 */
export function warnTrustOnFirstUse(target: SshTarget, pinned: pulumi.Output<string | undefined>, resource: pulumi.Resource): void {
  if (target.hostKey !== undefined && !target.pinnedOnFirstContact) {
    return;
  }
  pulumi.all([target.host, target.port ?? 22, pinned]).apply(([host, port, key]) => {
    if (key) {
      void pulumi.log.warn(
        `TRUST ON FIRST USE: no host key is configured for ${host}:${port}; the key it presented on first contact, ${key}, is pinned in the stack's state and any other is refused. Check it against the host's own (ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub) and set ${target.hostKeySetting ?? "its host key"} to it.`,
        resource,
      );
    }
  });
}

/** The connection of a RemoteScript, with the private key always wrapped as a secret. */
export function connectionArgs(target: SshTarget): RemoteScriptArgs["connection"] {
  return {
    host: target.host,
    port: target.port ?? 22,
    user: target.user,
    privateKey: pulumi.secret(target.privateKey),
    hostKey: target.hostKey,
    ...(target.hostKey === undefined || target.pinnedOnFirstContact ? { trustOnFirstUse: true } : {}),
    attempts: target.attempts ?? 3,
  };
}
