import * as crypto from "crypto";
import * as tls from "tls";
import { Agent, fetch as undiciFetch } from "undici";
import { ImageRef } from "./image-ref";

export interface RegistryCredentials {
  readonly username: string;
  readonly password: string;
}

export interface RegistryAccess {
  /**
   * Hosts other than the registry's own that its token challenge may send the credentials to,
   * over https only (e.g. `auth.docker.io` for Docker Hub).
   * @default []
   */
  readonly tokenHosts?: readonly string[];
  /** PEM CA certificate(s) trusted for the registry's https, beyond the system roots. @default system roots only */
  readonly caCert?: string;
}

/** One connection pool per CA bundle: the system roots and the bundle's certificates. */
const agents = new Map<string, Agent>();

/** A dispatcher for undici's fetch that trusts `caCert` (PEM) beside the system roots; one per bundle. */
export function agentFor(caCert: string): Agent {
  let agent = agents.get(caCert);
  if (!agent) {
    agent = new Agent({ connect: { ca: [...tls.rootCertificates, caCert] } });
    agents.set(caCert, agent);
  }
  return agent;
}

/**
 * Why the credentials must not go to a token endpoint, or undefined when they may: the registry's
 * own host (over its own scheme, which may be plain HTTP on a LAN registry), or an https endpoint
 * on a host the user allowed.
 */
export function tokenEndpointProblem(realm: string, registry: string, insecure: boolean, tokenHosts: readonly string[] = []): string | undefined {
  let url: URL;
  try {
    url = new URL(realm);
  } catch {
    return `its token endpoint ${JSON.stringify(realm.slice(0, 200))} is not a URL`;
  }
  const own = url.host.toLowerCase() === registry.toLowerCase() || (url.hostname.toLowerCase() === registry.toLowerCase() && url.port === "");
  if (own && (url.protocol === "https:" || (insecure && url.protocol === "http:"))) {
    return undefined;
  }
  if (url.protocol === "https:" && tokenHosts.some((h) => h.toLowerCase() === url.host.toLowerCase() || h.toLowerCase() === url.hostname.toLowerCase())) {
    return undefined;
  }
  return (
    `its token endpoint is ${url.origin}, ${own ? "the registry's own host over plain HTTP, which the registry is not configured for" : "not the registry's own host"}: ` +
    `the credentials are not sent there (allow an https token host with homelab:registryTokenHosts)`
  );
}

/** Manifest types a registry may hold for a tag; the digest is of whichever it serves. */
const ACCEPT = [
  "application/vnd.oci.image.index.v1+json",
  "application/vnd.docker.distribution.manifest.list.v2+json",
  "application/vnd.oci.image.manifest.v1+json",
  "application/vnd.docker.distribution.manifest.v2+json",
].join(", ");

/** Parses a `WWW-Authenticate` header into its scheme and parameters. */
export function parseChallenge(header: string): { scheme: string; params: Record<string, string> } {
  const m = /^(\w+)\s*(.*)$/.exec(header.trim());
  const params: Record<string, string> = {};
  for (const p of (m?.[2] ?? "").matchAll(/(\w+)="([^"]*)"/g)) {
    params[p[1].toLowerCase()] = p[2];
  }
  return { scheme: (m?.[1] ?? "").toLowerCase(), params };
}

function basic(c: RegistryCredentials): string {
  return `Basic ${Buffer.from(`${c.username}:${c.password}`).toString("base64")}`;
}

function who(creds: RegistryCredentials | undefined): string {
  return creds ? `the credentials of ${JSON.stringify(creds.username)}` : "anonymous access";
}

type RequestInit = NonNullable<Parameters<typeof undiciFetch>[1]>;
type Response = Awaited<ReturnType<typeof undiciFetch>>;

async function request(url: string, init: RequestInit, what: string, caCert?: string): Promise<Response> {
  try {
    return await undiciFetch(url, { redirect: "follow", ...init, signal: AbortSignal.timeout(15_000), ...(caCert ? { dispatcher: agentFor(caCert) } : {}) });
  } catch (e) {
    const cause = (e as { cause?: { code?: string; message?: string } }).cause;
    const untrusted = cause?.code && /CERT|SELF_SIGNED|UNABLE_TO_(GET|VERIFY)/.test(cause.code);
    const hint = untrusted ? (caCert ? " (its certificate does not chain to homelab:registryCaCert)" : " (its certificate is not signed by a CA this machine trusts: set homelab:registryCaCert to the CA's PEM)") : "";
    throw new Error(`cannot reach the registry for ${what}: ${cause?.code ?? cause?.message ?? (e as Error).message}${hint}`, { cause: e });
  }
}

/** The registry answered, and it has no image under that tag (as opposed to refusing or failing). */
export class ImageNotFound extends Error {
  constructor(readonly image: string) {
    super(`image ${image} is not in the registry (no such tag)`);
    this.name = "ImageNotFound";
  }
}

/**
 * Resolves `registry/repository:tag` to the digest of its manifest, the way a runtime pulling
 * it would, with basic or token (Harbor, distribution) auth. Throws, naming the image, when the
 * tag is missing or the credentials are refused.
 */
export async function resolveDigest(ref: ImageRef, creds: RegistryCredentials | undefined, insecure: boolean, access: RegistryAccess = {}): Promise<string> {
  const what = `${ref.registry}/${ref.repository}:${ref.tag}`;
  const url = `${insecure ? "http" : "https"}://${ref.registry}/v2/${ref.repository}/manifests/${encodeURIComponent(ref.tag)}`;
  let res = await request(url, { method: "HEAD", headers: { accept: ACCEPT } }, what, access.caCert);
  if (res.status === 401) {
    const challenge = parseChallenge(res.headers.get("www-authenticate") ?? "");
    let authorization: string;
    let basicAuth = false;
    if (challenge.scheme === "bearer" && challenge.params.realm) {
      const refused = creds ? tokenEndpointProblem(challenge.params.realm, ref.registry, insecure, access.tokenHosts) : undefined;
      if (refused) {
        throw new Error(`registry ${ref.registry} asks for a token for ${what}, and ${refused}`);
      }
      const tokenUrl = new URL(challenge.params.realm);
      if (challenge.params.service) {
        tokenUrl.searchParams.set("service", challenge.params.service);
      }
      tokenUrl.searchParams.set("scope", challenge.params.scope ?? `repository:${ref.repository}:pull`);
      // Without credentials the token is anonymous, as for a public image.
      // A redirect would carry the credentials to wherever it points: refused with them.
      const t = await request(tokenUrl.toString(), { headers: creds ? { authorization: basic(creds) } : {}, redirect: creds ? "error" : "follow" }, what, access.caCert);
      if (!t.ok) {
        throw new Error(`registry ${ref.registry} refused ${who(creds)} for ${what} (token endpoint answered ${t.status})`);
      }
      const body = (await t.json()) as { token?: string; access_token?: string };
      authorization = `Bearer ${body.token ?? body.access_token ?? ""}`;
    } else if (creds) {
      authorization = basic(creds);
      basicAuth = true;
    } else {
      throw new Error(`registry ${ref.registry} wants credentials for ${what}, and none are set`);
    }
    // Basic credentials stay on the registry's own URL, never following a redirect elsewhere.
    const redirect = basicAuth ? "error" : "follow";
    res = await request(url, { method: "HEAD", headers: { accept: ACCEPT, authorization }, redirect }, what, access.caCert);
    if (res.status === 401 || res.status === 403) {
      throw new Error(`registry ${ref.registry} refused ${who(creds)} for ${what}`);
    }
    if (res.ok && !res.headers.get("docker-content-digest")) {
      // Some registries omit the digest on HEAD: hash the manifest itself.
      const body = Buffer.from(await (await request(url, { headers: { accept: ACCEPT, authorization }, redirect }, what, access.caCert)).arrayBuffer());
      return `sha256:${crypto.createHash("sha256").update(body).digest("hex")}`;
    }
  }
  if (res.status === 404) {
    throw new ImageNotFound(what);
  }
  if (!res.ok) {
    throw new Error(`registry ${ref.registry} answered ${res.status} for ${what}`);
  }
  const digest = res.headers.get("docker-content-digest");
  if (!digest || !/^sha256:[a-f0-9]{64}$/.test(digest)) {
    throw new Error(`registry ${ref.registry} gave no usable digest for ${what}`);
  }
  return digest;
}
