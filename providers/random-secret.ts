import * as crypto from "crypto";
import * as pulumi from "@pulumi/pulumi";

/** Inputs of a generated secret. */
export interface RandomSecretArgs {
  /** Random bytes; the value is their hex form (twice as many characters). @default 32 */
  readonly bytes?: pulumi.Input<number>;
  /** Bump to rotate: a new value is generated whenever this changes, never otherwise. @default 1 */
  readonly version?: pulumi.Input<number>;
}

interface State {
  bytes: number;
  version: number;
  value?: string;
}

/** The provider behind RandomSecret (exported for its unit test). */
export const randomSecretProvider: pulumi.dynamic.ResourceProvider = {
  create(inputs: State) {
    const value = crypto.randomBytes(inputs.bytes).toString("hex");
    return Promise.resolve({ id: crypto.randomUUID(), outs: { bytes: inputs.bytes, version: inputs.version, value } });
  },
  diff(_id: string, olds: State, news: State) {
    const replaces = (["bytes", "version"] as const).filter((k) => olds[k] !== news[k]);
    return Promise.resolve({ changes: replaces.length > 0, replaces, deleteBeforeReplace: false });
  },
};

/**
 * A secret generated once (`openssl rand -hex 32`, kept in state) and stable across runs: it
 * changes only when `version` or `bytes` does. The value is stored encrypted and masked.
 */
export class RandomSecret extends pulumi.dynamic.Resource {
  /** The hex value (a secret). */
  declare public readonly value: pulumi.Output<string>;

  constructor(name: string, args: RandomSecretArgs, opts?: pulumi.CustomResourceOptions) {
    super(
      randomSecretProvider,
      name,
      { bytes: args.bytes ?? 32, version: args.version ?? 1, value: undefined },
      pulumi.mergeOptions(opts, { additionalSecretOutputs: ["value"] }),
      "homelab",
      "RandomSecret",
    );
  }
}
