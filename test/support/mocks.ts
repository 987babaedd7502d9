import * as pulumi from "@pulumi/pulumi";

/** The key a mocked HostKeyPin pins. */
export const MOCK_PINNED_HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPinnedOnFirstContactByTheMock0000000000";

/** The secret marker in Pulumi's wire format. */
const SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270";

export interface Registered {
  readonly type: string;
  readonly name: string;
  readonly urn: string;
  readonly parent: string;
  readonly dependencies: string[];
  readonly inputs: Record<string, unknown>;
  /** Top-level input names the program passed as secrets. */
  readonly secretInputs: string[];
  readonly provider: string;
}

export interface Recorder {
  readonly resources: Registered[];
  readonly calls: { token: string; inputs: Record<string, unknown> }[];
  byName(name: string): Registered;
  ofType(type: string): Registered[];
}

interface MockRequest {
  getType(): string;
  getName(): string;
  getParent(): string;
  getDependenciesList(): string[];
  getProvider(): string;
  getObject(): { toJavaScript(): Record<string, unknown> } | undefined;
}

function containsSecret(value: unknown): boolean {
  if (value === null || typeof value !== "object") {
    return false;
  }
  if ((value as Record<string, unknown>)["4dabf18193072939515e22adb298388d"] === SECRET_SIG) {
    return true;
  }
  return Object.values(value as Record<string, unknown>).some(containsSecret);
}

/**
 * Installs Pulumi's mocks and records every registration with its parent, dependencies and which
 * inputs were secret, which the stock mock arguments do not show.
 */
export function installMocks(opts: { preview?: boolean } = {}): Recorder {
  const resources: Registered[] = [];
  const calls: Recorder["calls"] = [];
  const mocks: pulumi.runtime.Mocks = {
    newResource(args) {
      // Generated secrets and keys pinned on first contact have no input to echo; give them a
      // value as their provider would.
      const generated = args.type.endsWith(":RandomSecret") ? { value: "0".repeat(64) } : args.type.endsWith(":HostKeyPin") ? { hostKey: MOCK_PINNED_HOST_KEY } : {};
      return { id: `${args.name}-id`, state: { ...(args.inputs as Record<string, unknown>), ...generated } };
    },
    call(args) {
      calls.push({ token: args.token, inputs: args.inputs as Record<string, unknown> });
      return args.inputs as Record<string, unknown>;
    },
  };
  void pulumi.runtime.setMocks(mocks, "homelab", "test", opts.preview ?? false);
  const monitor = (pulumi.runtime as unknown as { getMonitor(): { registerResource(req: MockRequest, cb: unknown): Promise<void> } }).getMonitor();
  const original = monitor.registerResource.bind(monitor);
  monitor.registerResource = async (req: MockRequest, cb: unknown) => {
    const raw = req.getObject()?.toJavaScript() ?? {};
    const type = req.getType();
    const name = req.getName();
    const parent = req.getParent();
    await original(req, (err: unknown, res: { getUrn(): string } | undefined) => {
      if (res) {
        resources.push({
          type,
          name,
          urn: res.getUrn(),
          parent,
          dependencies: req.getDependenciesList(),
          inputs: plain(raw) as Record<string, unknown>,
          secretInputs: Object.keys(raw).filter((k) => containsSecret(raw[k])),
          provider: req.getProvider(),
        });
      }
      (cb as (e: unknown, r: unknown) => void)(err, res);
    });
  };
  return {
    resources,
    calls,
    byName(name) {
      const r = resources.find((x) => x.name === name);
      if (!r) {
        throw new Error(`no resource named ${name}; registered: ${resources.map((x) => x.name).join(", ")}`);
      }
      return r;
    },
    ofType(type) {
      return resources.filter((x) => x.type === type);
    },
  };
}

/** Unwraps secret markers so assertions see plain values. */
function plain(value: unknown): unknown {
  if (Array.isArray(value)) {
    return value.map(plain);
  }
  if (value === null || typeof value !== "object") {
    return value;
  }
  const o = value as Record<string, unknown>;
  if (o["4dabf18193072939515e22adb298388d"] === SECRET_SIG) {
    return plain(o.value);
  }
  return Object.fromEntries(Object.entries(o).map(([k, v]) => [k, plain(v)]));
}

/** Resolves an Output's value in a test. */
export function valueOf<T>(output: pulumi.Output<T>): Promise<T> {
  return new Promise((resolve) => output.apply((v) => { resolve(v); return v; }));
}

/** Whether an Output is marked secret. */
export function isSecret<T>(output: pulumi.Output<T>): Promise<boolean> {
  return (output as unknown as { isSecret: Promise<boolean> }).isSecret;
}

/** Waits until no new resource has been registered for a few event-loop turns. */
export async function settle(rec: Recorder): Promise<void> {
  let last = -1;
  let stable = 0;
  while (stable < 5) {
    await new Promise((r) => setTimeout(r, 20));
    if (rec.resources.length === last) {
      stable++;
    } else {
      stable = 0;
      last = rec.resources.length;
    }
  }
}
