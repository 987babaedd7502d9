import * as pulumi from "@pulumi/pulumi";
import { SshEndpoint, runScript } from "../lib/ssh";

/** Inputs of a script run on a host over SSH. */
export interface RemoteScriptArgs {
  readonly connection: pulumi.Input<{
    host: pulumi.Input<string>;
    port: pulumi.Input<number>;
    user: pulumi.Input<string>;
    privateKey: pulumi.Input<string>;
    hostKey?: pulumi.Input<string>;
    attempts?: pulumi.Input<number>;
  }>;
  /** Runs on create, and on update unless `update` is set. */
  readonly create: pulumi.Input<string>;
  readonly update?: pulumi.Input<string>;
  /** Runs on delete. */
  readonly delete?: pulumi.Input<string>;
  /** Standard input of every run; where secrets travel. */
  readonly stdin?: pulumi.Input<string>;
  /** Any change re-runs the script. */
  readonly triggers?: pulumi.Input<unknown[]>;
  /** The script prints a secret: keep stdout encrypted in state and masked in output. @default false */
  readonly secretStdout?: boolean;
}

interface State {
  connection: SshEndpoint;
  create: string;
  update?: string;
  delete?: string;
  stdin?: string;
  triggers?: unknown[];
  stdout?: string;
}

/** The parts whose change means the script must run again (credentials alone do not). */
function runKey(s: State): string {
  return JSON.stringify([s.create, s.update, s.stdin, s.triggers, s.connection.host, s.connection.port, s.connection.user]);
}

function tail(text: string, lines = 40): string {
  return text.trimEnd().split("\n").slice(-lines).join("\n");
}

const MODULE = "homelab";
const TYPE = "RemoteScript";
/** The type token the engine gives a RemoteScript (dynamic resources are `pulumi-nodejs:dynamic/<module>:<type>`). */
export const REMOTE_SCRIPT_TYPE = `pulumi-nodejs:dynamic/${MODULE}:${TYPE}`;

function failure(label: string, host: string, code: number, output: string): Error {
  return new Error(`${label} on ${host} exited with code ${code}:\n${tail(output)}`);
}

/** The remote script's exit code, read back from the error a failed run reports. */
export function remoteExitCode(message: string): number | undefined {
  const m = /(?:create|update|delete) on \S+ exited with code (\d+):/.exec(message);
  return m ? Number(m[1]) : undefined;
}

async function exec(label: string, state: State, script: string): Promise<string> {
  const r = await runScript(state.connection, script, state.stdin ?? "");
  if (r.code !== 0) {
    throw failure(label, state.connection.host, r.code, r.stderr || r.stdout);
  }
  return r.stdout;
}

/**
 * Runs scripts over SSH with the host key pinned. Create and update run only on `up`; a preview
 * connects to nothing.
 */
const remoteScriptProvider: pulumi.dynamic.ResourceProvider = {
  async create(inputs: State) {
    const stdout = await exec("create", inputs, inputs.create);
    return { id: `${inputs.connection.host}:${inputs.connection.port}:${Date.now()}`, outs: { ...inputs, stdout } };
  },
  diff(_id: string, olds: State, news: State) {
    const changed = runKey(olds) !== runKey(news) || JSON.stringify(olds.connection) !== JSON.stringify(news.connection) || olds.delete !== news.delete;
    return Promise.resolve({ changes: changed });
  },
  async update(_id: string, olds: State, news: State) {
    if (runKey(olds) === runKey(news)) {
      return { outs: { ...news, stdout: olds.stdout ?? "" } };
    }
    const stdout = await exec("update", news, news.update ?? news.create);
    return { outs: { ...news, stdout } };
  },
  async delete(_id: string, props: State) {
    if (props.delete) {
      await exec("delete", props, props.delete);
    }
  },
};

/** A script run on a host over SSH: the project's remote command, with secrets on stdin only. */
export class RemoteScript extends pulumi.dynamic.Resource {
  /** What the last create or update printed on stdout. */
  declare public readonly stdout: pulumi.Output<string>;

  constructor(name: string, args: RemoteScriptArgs, opts?: pulumi.CustomResourceOptions) {
    const { secretStdout, ...inputs } = args;
    super(
      remoteScriptProvider,
      name,
      { ...inputs, stdout: undefined },
      pulumi.mergeOptions(opts, { additionalSecretOutputs: ["connection", "stdin", ...(secretStdout ? ["stdout"] : [])] }),
      MODULE,
      TYPE,
    );
  }
}
