import * as pulumi from "@pulumi/pulumi";
import { joinBundle, parseBundle } from "../lib/bundle";
import { ServicePlan, planServices } from "../lib/compose-changes";
import { findDrift, parseInspect } from "../lib/live";
import { DetachedScript, SshEndpoint, runDetached, runScript } from "../lib/ssh";
import { SshConnectionInput } from "./ssh-connection";

/** Inputs of a script run on a host over SSH. */
export interface RemoteScriptArgs {
  readonly connection: SshConnectionInput;
  /** Runs on create, and on update unless `update` is set. */
  readonly create: pulumi.Input<string>;
  readonly update?: pulumi.Input<string>;
  /** Runs on delete. */
  readonly delete?: pulumi.Input<string>;
  /**
   * The create/update script runs detached on the host (see lib/ssh.ts runDetached): a dropped
   * connection is followed again with `follow`, up to `reconnects` times. Not part of what makes
   * a run: changing it alone runs nothing.
   */
  readonly detached?: pulumi.Input<Omit<DetachedScript, "start">>;
  /** Seconds a script that is not detached may run before it fails. @default 600 */
  readonly timeoutSeconds?: pulumi.Input<number>;
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
  /**
   * A read-only script that reports what the host runs (lib/remote-deploy.ts renderInspectScript).
   * With it, `pulumi refresh` reads the host: a file, container or image that differs from the
   * recorded run is drift, and the next `up` runs the script again.
   */
  readonly inspect?: pulumi.Input<string>;
  /**
   * A read-only script that prints the host's logs (lib/logs.ts renderLogsScript), kept in state
   * for `homelab logs`; never run by the engine.
   */
  readonly logs?: pulumi.Input<string>;
  /** The script prints a secret: keep stdout encrypted in state and masked in output. @default false */
  readonly secretStdout?: boolean;
  /**
   * The name the host-side state goes by (a compose project, whose volumes carry it): a change is
   * refused before the run unless the rename is confirmed (see ScriptIdentity).
   */
  readonly identity?: pulumi.Input<ScriptIdentity>;
}

/** The name a script's host-side state goes by, and how a rename of it is confirmed. */
export interface ScriptIdentity {
  readonly value: string;
  /** What the value is, for the refusal: its config key and what goes with the name. */
  readonly what: string;
  /** The previous value, when a rename is meant. */
  readonly renamedFrom?: string;
  /** How to confirm a rename, for the refusal. */
  readonly confirm: string;
}

/** The refusal of a rename that was not confirmed, or undefined. */
export function renameRefusal(old: ScriptIdentity | undefined, next: ScriptIdentity | undefined): string | undefined {
  if (!old || !next || old.value === next.value || next.renamedFrom === old.value) {
    return undefined;
  }
  return `${next.what}: ${JSON.stringify(next.value)} renames ${JSON.stringify(old.value)}; ${next.confirm.replace(/\{old\}/g, old.value).replace(/\{new\}/g, next.value)}`;
}

interface State {
  connection: SshEndpoint;
  create: string;
  update?: string;
  delete?: string;
  detached?: Omit<DetachedScript, "start">;
  timeoutSeconds?: number;
  stdin?: string;
  files?: Record<string, string>;
  envKeys?: string[];
  identity?: ScriptIdentity;
  triggers?: unknown[];
  inspect?: string;
  logs?: string;
  /** What the last refresh found on the host that differs from the recorded run; empty after a run. */
  drift?: string[];
  /** How often each service's container restarted, as the last refresh read it (a crash loop's count). */
  restarts?: Record<string, number>;
  /** When the script last ran (each run sets it, so what depends on a run runs after it again). */
  ranAt?: string;
  /** With trust on first use: the host key the host presented on first contact, checked from then on. */
  pinnedHostKey?: string;
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

/** Seconds a script that is not detached may run, unless its resource says otherwise. */
const DEFAULT_TIMEOUT_SECONDS = 600;

/**
 * Where a recorded run connects: its connection, with the host key this script pinned on first
 * contact where none is given. A key given from a host's pin (trust on first use kept per host)
 * that differs from the one this script pinned before is refused: one of the two contacts was not
 * the host.
 */
export function endpoint(state: Pick<State, "connection">, pinned: string | undefined): SshEndpoint {
  const given = state.connection.hostKey;
  if (given && pinned && state.connection.trustOnFirstUse && !sameKey(given, pinned)) {
    throw new Error(
      `host key of ${state.connection.host}:${state.connection.port} was pinned as ${pinned} by an earlier run, and the host's pin now says ${given}: refusing to connect. ` +
        "If the host was re-keyed, check its key (ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub) and configure it",
    );
  }
  return given || !pinned ? state.connection : { ...state.connection, hostKey: pinned };
}

/** Two `type base64 [comment]` keys, compared without their comments. */
function sameKey(a: string, b: string): boolean {
  const key = (k: string): string => k.trim().split(/\s+/).slice(0, 2).join(" ");
  return key(a) === key(b);
}

/**
 * The key to keep pinned after a run, as outputs to add: none when one is configured, else the
 * first one seen. Absent rather than undefined: the engine's wire format has no undefined.
 */
function pinAfter(state: State, pinned: string | undefined, seen: string | undefined): { pinnedHostKey?: string } {
  const key = state.connection.hostKey ? undefined : (pinned ?? seen);
  return key ? { pinnedHostKey: key } : {};
}

async function exec(label: string, state: State, script: string, pinned: string | undefined): Promise<{ stdout: string; hostKey?: string }> {
  const stdin = fullStdin(state);
  const ep = endpoint(state, pinned);
  const r =
    state.detached && label !== "delete"
      ? await runDetached(ep, { ...state.detached, start: script }, stdin)
      : await runScript(ep, script, stdin, { deadlineSeconds: state.timeoutSeconds ?? DEFAULT_TIMEOUT_SECONDS });
  if (r.code !== 0) {
    throw failure(label, state.connection.host, r.code, r.stderr || r.stdout);
  }
  return { stdout: r.stdout, hostKey: r.hostKey };
}

/**
 * Runs scripts over SSH with the host key pinned: the configured one, or with trust on first use
 * the one the host presented on first contact, kept in state (a changed key is refused). Create
 * and update run only on `up`; a preview connects to nothing.
 */
export const remoteScriptProvider: pulumi.dynamic.ResourceProvider = {
  check(olds: Partial<State>, news: State) {
    // Refused here, in the preview, before any part of the update runs.
    const refusal = renameRefusal(olds.identity, news.identity);
    if (refusal) {
      return Promise.resolve({ inputs: news, failures: [{ property: "identity", reason: refusal }] });
    }
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
    const r = await exec("create", inputs, inputs.create, undefined);
    return { id: `${inputs.connection.host}:${inputs.connection.port}:${Date.now()}`, outs: { ...inputs, stdout: r.stdout, drift: [], ranAt: new Date().toISOString(), ...pinAfter(inputs, undefined, r.hostKey) } };
  },
  diff(_id: string, olds: State, news: State) {
    const drifted = (olds.drift?.length ?? 0) > 0;
    const changed = drifted || runKey(olds) !== runKey(news) || JSON.stringify(olds.connection) !== JSON.stringify(news.connection) || olds.delete !== news.delete || olds.inspect !== news.inspect || olds.logs !== news.logs;
    return Promise.resolve({ changes: changed });
  },
  async update(_id: string, olds: State, news: State) {
    // Drift found by a refresh is repaired by running the recorded release again.
    if (runKey(olds) === runKey(news) && (olds.drift?.length ?? 0) === 0) {
      // Nothing runs, but a key the host's pin now gives must agree with the one recorded here.
      endpoint(news, olds.pinnedHostKey);
      return { outs: { ...news, stdout: olds.stdout ?? "", drift: [], ranAt: olds.ranAt ?? "", ...pinAfter(news, olds.pinnedHostKey, undefined) } };
    }
    const r = await exec("update", news, news.update ?? news.create, olds.pinnedHostKey);
    return { outs: { ...news, stdout: r.stdout, drift: [], ranAt: new Date().toISOString(), ...pinAfter(news, olds.pinnedHostKey, r.hostKey) } };
  },
  /**
   * A refresh: with an inspect script, reads the host and records what differs from the last
   * run as `drift` (file and service names only); without one, keeps the recorded state.
   */
  async read(id: string, props: State) {
    if (!props.inspect || !props.connection) {
      return { id, props };
    }
    // A read changes nothing: one retry is enough before the refresh reports the host unreachable.
    const ep = endpoint(props, props.pinnedHostKey);
    const r = await runScript({ ...ep, attempts: Math.min(2, ep.attempts ?? 3) }, props.inspect, "", { deadlineSeconds: props.timeoutSeconds ?? DEFAULT_TIMEOUT_SECONDS });
    if (r.code !== 0) {
      throw failure("read", props.connection.host, r.code, r.stderr || r.stdout);
    }
    const recorded = writtenFiles(props) ?? {};
    const live = parseInspect(r.stdout);
    const restarts = Object.fromEntries(live.containers.map((c) => [c.service, c.restarts]));
    return { id, props: { ...props, drift: findDrift(recorded, live), restarts, ...pinAfter(props, props.pinnedHostKey, r.hostKey) } };
  },
  async delete(_id: string, props: State) {
    if (props.delete) {
      await exec("delete", props, props.delete, props.pinnedHostKey);
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
  /** When the script last ran. */
  declare public readonly ranAt: pulumi.Output<string>;
  /** What the last refresh found differing on the host (empty after a run). */
  declare public readonly drift: pulumi.Output<string[]>;
  /** With trust on first use, the host key pinned on first contact; undefined when one is configured. */
  declare public readonly pinnedHostKey: pulumi.Output<string | undefined>;

  constructor(name: string, args: RemoteScriptArgs, opts?: pulumi.CustomResourceOptions) {
    const { secretStdout, ...inputs } = args;
    super(
      remoteScriptProvider,
      name,
      // The plan check adds is read from the files: this placeholder makes the engine keep it as
      // secret as they are (it re-marks what the program passed secret), never plainer.
      { ...inputs, services: pulumi.output(inputs.files).apply(() => ""), stdout: undefined, ranAt: undefined, drift: undefined, pinnedHostKey: undefined },
      pulumi.mergeOptions(opts, { additionalSecretOutputs: ["connection", "stdin", ...(secretStdout ? ["stdout"] : [])] }),
      MODULE,
      TYPE,
    );
  }
}
