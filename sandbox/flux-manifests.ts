import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import * as YAML from "yaml";
import { FLUX_VERSION } from "../lib/config";
import { cacheDir } from "../toolchain/env";

const MODULE_DIR = path.join(__dirname, "go", "flux-crds");

/** The API packages whose types are the CRDs the program's Flux objects need. */
const API_PACKAGES = [
  "github.com/fluxcd/source-controller/api/v1",
  "github.com/fluxcd/kustomize-controller/api/v1",
  "github.com/fluxcd/image-reflector-controller/api/v1",
  "github.com/fluxcd/image-automation-controller/api/v1",
];

/**
 * Makes a directory of Flux CRDs for clusters without internet access, generated with
 * controller-gen from the Flux API modules pinned in sandbox/go/flux-crds (the versions Flux
 * FLUX_VERSION ships). Point `homelab:fluxManifests` at it. Returns the directory.
 */
export function ensureFluxManifests(log: (line: string) => void = (l) => console.error(l)): string {
  const dir = path.join(cacheDir(), `flux-manifests-${FLUX_VERSION}`);
  const stamp = path.join(dir, ".complete-v2");
  if (fs.existsSync(stamp)) {
    return dir;
  }
  // A directory of this process's own: two suites starting at once both generate, and the first
  // to finish provides the directory.
  const tmp = `${dir}.partial-${process.pid}`;
  fs.rmSync(tmp, { recursive: true, force: true });
  const started = Date.now();
  log(`flux-manifests: generating Flux ${FLUX_VERSION} CRDs with controller-gen (first run builds it)`);
  const args = ["tool", "controller-gen", "crd", ...API_PACKAGES.map((p) => `paths=${p}`), `output:crd:dir=${tmp}`];
  const r = spawnSync("go", args, { cwd: MODULE_DIR, encoding: "utf8", env: { ...process.env, GOFLAGS: "-mod=mod" } });
  if (r.status !== 0) {
    throw new Error(
      `flux-manifests: controller-gen failed (module ${MODULE_DIR}):\n${(r.stderr || r.stdout).split("\n").slice(-15).join("\n")}\n` +
        "Check that the Go module proxy is reachable, then run again.",
    );
  }
  // Flux's install.yaml carries its namespace; so does this directory.
  fs.writeFileSync(
    path.join(tmp, "00-namespace.yaml"),
    YAML.stringify({ apiVersion: "v1", kind: "Namespace", metadata: { name: "flux-system", labels: { "app.kubernetes.io/instance": "flux-system", "app.kubernetes.io/part-of": "flux" } } }),
  );
  fs.writeFileSync(path.join(tmp, path.basename(stamp)), `${new Date().toISOString()}\n`);
  if (!fs.existsSync(stamp)) {
    // Only an older, incomplete generation is in the way; a complete one is never replaced.
    fs.rmSync(dir, { recursive: true, force: true });
    try {
      fs.renameSync(tmp, dir);
    } catch (e) {
      if (!fs.existsSync(stamp)) {
        throw e;
      }
    }
  }
  fs.rmSync(tmp, { recursive: true, force: true });
  log(`flux-manifests: ${fs.readdirSync(dir).filter((f) => f.endsWith(".yaml")).length} CRDs in ${dir} (${((Date.now() - started) / 1000).toFixed(1)}s)`);
  return dir;
}

if (require.main === module) {
  process.stdout.write(`${ensureFluxManifests()}\n`);
}
