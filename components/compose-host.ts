import { renderLogsScript } from "../lib/logs";
import * as pulumi from "@pulumi/pulumi";
import { BUNDLE_END, FOLLOW_NO_RUN, renderDeployScript, renderDownScript, renderFollowScript, renderInspectScript } from "../lib/remote-deploy";
import { renderBundle } from "../lib/bundle";
import { renderEnvFile } from "../lib/compose";
import { RemoteScript } from "../providers/remote-script";
import { SshTarget, connectionArgs, warnTrustOnFirstUse } from "./ssh-target";

/** Type token of the component. */
export const COMPOSE_HOST_TYPE = "homelab:host:ComposeHost";

/** Name of the remote deploy a ComposeHost named `host` runs. */
export function composeDeployName(host: string): string {
  return `${host}-deploy`;
}

export interface ComposeHostArgs {
  readonly connection: SshTarget;
  /** Absolute directory on the host for the compose file, `.env` and release history. */
  readonly deployDir: string;
  /** Compose project name. */
  readonly project: string;
  /** The compose file, rendered by a pure function (see lib/compose.ts). */
  readonly compose: pulumi.Input<string>;
  /** Further non-secret files beside the compose file, by name (e.g. a Caddyfile). @default {} */
  readonly files?: pulumi.Input<Record<string, string>>;
  /** Environment written to `.env` with mode 0600 (treated as secret). @default {} */
  readonly env?: pulumi.Input<Record<string, string>>;
  /** Registry to log in to before pulling; the password travels on stdin only. */
  readonly registry?: { readonly server: string; readonly username: string; readonly password: pulumi.Input<string> };
  /** Services that must be running and healthy. */
  readonly healthServices: readonly string[];
  /** URL the host itself probes until it answers 2xx. */
  readonly healthUrl?: string;
  /** Seconds the release has to turn healthy on the host. @default 300 */
  readonly deadlineSeconds?: number;
  /**
   * Seconds each other step on the host may take: waiting for another deploy there, the registry
   * login, the pull, `compose up`. Past it the step fails and the previous release is restored.
   * @default deadlineSeconds
   */
  readonly stepDeadlineSeconds?: number;
  /** Refuse to delete (and so stop) the project. @default false */
  readonly protect?: boolean;
  /**
   * Guards the project's name: its named volumes carry it, so a new name starts without them. A
   * change is refused before anything runs unless `renamedFrom` is the old name. @default unguarded
   */
  readonly rename?: { readonly what: string; readonly confirm: string; readonly renamedFrom?: string };
}

/**
 * A compose project on a Docker host reached over SSH. One remote command receives the compose
 * file and other plain files (inputs a preview shows line by line), `.env` and the registry
 * password (secret) on stdin and starts the deploy detached on the host, under the deploy
 * directory's lock, then follows it (again after a dropped connection). The deploy pulls and
 * starts the new release and waits for health; only a release that passed is recorded as current.
 * On failure it prints the last 30 log lines, brings the current release back and fails the
 * update. It runs again only when the rendered files (which pin images by digest) change, or when a refresh found the host no longer running
 * them (a stopped or missing container, another image, an edited file): then it deploys the
 * same release again. Deleting stops the project and keeps its volumes.
 */
export class ComposeHost extends pulumi.ComponentResource {
  /** The deploy's report (progress lines; never secrets). */
  public readonly report: pulumi.Output<string>;
  /** When the deploy last ran on the host; what must be checked after each run depends on it. */
  public readonly deployedAt: pulumi.Output<string>;
  /** The host's read-only script that reports the project's files and containers (restarts included). */
  public readonly inspectScript: pulumi.Output<string>;

  constructor(name: string, args: ComposeHostArgs, opts?: pulumi.ComponentResourceOptions) {
    super(COMPOSE_HOST_TYPE, name, {}, opts);
    const files = args.files ?? {};
    const env = args.env ?? {};
    const deadlineSeconds = args.deadlineSeconds ?? 300;
    const stepDeadlineSeconds = args.stepDeadlineSeconds ?? deadlineSeconds;
    // The longest a run can take on the host: its lock, recovering a lost run (up and health),
    // login, pull, up, health, and restoring (up and health), plus a minute of slack.
    const runDeadlineSeconds = 6 * stepDeadlineSeconds + 3 * deadlineSeconds + 60;

    const extraNames = pulumi.output(files).apply((f) => Object.keys(f).sort());
    const inspect = extraNames.apply((names) => renderInspectScript({ deployDir: args.deployDir, project: args.project, files: ["docker-compose.yml", ".env", ...names] }));
    const script = extraNames.apply((names) =>
      renderDeployScript({
        deployDir: args.deployDir,
        project: args.project,
        files: ["docker-compose.yml", ".env", ...names],
        registry: args.registry ? { server: args.registry.server, username: args.registry.username } : undefined,
        healthServices: args.healthServices,
        healthUrl: args.healthUrl,
        deadlineSeconds,
        stepDeadlineSeconds,
      }),
    );
    // The compose file and the other plain files are inputs of their own, so a preview shows
    // their changed lines; only `.env` and the registry password travel in the secret stdin.
    const plainFiles = pulumi.all([args.compose, files]).apply(([compose, extra]) => {
      for (const reserved of ["docker-compose.yml", ".env"]) {
        if (reserved in extra) {
          throw new pulumi.ResourceError(`files: ${reserved} is written by the component itself`, this);
        }
      }
      return { ...extra, "docker-compose.yml": compose };
    });
    const secretBundle = pulumi
      .all([env, args.registry?.password])
      .apply(([environment, password]) => renderBundle([{ name: ".env", content: renderEnvFile(environment), mode: "0600" }], { registryPassword: password }));
    // Variable names are not secret; showing them tells a reviewer which ones a change adds or drops.
    const envKeys = pulumi.unsecret(pulumi.output(env).apply((e) => Object.keys(e).sort()));

    const deploy = new RemoteScript(
      composeDeployName(name),
      {
        connection: connectionArgs({ ...args.connection, attempts: args.connection.attempts ?? 5 }),
        create: script,
        delete: renderDownScript({ deployDir: args.deployDir, project: args.project, stepDeadlineSeconds }),
        // The deploy outlives a dropped connection; the provider follows it again.
        detached: { follow: renderFollowScript({ deployDir: args.deployDir }), noRunCode: FOLLOW_NO_RUN, endLine: BUNDLE_END, deadlineSeconds: runDeadlineSeconds },
        timeoutSeconds: 2 * stepDeadlineSeconds + 60,
        files: plainFiles,
        envKeys,
        inspect,
        logs: renderLogsScript({ deployDir: args.deployDir, project: args.project }),
        stdin: pulumi.secret(secretBundle),
        ...(args.rename ? { identity: { value: args.project, ...args.rename } } : {}),
      },
      { parent: this, protect: args.protect ?? false },
    );
    warnTrustOnFirstUse(args.connection, deploy.pinnedHostKey, this);
    this.report = deploy.stdout;
    this.deployedAt = deploy.ranAt;
    this.inspectScript = inspect;
    this.registerOutputs({ report: this.report, deployedAt: this.deployedAt, inspectScript: this.inspectScript });
  }
}
