import { caBundleProblem } from "./ca-cert";
import { CaddyTls } from "./caddy";
import { FLUX_CONTROLLERS, FluxControllers, fluxGitUrl, parseScpAddress, scpAddressProblem } from "./flux-install";
import { ImageRef, checkTag, parseImageRef } from "./image-ref";
import { timestampGroupProblem } from "./image-policy";
import { VersionMarker, parseVersionMarker } from "./version-marker";
import { allowedSignersProblem, publicKeyOf, signerKeys, signersAsAuthorizedKeys } from "./allowed-signers";
import { parseNotifyTargets } from "./notify";
import {
  absolutePathProblem,
  domainProblem,
  intervalProblem,
  nestedQuantifier,
  embeddedCredentials,
  envProblem,
  hostKeyProblem,
  hostPortProblem,
  hostProblem,
  isIpv4,
  k8sNameProblem,
  plainTextProblem,
  privateKeyProblem,
  regexProblem,
  surge,
  surgeProblem,
  urlProblem,
} from "./validate";

/** The config namespace; keys are `homelab:<name>`. */
export const CONFIG_NAMESPACE = "homelab";

/** The Flux release the bootstrap installs unless `homelab:fluxVersion` says otherwise. */
export const FLUX_VERSION = "v2.9.5";

/**
 * The release tags, `main-<sha7>-<unix seconds>`, with the time in the named group `ts` that image
 * automation orders them by. `(?<ts>…)` reads the same in JavaScript and in Go (1.22+), which Flux
 * compiles it with; Go's older `(?P<ts>…)` is a syntax error in JavaScript.
 */
export const DEFAULT_TAG_PATTERN = "^main-[a-f0-9]{7}-(?<ts>[0-9]{10})$";

/** A Docker image reference, registry optional (`caddy:2.10-alpine`, `ghcr.io/org/app:1@sha256:…`). */
const DOCKER_REF = /^([a-z0-9.-]+(:[0-9]{1,5})?\/)?[a-z0-9]+([._/-][a-z0-9]+)*(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[a-f0-9]{64})?$/;

type Kind = "string" | "integer" | "boolean" | "array" | "secret";

interface KeySpec {
  readonly kind: Kind;
  readonly description: string;
  readonly default?: string | number | boolean | string[];
}

/**
 * Every config key the program reads, with its type and default. Pulumi.yaml declares the same
 * schema for `pulumi config`; a unit test keeps the two in step. The engine treats a declared key
 * without a default as required, but which keys are required depends on the parts a stack
 * deploys, so every key has a default ("" is read as unset) and parseConfig names what is missing.
 */
export const CONFIG_KEYS = {
  deployHomelab: { kind: "boolean", default: true, description: "Deploy the homelab: Flux and the frontend on k3s, the backend on its VM, the health gates." },
  deployVps: { kind: "boolean", default: false, description: "Deploy the VPS app behind its Caddy sidecar." },
  protect: {
    kind: "boolean",
    default: true,
    description: "Protect the website namespace, Flux's installation and the hosts' compose projects: pulumi destroy refuses them while on (set it false, then up, to delete the stack).",
  },

  registry: { kind: "string", default: "", description: "Registry host:port holding the frontend and backend images (Harbor)." },
  registryInsecure: { kind: "boolean", default: true, description: "The registry speaks plain HTTP." },
  registryCaCert: {
    kind: "string",
    default: "",
    description:
      "PEM certificate of the CA that signed the https registry's certificate, when the hosts' system roots do not hold it (pulumi config set homelab:registryCaCert < ca.crt).",
  },
  registryTokenHosts: {
    kind: "array",
    default: [],
    description:
      "Hosts (host[:port]) other than a registry's own to whose https token endpoint its credentials may be sent when it asks (e.g. auth.docker.io); both registries' credentials go nowhere else.",
  },
  registryUsername: { kind: "string", default: "", description: "Registry user that pulls and scans images." },
  registryPassword: { kind: "secret", default: "", description: "Password of registryUsername." },

  kubeconfig: { kind: "secret", default: "", description: "Kubeconfig of the k3s cluster." },
  kubeContext: { kind: "string", default: "", description: "Context in the kubeconfig; its current context when unset." },

  namespace: { kind: "string", default: "website", description: "Namespace of the frontend." },
  frontendImage: { kind: "string", default: "frontend", description: "Repository of the frontend image in the registry." },
  backendImage: { kind: "string", default: "backend", description: "Repository of the backend image in the registry." },
  tagPattern: {
    kind: "string",
    default: DEFAULT_TAG_PATTERN,
    description: "Regular expression every release tag must match; its named group ts holds the build's unix time, and image automation picks the tag whose ts is highest.",
  },
  releaseFile: { kind: "string", default: "flux/clusters/production/release.yaml", description: "Release file (relative to the project) carrying both image references." },
  frontendTag: { kind: "string", default: "", description: "Override the release file's frontend tag in this stack only (the deploy never sets it; git stays the record)." },
  backendTag: { kind: "string", default: "", description: "Override the release file's backend tag in this stack only (the deploy never sets it; git stays the record)." },

  frontendReplicas: { kind: "integer", default: 2, description: "Frontend pods." },
  frontendRolloutSurge: {
    kind: "string",
    default: "100%",
    description: "New frontend pods a rollout starts at once: a count, or a percentage of frontendReplicas; an old pod goes only once a new one is ready.",
  },
  frontendPort: { kind: "integer", default: 8080, description: "Port the frontend container listens on." },
  frontendHealthPath: { kind: "string", default: "/", description: "Path of the frontend's readiness probe and health gate." },
  frontendVersionMarker: {
    kind: "string",
    default: "",
    description: "Where the frontend says which version answers, checked against the deployed frontend tag: header:NAME (a response header), json:FIELD.PATH or meta:NAME (<meta name=NAME content=TAG> in the page); unset: the frontend gate cannot check the version, and says so.",
  },
  frontendVersionPath: { kind: "string", default: "/", description: "URL path the frontend gate reads the version marker from." },
  frontendHost: { kind: "string", default: "", description: "Host name the ingress answers for; every host when unset." },
  ingressClass: { kind: "string", default: "traefik", description: "IngressClass of the cluster's ingress controller." },
  publicUrl: { kind: "string", default: "", description: "Base URL of the ingress, used by the health gates (e.g. http://website.lan)." },

  vmHost: { kind: "string", default: "", description: "Host or IPv4 address of the backend VM." },
  backendAddress: { kind: "string", default: "", description: "Address the cluster's ingress uses to reach the backend VM; vmHost when unset (Kubernetes refuses loopback endpoint addresses)." },
  vmPort: { kind: "integer", default: 22, description: "SSH port of the backend VM." },
  vmUser: { kind: "string", default: "ubuntu", description: "SSH user on the backend VM (needs Docker access)." },
  vmHostKey: {
    kind: "string",
    default: "",
    description: "The VM's public SSH host key ('ssh-ed25519 AAAA…'), pinned on every connection; when unset, the key the VM presents on first contact is pinned (trust on first use, with a warning).",
  },
  vmSkipHostKeyCheck: { kind: "boolean", default: false, description: "Removed: true is refused. Host keys are always checked; leave vmHostKey unset to pin the key on first contact." },
  vmPrivateKey: { kind: "secret", default: "", description: "Private SSH key of vmUser." },
  deployDir: { kind: "string", default: "/opt/backend", description: "Directory on the VM holding the compose file, .env and release history." },
  backendPort: { kind: "integer", default: 3001, description: "Port the backend listens on, in the container and on the VM." },
  backendContainerName: { kind: "string", default: "backend", description: "Container name of the backend." },
  backendHealthPath: { kind: "string", default: "/api/health", description: "Health endpoint of the backend." },
  backendVersionField: { kind: "string", default: "", description: "JSON field (dot path) of the backend's health response that must equal the deployed backend tag; unset: the backend gate cannot check which version answers, and says so." },
  backendBindAddress: { kind: "string", default: "0.0.0.0", description: "Address on the VM the backend's port binds to." },
  backendHealthcheck: { kind: "array", default: [], description: "Container health check command of the backend (compose 'test' form); a Node.js probe when empty." },
  backendEnv: { kind: "secret", default: "", description: "JSON object of the backend's environment, written to .env (mode 0600)." },

  fluxInstall: { kind: "boolean", default: true, description: "Install Flux's controllers and CRDs." },
  fluxControllers: {
    kind: "string",
    default: "in-cluster",
    description: "Where Flux's controllers run: 'in-cluster' installs them with the CRDs; 'external' installs only the CRDs, the namespace and the aggregated view/edit roles, for controllers run outside the cluster.",
  },
  fluxAdopt: {
    kind: "boolean",
    default: false,
    description:
      "Take over Flux objects in flux-system that something else made (flux bootstrap): their url, path and prune become the program's, and with prune Flux deletes what their old path applied. Off: a deploy that finds them stops before anything changes, naming them.",
  },
  fluxVersion: { kind: "string", default: FLUX_VERSION, description: "Flux release to install." },
  fluxManifests: { kind: "string", default: "", description: "Flux install manifests: an https URL or a local directory; the release's install.yaml when unset." },
  fluxManifestsSha256: {
    kind: "string",
    default: "",
    description: "SHA-256 (64 hex digits) the install manifests read from a URL must have; a download that differs is refused before anything of it is applied. Unset: whatever the URL serves.",
  },
  gitUrl: {
    kind: "string",
    default: "",
    description: "Git repository Flux syncs and image automation pushes to: ssh://git@host/owner/repo.git, git@host:owner/repo.git (read as that ssh:// URL) or https://host/owner/repo.git.",
  },
  gitBranch: { kind: "string", default: "master", description: "Branch Flux checks out and pushes to." },
  gitPath: { kind: "string", default: "./flux/clusters/production", description: "Path in the repository Flux applies and image automation updates." },
  gitInterval: { kind: "string", default: "1m", description: "How often Flux fetches the repository." },
  gitDeployKey: { kind: "secret", default: "", description: "Private deploy key (read-write) for an ssh gitUrl (ssh:// or git@host:…)." },
  gitKnownHosts: { kind: "string", default: "", description: "known_hosts line of the git server, for an ssh gitUrl (ssh:// or git@host:…)." },
  trustedSigners: {
    kind: "string",
    default: "",
    description:
      "Keys whose SSH-signed commits the deploy runs, one a line as git's gpg.ssh.allowedSignersFile has them ('principal keytype base64'); a commit none of them signed may change the release file alone. Unset: --watch takes only release-file changes, and a deploy run by hand takes the branch as it is.",
  },
  fluxVerifyCommits: {
    kind: "boolean",
    default: false,
    description:
      "Flux applies the branch only while its head commit is signed by a key of trustedSigners (SSH signatures, its GitRepository's verify); image automation then signs its commits with fluxSigningKey, and the rollback commits the deploy makes must be signed too (git's commit signing set up in the checkout).",
  },
  fluxSigningKey: {
    kind: "secret",
    default: "",
    description: "Private SSH key (no passphrase) image automation signs its commits with, needed with fluxVerifyCommits; its public key must be one of trustedSigners.",
  },
  imageScanInterval: { kind: "string", default: "1m", description: "How often Flux scans the registry for new tags." },
  commitAuthorName: { kind: "string", default: "fluxcdbot", description: "Author of image automation commits." },
  commitAuthorEmail: { kind: "string", default: "fluxcdbot@users.noreply.github.com", description: "Email of image automation commits." },

  gateDeadlineSeconds: { kind: "integer", default: 300, description: "How long a health gate waits before the release fails." },
  postPromotionWatchSeconds: {
    kind: "integer",
    default: 600,
    description: "For this long after a promotion, --watch and npm run status treat the promoted release's crash loop or failing gate as the release's failure, and --watch rolls it back with a rollback commit; after it, such a fault is drift, repaired. 0: no window.",
  },
  notify: {
    kind: "secret",
    default: "",
    description:
      'JSON list of receivers told about promotions, repairs, rollbacks, failed rollbacks, platform failures and freezes: [{"kind": "webhook"|"ntfy"|"discord"|"slack", "url": "…", "hmacKey": "…" (webhook only)}].',
  },
  gateSoakSeconds: {
    kind: "integer",
    default: 60,
    description: "After a gate first passes, how long it keeps probing; any failed probe (a crash, another version answering) or any restart of the part's pods or container in that window fails the stage. 0: pass on the first good answer.",
  },
  gateIntervalSeconds: { kind: "integer", default: 1, description: "First wait between health probes once a gate's first 15 s have passed (backs off to 10s); in those first 15 s a gate probes every 250 ms, so it passes as soon as a part that has just rolled out serves." },
  gateTimeoutSeconds: { kind: "integer", default: 5, description: "Timeout of one health probe." },
  vmStepDeadlineSeconds: {
    kind: "integer",
    default: 0,
    description: "How long each step of the backend deploy on the VM (waiting for another deploy, the registry login, the pull, compose up) may take before it fails and the previous release is restored; 0 is gateDeadlineSeconds.",
  },

  vpsHost: { kind: "string", default: "", description: "Host name or IPv4 address of the VPS." },
  vpsPort: { kind: "integer", default: 22, description: "SSH port of the VPS." },
  vpsUser: { kind: "string", default: "root", description: "SSH user on the VPS (root, or a user with Docker access)." },
  vpsHostKey: { kind: "string", default: "", description: "The VPS's public SSH host key ('ssh-ed25519 AAAA…'), pinned on every connection." },
  vpsPrivateKey: { kind: "secret", default: "", description: "Private SSH key of vpsUser." },
  vpsInstallDocker: { kind: "boolean", default: false, description: "Install Docker and compose v2 on the VPS where missing (get.docker.com; needs root or passwordless sudo)." },
  vpsDockerInstallSha256: {
    kind: "string",
    default: "",
    description: "SHA-256 (64 hex digits) get.docker.com's script must have before vpsInstallDocker runs it; a script that differs installs nothing. Unset: whatever get.docker.com serves.",
  },
  vpsDeployDir: { kind: "string", default: "/opt/app", description: "Directory on the VPS holding the compose file, Caddyfile, .env and release history." },
  vpsDomain: { kind: "string", default: "", description: "Domain the app is served on over HTTPS; its DNS must point at the VPS." },
  vpsTls: { kind: "string", default: "acme", description: "Where Caddy gets the certificate: 'acme' (Let's Encrypt) or 'internal' (Caddy's own CA, for test domains)." },
  vpsAcmeEmail: { kind: "string", default: "", description: "Email the ACME CA may write to about the certificate." },
  vpsImage: { kind: "string", default: "", description: "The app's image, registry/repository:tag (pinned by digest at deploy unless vpsVersionOwner is 'app')." },
  vpsVersionOwner: {
    kind: "string",
    default: "program",
    description:
      "Who owns the app's version: 'program' (pinned by digest, a new tag or digest and pulumi up roll it; no webhook) or 'app' (the app follows vpsImage's tag and updates itself through its webhook; the program never reverts it).",
  },
  vpsRegistryUsername: { kind: "string", default: "_token", description: "User of the app's registry (GHCR accepts any name with a token)." },
  vpsRegistryToken: { kind: "secret", default: "", description: "Token of the app's private registry (a GitHub PAT with read:packages for GHCR); anonymous pulls when unset." },
  vpsRegistryInsecure: { kind: "boolean", default: false, description: "The app's registry speaks plain HTTP." },
  vpsCaddyImage: { kind: "string", default: "caddy:2.10-alpine", description: "Image of the Caddy sidecar." },
  vpsAppName: {
    kind: "string",
    default: "app",
    description: "Compose project and service name of the app. Its volumes carry it, so a new name is refused unless vpsRenamedFrom confirms it.",
  },
  vpsRenamedFrom: { kind: "string", default: "", description: "The app's previous vpsAppName, set to confirm a rename once its volumes' data is moved." },
  vpsAppPort: { kind: "integer", default: 8000, description: "Port the app listens on inside the compose network (never published on the host)." },
  vpsDataPath: { kind: "string", default: "/data", description: "Where the app's data volume is mounted in its container." },
  vpsApiKeyFile: { kind: "string", default: "/data/api_key.txt", description: "File in the app's container holding the API key it generates; read into the vpsApiKey output. Empty: not read." },
  vpsSshKeysMount: { kind: "string", default: "", description: "Mount <vpsDeployDir>/ssh read-only at this path in the app's container. Empty: no mount." },
  vpsDockerSocket: { kind: "boolean", default: false, description: "Give the app the host's Docker socket (root-equivalent); always given when vpsVersionOwner is 'app'." },
  vpsDockerSocketPath: { kind: "string", default: "/var/run/docker.sock", description: "Path of the Docker engine's socket on the VPS (e.g. /run/user/1000/docker.sock for rootless Docker)." },
  vpsHealthPath: { kind: "string", default: "/api/health", description: "Health endpoint of the app." },
  vpsHealthcheck: { kind: "array", default: [], description: "Container health check of the app (compose 'test' form); a Python probe of vpsHealthPath when empty." },
  vpsDeadlineSeconds: { kind: "integer", default: 120, description: "How long a deploy waits for the app to turn healthy before restoring the previous release." },
  vpsWebhookPath: { kind: "string", default: "/api/self-update", description: "Path of the app's webhook endpoint, for the vpsWebhookUrl output (vpsVersionOwner 'app')." },
  vpsWebhookSecretEnv: { kind: "string", default: "GITHUB_WEBHOOK_SECRET", description: "Variable in .env carrying the generated webhook secret (vpsVersionOwner 'app')." },
  vpsWebhookSecretVersion: { kind: "integer", default: 1, description: "Bump to rotate the webhook secret (vpsVersionOwner 'app'); it stays the same across runs otherwise." },
  vpsEnv: { kind: "secret", default: "", description: "JSON object of further environment of the app, written to .env (mode 0600)." },
  vpsBindAddress: { kind: "string", default: "0.0.0.0", description: "Address on the VPS Caddy's ports bind to." },
  vpsHttpPort: { kind: "integer", default: 80, description: "Host port of Caddy's HTTP listener (ACME challenges, redirects to HTTPS)." },
  vpsHttpsPort: { kind: "integer", default: 443, description: "Host port of Caddy's HTTPS listener." },
} as const satisfies Record<string, KeySpec>;

export type ConfigKey = keyof typeof CONFIG_KEYS;

/** Validated homelab settings; secrets are kept apart so the caller can wrap them. */
export interface HomelabSettings {
  /** `tokenHosts`: where else than the registry's own host its token endpoint may take the credentials (https only). */
  readonly registry: {
    readonly host: string;
    readonly insecure: boolean;
    readonly username: string;
    readonly tokenHosts: readonly string[];
    /** PEM CA certificate(s) the registry's https certificate chains to, beyond the system roots. */
    readonly caCert?: string;
  };
  readonly kubeContext?: string;
  readonly namespace: string;
  /** Protect the namespace, Flux's installation and the backend's compose project from deletion. */
  readonly protect: boolean;
  readonly images: { readonly frontend: string; readonly backend: string };
  readonly tagPattern: string;
  readonly releaseFile: string;
  readonly pins: { readonly frontendTag?: string; readonly backendTag?: string };
  readonly frontend: {
    readonly replicas: number;
    /** maxSurge of the rollout: a count or `N%` (maxUnavailable is always 0). */
    readonly rolloutSurge: number | string;
    readonly port: number;
    readonly healthPath: string;
    /** Where the page says its version, and the path it is read from; none: not checked. */
    readonly version?: { readonly marker: VersionMarker; readonly path: string };
    readonly host?: string;
    readonly ingressClass: string;
    readonly publicUrl: string;
  };
  readonly vm: {
    readonly host: string;
    readonly port: number;
    readonly user: string;
    readonly hostKey?: string;
  };
  readonly backend: {
    /** Where the ingress sends `/api`: an IPv4 address or a DNS name. */
    readonly address: string;
    readonly deployDir: string;
    readonly port: number;
    readonly containerName: string;
    readonly healthPath: string;
    readonly versionField?: string;
    readonly bindAddress: string;
    /** Empty: the compose renderer's default probe. */
    readonly healthcheck: readonly string[];
  };
  readonly flux: {
    readonly install: boolean;
    /** Take over a GitRepository or Kustomization in flux-system that something else made (homelab:fluxAdopt). */
    readonly adopt: boolean;
    readonly controllers: FluxControllers;
    readonly version: string;
    readonly manifests: { readonly kind: "url"; readonly url: string; readonly sha256?: string } | { readonly kind: "directory"; readonly path: string };
    readonly gitUrl: string;
    readonly branch: string;
    readonly path: string;
    readonly interval: string;
    readonly knownHosts?: string;
    readonly imageScanInterval: string;
    /** With homelab:fluxVerifyCommits: the trusted signers as authorized_keys lines, whose signatures Flux requires on the branch head. */
    readonly verifySigners?: string;
    readonly author: { readonly name: string; readonly email: string };
  };
  readonly gates: { readonly deadlineSeconds: number; readonly intervalSeconds: number; readonly timeoutSeconds: number; readonly soakSeconds: number };
  /** Seconds each step of the backend deploy on the VM may take; the gate deadline when 0. */
  readonly vmStepDeadlineSeconds: number;
  /** Seconds after a promotion in which the release's own failure is rolled back by --watch. */
  readonly postPromotionWatchSeconds: number;
}

export interface HomelabSecrets {
  readonly registryPassword: string;
  readonly kubeconfig: string;
  readonly vmPrivateKey: string;
  readonly gitDeployKey?: string;
  /** The SSH key image automation signs its commits with (homelab:fluxVerifyCommits). */
  readonly fluxSigningKey?: string;
  readonly backendEnv: Record<string, string>;
}

/** Who owns the VPS app's version (homelab:vpsVersionOwner). */
export type VersionOwner = "program" | "app";

/** Validated settings of the VPS app. */
export interface VpsSettings {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly hostKey: string;
  readonly installDocker: boolean;
  /** SHA-256 the Docker install script must have (homelab:vpsDockerInstallSha256). */
  readonly dockerInstallSha256?: string;
  /** Protect the app's compose project and its webhook secret from deletion. */
  readonly protect: boolean;
  readonly deployDir: string;
  readonly domain: string;
  readonly tls: CaddyTls;
  /** The app's image as configured; in program mode the program pins it by digest before deploying. */
  readonly image: ImageRef;
  /**
   * Who owns the app's version: `program` pins the image by digest and offers no webhook; `app`
   * names the tag in the compose file, and the app updates itself through its webhook.
   */
  readonly versionOwner: VersionOwner;
  /** `tokenHosts`: as homelab:registryTokenHosts. */
  readonly registry: { readonly username: string; readonly insecure: boolean; readonly tokenHosts: readonly string[] };
  readonly caddyImage: string;
  readonly appName: string;
  /** The app's previous name, confirming a rename (homelab:vpsRenamedFrom). */
  readonly renamedFrom?: string;
  readonly appPort: number;
  readonly dataPath: string;
  readonly apiKeyFile?: string;
  readonly sshKeysMount?: string;
  /** The app gets the Docker socket (always in `app` mode). */
  readonly dockerSocket: boolean;
  /** Where the engine's socket is on the host. */
  readonly dockerSocketPath: string;
  readonly healthPath: string;
  /** Empty: the compose renderer's default probe. */
  readonly healthcheck: readonly string[];
  readonly deadlineSeconds: number;
  readonly webhook: { readonly path: string; readonly envName: string; readonly version: number };
  readonly ports: { readonly bindAddress: string; readonly http: number; readonly https: number };
}

export interface VpsSecrets {
  readonly privateKey: string;
  readonly registryToken?: string;
  readonly env: Record<string, string>;
}

export interface ParsedConfig {
  readonly homelab?: { readonly settings: HomelabSettings; readonly secrets: HomelabSecrets };
  readonly vps?: { readonly settings: VpsSettings; readonly secrets: VpsSecrets };
}

/** All config problems at once, each naming the key and the bad value. */
export class ConfigError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(`invalid stack configuration (${problems.length} problem${problems.length === 1 ? "" : "s"}):\n  - ${problems.join("\n  - ")}`);
    this.name = "ConfigError";
  }
}

/** How homelab:gitUrl may be written, for its error messages. */
const GIT_URL_FORMS = "ssh://git@host/owner/repo.git, git@host:owner/repo.git or https://host/owner/repo.git";

/**
 * What the program does with an https gitUrl, for the error that refuses credentials in it: the
 * bootstrap gives Flux's GitRepository a secretRef only for homelab:gitDeployKey.
 */
const HTTPS_GIT_URL =
  "an https URL needs a git credential helper for the deploy's checkout, and Flux needs a Secret with username and password, " +
  "which this program does not create: without one Flux fetches only a repository anyone can read, and image automation cannot push to it";

/** homelab:gitUrl: an ssh:// or http(s) URL, or git's scp-like address (converted to ssh:// by the caller). */
function gitUrlProblem(value: string): string | undefined {
  const scp = parseScpAddress(value);
  if (scp) {
    return scpAddressProblem(scp);
  }
  const problem = urlProblem(value, ["ssh:", "https:", "http:"]);
  return problem && `${problem} (${GIT_URL_FORMS})`;
}

/** homelab:tagPattern: a regex whose named group `ts` carries the build's time. */
function tagPatternProblem(value: string): string | undefined {
  if (value.includes("(?P<")) {
    return "uses Go's old (?P<name>…) group, which JavaScript refuses: write (?<name>…), which Flux reads as well";
  }
  if (nestedQuantifier(value)) {
    return "repeats a group that itself repeats (like (a+)+), which can take a matcher minutes on one tag: write it without the nested repetition";
  }
  return regexProblem(value) ?? timestampGroupProblem(value);
}

/** Shows a bad value in an error without echoing secrets or huge strings. */
function show(value: string): string {
  return JSON.stringify(value.length > 80 ? `${value.slice(0, 77)}...` : value);
}

/**
 * Reads raw config (`homelab:key` → string, as the engine passes it) against CONFIG_KEYS.
 * `isSecret` tells which keys were set with --secret; secret keys set in plain text are refused.
 */
/** A pinned SHA-256, as `sha256sum` prints it. */
function sha256Problem(v: string): string | undefined {
  return /^[a-f0-9]{64}$/.test(v) ? undefined : "is not a SHA-256 (64 lower-case hex digits)";
}

export function parseConfig(raw: Readonly<Record<string, string>>, isSecret: (fullKey: string) => boolean): ParsedConfig {
  const problems: string[] = [];
  const full = (key: string): string => `${CONFIG_NAMESPACE}:${key}`;

  for (const k of Object.keys(raw)) {
    if (k.startsWith(`${CONFIG_NAMESPACE}:`) && !(k.slice(CONFIG_NAMESPACE.length + 1) in CONFIG_KEYS)) {
      problems.push(`${k}: unknown key (see Pulumi.yaml for the keys this program reads)`);
    }
  }

  const rawValue = (key: ConfigKey): string | undefined => {
    const v = raw[full(key)];
    return v === undefined || v === "" ? undefined : v;
  };

  function str(key: ConfigKey, required: boolean, check?: (v: string) => string | undefined): string | undefined {
    const spec: KeySpec = CONFIG_KEYS[key];
    const v = rawValue(key) ?? ((spec.default as string | undefined) || undefined);
    if (v === undefined) {
      if (required) {
        problems.push(`${full(key)}: required (${spec.description})`);
      }
      return undefined;
    }
    const problem = check?.(v);
    if (problem) {
      problems.push(`${full(key)}: ${show(v)} ${problem}`);
      return undefined;
    }
    return v;
  }

  function int(key: ConfigKey, min: number, max: number): number {
    const spec: KeySpec = CONFIG_KEYS[key];
    const v = rawValue(key);
    if (v === undefined) {
      return spec.default as number;
    }
    const n = Number(v);
    if (!/^-?\d+$/.test(v.trim()) || n < min || n > max) {
      problems.push(`${full(key)}: ${show(v)} is not an integer from ${min} to ${max}`);
      return spec.default as number;
    }
    return n;
  }

  function bool(key: ConfigKey): boolean {
    const spec: KeySpec = CONFIG_KEYS[key];
    const v = rawValue(key);
    if (v === undefined) {
      return spec.default as boolean;
    }
    if (v !== "true" && v !== "false") {
      problems.push(`${full(key)}: ${show(v)} is not true or false`);
      return spec.default as boolean;
    }
    return v === "true";
  }

  function list(key: ConfigKey, check: (v: string) => string | undefined): string[] {
    const v = rawValue(key);
    if (v === undefined) {
      return [...(CONFIG_KEYS[key] as KeySpec).default as string[]];
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(v);
    } catch {
      parsed = undefined;
    }
    if (!Array.isArray(parsed) || !parsed.every((x) => typeof x === "string")) {
      problems.push(`${full(key)}: ${show(v)} is not a list of strings`);
      return [];
    }
    for (const item of parsed) {
      const p = check(item);
      if (p) {
        problems.push(`${full(key)}: item ${show(item)} ${p}`);
      }
    }
    return parsed;
  }

  function secret(key: ConfigKey, required: boolean, check?: (v: string) => string | undefined): string | undefined {
    const v = rawValue(key);
    if (v === undefined) {
      if (required) {
        problems.push(`${full(key)}: required secret; set it with: pulumi config set --secret ${full(key)} …`);
      }
      return undefined;
    }
    if (!isSecret(full(key))) {
      problems.push(`${full(key)}: must be set with --secret (it is stored in plain text)`);
      return undefined;
    }
    const problem = check?.(v);
    if (problem) {
      // Never echo a secret value; name the key and the problem only.
      problems.push(`${full(key)}: the secret value ${problem}`);
      return undefined;
    }
    return v;
  }


  const trustedSigners = str("trustedSigners", false, allowedSignersProblem);

  secret("notify", false, (v) => {
    try {
      parseNotifyTargets(v);
      return undefined;
    } catch (e) {
      return (e as Error).message;
    }
  });

  const deployHomelab = bool("deployHomelab");
  const deployVps = bool("deployVps");
  if (!deployHomelab && !deployVps) {
    problems.push(`${full("deployHomelab")} and ${full("deployVps")} are both false: the stack would deploy nothing`);
  }

  let homelab: ParsedConfig["homelab"];
  if (deployHomelab) {
    const tagPattern = str("tagPattern", true, tagPatternProblem) ?? DEFAULT_TAG_PATTERN;
    const tagCheck = (v: string): string | undefined => {
      try {
        checkTag("", v, tagPattern);
        return undefined;
      } catch {
        return `does not match the release pattern ${tagPattern}`;
      }
    };
    if (bool("vmSkipHostKeyCheck")) {
      problems.push(
        `${full("vmSkipHostKeyCheck")}: "true" no longer turns host-key checking off: remove it and leave homelab:vmHostKey unset, and the first deploy pins the key the VM presents (trust on first use) and refuses any other from then on`,
      );
    }
    // Shown without its credentials: the problem text reaches logs and CI output.
    const rawGitUrl = rawValue("gitUrl") ?? "";
    const scpGitUrl = parseScpAddress(rawGitUrl);
    const gitUrlWithCredentials = embeddedCredentials(rawGitUrl) ?? (scpGitUrl?.user?.includes(":") ? `***@${scpGitUrl.host}:${scpGitUrl.path}` : undefined);
    if (gitUrlWithCredentials) {
      problems.push(
        `${full("gitUrl")}: ${show(gitUrlWithCredentials)} carries credentials (user:token@), which plain config would store and print: ` +
          `use an ssh address (ssh://git@host/owner/repo.git or git@host:owner/repo.git) with homelab:gitDeployKey; ${HTTPS_GIT_URL}`,
      );
    }
    // Flux's GitRepository takes only URLs: the scp-like form becomes its ssh:// URL here, once.
    const gitUrlValue = gitUrlWithCredentials ? undefined : str("gitUrl", true, gitUrlProblem);
    const gitUrl = gitUrlValue === undefined ? undefined : fluxGitUrl(gitUrlValue);
    const gitIsSsh = gitUrl?.startsWith("ssh://") ?? false;
    const fluxVersion = str("fluxVersion", true, (v) => (/^v\d+\.\d+\.\d+$/.test(v) ? undefined : "is not a release like v2.9.5")) ?? FLUX_VERSION;
    const manifestsRaw = str("fluxManifests", false, (v) =>
      /^https?:\/\//.test(v) ? urlProblem(v, ["https:"]) : v.includes("\n") ? "is not a URL or a directory" : undefined,
    );
    const manifestsSha256 = str("fluxManifestsSha256", false, (v) =>
      sha256Problem(v) ??
      (manifestsRaw !== undefined && !/^https?:\/\//.test(manifestsRaw)
          ? `pins manifests read from a URL, and homelab:fluxManifests is the directory ${JSON.stringify(manifestsRaw)}`
          : undefined),
    );
    const pin = manifestsSha256 === undefined ? {} : { sha256: manifestsSha256 };
    const envText = secret("backendEnv", false, envProblem);
    const markerText = str("frontendVersionMarker", false, (v) => {
      try {
        parseVersionMarker(v);
        return undefined;
      } catch (e) {
        return (e as Error).message;
      }
    });
    const versionPath = str("frontendVersionPath", true, (v) => (/^\/[A-Za-z0-9._~/-]*$/.test(v) ? undefined : "is not a URL path")) ?? "/";
    const frontendVersion = markerText === undefined ? undefined : { marker: parseVersionMarker(markerText), path: versionPath };

    const verifyCommits = bool("fluxVerifyCommits");
    if (verifyCommits && rawValue("trustedSigners") === undefined) {
      problems.push(`${full("fluxVerifyCommits")}: true needs ${full("trustedSigners")}, the keys whose signed commits Flux then applies`);
    }
    const signingKey = secret("fluxSigningKey", verifyCommits, (v) => {
      const key = publicKeyOf(v);
      if (key === undefined) {
        return "is not an SSH private key without a passphrase";
      }
      // The public half is not secret: naming it tells which key is meant.
      return trustedSigners !== undefined && !signerKeys(trustedSigners).includes(key)
        ? `has the public key ${key}, which is not one of ${full("trustedSigners")}: Flux would refuse image automation's signed commits`
        : undefined;
    });
    // Checked here, not through str(): a private key pasted by mistake is never quoted back.
    const caCert = rawValue("registryCaCert");
    const caProblem = caCert === undefined ? undefined : caBundleProblem(caCert);
    if (caProblem) {
      problems.push(`${full("registryCaCert")}: ${caProblem}`);
    } else if (caCert !== undefined && bool("registryInsecure")) {
      problems.push(`${full("registryCaCert")}: a CA certificate is for an https registry, and ${full("registryInsecure")} is true (plain HTTP); set ${full("registryInsecure")} false`);
    }
    const settings: HomelabSettings = {
      registry: {
        host: str("registry", true, hostPortProblem) ?? "",
        insecure: bool("registryInsecure"),
        caCert: caProblem ? undefined : caCert,
        username: str("registryUsername", true, (v) => (/^[A-Za-z0-9._@$+-]{1,255}$/.test(v) ? undefined : "is not a registry user name (letters, digits, . _ @ $ + -)")) ?? "",
        tokenHosts: list("registryTokenHosts", hostPortProblem),
      },
      kubeContext: str("kubeContext", false, plainTextProblem),
      namespace: str("namespace", true, k8sNameProblem) ?? "",
      protect: bool("protect"),
      images: {
        frontend: str("frontendImage", true, (v) => (/^[a-z0-9]+([._/-][a-z0-9]+)*$/.test(v) ? undefined : "is not a repository name")) ?? "",
        backend: str("backendImage", true, (v) => (/^[a-z0-9]+([._/-][a-z0-9]+)*$/.test(v) ? undefined : "is not a repository name")) ?? "",
      },
      tagPattern,
      releaseFile: str("releaseFile", true, (v) => (/^[A-Za-z0-9._/-]+$/.test(v) ? undefined : "is not a file path")) ?? "",
      pins: { frontendTag: str("frontendTag", false, tagCheck), backendTag: str("backendTag", false, tagCheck) },
      frontend: {
        replicas: int("frontendReplicas", 1, 50),
        rolloutSurge: surge(str("frontendRolloutSurge", true, surgeProblem) ?? "100%"),
        port: int("frontendPort", 1, 65535),
        healthPath: str("frontendHealthPath", true, (v) => (/^\/[A-Za-z0-9._~/-]*$/.test(v) ? undefined : "is not a URL path")) ?? "/",
        version: frontendVersion,
        host: str("frontendHost", false, hostProblem),
        ingressClass: str("ingressClass", true, k8sNameProblem) ?? "",
        publicUrl: (str("publicUrl", true, urlProblem) ?? "").replace(/\/+$/, ""),
      },
      vm: {
        host: str("vmHost", true, hostProblem) ?? "",
        port: int("vmPort", 1, 65535),
        user: str("vmUser", true, (v) => (/^[a-z_][a-z0-9_-]{0,31}$/.test(v) ? undefined : "is not a user name")) ?? "",
        hostKey: str("vmHostKey", false, hostKeyProblem),
      },
      backend: {
        address: str("backendAddress", false, hostProblem) ?? rawValue("vmHost") ?? "",
        deployDir: str("deployDir", true, absolutePathProblem) ?? "",
        port: int("backendPort", 1, 65535),
        containerName: str("backendContainerName", true, (v) => (/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(v) ? undefined : "is not a container name")) ?? "",
        healthPath: str("backendHealthPath", true, (v) => (/^\/[A-Za-z0-9._~/-]*$/.test(v) ? undefined : "is not a URL path")) ?? "",
        bindAddress: str("backendBindAddress", true, (v) => (isIpv4(v) ? undefined : "is not an IPv4 address")) ?? "",
        healthcheck: list("backendHealthcheck", (v) => (v.includes("\n") ? "contains a line break" : undefined)),
        versionField: str("backendVersionField", false, (v) => (/^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$/.test(v) ? undefined : "is not a JSON field path like version or build.tag")),
      },
      flux: {
        install: bool("fluxInstall"),
        adopt: bool("fluxAdopt"),
        controllers: (str("fluxControllers", true, (v) => (FLUX_CONTROLLERS.includes(v as FluxControllers) ? undefined : "is not 'in-cluster' or 'external'")) ??
          "in-cluster") as FluxControllers,
        version: fluxVersion,
        manifests:
          manifestsRaw === undefined
            ? { kind: "url", url: `https://github.com/fluxcd/flux2/releases/download/${fluxVersion}/install.yaml`, ...pin }
            : /^https:\/\//.test(manifestsRaw)
              ? { kind: "url", url: manifestsRaw, ...pin }
              : { kind: "directory", path: manifestsRaw },
        gitUrl: gitUrl ?? "",
        branch: str("gitBranch", true, (v) => (/^[A-Za-z0-9._/-]+$/.test(v) && !v.includes("..") ? undefined : "is not a branch name")) ?? "",
        path: str("gitPath", true, (v) => (/^\.\/[A-Za-z0-9._/-]*$/.test(v) && !v.includes("..") ? undefined : "is not a path like ./flux/clusters/production")) ?? "",
        interval: str("gitInterval", true, intervalProblem(10)) ?? "",
        knownHosts: str("gitKnownHosts", gitIsSsh, (v) => (/^\S+ (ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp\d+) \S+$/.test(v.trim()) ? undefined : "is not a known_hosts line 'host type key'")),
        imageScanInterval: str("imageScanInterval", true, intervalProblem(10)) ?? "",
        verifySigners: verifyCommits && trustedSigners !== undefined ? signersAsAuthorizedKeys(trustedSigners) : undefined,
        author: {
          name: str("commitAuthorName", true, plainTextProblem) ?? "",
          email: str("commitAuthorEmail", true, (v) => (/^[^\s@"'`$\\]+@[^\s@"'`$\\]+$/.test(v) ? undefined : "is not an email address")) ?? "",
        },
      },
      gates: {
        deadlineSeconds: int("gateDeadlineSeconds", 5, 3600),
        intervalSeconds: int("gateIntervalSeconds", 1, 60),
        timeoutSeconds: int("gateTimeoutSeconds", 1, 120),
        soakSeconds: int("gateSoakSeconds", 0, 3600),
      },
      vmStepDeadlineSeconds: int("vmStepDeadlineSeconds", 0, 3600),
      postPromotionWatchSeconds: int("postPromotionWatchSeconds", 0, 86400),
    };
    const secrets: HomelabSecrets = {
      registryPassword: secret("registryPassword", true) ?? "",
      kubeconfig: secret("kubeconfig", true, (v) => (/apiVersion|clusters/.test(v) ? undefined : "is not a kubeconfig")) ?? "",
      vmPrivateKey: secret("vmPrivateKey", true, privateKeyProblem) ?? "",
      gitDeployKey: secret("gitDeployKey", gitIsSsh, privateKeyProblem),
      fluxSigningKey: signingKey,
      backendEnv: envText ? (JSON.parse(envText) as Record<string, string>) : {},
    };
    homelab = { settings, secrets };
  }

  let vps: ParsedConfig["vps"];
  if (deployVps) {
    const image = str("vpsImage", true, (v) => {
      try {
        parseImageRef(v);
        return undefined;
      } catch {
        return "is not an image reference registry/repository:tag[@sha256:digest]";
      }
    });
    const tls = str("vpsTls", true, (v) => (v === "acme" || v === "internal" ? undefined : "is not 'acme' or 'internal'"));
    const appName = str("vpsAppName", true, (v) =>
      /^[a-z0-9][a-z0-9_-]{0,62}$/.test(v) && v !== "caddy" ? undefined : "is not a compose service name (lowercase letters, digits, '_', '-'; not 'caddy')",
    );
    const owner = str("vpsVersionOwner", true, (v) => (v === "program" || v === "app" ? undefined : "is not 'program' or 'app'"));
    const versionOwner: VersionOwner = owner === "app" ? "app" : "program";
    if (versionOwner === "app" && image !== undefined && parseImageRef(image).digest) {
      // A digest would stop the app from ever moving: it follows the tag.
      problems.push(`${full("vpsImage")}: ${show(image)} names a digest, but with ${full("vpsVersionOwner")} 'app' the app follows a tag (registry/repository:tag)`);
    }
    const webhookEnv = str("vpsWebhookSecretEnv", true, (v) => (/^[A-Za-z_][A-Za-z0-9_]*$/.test(v) ? undefined : "is not an environment variable name"));
    const envText = secret("vpsEnv", false, envProblem);
    const env = envText ? (JSON.parse(envText) as Record<string, string>) : {};
    if (versionOwner === "app" && webhookEnv !== undefined && webhookEnv in env) {
      problems.push(`${full("vpsEnv")}: sets ${webhookEnv}, which holds the generated webhook secret (see ${full("vpsWebhookSecretEnv")})`);
    }
    const urlPath = (v: string): string | undefined => (/^\/[A-Za-z0-9._~/-]*$/.test(v) ? undefined : "is not a URL path");
    const containerPath = (v: string): string | undefined => absolutePathProblem(v);
    const settings: VpsSettings = {
      host: str("vpsHost", true, hostProblem) ?? "",
      port: int("vpsPort", 1, 65535),
      user: str("vpsUser", true, (v) => (/^[a-z_][a-z0-9_-]{0,31}$/.test(v) ? undefined : "is not a user name")) ?? "",
      hostKey: str("vpsHostKey", true, hostKeyProblem) ?? "",
      installDocker: bool("vpsInstallDocker"),
      dockerInstallSha256: str("vpsDockerInstallSha256", false, sha256Problem),
      protect: bool("protect"),
      deployDir: str("vpsDeployDir", true, absolutePathProblem) ?? "",
      domain: str("vpsDomain", true, domainProblem) ?? "",
      tls:
        tls === "internal"
          ? { kind: "internal" }
          : { kind: "acme", email: str("vpsAcmeEmail", false, (v) => (/^[^\s@"'`$\\{}]+@[^\s@"'`$\\{}]+\.[^\s@"'`$\\{}]+$/.test(v) ? undefined : "is not an email address")) },
      image: image ? parseImageRef(image) : { registry: "", repository: "", tag: "" },
      registry: {
        username: str("vpsRegistryUsername", true, (v) => (/^[A-Za-z0-9._@$+-]{1,255}$/.test(v) ? undefined : "is not a registry user name (letters, digits, . _ @ $ + -)")) ?? "",
        insecure: bool("vpsRegistryInsecure"),
        tokenHosts: list("registryTokenHosts", hostPortProblem),
      },
      caddyImage: str("vpsCaddyImage", true, (v) => (DOCKER_REF.test(v) ? undefined : "is not an image reference")) ?? "",
      appName: appName ?? "",
      renamedFrom: str("vpsRenamedFrom", false, (v) => (/^[a-z0-9][a-z0-9_-]{0,62}$/.test(v) ? undefined : "is not a compose project name")),
      appPort: int("vpsAppPort", 1, 65535),
      dataPath: str("vpsDataPath", true, containerPath) ?? "",
      apiKeyFile: str("vpsApiKeyFile", false, containerPath),
      sshKeysMount: str("vpsSshKeysMount", false, containerPath),
      versionOwner,
      dockerSocket: bool("vpsDockerSocket") || versionOwner === "app",
      dockerSocketPath: str("vpsDockerSocketPath", true, absolutePathProblem) ?? "",
      healthPath: str("vpsHealthPath", true, urlPath) ?? "",
      healthcheck: list("vpsHealthcheck", (v) => (v.includes("\n") ? "contains a line break" : undefined)),
      deadlineSeconds: int("vpsDeadlineSeconds", 5, 3600),
      webhook: {
        path: str("vpsWebhookPath", true, urlPath) ?? "",
        envName: webhookEnv ?? "",
        version: int("vpsWebhookSecretVersion", 1, 1_000_000),
      },
      ports: {
        bindAddress: str("vpsBindAddress", true, (v) => (isIpv4(v) ? undefined : "is not an IPv4 address")) ?? "",
        http: int("vpsHttpPort", 1, 65535),
        https: int("vpsHttpsPort", 1, 65535),
      },
    };
    if (settings.ports.http === settings.ports.https) {
      problems.push(`${full("vpsHttpPort")} and ${full("vpsHttpsPort")}: both are ${settings.ports.http}`);
    }
    vps = {
      settings,
      secrets: {
        privateKey: secret("vpsPrivateKey", true, privateKeyProblem) ?? "",
        registryToken: secret("vpsRegistryToken", false),
        env,
      },
    };
  }

  if (problems.length > 0) {
    throw new ConfigError(problems);
  }
  return { homelab, vps };
}
