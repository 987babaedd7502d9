import * as pulumi from "@pulumi/pulumi";
import { renderHostCheckScript } from "../lib/remote-deploy";
import { RemoteScript } from "../providers/remote-script";
import { SshTarget, connectionArgs, warnTrustOnFirstUse } from "./ssh-target";

/** Name of the check script a HostCheck named `host` runs. */
export function hostCheckName(host: string): string {
  return `${host}-check`;
}

export interface HostCheckArgs {
  readonly connection: SshTarget;
  /** Directory that must be writable for the deploy. */
  readonly deployDir: string;
  /** The check runs again whenever this changes; pass the release so every release is checked. */
  readonly trigger: pulumi.Input<string>;
  /** Install Docker and compose v2 where missing (needs root or passwordless sudo). @default false */
  readonly installDocker?: boolean;
}

/**
 * Checks, before anything changes, that a Docker host answers over SSH with the pinned host key,
 * has Docker with compose v2 (installing them only where enabled) and a writable deploy
 * directory. Later stages depend on it, so an unreachable host or a wrong key stops the release
 * before anything moves.
 */
export class HostCheck extends pulumi.ComponentResource {
  /** The check's report, e.g. `host-check: ok: 2.40.3 on vm`. */
  public readonly report: pulumi.Output<string>;

  constructor(name: string, args: HostCheckArgs, opts?: pulumi.ComponentResourceOptions) {
    super("homelab:host:HostCheck", name, {}, opts);
    const check = new RemoteScript(
      hostCheckName(name),
      {
        connection: connectionArgs(args.connection),
        create: renderHostCheckScript({ deployDir: args.deployDir, installDocker: args.installDocker ?? false }),
        triggers: [args.trigger],
      },
      { parent: this },
    );
    warnTrustOnFirstUse(args.connection, check.pinnedHostKey, this);
    this.report = check.stdout;
    this.registerOutputs({ report: this.report });
  }
}
