// Demo images of the website for the sandbox, built offline FROM scratch around Debian's static
// busybox and pushed to the sandbox registry with release tags `main-<sha7>-<unix seconds>`.

import { spawnSync } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";

/** Debian's busybox-static (apt-get install busybox-static; scripts/setup-system.sh installs it). */
export const BUSYBOX = "/bin/busybox";

/** Port the demo backend listens on unless its environment sets PORT. */
export const BACKEND_PORT = 3001;
/** Port the demo frontend listens on. */
export const FRONTEND_PORT = 8080;
/** UID the demo containers run as. */
export const DEMO_UID = 10001;

/**
 * The compose health check for the demo backend images (they have no Node.js): busybox wget of
 * the health endpoint, which exits non-zero on a non-2xx answer.
 */
export function backendHealthcheck(port: number = BACKEND_PORT): string[] {
  return ["CMD", "/bin/busybox", "wget", "-q", "-O", "/dev/null", `http://127.0.0.1:${port}/api/health`];
}

export interface DemoImages {
  /** Registry host the images were pushed to. */
  readonly registry: string;
  /** Repositories, `host/name`. */
  readonly repositories: { readonly frontend: string; readonly backend: string };
  /** Frontend tags, v1 then v2. */
  readonly frontend: readonly [string, string];
  /** `flaky` answers healthy for its first seconds, then crash-loops: a failure a first probe misses. */
  readonly backend: { readonly v1: string; readonly v2: string; readonly unhealthy: string; readonly crash: string; readonly flaky: string };
  /** Frontends that fail on a real node: one never passes its readiness probe, one exits at start. */
  readonly frontendFaults: { readonly unready: string; readonly crash: string };
  /** Manifest digest (`sha256:…`) of every tag above. */
  readonly digests: Readonly<Record<string, string>>;
  /** The unix time the tags' timestamps start from (tags are base, base+1, … in the order above). */
  readonly base: number;
  /** Content hash of each image, by image name, which determines the tags. */
  readonly contentHashes: Readonly<Record<string, string>>;
}

export interface BuildDemoImagesOptions {
  /** The engine that builds and pushes (`ensureDockerEngine`). */
  readonly docker: { readonly host: string };
  /** The registry pushed to; 127.0.0.1 registries are pushed to over plain HTTP. */
  readonly registry: { readonly host: string; readonly username: string; readonly password: string };
  /** Holds build contexts, the docker CLI config (login) and `images.json`. */
  readonly dir: string;
  /** @default "frontend" */
  readonly frontendRepository?: string;
  /** @default "backend" */
  readonly backendRepository?: string;
  /** Progress lines. @default none */
  readonly log?: (line: string) => void;
}

type ImageName =
  | "frontend-v1" | "frontend-v2" | "backend-v1" | "backend-v2" | "backend-unhealthy" | "backend-crash"
  | "frontend-unready" | "frontend-crash" | "backend-flaky";
/** The images, in tag-timestamp order. */
const ORDER: readonly ImageName[] = [
  "frontend-v1", "frontend-v2", "backend-v1", "backend-v2", "backend-unhealthy", "backend-crash", "frontend-unready", "frontend-crash", "backend-flaky",
];

interface ImageSpec {
  readonly repository: "frontend" | "backend";
  /** Build context files besides busybox; `@TAG@` is replaced with the image's tag. */
  readonly files: Record<string, string>;
  readonly dockerfile: string;
}

/** Every demo image starts from nothing but Debian's static busybox. */
export const HEADER = `FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox","--install","-s","/bin"]
`;

/**
 * `serve PORT ROOT`: busybox httpd in the foreground under a shell that forwards SIGTERM, saying
 * first what it serves (a line for `homelab logs`). As PID 1, httpd alone ignores SIGTERM (no
 * handler), so every stop would wait for the kill timeout.
 */
export const SERVE = `#!/bin/sh
echo "serving $2 on port $1 as \${APP_VERSION:-an app}"
/bin/busybox httpd -f -p "$1" -h "$2" &
pid=$!
trap 'kill -TERM "$pid" 2>/dev/null; wait "$pid"; exit 0' TERM INT
wait "$pid"
`;

function frontend(variant: string, ready = true): ImageSpec {
  // Without an index page `/`, the readiness probe's path, answers 404 while the server runs.
  const page: Record<string, string> = ready
    ? { "www/index.html": `<!doctype html>\n<html><head><title>website @TAG@</title><meta name="app-version" content="@TAG@"></head>\n<body><h1>website frontend ${variant}</h1><p id="version">@TAG@</p></body></html>\n` }
    : { "www/version.txt": "@TAG@\n" };
  return {
    repository: "frontend",
    files: {
      "app/serve": SERVE,
      ...page,
      "www/healthz": "ok\n",
    },
    dockerfile: `${HEADER}COPY app /app
COPY www /www
ENV APP_VERSION=@TAG@
USER ${DEMO_UID}:${DEMO_UID}
EXPOSE ${FRONTEND_PORT}
CMD ["/app/serve","${FRONTEND_PORT}","/www"]
`,
  };
}

/** Backend start script: records the first boot in /data once, then serves /www on $PORT. */
const BACKEND_START = `#!/bin/sh
set -eu
if [ ! -f /data/first-boot.txt ]; then
  echo "first boot of /data by @TAG@ at $(date -u +%Y-%m-%dT%H:%M:%SZ)" > /data/first-boot.txt
fi
echo "backend @TAG@ listening on \${PORT:-${BACKEND_PORT}}"
exec /app/serve "\${PORT:-${BACKEND_PORT}}" /www
`;

function backend(variant: string, healthy: boolean): ImageSpec {
  const files: Record<string, string> = {
    "app/start.sh": BACKEND_START,
    "app/serve": SERVE,
    "www/index.html": `backend ${variant} @TAG@\n`,
  };
  if (healthy) {
    // A static file: busybox httpd answers 200 with it (content type application/octet-stream).
    files["www/api/health"] = `{"status":"ok","version":"@TAG@"}\n`;
  } else {
    // No health file: /api/health answers 404, so the health check fails while the server runs.
    files["www/api/version"] = `{"version":"@TAG@"}\n`;
  }
  return {
    repository: "backend",
    files,
    dockerfile: BACKEND_DOCKERFILE,
  };
}

/** The backend image: /app/start.sh as the demo user, /data its volume. */
export const BACKEND_DOCKERFILE = `${HEADER}COPY app /app
COPY www /www
RUN ["/bin/busybox","sh","-c","mkdir -p /data && chown ${DEMO_UID}:${DEMO_UID} /data"]
ENV APP_VERSION=@TAG@
USER ${DEMO_UID}:${DEMO_UID}
VOLUME /data
EXPOSE ${BACKEND_PORT}
CMD ["/app/start.sh"]
`;

/** How long the flaky backend answers before it exits. */
export const FLAKY_SECONDS = 15;

const SPECS: Record<ImageName, ImageSpec> = {
  "frontend-v1": frontend("v1"),
  "frontend-v2": frontend("v2"),
  "backend-v1": backend("v1", true),
  "backend-v2": backend("v2", true),
  "backend-unhealthy": backend("unhealthy", false),
  "frontend-unready": frontend("unready", false),
  "frontend-crash": {
    repository: "frontend",
    files: {},
    dockerfile: `${HEADER}ENV APP_VERSION=@TAG@
USER ${DEMO_UID}:${DEMO_UID}
CMD ["/bin/busybox","sh","-c","echo 'frontend @TAG@: fatal: cannot start' >&2; exit 1"]
`,
  },
  "backend-flaky": {
    repository: "backend",
    files: {
      // Once it has crashed, every restart of the same container fails again after a while: a
      // crash loop that stays down, not one that is back within a probe's interval.
      "app/start.sh": `#!/bin/sh
mark="/data/flaky-crashed-$(/bin/busybox hostname)"
if [ -f "$mark" ]; then
  echo "backend @TAG@: fatal: still cannot reach its database" >&2
  /bin/busybox sleep 5
  exit 1
fi
/app/serve "\${PORT:-${BACKEND_PORT}}" /www &
pid=$!
/bin/busybox sleep ${FLAKY_SECONDS}
/bin/busybox touch "$mark"
echo "backend @TAG@: fatal: lost its database after ${FLAKY_SECONDS}s" >&2
kill -TERM "$pid"
exit 1
`,
      "app/serve": SERVE,
      "www/api/health": `{"status":"ok","version":"@TAG@"}\n`,
    },
    dockerfile: BACKEND_DOCKERFILE,
  },
  "backend-crash": {
    repository: "backend",
    files: {},
    dockerfile: `${HEADER}ENV APP_VERSION=@TAG@
USER ${DEMO_UID}:${DEMO_UID}
CMD ["/bin/busybox","sh","-c","echo 'backend @TAG@: fatal: cannot start' >&2; exit 1"]
`,
  },
};

function sha256hex(data: Buffer | string): string {
  return crypto.createHash("sha256").update(data).digest("hex");
}

/** Hash of what makes up an image (Dockerfile, files, busybox), before the tag is rendered in. */
function contentHash(name: ImageName, busyboxHash: string): string {
  const spec = SPECS[name];
  const parts = [`name=${name}`, `busybox=${busyboxHash}`, `dockerfile=${spec.dockerfile}`];
  for (const f of Object.keys(spec.files).sort()) {
    parts.push(`file:${f}=${spec.files[f]}`);
  }
  return sha256hex(parts.join("\0"));
}

/** Runs the docker CLI; throws with its last output lines on failure. */
export function docker(args: string[], env: NodeJS.ProcessEnv, input?: string): string {
  const r = spawnSync("docker", args, { env, input, encoding: "utf8", maxBuffer: 64 * 1024 * 1024 });
  if (r.status !== 0) {
    throw new Error(`docker ${args[0]} failed (exit ${r.status}): ${(r.stderr || r.stdout || String(r.error)).trim().split("\n").slice(-15).join("\n")}`);
  }
  return r.stdout;
}

/** The digest the sandbox registry holds for `repository:tag`, or undefined when it has no such tag. */
export async function registryDigest(
  reg: BuildDemoImagesOptions["registry"],
  repository: string,
  tag: string,
): Promise<string | undefined> {
  const res = await fetch(`http://${reg.host}/v2/${repository}/manifests/${tag}`, {
    method: "HEAD",
    headers: {
      authorization: `Basic ${Buffer.from(`${reg.username}:${reg.password}`).toString("base64")}`,
      accept: "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json",
    },
    signal: AbortSignal.timeout(10_000),
  });
  if (res.status === 404) {
    return undefined;
  }
  if (res.status !== 200) {
    throw new Error(`registry ${reg.host}: HEAD ${repository}:${tag} answered ${res.status}`);
  }
  return res.headers.get("docker-content-digest") ?? undefined;
}

/** One image to build FROM scratch: its build context's files (executables under app/ and rootfs/) and Dockerfile. */
export interface ImageBuild {
  readonly name: string;
  readonly repository: string;
  readonly tag: string;
  readonly files: Readonly<Record<string, string | Buffer>>;
  readonly dockerfile: string;
  readonly labels?: Readonly<Record<string, string>>;
}

/**
 * Builds images in `<dir>/build` and pushes them to the sandbox registry, logging in once; the
 * docker CLI's config (the login) lives in `<dir>/docker-config`, not in root's home.
 */
export class ImagePusher {
  private readonly env: NodeJS.ProcessEnv;
  private loggedIn = false;

  constructor(
    docker: { readonly host: string },
    private readonly registry: BuildDemoImagesOptions["registry"],
    private readonly dir: string,
  ) {
    const dockerConfig = path.join(dir, "docker-config");
    fs.mkdirSync(dockerConfig, { recursive: true, mode: 0o700 });
    this.env = { ...process.env, DOCKER_HOST: docker.host, DOCKER_CONFIG: dockerConfig, DOCKER_BUILDKIT: "0", DOCKER_CLI_HINTS: "false" };
  }

  /** Builds and pushes one image; returns the digest the registry holds for it. */
  async push(b: ImageBuild): Promise<string> {
    const ref = `${this.registry.host}/${b.repository}:${b.tag}`;
    const ctx = path.join(this.dir, "build", b.name);
    fs.rmSync(ctx, { recursive: true, force: true });
    fs.mkdirSync(ctx, { recursive: true });
    for (const [file, content] of Object.entries(b.files)) {
      fs.mkdirSync(path.dirname(path.join(ctx, file)), { recursive: true });
      const executable = file === "busybox" || file.startsWith("app/") || file.startsWith("rootfs/");
      fs.writeFileSync(path.join(ctx, file), content, { mode: executable ? 0o755 : 0o644 });
    }
    fs.writeFileSync(path.join(ctx, "Dockerfile"), b.dockerfile);
    const labels = Object.entries({ ...b.labels, "homelab.sandbox.image": b.name }).flatMap(([k, v]) => ["--label", `${k}=${v}`]);
    docker(["build", "--quiet", ...labels, "-t", ref, ctx], this.env);
    if (!this.loggedIn) {
      docker(["login", "--username", this.registry.username, "--password-stdin", this.registry.host], this.env, this.registry.password);
      this.loggedIn = true;
    }
    docker(["push", "--quiet", ref], this.env);
    const digest = await registryDigest(this.registry, b.repository, b.tag);
    if (!digest) {
      throw new Error(`images: ${ref} was pushed but the registry does not hold it`);
    }
    fs.rmSync(ctx, { recursive: true, force: true });
    return digest;
  }

  /** Logs out and removes the build contexts. */
  finish(): void {
    if (this.loggedIn) {
      spawnSync("docker", ["logout", this.registry.host], { env: this.env });
    }
    fs.rmSync(path.join(this.dir, "build"), { recursive: true, force: true });
  }
}

/**
 * Builds the demo images (offline, FROM scratch with busybox) and pushes them, skipping any whose
 * tag the registry already holds. Tags are `main-<sha7>-<ts>`: sha7 from the image's content,
 * ts from a base time that is kept (in `<dir>/images.json`) while the contents stay the same, so
 * a second call reuses the tags; timestamps increase in the order frontend v1, v2, backend v1,
 * v2, unhealthy, crash, frontend unready, crash, backend flaky. Writes the result to `<dir>/images.json`.
 */
export async function buildDemoImages(o: BuildDemoImagesOptions): Promise<DemoImages> {
  const log = o.log ?? (() => undefined);
  const dir = path.resolve(o.dir);
  if (!fs.existsSync(BUSYBOX)) {
    throw new Error(`images: ${BUSYBOX} is missing; install Debian's busybox-static (npm run setup)`);
  }
  fs.mkdirSync(dir, { recursive: true });
  const resultFile = path.join(dir, "images.json");
  const busybox = fs.readFileSync(BUSYBOX);
  const busyboxHash = sha256hex(busybox);
  const repos = { frontend: o.frontendRepository ?? "frontend", backend: o.backendRepository ?? "backend" };

  const hashes = Object.fromEntries(ORDER.map((n) => [n, contentHash(n, busyboxHash)])) as Record<ImageName, string>;
  let previous: DemoImages | undefined;
  try {
    previous = JSON.parse(fs.readFileSync(resultFile, "utf8")) as DemoImages;
  } catch {
    previous = undefined;
  }
  const same =
    previous !== undefined &&
    previous.registry === o.registry.host &&
    ORDER.every((n) => previous.contentHashes?.[n] === hashes[n]) &&
    previous.repositories.frontend === `${o.registry.host}/${repos.frontend}` &&
    previous.repositories.backend === `${o.registry.host}/${repos.backend}`;
  const base = same ? previous!.base : Math.floor(Date.now() / 1000);
  const tags = Object.fromEntries(
    ORDER.map((n, i) => [n, `main-${hashes[n].slice(0, 7)}-${base + i}`]),
  ) as Record<ImageName, string>;

  const pusher = new ImagePusher(o.docker, o.registry, dir);

  const digests: Record<string, string> = {};
  for (const name of ORDER) {
    const spec = SPECS[name];
    const tag = tags[name];
    const repository = repos[spec.repository];
    const ref = `${o.registry.host}/${repository}:${tag}`;
    const existing = await registryDigest(o.registry, repository, tag);
    if (existing) {
      log(`images: ${name} ${ref} already in the registry`);
      digests[tag] = existing;
      continue;
    }
    const started = Date.now();
    const files: Record<string, string | Buffer> = { busybox };
    for (const [file, content] of Object.entries(spec.files)) {
      files[file] = content.replace(/@TAG@/g, tag);
    }
    digests[tag] = await pusher.push({
      name,
      repository,
      tag,
      files,
      dockerfile: spec.dockerfile.replace(/@TAG@/g, tag),
      labels: { "org.opencontainers.image.version": tag },
    });
    log(`images: built and pushed ${name} ${ref}@${digests[tag]} in ${Date.now() - started}ms`);
  }
  pusher.finish();

  const result: DemoImages = {
    registry: o.registry.host,
    repositories: { frontend: `${o.registry.host}/${repos.frontend}`, backend: `${o.registry.host}/${repos.backend}` },
    frontend: [tags["frontend-v1"], tags["frontend-v2"]],
    backend: { v1: tags["backend-v1"], v2: tags["backend-v2"], unhealthy: tags["backend-unhealthy"], crash: tags["backend-crash"], flaky: tags["backend-flaky"] },
    frontendFaults: { unready: tags["frontend-unready"], crash: tags["frontend-crash"] },
    digests,
    base,
    contentHashes: hashes,
  };
  fs.writeFileSync(resultFile, JSON.stringify(result, null, 2) + "\n");
  return result;
}

/** `host/repo:tag@sha256:…` of a demo image tag. */
export function pinnedRef(images: DemoImages, repository: "frontend" | "backend", tag: string): string {
  const digest = images.digests[tag];
  if (!digest) {
    throw new Error(`images: no digest recorded for ${tag}`);
  }
  return `${images.repositories[repository]}:${tag}@${digest}`;
}
