import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import { BACKEND_DOCKERFILE, BACKEND_PORT, BUSYBOX, DEMO_UID, DemoImages, FRONTEND_PORT, HEADER, ImagePusher, SERVE, registryDigest } from "../sandbox/images";
import { Sandbox } from "../sandbox/sandbox";

/*
 * Workload profiles. "trivial": the sandbox's demo images, serving within a second of starting.
 * "seed-shaped": images that take as long to become ready as the seeds' settings allow for: the
 * frontend serves its page only after the readiness probe's initial delay (10 s, "for Pi
 * cold-start"), the backend answers /api/health only partway into its health check's start
 * period (40 s). Same repositories and tag format as the demo images.
 */

export interface Profile {
  readonly name: string;
  readonly description: string;
  /** [frontend tag, backend tag] of the pair released first and of the one promoted to. */
  readonly a: [string, string];
  readonly b: [string, string];
}

/** Seconds the seed-shaped images take from start to serving. */
export const SEED_SHAPED = { frontendStartSeconds: 10, backendStartSeconds: 20 } as const;

/** Starts serving after `delay` seconds, forwarding SIGTERM meanwhile too. */
const DELAYED = (delay: number, cmd: string): string => `#!/bin/sh
trap 'exit 0' TERM INT
sleep ${delay} &
wait $!
trap - TERM INT
exec ${cmd}
`;

function frontendFiles(variant: string): Record<string, string> {
  return {
    "app/start.sh": DELAYED(SEED_SHAPED.frontendStartSeconds, `/app/serve ${FRONTEND_PORT} /www`),
    "app/serve": SERVE,
    "www/index.html": `<!doctype html>\n<html><head><title>website @TAG@</title></head>\n<body><h1>website frontend ${variant} (seed-shaped)</h1><p id="version">@TAG@</p></body></html>\n`,
    "www/healthz": "ok\n",
  };
}

const FRONTEND_DOCKERFILE = `${HEADER}COPY app /app
COPY www /www
ENV APP_VERSION=@TAG@
USER ${DEMO_UID}:${DEMO_UID}
EXPOSE ${FRONTEND_PORT}
CMD ["/app/start.sh"]
`;

function backendFiles(variant: string): Record<string, string> {
  return {
    "app/start.sh": DELAYED(SEED_SHAPED.backendStartSeconds, `/app/serve "\${PORT:-${BACKEND_PORT}}" /www`),
    "app/serve": SERVE,
    "www/index.html": `backend ${variant} (seed-shaped) @TAG@\n`,
    "www/api/health": `{"status":"ok","version":"@TAG@"}\n`,
  };
}


/**
 * Builds and pushes the seed-shaped images (v1 and v2 of each) and returns the sandbox's images
 * with their digests added, and both profiles.
 */
export async function withProfiles(sb: Sandbox, dir: string): Promise<{ images: DemoImages; profiles: Profile[] }> {
  fs.mkdirSync(dir, { recursive: true });
  const busybox = fs.readFileSync(BUSYBOX);
  const pusher = new ImagePusher(sb.docker, sb.registry, dir);
  const base = Math.floor(Date.now() / 1000);
  const digests: Record<string, string> = {};
  const specs = [
    { name: "seed-frontend-v1", repository: "frontend", files: frontendFiles("v1"), dockerfile: FRONTEND_DOCKERFILE },
    { name: "seed-frontend-v2", repository: "frontend", files: frontendFiles("v2"), dockerfile: FRONTEND_DOCKERFILE },
    { name: "seed-backend-v1", repository: "backend", files: backendFiles("v1"), dockerfile: BACKEND_DOCKERFILE },
    { name: "seed-backend-v2", repository: "backend", files: backendFiles("v2"), dockerfile: BACKEND_DOCKERFILE },
  ];
  const tags: string[] = [];
  for (const [i, spec] of specs.entries()) {
    const hash = crypto.createHash("sha256").update(JSON.stringify(spec)).update(busybox).digest("hex");
    const tag = `main-${hash.slice(0, 7)}-${base + i}`;
    const files: Record<string, string | Buffer> = { busybox };
    for (const [f, c] of Object.entries(spec.files)) {
      files[f] = c.replace(/@TAG@/g, tag);
    }
    const existing = await registryDigest(sb.registry, spec.repository, tag);
    digests[tag] = existing ?? (await pusher.push({ name: spec.name, repository: spec.repository, tag, files, dockerfile: spec.dockerfile.replace(/@TAG@/g, tag), labels: { "org.opencontainers.image.version": tag } }));
    tags.push(tag);
  }
  pusher.finish();
  const images: DemoImages = { ...sb.images, digests: { ...sb.images.digests, ...digests } };
  return {
    images,
    profiles: [
      { name: "trivial", description: "the sandbox's demo images, serving within a second of starting", a: [sb.images.frontend[0], sb.images.backend.v1], b: [sb.images.frontend[1], sb.images.backend.v2] },
      {
        name: "seed-shaped",
        description: `the frontend serving ${SEED_SHAPED.frontendStartSeconds} s after it starts (the seeds' readiness initialDelaySeconds), the backend answering /api/health ${SEED_SHAPED.backendStartSeconds} s after it starts (within the seeds' 40 s start_period)`,
        a: [tags[0], tags[2]],
        b: [tags[1], tags[3]],
      },
    ],
  };
}

export function profileDir(base: string): string {
  return path.join(base, "profile-images");
}
