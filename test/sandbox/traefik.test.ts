import { after, before, describe, it } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "fs";
import * as http from "http";
import * as os from "os";
import * as path from "path";
import * as YAML from "yaml";
import { processesMentioning } from "../support/leftovers";
import { HTTPD, PROBE_GREETING, PROBE_PORT, probeImage } from "../support/probe-image";
import { toolchainEnv } from "../../toolchain/env";
import { SandboxCluster, startCluster } from "../../sandbox/cluster";
import { SandboxNode, startNode } from "../../sandbox/node";
import { pushImage } from "../../sandbox/oci";
import { isAlive, runCommand, waitFor } from "../../sandbox/processes";
import { RunningRegistry, startRegistry } from "../../sandbox/registry";
import { SandboxTraefik, startTraefik } from "../../sandbox/traefik";

/*
 * Traefik for real, out of the cluster: its Kubernetes Ingress provider watches the sandbox's
 * API server as a service account and routes to a pod on the sandbox's real node. Needs root,
 * the Debian packages of `npm run setup` and `npm run toolchain -- --only sandbox`.
 */

const HOST = "web.sandbox.test";

let dir: string;
let cluster: SandboxCluster;
let registry: RunningRegistry;
let node: SandboxNode;
let traefik: SandboxTraefik;

async function kubectl(...args: string[]): Promise<string> {
  const r = await runCommand(path.join(toolchainEnv().sandboxBinDir, "kubectl"), ["--kubeconfig", cluster.kubeconfig, ...args]);
  if (r.status !== 0) {
    throw new Error(`kubectl ${args.join(" ")}: ${r.stderr.trim()}`);
  }
  return r.stdout;
}

async function apply(name: string, objects: unknown[]): Promise<void> {
  const file = path.join(dir, `${name}.yaml`);
  fs.writeFileSync(file, objects.map((o) => YAML.stringify(o)).join("---\n"));
  await kubectl("apply", "-f", file);
}

async function get(pathname: string, host = HOST): Promise<{ status: number; body: string }> {
  // fetch() sets Host from the URL; a raw request names the virtual host as a browser would.
  return new Promise((resolve, reject) => {
    const req = http.request({ host: "127.0.0.1", port: traefik.port, path: pathname, headers: { host }, timeout: 5000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
    });
    req.on("timeout", () => req.destroy(new Error("timed out")));
    req.on("error", reject);
    req.end();
  });
}

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "hl-traefik-"));
  cluster = await startCluster(path.join(dir, "cluster"), { name: "traefik-test", nodes: 0 });
  registry = await startRegistry(path.join(dir, "registry"));
  await pushImage(registry, "probe", "v1", probeImage());
  node = await startNode(path.join(dir, "node"), { cluster, insecureRegistries: [registry.host] });
  traefik = await startTraefik(path.join(dir, "traefik"), { kubeconfig: cluster.kubeconfig });
  await kubectl("create", "secret", "docker-registry", "sandbox-registry", `--docker-server=${registry.host}`,
    `--docker-username=${registry.username}`, `--docker-password=${registry.password}`);
});

after(async () => {
  await traefik?.stop().catch(() => undefined);
  await node?.stop().catch(() => undefined);
  await cluster?.stop().catch(() => undefined);
  await registry?.stop({ keepData: false }).catch(() => undefined);
  fs.rmSync(dir, { recursive: true, force: true });
});

describe("sandbox traefik", () => {
  it("routes an Ingress's host and path to a real pod through its Service, and publishes the Ingress's address", async () => {
    await apply("web", [
      {
        apiVersion: "apps/v1",
        kind: "Deployment",
        metadata: { name: "web" },
        spec: {
          replicas: 1,
          selector: { matchLabels: { app: "web" } },
          template: {
            metadata: { labels: { app: "web" } },
            spec: {
              terminationGracePeriodSeconds: 1,
              imagePullSecrets: [{ name: "sandbox-registry" }],
              containers: [{
                name: "main",
                image: `${registry.host}/probe:v1`,
                command: HTTPD,
                ports: [{ containerPort: PROBE_PORT }],
                readinessProbe: { httpGet: { path: "/healthz", port: PROBE_PORT }, periodSeconds: 1 },
              }],
            },
          },
        },
      },
      {
        apiVersion: "v1",
        kind: "Service",
        metadata: { name: "web" },
        spec: { selector: { app: "web" }, ports: [{ port: 80, targetPort: PROBE_PORT }] },
      },
      {
        apiVersion: "networking.k8s.io/v1",
        kind: "Ingress",
        metadata: { name: "web" },
        spec: {
          ingressClassName: "traefik",
          rules: [{ host: HOST, http: { paths: [{ path: "/", pathType: "Prefix", backend: { service: { name: "web", port: { number: 80 } } } }] } }],
        },
      },
    ]);
    await waitFor(async () => (await get("/")).status === 200, { what: `http://${HOST}/ through traefik`, timeoutMs: 90_000, intervalMs: 500 });
    assert.deepEqual(await get("/"), { status: 200, body: PROBE_GREETING });
    assert.equal((await get("/missing")).status, 404, "the pod's own 404");
    assert.equal((await get("/", "other.sandbox.test")).status, 404, "no router for another host");

    await waitFor(async () => (await kubectl("get", "ingress", "web", "-o", "jsonpath={.status.loadBalancer.ingress[0].ip}")) === "127.0.0.1",
      { what: "the Ingress's published address", timeoutMs: 30_000, intervalMs: 500 });
  });

  it("stops routing when the pods go away, and stops cleanly", async () => {
    await kubectl("scale", "deployment", "web", "--replicas", "0");
    // Traefik drops a Service without endpoints (allowEmptyServices off, as in k3s): 404 or 503.
    await waitFor(async () => [404, 503].includes((await get("/")).status),
      { what: "traefik no longer routing to the pod", timeoutMs: 60_000, intervalMs: 500 });
    const pid = traefik.pid;
    await traefik.stop();
    assert.equal(isAlive(pid), false);
    assert.deepEqual(processesMentioning(path.join(dir, "traefik")), []);
    assert.equal(await kubectl("get", "serviceaccount", "-n", "kube-system", "sandbox-traefik", "--ignore-not-found"), "");
  });
});
