// The guardrails of the homelab stack, one exported policy per rule so each can be tested alone.
//
// Rules read resource properties as plain JSON rather than through the provider SDKs' classes: the
// pack stays light to load, and the same code checks resources the program declares and the ones a
// ConfigGroup renders from YAML. Under the engine, properties come wrapped in @pulumi/policy's
// proxy, which throws when a rule reads a value unknown during preview; the engine turns that into
// an advisory "can't run during preview" note and the rule runs for real on `up`, when it is known.

import type {
  PolicyResource,
  ReportViolation,
  ResourceValidationArgs,
  ResourceValidationPolicy,
  StackValidationArgs,
  StackValidationPolicy,
} from "@pulumi/policy";

/** The release tag the image policies select (lib/config.ts DEFAULT_TAG_PATTERN, without its named group). */
export const RELEASE_TAG_PATTERN = /^main-[a-f0-9]{7}-[0-9]{10}$/;

/**
 * Third-party images accepted with an exact release version instead of a release tag or digest:
 * Flux's controllers, which the stack installs from a pinned release's install.yaml. A stack can
 * replace the list through the policy's `vendorImages` config.
 */
export const DEFAULT_VENDOR_IMAGES: readonly string[] = ["^ghcr\\.io/fluxcd/[a-z0-9-]+:v[0-9]+\\.[0-9]+\\.[0-9]+$"];

export const TRAEFIK_PRIORITY = "traefik.ingress.kubernetes.io/router.priority";

type Json = Record<string, unknown>;

function obj(v: unknown): Json | undefined {
  return typeof v === "object" && v !== null && !Array.isArray(v) ? (v as Json) : undefined;
}
function list(v: unknown): unknown[] {
  return Array.isArray(v) ? (v as unknown[]) : [];
}
function str(v: unknown): string | undefined {
  return typeof v === "string" ? v : undefined;
}
function quote(v: unknown): string {
  return v === undefined ? "undefined" : JSON.stringify(v);
}

// ---- pod templates ----------------------------------------------------------

/** Workload types whose pods run until stopped (and so need readiness probes), by where their pod spec is. */
const LONG_RUNNING: Readonly<Record<string, readonly string[]>> = {
  "kubernetes:apps/v1:Deployment": ["spec", "template", "spec"],
  "kubernetes:apps/v1:StatefulSet": ["spec", "template", "spec"],
  "kubernetes:apps/v1:DaemonSet": ["spec", "template", "spec"],
  "kubernetes:apps/v1:ReplicaSet": ["spec", "template", "spec"],
  "kubernetes:core/v1:ReplicationController": ["spec", "template", "spec"],
  "kubernetes:core/v1:Pod": ["spec"],
};
/** Workload types whose pods run to completion. */
const RUN_TO_COMPLETION: Readonly<Record<string, readonly string[]>> = {
  "kubernetes:batch/v1:Job": ["spec", "template", "spec"],
  "kubernetes:batch/v1:CronJob": ["spec", "jobTemplate", "spec", "template", "spec"],
};

export type ContainerKind = "container" | "initContainer" | "ephemeralContainer";

export interface Container {
  readonly kind: ContainerKind;
  readonly name: string;
  readonly spec: Json;
}

/** The pod spec of a workload resource, or undefined for any other type. */
export function podSpec(type: string, props: Json): Json | undefined {
  const at = LONG_RUNNING[type] ?? RUN_TO_COMPLETION[type];
  if (!at) {
    return undefined;
  }
  let v: unknown = props;
  for (const key of at) {
    v = obj(v)?.[key];
  }
  return obj(v) ?? {};
}

/** Every container of a pod spec, init and ephemeral ones included. */
export function containers(spec: Json): Container[] {
  const of = (field: string, kind: ContainerKind): Container[] =>
    list(spec[field]).map((c, i) => {
      const s = obj(c) ?? {};
      return { kind, name: str(s.name) ?? `#${i}`, spec: s };
    });
  return [...of("containers", "container"), ...of("initContainers", "initContainer"), ...of("ephemeralContainers", "ephemeralContainer")];
}

function describe(args: { type: string; name: string }): string {
  return `${args.type} "${args.name}"`;
}
function where(args: { type: string; name: string }, c: Container): string {
  return `${describe(args)} ${c.kind} "${c.name}"`;
}

// ---- images pinned ----------------------------------------------------------

const DIGEST = /@sha256:[a-f0-9]{64}$/;

/** Why an image reference is not pinned, or undefined when it is. */
export function imagePinProblem(image: string, vendorImages: readonly string[] = DEFAULT_VENDOR_IMAGES): string | undefined {
  const digest = DIGEST.test(image);
  const name = image.replace(/@.*$/, "");
  const colon = name.lastIndexOf(":");
  const tag = colon > name.lastIndexOf("/") ? name.slice(colon + 1) : undefined;
  // A digest pins the content, but a `latest` tag beside it still misleads whoever reads it.
  if (tag === "latest") {
    return "uses the mutable tag latest";
  }
  if (digest) {
    return undefined;
  }
  if (image.includes("@")) {
    return "has a digest that is not sha256:<64 hex digits>";
  }
  if (tag === undefined) {
    return "has no tag and no digest";
  }
  if (RELEASE_TAG_PATTERN.test(tag) || vendorImages.some((p) => new RegExp(p).test(image))) {
    return undefined;
  }
  return `has tag "${tag}", which is neither a release tag (${RELEASE_TAG_PATTERN.source}) nor pinned by @sha256 digest`;
}

export interface ImagesPinnedConfig {
  /** Regexes of whole third-party image references accepted without a release tag or digest. */
  readonly vendorImages?: string[];
}

export const imagesPinned: ResourceValidationPolicy = {
  name: "images-pinned",
  description: "Every container image carries a release tag (main-<sha7>-<unix time>) or a sha256 digest; never latest or untagged.",
  enforcementLevel: "mandatory",
  configSchema: {
    properties: {
      vendorImages: {
        type: "array",
        items: { type: "string" },
        default: [...DEFAULT_VENDOR_IMAGES],
        description: "Regexes of whole third-party image references pinned by an exact version.",
      },
    },
  },
  validateResource: (args: ResourceValidationArgs, report: ReportViolation) => {
    const spec = podSpec(args.type, args.props);
    if (!spec) {
      return;
    }
    const vendorImages = args.getConfig<ImagesPinnedConfig>().vendorImages ?? DEFAULT_VENDOR_IMAGES;
    for (const c of containers(spec)) {
      const image = str(c.spec.image);
      const problem = image === undefined ? "has no image" : imagePinProblem(image, vendorImages);
      if (problem) {
        report(`${where(args, c)}: image ${quote(image)} ${problem}`);
      }
    }
  },
};

// ---- limits and readiness ---------------------------------------------------

function hasQuantity(v: unknown): boolean {
  return (typeof v === "string" && v.trim() !== "") || (typeof v === "number" && v > 0);
}

export const containersBounded: ResourceValidationPolicy = {
  name: "containers-limits-and-readiness",
  description: "Containers set cpu and memory limits and, in long-running workloads, a readiness probe (init containers excepted).",
  enforcementLevel: "mandatory",
  validateResource: (args: ResourceValidationArgs, report: ReportViolation) => {
    const spec = podSpec(args.type, args.props);
    if (!spec) {
      return;
    }
    // A readiness probe gates Service traffic; pods that run to completion serve none.
    const needsReadiness = args.type in LONG_RUNNING;
    for (const c of containers(spec).filter((x) => x.kind === "container")) {
      const limits = obj(obj(c.spec.resources)?.limits) ?? {};
      const missing = ["cpu", "memory"].filter((k) => !hasQuantity(limits[k]));
      if (missing.length > 0) {
        report(`${where(args, c)}: resources.limits ${quote(limits)} lacks ${missing.join(" and ")}`);
      }
      if (needsReadiness && obj(c.spec.readinessProbe) === undefined) {
        report(`${where(args, c)}: no readinessProbe (readinessProbe is ${quote(c.spec.readinessProbe)})`);
      }
    }
  },
};

// ---- secret material --------------------------------------------------------

/** Key names that say their value is a credential. */
export const SECRET_KEY = /pass(word|wd)|secret|token|api[_-]?key|private[_-]?key|credentials?/i;
/** Keys that name where a secret is rather than hold it, e.g. DB_PASSWORD_FILE=/run/secrets/db. */
const REFERENCE_KEY = /[_-](file|path|ref|name)$/i;

/** Values that are secret material whatever their key is called, with what they look like. */
const SECRET_VALUES: readonly { readonly what: string; readonly re: RegExp }[] = [
  { what: "a private key", re: /-----BEGIN [A-Z0-9 ]*PRIVATE KEY( BLOCK)?-----/ },
  { what: "a GitHub token", re: /\b(gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{22,})\b/ },
  { what: "a GitLab token", re: /\bglpat-[A-Za-z0-9_-]{20,}\b/ },
  { what: "an AWS access key id", re: /\b(AKIA|ASIA)[0-9A-Z]{16}\b/ },
  { what: "a Slack token", re: /\bxox[abprs]-[A-Za-z0-9-]{10,}\b/ },
  { what: "a Google API key", re: /\bAIza[0-9A-Za-z_-]{35}\b/ },
  { what: "a Stripe secret key", re: /\b[sr]k_live_[0-9A-Za-z]{20,}\b/ },
  { what: "an npm token", re: /\bnpm_[A-Za-z0-9]{36}\b/ },
  { what: "a JSON web token", re: /\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}/ },
  { what: "a URL with a password", re: /\b[a-z][a-z0-9+.-]*:\/\/[^\s/:@]+:[^\s/@]+@/i },
];

/**
 * Why a key/value pair looks like secret material, or undefined. The reason never contains the
 * value: violation messages end up in preview output and pull request comments.
 */
export function secretMaterial(key: string, value: string): string | undefined {
  const hit = SECRET_VALUES.find((s) => s.re.test(value));
  if (hit) {
    return `its value looks like ${hit.what}`;
  }
  if (value.trim() !== "" && SECRET_KEY.test(key) && !REFERENCE_KEY.test(key)) {
    return "its name says it holds a secret";
  }
  return undefined;
}

const PLAIN = "; keep it in a Secret (env valueFrom.secretKeyRef or a mounted Secret)";

export const noPlainSecrets: ResourceValidationPolicy = {
  name: "no-plain-secrets",
  description: "No credentials in plain container env values or ConfigMap data; they belong in Secrets.",
  enforcementLevel: "mandatory",
  validateResource: (args: ResourceValidationArgs, report: ReportViolation) => {
    if (args.type === "kubernetes:core/v1:ConfigMap") {
      for (const field of ["data", "binaryData"]) {
        const data = obj(args.props[field]) ?? {};
        for (const key of Object.keys(data)) {
          // binaryData is base64; only its key names can be judged.
          const value = field === "data" ? str(data[key]) ?? "" : "";
          const why = secretMaterial(key, value) ?? (field === "binaryData" && SECRET_KEY.test(key) ? "its name says it holds a secret" : undefined);
          if (why) {
            report(`${describe(args)}: ${field} key ${quote(key)} is plain text, but ${why}${PLAIN}`);
          }
        }
      }
      return;
    }
    const spec = podSpec(args.type, args.props);
    if (!spec) {
      return;
    }
    for (const c of containers(spec)) {
      for (const entry of list(c.spec.env)) {
        const e = obj(entry) ?? {};
        const value = str(e.value);
        const name = str(e.name) ?? "";
        const why = value === undefined ? undefined : secretMaterial(name, value);
        if (why) {
          report(`${where(args, c)}: env ${quote(name)} is a plain value, but ${why}${PLAIN}`);
        }
      }
    }
  },
};

// ---- remote host keys -------------------------------------------------------

const REMOTE_SCRIPT = "pulumi-nodejs:dynamic/homelab:RemoteScript";
export const REMOTE_TYPES: readonly string[] = [REMOTE_SCRIPT, "command:remote:Command", "command:remote:CopyToRemote", "command:remote:CopyFile"];

/**
 * Fails closed: a hostKey that is absent is a violation even during preview. A hostKey that is an
 * Output known at preview arrives as its string and passes; one still unknown makes the proxy throw,
 * which the engine reports as advisory during preview and checks for real on `up`.
 */
export const remoteHostKeyPinned: ResourceValidationPolicy = {
  name: "remote-host-key-pinned",
  description: "Remote commands and copies over SSH pin the server's host key (connection.hostKey, or trust on first use for the program's RemoteScript).",
  enforcementLevel: "mandatory",
  validateResource: (args: ResourceValidationArgs, report: ReportViolation) => {
    if (!REMOTE_TYPES.includes(args.type)) {
      return;
    }
    const connection = obj(args.props.connection);
    if (!connection) {
      report(`${describe(args)}: no connection, so no pinned hostKey (connection is ${quote(args.props.connection)})`);
      return;
    }
    const hostKey: unknown = connection.hostKey;
    // The program's own RemoteScript pins the key the host presents on first contact and refuses
    // any other from then on (trust on first use, with a warning); nothing else does.
    if (args.type === REMOTE_SCRIPT && connection.trustOnFirstUse === true) {
      return;
    }
    if (typeof hostKey !== "string" || hostKey.trim() === "") {
      const host = str(connection.host) ?? "?";
      report(`${describe(args)}: connection to ${quote(host)} has hostKey ${quote(hostKey)}; set it to the server's public host key`);
    }
  },
};

// ---- ingress ordering -------------------------------------------------------

export const INGRESS_TYPE = "kubernetes:networking.k8s.io/v1:Ingress";

const isApi = (path: string): boolean => /^\/api(\/|$)/.test(path);
const isRoot = (path: string): boolean => path === "/";

interface IngressRoutes {
  readonly resource: { readonly type: string; readonly name: string; readonly urn: string };
  readonly namespace: string;
  readonly priority: number | undefined;
  readonly rawPriority: unknown;
  readonly paths: readonly string[];
}

function ingressRoutes(r: PolicyResource): IngressRoutes {
  const metadata = obj(r.props.metadata) ?? {};
  const rawPriority: unknown = obj(metadata.annotations)?.[TRAEFIK_PRIORITY];
  const text = typeof rawPriority === "number" ? String(rawPriority) : str(rawPriority);
  const priority = text !== undefined && /^-?[0-9]+$/.test(text.trim()) ? Number(text) : undefined;
  const paths: string[] = [];
  for (const rule of list(obj(r.props.spec)?.rules)) {
    for (const p of list(obj(obj(rule)?.http)?.paths)) {
      paths.push(str(obj(p)?.path) ?? "/");
    }
  }
  return { resource: r, namespace: str(metadata.namespace) ?? "default", priority, rawPriority, paths };
}

/**
 * Traefik sorts routers by priority; with `/` above `/api`, API calls would reach the frontend. An
 * Ingress routing `/api` must outrank every Ingress routing `/` in its namespace, and one Ingress
 * holding both lists `/api` first.
 */
export const ingressApiBeforeRoot: StackValidationPolicy = {
  name: "ingress-api-before-root",
  description: "In each namespace, the Ingress routing /api has a strictly higher Traefik router priority than the one routing /.",
  enforcementLevel: "mandatory",
  validateStack: (args: StackValidationArgs, report: ReportViolation) => {
    const ingresses = args.resources.filter((r) => r.type === INGRESS_TYPE).map(ingressRoutes);
    for (const ing of ingresses) {
      const api = ing.paths.findIndex(isApi);
      const root = ing.paths.findIndex(isRoot);
      if (api >= 0 && root >= 0 && root < api) {
        report(`${describe(ing.resource)} lists "/" (path ${root}) before "${ing.paths[api]}" (path ${api}); list the /api path first`, ing.resource.urn);
      }
    }
    for (const api of ingresses.filter((i) => i.paths.some(isApi))) {
      for (const web of ingresses.filter((i) => i !== api && i.namespace === api.namespace && i.paths.some(isRoot))) {
        if (api.priority === undefined || web.priority === undefined || api.priority <= web.priority) {
          report(
            `${describe(api.resource)} routes /api with ${TRAEFIK_PRIORITY}=${quote(api.rawPriority)}, which must be strictly higher than ` +
              `${quote(web.rawPriority)} of ${describe(web.resource)} routing / in namespace "${api.namespace}"`,
            api.resource.urn,
          );
        }
      }
    }
  },
};

export const resourcePolicies: readonly ResourceValidationPolicy[] = [imagesPinned, containersBounded, noPlainSecrets, remoteHostKeyPinned];
export const stackPolicies: readonly StackValidationPolicy[] = [ingressApiBeforeRoot];
