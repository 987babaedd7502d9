import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { ComposeHost } from "../components/compose-host";
import { FluxBootstrap } from "../components/flux-bootstrap";
import { FrontendApp } from "../components/frontend-app";
import { HealthGate } from "../components/health-gate";
import { HostCheck } from "../components/host-check";
import { ImageAutomation } from "../components/image-automation";
import { LedgerEntry, PromotedRelease, ReleaseRecord } from "../components/release-record";
import { SshTarget } from "../components/ssh-target";
import { composeToYaml, renderBackendCompose } from "../lib/compose";
import { formatImageRef } from "../lib/image-ref";
import { RELEASE_PARTS } from "../lib/release";
import { ProbeOptions, ProbeTarget } from "../lib/probe";
import { RestartSource } from "../lib/restarts";
import { HomelabConfig, ReleaseResolution } from "./config";
import { waitingLine } from "./first-release";
import { PART } from "./names";

export interface HomelabOutputs {
  readonly frontendUrl: pulumi.Output<string>;
  readonly apiUrl: pulumi.Output<string>;
  /** The images of the release file the registry does not hold yet; set only while nothing can be promoted. */
  readonly waitingForImages?: pulumi.Output<string[]>;
  readonly frontendImage?: pulumi.Output<string>;
  readonly backendImage?: pulumi.Output<string>;
  readonly release?: pulumi.Output<PromotedRelease>;
  readonly previousRelease?: pulumi.Output<PromotedRelease | null>;
  readonly promotedAt?: pulumi.Output<string>;
  readonly ledger?: pulumi.Output<LedgerEntry[]>;
  readonly gates?: pulumi.Output<{ frontend: { checkedAt: string; elapsedMs: number }; backend: { checkedAt: string; elapsedMs: number } }>;
  readonly imageAutomationExclusions: pulumi.Output<Record<string, string[]>>;
}

/**
 * The homelab release, in promotion order: images resolved in the registry, Flux and its image
 * automation, a check that the backend VM is ready, the frontend, the frontend gate, the backend on
 * the VM, the backend gate, and finally the record of the promoted pair. Each stage depends on the
 * one before, so a failed gate stops everything after it.
 *
 * While the release file names images the registry does not hold yet (a new homelab, before image
 * automation has committed its first build), only what needs no image is installed: Flux, its
 * sync, image automation, the VM check and the frontend's namespace. Nothing is promoted.
 */
export function homelabStack(cfg: HomelabConfig, resolution: ReleaseResolution): HomelabOutputs {
  const s = cfg.settings;
  const secrets = cfg.secrets;
  const release = cfg.release;
  if (s.registry.insecure) {
    // Said on every run: plain HTTP is the default here, and what it exposes is easy to forget.
    void pulumi.log.warn(
      `homelab:registryInsecure: the registry ${s.registry.host} is reached over plain HTTP, so its password (from this machine, the VM and the cluster's nodes) and every image cross the network unencrypted; keep it on a network you trust`,
    );
  }

  const cluster = new k8s.Provider("k3s", {
    kubeconfig: secrets.kubeconfig,
    context: s.kubeContext,
    enableServerSideApply: true,
  });

  const flux = new FluxBootstrap(
    "flux",
    {
      manifests: s.flux.manifests,
      install: s.flux.install,
      controllers: s.flux.controllers,
      gitUrl: s.flux.gitUrl,
      branch: s.flux.branch,
      path: s.flux.path,
      interval: s.flux.interval,
      deployKey: secrets.gitDeployKey,
      knownHosts: s.flux.knownHosts,
      verifySigners: s.flux.verifySigners,
      protect: s.protect,
    },
    { providers: [cluster] },
  );
  const automation = new ImageAutomation(
    "image-automation",
    {
      registry: s.registry.host,
      insecure: s.registry.insecure,
      caCert: s.registry.caCert,
      username: s.registry.username,
      password: secrets.registryPassword,
      // The release file's exclusions: image automation never selects a rolled-back tag again.
      images: RELEASE_PARTS.map((part) => ({
        name: part,
        repository: s.images[part],
        excludedTags: release.excluded.filter((e) => e.image === part).map((e) => e.tag),
      })),
      tagPattern: s.tagPattern,
      interval: s.flux.imageScanInterval,
      gitRepositoryName: flux.gitRepositoryName,
      branch: s.flux.branch,
      path: s.flux.path,
      author: s.flux.author,
      // A freeze in the release file stops release commits piling up while it lasts.
      suspend: release.frozen !== undefined,
      signingKey: secrets.fluxSigningKey,
    },
    { providers: [cluster], dependsOn: [flux] },
  );

  const vm: SshTarget = {
    host: s.vm.host,
    port: s.vm.port,
    user: s.vm.user,
    privateKey: secrets.vmPrivateKey,
    hostKey: s.vm.hostKey,
    hostKeySetting: "homelab:vmHostKey",
  };
  const digests = resolution.kind === "resolved" ? resolution.digests : undefined;
  const frontendImage = digests && formatImageRef({ ...release.frontend, digest: digests.frontend });
  const backendImage = digests && formatImageRef({ ...release.backend, digest: digests.backend });
  const releaseId = digests ? `${frontendImage} ${backendImage}` : "no image yet";
  const vmCheck = new HostCheck(PART.backendVm, {
    connection: vm,
    deployDir: s.backend.deployDir,
    trigger: releaseId,
    registry: { host: s.registry.host, insecure: s.registry.insecure, caCert: s.registry.caCert },
  });
  const urls = { frontendUrl: pulumi.output(`${s.frontend.publicUrl}/`), apiUrl: pulumi.output(`${s.frontend.publicUrl}/api`) };

  const frontendArgs = {
    namespace: s.namespace,
    protect: s.protect,
    pullCredentials: { server: s.registry.host, username: s.registry.username, password: secrets.registryPassword },
    ingress: { className: s.frontend.ingressClass, host: s.frontend.host },
    backend: { address: s.backend.address, port: s.backend.port },
  };
  if (!digests || !frontendImage || !backendImage) {
    const missing = resolution.kind === "missing" ? resolution.images : [];
    void pulumi.log.info(waitingLine(missing));
    new FrontendApp(PART.frontend, frontendArgs, { providers: [cluster], dependsOn: [vmCheck] });
    return { ...urls, waitingForImages: pulumi.output([...missing]), imageAutomationExclusions: automation.exclusionList };
  }

  const frontend = new FrontendApp(
    PART.frontend,
    {
      ...frontendArgs,
      image: frontendImage,
      version: release.frontend.tag,
      replicas: s.frontend.replicas,
      rolloutSurge: s.frontend.rolloutSurge,
      containerPort: s.frontend.port,
      healthPath: s.frontend.healthPath,
      rolloutTimeoutSeconds: s.gates.deadlineSeconds,
    },
    { providers: [cluster], dependsOn: [vmCheck] },
  );

  const gateOptions: ProbeOptions = {
    deadlineMs: s.gates.deadlineSeconds * 1000,
    intervalMs: s.gates.intervalSeconds * 1000,
    // A part that has just rolled out serves within seconds: the gate follows it closely then.
    quickWindowMs: 15_000,
    quickIntervalMs: 250,
    attemptTimeoutMs: s.gates.timeoutSeconds * 1000,
    soakMs: s.gates.soakSeconds * 1000,
  };
  const frontendTargets: ProbeTarget[] = [{ url: `${s.frontend.publicUrl}${s.frontend.healthPath}` }];
  if (s.frontend.version) {
    frontendTargets.push({ url: `${s.frontend.publicUrl}${s.frontend.version.path}`, version: { marker: s.frontend.version.marker, equals: release.frontend.tag } });
  }
  // Said on every run: a gate that cannot see the version would pass an old release that answers.
  const unchecked = [
    s.frontend.version ? "" : "the frontend gate (homelab:frontendVersionMarker is unset)",
    s.backend.versionField ? "" : "the backend gate (homelab:backendVersionField is unset)",
  ].filter(Boolean);
  if (unchecked.length > 0) {
    void pulumi.log.info(`which version answers is not checked by ${unchecked.join(" or ")}`);
  }
  // Recorded with the promotion, so the ledger says which parts went out unchecked.
  const unverified = (["frontend", "backend"] as const).filter((p) => (p === "frontend" ? !s.frontend.version : !s.backend.versionField));
  // The soak also counts restarts: a release restarted between two probes can answer them all.
  const soaks = s.gates.soakSeconds > 0;
  const frontendGate = new HealthGate(
    PART.frontendGate,
    {
      targets: frontendTargets,
      release: frontendImage,
      after: frontend.generation,
      options: gateOptions,
      restarts: soaks ? podRestartSource(secrets.kubeconfig, s.kubeContext, s.namespace, frontend.podSelector) : undefined,
    },
    { dependsOn: [frontend] },
  );

  const backendHealth = (base: string): ProbeTarget => ({
    url: `${base}${s.backend.healthPath}`,
    jsonField: s.backend.versionField ? { path: s.backend.versionField, equals: release.backend.tag } : undefined,
  });
  const project = "backend";
  const backend = new ComposeHost(
    PART.backend,
    {
      connection: vmCheck.connection,
      deployDir: s.backend.deployDir,
      project,
      compose: composeToYaml(
        renderBackendCompose({
          project,
          image: backendImage,
            containerName: s.backend.containerName,
            port: s.backend.port,
            bindAddress: s.backend.bindAddress,
            healthPath: s.backend.healthPath,
          healthcheckTest: s.backend.healthcheck.length > 0 ? [...s.backend.healthcheck] : undefined,
        }),
      ),
      env: secrets.backendEnv,
      registry: { server: s.registry.host, username: s.registry.username, password: secrets.registryPassword },
      healthServices: ["backend"],
      healthUrl: `http://${hostProbeAddress(s.backend.bindAddress)}:${s.backend.port}${s.backend.healthPath}`,
      deadlineSeconds: s.gates.deadlineSeconds,
      stepDeadlineSeconds: s.vmStepDeadlineSeconds > 0 ? s.vmStepDeadlineSeconds : undefined,
      protect: s.protect,
    },
    { dependsOn: [frontendGate] },
  );
  const backendGate = new HealthGate(
    PART.backendGate,
    {
      // The VM directly, then the same route through the ingress.
      targets: [backendHealth(`http://${s.vm.host}:${s.backend.port}`), backendHealth(s.frontend.publicUrl)],
      release: releaseId,
      after: backend.deployedAt,
      options: gateOptions,
      restarts: soaks ? composeRestartSource(vmCheck.connection, backend.inspectScript, ["backend"]) : undefined,
    },
    { dependsOn: [backend] },
  );

  const record = new ReleaseRecord(
    "release",
    {
      frontend: { image: frontendImage, tag: release.frontend.tag, digest: digests.frontend },
      backend: { image: backendImage, tag: release.backend.tag, digest: digests.backend },
      gates: { frontendMs: frontendGate.elapsedMs, backendMs: backendGate.elapsedMs },
      ...(unverified.length > 0 ? { unverified } : {}),
      rollback: release.rollback,
    },
    { dependsOn: [backendGate] },
  );

  return {
    ...urls,
    frontendImage: record.current.frontend.image,
    backendImage: record.current.backend.image,
    release: record.current,
    previousRelease: record.previous,
    promotedAt: record.promotedAt,
    ledger: record.ledger,
    gates: pulumi.all([frontendGate.checkedAt, frontendGate.elapsedMs, backendGate.checkedAt, backendGate.elapsedMs]).apply(([fa, fe, ba, be]) => ({
      frontend: { checkedAt: fa, elapsedMs: fe },
      backend: { checkedAt: ba, elapsedMs: be },
    })),
    imageAutomationExclusions: automation.exclusionList,
  };
}

function podRestartSource(kubeconfig: pulumi.Input<string>, context: string | undefined, namespace: string, selector: pulumi.Input<string>): pulumi.Output<RestartSource> {
  return pulumi.all([kubeconfig, selector]).apply(([k, sel]): RestartSource => ({ kind: "pods", kubeconfig: k, ...(context ? { context } : {}), namespace, selector: sel }));
}

function composeRestartSource(target: SshTarget, inspectScript: pulumi.Input<string>, services: string[]): pulumi.Output<RestartSource> {
  return pulumi
    .all([target.host, target.port ?? 22, target.user, target.privateKey, target.hostKey, inspectScript])
    .apply(([host, port, user, privateKey, hostKey, script]): RestartSource => ({
      kind: "compose",
      // Without a host key (none configured, none pinned yet) every connection is refused: the
      // restarts are then reported as not counted.
      connection: { host, port, user, privateKey, ...(hostKey ? { hostKey } : {}) },
      inspectScript: script,
      services,
    }));
}

/** Where the VM reaches its own backend: the address the port is published on, loopback for all of them. */
export function hostProbeAddress(bindAddress: string): string {
  return bindAddress === "" || bindAddress === "0.0.0.0" ? "127.0.0.1" : bindAddress;
}
