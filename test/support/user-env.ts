import { spawn, spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { toolchainEnv } from "../../toolchain/env";

const REPO = path.resolve(__dirname, "../..");

/**
 * The environment of a user who installed Pulumi themselves: a `pulumi` on PATH (the toolchain's
 * binary, linked into a directory of the test's), a PULUMI_HOME of the test's own where the
 * Kubernetes plugin is installed as `pulumi plugin install` installs it, and the given backend.
 * Nothing of the toolchain's environment (its PULUMI_HOME, state or PATH entries) is in it.
 */
export function userPulumiEnv(dir: string, backend: { url: string; passphraseFile: string }): NodeJS.ProcessEnv {
  const tc = toolchainEnv();
  const bin = path.join(dir, "bin");
  const home = path.join(dir, "pulumi-home");
  fs.mkdirSync(bin, { recursive: true });
  fs.mkdirSync(home, { recursive: true });
  fs.symlinkSync(tc.pulumi, path.join(bin, "pulumi"));
  const toolchainDirs = new Set([tc.binDir, tc.sandboxBinDir]);
  const env: NodeJS.ProcessEnv = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !k.startsWith("PULUMI_") && !k.startsWith("HOMELAB_STACK")),
  );
  env.PATH = [bin, ...(process.env.PATH ?? "").split(path.delimiter).filter((p) => p && !toolchainDirs.has(p))].join(path.delimiter);
  env.PULUMI_HOME = home;
  env.PULUMI_BACKEND_URL = backend.url;
  env.PULUMI_CONFIG_PASSPHRASE_FILE = backend.passphraseFile;
  env.PULUMI_SKIP_UPDATE_CHECK = "true";
  for (const [name, binary] of Object.entries(tc.plugins)) {
    const version = path.basename(path.dirname(binary)).replace(`resource-${name}-v`, "");
    const r = spawnSync("pulumi", ["plugin", "install", "resource", name, version, "--file", binary], { env, encoding: "utf8" });
    if (r.status !== 0) {
      throw new Error(`pulumi plugin install ${name} ${version}: ${r.stderr}`);
    }
  }
  return env;
}

/** Runs `npm run deploy`'s command line as a user would, in a process of its own. */
export function runDeployCli(args: readonly string[], env: NodeJS.ProcessEnv): Promise<{ code: number; log: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(path.join(REPO, "node_modules", ".bin", "tsx"), [path.join(REPO, "deploy", "cli.ts"), ...args], { env, cwd: REPO });
    let log = "";
    const collect = (c: Buffer): void => {
      log += c.toString();
      process.stderr.write(c);
    };
    child.stdout.on("data", collect);
    child.stderr.on("data", collect);
    child.on("error", reject);
    child.on("close", (code) => resolve({ code: code ?? 1, log }));
  });
}
