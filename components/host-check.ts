import * as pulumi from "@pulumi/pulumi";
import { renderHostCheckScript } from "../lib/remote-deploy";
import { HostKeyPin } from "../providers/host-key-pin";
import { RemoteScript } from "../providers/remote-script";
import { SshTarget, connectionArgs, warnTrustOnFirstUse } from "./ssh-target";

/** Name of the check script a HostCheck named `host` runs. */
export function hostCheckName(host: string): string {
  return `${host}-check`;
}

/** Name of the host key a HostCheck named `host` pins on first contact when none is configured. */
export function hostKeyPinName(host: string): string {
  return `${host}-host-key`;
}

export interface HostCheckArgs {
  readonly connection: SshTarget;
  /** Directory that must be writable for the deploy. */
  readonly deployDir: string;
  /** The check runs again whenever this changes; pass the release so every release is checked. */
  readonly trigger: pulumi.Input<string>;
  /** Install Docker and compose v2 where missing (needs root or passwordless sudo). @default false */
  readonly installDocker?: boolean;
  /** SHA-256 the Docker install script must have before it runs. @default unpinned */
  readonly dockerInstallSha256?: string;
  /**
   * The registry the host pulls from. When it is `insecure` (plain HTTP), the check fails unless
   * the host's Docker engine accepts `host` (host[:port]) as an insecure registry, by that exact
   * name or, for an IPv4 host, by one of its insecure CIDRs (127.0.0.0/8 by default), and names
   * the `/etc/docker/daemon.json` setting to add. With `caCert` (an https registry with its own
   * CA), the check fails unless the engine trusts that CA, naming where to put it.
   * @default no registry checked
   */
  readonly registry?: { readonly host: string; readonly insecure: boolean; readonly caCert?: string };
}

/**
 * Checks, before anything changes, that a Docker host answers over SSH with the pinned host key,
 * has Docker with compose v2 (installing them only where enabled), a writable deploy directory
 * and, for a plain-HTTP registry, an engine that accepts it (for an https one with its own CA, an
 * engine that trusts that CA). Later stages depend on it, so an
 * unreachable host, a wrong key or a pull that could only fail stops the release before anything
 * moves.
 */
export class HostCheck extends pulumi.ComponentResource {
  /** The check's report, e.g. `host-check: ok: 2.40.3 on vm`. */
  public readonly report: pulumi.Output<string>;
  /**
   * How every later stage reaches the host: the configured key, or the one pinned on first
   * contact (one pin per host, kept in the state even when a later stage fails).
   */
  public readonly connection: SshTarget;

  constructor(name: string, args: HostCheckArgs, opts?: pulumi.ComponentResourceOptions) {
    super("homelab:host:HostCheck", name, {}, opts);
    const pin = args.connection.hostKey === undefined ? new HostKeyPin(hostKeyPinName(name), { connection: connectionArgs(args.connection) }, { parent: this }) : undefined;
    this.connection = pin ? { ...args.connection, hostKey: pin.hostKey, pinnedOnFirstContact: true } : args.connection;
    const check = new RemoteScript(
      hostCheckName(name),
      {
        connection: connectionArgs(this.connection),
        create: renderHostCheckScript({
          deployDir: args.deployDir,
          installDocker: args.installDocker ?? false,
          dockerInstallSha256: args.dockerInstallSha256,
          // A registry reached over HTTPS needs nothing of the engine's settings, only its CA.
          insecureRegistry: args.registry?.insecure ? args.registry.host : undefined,
          registryCa: args.registry && !args.registry.insecure && args.registry.caCert !== undefined ? { host: args.registry.host, caCert: args.registry.caCert } : undefined,
        }),
        triggers: [args.trigger],
      },
      { parent: this },
    );
    if (pin) {
      warnTrustOnFirstUse(this.connection, pin.hostKey, this);
    }
    this.report = check.stdout;
    this.registerOutputs({ report: this.report, hostKey: this.connection.hostKey });
  }
}
