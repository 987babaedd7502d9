import * as pulumi from "@pulumi/pulumi";
import { joinBundle, parseBundle } from "../lib/bundle";
import { ServicePlan, planServices } from "../lib/compose-changes";
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
  /**
   * Non-secret files sent on stdin ahead of `stdin`, as bundle entries of mode 0644 (see
   * lib/remote-deploy.ts renderBundle), by name. Plain inputs, so a preview shows their changed
   * lines. @default {}
   */
  readonly files?: pulumi.Input<Record<string, pulumi.Input<string>>>;
  /** Names of the variables the secret `.env` holds, shown in previews (never their values). */
  readonly envKeys?: pulumi.Input<pulumi.Input<string>[]>;
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
  files?: Record<string, string>;
  envKeys?: string[];
  triggers?: unknown[];
  /** Planned by check from the old and new files, for the preview to show (see planServices). */
  services?: ServicePlan;
  stdout?: string;
}

/** Everything the script reads on stdin. */
function fullStdin(s: Partial<State>): string {
  if (s.files !== undefined && (typeof s.files !== "object" || s.files === null)) {
    // Files not known yet (a preview): not a bundle, so it compares as changed.
    return `files ${String(s.files)}\n${s.stdin ?? ""}`;
  }
  return joinBundle(s.files, s.stdin);
}

/**
 * The parts whose change means the script must run again (credentials alone do not). A bundle
 * counts by what it writes, not by which input carried each file, so state written when every
 * file travelled in the secret stdin matches the same files sent as plain ones.
 */
function runKey(s: State): string {
  const stdin = fullStdin(s);
  return JSON.stringify([s.create, s.update, parseBundle(stdin)?.canonical ?? stdin, s.triggers, s.connection.host, s.connection.port, s.connection.user]);
}

/** The files a run writes, by name; a secret part not known yet (a preview) counts as changed. */
function writtenFiles(s: Partial<State>): Record<string, string> | undefined {
  const plain = parseBundle(fullStdin({ files: s.files }));
  if (!plain) {
    return undefined;
  }
  const secret = parseBundle(s.stdin ?? "");
  return { ...plain.files, ...(secret ? secret.files : { ".env": "(not known yet)" }) };
}

/**
 * What the run will do to each compose service, for the preview to show. A run that will not
 * happen keeps the plan it had, so nothing changes; undefined for scripts that deploy no compose
 * file, and while the files are not known yet.
 */
function planRun(olds: Partial<State>, news: State): ServicePlan | undefined {
  const isNew = olds.create === undefined;
  if (!isNew && runKey(olds as State) === runKey(news)) {
    return olds.services;
  }
  const after = writtenFiles(news);
  return after ? planServices((isNew ? undefined : writtenFiles(olds)) ?? {}, after) : undefined;
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
  const r = await runScript(state.connection, script, fullStdin(state));
  if (r.code !== 0) {
    throw failure(label, state.connection.host, r.code, r.stderr || r.stdout);
  }
  return r.stdout;
}

/**
 * Runs scripts over SSH with the host key pinned. Create and update run only on `up`; a preview
 * connects to nothing.
 */
export const remoteScriptProvider: pulumi.dynamic.ResourceProvider = {
  check(olds: Partial<State>, news: State) {
    const inputs = { ...news };
    delete inputs.services;
    let services: ServicePlan | undefined;
    try {
      services = planRun(olds, inputs);
    } catch {
      // A plan is for reading only: one that cannot be made is left out and never blocks a run.
      services = undefined;
    }
    return Promise.resolve({ inputs: services ? { ...inputs, services } : inputs });
  },
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

/**
 * A script run on a host over SSH: the project's remote command, with secrets on stdin only.
 * In a preview of a compose deploy, its `services` input says what the run will do to each
 * service (kept, created, recreated and why, removed), planned by the provider from the old and
 * new files.
 */
export class RemoteScript extends pulumi.dynamic.Resource {
  /** What the last create or update printed on stdout. */
  declare public readonly stdout: pulumi.Output<string>;

  constructor(name: string, args: RemoteScriptArgs, opts?: pulumi.CustomResourceOptions) {
    const { secretStdout, ...inputs } = args;
    super(
      remoteScriptProvider,
      name,
      // The plan check adds is read from the files: this placeholder makes the engine keep it as
      // secret as they are (it re-marks what the program passed secret), never plainer.
      { ...inputs, services: pulumi.output(inputs.files).apply(() => ""), stdout: undefined },
      pulumi.mergeOptions(opts, { additionalSecretOutputs: ["connection", "stdin", ...(secretStdout ? ["stdout"] : [])] }),
      MODULE,
      TYPE,
    );
  }
}
