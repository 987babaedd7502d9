// actionlint, built from the Go module proxy on first use and cached with the toolchain.
//
//   npx tsx scripts/actionlint.ts [workflow.yml ...]   lints .github/workflows/*.yml by default
//
// actionlint runs shellcheck on `run:` scripts when shellcheck is on PATH, and skips that otherwise.

import { spawn } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { cacheDir, REPO_ROOT } from "../toolchain/env";

export const ACTIONLINT_VERSION = "v1.7.12";
const MODULE = "github.com/rhysd/actionlint/cmd/actionlint";

export const ACTIONLINT_CONFIG = path.join(REPO_ROOT, ".github", "actionlint.yaml");

export interface EnsureActionlintOptions {
  readonly env?: NodeJS.ProcessEnv;
  /** Progress lines; stderr by default. */
  readonly log?: (line: string) => void;
}

function run(cmd: string, args: readonly string[], env: NodeJS.ProcessEnv, log: (line: string) => void): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env, stdio: ["ignore", "pipe", "pipe"] });
    let pending = "";
    const onData = (chunk: Buffer): void => {
      pending += chunk.toString();
      const lines = pending.split("\n");
      pending = lines.pop() ?? "";
      lines.filter((l) => l.trim() !== "").forEach((l) => log(`  ${l}`));
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", onData);
    child.on("error", reject);
    child.on("close", (code) => {
      if (pending.trim() !== "") {
        log(`  ${pending}`);
      }
      resolve(code ?? 1);
    });
  });
}

/** Path of the pinned actionlint binary, building it with `go install` when it is not cached yet. */
export async function ensureActionlint(opts: EnsureActionlintOptions = {}): Promise<string> {
  const env = opts.env ?? process.env;
  const log = opts.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const binDir = path.join(cacheDir(env), "bin", `actionlint-${ACTIONLINT_VERSION}`);
  const binary = path.join(binDir, "actionlint");
  if (fs.existsSync(binary)) {
    return binary;
  }
  // Built beside the final directory and renamed into place, so a failed or concurrent build never
  // leaves a half-written binary where the next run would trust it.
  const staging = `${binDir}.tmp-${process.pid}`;
  fs.rmSync(staging, { recursive: true, force: true });
  fs.mkdirSync(staging, { recursive: true });
  log(`actionlint: building ${ACTIONLINT_VERSION} with go install (first use only; about a minute)`);
  const t0 = Date.now();
  const goEnv: NodeJS.ProcessEnv = { ...env, GOBIN: staging, CGO_ENABLED: "0", GOFLAGS: "" };
  let code: number;
  try {
    code = await run("go", ["install", `${MODULE}@${ACTIONLINT_VERSION}`], goEnv, log);
  } catch (e) {
    fs.rmSync(staging, { recursive: true, force: true });
    throw new Error(`actionlint: could not run go (${e instanceof Error ? e.message : String(e)}); install Go to build actionlint`, { cause: e });
  }
  if (code !== 0 || !fs.existsSync(path.join(staging, "actionlint"))) {
    fs.rmSync(staging, { recursive: true, force: true });
    throw new Error(`actionlint: go install ${MODULE}@${ACTIONLINT_VERSION} failed (exit ${code})`);
  }
  try {
    fs.renameSync(staging, binDir);
  } catch (e) {
    // Another process finished first; its binary is the same build.
    fs.rmSync(staging, { recursive: true, force: true });
    if (!fs.existsSync(binary)) {
      throw e;
    }
  }
  log(`actionlint: built in ${((Date.now() - t0) / 1000).toFixed(1)}s: ${binary}`);
  return binary;
}

/** The project's workflow files. */
export function workflowFiles(root: string = REPO_ROOT): string[] {
  const dir = path.join(root, ".github", "workflows");
  return fs
    .readdirSync(dir)
    .filter((f) => /\.ya?ml$/.test(f))
    .sort()
    .map((f) => path.join(dir, f));
}

async function main(argv: readonly string[]): Promise<number> {
  const binary = await ensureActionlint();
  const files = argv.length > 0 ? [...argv] : workflowFiles();
  process.stderr.write(`actionlint: checking ${files.map((f) => path.relative(process.cwd(), f)).join(", ")}\n`);
  const child = spawn(binary, ["-config-file", ACTIONLINT_CONFIG, ...files], { stdio: "inherit" });
  const code = await new Promise<number>((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (c) => resolve(c ?? 1));
  });
  if (code === 0) {
    process.stderr.write("actionlint: no problems\n");
  }
  return code;
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (e: unknown) => {
      process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n`);
      process.exitCode = 1;
    },
  );
}
