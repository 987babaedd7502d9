// Images of the sandbox's VPS, built offline FROM scratch and pushed to the sandbox registry: a
// Caddy sidecar around Debian's caddy binary (and the shared libraries it links), and a demo
// app that answers /api/health and writes an API key into its data volume on first start.

import { spawnSync } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import { cacheDir } from "../toolchain/env";
import { BUSYBOX, DEMO_UID, HEADER, ImagePusher, SERVE, registryDigest } from "./images";
/** Port the demo app listens on inside the compose network. */
export const VPS_APP_PORT = 8000;
/** Where the demo app keeps its data, and the API key it generates there. */
export const VPS_DATA_PATH = "/data";
export const VPS_API_KEY_FILE = "/data/api_key.txt";

/** The compose health check for the demo app: busybox wget of its health endpoint. */
export function vpsAppHealthcheck(): string[] {
  return ["CMD", "/bin/busybox", "wget", "-q", "-O", "/dev/null", `http://127.0.0.1:${VPS_APP_PORT}/api/health`];
}

export interface VpsImages {
  readonly registry: string;
  /** `host/caddy:tag@sha256:…`, pinned. */
  readonly caddy: string;
  /** `host/vps-app` */
  readonly appRepository: string;
  /** Tags of the demo app. */
  readonly app: { readonly v1: string; readonly v2: string; readonly unhealthy: string };
}

interface Spec {
  readonly repository: string;
  /** Path in the build context → content; `@TAG@` in text files becomes the tag. */
  readonly files: Record<string, string | Buffer>;
  readonly dockerfile: string;
}

/** Start script: an API key generated once into the data volume (never printed), then the server. */
const APP_START = `#!/bin/sh
set -eu
umask 077
if [ ! -s ${VPS_API_KEY_FILE} ]; then
  od -An -tx1 -N24 /dev/urandom | tr -d ' \\n' > ${VPS_API_KEY_FILE}.tmp
  mv ${VPS_API_KEY_FILE}.tmp ${VPS_API_KEY_FILE}
  echo "app @TAG@: generated an API key in ${VPS_API_KEY_FILE}"
fi
if [ -n "\${GITHUB_WEBHOOK_SECRET:-}" ]; then echo "app @TAG@: webhook secret set (\${#GITHUB_WEBHOOK_SECRET} characters)"; fi
echo "app @TAG@ listening on ${VPS_APP_PORT}"
exec /app/serve ${VPS_APP_PORT} /www
`;

function app(variant: string, healthy: boolean): Spec {
  const files: Record<string, string> = {
    "app/start.sh": APP_START,
    "app/serve": SERVE,
    "www/index.html": `<!doctype html>\n<html><head><title>dashboard @TAG@</title></head><body><h1>VPS app ${variant}</h1></body></html>\n`,
  };
  if (healthy) {
    files["www/api/health"] = `{"status":"ok","version":"@TAG@"}\n`;
  }
  return {
    repository: "vps-app",
    files,
    dockerfile: `${HEADER}COPY app /app
COPY www /www
RUN ["/bin/busybox","sh","-c","mkdir -p ${VPS_DATA_PATH} && chown ${DEMO_UID}:${DEMO_UID} ${VPS_DATA_PATH}"]
USER ${DEMO_UID}:${DEMO_UID}
EXPOSE ${VPS_APP_PORT}
CMD ["/app/start.sh"]
`,
  };
}

/** The shared libraries a binary links, by the path the loader looks for them at. */
function linkedLibraries(binary: string): string[] {
  const r = spawnSync("ldd", [binary], { encoding: "utf8" });
  if (r.status !== 0) {
    return [];
  }
  return [...r.stdout.matchAll(/(\/\S+\.so[.\d]*)/g)].map((m) => m[1]);
}

/**
 * Debian's caddy binary, unpacked from the package into the cache rather than installed: the
 * package would also enable a system Caddy service on port 80.
 */
export function ensureCaddy(log: (line: string) => void = () => undefined): string {
  const root = path.join(cacheDir(), "bin", "caddy-deb");
  const binary = path.join(root, "usr", "bin", "caddy");
  if (fs.existsSync(binary)) {
    return binary;
  }
  const tmp = fs.mkdtempSync(path.join(cacheDir(), "caddy-download-"));
  try {
    log("vps images: fetching Debian's caddy package");
    let r = spawnSync("apt-get", ["download", "caddy"], { cwd: tmp, encoding: "utf8" });
    if (r.status !== 0 && process.getuid?.() === 0) {
      // No package lists yet on a fresh machine.
      spawnSync("apt-get", ["update", "-qq"], { encoding: "utf8" });
      r = spawnSync("apt-get", ["download", "caddy"], { cwd: tmp, encoding: "utf8" });
    }
    const deb = fs.readdirSync(tmp).find((f) => f.endsWith(".deb"));
    if (r.status !== 0 || !deb) {
      throw new Error(`vps images: apt-get download caddy failed: ${(r.stderr || r.stdout).trim()} (run apt-get update first)`);
    }
    const unpacked = path.join(tmp, "root");
    const x = spawnSync("dpkg-deb", ["-x", path.join(tmp, deb), unpacked], { encoding: "utf8" });
    if (x.status !== 0) {
      throw new Error(`vps images: dpkg-deb -x ${deb} failed: ${x.stderr.trim()}`);
    }
    fs.rmSync(root, { recursive: true, force: true });
    fs.renameSync(unpacked, root);
    return binary;
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

function caddy(binary: string): Spec {
  const files: Record<string, Buffer> = { "rootfs/usr/bin/caddy": fs.readFileSync(binary) };
  for (const lib of linkedLibraries(binary)) {
    files[`rootfs${lib}`] = fs.readFileSync(fs.realpathSync(lib));
  }
  return {
    repository: "caddy",
    files,
    // As the official image: config and data (certificates, the local CA) under /config and /data.
    dockerfile: `${HEADER}COPY rootfs/ /
RUN ["/bin/busybox","sh","-c","mkdir -p /config /data /etc/caddy /root /tmp && chmod 1777 /tmp"]
ENV XDG_CONFIG_HOME=/config XDG_DATA_HOME=/data HOME=/root
EXPOSE 80 443
CMD ["/usr/bin/caddy","run","--config","/etc/caddy/Caddyfile","--adapter","caddyfile"]
`,
  };
}

function contentHash(spec: Spec, busybox: Buffer): string {
  const h = crypto.createHash("sha256").update(busybox).update(spec.dockerfile);
  for (const f of Object.keys(spec.files).sort()) {
    h.update(`\0${f}\0`).update(spec.files[f]);
  }
  return h.digest("hex");
}

export interface BuildVpsImagesOptions {
  readonly docker: { readonly host: string };
  readonly registry: { readonly host: string; readonly username: string; readonly password: string };
  /** Build contexts and the docker CLI's config (login). */
  readonly dir: string;
  readonly log?: (line: string) => void;
}

/**
 * Builds and pushes the VPS images, skipping those the registry already holds: tags are derived
 * from the images' contents, so an unchanged image is never rebuilt.
 */
export async function buildVpsImages(o: BuildVpsImagesOptions): Promise<VpsImages> {
  const log = o.log ?? (() => undefined);
  if (!fs.existsSync(BUSYBOX)) {
    throw new Error(`vps images: ${BUSYBOX} is missing; install Debian's busybox-static (npm run setup)`);
  }
  const caddyBinary = ensureCaddy(log);
  const pusher = new ImagePusher(o.docker, o.registry, path.resolve(o.dir));
  const busybox = fs.readFileSync(BUSYBOX);

  const build = async (name: string, spec: Spec, tagPrefix: string): Promise<{ tag: string; digest: string }> => {
    const tag = `${tagPrefix}-${contentHash(spec, busybox).slice(0, 12)}`;
    const ref = `${o.registry.host}/${spec.repository}:${tag}`;
    const existing = await registryDigest(o.registry, spec.repository, tag);
    if (existing) {
      log(`images: ${name} ${ref} already in the registry`);
      return { tag, digest: existing };
    }
    const started = Date.now();
    const files: Record<string, string | Buffer> = { busybox };
    for (const [file, content] of Object.entries(spec.files)) {
      files[file] = typeof content === "string" ? content.replace(/@TAG@/g, tag) : content;
    }
    const digest = await pusher.push({ name, repository: spec.repository, tag, files, dockerfile: spec.dockerfile });
    log(`images: built and pushed ${name} ${ref}@${digest} in ${Date.now() - started}ms`);
    return { tag, digest };
  };

  const version = spawnSync(caddyBinary, ["version"], { encoding: "utf8" }).stdout.trim().split(/\s+/)[0].replace(/^v/, "") || "2";
  const c = await build("caddy", caddy(caddyBinary), version);
  const v1 = await build("vps-app-v1", app("v1", true), "v1");
  const v2 = await build("vps-app-v2", app("v2", true), "v2");
  const unhealthy = await build("vps-app-unhealthy", app("unhealthy", false), "unhealthy");
  pusher.finish();
  return {
    registry: o.registry.host,
    caddy: `${o.registry.host}/caddy:${c.tag}@${c.digest}`,
    appRepository: `${o.registry.host}/vps-app`,
    app: { v1: v1.tag, v2: v2.tag, unhealthy: unhealthy.tag },
  };
}
