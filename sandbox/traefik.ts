// Traefik for the sandbox, out of the cluster: the toolchain's traefik binary with its
// kubernetesingress provider pointed at the sandbox's API server as a service account of its
// own (a token and the cluster's CA), routing a loopback port to the pods the Ingresses name.

import * as fs from "fs";
import * as path from "path";
import * as YAML from "yaml";
import { toolchainEnv, toolchainPaths } from "../toolchain/env";
import { freePort, portOpen, readState, recordAlive, runCommand, startProcess, stopProcess, updateState, waitFor } from "./processes";

/** The controller name Traefik's IngressClass carries. */
export const TRAEFIK_CONTROLLER = "traefik.io/ingress-controller";

export interface TraefikOptions {
  /** The cluster's admin kubeconfig, which sets up Traefik's service account. */
  readonly kubeconfig: string;
  /** IngressClass Traefik serves (created when missing). @default "traefik" */
  readonly ingressClass?: string;
  /** Port of the web entry point on 127.0.0.1. @default a free port */
  readonly port?: number;
  /** @default 60000 */
  readonly timeoutMs?: number;
}

export interface SandboxTraefik {
  /** `http://127.0.0.1:PORT`: the web entry point. */
  readonly url: string;
  readonly port: number;
  readonly pid: number;
  /** Stops Traefik and removes its service account, role binding and token; the IngressClass stays. */
  stop(): Promise<void>;
}

interface TraefikResources {
  port: number;
  pingPort: number;
  kubeconfig: string;
}

const STATE_KEY = "traefik";
const NAMESPACE = "kube-system";
const ACCOUNT = "sandbox-traefik";

/** What Traefik's kubernetesingress provider reads and writes, as a ClusterRole. */
export function traefikRbac(ingressClass: string): unknown[] {
  return [
    { apiVersion: "v1", kind: "ServiceAccount", metadata: { name: ACCOUNT, namespace: NAMESPACE } },
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "ClusterRole",
      metadata: { name: ACCOUNT },
      rules: [
        { apiGroups: [""], resources: ["services", "secrets", "nodes"], verbs: ["get", "list", "watch"] },
        { apiGroups: ["discovery.k8s.io"], resources: ["endpointslices"], verbs: ["get", "list", "watch"] },
        { apiGroups: ["networking.k8s.io"], resources: ["ingresses", "ingressclasses"], verbs: ["get", "list", "watch"] },
        { apiGroups: ["networking.k8s.io"], resources: ["ingresses/status"], verbs: ["update"] },
      ],
    },
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "ClusterRoleBinding",
      metadata: { name: ACCOUNT },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: ACCOUNT },
      subjects: [{ kind: "ServiceAccount", name: ACCOUNT, namespace: NAMESPACE }],
    },
    {
      apiVersion: "networking.k8s.io/v1",
      kind: "IngressClass",
      metadata: { name: ingressClass },
      spec: { controller: TRAEFIK_CONTROLLER },
    },
  ];
}

/**
 * Traefik's static configuration: the web entry point, ping on a port of its own, the Kubernetes
 * Ingress provider as the service account (the token stays in this file, mode 0600, never on a
 * command line), no dashboard and no calls home.
 */
export function traefikConfig(o: {
  port: number; pingPort: number; server: string; token: string; caFile: string; ingressClass: string;
}): unknown {
  return {
    entryPoints: {
      web: { address: `127.0.0.1:${o.port}` },
      ping: { address: `127.0.0.1:${o.pingPort}` },
    },
    ping: { entryPoint: "ping" },
    providers: {
      kubernetesIngress: {
        endpoint: o.server,
        token: o.token,
        certAuthFilePath: o.caFile,
        ingressClass: o.ingressClass,
        ingressEndpoint: { ip: "127.0.0.1" },
      },
    },
    log: { level: "INFO", noColor: true },
    global: { checkNewVersion: false, sendAnonymousUsage: false },
  };
}

async function kubectl(kubeconfig: string, args: readonly string[]): Promise<string> {
  const r = await runCommand(path.join(toolchainEnv().sandboxBinDir, "kubectl"), ["--kubeconfig", kubeconfig, ...args]);
  if (r.status !== 0) {
    throw new Error(`traefik: kubectl ${args.join(" ")} failed: ${r.stderr.trim()}`);
  }
  return r.stdout;
}

/**
 * Starts Traefik in `dir` against the cluster of `kubeconfig`. Idempotent: a Traefik a previous
 * call started there is reused while it runs.
 */
export async function startTraefik(dir: string, opts: TraefikOptions): Promise<SandboxTraefik> {
  dir = path.resolve(dir);
  const binary = toolchainPaths().traefik;
  if (!fs.existsSync(binary)) {
    throw new Error(`traefik: ${binary} is missing; run: npm run toolchain -- --only sandbox`);
  }
  const state = readState(dir);
  const existing = state.resources[STATE_KEY] as TraefikResources | undefined;
  if (existing && recordAlive(state.processes.traefik)) {
    return handle(dir, existing, state.processes.traefik.pid);
  }
  await stopProcess(dir, "traefik");
  const ingressClass = opts.ingressClass ?? "traefik";
  fs.mkdirSync(dir, { recursive: true });

  const manifests = path.join(dir, "rbac.yaml");
  fs.writeFileSync(manifests, traefikRbac(ingressClass).map((o) => YAML.stringify(o)).join("---\n"));
  await kubectl(opts.kubeconfig, ["apply", "-f", manifests]);
  const token = (await kubectl(opts.kubeconfig, ["create", "token", ACCOUNT, "-n", NAMESPACE, "--duration", "24h"])).trim();

  const cfg = YAML.parse(fs.readFileSync(opts.kubeconfig, "utf8")) as {
    clusters: { cluster: { server: string; "certificate-authority"?: string; "certificate-authority-data"?: string } }[];
  };
  const cluster = cfg.clusters[0].cluster;
  const caFile = path.join(dir, "ca.crt");
  fs.writeFileSync(caFile, cluster["certificate-authority-data"]
    ? Buffer.from(cluster["certificate-authority-data"], "base64")
    : fs.readFileSync(cluster["certificate-authority"] ?? ""));

  const res: TraefikResources = { port: opts.port ?? (await freePort()), pingPort: await freePort(), kubeconfig: opts.kubeconfig };
  updateState(dir, (s) => {
    s.resources[STATE_KEY] = res;
  });
  const configFile = path.join(dir, "traefik.yml");
  fs.writeFileSync(configFile, YAML.stringify(traefikConfig({ ...res, server: cluster.server, token, caFile, ingressClass })),
    { mode: 0o600 });
  const rec = startProcess(dir, { name: "traefik", command: binary, args: [`--configFile=${configFile}`] });
  await waitFor(async () => {
    const r = await fetch(`http://127.0.0.1:${res.pingPort}/ping`, { signal: AbortSignal.timeout(2000) });
    await r.arrayBuffer();
    return r.status === 200 && (await portOpen("127.0.0.1", res.port));
  }, { what: `traefik on 127.0.0.1:${res.port}`, timeoutMs: opts.timeoutMs ?? 60_000, pid: rec.pid, logFile: rec.logFile });
  return handle(dir, res, rec.pid);
}

function handle(dir: string, res: TraefikResources, pid: number): SandboxTraefik {
  return {
    url: `http://127.0.0.1:${res.port}`,
    port: res.port,
    pid,
    stop: () => stopTraefik(dir),
  };
}

/** Stops the Traefik `dir` holds, if any (see SandboxTraefik.stop). */
export async function stopTraefik(dir: string): Promise<void> {
  dir = path.resolve(dir);
  const res = readState(dir).resources[STATE_KEY] as TraefikResources | undefined;
  await stopProcess(dir, "traefik");
  if (res && fs.existsSync(res.kubeconfig)) {
    await kubectl(res.kubeconfig, ["delete", "clusterrolebinding,clusterrole", ACCOUNT, "--ignore-not-found", "--request-timeout=5s"])
      .catch(() => undefined);
    await kubectl(res.kubeconfig, ["delete", "serviceaccount", ACCOUNT, "-n", NAMESPACE, "--ignore-not-found", "--request-timeout=5s"])
      .catch(() => undefined);
  }
  for (const f of ["traefik.yml", "ca.crt", "rbac.yaml"]) {
    fs.rmSync(path.join(dir, f), { force: true });
  }
  updateState(dir, (s) => {
    delete s.resources[STATE_KEY];
  });
}
