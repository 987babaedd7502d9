import { execFile } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { promisify } from "util";
import { composeToYaml, renderBackendCompose } from "../lib/compose";
import { backendHealthcheck, pinnedRef } from "../sandbox/images";
import { kubeClient } from "../sandbox/kube";
import { Sandbox } from "../sandbox/sandbox";
import { copyPullSecrets, deploymentCopy } from "./peers/deployment";
import { toolchainEnv } from "../toolchain/env";

const run = promisify(execFile);

/*
 * The floor: the same images moved by hand, without the program. The backend is a compose project
 * of its own on the sandbox's Docker engine (`docker compose up -d` to the first 200 from its
 * health endpoint); the frontend is a copy of the program's Deployment in a namespace of its own,
 * applied with kubectl until the rollout is complete (every replica updated and available).
 */

export const FLOOR_NAMESPACE = "bench-floor";

export interface Floor {
  /** Seconds to move the backend to `tag` directly. */
  backend(tag: string): Promise<number>;
  /** Seconds to move the frontend Deployment to `tag` directly. */
  frontend(tag: string): Promise<number>;
  /**
   * Seconds to move `frontends` copies of the Deployment and a compose project of `services`
   * services (as bench/scale has them) to a tag pair directly: `kubectl apply` until every rollout
   * is complete, then `docker compose up -d --wait` until every service is healthy.
   */
  scale(frontendTag: string, backendTag: string, frontends: number, services: number): Promise<number>;
}

async function poll(check: () => Promise<boolean>, what: string, timeoutMs = 120_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) {
      throw new Error(`floor: ${what} not reached within ${timeoutMs / 1000}s`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** `GET url` answers 200 with `version` in its JSON body. */
export async function servesVersion(url: string, version: string): Promise<boolean> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
    return res.status === 200 && ((await res.json()) as { version?: string }).version === version;
  } catch {
    return false;
  }
}

/** `GET url` answers 200 with `text` in its body. */
export async function servesText(url: string, text: string): Promise<boolean> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
    return res.status === 200 && (await res.text()).includes(text);
  } catch {
    return false;
  }
}

/**
 * Prepares the floor's compose project and namespace. `liveDeployment` is the program's frontend
 * Deployment as the API server returns it, so the floor applies the same spec.
 */
export async function prepareFloor(sb: Sandbox, dir: string, port: number, liveDeployment: Record<string, unknown>): Promise<Floor> {
  fs.mkdirSync(dir, { recursive: true });
  const kubectl = path.join(toolchainEnv().sandboxBinDir, "kubectl");
  const kenv = { ...process.env, KUBECONFIG: sb.kubeconfig };
  const denv = sb.docker.env({ ...process.env, DOCKER_CONFIG: path.join(dir, ".docker") });
  fs.writeFileSync(path.join(dir, ".env"), `PORT=${port}\n`, { mode: 0o600 });
  await run(kubectl, ["create", "namespace", FLOOR_NAMESPACE], { env: kenv }).catch(() => undefined);
  await copyPullSecrets(kubeClient(sb.kubeconfig), liveDeployment, FLOOR_NAMESPACE);

  const manifest = (image: string): string => JSON.stringify(deploymentCopy(liveDeployment, image, FLOOR_NAMESPACE));

  const scaleCompose = (image: string, services: number): string =>
    composeToYaml({
      name: "bench-floor-scale",
      services: Object.fromEntries(
        Array.from({ length: services }, (_, i) => [
          `svc-${i}`,
          {
            image,
            restart: "unless-stopped",
            environment: { PORT: "3001" },
            healthcheck: { test: ["CMD", "/bin/busybox", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:3001/api/health"], interval: "1s", timeout: "3s", retries: 3, start_period: "30s" },
          },
        ]),
      ),
    });

  return {
    async scale(frontendTag, backendTag, frontends, services) {
      const image = pinnedRef(sb.images, "frontend", frontendTag);
      type Doc = { metadata: { name: string }; spec: { selector: { matchLabels: Record<string, string> }; template: { metadata: { labels: Record<string, string> } } } };
      const copy = (i: number): Doc => {
        const d = JSON.parse(manifest(image)) as Doc;
        // Each copy selects its own pods.
        d.metadata.name = `scale-${i}`;
        d.spec.selector.matchLabels["app.kubernetes.io/instance"] = `scale-${i}`;
        d.spec.template.metadata.labels["app.kubernetes.io/instance"] = `scale-${i}`;
        return d;
      };
      const list = { apiVersion: "v1", kind: "List", items: Array.from({ length: frontends }, (_, i) => copy(i)) };
      const file = path.join(dir, "scale.json");
      fs.writeFileSync(file, JSON.stringify(list));
      const composeFile = path.join(dir, "scale-compose.yml");
      fs.writeFileSync(composeFile, scaleCompose(pinnedRef(sb.images, "backend", backendTag), services));
      const t0 = Date.now();
      await run(kubectl, ["apply", "-f", file], { env: kenv });
      for (let i = 0; i < frontends; i++) {
        await run(kubectl, ["rollout", "status", "-n", FLOOR_NAMESPACE, `deployment/scale-${i}`, "--timeout=120s"], { env: kenv });
      }
      await run(toolchainEnv().dockerCompose, ["--project-name", "bench-floor-scale", "--project-directory", dir, "-f", composeFile, "up", "-d", "--remove-orphans", "--wait"], { env: denv });
      return (Date.now() - t0) / 1000;
    },
    async backend(tag) {
      const file = path.join(dir, "docker-compose.yml");
      fs.writeFileSync(
        file,
        composeToYaml(
          renderBackendCompose({
            project: "bench-floor",
            image: pinnedRef(sb.images, "backend", tag),
            containerName: "bench-floor-backend",
            port,
            bindAddress: "127.0.0.1",
            dataVolume: "bench-floor-data",
            healthcheckTest: backendHealthcheck(port),
          }),
        ),
      );
      const t0 = Date.now();
      await run(toolchainEnv().dockerCompose, ["--project-name", "bench-floor", "--project-directory", dir, "-f", file, "up", "-d"], { env: denv });
      await poll(() => servesVersion(`http://127.0.0.1:${port}/api/health`, tag), `backend ${tag} answering 200`);
      return (Date.now() - t0) / 1000;
    },
    async frontend(tag) {
      const file = path.join(dir, "deployment.json");
      fs.writeFileSync(file, manifest(pinnedRef(sb.images, "frontend", tag)));
      const t0 = Date.now();
      await run(kubectl, ["apply", "-f", file], { env: kenv });
      await run(kubectl, ["rollout", "status", "-n", FLOOR_NAMESPACE, "deployment/frontend", "--timeout=120s"], { env: kenv });
      return (Date.now() - t0) / 1000;
    },
  };
}

/** Removes the floor's compose project (and its volume) and namespace. */
export async function removeFloor(sb: Sandbox, dir: string): Promise<void> {
  const kubectl = path.join(toolchainEnv().sandboxBinDir, "kubectl");
  await run(toolchainEnv().dockerCompose, ["--project-name", "bench-floor", "--project-directory", dir, "-f", path.join(dir, "docker-compose.yml"), "down", "-v"], { env: sb.docker.env() }).catch(() => undefined);
  await run(toolchainEnv().dockerCompose, ["--project-name", "bench-floor-scale", "--project-directory", dir, "-f", path.join(dir, "scale-compose.yml"), "down", "-v"], { env: sb.docker.env() }).catch(() => undefined);
  await run(kubectl, ["delete", "namespace", FLOOR_NAMESPACE, "--wait=false"], { env: { ...process.env, KUBECONFIG: sb.kubeconfig } }).catch(() => undefined);
}
