import * as crypto from "crypto";
import { exitParams, hostScript, remoteFile } from "./host-script";

/** How the deploy script runs one compose project on a host. */
export interface DeployScriptOptions {
  /** Absolute directory holding the compose file, `.env` and the release history. */
  readonly deployDir: string;
  /** Compose project name. */
  readonly project: string;
  /** Names of the files the bundle carries; they are what a release consists of. */
  readonly files: readonly string[];
  /** Registry to log in to when the bundle carries a password. */
  readonly registry?: { readonly server: string; readonly username: string };
  /** Services that must be running and not unhealthy (healthy, where they have a health check). */
  readonly healthServices: readonly string[];
  /** URL probed from the host until it answers 2xx, e.g. `http://127.0.0.1:3001/api/health`. */
  readonly healthUrl?: string;
  /** Seconds to wait for health before the release counts as failed. */
  readonly deadlineSeconds: number;
  /**
   * Seconds each other step on the host may take (waiting for the host's deploy lock, the
   * registry login, the pull, `compose up`); past it the step fails and the release is restored.
   * @default deadlineSeconds
   */
  readonly stepDeadlineSeconds?: number;
  /** Log lines printed from the failed release. @default 30 */
  readonly logLines?: number;
  /** Seconds one look at a container (`docker inspect`) may take before it counts as gone. @default 30 */
  readonly lookSeconds?: number;
}

/** Exit codes of the deploy script, so callers can tell a restored failure from a broken host. */
export const DEPLOY_EXIT = {
  /** The new release failed; the previous one is back and healthy. */
  restored: 10,
  /** The new release failed and the previous one did not come back healthy. */
  restoreFailed: 11,
  /** The new release failed and there was no previous release to restore. */
  noPrevious: 12,
  /** The host could not pull the release's images (or not within the step deadline); the running release was not touched. */
  pullFailed: 13,
  /** The host's Docker engine did not answer; the release was not judged. */
  engineUnreachable: 14,
  /** Another deploy held the deploy directory's lock past the step deadline; nothing was changed. */
  busy: 15,
  /** The run's bundle arrived cut short (the connection dropped while sending it); nothing was changed. */
  incomplete: 16,
  /**
   * The run ended without a verdict (killed, or the host restarted): the deploy directory may be
   * between two releases, and the next run brings back the current release first.
   */
  lost: 18,
} as const;

/** Exit code of the follow script when the host has no run of that id: it never started. */
export const FOLLOW_NO_RUN = 17;

/** The line that ends a detached run's bundle; without it the bundle was cut short. */
export const BUNDLE_END = "end";

function checkAbsolute(field: string, dir: string): void {
  if (!dir.startsWith("/") || /[\0\n]/.test(dir)) {
    throw new Error(`${field}: ${JSON.stringify(dir)} must be an absolute path`);
  }
}

const FILE_NAME = /^[A-Za-z0-9._-]+$/;

function checkFiles(files: readonly string[]): void {
  for (const f of files) {
    if (!FILE_NAME.test(f)) {
      throw new Error(`files: ${JSON.stringify(f)} must be a plain file name`);
    }
  }
}

/**
 * Renders the script that follows a run of the deploy script (`RUN_ID` set before it) after the
 * connection that started it dropped: the run's output from its start, then its exit code.
 * Exits FOLLOW_NO_RUN when the host has no such run (it never started, so it may be sent again).
 */
export function renderFollowScript(o: { deployDir: string }): string {
  checkAbsolute("deployDir", o.deployDir);
  return hostScript(["process.sh", "runs.sh", "follow.sh"], { DIR: o.deployDir, EXIT_NO_RUN: FOLLOW_NO_RUN, EXIT_LOST: DEPLOY_EXIT.lost });
}

/**
 * Renders the deploy script (remote/deploy.sh and remote/deploy-run.sh). It starts the deploy as
 * a run of its own on the host, detached from the SSH session, and follows it: the run's output
 * and verdict go to files under `<deployDir>/.release/runs/<RUN_ID>`, so a dropped connection
 * neither kills nor hides it (renderFollowScript picks it up again). The run holds the deploy
 * directory's lock, so one deploy at a time changes it; a run that died without a verdict is
 * undone by the next one first. A release counts as `current` only once it passed its health
 * check on the host; a failed one is replaced by `current` again.
 */
export function renderDeployScript(o: DeployScriptOptions): string {
  checkAbsolute("deployDir", o.deployDir);
  checkFiles(o.files);
  if (!o.files.includes("docker-compose.yml")) {
    throw new Error(`files: must include docker-compose.yml`);
  }
  const worker = renderDeployRunScript(o);
  return hostScript(["process.sh", "runs.sh", "deploy.sh"], { DIR: o.deployDir, WORKER: worker, BUNDLE_END, EXIT_INCOMPLETE: DEPLOY_EXIT.incomplete, EXIT_LOST: DEPLOY_EXIT.lost });
}

/**
 * The run renderDeployScript starts on the host (remote/deploy-run.sh), with its run directory
 * as $1. Exported for its checks; a host gets it only inside the deploy script.
 */
export function renderDeployRunScript(o: DeployScriptOptions): string {
  return hostScript(["process.sh", "deploy-run.sh"], {
    DIR: o.deployDir,
    PROJECT: o.project,
    FILES: o.files.join(" "),
    HEALTH_SERVICES: o.healthServices.join(" "),
    HEALTH_URL: o.healthUrl ?? "",
    DEADLINE: Math.max(1, Math.floor(o.deadlineSeconds)),
    STEP: Math.max(1, Math.floor(o.stepDeadlineSeconds ?? o.deadlineSeconds)),
    LOG_LINES: Math.max(1, Math.floor(o.logLines ?? 30)),
    LOOK: Math.max(1, Math.floor(o.lookSeconds ?? 30)),
    REGISTRY_SERVER: o.registry?.server ?? "",
    REGISTRY_USERNAME: o.registry?.username ?? "",
    BUNDLE_END,
    // deploy.sh refuses a bundle cut short, and a follower tells a lost run; the run does neither.
    ...exitParams(Object.fromEntries(Object.entries(DEPLOY_EXIT).filter(([name]) => name !== "incomplete" && name !== "lost"))),
  });
}

/**
 * Renders the delete script: stops the project and removes its containers, keeping its volumes.
 * It waits for a deploy running on the host (the deploy directory's lock) and has a deadline.
 */
export function renderDownScript(o: { deployDir: string; project: string; stepDeadlineSeconds?: number }): string {
  checkAbsolute("deployDir", o.deployDir);
  return hostScript(["down.sh"], { DIR: o.deployDir, PROJECT: o.project, STEP: Math.max(1, Math.floor(o.stepDeadlineSeconds ?? 300)), EXIT_BUSY: DEPLOY_EXIT.busy });
}

/** Exit codes of the host check, one per missing prerequisite. */
export const HOST_CHECK_EXIT = { noDocker: 20, noCompose: 21, noEngine: 22, dirNotWritable: 23, installFailed: 24, noTools: 25, insecureRegistry: 26, untrustedRegistry: 27 } as const;

/** Where a root Docker engine reads a registry's CA certificates (`<host:port>/*.crt`). */
export const DOCKER_CERTS_DIR = "/etc/docker/certs.d";

export interface HostCheckScriptOptions {
  readonly deployDir: string;
  /**
   * Install Docker and compose v2 (Docker's get.docker.com script) where they are missing. Needs
   * root or passwordless sudo on the host. @default false
   */
  readonly installDocker?: boolean;
  /** SHA-256 get.docker.com's script must have before it runs; unpinned when unset. */
  readonly dockerInstallSha256?: string;
  /**
   * A plain-HTTP registry (host[:port]) the host pulls from: the check fails unless the Docker
   * engine accepts it as insecure, naming the daemon.json setting. @default no registry checked
   */
  readonly insecureRegistry?: string;
  /**
   * An https registry with its own CA: the check fails unless the engine trusts that CA (in
   * `certsDir/<host>/*.crt` or the system roots), naming where to put it. @default not checked
   */
  readonly registryCa?: { readonly host: string; readonly caCert: string; readonly certsDir?: string };
}

/**
 * `host[:port]` as Docker names a registry (a DNS name or an IPv4 address). Checked here rather
 * than through lib/validate: the remote-script provider is serialized with this module, and an
 * import would carry that whole module (its key-shaped patterns included) into the stack's state.
 */
function registryProblem(value: string): string | undefined {
  const m = /^([A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*)(?::(\d{1,5}))?$/.exec(value);
  if (!m || m[1].length > 253) {
    return "is not host[:port] (a DNS name or an IPv4 address, and a port)";
  }
  const port = m[2] === undefined ? 1 : Number(m[2]);
  return port >= 1 && port <= 65535 ? undefined : "is not host[:port]: the port is not 1-65535";
}

/**
 * The base64 bodies of the PEM certificates in `text` and their SHA-256 fingerprints. Kept here
 * (not lib/ca-cert): this module is serialized with the remote-script provider.
 */
function caBodies(text: string): { bodies: string[]; fingerprints: string[] } {
  const blocks = [...text.matchAll(/-----BEGIN CERTIFICATE-----([A-Za-z0-9+/=\s]+?)-----END CERTIFICATE-----/g)].map((m) => m[1].replace(/\s+/g, ""));
  return { bodies: blocks, fingerprints: blocks.map((b) => new crypto.X509Certificate(Buffer.from(b, "base64")).fingerprint256) };
}

/**
 * Renders the host check: Docker, compose v2, a writable deploy directory and, with
 * `insecureRegistry`, an engine that accepts that plain-HTTP registry, or a named failure.
 * With `installDocker`, missing Docker or compose is installed first instead of failing.
 */
export function renderHostCheckScript(o: HostCheckScriptOptions): string {
  checkAbsolute("deployDir", o.deployDir);
  const registry = o.insecureRegistry ?? "";
  const problem = o.insecureRegistry === undefined ? undefined : registryProblem(o.insecureRegistry);
  if (problem) {
    throw new Error(`insecureRegistry: ${JSON.stringify(o.insecureRegistry)} ${problem}`);
  }
  const caProblem = o.registryCa === undefined ? undefined : registryProblem(o.registryCa.host);
  if (caProblem) {
    throw new Error(`registryCa.host: ${JSON.stringify(o.registryCa?.host)} ${caProblem}`);
  }
  const ca = o.registryCa ? caBodies(o.registryCa.caCert) : undefined;
  if (o.registryCa && !ca?.bodies.length) {
    throw new Error("registryCa.caCert: holds no PEM certificate");
  }
  if (o.registryCa?.certsDir !== undefined) {
    checkAbsolute("registryCa.certsDir", o.registryCa.certsDir);
  }
  return hostScript(["host-check.sh"], {
    DIR: o.deployDir,
    INSTALL_DOCKER: o.installDocker ? 1 : 0,
    DOCKER_INSTALL_SHA256: o.dockerInstallSha256 ?? "",
    REGISTRY: registry,
    CA_REGISTRY: o.registryCa?.host ?? "",
    CA_BODIES: ca?.bodies.join(" ") ?? "",
    CA_FINGERPRINT: ca?.fingerprints.join(", ") ?? "",
    CERTS_DIR: o.registryCa?.certsDir ?? DOCKER_CERTS_DIR,
    // Only a check of a registry needs the program.
    ENGINE_ALLOWS_INSECURE: registry ? remoteFile("engine-allows-insecure.awk") : "",
    ...exitParams(HOST_CHECK_EXIT),
  });
}

/** How to read a secret file out of a running service's container. */
export interface ReadSecretScriptOptions {
  readonly deployDir: string;
  readonly project: string;
  readonly service: string;
  /** Absolute path of the file inside the container. */
  readonly file: string;
  /** Reads tried, 2s apart; the app may write the file a while after it turns healthy. @default 10 */
  readonly attempts?: number;
}

/**
 * Renders a script that prints a file from a service's container (e.g. an API key the app
 * generates on first start) and nothing else on stdout, trying a bounded number of times. A
 * file still missing then is not a failed release: the script prints nothing on stdout, says so
 * on stderr and succeeds, and the caller tells people how to read it later.
 */
export function renderReadSecretScript(o: ReadSecretScriptOptions): string {
  checkAbsolute("deployDir", o.deployDir);
  checkAbsolute("file", o.file);
  return hostScript(["read-secret.sh"], { DIR: o.deployDir, PROJECT: o.project, SERVICE: o.service, FILE: o.file, ATTEMPTS: Math.max(1, Math.floor(o.attempts ?? 10)) });
}

/** How to read what a compose project runs on a host, for `pulumi refresh` and `npm run status`. */
export interface InspectScriptOptions {
  readonly deployDir: string;
  readonly project: string;
  /** Names of the files a release consists of. */
  readonly files: readonly string[];
}

/**
 * Renders a read-only script that prints, one per line, each release file's SHA-256 (`file NAME
 * HASH`, or `missing`), whether the Docker engine answers (`engine down`), and each of the
 * project's containers: `container SERVICE STATUS HEALTH RESTARTS IMAGE`. It prints no file's
 * content, so nothing secret leaves the host.
 */
export function renderInspectScript(o: InspectScriptOptions): string {
  checkAbsolute("deployDir", o.deployDir);
  checkFiles(o.files);
  return hostScript(["inspect.sh"], { DIR: o.deployDir, PROJECT: o.project, FILES: o.files.join(" ") });
}
