import { execFile } from "child_process";
import * as fs from "fs";
import * as http from "http";
import { promisify } from "util";
import { KubeClient, kubeClient } from "./kube";

/*
 * The sandbox's stand-in for Traefik and for the kubelet of the frontend's pods. kwok simulates
 * nodes and pods without running containers, so this process reads the cluster's real Ingress,
 * Service, EndpointSlice and Deployment objects, runs each selected Deployment's image in Docker
 * (one container, the pod template's first container), and routes HTTP as the Ingresses say:
 * highest router priority first, then the longest path prefix.
 */

const run = promisify(execFile);

interface Route {
  readonly prefix: string;
  readonly priority: number;
  readonly service: string;
  readonly port: number;
}

interface Target {
  readonly host: string;
  readonly port: number;
}

type List<T> = { items: T[] };
interface IngressObject {
  metadata: { name: string; annotations?: Record<string, string> };
  status?: { loadBalancer?: { ingress?: unknown[] } };
  spec: { rules?: { http?: { paths: { path?: string; backend: { service?: { name: string; port: { number?: number } } } }[] } }[] };
}
interface ServiceObject {
  spec: { selector?: Record<string, string>; ports: { port: number; targetPort?: number | string }[] };
}
interface SliceObject {
  endpoints: { addresses: string[] }[];
  ports?: { port?: number }[];
}
interface DeploymentObject {
  metadata: { name: string };
  spec: {
    replicas?: number;
    selector: { matchLabels?: Record<string, string> };
    template: { spec: { containers: { image: string; ports?: { containerPort: number }[] }[] } };
  };
}

export interface IngressOptions {
  readonly kubeconfig: string;
  readonly namespace: string;
  readonly port: number;
  /** Environment for the docker CLI (DOCKER_HOST, DOCKER_CONFIG). */
  readonly dockerEnv: NodeJS.ProcessEnv;
  /** First host port for the stand-in pods. */
  readonly podPortBase: number;
}

export function routesOf(ingresses: IngressObject[]): Route[] {
  const routes: Route[] = [];
  for (const ing of ingresses) {
    const priority = Number(ing.metadata.annotations?.["traefik.ingress.kubernetes.io/router.priority"] ?? 0);
    for (const rule of ing.spec.rules ?? []) {
      for (const p of rule.http?.paths ?? []) {
        if (p.backend.service?.port.number) {
          routes.push({ prefix: p.path ?? "/", priority, service: p.backend.service.name, port: p.backend.service.port.number });
        }
      }
    }
  }
  return routes.sort((a, b) => b.priority - a.priority || b.prefix.length - a.prefix.length);
}

export function matchRoute(routes: readonly Route[], urlPath: string): Route | undefined {
  return routes.find((r) => urlPath === r.prefix || urlPath.startsWith(r.prefix.endsWith("/") ? r.prefix : `${r.prefix}/`) || r.prefix === "/");
}

class StandIn {
  private routes: Route[] = [];
  private readonly targets = new Map<string, Target | null>();
  private readonly pods = new Map<string, { image: string; port: number }>();
  private nextPort: number;

  constructor(
    private readonly kube: KubeClient,
    private readonly opts: IngressOptions,
  ) {
    this.nextPort = opts.podPortBase;
  }

  async sync(): Promise<void> {
    const ns = this.opts.namespace;
    const ingresses = (await this.kube.get<List<IngressObject>>(`/apis/networking.k8s.io/v1/namespaces/${ns}/ingresses`))?.items ?? [];
    const deployments = (await this.kube.get<List<DeploymentObject>>(`/apis/apps/v1/namespaces/${ns}/deployments`))?.items ?? [];
    this.routes = routesOf(ingresses);
    // Publish an address, as an ingress controller does; clients (and Pulumi) wait for it.
    for (const ing of ingresses) {
      if (!ing.status?.loadBalancer?.ingress?.length) {
        await this.kube.patch(`/apis/networking.k8s.io/v1/namespaces/${ns}/ingresses/${ing.metadata.name}/status`, {
          status: { loadBalancer: { ingress: [{ ip: "127.0.0.1", ports: [{ port: this.opts.port, protocol: "TCP" }] }] } },
        });
      }
    }
    for (const route of this.routes) {
      const svc = await this.kube.get<ServiceObject>(`/api/v1/namespaces/${ns}/services/${route.service}`);
      if (!svc) {
        this.targets.delete(route.service);
        continue;
      }
      if (svc.spec.selector) {
        const selector = svc.spec.selector;
        const d = deployments.find((x) => Object.entries(x.spec.selector.matchLabels ?? {}).every(([k, v]) => selector[k] === v));
        if (d && d.spec.replicas === 0) {
          // Scaled to zero: no pod, so the route has no server, as Traefik answers then.
          await this.removePod(d);
          this.targets.set(route.service, null);
        } else if (d) {
          this.targets.set(route.service, await this.ensurePod(d));
        }
      } else {
        const slices = (await this.kube.get<List<SliceObject>>(`/apis/discovery.k8s.io/v1/namespaces/${ns}/endpointslices?labelSelector=kubernetes.io%2Fservice-name%3D${route.service}`))?.items ?? [];
        const slice = slices.find((s) => s.endpoints.length > 0);
        if (slice) {
          const address = slice.endpoints[0].addresses[0];
          // RFC 6761: names under .localhost are loopback.
          const host = address === "localhost" || address.endsWith(".localhost") ? "127.0.0.1" : address;
          this.targets.set(route.service, { host, port: slice.ports?.[0]?.port ?? route.port });
        }
      }
    }
  }

  private podName(d: DeploymentObject): string {
    return `homelab-sandbox-${this.opts.namespace}-${d.metadata.name}`;
  }

  private async removePod(d: DeploymentObject): Promise<void> {
    const name = this.podName(d);
    if (this.pods.delete(name)) {
      await run("docker", ["rm", "-f", name], { env: this.opts.dockerEnv }).catch(() => undefined);
      log(`pod ${d.metadata.name} removed (scaled to zero)`);
    }
  }

  /** Runs the Deployment's image in Docker, replacing the container when the image changes. */
  private async ensurePod(d: DeploymentObject): Promise<Target> {
    const c = d.spec.template.spec.containers[0];
    const name = this.podName(d);
    const known = this.pods.get(name);
    if (known && known.image === c.image) {
      return { host: "127.0.0.1", port: known.port };
    }
    const port = known?.port ?? this.nextPort++;
    const containerPort = c.ports?.[0]?.containerPort ?? 80;
    await run("docker", ["rm", "-f", name], { env: this.opts.dockerEnv }).catch(() => undefined);
    // A network of its own: an engine without the default bridge still runs it.
    await run("docker", ["network", "create", "homelab-sandbox-pods"], { env: this.opts.dockerEnv }).catch(() => undefined);
    await run(
      "docker",
      ["run", "-d", "--restart", "unless-stopped", "--name", name, "--label", "homelab-sandbox=1", "--network", "homelab-sandbox-pods", "-p", `127.0.0.1:${port}:${containerPort}`, c.image],
      { env: this.opts.dockerEnv },
    );
    this.pods.set(name, { image: c.image, port });
    log(`pod ${d.metadata.name} now runs ${c.image} on 127.0.0.1:${port}`);
    return { host: "127.0.0.1", port };
  }

  handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const route = matchRoute(this.routes, new URL(req.url ?? "/", "http://x").pathname);
    const target = route ? this.targets.get(route.service) : undefined;
    if (route && target === null) {
      res.writeHead(503).end("no available server\n");
      return;
    }
    if (!route || !target) {
      res.writeHead(404).end("no route\n");
      return;
    }
    const upstream = http.request({ host: target.host, port: target.port, path: req.url, method: req.method, headers: req.headers, timeout: 10_000 }, (up) => {
      res.writeHead(up.statusCode ?? 502, up.headers);
      up.pipe(res);
    });
    upstream.on("error", (e) => {
      if (!res.headersSent) {
        res.writeHead(502).end(`upstream ${route.service}: ${e.message}\n`);
      }
    });
    req.pipe(upstream);
  }

  async removePods(): Promise<void> {
    for (const name of this.pods.keys()) {
      await run("docker", ["rm", "-f", name], { env: this.opts.dockerEnv }).catch(() => undefined);
    }
    await run("docker", ["network", "rm", "homelab-sandbox-pods"], { env: this.opts.dockerEnv }).catch(() => undefined);
  }
}

function log(line: string): void {
  process.stderr.write(`${new Date().toISOString()} ingress: ${line}\n`);
}

/** Serves until SIGTERM, then removes the containers it started. */
export async function serveIngress(opts: IngressOptions): Promise<void> {
  const standIn = new StandIn(kubeClient(opts.kubeconfig), opts);
  const server = http.createServer((req, res) => standIn.handle(req, res));
  await new Promise<void>((r) => server.listen(opts.port, "127.0.0.1", r));
  log(`listening on 127.0.0.1:${opts.port}`);
  let stopping = false;
  const loop = async (): Promise<void> => {
    while (!stopping) {
      await standIn.sync().catch((e: unknown) => log(`sync: ${(e as Error).message}`));
      await new Promise((r) => setTimeout(r, 1000));
    }
  };
  void loop();
  await new Promise<void>((resolve) => {
    process.once("SIGTERM", () => {
      stopping = true;
      server.close();
      void standIn.removePods().then(resolve);
    });
  });
}

if (require.main === module) {
  // Options come from a file (mode 0600), not argv, which every user of the host can read.
  const opts = JSON.parse(fs.readFileSync(process.argv[2] ?? "", "utf8")) as IngressOptions;
  serveIngress(opts).then(
    () => process.exit(0),
    (e: unknown) => {
      log((e as Error).message);
      process.exit(1);
    },
  );
}
