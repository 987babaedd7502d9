// Images of the sandbox's VPS, built offline FROM scratch and pushed to the sandbox registry: a
// Caddy sidecar around Debian's caddy binary (and the shared libraries it links), and a demo
// app that answers /api/health, writes an API key into its data volume on first start and,
// like the seed's app, updates itself from a signed webhook with the docker CLI and compose
// plugin the sandbox's host has, copied into the image.

import { spawnSync } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import { cacheDir, toolchainPaths } from "../toolchain/env";
import { BUSYBOX, HEADER, ImagePusher, SERVE, registryDigest } from "./images";
import { copyImageTag } from "./registry";
/** Port the demo app listens on inside the compose network. */
export const VPS_APP_PORT = 8000;
/** Where the demo app keeps its data, and the API key it generates there. */
export const VPS_DATA_PATH = "/data";
export const VPS_API_KEY_FILE = "/data/api_key.txt";
/** Where the demo app's webhook answers (busybox httpd runs CGI programs under /cgi-bin only). */
export const VPS_WEBHOOK_PATH = "/cgi-bin/self-update";
/** What the demo app's self-update writes, line by line, into its data volume. */
export const VPS_SELF_UPDATE_LOG = "/data/self-update.log";

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
  readonly app: { readonly v1: string; readonly v2: string; readonly v3: string; readonly unhealthy: string };
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

/** HMAC-SHA256 (RFC 2104) with busybox alone: `hmac_sha256 KEY FILE` prints the hex digest. */
const HMAC = `# sourced by the webhook
hmac_sha256() {
  k=$(printf '%s' "$1" | od -An -v -tx1 | tr -d ' \\n')
  if [ \${#k} -gt 128 ]; then k=$(printf '%s' "$1" | sha256sum | cut -c1-64); fi
  while [ \${#k} -lt 128 ]; do k="\${k}00"; done
  ipad=""; opad=""; i=0
  while [ $i -lt 128 ]; do
    b=$((0x$(printf '%s' "$k" | cut -c$((i + 1))-$((i + 2)))))
    ipad="$ipad$(printf '%02x' $((b ^ 0x36)))"
    opad="$opad$(printf '%02x' $((b ^ 0x5c)))"
    i=$((i + 2))
  done
  inner=$({ printf '%s' "$ipad" | xxd -r -p; cat "$2"; } | sha256sum | cut -c1-64)
  { printf '%s' "$opad" | xxd -r -p; printf '%s' "$inner" | xxd -r -p; } | sha256sum | cut -c1-64
}
`;

/**
 * The webhook, as the seed app's: a POST signed with the generated secret (GitHub's
 * X-Hub-Signature-256) starts the update; anything else changes nothing. The update runs in a
 * container of its own (same image, same mounts), since replacing the app's container ends every
 * process in it. Without the secret and the compose project (the program owns the version) it is off.
 */
const WEBHOOK = `#!/bin/sh
. /app/hmac.sh
reply() { printf 'Status: %s\\r\\nContent-Type: text/plain\\r\\n\\r\\n%s\\n' "$1" "$2"; exit 0; }
[ "$REQUEST_METHOD" = POST ] || reply "405 Method Not Allowed" "POST a push event"
secret="\${GITHUB_WEBHOOK_SECRET:-}"
{ [ -n "$secret" ] && [ -n "\${COMPOSE_FILE:-}" ]; } || reply "404 Not Found" "self-update is off: the program owns this app's version"
body=$(mktemp)
head -c "\${CONTENT_LENGTH:-0}" > "$body"
sig=$(hmac_sha256 "$secret" "$body")
rm -f "$body"
if [ "\${HTTP_X_HUB_SIGNATURE_256:-}" != "sha256=$sig" ]; then
  echo "app @TAG@: webhook: refused a request without a valid signature" >&2
  reply "401 Unauthorized" "signature does not match"
fi
[ "\${HTTP_X_GITHUB_EVENT:-push}" != ping ] || reply "200 OK" "pong"
self=$(hostname)
image=$(docker inspect -f '{{.Image}}' "$self") || reply "500 Internal Server Error" "cannot read this container through the Docker socket"
if ! docker run -d --rm --name "\${COMPOSE_PROJECT_NAME}-self-update" --network none --volumes-from "$self" \\
  -e COMPOSE_FILE -e COMPOSE_PROJECT_NAME -e DOCKER_AUTH_CONFIG -e SELF_CONTAINER="$self" \\
  --entrypoint /app/self-update "$image" >/dev/null 2>&1; then
  reply "409 Conflict" "an update is already running"
fi
echo "app @TAG@: webhook: update started" >&2
reply "202 Accepted" "update started"
`;

/**
 * The update, with compose on the project the program deployed (COMPOSE_FILE and the deploy
 * directory at the host's paths): pull the tag; start the new image beside the running container
 * (Caddy keeps serving through whichever answers); once it is healthy remove the old one, else
 * remove the new one and point the tag back at the image that runs, so nothing changes.
 */
const SELF_UPDATE = `#!/bin/sh
set -u
say() { echo "self-update: $*" >> ${VPS_SELF_UPDATE_LOG}; echo "self-update: $*"; }
old=$(docker inspect -f '{{.Id}}' "$SELF_CONTAINER")
svc=$(docker inspect -f '{{index .Config.Labels "com.docker.compose.service"}}' "$old")
ref=$(docker inspect -f '{{.Config.Image}}' "$old")
old_image=$(docker inspect -f '{{.Image}}' "$old")
new=""
fail() {
  say "FAILED: $1; the previous container keeps serving"
  if [ -n "$new" ]; then docker rm -f "$new" >/dev/null 2>&1; fi
  docker tag "$old_image" "$ref"
  exit 1
}
say "pulling $ref"
out=$(docker compose pull --quiet "$svc" 2>&1) || fail "pulling $ref: $(printf '%s\\n' "$out" | tail -n 1)"
new_image=$(docker image inspect -f '{{.Id}}' "$ref")
if [ "$new_image" = "$old_image" ]; then say "$ref is already running"; exit 0; fi
docker compose up -d --no-deps --no-recreate --scale "$svc=2" "$svc" >/dev/null 2>&1 || fail "starting the new container"
new=$(docker compose ps -q "$svc" | grep -v "^$old" | head -n 1)
[ -n "$new" ] || fail "the new container did not start"
end=$(( $(date +%s) + \${SELF_UPDATE_DEADLINE:-90} ))
while :; do
  state=$(docker inspect -f '{{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}' "$new")
  case "$state" in
    "running healthy"|"running none") break ;;
    *unhealthy|exited*|dead*) fail "the new container is $state" ;;
  esac
  [ "$(date +%s)" -lt "$end" ] || fail "the new container was not healthy in time"
  sleep 1
done
docker stop "$old" >/dev/null && docker rm "$old" >/dev/null
say "now running $ref ($(docker image inspect -f '{{join .RepoDigests " "}}' "$new_image"))"
`;

/** The demo app's webhook and update scripts, for their tests (`@TAG@` is the image's tag). */
export const VPS_APP_SCRIPTS = { hmac: HMAC, webhook: WEBHOOK, selfUpdate: SELF_UPDATE } as const;

function app(variant: string, healthy: boolean, tools: Record<string, Buffer>): Spec {
  const files: Record<string, string | Buffer> = {
    ...tools,
    "app/start.sh": APP_START,
    "app/serve": SERVE,
    "app/hmac.sh": HMAC,
    "app/self-update": SELF_UPDATE,
    "www/cgi-bin/self-update": WEBHOOK,
    "www/index.html": `<!doctype html>\n<html><head><title>dashboard @TAG@</title></head><body><h1>VPS app ${variant}</h1></body></html>\n`,
  };
  if (healthy) {
    files["www/api/health"] = `{"status":"ok","version":"@TAG@"}\n`;
  }
  return {
    repository: "vps-app",
    files,
    // The tools first, so every variant shares their layer. The app runs as root, as compose in
    // the container must read the project's .env (0600) and reach the engine's socket.
    dockerfile: `${HEADER}COPY rootfs/ /
COPY app /app
COPY www /www
RUN ["/bin/busybox","sh","-c","mkdir -p ${VPS_DATA_PATH} /tmp && chmod 1777 /tmp && chmod 755 /www/cgi-bin/self-update"]
EXPOSE ${VPS_APP_PORT}
CMD ["/app/start.sh"]
`,
  };
}

/**
 * The docker CLI and compose plugin the sandbox's host runs, with the libraries they link (none
 * for static builds), as files of the demo app's image: its self-update talks to the engine
 * through the mounted socket with them.
 */
function dockerTools(): Record<string, Buffer> {
  const cli = spawnSync("sh", ["-c", "command -v docker"], { encoding: "utf8" }).stdout.trim();
  const plugin = [toolchainPaths().dockerCompose, "/usr/local/lib/docker/cli-plugins/docker-compose", "/usr/libexec/docker/cli-plugins/docker-compose"].find((p) => fs.existsSync(p));
  if (!cli || !plugin) {
    throw new Error(`vps images: the docker CLI (${cli || "not on PATH"}) and the compose plugin (${plugin ?? "not found"}) are needed for the demo app's self-update (npm run setup, npm run toolchain)`);
  }
  const files: Record<string, Buffer> = {
    "rootfs/usr/local/bin/docker": fs.readFileSync(cli),
    "rootfs/usr/local/lib/docker/cli-plugins/docker-compose": fs.readFileSync(plugin),
  };
  for (const lib of [...linkedLibraries(cli), ...linkedLibraries(plugin)]) {
    files[`rootfs${lib}`] = fs.readFileSync(fs.realpathSync(lib));
  }
  return files;
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
  const tools = dockerTools();
  const v1 = await build("vps-app-v1", app("v1", true, tools), "v1");
  const v2 = await build("vps-app-v2", app("v2", true, tools), "v2");
  const v3 = await build("vps-app-v3", app("v3", true, tools), "v3");
  const unhealthy = await build("vps-app-unhealthy", app("unhealthy", false, tools), "unhealthy");
  pusher.finish();
  return {
    registry: o.registry.host,
    caddy: `${o.registry.host}/caddy:${c.tag}@${c.digest}`,
    appRepository: `${o.registry.host}/vps-app`,
    app: { v1: v1.tag, v2: v2.tag, v3: v3.tag, unhealthy: unhealthy.tag },
  };
}

/**
 * Points `toTag` of the demo app at the image `fromTag` names, in the registry alone, as a CI
 * pushing a new build under the same tag does. Returns the digest.
 */
export function tagAppImage(reg: BuildVpsImagesOptions["registry"], fromTag: string, toTag: string): Promise<string> {
  return copyImageTag(reg, "vps-app", fromTag, toTag);
}
