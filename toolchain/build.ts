// Builds the offline Pulumi toolchain from Go modules. Every step is skipped
// when its stamp (written only after the step succeeded) matches its inputs.

import { spawn, spawnSync } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

import { requestedPluginVersion, toolchainPaths, type ToolchainPaths } from "./env";
import {
  GROUPS, PROVIDERS, PULUMI_VERSION, REPO_ROOT, SANDBOX_BUILDS,
  type GoBuildSpec, type Group, type ProviderSpec,
} from "./manifest";

export interface EnsureOptions {
  /** Groups to build; default: all. */
  readonly only?: readonly Group[];
  /** Where progress goes (default: process.stderr). */
  readonly log?: (line: string) => void;
  /** Heartbeat interval in ms during long steps (default 30 s). */
  readonly heartbeatMs?: number;
  /** Ignore an already installed pulumi/plugins on PATH / in ~/.pulumi. */
  readonly noAmbient?: boolean;
  /**
   * How many independent steps (the engine with its providers, each sandbox build) run at once.
   * @default HOMELAB_STACK_TOOLCHAIN_JOBS, else 2
   */
  readonly jobs?: number;
}

export interface EnsureResult {
  readonly source: "cache" | "ambient";
  /** Requested providers that could not be provided, with the reason. */
  readonly missing: readonly { readonly name: string; readonly version: string; readonly reason: string }[];
  readonly steps: readonly { readonly name: string; readonly ms: number; readonly skipped: boolean }[];
}

export class ToolchainError extends Error {
  constructor(
    readonly step: string,
    readonly module: string,
    readonly outputTail: string,
    readonly hint: string,
  ) {
    super(
      `toolchain step "${step}" failed\n` +
      `  module: ${module}\n` +
      (outputTail ? `  last lines of output:\n${outputTail.replace(/^/gm, "    | ")}\n` : "") +
      `  what to do: ${hint}`,
    );
    this.name = "ToolchainError";
  }
}

const GO_ENV: NodeJS.ProcessEnv = {
  CGO_ENABLED: "0",
  GOTOOLCHAIN: "local",
  // The wrapper go.sum files are committed and pin every module hash; the
  // checksum database does not know many of these versions.
  GOSUMDB: "off",
  GOFLAGS: "-mod=readonly -buildvcs=false",
};

function fmtDuration(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s < 60) {
    return `${s}s`;
  }
  return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
}

function sha256(parts: readonly (string | Buffer)[]): string {
  const h = crypto.createHash("sha256");
  for (const p of parts) {
    h.update(p);
    h.update("\0");
  }
  return h.digest("hex").slice(0, 16);
}

/** Hashes files by their path relative to the repository, so every clone shares the cache. */
function hashFiles(files: readonly string[]): string {
  return sha256(files.flatMap((f) => [path.relative(REPO_ROOT, f), fs.existsSync(f) ? fs.readFileSync(f) : "<missing>"]));
}

function listFiles(dir: string): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) {
      out.push(...listFiles(p));
    } else {
      out.push(p);
    }
  }
  return out;
}

class Stamps {
  constructor(private readonly dir: string) {}
  private file(id: string): string {
    return path.join(this.dir, `${id}.json`);
  }
  ok(id: string, key: string, outputs: readonly string[]): boolean {
    try {
      const raw: unknown = JSON.parse(fs.readFileSync(this.file(id), "utf8"));
      return typeof raw === "object" && raw !== null && "key" in raw && raw.key === key &&
        outputs.every((o) => fs.existsSync(o));
    } catch {
      return false;
    }
  }
  write(id: string, key: string, detail: Record<string, string>): void {
    fs.mkdirSync(this.dir, { recursive: true });
    const tmp = `${this.file(id)}.tmp`;
    fs.writeFileSync(tmp, JSON.stringify({ key, ...detail, builtAt: new Date().toISOString() }, null, 2) + "\n");
    fs.renameSync(tmp, this.file(id));
  }
}

interface Ctx {
  readonly paths: ToolchainPaths;
  readonly stamps: Stamps;
  readonly log: (line: string) => void;
  readonly heartbeatMs: number;
  readonly steps: { name: string; ms: number; skipped: boolean }[];
}

async function step(ctx: Ctx, name: string, fresh: boolean, run: () => Promise<void>): Promise<void> {
  if (fresh) {
    ctx.steps.push({ name, ms: 0, skipped: true });
    ctx.log(`✓ ${name} (up to date)`);
    return;
  }
  ctx.log(`▶ ${name}`);
  const t0 = Date.now();
  await run();
  const ms = Date.now() - t0;
  ctx.steps.push({ name, ms, skipped: false });
  ctx.log(`✓ ${name} done in ${fmtDuration(ms)}`);
}

/** Runs a command, logging to a file, with heartbeats; throws ToolchainError on failure. */
async function runLogged(
  ctx: Ctx,
  opts: {
    readonly step: string; readonly what: string; readonly module: string; readonly hint: string;
    readonly cmd: string; readonly args: readonly string[]; readonly cwd: string; readonly env?: NodeJS.ProcessEnv;
    readonly logName: string;
  },
): Promise<string> {
  fs.mkdirSync(ctx.paths.logDir, { recursive: true });
  const logFile = path.join(ctx.paths.logDir, `${opts.logName}.log`);
  const out = fs.createWriteStream(logFile);
  out.write(`$ (cd ${opts.cwd} && ${opts.cmd} ${opts.args.join(" ")})\n`);
  const t0 = Date.now();
  const timer = setInterval(() => {
    ctx.log(`  … still ${opts.what} (${fmtDuration(Date.now() - t0)})`);
  }, ctx.heartbeatMs);
  let tail = "";
  let stdout = "";
  try {
    const code = await new Promise<number>((resolve, reject) => {
      const child = spawn(opts.cmd, [...opts.args], {
        cwd: opts.cwd,
        env: { ...process.env, ...GO_ENV, ...opts.env },
        stdio: ["ignore", "pipe", "pipe"],
      });
      const onData = (isStdout: boolean) => (d: Buffer): void => {
        out.write(d);
        const s = d.toString();
        if (isStdout) {
          stdout += s;
        }
        tail = (tail + s).slice(-8000);
      };
      child.stdout.on("data", onData(true));
      child.stderr.on("data", onData(false));
      child.on("error", reject);
      child.on("close", (c) => resolve(c ?? 1));
    });
    if (code !== 0) {
      const lines = tail.trimEnd().split("\n").slice(-20).join("\n");
      throw new ToolchainError(opts.step, opts.module, `${lines}\n(full log: ${logFile})`, opts.hint);
    }
  } catch (e) {
    if (e instanceof ToolchainError) {
      throw e;
    }
    throw new ToolchainError(opts.step, opts.module, String(e), opts.hint);
  } finally {
    clearInterval(timer);
    await new Promise<void>((r) => out.end(r));
  }
  return stdout;
}

const BUILD_HINT = (ctx: Ctx): string =>
  "check that the Go module proxy is reachable (go env GOPROXY) and that the wrapper go.mod/go.sum under " +
  `toolchain/go/ are intact; the full log is in ${ctx.paths.logDir}. To force a rebuild delete ` +
  `${ctx.paths.stampDir} (or the one stamp file) and run npm run toolchain again.`;

function goWrapperDir(sub: string): string {
  return path.join(REPO_ROOT, "toolchain", "go", sub);
}

function wrapperInputs(sub: string): string[] {
  return listFiles(goWrapperDir(sub)).filter((f) => !/\/(cmd|upstream|shim-src)\//.test(f));
}

/** Replace a directory's contents atomically-ish: build into tmp, then rename. */
function installDir(tmp: string, dest: string): void {
  fs.rmSync(dest, { recursive: true, force: true });
  fs.mkdirSync(path.dirname(dest), { recursive: true });
  fs.renameSync(tmp, dest);
}

function freshTmp(ctx: Ctx, name: string): string {
  const tmp = path.join(ctx.paths.cache, "tmp", `${name}-${process.pid}`);
  fs.rmSync(tmp, { recursive: true, force: true });
  fs.mkdirSync(tmp, { recursive: true });
  return tmp;
}

// ---- engine ----------------------------------------------------------------

const DYNAMIC_PROVIDER_SCRIPT = path.join(REPO_ROOT, "node_modules", "@pulumi", "pulumi", "pulumi-resource-pulumi-nodejs");

async function buildEngine(ctx: Ctx): Promise<void> {
  const name = `pulumi CLI + Node.js language host v${PULUMI_VERSION}`;
  const bin = ctx.paths.binDir;
  const outputs = ["pulumi", "pulumi-language-nodejs", "pulumi-resource-pulumi-nodejs"].map((f) => path.join(bin, f));
  const key = sha256([PULUMI_VERSION, hashFiles(wrapperInputs("pulumi")), hashFiles([DYNAMIC_PROVIDER_SCRIPT])]);
  await step(ctx, name, ctx.stamps.ok("engine", key, outputs), async () => {
    if (!fs.existsSync(DYNAMIC_PROVIDER_SCRIPT)) {
      throw new ToolchainError(name, "@pulumi/pulumi (npm)", "", `${DYNAMIC_PROVIDER_SCRIPT} is missing: run npm ci first.`);
    }
    const tmp = freshTmp(ctx, "engine");
    await runLogged(ctx, {
      step: name, what: "building pulumi CLI", logName: "engine",
      module: `github.com/pulumi/pulumi/pkg/v3@v${PULUMI_VERSION}`, hint: BUILD_HINT(ctx),
      cmd: "go",
      args: [
        "build", "-trimpath", "-tags", "osusergo,grpcnotrace",
        "-ldflags", `-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=v${PULUMI_VERSION}`,
        "-o", tmp + path.sep,
        "github.com/pulumi/pulumi/pkg/v3/cmd/pulumi", "./pulumi-language-nodejs",
      ],
      cwd: goWrapperDir("pulumi"),
    });
    fs.copyFileSync(DYNAMIC_PROVIDER_SCRIPT, path.join(tmp, "pulumi-resource-pulumi-nodejs"));
    fs.chmodSync(path.join(tmp, "pulumi-resource-pulumi-nodejs"), 0o755);
    installDir(tmp, bin);
    ctx.stamps.write("engine", key, { version: PULUMI_VERSION });
  });
}

// ---- providers -------------------------------------------------------------

function providerBin(ctx: Ctx, p: ProviderSpec): string {
  return path.join(ctx.paths.cache, "bin", "providers", `${p.name}-${p.moduleVersion ?? "none"}`,
    `pulumi-resource-${p.name}`);
}

async function buildProvider(ctx: Ctx, p: ProviderSpec, requested: string): Promise<string> {
  const wrapper = p.wrapperDir;
  const moduleVersion = p.moduleVersion;
  const release = p.sourceRelease ?? requested;
  if (!wrapper || !moduleVersion) {
    throw new Error(`provider ${p.name} has no wrapper module`);
  }
  const out = providerBin(ctx, p);
  const name = `provider ${p.name} v${release} (${p.module}@${moduleVersion})`;
  if (release !== requested) {
    ctx.log(`! provider ${p.name}: the SDK requests v${requested} but the newest source the module proxy serves is ` +
      `v${release}; it is installed as v${requested} and the engine will warn about the version mismatch`);
  }
  const key = sha256([p.name, release, moduleVersion, hashFiles(wrapperInputs(wrapper))]);
  const stampId = `provider-${p.name}`;
  await step(ctx, name, ctx.stamps.ok(stampId, key, [out]), async () => {
    const module = `${p.module}@${moduleVersion}`;
    // Locate (download if needed) the provider module to copy its main package.
    const dl = await runLogged(ctx, {
      step: name, what: `downloading ${p.module}`, logName: `${stampId}-download`, module, hint: BUILD_HINT(ctx),
      cmd: "go", args: ["mod", "download", "-json", module], cwd: goWrapperDir(wrapper),
    });
    const info: unknown = JSON.parse(dl);
    if (typeof info !== "object" || info === null || !("Dir" in info) || typeof info.Dir !== "string") {
      throw new ToolchainError(name, module, dl.slice(-2000), BUILD_HINT(ctx));
    }
    // Work directory in the cache: wrapper go.mod/go.sum + the copied cmd/ package.
    const src = path.join(ctx.paths.srcDir, `${p.name}-${moduleVersion}`);
    fs.rmSync(src, { recursive: true, force: true });
    fs.mkdirSync(src, { recursive: true });
    for (const f of ["go.mod", "go.sum"]) {
      fs.copyFileSync(path.join(goWrapperDir(wrapper), f), path.join(src, f));
    }
    const cmdDir = path.join(src, p.cmdPath);
    fs.cpSync(path.join(info.Dir, p.cmdPath), cmdDir, { recursive: true });
    for (const f of listFiles(cmdDir)) {
      fs.chmodSync(f, 0o644);
    }
    fs.rmSync(path.join(cmdDir, "generate.go"), { force: true });
    for (const e of p.embeds) {
      const parsed: unknown = JSON.parse(fs.readFileSync(path.join(cmdDir, e.from), "utf8"));
      if (e.setVersion && typeof parsed === "object" && parsed !== null) {
        (parsed as Record<string, unknown>).version = release;
      }
      fs.writeFileSync(path.join(cmdDir, e.to), JSON.stringify(parsed));
    }
    const tmp = freshTmp(ctx, stampId);
    await runLogged(ctx, {
      step: name, what: `building pulumi-resource-${p.name}`, logName: stampId, module, hint: BUILD_HINT(ctx),
      cmd: "go",
      args: ["build", "-trimpath", "-ldflags", `-s -w -X ${p.versionVar}=${release}`,
        "-o", path.join(tmp, `pulumi-resource-${p.name}`), `./${p.cmdPath}`],
      cwd: src,
    });
    installDir(tmp, path.dirname(out));
    ctx.stamps.write(stampId, key, { module, release });
  });
  return out;
}

function pluginDir(pulumiHome: string, name: string, version: string): string {
  return path.join(pulumiHome, "plugins", `resource-${name}-v${version}`);
}

async function installPlugin(ctx: Ctx, p: ProviderSpec, requested: string, binary: string): Promise<void> {
  const dir = pluginDir(ctx.paths.pulumiHome, p.name, requested);
  const name = `install plugin resource ${p.name} v${requested} into ${ctx.paths.pulumiHome}`;
  const key = sha256([requested, fs.statSync(binary).mtimeMs.toString(), binary]);
  const stampId = `plugin-${p.name}`;
  const fresh = ctx.stamps.ok(stampId, key, [path.join(dir, `pulumi-resource-${p.name}`)]) &&
    !fs.existsSync(`${dir}.partial`);
  // The toolchain PULUMI_HOME is ours: drop other versions of this plugin so
  // `pulumi plugin ls` shows exactly what the SDKs request.
  const pluginsDir = path.dirname(dir);
  if (fs.existsSync(pluginsDir)) {
    for (const e of fs.readdirSync(pluginsDir)) {
      if (e.startsWith(`resource-${p.name}-v`) && !e.startsWith(path.basename(dir))) {
        fs.rmSync(path.join(pluginsDir, e), { recursive: true, force: true });
      }
    }
  }
  await step(ctx, name, fresh, async () => {
    fs.rmSync(dir, { recursive: true, force: true });
    fs.rmSync(`${dir}.partial`, { recursive: true, force: true });
    fs.rmSync(`${dir}.lock`, { force: true });
    await runLogged(ctx, {
      step: name, what: `installing ${p.name}`, logName: stampId, module: `${p.module} (plugin install)`,
      hint: `run ${ctx.paths.pulumi} plugin install resource ${p.name} ${requested} --file ${binary} by hand to see why.`,
      cmd: ctx.paths.pulumi,
      args: ["plugin", "install", "resource", p.name, requested, "--file", binary],
      cwd: REPO_ROOT,
      env: { PULUMI_HOME: ctx.paths.pulumiHome, PULUMI_SKIP_UPDATE_CHECK: "true" },
    });
    ctx.stamps.write(stampId, key, { requested, binary });
  });
}

// ---- sandbox ---------------------------------------------------------------

async function buildGo(ctx: Ctx, b: GoBuildSpec): Promise<void> {
  const dest = path.join(ctx.paths.cache, "bin", b.binSubdir);
  const outputs = b.outputs.map((o) => path.join(dest, o.out));
  const main = b.mainModule;
  const key = sha256([b.id, b.ldflags, b.tags ?? "", hashFiles(wrapperInputs(b.wrapperDir)),
    main ? `${main.path}@${main.version} ${main.sum}` : ""]);
  await step(ctx, b.title, ctx.stamps.ok(b.id, key, outputs), async () => {
    const cwd = main ? await copyMainModule(ctx, b, main) : goWrapperDir(b.wrapperDir);
    const tmp = freshTmp(ctx, b.id);
    const tagArgs = b.tags ? ["-tags", b.tags] : [];
    // Binaries whose package base name is their output name go in one
    // invocation (shared compile); the rest need -o <file> each.
    const direct = b.outputs.filter((o) => path.basename(o.pkg) === o.out);
    const renamed = b.outputs.filter((o) => path.basename(o.pkg) !== o.out);
    const invocations: { args: string[]; names: string[] }[] = [];
    if (direct.length > 0) {
      invocations.push({ args: ["-o", tmp + path.sep, ...direct.map((o) => o.pkg)], names: direct.map((o) => o.out) });
    }
    for (const o of renamed) {
      invocations.push({ args: ["-o", path.join(tmp, o.out), o.pkg], names: [o.out] });
    }
    let i = 0;
    for (const { args: inv, names } of invocations) {
      i++;
      await runLogged(ctx, {
        step: b.title, what: `building ${names.join(", ")}`,
        logName: `${b.id}-${i}`, module: b.moduleLabel, hint: BUILD_HINT(ctx),
        cmd: "go", args: ["build", "-trimpath", ...tagArgs, "-ldflags", b.ldflags, ...inv],
        cwd,
      });
    }
    installDir(tmp, dest);
    ctx.stamps.write(b.id, key, { modules: b.moduleLabel });
  });
}

/** The module cache is read-only; a copy must be writable (and removable) again. */
function makeWritable(dir: string): void {
  fs.chmodSync(dir, 0o755);
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) {
      makeWritable(p);
    } else if (e.isFile()) {
      fs.chmodSync(p, 0o644);
    }
  }
}

/**
 * Copies `main` from the module cache (downloading it if needed, checking its hash against the
 * manifest) into <cache>/src/<id>-<version>/ with the wrapper's go.mod and go.sum in place of
 * its own, and returns that directory.
 */
async function copyMainModule(ctx: Ctx, b: GoBuildSpec, main: NonNullable<GoBuildSpec["mainModule"]>): Promise<string> {
  const module = `${main.path}@${main.version}`;
  fs.mkdirSync(ctx.paths.srcDir, { recursive: true });
  // Outside any module (the wrapper's go.mod names the module itself).
  const dl = await runLogged(ctx, {
    step: b.title, what: `downloading ${main.path}`, logName: `${b.id}-download`, module, hint: BUILD_HINT(ctx),
    cmd: "go", args: ["mod", "download", "-json", module], cwd: ctx.paths.srcDir,
  });
  const info: unknown = JSON.parse(dl);
  if (typeof info !== "object" || info === null || !("Dir" in info) || typeof info.Dir !== "string" ||
    !("Sum" in info) || info.Sum !== main.sum) {
    throw new ToolchainError(b.title, module, dl.slice(-2000),
      `the module's hash is not ${main.sum} (toolchain/manifest.ts): the proxy served other content`);
  }
  const src = path.join(ctx.paths.srcDir, `${b.id}-${main.version}`);
  fs.rmSync(src, { recursive: true, force: true });
  fs.cpSync(info.Dir, src, { recursive: true });
  makeWritable(src);
  for (const f of ["go.mod", "go.sum"]) {
    fs.copyFileSync(path.join(goWrapperDir(b.wrapperDir), f), path.join(src, f));
  }
  return src;
}

// ---- ambient ---------------------------------------------------------------

function which(bin: string): string | undefined {
  for (const dir of (process.env.PATH ?? "").split(path.delimiter)) {
    const p = path.join(dir, bin);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      return p;
    } catch {
      // keep looking
    }
  }
  return undefined;
}

/** A pulumi of the right version plus all required plugins already installed (no build needed). */
function findAmbient(ctx: Ctx, required: readonly { name: string; version: string }[]): { binDir: string; pulumiHome: string } | undefined {
  const pulumi = which("pulumi");
  if (!pulumi || path.dirname(pulumi) === ctx.paths.binDir) {
    return undefined;
  }
  const binDir = path.dirname(fs.realpathSync(pulumi));
  if (!fs.existsSync(path.join(binDir, "pulumi-language-nodejs"))) {
    return undefined;
  }
  const home = process.env.PULUMI_HOME || path.join(os.homedir(), ".pulumi");
  const missing = required.filter((r) => !fs.existsSync(path.join(pluginDir(home, r.name, r.version), `pulumi-resource-${r.name}`)));
  if (missing.length > 0) {
    return undefined;
  }
  const v = spawnSync(pulumi, ["version"], { encoding: "utf8", env: { ...process.env, PULUMI_SKIP_UPDATE_CHECK: "true" }, timeout: 20_000 });
  if (v.status !== 0 || v.stdout.trim() !== `v${PULUMI_VERSION}`) {
    return undefined;
  }
  return { binDir, pulumiHome: home };
}

// ---- entry -----------------------------------------------------------------

export async function ensureToolchain(opts: EnsureOptions = {}): Promise<EnsureResult> {
  const paths = toolchainPaths();
  const only = new Set<Group>(opts.only && opts.only.length > 0 ? opts.only : GROUPS);
  const ctx: Ctx = {
    paths,
    stamps: new Stamps(paths.stampDir),
    log: opts.log ?? ((l: string): void => { process.stderr.write(l + "\n"); }),
    heartbeatMs: opts.heartbeatMs ?? 30_000,
    steps: [],
  };
  fs.mkdirSync(paths.cache, { recursive: true });
  fs.mkdirSync(paths.stateDir, { recursive: true });

  const providers = PROVIDERS.flatMap((p) => {
    const version = requestedPluginVersion(p.npmPackage);
    return version ? [{ spec: p, version }] : [];
  });
  const missing: { name: string; version: string; reason: string }[] = [];
  let source: "cache" | "ambient" = "cache";

  // Independent chains of steps: the engine and its providers (the CLI installs the plugins) and
  // each sandbox build. `jobs` of them run at once; one go build rarely keeps both cores busy
  // through its links and its last, largest packages.
  const chains: (() => Promise<void>)[] = [];
  const wantsEngine = only.has("engine") || only.has("providers");
  if (wantsEngine) {
    const ownStampsOk = ctx.stamps.ok("engine", readStampKey(paths, "engine"), [paths.pulumi]);
    const ambient = !ownStampsOk && !opts.noAmbient && process.env.HOMELAB_STACK_NO_AMBIENT !== "1"
      ? findAmbient(ctx, providers.map((p) => ({ name: p.spec.name, version: p.version })))
      : undefined;
    if (ambient) {
      ctx.log(`✓ using installed pulumi v${PULUMI_VERSION} in ${ambient.binDir} and plugins in ${ambient.pulumiHome}`);
      fs.writeFileSync(paths.resolvedFile, JSON.stringify({ kind: "ambient", ...ambient }, null, 2) + "\n");
      source = "ambient";
    } else {
      fs.rmSync(paths.resolvedFile, { force: true });
      chains.push(async () => {
        // The CLI is needed by everything else (plugin install), so it goes first.
        await buildEngine(ctx);
        if (only.has("providers")) {
          for (const { spec, version } of providers) {
            if (spec.unavailable) {
              ctx.log(`✗ provider ${spec.name} v${version}: not built: ${spec.unavailable}`);
              missing.push({ name: spec.name, version, reason: spec.unavailable });
              continue;
            }
            const binary = await buildProvider(ctx, spec, version);
            await installPlugin(ctx, spec, version, binary);
          }
        }
      });
    }
  }
  if (only.has("sandbox")) {
    chains.push(...SANDBOX_BUILDS.map((b) => () => buildGo(ctx, b)));
  }
  await runChains(chains, opts.jobs ?? defaultJobs());
  removeOwnTmp(paths);
  return { source, missing, steps: ctx.steps };
}

function defaultJobs(): number {
  const n = Number(process.env.HOMELAB_STACK_TOOLCHAIN_JOBS);
  return Number.isInteger(n) && n > 0 ? n : 2;
}

/**
 * Runs the chains, `jobs` at a time, in order. After a failure no further chain starts; the
 * running ones finish (their go builds are not left behind) and the first error is thrown.
 */
export async function runChains(chains: readonly (() => Promise<void>)[], jobs: number): Promise<void> {
  let next = 0;
  let failure: Error | undefined;
  const worker = async (): Promise<void> => {
    while (failure === undefined && next < chains.length) {
      const chain = chains[next++];
      try {
        await chain();
      } catch (e) {
        failure ??= e instanceof Error ? e : new Error(String(e));
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(jobs, chains.length)) }, worker));
  if (failure !== undefined) {
    throw failure;
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * Removes the build directories under <cache>/tmp (`<name>-<pid>`, see freshTmp) of this
 * process and of processes that no longer run, and the directory itself once empty:
 * another `npm run toolchain` may be building into it at the same time.
 */
function removeOwnTmp(paths: ToolchainPaths): void {
  const tmp = path.join(paths.cache, "tmp");
  if (!fs.existsSync(tmp)) {
    return;
  }
  for (const e of fs.readdirSync(tmp)) {
    const pid = Number(/-(\d+)$/.exec(e)?.[1]);
    if (!pid || pid === process.pid || !pidAlive(pid)) {
      fs.rmSync(path.join(tmp, e), { recursive: true, force: true });
    }
  }
  try {
    fs.rmdirSync(tmp);
  } catch {
    // not empty: in use by another run
  }
}

function readStampKey(paths: ToolchainPaths, id: string): string {
  try {
    const raw: unknown = JSON.parse(fs.readFileSync(path.join(paths.stampDir, `${id}.json`), "utf8"));
    if (typeof raw === "object" && raw !== null && "key" in raw && typeof raw.key === "string") {
      return raw.key;
    }
  } catch {
    // none
  }
  return "";
}
