import * as pulumi from "@pulumi/pulumi";

/** How a dynamic provider reaches its host over SSH (lib/ssh.ts SshEndpoint), as resource inputs. */
export type SshConnectionInput = pulumi.Input<{
  host: pulumi.Input<string>;
  port: pulumi.Input<number>;
  user: pulumi.Input<string>;
  privateKey: pulumi.Input<string>;
  hostKey?: pulumi.Input<string>;
  /** Without hostKey: pin the key the host presents on first contact (kept in state). */
  trustOnFirstUse?: pulumi.Input<boolean>;
  attempts?: pulumi.Input<number>;
}>;
