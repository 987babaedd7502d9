import * as crypto from "crypto";
import * as pulumi from "@pulumi/pulumi";
import { shq } from "../lib/shell";
import { CaddyTls, caddyfileToText, renderVpsCaddyfile } from "../lib/caddy";
import { DOCKER_AUTH_ENV, composeToYaml, dockerAuthConfig, renderVpsCompose } from "../lib/compose";
import { VersionOwner } from "../lib/config";
import { renderReadSecretScript } from "../lib/remote-deploy";
import { renderRunningImageScript } from "../lib/self-update";
import { RandomSecret } from "../providers/random-secret";
import { RemoteScript } from "../providers/remote-script";
import { RunningImage } from "../providers/running-image";
import { ComposeHost } from "./compose-host";
import { HostCheck } from "./host-check";
import { SshTarget, connectionArgs } from "./ssh-target";

/** Type token of the component. */
export const VPS_APP_TYPE = "homelab:vps:VpsApp";

/** Name of the ComposeHost a VpsApp named `app` deploys with. */
export function vpsComposeName(app: string): string {
  return `${app}-compose`;
}

/** Name of the RunningImage that records what a self-updating VpsApp named `app` runs. */
export function vpsRunningImageName(app: string): string {
  return `${app}-running-image`;
}

export interface VpsAppArgs {
  readonly connection: SshTarget;
  /** Absolute directory on the host for the compose file, Caddyfile, `.env` and release history. @default "/opt/app" */
  readonly deployDir?: string;
  /** Compose project and service name of the app. @default "app" */
  readonly appName?: string;
  /**
   * Image of the app: pinned (`registry/repo:tag@sha256:…`) when the program owns the version,
   * the tag it follows (`registry/repo:tag`) when the app does.
   */
  readonly image: string;
  /**
   * Who owns the app's version. `program`: the image as given, no webhook secret. `app`: the app
   * updates itself through its webhook (the Docker socket and the deploy directory mounted, the
   * generated secret in `.env`); the program records the digest it deployed and never reverts a
   * newer one. @default "program"
   */
  readonly versionOwner?: VersionOwner;
  /** Port the app listens on inside the compose network. @default 8000 */
  readonly appPort?: number;
  /** The domain Caddy serves over HTTPS. */
  readonly domain: string;
  /** @default { kind: "acme" } */
  readonly tls?: CaddyTls;
  /** Image of the Caddy sidecar. @default "caddy:2.10-alpine" */
  readonly caddyImage?: string;
  /** Where Caddy's ports are published on the host. @default { bindAddress: "0.0.0.0", http: 80, https: 443 } */
  readonly ports?: { readonly bindAddress?: string; readonly http?: number; readonly https?: number };
  /** Private registry of the app's image; the token travels on stdin only. */
  readonly registry?: { readonly server: string; readonly username: string; readonly token: pulumi.Input<string> };
  /** Further environment of the app, written to `.env` (mode 0600). @default {} */
  readonly env?: pulumi.Input<Record<string, string>>;
  /** The generated webhook secret (`app` mode): its variable in `.env`, and its version (bump to rotate). */
  readonly webhookSecret?: { readonly envName?: string; readonly version?: number };
  /** Path of the app's webhook endpoint. @default "/api/self-update" */
  readonly webhookPath?: string;
  /** Where the app's data volume is mounted. @default "/data" */
  readonly dataPath?: string;
  /** Mount `<deployDir>/ssh` read-only at this path in the app's container; none when unset. */
  readonly sshKeysMountPath?: string;
  /** Give the app the Docker socket (always given in `app` mode). @default false */
  readonly dockerSocket?: boolean;
  /** Where the engine's socket is on the host. @default "/var/run/docker.sock" */
  readonly dockerSocketPath?: string;
  /** Install Docker and compose v2 where missing (needs root or passwordless sudo). @default false */
  /**
   * Guards the app's name, which its volumes (data, Caddy's certificates) carry: a new name is
   * refused before anything runs unless confirmed (see ComposeHostArgs.rename). @default unguarded
   */
  readonly rename?: { readonly what: string; readonly confirm: string; readonly renamedFrom?: string };
  readonly installDocker?: boolean;
  /** SHA-256 the Docker install script (get.docker.com) must have before it runs. @default unpinned */
  readonly dockerInstallSha256?: string;
  /** @default "/api/health" */
  readonly healthPath?: string;
  /** Health probe inside the app's container (compose `test` form). @default a Python probe */
  readonly healthcheck?: string[];
  /** File in the app's container holding its API key, read after each deploy; none when unset. */
  readonly apiKeyFile?: string;
  /** How long the deploy waits for the app to turn healthy before it restores the previous release. @default 120 */
  readonly deadlineSeconds?: number;
  /** Refuse to delete the app's compose project and its webhook secret. @default false */
  readonly protect?: boolean;
}

/** The webhook secret's variable unless told otherwise (the seed app verifies GitHub's HMAC with it). */
export const DEFAULT_WEBHOOK_ENV = "GITHUB_WEBHOOK_SECRET";

/** The command that reads the app's API key on its host, for when the deploy could not yet. */
export function apiKeyReadHint(o: { host: string; port?: number; user: string; deployDir: string; project: string; file: string }): string {
  const port = o.port !== undefined && o.port !== 22 ? ` -p ${o.port}` : "";
  return `ssh${port} ${o.user}@${o.host} docker compose --project-name ${shq(o.project)} --project-directory ${shq(o.deployDir)} exec -T ${shq(o.project)} cat ${shq(o.file)}`;
}

/** `https://domain`, with the port when it is not 443. */
export function httpsBase(domain: string, httpsPort: number): string {
  return httpsPort === 443 ? `https://${domain}` : `https://${domain}:${httpsPort}`;
}

/**
 * An app on a Docker host reached over SSH, behind a Caddy sidecar with automatic HTTPS. The
 * host is checked first (Docker, compose v2, a writable directory); then one remote deploy logs
 * in to the registry with the token on stdin, writes the compose file, Caddyfile and `.env`
 * (0600), starts the stack and
 * waits for the app to turn healthy, restoring the previous release on failure (ComposeHost).
 * Finally the app's API key is read from its container into a secret output.
 *
 * When the app owns its version (`versionOwner: "app"`), the compose file names the tag it
 * follows, the app gets the socket and the deploy directory at the host's paths, `.env` carries a
 * generated webhook secret that stays the same across runs, and the digest it runs after each
 * deploy is recorded; a newer digest the app pulled itself changes nothing.
 */
export class VpsApp extends pulumi.ComponentResource {
  public readonly dashboardUrl: pulumi.Output<string>;
  /** Where the git host sends push events (`app` mode only). */
  public readonly webhookUrl: pulumi.Output<string> | undefined;
  /** The app's API key, read from its container (a secret); empty when no `apiKeyFile` is set. */
  public readonly apiKey: pulumi.Output<string>;
  /** The webhook secret to enter in the git host's webhook settings (a secret; `app` mode only). */
  public readonly webhookSecret: pulumi.Output<string> | undefined;
  /** The image deployed: pinned as given, or in `app` mode the tag with the digest running when the program last deployed. */
  public readonly image: pulumi.Output<string>;
  /** `app` mode: the tag with the digest running as of the last read (a deploy or a refresh). */
  public readonly runningImage: pulumi.Output<string> | undefined;
  /** The deploy's report (progress lines; never secrets). */
  public readonly report: pulumi.Output<string>;

  constructor(name: string, args: VpsAppArgs, opts?: pulumi.ComponentResourceOptions) {
    super(VPS_APP_TYPE, name, {}, opts);
    const deployDir = args.deployDir ?? "/opt/app";
    const appName = args.appName ?? "app";
    const appPort = args.appPort ?? 8000;
    const httpsPort = args.ports?.https ?? 443;
    const webhookEnv = args.webhookSecret?.envName ?? DEFAULT_WEBHOOK_ENV;
    const base = httpsBase(args.domain, httpsPort);
    const selfUpdate = (args.versionOwner ?? "program") === "app";
    if (selfUpdate && args.image.includes("@")) {
      throw new pulumi.ResourceError(`image: ${JSON.stringify(args.image)} names a digest, but an app that owns its version follows a tag`, this);
    }

    const check = new HostCheck(
      `${name}-host`,
      { connection: args.connection, deployDir, trigger: args.image, installDocker: args.installDocker ?? false, dockerInstallSha256: args.dockerInstallSha256 },
      { parent: this },
    );

    // Only an app that updates itself has a webhook to sign for.
    const secret = selfUpdate
      ? new RandomSecret(`${name}-webhook-secret`, { bytes: 32, version: args.webhookSecret?.version ?? 1 }, { parent: this, protect: args.protect ?? false })
      : undefined;

    const caddyfile = caddyfileToText(
      renderVpsCaddyfile({
        domain: args.domain,
        upstreamHost: appName,
        upstreamPort: appPort,
        tls: args.tls ?? { kind: "acme" },
        webhookPath: selfUpdate ? (args.webhookPath ?? "/api/self-update") : undefined,
      }),
    );
    const compose = composeToYaml(
      renderVpsCompose({
        project: appName,
        appName,
        image: args.image,
        appPort,
        caddyImage: args.caddyImage ?? "caddy:2.10-alpine",
        caddyfileHash: crypto.createHash("sha256").update(caddyfile).digest("hex"),
        bindAddress: args.ports?.bindAddress,
        httpPort: args.ports?.http,
        httpsPort,
        dataPath: args.dataPath,
        sshKeys: args.sshKeysMountPath ? { hostDir: `${deployDir}/ssh`, mountPath: args.sshKeysMountPath } : undefined,
        dockerSocket: args.dockerSocket || selfUpdate ? { hostPath: args.dockerSocketPath ?? "/var/run/docker.sock" } : undefined,
        selfUpdate: selfUpdate ? { deployDir } : undefined,
        healthPath: args.healthPath,
        healthcheckTest: args.healthcheck,
      }),
    );
    // A self-updating app pulls its tag itself: it gets the registry login in .env (0600), since
    // the host's deploy keeps none once it has pulled.
    const registry = args.registry;
    const env = secret
      ? pulumi.all([args.env ?? {}, secret.value, registry?.token]).apply(([extra, value, token]) => ({
          ...extra,
          [webhookEnv]: value,
          ...(registry && token ? { [DOCKER_AUTH_ENV]: dockerAuthConfig(registry.server, registry.username, token) } : {}),
        }))
      : pulumi.output(args.env ?? {});

    const host = new ComposeHost(
      vpsComposeName(name),
      {
        connection: args.connection,
        deployDir,
        project: appName,
        compose,
        files: { Caddyfile: caddyfile },
        env,
        registry: args.registry ? { server: args.registry.server, username: args.registry.username, password: args.registry.token } : undefined,
        healthServices: [appName, "caddy"],
        deadlineSeconds: args.deadlineSeconds ?? 120,
        protect: args.protect,
        rename: args.rename,
      },
      { parent: this, dependsOn: [check] },
    );

    let apiKey: pulumi.Output<string> = pulumi.secret("");
    if (args.apiKeyFile) {
      const read = new RemoteScript(
        `${name}-api-key`,
        {
          connection: connectionArgs(args.connection),
          // Waits as long as the deploy waits for health; a key still missing then is said, not failed.
          create: renderReadSecretScript({ deployDir, project: appName, service: appName, file: args.apiKeyFile, attempts: Math.ceil((args.deadlineSeconds ?? 120) / 2) }),
          // Read again after every deploy: a fresh data volume means a fresh key.
          triggers: [host.report],
          secretStdout: true,
        },
        { parent: this, dependsOn: [host] },
      );
      apiKey = pulumi.secret(read.stdout);
      const file = args.apiKeyFile;
      const c = args.connection;
      // The release is healthy and serving; only the key the app writes is late.
      pulumi.all([read.stdout, c.host, c.port, c.user]).apply(([key, host, port, user]) =>
        key ? undefined : pulumi.log.warn(`the app has not written its API key yet; the release is deployed. Read the key later with: ${apiKeyReadHint({ host, port, user, deployDir, project: appName, file })}`, this),
      );
    }

    let image = pulumi.output(args.image);
    let runningImage: pulumi.Output<string> | undefined;
    if (selfUpdate) {
      const running = new RunningImage(
        vpsRunningImageName(name),
        {
          connection: connectionArgs(args.connection),
          script: renderRunningImageScript({ project: appName, service: appName }),
          repository: args.image.slice(0, args.image.lastIndexOf(":")),
          // Recorded again only when the deploy ran, so an update the app made changes nothing.
          trigger: host.deployedAt,
        },
        { parent: this, dependsOn: [host] },
      );
      const withDigest = (digest: string): string => (digest ? `${args.image}@${digest}` : args.image);
      image = running.recorded.apply(withDigest);
      runningImage = running.running.apply(withDigest);
    }

    this.dashboardUrl = pulumi.output(`${base}/`);
    this.webhookUrl = selfUpdate ? pulumi.output(`${base}${args.webhookPath ?? "/api/self-update"}`) : undefined;
    this.apiKey = apiKey;
    this.webhookSecret = secret ? pulumi.secret(secret.value) : undefined;
    this.image = image;
    this.runningImage = runningImage;
    this.report = host.report;
    this.registerOutputs({
      dashboardUrl: this.dashboardUrl,
      webhookUrl: this.webhookUrl,
      apiKey: this.apiKey,
      webhookSecret: this.webhookSecret,
      image: this.image,
      runningImage: this.runningImage,
      report: this.report,
    });
  }
}
