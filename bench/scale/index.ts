import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { ComposeHost } from "../../components/compose-host";
import { FrontendApp } from "../../components/frontend-app";
import { HostCheck } from "../../components/host-check";
import { SshTarget, connectionArgs } from "../../components/ssh-target";
import { ComposeFile, composeToYaml } from "../../lib/compose";
import { RemoteScript } from "../../providers/remote-script";

/*
 * The benchmark's scale program: the program's own components, with `scale:frontends` frontend
 * workloads on the cluster and `scale:services` services in one compose project on the VM, in the
 * program's order (VM check, frontends, backend). With `scale:empty` it registers only what loads
 * the same providers: the Kubernetes provider and one RemoteScript (the dynamic provider) that
 * runs `true`.
 */
const cfg = new pulumi.Config("scale");
const vm: SshTarget = {
  host: cfg.require("vmHost"),
  port: cfg.requireNumber("vmPort"),
  user: cfg.require("vmUser"),
  privateKey: cfg.requireSecret("vmPrivateKey"),
  hostKey: cfg.require("vmHostKey"),
};
const cluster = new k8s.Provider("k8s", { kubeconfig: cfg.requireSecret("kubeconfig"), enableServerSideApply: true });

/**
 * No ingress controller serves these namespaces in the sandbox, so nothing would publish the
 * Ingresses' status the provider waits for; the program's own Ingresses (namespace website) are served.
 */
function skipIngressAwait(args: pulumi.ResourceTransformationArgs): pulumi.ResourceTransformationResult | undefined {
  if (args.type !== "kubernetes:networking.k8s.io/v1:Ingress") {
    return undefined;
  }
  const props = args.props as { metadata: { annotations?: Record<string, string> } };
  return { props: { ...props, metadata: { ...props.metadata, annotations: { ...props.metadata.annotations, "pulumi.com/skipAwait": "true" } } }, opts: args.opts };
}

if (cfg.getBoolean("empty")) {
  new RemoteScript("providers-only", { connection: connectionArgs(vm), create: "true" });
} else {
  const frontends = cfg.requireNumber("frontends");
  const services = cfg.requireNumber("services");
  const frontendImage = cfg.require("frontendImage");
  const backendImage = cfg.require("backendImage");
  const registry = { server: cfg.require("registry"), username: cfg.require("registryUsername"), password: cfg.requireSecret("registryPassword") };
  const deployDir = cfg.require("deployDir");

  const check = new HostCheck("scale-vm", { connection: vm, deployDir, trigger: `${frontendImage} ${backendImage}` });
  const apps = Array.from(
    { length: frontends },
    (_, i) =>
      new FrontendApp(
        `fe-${i}`,
        {
          namespace: `scale-fe-${i}`,
          image: frontendImage,
          version: cfg.require("frontendTag"),
          replicas: 2,
          pullCredentials: registry,
          ingress: { className: "bench-scale" },
          backend: { address: "vm.localhost", port: 3001 },
          rolloutTimeoutSeconds: 120,
        },
        { providers: [cluster], dependsOn: [check], transformations: [skipIngressAwait] },
      ),
  );
  const names = Array.from({ length: services }, (_, i) => `svc-${i}`);
  const compose: ComposeFile = {
    name: "scale",
    services: Object.fromEntries(
      names.map((n) => [
        n,
        {
          image: backendImage,
          restart: "unless-stopped",
          environment: { PORT: "3001" },
          // The demo backend has no Node.js; busybox probes its health endpoint.
          healthcheck: { test: ["CMD", "/bin/busybox", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:3001/api/health"], interval: "1s", timeout: "3s", retries: 3, start_period: "30s" },
        },
      ]),
    ),
  };
  new ComposeHost(
    "scale-services",
    { connection: vm, deployDir, project: "scale", compose: composeToYaml(compose), registry, healthServices: names, deadlineSeconds: 120 },
    { dependsOn: apps },
  );
}
