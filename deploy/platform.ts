import * as net from "net";
import * as YAML from "yaml";
import { StackConfig, setting } from "./release-state";

/** A part of the platform a release runs on, as people name it. */
export type PlatformPart = "Kubernetes API" | "backend VM (SSH)" | "backend VM's Docker engine" | "registry" | "ingress" | "network" | "unknown";

/** One endpoint of the platform and whether it answered. */
export interface Reach {
  readonly part: PlatformPart;
  readonly address: string;
  readonly answered: boolean;
}

/** Host and port of a URL, with the scheme's port when it names none. */
function hostPort(url: string): { host: string; port: number } | undefined {
  try {
    const u = new URL(url);
    return { host: u.hostname.replace(/^\[|\]$/g, ""), port: Number(u.port || (u.protocol === "https:" ? 443 : 80)) };
  } catch {
    return undefined;
  }
}

/** The API server of the kubeconfig's current (or named) context. */
export function apiServer(kubeconfig: string, context: string): string | undefined {
  try {
    const doc = YAML.parse(kubeconfig) as {
      "current-context"?: string;
      contexts?: { name: string; context?: { cluster?: string } }[];
      clusters?: { name: string; cluster?: { server?: string } }[];
    };
    const ctx = doc.contexts?.find((c) => c.name === (context || doc["current-context"]));
    return doc.clusters?.find((c) => c.name === ctx?.context?.cluster)?.cluster?.server;
  } catch {
    return undefined;
  }
}

/** The endpoints a homelab release needs, from the stack's config. */
export function platformEndpoints(cfg: StackConfig): { part: PlatformPart; host: string; port: number }[] {
  const out: { part: PlatformPart; host: string; port: number }[] = [];
  const server = apiServer(cfg["homelab:kubeconfig"]?.value ?? "", setting(cfg, "kubeContext"));
  const api = server ? hostPort(server) : undefined;
  if (api) {
    out.push({ part: "Kubernetes API", ...api });
  }
  const vmHost = setting(cfg, "vmHost");
  if (vmHost) {
    out.push({ part: "backend VM (SSH)", host: vmHost, port: Number(setting(cfg, "vmPort")) || 22 });
  }
  const registry = setting(cfg, "registry");
  const reg = registry ? hostPort(`${setting(cfg, "registryInsecure") === "true" ? "http" : "https"}://${registry}`) : undefined;
  if (reg) {
    out.push({ part: "registry", ...reg });
  }
  const ingress = hostPort(setting(cfg, "publicUrl"));
  if (ingress) {
    out.push({ part: "ingress", ...ingress });
  }
  return out;
}

/** Whether a TCP connection to host:port opens within the timeout. */
export function answers(host: string, port: number, timeoutMs = 3000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once("connect", () => done(true));
    socket.once("error", () => done(false));
  });
}

/**
 * Whether each part of the platform answers now: a connection to the API server, the VM's sshd,
 * the registry and the ingress. Opening a connection is all it does, so it is safe at any time.
 */
export async function checkPlatform(cfg: StackConfig): Promise<Reach[]> {
  return Promise.all(platformEndpoints(cfg).map(async (e) => ({ part: e.part, address: `${e.host}:${e.port}`, answered: await answers(e.host, e.port) })));
}
