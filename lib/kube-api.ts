import * as http from "http";
import * as https from "https";
import * as YAML from "yaml";

/*
 * A read-only Kubernetes API client for the program's own checks before anything is registered,
 * from the kubeconfig text the program holds (homelab:kubeconfig, a secret) rather than a file.
 * The Kubernetes provider does the real work; this only asks questions with GET. It supports what
 * a k3s kubeconfig carries (embedded CA and client certificate) and bearer tokens, nothing that
 * runs a program (exec and auth-provider plugins) or reads other files.
 */

const KUBECONFIG_KEY = "homelab:kubeconfig";
const CONTEXT_KEY = "homelab:kubeContext";

/** How long one GET may take, connection and answer included. */
export const KUBE_API_TIMEOUT_MS = 10_000;

/** Answers larger than this are refused: the lists the program reads are a few kilobytes. */
const MAX_BODY_BYTES = 8 * 1024 * 1024;

/** What kubectl offers to inline a kubeconfig's file references. */
const FLATTEN = "write it with its certificates embedded: kubectl config view --raw --flatten";

/** A kubeconfig this client cannot use; the message names the config key, never a credential. */
export class KubeconfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "KubeconfigError";
  }
}

/** No answer from the API server: no connection, a TLS failure, or none in time. */
export class KubeApiUnreachable extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "KubeApiUnreachable";
  }
}

export interface KubeResponse {
  readonly status: number;
  /** The body parsed as JSON; undefined when it is not JSON. */
  readonly body: unknown;
  /** For an error status: `HTTP 401` and the server's Status message, with the client's credentials removed. */
  readonly summary: string;
}

export interface KubeApi {
  /** The API server's origin (scheme, host and port), for messages. */
  readonly server: string;
  /** GETs `path` (`/apis/…`) on the API server. Rejects with KubeApiUnreachable when nothing answered. */
  get(path: string): Promise<KubeResponse>;
  /**
   * GETs `path` and hands each piece of a 200's body to `onText` as it arrives (a pod's log with
   * `follow`), until the server ends it or `signal` aborts (then it resolves). Another status
   * resolves with its summary. Only the wait for the answer's start is bounded.
   */
  stream(path: string, onText: (text: string) => void, signal?: AbortSignal): Promise<KubeResponse>;
}

interface Connection {
  readonly url: URL;
  readonly ca?: Buffer;
  readonly insecure: boolean;
  readonly servername?: string;
  readonly cert?: Buffer;
  readonly key?: Buffer;
  readonly token?: string;
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

/** The entry called `name` of a kubeconfig list (`clusters`, `users`, `contexts`), its inner object under `field`. */
function entry(doc: Record<string, unknown>, list: string, field: string, name: string): Record<string, unknown> | undefined {
  const items: unknown[] = Array.isArray(doc[list]) ? doc[list] : [];
  const found = items.find((i): i is Record<string, unknown> => isRecord(i) && i.name === name);
  const inner = found?.[field];
  return isRecord(inner) ? inner : undefined;
}

/** PEM material from a `…-data` field (base64 of PEM text). */
function pemData(value: unknown, what: string): Buffer {
  const bytes = typeof value === "string" ? Buffer.from(value, "base64") : Buffer.alloc(0);
  if (!bytes.toString("latin1").includes("-----BEGIN ")) {
    throw new KubeconfigError(`${KUBECONFIG_KEY}: ${what} is not base64 of a PEM block`);
  }
  return bytes;
}

/** The API server and credentials of the kubeconfig's context (`context`, else its current-context). */
function connection(kubeconfig: string, context: string | undefined): Connection {
  let doc: unknown;
  try {
    doc = YAML.parse(kubeconfig);
  } catch (e) {
    // The parser quotes the offending line, which may hold a credential: only the line number.
    const line = (e as { linePos?: { line: number }[] }).linePos?.[0]?.line;
    throw new KubeconfigError(`${KUBECONFIG_KEY}: the secret value is not YAML${line ? ` (line ${line})` : ""}`);
  }
  if (!isRecord(doc)) {
    throw new KubeconfigError(`${KUBECONFIG_KEY}: the secret value is not a kubeconfig`);
  }
  const current = doc["current-context"];
  const name = context || (typeof current === "string" && current ? current : undefined);
  if (name === undefined) {
    throw new KubeconfigError(`${KUBECONFIG_KEY}: has no current-context; name one with ${CONTEXT_KEY}`);
  }
  const ctx = entry(doc, "contexts", "context", name);
  if (!ctx) {
    throw new KubeconfigError(context ? `${CONTEXT_KEY}: ${JSON.stringify(name)} is not a context of ${KUBECONFIG_KEY}` : `${KUBECONFIG_KEY}: its current-context ${JSON.stringify(name)} is not among its contexts`);
  }
  const clusterName = typeof ctx.cluster === "string" ? ctx.cluster : "";
  const cluster = entry(doc, "clusters", "cluster", clusterName);
  if (!cluster) {
    throw new KubeconfigError(`${KUBECONFIG_KEY}: context ${JSON.stringify(name)} names cluster ${JSON.stringify(clusterName)}, which it does not hold`);
  }
  let url: URL | undefined;
  try {
    url = typeof cluster.server === "string" ? new URL(cluster.server) : undefined;
  } catch {
    url = undefined;
  }
  if (!url || !/^https?:$/.test(url.protocol)) {
    throw new KubeconfigError(`${KUBECONFIG_KEY}: cluster ${JSON.stringify(clusterName)} has no https:// (or http://) server`);
  }
  if (url.username || url.password) {
    throw new KubeconfigError(`${KUBECONFIG_KEY}: the server URL of cluster ${JSON.stringify(clusterName)} carries credentials (user:password@), which this client does not send`);
  }
  if (cluster["certificate-authority"] !== undefined && cluster["certificate-authority-data"] === undefined) {
    throw new KubeconfigError(`${KUBECONFIG_KEY}: cluster ${JSON.stringify(clusterName)} reads its CA from a file (certificate-authority), which the program does not read; ${FLATTEN}`);
  }

  const userName = typeof ctx.user === "string" ? ctx.user : "";
  const user = userName ? entry(doc, "users", "user", userName) : {};
  if (!user) {
    throw new KubeconfigError(`${KUBECONFIG_KEY}: context ${JSON.stringify(name)} names user ${JSON.stringify(userName)}, which it does not hold`);
  }
  // Plugins run programs to get credentials; this client runs nothing (the kubeconfig is config, not code to execute here).
  for (const plugin of ["exec", "auth-provider"]) {
    if (user[plugin] !== undefined) {
      throw new KubeconfigError(
        `${KUBECONFIG_KEY}: user ${JSON.stringify(userName)} authenticates through an ${plugin} plugin, which the program's own checks of the cluster do not support; ` +
          "give it a client certificate (client-certificate-data and client-key-data, as k3s writes it) or a bearer token (token)",
      );
    }
  }
  for (const file of ["client-certificate", "client-key", "tokenFile"]) {
    if (user[file] !== undefined && user[`${file}-data`] === undefined) {
      throw new KubeconfigError(`${KUBECONFIG_KEY}: user ${JSON.stringify(userName)} reads ${file} from a file, which the program does not read; ${FLATTEN}`);
    }
  }
  if (user.username !== undefined || user.password !== undefined) {
    throw new KubeconfigError(`${KUBECONFIG_KEY}: user ${JSON.stringify(userName)} uses basic auth (username/password), which this client does not support; use a client certificate or a token`);
  }
  const hasCert = user["client-certificate-data"] !== undefined;
  if (hasCert !== (user["client-key-data"] !== undefined)) {
    throw new KubeconfigError(`${KUBECONFIG_KEY}: user ${JSON.stringify(userName)} needs both client-certificate-data and client-key-data`);
  }
  const token = typeof user.token === "string" ? user.token.trim() : undefined;
  if (token !== undefined && !/^[\x21-\x7e]+$/.test(token)) {
    throw new KubeconfigError(`${KUBECONFIG_KEY}: the token of user ${JSON.stringify(userName)} holds characters a bearer token cannot`);
  }
  return {
    url,
    ca: cluster["certificate-authority-data"] === undefined ? undefined : pemData(cluster["certificate-authority-data"], `certificate-authority-data of cluster ${JSON.stringify(clusterName)}`),
    insecure: cluster["insecure-skip-tls-verify"] === true,
    servername: typeof cluster["tls-server-name"] === "string" ? cluster["tls-server-name"] : undefined,
    cert: hasCert ? pemData(user["client-certificate-data"], `client-certificate-data of user ${JSON.stringify(userName)}`) : undefined,
    key: hasCert ? pemData(user["client-key-data"], `client-key-data of user ${JSON.stringify(userName)}`) : undefined,
    token: token || undefined,
  };
}

/** The file fields of a kubeconfig and the `-data` fields that hold the same material inline. */
const FILE_FIELDS: readonly { list: "clusters" | "users"; field: string; file: string }[] = [
  { list: "clusters", field: "cluster", file: "certificate-authority" },
  { list: "users", field: "user", file: "client-certificate" },
  { list: "users", field: "user", file: "client-key" },
];

/**
 * The kubeconfig with the files it names by absolute path (CA, client certificate and key) read
 * in, as `kubectl config view --raw --flatten` writes it. For the deploy's commands, which run on
 * the machine that holds those files; the program's own checks never read files. What is not
 * YAML, not absolute or not readable is left as it is, for kubeApi to refuse by name.
 */
export function inlineKubeconfigFiles(kubeconfig: string, readFile: (file: string) => Buffer): string {
  let doc: unknown;
  try {
    doc = YAML.parse(kubeconfig);
  } catch {
    return kubeconfig;
  }
  if (!isRecord(doc)) {
    return kubeconfig;
  }
  let changed = false;
  for (const { list, field, file } of FILE_FIELDS) {
    for (const item of Array.isArray(doc[list]) ? (doc[list] as unknown[]) : []) {
      const inner = isRecord(item) ? item[field] : undefined;
      const name = isRecord(inner) ? inner[file] : undefined;
      if (!isRecord(inner) || typeof name !== "string" || !name.startsWith("/") || inner[`${file}-data`] !== undefined) {
        continue;
      }
      try {
        inner[`${file}-data`] = readFile(name).toString("base64");
        delete inner[file];
        changed = true;
      } catch {
        // Left for kubeApi to name.
      }
    }
  }
  return changed ? YAML.stringify(doc) : kubeconfig;
}

/** `HTTP <status>` and the message of the server's Status object, if it sent one. */
function summarize(status: number, body: unknown): string {
  const message = isRecord(body) && typeof body.message === "string" ? body.message.slice(0, 300) : "";
  return `HTTP ${status}${message ? `: ${message}` : ""}`;
}

/**
 * A client for the kubeconfig's context (`context`, else its current-context). Throws
 * KubeconfigError, naming homelab:kubeconfig or homelab:kubeContext, when it cannot be used.
 */
export function kubeApi(kubeconfig: string, context?: string, options: { timeoutMs?: number } = {}): KubeApi {
  const c = connection(kubeconfig, context);
  const timeoutMs = options.timeoutMs ?? KUBE_API_TIMEOUT_MS;
  const server = c.url.origin;
  const base = c.url.pathname.replace(/\/+$/, "");
  // Whatever reaches a message passes here: a server or proxy could echo the token back.
  const scrub = (text: string): string => (c.token ? text.split(c.token).join("[token]") : text);
  const headers: Record<string, string> = { accept: "application/json", "user-agent": "homelab-stack" };
  if (c.token) {
    headers.authorization = `Bearer ${c.token}`;
  }

  const target = (path: string): { url: URL; where: string; tls: https.RequestOptions; request: typeof https.request } => {
    const url = new URL(`${base}${path.startsWith("/") ? path : `/${path}`}`, server);
    return {
      url,
      where: `GET ${path.replace(/\?.*$/, "")} on ${server}`,
      tls: url.protocol === "https:" ? { ca: c.ca, cert: c.cert, key: c.key, rejectUnauthorized: !c.insecure, servername: c.servername } : {},
      request: url.protocol === "https:" ? https.request : http.request,
    };
  };
  const unreachable = (where: string, e: unknown): KubeApiUnreachable => {
    const err = e as NodeJS.ErrnoException;
    const timedOut = err.name === "AbortError" || err.name === "TimeoutError";
    const why = timedOut ? `no answer within ${timeoutMs / 1000} s` : err.code && !err.message.includes(err.code) ? `${err.code}: ${err.message}` : err.message;
    return new KubeApiUnreachable(scrub(`${where}: ${why}`));
  };

  return {
    server,
    stream(path: string, onText: (text: string) => void, signal?: AbortSignal): Promise<KubeResponse> {
      const { url, where, tls, request } = target(path);
      return new Promise<KubeResponse>((resolve, reject) => {
        if (signal?.aborted) {
          resolve({ status: 0, body: undefined, summary: "stopped" });
          return;
        }
        let answered = false;
        // Declared ahead of the callbacks that use it: a dynamic provider's closure cannot capture
        // a binding used before its declaration.
        const held: { req?: http.ClientRequest } = {};
        const started = setTimeout(() => held.req?.destroy(Object.assign(new Error("timeout"), { name: "TimeoutError" })), timeoutMs);
        const stop = (): void => {
          held.req?.destroy();
          resolve({ status: 200, body: undefined, summary: "stopped" });
        };
        signal?.addEventListener("abort", stop, { once: true });
        const done = (): void => {
          clearTimeout(started);
          signal?.removeEventListener("abort", stop);
        };
        const req = request(url, { method: "GET", headers, agent: false, ...tls }, (res) => {
          answered = true;
          clearTimeout(started);
          const status = res.statusCode ?? 0;
          const chunks: Buffer[] = [];
          res.on("data", (chunk: Buffer) => (status === 200 ? onText(chunk.toString("utf8")) : chunks.length < 64 && chunks.push(chunk)));
          res.on("error", () => undefined);
          res.on("close", () => {
            done();
            let body: unknown;
            try {
              body = status === 200 ? undefined : JSON.parse(Buffer.concat(chunks).toString("utf8"));
            } catch {
              body = undefined;
            }
            resolve({ status, body, summary: scrub(summarize(status, body)) });
          });
        });
        held.req = req;
        req.on("error", (e) => {
          done();
          if (signal?.aborted || answered) {
            resolve({ status: answered ? 200 : 0, body: undefined, summary: "stopped" });
          } else {
            reject(unreachable(where, e));
          }
        });
        req.end();
      });
    },
    get(path: string): Promise<KubeResponse> {
      const { url, where, tls, request } = target(path);
      return new Promise<KubeResponse>((resolve, reject) => {
        const fail = (e: unknown): void => reject(unreachable(where, e));
        // agent: false: one connection, closed afterwards, so nothing keeps the program's process alive.
        const req = request(url, { method: "GET", headers, agent: false, signal: AbortSignal.timeout(timeoutMs), ...tls }, (res) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on("data", (chunk: Buffer) => {
            size += chunk.length;
            if (size > MAX_BODY_BYTES) {
              req.destroy(new Error(`the answer exceeds ${MAX_BODY_BYTES} bytes`));
              return;
            }
            chunks.push(chunk);
          });
          res.on("error", fail);
          res.on("end", () => {
            const status = res.statusCode ?? 0;
            let body: unknown;
            try {
              body = JSON.parse(Buffer.concat(chunks).toString("utf8"));
            } catch {
              body = undefined;
            }
            resolve({ status, body, summary: scrub(summarize(status, body)) });
          });
        });
        req.on("error", fail);
        req.end();
      });
    },
  };
}
