import * as pulumi from "@pulumi/pulumi";
import { ProbeOptions, ProbeResult, ProbeTarget, probeOnce, probeUntilHealthy, realProbeIo } from "../lib/probe";
import { RestartSource, describeSource, readRestarts } from "../lib/restarts";

export interface HealthGateArgs {
  /** URLs probed in order; all must be healthy. */
  readonly targets: pulumi.Input<pulumi.Input<ProbeTarget>[]>;
  /** The gate runs again whenever this changes; pass the release it guards. */
  readonly release: pulumi.Input<string>;
  /**
   * The gate also runs again whenever this changes: pass what changes each time the guarded part
   * is deployed again (a remote deploy's run time, a Deployment's generation), so a repair is
   * gated like a release. @default ""
   */
  readonly after?: pulumi.Input<string>;
  /** Timing; the deadline defaults to 5 minutes. */
  readonly options?: ProbeOptions;
  /**
   * Where the soak reads the restarts of what the gate guards: any restart between its start and
   * its end fails the gate. Kept secret (it holds credentials). @default restarts are not counted
   */
  readonly restarts?: pulumi.Input<RestartSource>;
}

interface GateInputs {
  targets: ProbeTarget[];
  release: string;
  after: string;
  options: ProbeOptions;
  restarts?: RestartSource;
}

interface GateOutputs extends GateInputs {
  checkedAt: string;
  elapsedMs: number;
  result: ProbeResult;
  /** What the last refresh found failing (empty after a passing check). */
  drift?: string[];
}

const inputKey = (g: GateInputs): string => JSON.stringify([g.targets, g.release, g.after ?? "", g.options]);

async function check(inputs: GateInputs): Promise<GateOutputs> {
  try {
    const source = inputs.restarts;
    const io = source ? { ...realProbeIo(), restarts: () => readRestarts(source), restartsOf: describeSource(source) } : realProbeIo();
    const result = await probeUntilHealthy(inputs.targets, inputs.options, io);
    return { ...inputs, checkedAt: new Date().toISOString(), elapsedMs: result.elapsedMs, result, drift: [] };
  } catch (e) {
    // A plain Error carries its message across the dynamic provider's RPC boundary.
    throw new Error((e as Error).message, { cause: e });
  }
}

/**
 * The engine calls create and update only on `up`, never on preview, so the gate probes nothing
 * during a preview. A thrown HealthGateError fails the update and stops every resource that
 * depends on the gate.
 */
const gateProvider: pulumi.dynamic.ResourceProvider = {
  async create(inputs: GateInputs) {
    const outs = await check(inputs);
    return { id: `gate-${Date.now()}`, outs };
  },
  diff(_id: string, olds: GateOutputs, news: GateInputs) {
    return Promise.resolve({ changes: inputKey(olds) !== inputKey(news) || (olds.drift?.length ?? 0) > 0 });
  },
  async update(_id: string, _olds: GateOutputs, news: GateInputs) {
    return { outs: await check(news) };
  },
  /** A refresh probes each URL once: a gate that no longer passes is drift, checked again by the next `up`. */
  async read(id: string, props: GateOutputs) {
    return { id, props: { ...props, drift: await probeOnce(props.targets, props.options.attemptTimeoutMs ?? 5000, realProbeIo()) } };
  },
};

class GateResource extends pulumi.dynamic.Resource {
  declare public readonly checkedAt: pulumi.Output<string>;
  declare public readonly elapsedMs: pulumi.Output<number>;
  declare public readonly result: pulumi.Output<ProbeResult>;

  constructor(
    name: string,
    inputs: { targets: HealthGateArgs["targets"]; release: pulumi.Input<string>; after: pulumi.Input<string>; options: ProbeOptions; restarts?: pulumi.Input<RestartSource> },
    opts?: pulumi.CustomResourceOptions,
  ) {
    super(
      gateProvider,
      name,
      { ...inputs, checkedAt: undefined, elapsedMs: undefined, result: undefined, drift: undefined },
      pulumi.mergeOptions(opts, { additionalSecretOutputs: ["restarts"] }),
      GATE_MODULE,
      GATE_TYPE,
    );
  }
}

const GATE_MODULE = "homelab";
const GATE_TYPE = "HealthGate";
/** The engine's type token of a gate's probe (a dynamic resource). */
export const GATE_PROBE_TYPE = `pulumi-nodejs:dynamic/${GATE_MODULE}:${GATE_TYPE}`;

/** Name of the probe a HealthGate named `gate` runs. */
export function gateProbeName(gate: string): string {
  return `${gate}-probe`;
}

/**
 * A health gate: on create and update it probes its URLs until each answers as expected (status,
 * optionally a JSON field), backing off between attempts, within a total deadline. A release is
 * promoted only past a passing gate; later stages depend on it.
 */
export class HealthGate extends pulumi.ComponentResource {
  /** When the gate last passed (unknown during preview). */
  public readonly checkedAt: pulumi.Output<string>;
  /** How long the last check took. */
  public readonly elapsedMs: pulumi.Output<number>;

  constructor(name: string, args: HealthGateArgs, opts?: pulumi.ComponentResourceOptions) {
    super("homelab:release:HealthGate", name, {}, opts);
    const options: ProbeOptions = { deadlineMs: 300_000, ...args.options };
    const gate = new GateResource(
      gateProbeName(name),
      { targets: args.targets, release: args.release, after: args.after ?? "", options, ...(args.restarts ? { restarts: pulumi.secret(args.restarts) } : {}) },
      { parent: this },
    );
    this.checkedAt = gate.checkedAt;
    this.elapsedMs = gate.elapsedMs;
    this.registerOutputs({ checkedAt: this.checkedAt, elapsedMs: this.elapsedMs });
  }
}
