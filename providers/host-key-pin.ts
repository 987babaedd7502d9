import * as pulumi from "@pulumi/pulumi";
import { SshEndpoint, runScript } from "../lib/ssh";
import { SshConnectionInput } from "./ssh-connection";

/** Inputs of a host key pinned on first contact. */
export interface HostKeyPinArgs {
  /** How to reach the host: the pin is taken from a login that succeeds, never from a bare handshake. */
  readonly connection: SshConnectionInput;
}

interface State {
  connection: SshEndpoint;
  /** The key the host presented on first contact (`type base64`). */
  hostKey?: string;
}

/** How long the first contact may take. */
const CONTACT_DEADLINE_SECONDS = 60;

/**
 * The provider behind HostKeyPin (exported for its unit test). Only create connects: from then on
 * the recorded key is the host's, whatever a later contact presents, until the host or port change.
 */
export const hostKeyPinProvider: pulumi.dynamic.ResourceProvider = {
  async create(inputs: State) {
    const ep: SshEndpoint = { ...inputs.connection, hostKey: undefined, trustOnFirstUse: true };
    const r = await runScript(ep, "true", "", { deadlineSeconds: CONTACT_DEADLINE_SECONDS });
    if (r.code !== 0 || !r.hostKey) {
      throw new Error(`first contact with ${inputs.connection.host}:${inputs.connection.port} failed (exit ${r.code}): ${(r.stderr || r.stdout).trim().slice(0, 500)}`);
    }
    return { id: `${inputs.connection.host}:${inputs.connection.port}`, outs: { connection: inputs.connection, hostKey: r.hostKey } };
  },
  diff(_id: string, olds: State, news: State) {
    // Another host is another first contact; a new user or key for the same host is not.
    const replaces = (["host", "port"] as const).filter((k) => olds.connection[k] !== news.connection[k]).map((k) => `connection.${k}`);
    const changes = replaces.length > 0 || JSON.stringify(olds.connection) !== JSON.stringify(news.connection);
    return Promise.resolve({ changes, replaces, deleteBeforeReplace: true });
  },
  update(_id: string, olds: State, news: State) {
    return Promise.resolve({ outs: { connection: news.connection, hostKey: olds.hostKey } });
  },
  // A refresh keeps the pin: re-reading it from the host would trust again.
  read(id: string, props: State) {
    return Promise.resolve({ id, props });
  },
};

/**
 * A host's SSH key, pinned in the stack's state at the first successful login and never taken
 * from the host again: every script run on that host is refused unless the host presents it.
 * One pin per host, made before anything else connects, so a first deploy that fails later still
 * leaves the key pinned and a retry never trusts again.
 */
export class HostKeyPin extends pulumi.dynamic.Resource {
  /** The pinned key (`type base64`). */
  declare public readonly hostKey: pulumi.Output<string>;

  constructor(name: string, args: HostKeyPinArgs, opts?: pulumi.CustomResourceOptions) {
    super(hostKeyPinProvider, name, { connection: args.connection, hostKey: undefined }, pulumi.mergeOptions(opts, { additionalSecretOutputs: ["connection"] }), "homelab", "HostKeyPin");
  }
}
