import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { renderDockerConfigJson } from "../lib/dockerconfig";
import { isIpv4 } from "../lib/validate";

export interface ResourceSpec {
  readonly cpu: string;
  readonly memory: string;
}

/** Type token of the component. */
export const FRONTEND_APP_TYPE = "homelab:website:FrontendApp";

export interface FrontendAppArgs {
  /** Namespace created for the frontend. */
  readonly namespace: string;
  /** Refuse to delete the namespace (it is never deleted with the stack either way). @default false */
  readonly protect?: boolean;
  /**
   * Fully pinned image (`registry/repo:tag@sha256:…`). Unset while the release names no image
   * yet: then only the namespace and the pull Secret are made, ready for the first release.
   */
  readonly image?: pulumi.Input<string>;
  /** Release tag, recorded in the `app.kubernetes.io/version` label. @default "" */
  readonly version?: pulumi.Input<string>;
  /** @default 2 */
  readonly replicas?: number;
  /**
   * New pods a rollout starts at once (maxSurge: a count or `N%` of the replicas). No old pod
   * goes before a new one is ready (maxUnavailable 0), so a larger surge shortens a rollout
   * without losing capacity, for as many extra pods while it lasts. @default "100%"
   */
  readonly rolloutSurge?: number | string;
  /** @default 8080 */
  readonly containerPort?: number;
  /** Readiness and liveness path. @default "/" */
  readonly healthPath?: string;
  /** @default { cpu: "50m", memory: "64Mi" } */
  readonly requests?: ResourceSpec;
  /** @default { cpu: "500m", memory: "256Mi" } */
  readonly limits?: ResourceSpec;
  /** Run as a non-root user; turn off only for images that need root. @default true */
  readonly runAsNonRoot?: boolean;
  /** Credentials for a private registry, stored as the pods' image pull Secret. */
  readonly pullCredentials?: { readonly server: string; readonly username: pulumi.Input<string>; readonly password: pulumi.Input<string> };
  readonly ingress: {
    /** @default "traefik" */
    readonly className?: string;
    /** Host name to answer for; every host when unset. */
    readonly host?: string;
  };
  /** The backend outside the cluster that `/api` routes to. */
  readonly backend: { readonly address: string; readonly port: number };
  /** How long the rollout may take before the update fails. @default 300 */
  readonly rolloutTimeoutSeconds?: number;
  /**
   * How long a pod that is leaving keeps serving before it is told to stop: the ingress
   * controller needs a moment to see it gone from the Service's endpoints, and until then still
   * sends it requests. A `preStop` sleep, inside a termination grace period that fits it. On a
   * busy node that takes well over 5 s, and a request sent to a pod already gone hangs until its
   * client gives up. @default 15
   */
  readonly drainSeconds?: number;
}

/** Traefik router priorities: the longer `/api` prefix must win over `/`. */
export const API_ROUTE_PRIORITY = 2000;
export const WEB_ROUTE_PRIORITY = 1000;

/**
 * The website frontend on k3s: namespace, Deployment, ClusterIP Service, a selector-less Service
 * with an EndpointSlice for the backend VM, and Traefik Ingresses sending `/api` to the VM and
 * `/` to the pods.
 */
export class FrontendApp extends pulumi.ComponentResource {
  public readonly namespace: pulumi.Output<string>;
  public readonly deploymentName: pulumi.Output<string>;
  public readonly serviceName: pulumi.Output<string>;
  public readonly image: pulumi.Output<string>;
  /** The Deployment's generation: it moves with every change to its spec, a repair included. */
  public readonly generation: pulumi.Output<string>;
  /** Label selector of this release's pods (its version's), for reading their restarts. */
  public readonly podSelector: pulumi.Output<string>;

  constructor(name: string, args: FrontendAppArgs, opts?: pulumi.ComponentResourceOptions) {
    super(FRONTEND_APP_TYPE, name, {}, opts);
    const replicas = args.replicas ?? 2;
    const rolloutSurge = args.rolloutSurge ?? "100%";
    const port = args.containerPort ?? 8080;
    const healthPath = args.healthPath ?? "/";
    const requests = args.requests ?? { cpu: "50m", memory: "64Mi" };
    const limits = args.limits ?? { cpu: "500m", memory: "256Mi" };
    const runAsNonRoot = args.runAsNonRoot ?? true;
    const className = args.ingress.className ?? "traefik";
    const timeout = args.rolloutTimeoutSeconds ?? 300;
    const drainSeconds = args.drainSeconds ?? 15;
    const backendService = "backend-service";

    const selector = { "app.kubernetes.io/name": name, "app.kubernetes.io/instance": name };
    const labels = { ...selector, "app.kubernetes.io/part-of": "website", "app.kubernetes.io/managed-by": "pulumi" };
    const podLabels = { ...labels, "app.kubernetes.io/version": args.version ?? "" };
    this.podSelector = pulumi.output(args.version ?? "").apply((v) => `app.kubernetes.io/instance=${name},app.kubernetes.io/version=${v}`);

    // Deleting a namespace deletes everything in it, so the stack never does.
    const ns = new k8s.core.v1.Namespace(
      `${name}-namespace`,
      { metadata: { name: args.namespace, labels } },
      { parent: this, protect: args.protect ?? false, retainOnDelete: true },
    );
    const namespace = ns.metadata.name;

    let pullSecretName: string | undefined;
    if (args.pullCredentials) {
      const c = args.pullCredentials;
      pullSecretName = `${name}-registry`;
      new k8s.core.v1.Secret(
        `${name}-pull-secret`,
        {
          metadata: { name: pullSecretName, namespace, labels },
          type: "kubernetes.io/dockerconfigjson",
          stringData: {
            ".dockerconfigjson": pulumi.all([c.username, c.password]).apply(([u, p]) => pulumi.secret(renderDockerConfigJson(c.server, u, p))),
          },
        },
        { parent: this },
      );
    }

    if (args.image === undefined) {
      // Nothing to run yet; the outputs name no workload.
      this.namespace = namespace;
      this.deploymentName = pulumi.output("");
      this.serviceName = pulumi.output("");
      this.image = pulumi.output("");
      this.generation = pulumi.output("");
      this.registerOutputs({ namespace: this.namespace });
      return;
    }

    const probe = (initialDelaySeconds: number, periodSeconds: number): k8s.types.input.core.v1.Probe => ({
      httpGet: { path: healthPath, port: "http" },
      initialDelaySeconds,
      periodSeconds,
      timeoutSeconds: 3,
      failureThreshold: 3,
    });

    const deployment = new k8s.apps.v1.Deployment(
      `${name}-deployment`,
      {
        metadata: {
          name,
          namespace,
          labels,
          // The provider fails the update when the rollout is not done in time (e.g. a crash loop).
          // The program owns the Deployment's spec: a hand change (`kubectl scale`) is taken back
          // by the next deploy instead of failing it with a field conflict.
          annotations: { "pulumi.com/timeoutSeconds": String(timeout), "pulumi.com/patchForce": "true" },
        },
        spec: {
          replicas,
          selector: { matchLabels: selector },
          strategy: { type: "RollingUpdate", rollingUpdate: { maxUnavailable: 0, maxSurge: rolloutSurge } },
          template: {
            metadata: { labels: podLabels },
            spec: {
              imagePullSecrets: pullSecretName ? [{ name: pullSecretName }] : undefined,
              securityContext: runAsNonRoot ? { runAsNonRoot: true, runAsUser: 10001, runAsGroup: 10001 } : undefined,
              // The drain comes out of the grace period: the app keeps Kubernetes' usual 30s to stop after it.
              terminationGracePeriodSeconds: drainSeconds + 30,
              containers: [
                {
                  name,
                  image: args.image,
                  imagePullPolicy: "IfNotPresent",
                  ports: [{ name: "http", containerPort: port }],
                  readinessProbe: probe(10, 5),
                  livenessProbe: probe(30, 10),
                  // Kubernetes' own sleep (1.30+): no shell or sleep binary needed in the image.
                  lifecycle: drainSeconds > 0 ? { preStop: { sleep: { seconds: drainSeconds } } } : undefined,
                  resources: { requests: { ...requests }, limits: { ...limits } },
                  securityContext: { allowPrivilegeEscalation: false, capabilities: { drop: ["ALL"] } },
                },
              ],
            },
          },
        },
      },
      { parent: this },
    );

    const service = new k8s.core.v1.Service(
      `${name}-service`,
      {
        metadata: { name: `${name}-service`, namespace, labels },
        spec: { type: "ClusterIP", selector, ports: [{ name: "http", port: 80, targetPort: "http" }] },
      },
      { parent: this },
    );

    // A Service without a selector plus a hand-made EndpointSlice points the ingress at the VM.
    const backend = new k8s.core.v1.Service(
      `${name}-backend-service`,
      {
        metadata: { name: backendService, namespace, labels },
        spec: { type: "ClusterIP", ports: [{ name: "http", port: args.backend.port, targetPort: args.backend.port }] },
      },
      { parent: this },
    );
    new k8s.discovery.v1.EndpointSlice(
      `${name}-backend-endpoints`,
      {
        metadata: {
          name: `${backendService}-vm`,
          namespace,
          labels: { ...labels, "kubernetes.io/service-name": backendService, "endpointslice.kubernetes.io/managed-by": "pulumi" },
        },
        addressType: isIpv4(args.backend.address) ? "IPv4" : "FQDN",
        endpoints: [{ addresses: [args.backend.address], conditions: { ready: true } }],
        ports: [{ name: "http", port: args.backend.port, protocol: "TCP" }],
      },
      { parent: this, dependsOn: [backend] },
    );

    const ingress = (suffix: string, path: string, serviceName: pulumi.Input<string>, servicePort: number, priority: number): k8s.networking.v1.Ingress =>
      new k8s.networking.v1.Ingress(
        `${name}-ingress-${suffix}`,
        {
          metadata: {
            name: `${name}-${suffix}`,
            namespace,
            labels,
            annotations: { "traefik.ingress.kubernetes.io/router.priority": String(priority) },
          },
          spec: {
            ingressClassName: className,
            rules: [
              {
                host: args.ingress.host,
                http: { paths: [{ path, pathType: "Prefix", backend: { service: { name: serviceName, port: { number: servicePort } } } }] },
              },
            ],
          },
        },
        { parent: this },
      );
    ingress("api", "/api", backend.metadata.name, args.backend.port, API_ROUTE_PRIORITY);
    ingress("web", "/", service.metadata.name, 80, WEB_ROUTE_PRIORITY);

    this.namespace = namespace;
    this.deploymentName = deployment.metadata.name;
    this.serviceName = service.metadata.name;
    this.image = pulumi.output(args.image);
    this.generation = deployment.metadata.generation.apply((g) => String(g ?? ""));
    this.registerOutputs({ namespace: this.namespace, deploymentName: this.deploymentName, serviceName: this.serviceName, image: this.image, generation: this.generation });
  }
}
