import * as fs from "fs";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import { HomelabSettings, ParsedConfig, VpsSettings, parseConfig } from "../lib/config";
import { checkFluxAdoption } from "../lib/flux-adoption";
import { ImageNotFound, resolveDigest } from "../lib/registry-client";
import { Release, parseReleaseFile } from "../lib/release";
import { readReleaseFileText } from "../lib/release-file";

/** Homelab secrets as Pulumi secrets: they stay encrypted in state and masked in output. */
export interface HomelabSecretInputs {
  readonly registryPassword: pulumi.Output<string>;
  readonly kubeconfig: pulumi.Output<string>;
  readonly vmPrivateKey: pulumi.Output<string>;
  readonly gitDeployKey?: pulumi.Output<string>;
  readonly fluxSigningKey?: pulumi.Output<string>;
  readonly backendEnv: pulumi.Output<Record<string, string>>;
}

/**
 * The release's two images in the registry: both digests, or the images it does not hold yet (a
 * release file that names no image yet, before image automation has written the first one).
 */
export type ReleaseResolution =
  | { readonly kind: "resolved"; readonly digests: { readonly frontend: string; readonly backend: string } }
  | { readonly kind: "missing"; readonly images: readonly string[] };

export interface HomelabConfig {
  readonly settings: HomelabSettings;
  readonly secrets: HomelabSecretInputs;
  readonly release: Release;
  /**
   * Looks both images of the release up in the registry. Rejects when the registry refuses the
   * credentials or cannot be reached; an image it answers it does not hold is reported, not thrown.
   */
  resolveDigests(): Promise<ReleaseResolution>;
  /**
   * Looks for Flux objects in flux-system the program would take over (flux bootstrap's). Rejects,
   * naming them, unless homelab:fluxAdopt is on; resolves to the lines to warn with (what is taken
   * over, or why the cluster could not be asked).
   */
  checkFluxObjects(): Promise<string[]>;
}

/** VPS secrets as Pulumi secrets. */
export interface VpsSecretInputs {
  readonly privateKey: pulumi.Output<string>;
  readonly registryToken?: pulumi.Output<string>;
  readonly env: pulumi.Output<Record<string, string>>;
}

export interface VpsConfig {
  readonly settings: VpsSettings;
  readonly secrets: VpsSecretInputs;
  /** Looks the app's image up in its registry (with the token); rejects when it is missing or the token is refused. */
  resolveDigest(): Promise<string>;
}

export interface StackConfig {
  readonly homelab?: HomelabConfig;
  readonly vps?: VpsConfig;
}

/** Whether a key was set with --secret (the SDK has this function but does not declare it). */
function isConfigSecret(key: string): boolean {
  const runtime = pulumi.runtime as unknown as { isConfigSecret?: (k: string) => boolean };
  if (typeof runtime.isConfigSecret !== "function") {
    throw new Error("this @pulumi/pulumi version cannot tell secret config keys apart; pin the version in package.json");
  }
  return runtime.isConfigSecret(key);
}

/**
 * Reads and validates the whole stack configuration and the release file once, before any
 * resource is registered; every problem is reported in one error.
 */
export function loadConfig(projectDir: string = process.cwd()): StackConfig {
  const parsed: ParsedConfig = parseConfig(pulumi.runtime.allConfig(), isConfigSecret);
  let homelab: HomelabConfig | undefined;
  if (parsed.homelab) {
    const { secrets } = parsed.homelab;
    let settings = parsed.homelab.settings;
    const text = readReleaseFileText(projectDir, settings.releaseFile);
    const release = parseReleaseFile(
      text,
      settings.releaseFile,
      {
        registry: settings.registry.host,
        frontendRepository: settings.images.frontend,
        backendRepository: settings.images.backend,
        tagPattern: settings.tagPattern,
      },
      settings.pins,
    );
    if (settings.flux.manifests.kind === "directory") {
      const dir = path.resolve(projectDir, settings.flux.manifests.path);
      if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) {
        throw new Error(`homelab:fluxManifests: ${JSON.stringify(settings.flux.manifests.path)} is neither an https URL nor an existing directory`);
      }
      settings = { ...settings, flux: { ...settings.flux, manifests: { kind: "directory", path: dir } } };
    }
    const creds = { username: settings.registry.username, password: secrets.registryPassword };
    const insecure = settings.registry.insecure;
    homelab = {
      settings,
      release,
      async resolveDigests() {
        const [frontend, backend] = await Promise.allSettled([release.frontend, release.backend].map((ref) => resolveDigest(ref, creds, insecure, settings.registry)));
        const failures = [frontend, backend].flatMap((r) => (r.status === "rejected" ? [r.reason as unknown] : []));
        const other = failures.find((e) => !(e instanceof ImageNotFound));
        if (other !== undefined) {
          throw other instanceof Error ? other : new Error("the registry lookup failed", { cause: other });
        }
        if (frontend.status === "fulfilled" && backend.status === "fulfilled") {
          return { kind: "resolved", digests: { frontend: frontend.value, backend: backend.value } };
        }
        return { kind: "missing", images: failures.map((e) => (e as ImageNotFound).image) };
      },
      checkFluxObjects: () =>
        checkFluxAdoption({
          kubeconfig: secrets.kubeconfig,
          context: settings.kubeContext,
          adopt: settings.flux.adopt,
          target: { gitUrl: settings.flux.gitUrl, path: settings.flux.path },
        }),
      secrets: {
        registryPassword: pulumi.secret(secrets.registryPassword),
        kubeconfig: pulumi.secret(secrets.kubeconfig),
        vmPrivateKey: pulumi.secret(secrets.vmPrivateKey),
        gitDeployKey: secrets.gitDeployKey === undefined ? undefined : pulumi.secret(secrets.gitDeployKey),
        fluxSigningKey: secrets.fluxSigningKey === undefined ? undefined : pulumi.secret(secrets.fluxSigningKey),
        backendEnv: pulumi.secret(secrets.backendEnv),
      },
    };
  }
  let vps: VpsConfig | undefined;
  if (parsed.vps) {
    const { settings, secrets } = parsed.vps;
    const token = secrets.registryToken;
    vps = {
      settings,
      async resolveDigest() {
        const creds = token === undefined ? undefined : { username: settings.registry.username, password: token };
        return settings.image.digest ?? (await resolveDigest(settings.image, creds, settings.registry.insecure, settings.registry));
      },
      secrets: {
        privateKey: pulumi.secret(secrets.privateKey),
        registryToken: token === undefined ? undefined : pulumi.secret(token),
        env: pulumi.secret(secrets.env),
      },
    };
  }
  return { homelab, vps };
}
