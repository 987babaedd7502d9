// Paths and environment of the offline Pulumi toolchain. Importing this module
// is cheap (no process is started); `ensureToolchain` builds what is missing.

import * as fs from "fs";
import * as os from "os";
import * as path from "path";

import { PULUMI_VERSION, PROVIDERS, REPO_ROOT, SANDBOX_BUILDS } from "./manifest";

export { ensureToolchain } from "./build";
export type { EnsureOptions, EnsureResult } from "./build";

export { REPO_ROOT };

export function cacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.HOMELAB_STACK_CACHE) {
    return path.resolve(env.HOMELAB_STACK_CACHE);
  }
  const xdg = env.XDG_CACHE_HOME || path.join(env.HOME || os.homedir(), ".cache");
  return path.join(xdg, "homelab-stack");
}

export interface ToolchainPaths {
  readonly cache: string;
  /** Directory holding pulumi, pulumi-language-nodejs and pulumi-resource-pulumi-nodejs. */
  readonly binDir: string;
  readonly pulumi: string;
  readonly pulumiHome: string;
  /** Directory used by the file:// state backend. */
  readonly stateDir: string;
  readonly stampDir: string;
  readonly logDir: string;
  readonly srcDir: string;
  /** kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, kubelet, etcd, kwok, kwokctl. */
  readonly sandboxBinDir: string;
  /** The docker compose v2 CLI plugin binary (named docker-compose). */
  readonly dockerCompose: string;
  /** The sandbox's other binaries: the node's pause, Traefik, Flux's controllers. */
  readonly pause: string;
  readonly traefik: string;
  readonly sourceController: string;
  readonly kustomizeController: string;
  /** Where the record of an ambient (pre-installed) toolchain is kept. */
  readonly resolvedFile: string;
}

/** The binary `out` (by default the only one) the sandbox build `id` makes, under <cache>/bin/. */
function sandboxBinary(cache: string, id: string, out?: string): string {
  const b = SANDBOX_BUILDS.find((s) => s.id === id);
  const o = b?.outputs.find((x) => x.out === out) ?? (out === undefined && b?.outputs.length === 1 ? b.outputs[0] : undefined);
  if (!b || !o) {
    throw new Error(`toolchain: the sandbox build ${id} makes no ${out ?? "single"} binary`);
  }
  return path.join(cache, "bin", b.binSubdir, o.out);
}

export function toolchainPaths(env: NodeJS.ProcessEnv = process.env): ToolchainPaths {
  const cache = cacheDir(env);
  const binDir = path.join(cache, "bin", `pulumi-v${PULUMI_VERSION}`);
  return {
    cache,
    binDir,
    pulumi: path.join(binDir, "pulumi"),
    pulumiHome: path.join(cache, "pulumi-home"),
    stateDir: path.join(cache, "state"),
    stampDir: path.join(cache, "stamps"),
    logDir: path.join(cache, "logs"),
    srcDir: path.join(cache, "src"),
    sandboxBinDir: path.dirname(sandboxBinary(cache, "sandbox-k8s", "kube-apiserver")),
    dockerCompose: sandboxBinary(cache, "sandbox-compose"),
    pause: sandboxBinary(cache, "sandbox-pause"),
    traefik: sandboxBinary(cache, "sandbox-traefik"),
    sourceController: sandboxBinary(cache, "sandbox-source-controller"),
    kustomizeController: sandboxBinary(cache, "sandbox-kustomize-controller"),
    resolvedFile: path.join(cache, "resolved.json"),
  };
}

/** A toolchain found already installed (e.g. a workstation with internet access). */
export interface ResolvedAmbient {
  readonly kind: "ambient";
  readonly binDir: string;
  readonly pulumiHome: string;
}

export function readResolved(paths: ToolchainPaths): ResolvedAmbient | undefined {
  try {
    const raw: unknown = JSON.parse(fs.readFileSync(paths.resolvedFile, "utf8"));
    if (
      typeof raw === "object" && raw !== null &&
      "kind" in raw && raw.kind === "ambient" &&
      "binDir" in raw && typeof raw.binDir === "string" &&
      "pulumiHome" in raw && typeof raw.pulumiHome === "string" &&
      fs.existsSync(path.join(raw.binDir, "pulumi"))
    ) {
      return { kind: "ambient", binDir: raw.binDir, pulumiHome: raw.pulumiHome };
    }
  } catch {
    // no record: use the cache
  }
  return undefined;
}

export interface ToolchainEnvOptions {
  /** Environment to extend (default: process.env). */
  readonly base?: NodeJS.ProcessEnv;
  /** Put the sandbox binaries (kube-apiserver, etcd, kwok…) on PATH too. Default true. */
  readonly includeSandbox?: boolean;
  /** Override the state backend URL (default file://<cache>/state). */
  readonly backendUrl?: string;
}

export interface ToolchainEnv {
  /** Variables to add to / override in the environment. */
  readonly vars: Readonly<Record<string, string>>;
  /** `base` merged with `vars`, ready for child_process. */
  readonly env: NodeJS.ProcessEnv;
  readonly pulumi: string;
  readonly binDir: string;
  readonly pulumiHome: string;
  readonly backendUrl: string;
  readonly sandboxBinDir: string;
  readonly dockerCompose: string;
  /** Provider plugin binaries as installed in pulumiHome, keyed by plugin name. */
  readonly plugins: Readonly<Record<string, string>>;
}

/**
 * The environment under which `pulumi` runs offline with this toolchain.
 * PULUMI_CONFIG_PASSPHRASE is deliberately not set: callers provide it.
 */
export function toolchainEnv(opts: ToolchainEnvOptions = {}): ToolchainEnv {
  const base = opts.base ?? process.env;
  const paths = toolchainPaths(base);
  const ambient = readResolved(paths);
  const binDir = ambient?.binDir ?? paths.binDir;
  const pulumiHome = ambient?.pulumiHome ?? paths.pulumiHome;
  const backendUrl = opts.backendUrl ?? `file://${paths.stateDir}`;
  const pathParts = [binDir];
  if (opts.includeSandbox ?? true) {
    pathParts.push(paths.sandboxBinDir);
  }
  pathParts.push(base.PATH ?? "");
  const vars: Record<string, string> = {
    PATH: pathParts.join(path.delimiter),
    PULUMI_HOME: pulumiHome,
    PULUMI_SKIP_UPDATE_CHECK: "true",
    PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: "true",
    PULUMI_BACKEND_URL: backendUrl,
    // `npm run build` type-checks the program (strict tsc); ts-node need not check it again on
    // every preview and up, which costs seconds each time (BENCHMARKS.md).
    PULUMI_NODEJS_TRANSPILE_ONLY: base.PULUMI_NODEJS_TRANSPILE_ONLY ?? "true",
  };
  const plugins: Record<string, string> = {};
  for (const p of PROVIDERS) {
    const v = requestedPluginVersion(p.npmPackage);
    if (v) {
      plugins[p.name] = path.join(pulumiHome, "plugins", `resource-${p.name}-v${v}`, `pulumi-resource-${p.name}`);
    }
  }
  return {
    vars,
    env: { ...base, ...vars },
    pulumi: path.join(binDir, "pulumi"),
    binDir,
    pulumiHome,
    backendUrl,
    sandboxBinDir: paths.sandboxBinDir,
    dockerCompose: paths.dockerCompose,
    plugins,
  };
}

/**
 * The plugin version the npm SDK asks the engine for: package.json
 * `pulumi.version`, else `version` (what the Node.js language host reports).
 */
export function requestedPluginVersion(npmPackage: string, root: string = REPO_ROOT): string | undefined {
  const read = (file: string): unknown => JSON.parse(fs.readFileSync(file, "utf8"));
  try {
    const pkg = read(path.join(root, "node_modules", npmPackage, "package.json"));
    if (typeof pkg === "object" && pkg !== null) {
      if ("pulumi" in pkg && typeof pkg.pulumi === "object" && pkg.pulumi !== null &&
        "version" in pkg.pulumi && typeof pkg.pulumi.version === "string") {
        return pkg.pulumi.version.replace(/^v/, "");
      }
      if ("version" in pkg && typeof pkg.version === "string") {
        return pkg.version.replace(/^v/, "");
      }
    }
  } catch {
    // fall back to package-lock.json
  }
  try {
    const lock = read(path.join(root, "package-lock.json"));
    if (typeof lock === "object" && lock !== null && "packages" in lock &&
      typeof lock.packages === "object" && lock.packages !== null) {
      const entry: unknown = (lock.packages as Record<string, unknown>)[`node_modules/${npmPackage}`];
      if (typeof entry === "object" && entry !== null && "version" in entry && typeof entry.version === "string") {
        return entry.version.replace(/^v/, "");
      }
    }
  } catch {
    // unknown
  }
  return undefined;
}

/** Shell `export` lines for `npm run toolchain -- --print-env`. */
export function printableEnv(opts: ToolchainEnvOptions = {}): string {
  const te = toolchainEnv(opts);
  const q = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;
  const prefix = [te.binDir, ...(opts.includeSandbox ?? true ? [te.sandboxBinDir] : [])].join(path.delimiter);
  const lines = Object.entries(te.vars).map(([k, v]) =>
    k === "PATH" ? `export PATH=${q(prefix)}"${path.delimiter}$PATH"` : `export ${k}=${q(v)}`);
  lines.push("# Set the passphrase for the file backend's secrets yourself, e.g.:");
  lines.push("#   export PULUMI_CONFIG_PASSPHRASE=...   (or PULUMI_CONFIG_PASSPHRASE_FILE=...)");
  return lines.join("\n") + "\n";
}
