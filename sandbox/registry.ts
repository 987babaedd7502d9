// The sandbox's registry (Harbor's stand-in): Debian's docker-registry on a loopback port with
// htpasswd auth (plain HTTP, or https with a certificate it is given), storing into a directory
// so that a restart keeps the images. Images can be pushed with the docker CLI or, without any
// engine, through the registry's HTTP API.

import { spawnSync } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import * as zlib from "zlib";
import { fetch as undiciFetch } from "undici";
import { agentFor } from "../lib/registry-client";
import { freePort, portOpen, readState, recordAlive, startProcess, stopProcess, waitFor } from "./processes";

export { freePort };

export interface RunningRegistry {
  /** `127.0.0.1:PORT`. */
  readonly host: string;
  /** `https` when started with a certificate, else `http`. */
  readonly scheme: "http" | "https";
  readonly username: string;
  readonly password: string;
  /** PID of the docker-registry process. */
  readonly pid: number;
  /** Directory holding the registry's blobs and manifests. */
  readonly dataDir: string;
  /** Pushes a one-layer image through the HTTP API and returns its manifest digest. */
  push(repository: string, tag: string, files?: Record<string, string>): Promise<string>;
  /** Manifest digest of `repository:tag`, or undefined when the registry does not hold it. */
  digest(repository: string, tag: string): Promise<string | undefined>;
  /**
   * Stops the registry process and removes its config and log; the stored images (and the
   * credentials and port, so a restart serves them at the same address) stay unless
   * `keepData` is false.
   */
  stop(opts?: { keepData?: boolean }): Promise<void>;
}

interface Settings {
  port: number;
  username: string;
  password: string;
}

export interface RegistryOptions {
  /** @default "robot" */
  readonly username?: string;
  /** @default 15000 */
  readonly timeoutMs?: number;
  /**
   * Serve https with this certificate and key (PEM) instead of plain HTTP; `ca` (PEM) is what
   * this module's own requests trust. The certificate must name 127.0.0.1. @default plain HTTP
   */
  readonly tls?: { readonly certificate: string; readonly key: string; readonly ca: string };
}

/** A fetch for the registry: over https, trusting the given CA besides the system roots. */
function registryFetcher(ca: string | undefined): (url: string | URL, init?: Parameters<typeof undiciFetch>[1]) => ReturnType<typeof undiciFetch> {
  const dispatcher = ca === undefined ? undefined : agentFor(ca);
  return (url, init) => undiciFetch(url, { ...init, ...(dispatcher ? { dispatcher } : {}) });
}

const MANIFEST_TYPES = [
  "application/vnd.docker.distribution.manifest.v2+json",
  "application/vnd.oci.image.manifest.v1+json",
  "application/vnd.docker.distribution.manifest.list.v2+json",
  "application/vnd.oci.image.index.v1+json",
].join(", ");

function sha256(data: Buffer | string): string {
  return `sha256:${crypto.createHash("sha256").update(data).digest("hex")}`;
}

/** A minimal tar archive of regular files (ustar headers), enough for an image layer. */
function tar(files: Record<string, string>): Buffer {
  const blocks: Buffer[] = [];
  for (const [name, content] of Object.entries(files)) {
    const body = Buffer.from(content);
    const header = Buffer.alloc(512);
    header.write(name, 0, 100);
    header.write("0000644\0", 100);
    header.write("0000000\0", 108);
    header.write("0000000\0", 116);
    header.write(body.length.toString(8).padStart(11, "0") + "\0", 124);
    header.write("00000000000\0", 136);
    header.write("        ", 148);
    header.write("0", 156);
    header.write("ustar\0" + "00", 257);
    let sum = 0;
    for (const b of header) {
      sum += b;
    }
    header.write(sum.toString(8).padStart(6, "0") + "\0 ", 148);
    blocks.push(header, body, Buffer.alloc((512 - (body.length % 512)) % 512));
  }
  blocks.push(Buffer.alloc(1024));
  return Buffer.concat(blocks);
}


/** Whether the registry at host answers /v2/ asking for credentials (i.e. it is ours, with auth). */
async function answers(host: string, ca?: string): Promise<boolean> {
  try {
    const res = await registryFetcher(ca)(`${ca === undefined ? "http" : "https"}://${host}/v2/`, { signal: AbortSignal.timeout(2000) });
    await res.arrayBuffer();
    return res.status === 401;
  } catch {
    return false;
  }
}

/**
 * Starts Debian's docker-registry on a loopback port with htpasswd auth, storing into
 * `<dir>/data`. Idempotent: reuses the registry a previous call started in `dir` while it is
 * alive; after a stop, starts again with the same credentials, port (when still free) and images.
 */
export async function startRegistry(dir: string, opts: RegistryOptions = {}): Promise<RunningRegistry> {
  dir = path.resolve(dir);
  const dataDir = path.join(dir, "data");
  const settingsFile = path.join(dir, "registry.json");
  const htpasswdFile = path.join(dir, "htpasswd");
  const configFile = path.join(dir, "config.yml");
  const logFile = path.join(dir, "registry.log");
  fs.mkdirSync(dataDir, { recursive: true });
  const tlsFile = (name: string, pem: string): string => {
    fs.writeFileSync(path.join(dir, name), pem, { mode: 0o600 });
    return path.join(dir, name);
  };

  let settings: Settings | undefined;
  try {
    settings = JSON.parse(fs.readFileSync(settingsFile, "utf8")) as Settings;
  } catch {
    settings = undefined;
  }
  const ca = opts.tls?.ca;
  const scheme = ca === undefined ? "http" : "https";
  const call = registryFetcher(ca);
  const existing = readState(dir).processes.registry;
  let rec = recordAlive(existing) && settings && (await answers(`127.0.0.1:${settings.port}`, ca)) ? existing : undefined;

  if (!rec) {
    if (existing) {
      await stopProcess(dir, "registry");
    }
    if (!settings) {
      settings = { port: 0, username: opts.username ?? "robot", password: crypto.randomBytes(12).toString("hex") };
    }
    if (!settings.port || (await portOpen("127.0.0.1", settings.port))) {
      settings.port = await freePort();
    }
    fs.writeFileSync(settingsFile, JSON.stringify(settings, null, 2) + "\n", { mode: 0o600 });
    if (!fs.existsSync(htpasswdFile)) {
      const htpasswd = spawnSync("htpasswd", ["-Bbn", settings.username, settings.password], { encoding: "utf8" });
      if (htpasswd.status !== 0) {
        throw new Error(`htpasswd failed (is apache2-utils installed? run npm run setup): ${htpasswd.stderr}`);
      }
      fs.writeFileSync(htpasswdFile, htpasswd.stdout, { mode: 0o600 });
    }
    fs.writeFileSync(
      configFile,
      [
        "version: 0.1",
        "log: { level: warn }",
        `storage: { filesystem: { rootdirectory: ${dataDir} }, delete: { enabled: true } }`,
        opts.tls ? `http: { addr: 127.0.0.1:${settings.port}, tls: { certificate: ${tlsFile("tls.crt", opts.tls.certificate)}, key: ${tlsFile("tls.key", opts.tls.key)} } }` : `http: { addr: 127.0.0.1:${settings.port} }`,
        `auth: { htpasswd: { realm: registry, path: ${htpasswdFile} } }`,
        "",
      ].join("\n"),
    );
    rec = startProcess(dir, { name: "registry", command: "docker-registry", args: ["serve", configFile], logFile });
    const port = settings.port;
    try {
      await waitFor(() => answers(`127.0.0.1:${port}`, ca), {
        what: `registry on 127.0.0.1:${port}`,
        timeoutMs: opts.timeoutMs ?? 15_000,
        pid: rec.pid,
        logFile,
      });
    } catch (e) {
      await stopProcess(dir, "registry");
      throw e;
    }
  }
  const { username, password } = settings!;
  const host = `127.0.0.1:${settings!.port}`;
  const auth = `Basic ${Buffer.from(`${username}:${password}`).toString("base64")}`;
  const pid = rec.pid;

  async function upload(repository: string, data: Buffer): Promise<string> {
    const digest = sha256(data);
    const start = await call(`${scheme}://${host}/v2/${repository}/blobs/uploads/`, { method: "POST", headers: { authorization: auth } });
    const location = start.headers.get("location");
    if (start.status !== 202 || !location) {
      throw new Error(`blob upload to ${repository} refused: ${start.status}`);
    }
    const url = new URL(location, `${scheme}://${host}`);
    url.searchParams.set("digest", digest);
    const put = await call(url, { method: "PUT", headers: { authorization: auth, "content-type": "application/octet-stream" }, body: data });
    if (put.status !== 201) {
      throw new Error(`blob upload to ${repository} failed: ${put.status}`);
    }
    return digest;
  }


  return {
    host,
    scheme,
    username,
    password,
    pid,
    dataDir,
    /** Pushes a one-layer image and returns its manifest digest. */
    async push(repository, tag, files = { "etc/release": `${repository}:${tag}\n` }) {
      const layer = zlib.gzipSync(tar(files));
      const diffId = sha256(tar(files));
      const config = Buffer.from(
        JSON.stringify({ architecture: "amd64", os: "linux", config: { Labels: { tag } }, rootfs: { type: "layers", diff_ids: [diffId] } }),
      );
      const layerDigest = await upload(repository, layer);
      const configDigest = await upload(repository, config);
      const manifest = Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: "application/vnd.docker.distribution.manifest.v2+json",
          config: { mediaType: "application/vnd.docker.container.image.v1+json", size: config.length, digest: configDigest },
          layers: [{ mediaType: "application/vnd.docker.image.rootfs.diff.tar.gzip", size: layer.length, digest: layerDigest }],
        }),
      );
      const res = await call(`${scheme}://${host}/v2/${repository}/manifests/${tag}`, {
        method: "PUT",
        headers: { authorization: auth, "content-type": "application/vnd.docker.distribution.manifest.v2+json" },
        body: manifest,
      });
      if (res.status !== 201) {
        throw new Error(`manifest push ${repository}:${tag} failed: ${res.status} ${await res.text()}`);
      }
      return sha256(manifest);
    },
    async digest(repository, tag) {
      const res = await call(`${scheme}://${host}/v2/${repository}/manifests/${tag}`, {
        method: "HEAD",
        headers: { authorization: auth, accept: MANIFEST_TYPES },
      });
      return res.status === 200 ? (res.headers.get("docker-content-digest") ?? undefined) : undefined;
    },
    async stop(o = {}) {
      await stopProcess(dir, "registry");
      fs.rmSync(configFile, { force: true });
      if (o.keepData === false) {
        for (const f of [dataDir, settingsFile, htpasswdFile, logFile, path.join(dir, "tls.crt"), path.join(dir, "tls.key")]) {
          fs.rmSync(f, { recursive: true, force: true });
        }
      }
    },
  };
}

/**
 * Points `toTag` of `repository` at the image `fromTag` names: the manifest put again under the
 * new tag, in the registry alone. Returns the digest (the same image, so the same digest).
 */
export async function copyImageTag(
  reg: { readonly host: string; readonly username: string; readonly password: string },
  repository: string,
  fromTag: string,
  toTag: string,
): Promise<string> {
  const url = (tag: string): string => `http://${reg.host}/v2/${repository}/manifests/${tag}`;
  const authorization = `Basic ${Buffer.from(`${reg.username}:${reg.password}`).toString("base64")}`;
  const got = await fetch(url(fromTag), {
    headers: { authorization, accept: "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json" },
    signal: AbortSignal.timeout(10_000),
  });
  if (got.status !== 200) {
    throw new Error(`registry ${reg.host}: GET ${repository}:${fromTag} answered ${got.status}`);
  }
  const type = got.headers.get("content-type") ?? "application/vnd.docker.distribution.manifest.v2+json";
  const body = Buffer.from(await got.arrayBuffer());
  const put = await fetch(url(toTag), { method: "PUT", headers: { authorization, "content-type": type }, body, signal: AbortSignal.timeout(10_000) });
  if (put.status !== 201) {
    throw new Error(`registry ${reg.host}: PUT ${repository}:${toTag} answered ${put.status}`);
  }
  return `sha256:${crypto.createHash("sha256").update(body).digest("hex")}`;
}
