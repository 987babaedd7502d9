/**
 * A stand-in for Flux's image-reflector-controller and image-automation-controller, which the
 * sandbox cannot build (the Go module proxy refuses every version of both). It plays them on the
 * program's own objects, following upstream's documented semantics; it is not Flux.
 *
 * What it plays, one pass at a time (runImageAutomationOnce), for the objects of one namespace:
 * - ImageRepository: lists the registry's tags (`GET /v2/<repo>/tags/list`, plain HTTP when
 *   `spec.insecure`, basic or token auth from the `spec.secretRef` dockerconfigjson Secret, over
 *   https trusting the `ca.crt` of `spec.certSecretRef`, an Opaque or kubernetes.io/tls Secret), drops
 *   the tags an `spec.exclusionList` regex matches (`^.*\.sig$` when the list is empty) and
 *   reports the scan in its status. `spec.suspend` skips it.
 * - ImagePolicy: `spec.filterTags` (pattern, `extract` expanded as Go's Regexp.Expand), then a
 *   `numerical` or `alphabetical` policy in either order; the pick goes to `status.latestRef`
 *   (`status.latestImage` on the pre-v1 APIs) through the status subresource, with a Ready
 *   condition worded as upstream's. A numerical ascending policy extracting `$ts` is decided by
 *   the product's own rule (lib/image-policy.ts selectTag). `spec.suspend` skips it.
 * - ImageUpdateAutomation: clones its GitRepository (ssh:// with the deploy key and the pinned
 *   known_hosts of the GitRepository's Secret) on `git.checkout.ref.branch`, rewrites the setter
 *   markers under `update.path` (lib/setters.ts: only YAML files, only the marked values), commits
 *   as `git.commit.author` with `git.commit.messageTemplate` rendered (signed with the SSH key of
 *   `git.commit.signingKey` when it has type `ssh`), and pushes to
 *   `git.push.branch`; a push that is not a fast-forward is fetched, redone and retried. Nothing
 *   changed, nothing committed. `spec.suspend` skips it; `spec.policySelector.matchLabels` is honoured.
 *
 * What it does not play: intervals (`spec.interval`, the reconcile annotation) beyond its own
 * loop; semver policies (skipped, saying so); digest reflection (`digestReflectionPolicy`, so a
 * `:digest` marker is left alone); signature verification, OpenPGP commit signing (`signingKey` of type `gpg`), push
 * refspecs and options, `policySelector.matchExpressions`, cross-namespace ACLs, cloud provider
 * auth, proxies and TLS client certificates; checkouts by tag, semver or commit; https git with a
 * password; Go-only regular expression syntax beyond `(?P<name>…)`. Templates beyond
 * `{{ range .Changed.Changes }}` with `.OldValue`/`.NewValue`/`.Setter` get a fixed message.
 * Upstream re-serialises a changed file with kyaml; here only the marked values' bytes change.
 */

import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { fetch as undiciFetch } from "undici";
import { DECIMAL, selectTag, TIMESTAMP_EXTRACT } from "../lib/image-policy";
import { shq } from "../lib/shell";
import { RegistryCredentials, agentFor, parseChallenge, tokenEndpointProblem } from "../lib/registry-client";
import {
  LatestImage,
  PolicyLatest,
  SetterChange,
  applySetters,
  fallbackCommitMessage,
  isSetterCandidate,
  renderCommitMessage,
  setterValues,
  uniqueChanges,
} from "../lib/setters";
import { FLUX_NAMESPACE } from "./flux-controllers";
import { ISOLATED_GIT_ENV } from "./git-server";
import { KubeClient, kubeClient } from "./kube";
import { runCommand, runningProcess, startProcess, stopProcess } from "./processes";

const REPO = path.resolve(__dirname, "..");
const PROCESS = "image-automation";

/** What the stand-in says of itself, first thing. */
export const STAND_IN_NOTICE =
  "image-automation: stand-in for Flux's image-reflector-controller and image-automation-controller: " +
  "reads the ImageRepository, ImagePolicy and ImageUpdateAutomation objects, lists the registry's tags, " +
  "writes ImagePolicy status and commits setter updates, as upstream documents; not Flux " +
  "(numerical and alphabetical policies only, no semver, no digest reflection, no signatures; see sandbox/image-automation.ts)";

// ---------------------------------------------------------------------------------------------
// Pure: tag selection as image-reflector-controller's internal/policy does it.
// ---------------------------------------------------------------------------------------------

/** A policy that cannot pick (upstream's wording), or one this stand-in does not play. */
export class PolicyError extends Error {
  constructor(
    message: string,
    /** Upstream stalls on these (a spec that cannot work); the others are retried. */
    readonly invalid = false,
    readonly notPlayed = false,
  ) {
    super(message);
    this.name = "PolicyError";
  }
}

/** A Go (RE2) pattern as a JavaScript one: `(?P<name>` is written `(?<name>`; the rest is shared syntax. */
export function goPatternToJs(pattern: string): string {
  let out = "";
  let inClass = false;
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === "\\") {
      out += pattern.slice(i, i + 2);
      i++;
    } else if (inClass) {
      inClass = c !== "]";
      out += c;
    } else if (c === "[") {
      inClass = true;
      out += c;
    } else if (pattern.startsWith("(?P<", i)) {
      out += "(?<";
      i += 3;
    } else {
      out += c;
    }
  }
  return out;
}

function compile(pattern: string): RegExp {
  try {
    return new RegExp(goPatternToJs(pattern));
  } catch (e) {
    throw new PolicyError(`invalid regular expression pattern '${pattern}': ${(e as Error).message}`, true);
  }
}

/**
 * Go's Regexp.Expand: `$name` (the longest run of letters, digits and `_`), `${name}`, `$1`, and
 * `$$` for a `$`; an unknown or unmatched group expands to nothing, a malformed `$` stays as is.
 */
export function expandExtract(template: string, match: RegExpExecArray): string {
  let out = "";
  for (let i = 0; i < template.length; ) {
    if (template[i] !== "$") {
      out += template[i++];
      continue;
    }
    if (template[i + 1] === "$") {
      out += "$";
      i += 2;
      continue;
    }
    let name: string | undefined;
    let next = i + 1;
    if (template[i + 1] === "{") {
      const close = template.indexOf("}", i + 2);
      const inner = close < 0 ? "" : template.slice(i + 2, close);
      if (/^\w+$/.test(inner)) {
        name = inner;
        next = close + 1;
      }
    } else {
      const m = /^\w+/.exec(template.slice(i + 1));
      if (m) {
        name = m[0];
        next = i + 1 + name.length;
      }
    }
    if (name === undefined) {
      out += "$";
      i++;
      continue;
    }
    // A number without a leading zero is a group index; anything else a group name.
    const index = /^(0|[1-9][0-9]{0,8})$/.test(name) ? Number(name) : undefined;
    out += (index !== undefined ? match[index] : match.groups?.[name]) ?? "";
    i = next;
  }
  return out;
}

/** The tags an ImageRepository keeps: those no exclusion regex matches (`^.*\.sig$` by default, as upstream). */
export function applyExclusions(tags: readonly string[], exclusionList?: readonly string[]): string[] {
  const list = exclusionList && exclusionList.length > 0 ? exclusionList : ["^.*\\.sig$"];
  const regexes = list.map((e) => {
    try {
      return new RegExp(goPatternToJs(e));
    } catch (err) {
      throw new Error(`failed to compile regex ${e}: ${(err as Error).message}`, { cause: err });
    }
  });
  return tags.filter((t) => !regexes.some((r) => r.test(t)));
}

/** The parts of an ImagePolicy's spec the selection reads. */
export interface PolicySpec {
  readonly filterTags?: { readonly pattern?: string; readonly extract?: string };
  readonly policy?: {
    readonly semver?: { readonly range?: string };
    readonly alphabetical?: { readonly order?: string };
    readonly numerical?: { readonly order?: string };
  };
}

function order(value: string | undefined): "ASC" | "DESC" {
  const o = (value ?? "").toUpperCase();
  if (o === "" || o === "ASC") {
    return "ASC";
  }
  if (o === "DESC") {
    return "DESC";
  }
  throw new PolicyError(`invalid order argument provided: '${o}', must be one of: ASC, DESC`, true);
}

/**
 * The tag an ImagePolicy picks from the tags its ImageRepository kept, as upstream does it:
 * filterTags keeps the tags the pattern matches, each replaced by its `extract` expansion (tags
 * expanding alike count once, the later one); the policy orders those values and the original tag
 * of the last wins. Throws PolicyError with upstream's wording when nothing can be picked.
 */
export function selectLatestTag(tags: readonly string[], spec: PolicySpec): string {
  const choice = spec.policy ?? {};
  if (choice.semver) {
    throw new PolicyError(`semver policies (range ${JSON.stringify(choice.semver.range ?? "")}) are not played by this stand-in`, false, true);
  }
  if (!choice.alphabetical && !choice.numerical) {
    throw new PolicyError("given ImagePolicyChoice object is invalid", true);
  }
  const direction = order(choice.alphabetical ? choice.alphabetical.order : choice.numerical?.order);
  const filter = spec.filterTags;
  const pattern = filter?.pattern ?? "";
  const extract = filter?.extract ?? "";

  if (choice.numerical && !choice.alphabetical && direction === "ASC" && extract === TIMESTAMP_EXTRACT && pattern !== "") {
    // The program's own shape: the product's rule decides, so the stand-in cannot drift from it.
    compile(pattern);
    const tag = selectTag(tags, goPatternToJs(pattern), []);
    if (tag === undefined) {
      throw new PolicyError("version list argument cannot be empty");
    }
    return tag;
  }

  // value -> original tag; a later tag with the same value replaces the earlier, as upstream's map.
  const byValue = new Map<string, string>();
  if (filter) {
    const regex = compile(pattern);
    for (const tag of tags) {
      const m = regex.exec(tag);
      if (m) {
        byValue.set(extract === "" ? tag : expandExtract(extract, m), tag);
      }
    }
  } else {
    for (const tag of tags) {
      byValue.set(tag, tag);
    }
  }
  const values = [...byValue.keys()];
  if (values.length === 0) {
    throw new PolicyError("version list argument cannot be empty");
  }
  let latest: string;
  if (choice.alphabetical) {
    // Go compares strings byte by byte; ascending picks the greatest.
    const sorted = values.sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
    latest = direction === "ASC" ? sorted[sorted.length - 1] : sorted[0];
  } else {
    let best: { value: number; text: string } | undefined;
    for (const text of values) {
      if (!DECIMAL.test(text)) {
        throw new PolicyError(`failed to parse invalid numeric value '${text}'`);
      }
      const value = Number(text);
      if (best === undefined || (direction === "ASC" ? value >= best.value : value <= best.value)) {
        best = { value, text };
      }
    }
    latest = best!.text;
  }
  return byValue.get(latest)!;
}

/** An image name split as the registry API needs it (Docker Hub's defaults for a bare name). */
export function parseImageName(image: string): { registry: string; repository: string } {
  const slash = image.indexOf("/");
  const first = slash < 0 ? "" : image.slice(0, slash);
  if (first !== "" && (first.includes(".") || first.includes(":") || first === "localhost")) {
    return { registry: first, repository: image.slice(slash + 1) };
  }
  return { registry: "index.docker.io", repository: slash < 0 ? `library/${image}` : image };
}

/** The credentials a `.dockerconfigjson` document holds for `registry` (keys may carry a scheme or path). */
export function registryCredentials(dockerConfigJson: string, registry: string): RegistryCredentials | undefined {
  const doc = JSON.parse(dockerConfigJson) as { auths?: Record<string, { username?: string; password?: string; auth?: string }> };
  for (const [key, entry] of Object.entries(doc.auths ?? {})) {
    if (key.replace(/^[a-z]+:\/\//, "").split("/")[0] !== registry) {
      continue;
    }
    if (entry.username !== undefined && entry.password !== undefined) {
      return { username: entry.username, password: entry.password };
    }
    if (entry.auth) {
      const plain = Buffer.from(entry.auth, "base64").toString("utf8");
      const colon = plain.indexOf(":");
      if (colon > 0) {
        return { username: plain.slice(0, colon), password: plain.slice(colon + 1) };
      }
    }
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// The registry.
// ---------------------------------------------------------------------------------------------

async function registryFetch(url: string, headers: Record<string, string>, withCredentials: boolean, ca?: string): Promise<Awaited<ReturnType<typeof undiciFetch>>> {
  const dispatcher = ca === undefined ? undefined : agentFor(ca);
  try {
    // Credentials stay on the URL they were meant for: no redirect is followed with them.
    return await undiciFetch(url, { headers, redirect: withCredentials ? "error" : "follow", signal: AbortSignal.timeout(15_000), ...(dispatcher ? { dispatcher } : {}) });
  } catch (e) {
    // As upstream reports a failed request: the URL and why, e.g. the certificate's error.
    const cause = (e as { cause?: { code?: string; message?: string } }).cause;
    throw new Error(`GET ${url}: ${[cause?.code, cause?.message].filter(Boolean).join(": ") || (e as Error).message}`, { cause: e });
  }
}

/**
 * Every tag of `image` (`registry/repository`), following the registry's pagination; over https,
 * `ca` (PEM) is trusted besides the system roots.
 */
export async function listTags(image: string, insecure: boolean, creds?: RegistryCredentials, ca?: string): Promise<string[]> {
  const { registry, repository } = parseImageName(image);
  const base = `${insecure ? "http" : "https"}://${registry}`;
  let url = `${base}/v2/${repository}/tags/list`;
  let authorization: string | undefined;
  const tags: string[] = [];
  for (let page = 0; page < 1000; page++) {
    let res = await registryFetch(url, authorization ? { authorization } : {}, authorization !== undefined, ca);
    if (res.status === 401 && authorization === undefined) {
      await res.arrayBuffer();
      const challenge = parseChallenge(res.headers.get("www-authenticate") ?? "");
      if (challenge.scheme === "bearer" && challenge.params.realm) {
        const refused = creds ? tokenEndpointProblem(challenge.params.realm, registry, insecure) : undefined;
        if (refused) {
          throw new Error(`registry ${registry} asks for a token, and ${refused}`);
        }
        const tokenUrl = new URL(challenge.params.realm);
        if (challenge.params.service) {
          tokenUrl.searchParams.set("service", challenge.params.service);
        }
        tokenUrl.searchParams.set("scope", challenge.params.scope ?? `repository:${repository}:pull`);
        const basic: Record<string, string> = creds ? { authorization: `Basic ${Buffer.from(`${creds.username}:${creds.password}`).toString("base64")}` } : {};
        const t = await registryFetch(tokenUrl.toString(), basic, creds !== undefined, ca);
        if (!t.ok) {
          throw new Error(`registry ${registry}: token endpoint answered ${t.status}`);
        }
        const body = (await t.json()) as { token?: string; access_token?: string };
        authorization = `Bearer ${body.token ?? body.access_token ?? ""}`;
      } else if (creds) {
        authorization = `Basic ${Buffer.from(`${creds.username}:${creds.password}`).toString("base64")}`;
      } else {
        throw new Error(`registry ${registry} wants credentials for ${repository}, and the ImageRepository has none`);
      }
      res = await registryFetch(url, { authorization }, true, ca);
    }
    if (!res.ok) {
      throw new Error(`GET ${url}: HTTP ${res.status} ${(await res.text()).slice(0, 200)}`);
    }
    const body = (await res.json()) as { tags?: string[] | null };
    tags.push(...(body.tags ?? []));
    const next = /<([^>]+)>\s*;\s*rel="?next"?/.exec(res.headers.get("link") ?? "")?.[1];
    if (!next) {
      return tags;
    }
    url = new URL(next, base).toString();
  }
  throw new Error(`registry ${registry}: more than 1000 pages of tags for ${repository}`);
}

// ---------------------------------------------------------------------------------------------
// The objects, as the API server serves them.
// ---------------------------------------------------------------------------------------------

interface Meta {
  name: string;
  namespace: string;
  generation?: number;
  labels?: Record<string, string>;
}

interface Condition {
  type: string;
  status: "True" | "False" | "Unknown";
  reason: string;
  message: string;
  lastTransitionTime: string;
  observedGeneration?: number;
}

interface ImageRepositoryObject {
  metadata: Meta;
  spec: { image: string; secretRef?: { name: string }; certSecretRef?: { name: string }; insecure?: boolean; exclusionList?: string[]; suspend?: boolean };
  status?: { conditions?: Condition[] };
}

interface ImagePolicyObject {
  metadata: Meta;
  spec: PolicySpec & { imageRepositoryRef: { name: string; namespace?: string }; suspend?: boolean };
  status?: { latestRef?: LatestImage; latestImage?: string; observedPreviousRef?: LatestImage; conditions?: Condition[] };
}

interface ImageUpdateAutomationObject {
  metadata: Meta;
  spec: {
    suspend?: boolean;
    sourceRef: { kind?: string; name: string; namespace?: string };
    git?: {
      checkout?: { ref?: { branch?: string; tag?: string; semver?: string; commit?: string; name?: string } };
      commit?: { author?: { name?: string; email?: string }; messageTemplate?: string; signingKey?: { secretRef?: { name?: string }; type?: string } };
      push?: { branch?: string; refspec?: string };
    };
    update?: { path?: string; strategy?: string };
    policySelector?: { matchLabels?: Record<string, string>; matchExpressions?: unknown[] };
  };
  status?: { conditions?: Condition[] };
}

interface GitRepositoryObject {
  metadata: Meta;
  spec: { url: string; ref?: { branch?: string }; secretRef?: { name: string } };
}

interface SecretObject {
  type?: string;
  data?: Record<string, string>;
}

/** The served version of an API group (its preferred one), or undefined when the group is not served. */
async function servedVersion(client: KubeClient, group: string): Promise<string | undefined> {
  const g = await client.get<{ preferredVersion?: { version?: string } }>(`/apis/${group}`);
  return g?.preferredVersion?.version;
}

async function secretData(client: KubeClient, namespace: string, name: string, types?: readonly string[]): Promise<Record<string, string>> {
  const s = await client.get<SecretObject>(`/api/v1/namespaces/${encodeURIComponent(namespace)}/secrets/${encodeURIComponent(name)}`);
  if (!s) {
    throw new Error(`Secret ${namespace}/${name} not found`);
  }
  if (types && !types.includes(s.type ?? "Opaque")) {
    throw new Error(`Secret ${namespace}/${name} has type ${s.type}, not ${types.join(" or ")}`);
  }
  return Object.fromEntries(Object.entries(s.data ?? {}).map(([k, v]) => [k, Buffer.from(v, "base64").toString("utf8")]));
}

/**
 * The CA of `spec.certSecretRef` (its `ca.crt`), for a registry with a self-signed or private
 * certificate. The Secret must be of type Opaque or kubernetes.io/tls, as upstream documents.
 */
async function registryCa(client: KubeClient, namespace: string, ref: { name: string } | undefined): Promise<string | undefined> {
  if (!ref) {
    return undefined;
  }
  const data = await secretData(client, namespace, ref.name, ["Opaque", "kubernetes.io/tls"]);
  if (data["tls.crt"] !== undefined || data["tls.key"] !== undefined) {
    throw new Error(`Secret ${namespace}/${ref.name} holds a TLS client certificate, which this stand-in does not play`);
  }
  return data["ca.crt"];
}

/** RFC 3339 to the second, as Kubernetes writes metav1.Time. */
function now(): string {
  return new Date().toISOString().replace(/\.\d{3}Z$/, "Z");
}

/** The Ready condition, keeping its transition time while its status stays. */
function ready(previous: Condition[] | undefined, status: Condition["status"], reason: string, message: string, generation: number | undefined): Condition[] {
  const before = previous?.find((c) => c.type === "Ready");
  return [{
    type: "Ready",
    status,
    reason,
    message: message.slice(0, 32_000),
    lastTransitionTime: before?.status === status ? before.lastTransitionTime : now(),
    ...(generation !== undefined ? { observedGeneration: generation } : {}),
  }];
}

// ---------------------------------------------------------------------------------------------
// A pass.
// ---------------------------------------------------------------------------------------------

export interface ImageAutomationOptions {
  /** Kubeconfig of the API server holding the program's objects. */
  readonly kubeconfig: string;
  /** Namespace whose objects are played. @default "flux-system" */
  readonly namespace?: string;
  /** @default stderr */
  readonly log?: (line: string) => void;
  /** Print STAND_IN_NOTICE first. @default true */
  readonly announce?: boolean;
  /** For tests: runs before each push attempt (1, 2, …), e.g. to race the push with another commit. */
  readonly beforePush?: (attempt: number) => Promise<void>;
}

export interface RepositoryScan {
  readonly name: string;
  /** Tags kept after the exclusion list, as the registry listed them. */
  readonly tags?: readonly string[];
  readonly skipped?: string;
  readonly error?: string;
  readonly statusWritten: boolean;
}

export interface PolicyOutcome {
  readonly name: string;
  /** What this pass picked. */
  readonly latest?: LatestImage;
  readonly skipped?: string;
  readonly error?: string;
  readonly statusWritten: boolean;
}

export interface AutomationOutcome {
  readonly name: string;
  readonly skipped?: string;
  readonly error?: string;
  /** The commit pushed, when something changed. */
  readonly commit?: string;
  readonly branch?: string;
  readonly changes: readonly SetterChange[];
  readonly message?: string;
  /** Push attempts made (more than one after a non-fast-forward). */
  readonly attempts: number;
  readonly statusWritten: boolean;
}

export interface ImageAutomationPass {
  readonly repositories: readonly RepositoryScan[];
  readonly policies: readonly PolicyOutcome[];
  readonly automations: readonly AutomationOutcome[];
}

const IMAGE_GROUP = "image.toolkit.fluxcd.io";
const SOURCE_GROUP = "source.toolkit.fluxcd.io";

/** Patches an object's status subresource; false (and a line saying why) when that cannot be done. */
async function writeStatus(client: KubeClient, objectPath: string, status: unknown, what: string, log: (l: string) => void): Promise<boolean> {
  try {
    // A 404 here means the CRD serves no status subresource (the client reads 404 as "absent").
    if ((await client.get<unknown>(`${objectPath}/status`)) === undefined) {
      log(`image-automation: status of ${what} not written: no status subresource served`);
      return false;
    }
    await client.patch(`${objectPath}/status`, { status });
    return true;
  } catch (e) {
    log(`image-automation: status of ${what} not written: ${(e as Error).message}`);
    return false;
  }
}

/** A `latestImage` string of the pre-v1 APIs (`name:tag`) as a reference. */
function fromLatestImage(image: string | undefined): LatestImage | undefined {
  const m = image ? /^(.*[^/]):([^:/]+)$/.exec(image) : null;
  return m ? { name: m[1], tag: m[2] } : undefined;
}

/**
 * One pass over the namespace's image automation objects: scan each ImageRepository, pick each
 * ImagePolicy's latest image and report it in its status, then run each ImageUpdateAutomation
 * (commit and push setter updates). A failing object is reported and the others go on.
 */
export async function runImageAutomationOnce(opts: ImageAutomationOptions): Promise<ImageAutomationPass> {
  const log = opts.log ?? ((l: string) => void process.stderr.write(`${l}\n`));
  if (opts.announce ?? true) {
    log(STAND_IN_NOTICE);
  }
  const ns = opts.namespace ?? FLUX_NAMESPACE;
  const client = kubeClient(opts.kubeconfig);
  const version = await servedVersion(client, IMAGE_GROUP);
  if (!version) {
    throw new Error(`image-automation: the API server does not serve ${IMAGE_GROUP}: install Flux's CRDs first`);
  }
  const api = (plural: string, namespace = ns): string => `/apis/${IMAGE_GROUP}/${version}/namespaces/${encodeURIComponent(namespace)}/${plural}`;
  const list = async <T>(plural: string): Promise<T[]> => (await client.get<{ items: T[] }>(api(plural)))?.items ?? [];

  // image-reflector-controller: scan the repositories.
  const scans = new Map<string, RepositoryScan>();
  const scanned = new Map<string, ImageRepositoryObject>();
  const scan = async (repo: ImageRepositoryObject): Promise<RepositoryScan> => {
    const key = `${repo.metadata.namespace}/${repo.metadata.name}`;
    const done = scans.get(key);
    if (done) {
      return done;
    }
    scanned.set(key, repo);
    const objectPath = `${api("imagerepositories", repo.metadata.namespace)}/${encodeURIComponent(repo.metadata.name)}`;
    const gen = repo.metadata.generation;
    let result: RepositoryScan;
    if (repo.spec.suspend) {
      result = { name: key, skipped: "suspended", statusWritten: false };
      log(`image-automation: ImageRepository ${key} is suspended: not scanned`);
    } else {
      try {
        const { registry } = parseImageName(repo.spec.image);
        const creds = repo.spec.secretRef
          ? registryCredentials((await secretData(client, repo.metadata.namespace, repo.spec.secretRef.name))[".dockerconfigjson"] ?? "{}", registry)
          : undefined;
        const ca = await registryCa(client, repo.metadata.namespace, repo.spec.certSecretRef);
        const all = await listTags(repo.spec.image, repo.spec.insecure ?? false, creds, ca);
        const tags = applyExclusions(all, repo.spec.exclusionList);
        const status = {
          canonicalImageName: repo.spec.image,
          lastScanResult: { tagCount: tags.length, scanTime: now(), latestTags: [...tags].sort().reverse().slice(0, 10) },
          observedExclusionList: repo.spec.exclusionList && repo.spec.exclusionList.length > 0 ? repo.spec.exclusionList : ["^.*\\.sig$"],
          ...(gen !== undefined ? { observedGeneration: gen } : {}),
          conditions: ready(repo.status?.conditions, "True", "Succeeded", `successful scan: found ${tags.length} tags`, gen),
        };
        result = { name: key, tags, statusWritten: await writeStatus(client, objectPath, status, `ImageRepository ${key}`, log) };
        log(`image-automation: ImageRepository ${key}: ${all.length} tags in ${repo.spec.image}, ${tags.length} kept after the exclusion list`);
      } catch (e) {
        const message = (e as Error).message;
        const status = { ...(gen !== undefined ? { observedGeneration: gen } : {}), conditions: ready(repo.status?.conditions, "False", "ReadOperationFailed", message, gen) };
        result = { name: key, error: message, statusWritten: await writeStatus(client, objectPath, status, `ImageRepository ${key}`, log) };
        log(`image-automation: ImageRepository ${key}: scan failed: ${message}`);
      }
    }
    scans.set(key, result);
    return result;
  };
  for (const repo of await list<ImageRepositoryObject>("imagerepositories")) {
    await scan(repo);
  }

  // image-reflector-controller: apply the policies.
  const policies = await list<ImagePolicyObject>("imagepolicies");
  const picked = new Map<string, LatestImage>();
  const policyOutcomes: PolicyOutcome[] = [];
  for (const policy of policies) {
    const name = policy.metadata.name;
    const key = `${policy.metadata.namespace}/${name}`;
    const gen = policy.metadata.generation;
    const objectPath = `${api("imagepolicies", policy.metadata.namespace)}/${encodeURIComponent(name)}`;
    if (policy.spec.suspend) {
      log(`image-automation: ImagePolicy ${key} is suspended: not applied`);
      policyOutcomes.push({ name: key, skipped: "suspended", statusWritten: false });
      continue;
    }
    const repoNs = policy.spec.imageRepositoryRef.namespace ?? policy.metadata.namespace;
    const repoKey = `${repoNs}/${policy.spec.imageRepositoryRef.name}`;
    const fail = async (reason: string, message: string): Promise<void> => {
      const status = { ...(gen !== undefined ? { observedGeneration: gen } : {}), conditions: ready(policy.status?.conditions, "False", reason, message, gen) };
      log(`image-automation: ImagePolicy ${key}: ${message}`);
      policyOutcomes.push({ name: key, error: message, statusWritten: await writeStatus(client, objectPath, status, `ImagePolicy ${key}`, log) });
    };
    let repoScan = scans.get(repoKey);
    if (!repoScan) {
      const repo = await client.get<ImageRepositoryObject>(`${api("imagerepositories", repoNs)}/${encodeURIComponent(policy.spec.imageRepositoryRef.name)}`);
      if (!repo) {
        await fail("DependencyNotReady", `failed to get the referred ImageRepository: referenced ImageRepository does not exist: ImageRepository ${repoKey} not found`);
        continue;
      }
      repoScan = await scan(repo);
    }
    const repoObject = scanned.get(repoKey);
    if (repoScan.skipped || repoScan.error || !repoScan.tags || !repoObject) {
      // Upstream would read its database's last scan; the stand-in keeps none, so the status stays.
      log(`image-automation: ImagePolicy ${key}: ImageRepository ${repoKey} was not scanned (${repoScan.skipped ?? repoScan.error}): status left as it is`);
      policyOutcomes.push({ name: key, skipped: `ImageRepository ${repoKey} not scanned`, statusWritten: false });
      continue;
    }
    let tag: string;
    try {
      if (repoScan.tags.length === 0) {
        await fail("DependencyNotReady", "no tags in database");
        continue;
      }
      tag = selectLatestTag(repoScan.tags, policy.spec);
    } catch (e) {
      if (e instanceof PolicyError && e.notPlayed) {
        log(`image-automation: ImagePolicy ${key}: ${e.message}; skipped, its status left as it is`);
        policyOutcomes.push({ name: key, skipped: e.message, statusWritten: false });
      } else if (e instanceof PolicyError && e.invalid) {
        await fail("InvalidPolicy", `invalid policy: ${e.message}`);
      } else {
        await fail("Failure", (e as Error).message);
      }
      continue;
    }
    const latest: LatestImage = { name: repoObject.spec.image, tag };
    picked.set(name, latest);
    const before = version === "v1" ? policy.status?.latestRef : fromLatestImage(policy.status?.latestImage);
    const changed = !before || before.name !== latest.name || before.tag !== latest.tag || (before.digest ?? "") !== "";
    const previous = changed ? before : policy.status?.observedPreviousRef;
    const message = `Latest image tag for ${latest.name} resolved to ${latest.tag}${previous && (previous.name !== latest.name || previous.tag !== latest.tag) ? ` (previously ${previous.name}:${previous.tag})` : ""}`;
    const reported = version === "v1"
      // A merge patch keeps fields it does not name: a digest reported before is removed (null).
      ? { latestRef: before?.digest ? { ...latest, digest: null } : latest, ...(changed && before ? { observedPreviousRef: before } : {}) }
      : { latestImage: `${latest.name}:${latest.tag}`, ...(changed && before ? { observedPreviousImage: `${before.name}:${before.tag}` } : {}) };
    const status = { ...reported, ...(gen !== undefined ? { observedGeneration: gen } : {}), conditions: ready(policy.status?.conditions, "True", "Succeeded", message, gen) };
    log(`image-automation: ImagePolicy ${key}: ${message}`);
    policyOutcomes.push({ name: key, latest, statusWritten: await writeStatus(client, objectPath, status, `ImagePolicy ${key}`, log) });
  }

  // image-automation-controller: update git.
  const automations: AutomationOutcome[] = [];
  for (const automation of await list<ImageUpdateAutomationObject>("imageupdateautomations")) {
    automations.push(await runAutomation(client, automation, policies, picked, { version, api, log, beforePush: opts.beforePush }));
  }
  return { repositories: [...scans.values()], policies: policyOutcomes, automations };
}

interface AutomationContext {
  readonly version: string;
  readonly api: (plural: string, namespace?: string) => string;
  readonly log: (l: string) => void;
  readonly beforePush?: (attempt: number) => Promise<void>;
}

async function runAutomation(
  client: KubeClient,
  automation: ImageUpdateAutomationObject,
  policies: readonly ImagePolicyObject[],
  picked: ReadonlyMap<string, LatestImage>,
  ctx: AutomationContext,
): Promise<AutomationOutcome> {
  const { log } = ctx;
  const ns = automation.metadata.namespace;
  const key = `${ns}/${automation.metadata.name}`;
  const gen = automation.metadata.generation;
  const objectPath = `${ctx.api("imageupdateautomations", ns)}/${encodeURIComponent(automation.metadata.name)}`;
  if (automation.spec.suspend) {
    log(`image-automation: ImageUpdateAutomation ${key} is suspended: nothing committed`);
    return { name: key, skipped: "suspended", changes: [], attempts: 0, statusWritten: false };
  }
  const fail = async (reason: string, message: string, attempts = 0): Promise<AutomationOutcome> => {
    log(`image-automation: ImageUpdateAutomation ${key}: ${message}`);
    const status = { lastAutomationRunTime: now(), ...(gen !== undefined ? { observedGeneration: gen } : {}), conditions: ready(automation.status?.conditions, "False", reason, message, gen) };
    return { name: key, error: message, changes: [], attempts, statusWritten: await writeStatus(client, objectPath, status, `ImageUpdateAutomation ${key}`, log) };
  };

  // Which policies, with which latest image: this pass's pick, else what the policy reports.
  const selector = automation.spec.policySelector;
  if (selector?.matchExpressions && selector.matchExpressions.length > 0) {
    return fail("InvalidPolicySelector", "policySelector.matchExpressions is not played by this stand-in");
  }
  const matchLabels = selector?.matchLabels ?? {};
  const inScope: PolicyLatest[] = [];
  for (const p of policies) {
    if (p.metadata.namespace !== ns || !Object.entries(matchLabels).every(([k, v]) => p.metadata.labels?.[k] === v)) {
      continue;
    }
    const latest = picked.get(p.metadata.name) ?? (ctx.version === "v1" ? p.status?.latestRef : fromLatestImage(p.status?.latestImage));
    if (latest) {
      inScope.push({ namespace: ns, name: p.metadata.name, latest: { name: latest.name, tag: latest.tag, ...(latest.digest ? { digest: latest.digest } : {}) } });
    }
  }

  // The source: a GitRepository over ssh:// with its deploy key and pinned host key.
  const sourceRef = automation.spec.sourceRef;
  if ((sourceRef.kind ?? "GitRepository") !== "GitRepository") {
    return fail("InvalidSourceConfiguration", `source kind ${JSON.stringify(sourceRef.kind)} is not supported`);
  }
  const sourceVersion = await servedVersion(client, SOURCE_GROUP);
  const gitNs = sourceRef.namespace ?? ns;
  const gitRepo = sourceVersion
    ? await client.get<GitRepositoryObject>(`/apis/${SOURCE_GROUP}/${sourceVersion}/namespaces/${encodeURIComponent(gitNs)}/gitrepositories/${encodeURIComponent(sourceRef.name)}`)
    : undefined;
  if (!gitRepo) {
    return fail("InvalidSourceConfiguration", `referenced GitRepository ${gitNs}/${sourceRef.name} does not exist`);
  }
  const ref = automation.spec.git?.checkout?.ref;
  if (ref && (ref.tag || ref.semver || ref.commit || ref.name) && !ref.branch) {
    return fail("InvalidSourceConfiguration", "checking out a tag, semver range, commit or ref name is not played by this stand-in: only a branch");
  }
  const checkout = ref?.branch ?? gitRepo.spec.ref?.branch;
  const push = automation.spec.git?.push?.branch ?? checkout;
  if (!checkout || !push) {
    return fail("InvalidSourceConfiguration", "no branch to check out or push to");
  }
  if (automation.spec.git?.push?.refspec) {
    log(`image-automation: ImageUpdateAutomation ${key}: push.refspec is not played by this stand-in; pushing to branch ${push} only`);
  }
  if ((automation.spec.update?.strategy ?? "Setters") !== "Setters") {
    return fail("UpdateFailed", `update strategy ${JSON.stringify(automation.spec.update?.strategy)} is not supported`);
  }
  const email = automation.spec.git?.commit?.author?.email;
  if (!email) {
    return fail("InvalidSourceConfiguration", "git.commit.author.email is required");
  }
  const author = { name: automation.spec.git?.commit?.author?.name || email, email };
  if (!/^ssh:\/\//.test(gitRepo.spec.url)) {
    return fail("InvalidSourceConfiguration", `GitRepository URL ${gitRepo.spec.url}: only ssh:// with a deploy key is played by this stand-in`);
  }
  if (!gitRepo.spec.secretRef) {
    return fail("InvalidSourceConfiguration", `GitRepository ${gitNs}/${sourceRef.name} has no secretRef holding a deploy key`);
  }

  let auth: Record<string, string>;
  try {
    auth = await secretData(client, gitNs, gitRepo.spec.secretRef.name);
  } catch (e) {
    return fail("InvalidSourceConfiguration", (e as Error).message);
  }
  if (!auth.identity || !auth.known_hosts) {
    return fail("InvalidSourceConfiguration", `Secret ${gitNs}/${gitRepo.spec.secretRef.name} lacks identity or known_hosts`);
  }

  let signingKey: string | undefined;
  const signing = automation.spec.git?.commit?.signingKey;
  if (signing) {
    if (signing.type !== "ssh") {
      return fail("InvalidSourceConfiguration", `signingKey of type ${JSON.stringify(signing.type ?? "gpg")} is not played by this stand-in: only type ssh`);
    }
    let data: Record<string, string>;
    try {
      data = await secretData(client, ns, signing.secretRef?.name ?? "");
    } catch (e) {
      return fail("InvalidSourceConfiguration", (e as Error).message);
    }
    if (!data.identity) {
      return fail("InvalidSourceConfiguration", `signing Secret ${ns}/${signing.secretRef?.name ?? ""} lacks identity`);
    }
    if (data.password) {
      return fail("InvalidSourceConfiguration", "a signing key with a password is not played by this stand-in");
    }
    signingKey = data.identity;
  }

  const values = setterValues(inScope);
  const template = automation.spec.git?.commit?.messageTemplate ?? "";
  let result: GitUpdate;
  try {
    result = await updateGit({
      url: gitRepo.spec.url,
      identity: auth.identity,
      knownHosts: auth.known_hosts,
      checkout,
      push,
      updatePath: automation.spec.update?.path ?? ".",
      values,
      author,
      signingKey,
      message: (changes) => renderCommitMessage(template, changes) ?? fallbackCommitMessage(changes),
      beforePush: ctx.beforePush,
    });
  } catch (e) {
    const err = e as Error & { attempts?: number };
    return fail(e instanceof UpdateError ? "UpdateFailed" : "GitOperationFailed", err.message, err.attempts ?? 0);
  }
  for (const problem of result.problems) {
    log(`image-automation: ImageUpdateAutomation ${key}: ${problem}`);
  }
  const time = now();
  const message = result.commit ? `pushed commit '${result.commit.slice(0, 7)}' to branch '${push}'` : "repository up-to-date";
  log(`image-automation: ImageUpdateAutomation ${key}: ${message}${result.changes.length > 0 ? ` (${result.changes.map((c) => `${c.oldValue} -> ${c.newValue}`).join(", ")})` : ""}`);
  const status = {
    lastAutomationRunTime: time,
    ...(result.commit ? { lastPushCommit: result.commit, lastPushTime: time } : {}),
    observedPolicies: Object.fromEntries(inScope.map((p) => [p.name, { name: p.latest.name, tag: p.latest.tag }])),
    observedSourceRevision: `${checkout}@sha1:${result.sourceRevision}`,
    ...(gen !== undefined ? { observedGeneration: gen } : {}),
    conditions: ready(automation.status?.conditions, "True", "Succeeded", "repository up-to-date", gen),
  };
  return {
    name: key,
    commit: result.commit,
    branch: push,
    changes: result.changes,
    message: result.message,
    attempts: result.attempts,
    statusWritten: await writeStatus(client, objectPath, status, `ImageUpdateAutomation ${key}`, log),
  };
}

// ---------------------------------------------------------------------------------------------
// Git.
// ---------------------------------------------------------------------------------------------

interface GitUpdateInput {
  readonly url: string;
  readonly identity: string;
  readonly knownHosts: string;
  readonly checkout: string;
  readonly push: string;
  readonly updatePath: string;
  readonly values: ReadonlyMap<string, string>;
  readonly author: { readonly name: string; readonly email: string };
  /** SSH private key each commit is signed with (git's SSH signatures); unsigned without. */
  readonly signingKey?: string;
  readonly message: (changes: readonly SetterChange[]) => string;
  readonly beforePush?: (attempt: number) => Promise<void>;
}

interface GitUpdate {
  readonly commit?: string;
  readonly changes: readonly SetterChange[];
  readonly message?: string;
  readonly attempts: number;
  /** The checkout branch's commit the update started from (the last attempt's). */
  readonly sourceRevision: string;
  /** Files that carry the token but do not parse, as upstream reports them. */
  readonly problems: readonly string[];
}

const PUSH_ATTEMPTS = 4;

/** The files could not be updated (as opposed to git failing). */
class UpdateError extends Error {}

/** Every regular file under `dir`, relative to it, sorted; `.git` and symlinks are not followed. */
function filesUnder(dir: string, prefix = ""): string[] {
  const out: string[] = [];
  for (const d of fs.readdirSync(path.join(dir, prefix), { withFileTypes: true })) {
    const rel = prefix ? `${prefix}/${d.name}` : d.name;
    if (d.isDirectory() && d.name !== ".git") {
      out.push(...filesUnder(dir, rel));
    } else if (d.isFile()) {
      out.push(rel);
    }
  }
  return out.sort();
}

/** Rewrites the setters under `root` in place; returns the files changed (relative to `work`) and the changes. */
function rewrite(work: string, updatePath: string, values: ReadonlyMap<string, string>): { files: string[]; changes: SetterChange[]; problems: string[] } {
  const root = path.resolve(work, updatePath);
  if (root !== work && !root.startsWith(`${work}${path.sep}`)) {
    throw new UpdateError(`update path ${JSON.stringify(updatePath)} leaves the repository`);
  }
  if (!fs.existsSync(root)) {
    throw new UpdateError(`update path ${JSON.stringify(updatePath)} does not exist on the branch`);
  }
  const files: string[] = [];
  const changes: SetterChange[] = [];
  const problems: string[] = [];
  for (const rel of filesUnder(root)) {
    const file = path.join(root, rel);
    const text = fs.readFileSync(file, "utf8");
    if (!isSetterCandidate(rel, text)) {
      continue;
    }
    const r = applySetters(text, values);
    if (r.problem) {
      problems.push(`${path.relative(work, file)}: ${r.problem}; setters left alone`);
    }
    if (r.changes.length > 0) {
      fs.writeFileSync(file, r.text);
      files.push(path.relative(work, file));
      changes.push(...r.changes);
    }
  }
  return { files, changes, problems };
}

/** Clones, rewrites, commits and pushes; redoes the rewrite on the new head after a rejected push. */
async function updateGit(input: GitUpdateInput): Promise<GitUpdate> {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "hl-image-automation-"));
  const keyFile = path.join(tmp, "identity");
  const knownHostsFile = path.join(tmp, "known_hosts");
  fs.writeFileSync(keyFile, input.identity.endsWith("\n") ? input.identity : `${input.identity}\n`, { mode: 0o600 });
  fs.writeFileSync(knownHostsFile, input.knownHosts.endsWith("\n") ? input.knownHosts : `${input.knownHosts}\n`, { mode: 0o600 });
  const signingKeyFile = path.join(tmp, "signing-key");
  if (input.signingKey !== undefined) {
    fs.writeFileSync(signingKeyFile, input.signingKey.endsWith("\n") ? input.signingKey : `${input.signingKey}\n`, { mode: 0o600 });
  }
  const sign = input.signingKey !== undefined ? ["-c", "gpg.format=ssh", "-c", `user.signingkey=${signingKeyFile}`] : [];
  const ssh = [
    "ssh", "-F", "/dev/null", "-i", keyFile,
    "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
    "-o", `UserKnownHostsFile=${knownHostsFile}`, "-o", "GlobalKnownHostsFile=/dev/null", "-o", "ConnectTimeout=10",
  ];
  const env = {
    ...process.env,
    ...ISOLATED_GIT_ENV,
    GIT_SSH_COMMAND: ssh.map(shq).join(" "),
    // Upstream signs author and committer alike.
    GIT_AUTHOR_NAME: input.author.name,
    GIT_AUTHOR_EMAIL: input.author.email,
    GIT_COMMITTER_NAME: input.author.name,
    GIT_COMMITTER_EMAIL: input.author.email,
  };
  const work = path.join(tmp, "work");
  const git = async (args: string[], cwd = work) => runCommand("git", args, { cwd, env, timeoutMs: 60_000 });
  const must = async (args: string[], cwd = work): Promise<string> => {
    const r = await git(args, cwd);
    if (r.status !== 0) {
      throw new Error(`git ${args[0]} failed (exit ${r.status}): ${(r.stderr || r.stdout).trim().split("\n").slice(-3).join(" ")}`);
    }
    return r.stdout.trim();
  };
  let attempts = 0;
  try {
    await must(["clone", "--quiet", "--branch", input.checkout, input.url, work], tmp);
    for (;;) {
      const sourceRevision = await must(["rev-parse", "HEAD"]);
      const { files, changes, problems } = rewrite(work, input.updatePath, input.values);
      if (changes.length === 0) {
        return { changes: [], attempts, sourceRevision, problems };
      }
      const message = input.message(uniqueChanges(changes));
      const messageFile = path.join(tmp, "message");
      fs.writeFileSync(messageFile, message);
      await must(["add", "--", ...files]);
      // Verbatim: the message is stored as rendered, as upstream's go-git commit stores it.
      await must([...sign, "commit", ...(sign.length > 0 ? ["-S"] : []), "--quiet", "--no-verify", "--cleanup=verbatim", "-F", messageFile]);
      const commit = await must(["rev-parse", "HEAD"]);
      attempts++;
      await input.beforePush?.(attempts);
      // A separate push branch is overwritten with checkout + changes (upstream's default GitForcePushBranch).
      const forced = input.push !== input.checkout ? ["--force"] : [];
      const pushed = await git(["push", ...forced, "origin", `HEAD:refs/heads/${input.push}`]);
      if (pushed.status === 0) {
        return { commit, changes: uniqueChanges(changes), message, attempts, sourceRevision, problems };
      }
      const rejected = /\[rejected\]|non-fast-forward|fetch first|Updates were rejected/.test(pushed.stderr);
      if (!rejected || attempts >= PUSH_ATTEMPTS) {
        throw Object.assign(new Error(`git push to ${input.push} failed after ${attempts} attempt(s): ${pushed.stderr.trim().split("\n").slice(-3).join(" ")}`), { attempts });
      }
      // Someone pushed first: start again from their commit, never forcing over it.
      await must(["fetch", "--quiet", "origin", input.checkout]);
      await must(["reset", "--quiet", "--hard", "FETCH_HEAD"]);
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------
// Running it: a loop in this process, or a background process of the sandbox's.
// ---------------------------------------------------------------------------------------------

export interface ImageAutomationLoop {
  /** Passes finished so far. */
  readonly passes: number;
  /** Stops after the pass under way, if any. */
  stop(): Promise<void>;
}

/** Runs a pass now and then every `intervalSeconds` after the previous one ended, until stopped. */
export function startImageAutomationLoop(opts: ImageAutomationOptions & { readonly intervalSeconds: number }): ImageAutomationLoop {
  const log = opts.log ?? ((l: string) => void process.stderr.write(`${l}\n`));
  log(`${STAND_IN_NOTICE}; a pass every ${opts.intervalSeconds}s (its own loop, not the objects' spec.interval)`);
  let stopped = false;
  let passes = 0;
  let timer: NodeJS.Timeout | undefined;
  let current: Promise<void> | undefined;
  const tick = (): void => {
    current = runImageAutomationOnce({ ...opts, log, announce: false }).then(
      () => undefined,
      (e: unknown) => log(`image-automation: pass failed: ${(e as Error).message}`),
    ).finally(() => {
      passes++;
      if (!stopped) {
        timer = setTimeout(tick, opts.intervalSeconds * 1000);
      }
    });
  };
  tick();
  return {
    get passes() {
      return passes;
    },
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await current;
    },
  };
}

export interface SandboxImageAutomation {
  readonly pid: number;
  readonly logFile: string;
  stop(): Promise<void>;
}

/**
 * Starts the loop as a background process of the sandbox in `dir` (recorded in its state, stopped
 * by PID), or reuses the one running there.
 */
export function startImageAutomation(dir: string, opts: { readonly kubeconfig: string; readonly intervalSeconds?: number; readonly namespace?: string }): SandboxImageAutomation {
  dir = path.resolve(dir);
  const running = runningProcess(dir, PROCESS);
  const rec = running ?? startProcess(dir, {
    name: PROCESS,
    command: process.execPath,
    args: [
      "--import", "tsx", __filename,
      "--kubeconfig", path.resolve(opts.kubeconfig),
      "--interval", String(opts.intervalSeconds ?? 30),
      "--namespace", opts.namespace ?? FLUX_NAMESPACE,
    ],
    // tsx is resolved from the repository.
    cwd: REPO,
  });
  return { pid: rec.pid, logFile: rec.logFile, stop: () => stopImageAutomation(dir) };
}

/** Stops the background loop started in `dir`, by PID. */
export async function stopImageAutomation(dir: string): Promise<void> {
  dir = path.resolve(dir);
  if (fs.existsSync(dir)) {
    await stopProcess(dir, PROCESS);
  }
}

function flag(argv: readonly string[], name: string): string | undefined {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : undefined;
}

if (require.main === module) {
  const argv = process.argv.slice(2);
  const kubeconfig = flag(argv, "--kubeconfig");
  const interval = Number(flag(argv, "--interval") ?? "30");
  if (!kubeconfig || !Number.isFinite(interval) || interval <= 0) {
    process.stderr.write("usage: tsx sandbox/image-automation.ts --kubeconfig FILE [--interval SECONDS] [--namespace NS] [--once]\n");
    process.exit(2);
  }
  const options = { kubeconfig, namespace: flag(argv, "--namespace") };
  if (argv.includes("--once")) {
    runImageAutomationOnce(options).then(
      (pass) => process.exit(pass.automations.some((a) => a.error) || pass.policies.some((p) => p.error) ? 1 : 0),
      (e: unknown) => {
        process.stderr.write(`${(e as Error).message}\n`);
        process.exit(1);
      },
    );
  } else {
    const loop = startImageAutomationLoop({ ...options, intervalSeconds: interval });
    for (const signal of ["SIGTERM", "SIGINT"] as const) {
      process.once(signal, () => void loop.stop().then(() => process.exit(0)));
    }
  }
}
