import * as YAML from "yaml";

/** A bind mount in the long syntax, which can refuse a missing source instead of creating it. */
export interface ComposeBind {
  type: "bind";
  source: string;
  target: string;
  read_only?: boolean;
  bind: { create_host_path: boolean };
}

/** The subset of the Compose specification this project renders. */
export interface ComposeService {
  image: string;
  container_name?: string;
  restart?: "no" | "always" | "on-failure" | "unless-stopped";
  env_file?: string[];
  environment?: Record<string, string>;
  ports?: string[];
  expose?: string[];
  volumes?: (string | ComposeBind)[];
  command?: string[];
  labels?: Record<string, string>;
  healthcheck?: {
    test: string[];
    interval: string;
    timeout: string;
    retries: number;
    start_period: string;
  };
  depends_on?: Record<string, { condition: "service_started" | "service_healthy" }>;
  logging?: { driver: string; options: Record<string, string> };
  deploy?: {
    resources: {
      limits: { cpus: string; memory: string };
      reservations: { cpus: string; memory: string };
    };
  };
}

export interface ComposeFile {
  name: string;
  services: Record<string, ComposeService>;
  volumes?: Record<string, Record<string, never>>;
}

/** Every string in a compose object with `$` written `$$`, which compose reads back as one `$`. */
function escapeInterpolation<T>(value: T): T {
  if (typeof value === "string") {
    return value.replace(/\$/g, "$$$$") as T;
  }
  if (Array.isArray(value)) {
    return value.map(escapeInterpolation) as T;
  }
  if (value && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, escapeInterpolation(v)])) as T;
  }
  return value;
}

/**
 * Serialises a compose object; the only place compose YAML text is made. Compose substitutes
 * `$NAME` in every value from the deploy directory's `.env` (secrets included): each `$` is
 * escaped, so a health check's `$1` or `$HOME` reaches the container as configured.
 */
export function composeToYaml(file: ComposeFile): string {
  return YAML.stringify(escapeInterpolation(file), { lineWidth: 0 });
}

/** Inputs of the backend's compose file; defaults follow the homelab VM's original setup. */
export interface BackendComposeOptions {
  /** Compose project name. */
  readonly project: string;
  /** Fully pinned image reference (`registry/repo:tag@sha256:…`). */
  readonly image: string;
  /** @default "backend" */
  readonly containerName?: string;
  /** Port the app listens on inside the container and on the host. @default 3001 */
  readonly port?: number;
  /** Address on the VM the port binds to. @default "0.0.0.0" */
  readonly bindAddress?: string;
  /** Path answered by the app's health endpoint. @default "/api/health" */
  readonly healthPath?: string;
  /** Named volume mounted at `dataPath` so data outlives the container. @default "backend-data" */
  readonly dataVolume?: string;
  /** @default "/data" */
  readonly dataPath?: string;
  /** Health probe run inside the container. @default a Node.js one-liner (the backend is a Node app) */
  readonly healthcheckTest?: string[];
  /** Most CPU and memory the container may use. @default { cpus: "2", memory: "512M" } */
  readonly limits?: { readonly cpus?: string; readonly memory?: string };
}

/** Renders the backend compose file: one service, pinned image, `.env`, health check, bounded logs and resources. */
export function renderBackendCompose(opts: BackendComposeOptions): ComposeFile {
  const port = opts.port ?? 3001;
  const healthPath = opts.healthPath ?? "/api/health";
  const volume = opts.dataVolume ?? "backend-data";
  const test = opts.healthcheckTest ?? [
    "CMD-SHELL",
    `node -e "require('http').get('http://localhost:${port}${healthPath}', (r) => process.exit(r.statusCode === 200 ? 0 : 1)).on('error', () => process.exit(1))"`,
  ];
  return {
    name: opts.project,
    services: {
      backend: {
        image: opts.image,
        container_name: opts.containerName ?? "backend",
        restart: "unless-stopped",
        env_file: [".env"],
        ports: [`${opts.bindAddress ?? "0.0.0.0"}:${port}:${port}`],
        volumes: [`${volume}:${opts.dataPath ?? "/data"}`],
        healthcheck: { test, interval: "30s", timeout: "3s", retries: 3, start_period: "40s" },
        logging: { driver: "json-file", options: { "max-size": "10m", "max-file": "3" } },
        deploy: {
          resources: {
            limits: { cpus: opts.limits?.cpus ?? "2", memory: opts.limits?.memory ?? "512M" },
            reservations: { cpus: "0.5", memory: "256M" },
          },
        },
      },
    },
    volumes: { [volume]: {} },
  };
}

/** Inputs of the VPS app's compose file: the app behind a Caddy sidecar that terminates HTTPS. */
export interface VpsComposeOptions {
  /** Compose project name. */
  readonly project: string;
  /** Service name of the app; Caddy reaches it by this name. */
  readonly appName: string;
  /** Image of the app: pinned (`registry/repo:tag@sha256:…`), or the tag it follows when it updates itself. */
  readonly image: string;
  /** Port the app listens on inside the compose network; never published on the host. */
  readonly appPort: number;
  /** Image of the Caddy sidecar. */
  readonly caddyImage: string;
  /** SHA-256 of the Caddyfile: Caddy is recreated (and so reloaded) whenever it changes. */
  readonly caddyfileHash: string;
  /** Host address Caddy's ports bind to. @default "0.0.0.0" */
  readonly bindAddress?: string;
  /** @default 80 */
  readonly httpPort?: number;
  /** @default 443 */
  readonly httpsPort?: number;
  /** Where the app's data volume is mounted in the container. @default "/data" */
  readonly dataPath?: string;
  /** Host directory of SSH keys the app uses, and where it is mounted read-only; none when unset. */
  readonly sshKeys?: { readonly hostDir: string; readonly mountPath: string };
  /**
   * Give the app the host's Docker socket, mounted where the docker CLI looks for it
   * (`/var/run/docker.sock`). Anything holding the socket is root on the host. None when unset.
   */
  readonly dockerSocket?: { readonly hostPath: string };
  /**
   * The app updates itself (it owns its version): the deploy directory is mounted read-only at
   * the same path, and COMPOSE_FILE and COMPOSE_PROJECT_NAME name the project and its files as
   * the host has them, so compose inside the container manages the very containers the program
   * deploys. Needs `dockerSocket`. None when unset.
   */
  readonly selfUpdate?: { readonly deployDir: string };
  /** @default "/api/health" */
  readonly healthPath?: string;
  /** Health probe run inside the app's container. @default a Python one-liner (the app is a Python service) */
  readonly healthcheckTest?: string[];
}

/** Where the docker CLI in the app's container finds the engine. */
export const CONTAINER_DOCKER_SOCKET = "/var/run/docker.sock";

/** The app's environment for updating itself with compose: the same project and files as the host's deploy. */
export function selfUpdateEnvironment(project: string, deployDir: string): Record<string, string> {
  return { COMPOSE_FILE: `${deployDir}/docker-compose.yml`, COMPOSE_PROJECT_NAME: project };
}

/** The variable the docker CLI (28.1 and later) and compose read registry credentials from. */
export const DOCKER_AUTH_ENV = "DOCKER_AUTH_CONFIG";

/** A Docker config's `auths` for one registry, as DOCKER_AUTH_CONFIG carries it. */
export function dockerAuthConfig(server: string, username: string, token: string): string {
  return JSON.stringify({ auths: { [server]: { auth: Buffer.from(`${username}:${token}`).toString("base64") } } });
}

/**
 * Renders the VPS compose file: Caddy publishes 80 and 443 and starts only once the app is
 * healthy; the app exposes its port to the compose network only. Data, Caddy's certificates and
 * its config live in named volumes, so they outlive every container.
 */
export function renderVpsCompose(o: VpsComposeOptions): ComposeFile {
  const bind = o.bindAddress ?? "0.0.0.0";
  const https = o.httpsPort ?? 443;
  const healthPath = o.healthPath ?? "/api/health";
  const dataVolume = `${o.appName}-data`;
  const test = o.healthcheckTest ?? [
    "CMD",
    "python",
    "-c",
    `import urllib.request; urllib.request.urlopen('http://localhost:${o.appPort}${healthPath}')`,
  ];
  const appVolumes: (string | ComposeBind)[] = [`${dataVolume}:${o.dataPath ?? "/data"}`];
  if (o.sshKeys) {
    appVolumes.push(`${o.sshKeys.hostDir}:${o.sshKeys.mountPath}:ro`);
  }
  if (o.selfUpdate && !o.dockerSocket) {
    throw new Error("selfUpdate: the app needs dockerSocket to update itself");
  }
  if (o.dockerSocket) {
    // A socket path that does not exist fails the deploy rather than becoming an empty directory.
    appVolumes.push({ type: "bind", source: o.dockerSocket.hostPath, target: CONTAINER_DOCKER_SOCKET, bind: { create_host_path: false } });
  }
  if (o.selfUpdate) {
    // The same absolute path inside as on the host: compose resolves the project's relative
    // paths (./Caddyfile, .env) against it, and the engine reads bind sources on the host.
    appVolumes.push(`${o.selfUpdate.deployDir}:${o.selfUpdate.deployDir}:ro`);
  }
  const logging = { driver: "json-file", options: { "max-size": "10m", "max-file": "3" } };
  return {
    name: o.project,
    services: {
      caddy: {
        image: o.caddyImage,
        restart: "unless-stopped",
        ports: [`${bind}:${o.httpPort ?? 80}:80`, `${bind}:${https}:443`, `${bind}:${https}:443/udp`],
        volumes: ["./Caddyfile:/etc/caddy/Caddyfile:ro", "caddy-data:/data", "caddy-config:/config"],
        labels: { "homelab.caddyfile-sha256": o.caddyfileHash },
        depends_on: { [o.appName]: { condition: "service_healthy" } },
        logging,
      },
      [o.appName]: {
        image: o.image,
        restart: "unless-stopped",
        expose: [String(o.appPort)],
        env_file: [".env"],
        ...(o.selfUpdate ? { environment: selfUpdateEnvironment(o.project, o.selfUpdate.deployDir) } : {}),
        volumes: appVolumes,
        healthcheck: { test, interval: "5s", timeout: "5s", retries: 3, start_period: "15s" },
        logging,
      },
    },
    volumes: { [dataVolume]: {}, "caddy-data": {}, "caddy-config": {} },
  };
}

const ENV_KEY = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * Why a value cannot be written to a `.env` file so compose reads it back literally, or
 * undefined. Never holds the value (it may be a secret).
 */
export function envValueProblem(value: string): string | undefined {
  const line = quoteEnvValue(value);
  return typeof line === "string" ? undefined : line.problem;
}

/**
 * One `.env` value as compose's parser (compose-go's dotenv) reads it back literally: single
 * quotes where possible (no escapes, no interpolation inside them); double quotes with `\` and
 * `"` escaped for a value holding `'` but no `$` (compose interpolates in double quotes); a value
 * ending in `\` bare, since the parser takes `\` before a closing quote as escaping it. What none
 * of these carries is refused.
 */
function quoteEnvValue(value: string): string | { problem: string } {
  if (/[\r\n\0]/.test(value)) {
    return { problem: "with a line break or NUL, which a .env file cannot hold" };
  }
  const endsInBackslash = value.endsWith("\\");
  if (!value.includes("'") && !endsInBackslash) {
    return `'${value}'`;
  }
  if (!endsInBackslash) {
    if (value.includes("$")) {
      return { problem: "holding both ' and $, which a .env file cannot carry literally" };
    }
    if (value.endsWith('"')) {
      return { problem: `holding ' and ending in ", which a .env file cannot carry literally` };
    }
    return `"${value.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`;
  }
  // Bare: read to the end of the line, cut at '#', trimmed, interpolated, a leading quote taken as quoting.
  if (/^[\s'"]|\s$|[#$]/.test(value)) {
    return { problem: "ending in \\ and holding # or $, a leading quote or spaces at its ends, which a .env file cannot carry literally" };
  }
  return value;
}

/**
 * Renders a `.env` file. Keys and values that cannot round-trip are refused.
 */
export function renderEnvFile(env: Record<string, string>, field = "env"): string {
  const lines: string[] = [];
  for (const key of Object.keys(env).sort()) {
    const value = env[key];
    if (!ENV_KEY.test(key)) {
      throw new Error(`${field}: key ${JSON.stringify(key)} is not a valid environment variable name`);
    }
    if (typeof value !== "string") {
      throw new Error(`${field}.${key}: value must be a string`);
    }
    const line = quoteEnvValue(value);
    if (typeof line !== "string") {
      throw new Error(`${field}.${key}: a value ${line.problem}`);
    }
    lines.push(`${key}=${line}`);
  }
  return lines.join("\n") + (lines.length ? "\n" : "");
}
