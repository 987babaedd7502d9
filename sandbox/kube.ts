import * as fs from "fs";
import * as http from "http";
import * as https from "https";
import * as YAML from "yaml";

/** Just enough of a Kubernetes API client for the sandbox: authenticated GETs from a kubeconfig. */
export interface KubeClient {
  get<T>(path: string): Promise<T | undefined>;
  /** A JSON merge patch. */
  patch(path: string, body: unknown): Promise<void>;
  /** Creates the object at `path` (a collection). */
  post(path: string, body: unknown): Promise<void>;
}

interface KubeconfigFile {
  "current-context"?: string;
  contexts?: { name: string; context: { cluster: string; user: string } }[];
  clusters?: { name: string; cluster: Record<string, string | boolean> }[];
  users?: { name: string; user: Record<string, string> }[];
}

function material(entry: Record<string, string | boolean>, key: string): Buffer | undefined {
  const data = entry[`${key}-data`];
  if (typeof data === "string") {
    return Buffer.from(data, "base64");
  }
  const file = entry[key];
  return typeof file === "string" ? fs.readFileSync(file) : undefined;
}

export function kubeClient(kubeconfigPath: string): KubeClient {
  const cfg = YAML.parse(fs.readFileSync(kubeconfigPath, "utf8")) as KubeconfigFile;
  const ctx = cfg.contexts?.find((c) => c.name === cfg["current-context"])?.context;
  const cluster = cfg.clusters?.find((c) => c.name === ctx?.cluster)?.cluster;
  const user = cfg.users?.find((u) => u.name === ctx?.user)?.user ?? {};
  if (!cluster || typeof cluster.server !== "string") {
    throw new Error(`${kubeconfigPath}: no cluster for the current context`);
  }
  const server = cluster.server;
  const agent = server.startsWith("https:")
    ? new https.Agent({
        ca: material(cluster, "certificate-authority"),
        cert: material(user, "client-certificate"),
        key: material(user, "client-key"),
        rejectUnauthorized: cluster["insecure-skip-tls-verify"] !== true,
      })
    : undefined;
  const headers: Record<string, string> = user.token ? { authorization: `Bearer ${user.token}` } : {};
  const call = <T>(method: string, path: string, body?: unknown): Promise<T | undefined> =>
      new Promise((resolve, reject) => {
        const url = new URL(path, server);
        const request = url.protocol === "https:" ? https.request : http.request;
        const extra = body === undefined ? {} : { "content-type": method === "PATCH" ? "application/merge-patch+json" : "application/json" };
        const req = request(url, { method, agent, headers: { ...headers, ...extra }, timeout: 5000 }, (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("end", () => {
            if (res.statusCode === 404) {
              resolve(undefined);
            } else if ((res.statusCode ?? 500) >= 300) {
              reject(new Error(`${method} ${path}: ${res.statusCode} ${Buffer.concat(chunks).toString().slice(0, 200)}`));
            } else {
              resolve(JSON.parse(Buffer.concat(chunks).toString()) as T);
            }
          });
        });
        req.on("timeout", () => req.destroy(new Error(`${method} ${path}: timed out`)));
        req.on("error", reject);
        req.end(body === undefined ? undefined : JSON.stringify(body));
      });
  return {
    get: <T>(path: string) => call<T>("GET", path),
    patch: async (path: string, body: unknown) => {
      await call("PATCH", path, body);
    },
    post: async (path: string, body: unknown) => {
      await call("POST", path, body);
    },
  };
}
