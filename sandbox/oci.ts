// OCI images put together without any engine: one layer of files (with their modes), a config
// and a manifest. They are pushed to the sandbox registry through its HTTP API or written as an
// OCI archive that containerd imports (`ctr images import`).

import * as crypto from "crypto";
import * as fs from "fs";
import * as zlib from "zlib";

/** One entry of a layer: a regular file (from a path on the host or inline), a directory or a symlink. */
export type LayerEntry =
  | { readonly path: string; readonly type: "file"; readonly mode?: number; readonly from?: string; readonly content?: string }
  | { readonly path: string; readonly type: "dir"; readonly mode?: number }
  | { readonly path: string; readonly type: "symlink"; readonly target: string };

export interface ImageSpec {
  readonly entries: readonly LayerEntry[];
  readonly entrypoint?: readonly string[];
  readonly cmd?: readonly string[];
  readonly env?: readonly string[];
  readonly user?: string;
  readonly labels?: Readonly<Record<string, string>>;
}

/** The blobs of an image and their digests. */
export interface OciImage {
  readonly layer: Buffer;
  readonly layerDigest: string;
  readonly config: Buffer;
  readonly configDigest: string;
  readonly manifest: Buffer;
  /** The manifest's digest: the image's digest in a registry. */
  readonly digest: string;
}

const MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json";

export function sha256(data: Buffer | string): string {
  return `sha256:${crypto.createHash("sha256").update(data).digest("hex")}`;
}

function header(name: string, o: { mode: number; size: number; type: string; link?: string }): Buffer {
  if (Buffer.byteLength(name) > 100) {
    throw new Error(`layer path too long for a ustar header: ${name}`);
  }
  const h = Buffer.alloc(512);
  h.write(name, 0, 100);
  h.write(o.mode.toString(8).padStart(7, "0") + "\0", 100);
  h.write("0000000\0", 108);
  h.write("0000000\0", 116);
  h.write(o.size.toString(8).padStart(11, "0") + "\0", 124);
  h.write("00000000000\0", 136);
  h.write("        ", 148);
  h.write(o.type, 156);
  if (o.link) {
    h.write(o.link, 157, 100);
  }
  h.write("ustar\0" + "00", 257);
  let sum = 0;
  for (const b of h) {
    sum += b;
  }
  h.write(sum.toString(8).padStart(6, "0") + "\0 ", 148);
  return h;
}

/** An uncompressed tar of the entries, in order (parents before children). */
export function layerTar(entries: readonly LayerEntry[]): Buffer {
  const blocks: Buffer[] = [];
  for (const e of entries) {
    const name = e.path.replace(/^\/+/, "");
    switch (e.type) {
      case "dir":
        blocks.push(header(name.endsWith("/") ? name : `${name}/`, { mode: e.mode ?? 0o755, size: 0, type: "5" }));
        break;
      case "symlink":
        blocks.push(header(name, { mode: 0o777, size: 0, type: "2", link: e.target }));
        break;
      case "file": {
        const body = e.from !== undefined ? fs.readFileSync(e.from) : Buffer.from(e.content ?? "");
        blocks.push(header(name, { mode: e.mode ?? 0o644, size: body.length, type: "0" }), body,
          Buffer.alloc((512 - (body.length % 512)) % 512));
        break;
      }
      default: {
        const never: never = e;
        throw new Error(`unknown layer entry ${JSON.stringify(never)}`);
      }
    }
  }
  blocks.push(Buffer.alloc(1024));
  return Buffer.concat(blocks);
}

/** Builds the image's layer, config and manifest. */
export function buildImage(spec: ImageSpec): OciImage {
  const tar = layerTar(spec.entries);
  const layer = zlib.gzipSync(tar, { level: 6 });
  const config = Buffer.from(JSON.stringify({
    architecture: "amd64",
    os: "linux",
    config: {
      ...(spec.entrypoint ? { Entrypoint: spec.entrypoint } : {}),
      ...(spec.cmd ? { Cmd: spec.cmd } : {}),
      Env: spec.env ?? ["PATH=/bin"],
      ...(spec.user ? { User: spec.user } : {}),
      ...(spec.labels ? { Labels: spec.labels } : {}),
    },
    rootfs: { type: "layers", diff_ids: [sha256(tar)] },
  }));
  const layerDigest = sha256(layer);
  const configDigest = sha256(config);
  const manifest = Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType: MANIFEST_TYPE,
    config: { mediaType: "application/vnd.oci.image.config.v1+json", size: config.length, digest: configDigest },
    layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", size: layer.length, digest: layerDigest }],
  }));
  return { layer, layerDigest, config, configDigest, manifest, digest: sha256(manifest) };
}

/**
 * An OCI image layout as one tar archive, the image named `name` (a full reference such as
 * `sandbox.localhost/pause:v1`), for `ctr images import`.
 */
export function ociArchive(image: OciImage, name: string): Buffer {
  const blob = (digest: string): string => `blobs/sha256/${digest.slice("sha256:".length)}`;
  const index = JSON.stringify({
    schemaVersion: 2,
    manifests: [{
      mediaType: MANIFEST_TYPE,
      digest: image.digest,
      size: image.manifest.length,
      annotations: { "io.containerd.image.name": name, "org.opencontainers.image.ref.name": name.split(":").pop() ?? "latest" },
    }],
  });
  const entries: LayerEntry[] = [
    { path: "oci-layout", type: "file", content: JSON.stringify({ imageLayoutVersion: "1.0.0" }) },
    { path: "index.json", type: "file", content: index },
    { path: "blobs", type: "dir" },
    { path: "blobs/sha256", type: "dir" },
  ];
  const blobs: Buffer[] = [image.layer, image.config, image.manifest];
  const tarBlocks: Buffer[] = [layerTar(entries).subarray(0, -1024)];
  for (const [data, digest] of blobs.map((b) => [b, sha256(b)] as const)) {
    tarBlocks.push(header(blob(digest), { mode: 0o644, size: data.length, type: "0" }), data,
      Buffer.alloc((512 - (data.length % 512)) % 512));
  }
  tarBlocks.push(Buffer.alloc(1024));
  return Buffer.concat(tarBlocks);
}

/** Where and as whom an image is pushed. */
export interface RegistryTarget {
  /** `127.0.0.1:PORT` (plain HTTP). */
  readonly host: string;
  readonly username: string;
  readonly password: string;
}

/** Pushes the image as `repository:tag` through the registry's HTTP API; returns its digest. */
export async function pushImage(registry: RegistryTarget, repository: string, tag: string, image: OciImage): Promise<string> {
  const base = `http://${registry.host}`;
  const auth = `Basic ${Buffer.from(`${registry.username}:${registry.password}`).toString("base64")}`;
  for (const [data, digest] of [[image.layer, image.layerDigest], [image.config, image.configDigest]] as const) {
    const head = await fetch(`${base}/v2/${repository}/blobs/${digest}`, { method: "HEAD", headers: { authorization: auth } });
    if (head.status === 200) {
      continue;
    }
    const start = await fetch(`${base}/v2/${repository}/blobs/uploads/`, { method: "POST", headers: { authorization: auth } });
    const location = start.headers.get("location");
    if (start.status !== 202 || !location) {
      throw new Error(`blob upload to ${registry.host}/${repository} refused: HTTP ${start.status}`);
    }
    const url = new URL(location, base);
    url.searchParams.set("digest", digest);
    const put = await fetch(url, { method: "PUT", headers: { authorization: auth, "content-type": "application/octet-stream" }, body: data });
    if (put.status !== 201) {
      throw new Error(`blob upload to ${registry.host}/${repository} failed: HTTP ${put.status}`);
    }
  }
  const res = await fetch(`${base}/v2/${repository}/manifests/${tag}`, {
    method: "PUT",
    headers: { authorization: auth, "content-type": MANIFEST_TYPE },
    body: image.manifest,
  });
  if (res.status !== 201) {
    throw new Error(`manifest push ${registry.host}/${repository}:${tag} failed: HTTP ${res.status} ${await res.text()}`);
  }
  return image.digest;
}
