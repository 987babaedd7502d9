import * as pulumi from "@pulumi/pulumi";
import { VpsApp } from "../components/vps-app";
import { formatImageRef } from "../lib/image-ref";
import { VpsConfig } from "./config";
import { PART } from "./names";

export interface VpsOutputs {
  readonly dashboardUrl: pulumi.Output<string>;
  readonly webhookUrl: pulumi.Output<string>;
  readonly apiKey: pulumi.Output<string>;
  readonly webhookSecret: pulumi.Output<string>;
  readonly image: pulumi.Output<string>;
}

/** The VPS app behind its Caddy sidecar, its image pinned to the digest resolved before anything changed. */
export function vpsStack(cfg: VpsConfig, digest: string): VpsOutputs {
  const s = cfg.settings;
  const app = new VpsApp(PART.vps, {
    connection: { host: s.host, port: s.port, user: s.user, privateKey: cfg.secrets.privateKey, hostKey: s.hostKey },
    deployDir: s.deployDir,
    appName: s.appName,
    image: formatImageRef({ ...s.image, digest }),
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
    installDocker: s.installDocker,
    healthPath: s.healthPath,
    healthcheck: s.healthcheck.length > 0 ? [...s.healthcheck] : undefined,
    apiKeyFile: s.apiKeyFile,
    deadlineSeconds: s.deadlineSeconds,
    protect: s.protect,
  });
  return { dashboardUrl: app.dashboardUrl, webhookUrl: app.webhookUrl, apiKey: app.apiKey, webhookSecret: app.webhookSecret, image: app.image };
}
