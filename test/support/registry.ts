import { ChildProcess, spawn, spawnSync } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as net from "net";
import * as path from "path";
import * as zlib from "zlib";

/** A free TCP port on loopback. */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}

export interface RunningRegistry {
  readonly host: string;
  readonly username: string;
  readonly password: string;
  push(repository: string, tag: string, files?: Record<string, string>): Promise<string>;
  stop(): Promise<void>;
}

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

/**
 * Starts Debian's docker-registry on a loopback port with htpasswd auth, storing into `dir`.
 * Images are pushed through the registry's HTTP API, so no Docker engine is needed.
 */
export async function startRegistry(dir: string): Promise<RunningRegistry> {
  const port = await freePort();
  const username = "robot";
  const password = crypto.randomBytes(12).toString("hex");
  fs.mkdirSync(path.join(dir, "data"), { recursive: true });
  const htpasswd = spawnSync("htpasswd", ["-Bbn", username, password], { encoding: "utf8" });
  if (htpasswd.status !== 0) {
    throw new Error(`htpasswd failed (is apache2-utils installed? run npm run setup): ${htpasswd.stderr}`);
  }
  fs.writeFileSync(path.join(dir, "htpasswd"), htpasswd.stdout);
  fs.writeFileSync(
    path.join(dir, "config.yml"),
    [
      "version: 0.1",
      "log: { level: warn }",
      `storage: { filesystem: { rootdirectory: ${path.join(dir, "data")} }, delete: { enabled: true } }`,
      `http: { addr: 127.0.0.1:${port} }`,
      `auth: { htpasswd: { realm: registry, path: ${path.join(dir, "htpasswd")} } }`,
      "",
    ].join("\n"),
  );
  const proc: ChildProcess = spawn("docker-registry", ["serve", path.join(dir, "config.yml")], {
    stdio: ["ignore", "ignore", fs.openSync(path.join(dir, "registry.log"), "a")],
  });
  const host = `127.0.0.1:${port}`;
  const auth = `Basic ${Buffer.from(`${username}:${password}`).toString("base64")}`;
  const deadline = Date.now() + 15_000;
  for (;;) {
    try {
      const res = await fetch(`http://${host}/v2/`);
      if (res.status === 401) {
        break;
      }
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline || proc.exitCode !== null) {
      proc.kill();
      throw new Error(`registry did not start; see ${path.join(dir, "registry.log")}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }

  async function upload(repository: string, data: Buffer): Promise<string> {
    const digest = sha256(data);
    const start = await fetch(`http://${host}/v2/${repository}/blobs/uploads/`, { method: "POST", headers: { authorization: auth } });
    const location = start.headers.get("location");
    if (start.status !== 202 || !location) {
      throw new Error(`blob upload to ${repository} refused: ${start.status}`);
    }
    const url = new URL(location, `http://${host}`);
    url.searchParams.set("digest", digest);
    const put = await fetch(url, { method: "PUT", headers: { authorization: auth, "content-type": "application/octet-stream" }, body: data });
    if (put.status !== 201) {
      throw new Error(`blob upload to ${repository} failed: ${put.status}`);
    }
    return digest;
  }

  return {
    host,
    username,
    password,
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
      const res = await fetch(`http://${host}/v2/${repository}/manifests/${tag}`, {
        method: "PUT",
        headers: { authorization: auth, "content-type": "application/vnd.docker.distribution.manifest.v2+json" },
        body: manifest,
      });
      if (res.status !== 201) {
        throw new Error(`manifest push ${repository}:${tag} failed: ${res.status} ${await res.text()}`);
      }
      return sha256(manifest);
    },
    async stop() {
      if (proc.exitCode === null) {
        proc.kill("SIGTERM");
        await new Promise((r) => proc.once("exit", r));
      }
    },
  };
}
