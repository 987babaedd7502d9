// Flux's source-controller and kustomize-controller for the sandbox, out of the cluster: the
// toolchain's binaries with the cluster's admin kubeconfig, source-controller's artifacts served
// and advertised on loopback (kustomize-controller downloads them from the URL it advertises),
// every listener on a free loopback port, leader election off (one replica each).

import * as fs from "fs";
import * as path from "path";
import { toolchainPaths } from "../toolchain/env";
import { kubeClient } from "./kube";
import { ProcessRecord, freePort, readState, recordAlive, runCommand, startProcess, stopProcess, updateState, waitFor } from "./processes";

/** Namespace the controllers consider theirs (RUNTIME_NAMESPACE), as in Flux's install. */
export const FLUX_NAMESPACE = "flux-system";

const SOURCE = "source-controller";
const KUSTOMIZE = "kustomize-controller";
const STATE_KEY = "flux-controllers";

/** The CRDs the two controllers watch; they refuse to start without every one of them. */
export const FLUX_CONTROLLER_CRDS = [
  "gitrepositories.source.toolkit.fluxcd.io",
  "helmrepositories.source.toolkit.fluxcd.io",
  "helmcharts.source.toolkit.fluxcd.io",
  "buckets.source.toolkit.fluxcd.io",
  "ocirepositories.source.toolkit.fluxcd.io",
  "externalartifacts.source.toolkit.fluxcd.io",
  "kustomizations.kustomize.toolkit.fluxcd.io",
] as const;

export interface FluxControllersOptions {
  /** Kubeconfig the controllers use: the cluster's admin, since they run without a service account. */
  readonly kubeconfig: string;
  /**
   * A directory of Flux's CRDs (sandbox/flux-manifests.ts) applied server-side before the
   * controllers start, for a cluster the program has not installed Flux on yet. Without it the
   * CRDs must be there already. @default none
   */
  readonly crds?: string;
  readonly log?: (line: string) => void;
  /** @default 60000 */
  readonly timeoutMs?: number;
}

export interface SandboxFluxControllers {
  readonly sourcePid: number;
  readonly kustomizePid: number;
  /** `http://127.0.0.1:PORT`: source-controller's artifact server, the host of every artifact URL. */
  readonly storageUrl: string;
  /** Log files of the two controllers (JSON lines). */
  readonly logs: { readonly source: string; readonly kustomize: string };
  /** Stops both controllers by PID; their artifacts go too. */
  stop(): Promise<void>;
}

interface FluxControllersResources {
  kubeconfig: string;
  storagePort: number;
  ports: Record<typeof SOURCE | typeof KUSTOMIZE, { metrics: number; health: number }>;
}

/** The two controllers' command lines: loopback listeners only, leader election off, no events receiver. */
export function fluxControllerArgs(dir: string, res: FluxControllersResources): Record<typeof SOURCE | typeof KUSTOMIZE, string[]> {
  const common = (name: typeof SOURCE | typeof KUSTOMIZE): string[] => [
    `--metrics-addr=127.0.0.1:${res.ports[name].metrics}`,
    `--health-addr=127.0.0.1:${res.ports[name].health}`,
    "--enable-leader-election=false",
    "--log-encoding=json",
  ];
  return {
    [SOURCE]: [
      ...common(SOURCE),
      `--storage-path=${path.join(dir, "storage")}`,
      `--storage-addr=127.0.0.1:${res.storagePort}`,
      `--storage-adv-addr=127.0.0.1:${res.storagePort}`,
    ],
    [KUSTOMIZE]: common(KUSTOMIZE),
  };
}

/**
 * Starts source-controller and kustomize-controller in `dir` against the cluster of `kubeconfig`
 * and waits until both report ready. Idempotent: controllers a previous call started there are
 * reused while both run. Flux's CRDs must be installed first (by the program's Flux installation,
 * or from `opts.crds`): a missing one is named rather than left to stop a controller.
 */
export async function startFluxControllers(dir: string, opts: FluxControllersOptions): Promise<SandboxFluxControllers> {
  dir = path.resolve(dir);
  const log = opts.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  const paths = toolchainPaths();
  const binaries = { [SOURCE]: paths.sourceController, [KUSTOMIZE]: paths.kustomizeController };
  for (const b of Object.values(binaries)) {
    if (!fs.existsSync(b)) {
      throw new Error(`flux: ${b} is missing; run: npm run toolchain -- --only sandbox`);
    }
  }
  const state = readState(dir);
  const existing = state.resources[STATE_KEY] as FluxControllersResources | undefined;
  if (existing && recordAlive(state.processes[SOURCE]) && recordAlive(state.processes[KUSTOMIZE])) {
    return handle(dir, existing, state.processes[SOURCE], state.processes[KUSTOMIZE]);
  }
  await stopFluxControllers(dir);
  const kubeconfig = path.resolve(opts.kubeconfig);
  if (opts.crds !== undefined) {
    const r = await runCommand(path.join(paths.sandboxBinDir, "kubectl"), ["--kubeconfig", kubeconfig, "apply", "--server-side", "-f", opts.crds]);
    if (r.status !== 0) {
      throw new Error(`flux: applying the CRDs of ${opts.crds} failed: ${r.stderr.trim()}`);
    }
  }
  const client = kubeClient(kubeconfig);
  const established = async (crd: string): Promise<boolean> => {
    const o = await client.get<{ status?: { conditions?: { type: string; status: string }[] } }>(`/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${crd}`);
    return o?.status?.conditions?.some((c) => c.type === "Established" && c.status === "True") ?? false;
  };
  // Just applied ones take a moment to be served; absent ones are named at once.
  await waitFor(async () => (await Promise.all(FLUX_CONTROLLER_CRDS.map(established))).every(Boolean), {
    what: `Flux's CRDs (${FLUX_CONTROLLER_CRDS.join(", ")}) established`,
    timeoutMs: opts.crds !== undefined ? 30_000 : 2_000,
  }).catch(async (e: unknown) => {
    const missing = (await Promise.all(FLUX_CONTROLLER_CRDS.map(async (c) => ((await established(c)) ? undefined : c)))).filter(Boolean);
    throw new Error(`flux: the cluster does not serve ${missing.join(", ")}: install Flux's CRDs first (deploy the stack, or pass crds)`, { cause: e });
  });

  const res: FluxControllersResources = {
    kubeconfig,
    storagePort: await freePort(),
    ports: {
      [SOURCE]: { metrics: await freePort(), health: await freePort() },
      [KUSTOMIZE]: { metrics: await freePort(), health: await freePort() },
    },
  };
  fs.mkdirSync(path.join(dir, "storage"), { recursive: true });
  updateState(dir, (s) => {
    s.resources[STATE_KEY] = res;
  });
  const args = fluxControllerArgs(dir, res);
  // HOME in dir: whatever a controller caches (Helm, Go) stays with the sandbox.
  const env = { ...process.env, KUBECONFIG: res.kubeconfig, RUNTIME_NAMESPACE: FLUX_NAMESPACE, HOME: dir };
  const started: Partial<Record<typeof SOURCE | typeof KUSTOMIZE, ProcessRecord>> = {};
  try {
    for (const name of [SOURCE, KUSTOMIZE] as const) {
      log(`flux: starting ${name} (health 127.0.0.1:${res.ports[name].health}${name === SOURCE ? `, artifacts 127.0.0.1:${res.storagePort}` : ""})`);
      started[name] = startProcess(dir, { name, command: binaries[name], args: args[name], env });
    }
    for (const name of [SOURCE, KUSTOMIZE] as const) {
      const rec = started[name]!;
      await waitFor(async () => {
        const r = await fetch(`http://127.0.0.1:${res.ports[name].health}/readyz`, { signal: AbortSignal.timeout(2000) });
        await r.arrayBuffer();
        return r.status === 200;
      }, { what: `${name} ready`, timeoutMs: opts.timeoutMs ?? 60_000, pid: rec.pid, logFile: rec.logFile });
    }
  } catch (e) {
    await stopFluxControllers(dir);
    throw e;
  }
  return handle(dir, res, started[SOURCE]!, started[KUSTOMIZE]!);
}

function handle(dir: string, res: FluxControllersResources, source: ProcessRecord, kustomize: ProcessRecord): SandboxFluxControllers {
  return {
    sourcePid: source.pid,
    kustomizePid: kustomize.pid,
    storageUrl: `http://127.0.0.1:${res.storagePort}`,
    logs: { source: source.logFile, kustomize: kustomize.logFile },
    stop: () => stopFluxControllers(dir),
  };
}

/** Stops the controllers `dir` holds, by PID, and removes their artifacts (the logs stay). */
export async function stopFluxControllers(dir: string): Promise<void> {
  dir = path.resolve(dir);
  if (!fs.existsSync(dir)) {
    return;
  }
  // kustomize-controller first: it downloads from source-controller.
  await stopProcess(dir, KUSTOMIZE);
  await stopProcess(dir, SOURCE);
  fs.rmSync(path.join(dir, "storage"), { recursive: true, force: true });
  updateState(dir, (s) => {
    delete s.resources[STATE_KEY];
  });
}

/** The Flux kinds a reconcile can be requested of, with their API paths. */
const FLUX_KINDS = {
  GitRepository: "/apis/source.toolkit.fluxcd.io/v1/namespaces/%s/gitrepositories/",
  Kustomization: "/apis/kustomize.toolkit.fluxcd.io/v1/namespaces/%s/kustomizations/",
} as const;

/**
 * Asks Flux to reconcile an object now rather than at its next interval, as `flux reconcile`
 * does: a new `reconcile.fluxcd.io/requestedAt` annotation. Returns the value set, which the
 * object's `status.lastHandledReconcileAt` carries once the controller took it.
 */
export async function requestReconcile(kubeconfig: string, kind: keyof typeof FLUX_KINDS, name: string, namespace = FLUX_NAMESPACE): Promise<string> {
  const at = new Date().toISOString();
  const url = FLUX_KINDS[kind].replace("%s", encodeURIComponent(namespace)) + encodeURIComponent(name);
  await kubeClient(kubeconfig).patch(url, { metadata: { annotations: { "reconcile.fluxcd.io/requestedAt": at } } });
  return at;
}
