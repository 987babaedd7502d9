import * as pulumi from "@pulumi/pulumi";
import { VpsApp } from "../components/vps-app";
import { formatImageRef } from "../lib/image-ref";
import { VpsConfig } from "./config";
import { PART } from "./names";

export interface VpsOutputs {
  readonly versionOwner: string;
  readonly dashboardUrl: pulumi.Output<string>;
  readonly webhookUrl?: pulumi.Output<string>;
  readonly apiKey: pulumi.Output<string>;
  readonly webhookSecret?: pulumi.Output<string>;
  readonly image: pulumi.Output<string>;
  readonly runningImage?: pulumi.Output<string>;
}

/**
 * The VPS app behind its Caddy sidecar. When the program owns the version, the image is pinned to
 * the digest resolved before anything changed; when the app does, the compose file names the tag
 * (the digest was only checked to exist) and the app moves it through its webhook.
 */
export function vpsStack(cfg: VpsConfig, digest: string): VpsOutputs {
  const s = cfg.settings;
  const appOwned = s.versionOwner === "app";
  const app = new VpsApp(PART.vps, {
    connection: { host: s.host, port: s.port, user: s.user, privateKey: cfg.secrets.privateKey, hostKey: s.hostKey },
    deployDir: s.deployDir,
    appName: s.appName,
    image: formatImageRef({ ...s.image, digest: appOwned ? undefined : digest }),
    versionOwner: s.versionOwner,
    appPort: s.appPort,
    domain: s.domain,
    tls: s.tls,
    caddyImage: s.caddyImage,
    ports: s.ports,
    registry: cfg.secrets.registryToken ? { server: s.image.registry, username: s.registry.username, token: cfg.secrets.registryToken } : undefined,
    env: cfg.secrets.env,
    webhookSecret: { envName: s.webhook.envName, version: s.webhook.version },
    webhookPath: s.webhook.path,
    dataPath: s.dataPath,
    sshKeysMountPath: s.sshKeysMount,
    dockerSocket: s.dockerSocket,
    dockerSocketPath: s.dockerSocketPath,
    installDocker: s.installDocker,
    dockerInstallSha256: s.dockerInstallSha256,
    healthPath: s.healthPath,
    healthcheck: s.healthcheck.length > 0 ? [...s.healthcheck] : undefined,
    apiKeyFile: s.apiKeyFile,
    deadlineSeconds: s.deadlineSeconds,
    protect: s.protect,
    rename: {
      what: "homelab:vpsAppName",
      confirm:
        "the app's data and Caddy's certificates are volumes named after {old} on the VPS, and {new} would start without them beside {old}'s containers. " +
        "Keep {old}; or stop it (docker compose --project-name {old} down, which keeps its volumes), copy its volumes' data into {new}'s, and set homelab:vpsRenamedFrom {old} to confirm",
      renamedFrom: s.renamedFrom,
    },
  });
  return {
    versionOwner: s.versionOwner,
    dashboardUrl: app.dashboardUrl,
    webhookUrl: app.webhookUrl,
    apiKey: app.apiKey,
    webhookSecret: app.webhookSecret,
    image: app.image,
    runningImage: app.runningImage,
  };
}
