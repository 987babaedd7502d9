import { execFileSync, spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { cacheDir } from "../../toolchain/env";

/*
 * The bench's peers' own tools, installed by the bench alone: Ansible (with the `kubernetes`
 * client its k8s module imports) from PyPI, pinned, in a virtual environment under the toolchain
 * cache. Nothing here is used by the program.
 */

export const ANSIBLE_VERSION = "14.5.0";
export const KUBERNETES_CLIENT_VERSION = "37.0.2";
/** ansible 14's ansible-core runs its controller on Python 3.12 or newer. */
const MIN_PYTHON: [number, number] = [3, 12];

export interface AnsibleEnv {
  readonly venv: string;
  readonly ansiblePlaybook: string;
  readonly python: string;
  /** `kubernetes` imports in the venv (kubernetes.core.k8s needs it). */
  readonly kubernetesClient: boolean;
  /** `ansible-playbook --version`'s first line, e.g. `ansible-playbook [core 2.21.5]`. */
  readonly version: string;
}

function pythonVersion(bin: string): [number, number] | undefined {
  const r = spawnSync(bin, ["-c", "import sys; print(sys.version_info[0], sys.version_info[1])"], { encoding: "utf8" });
  if (r.status !== 0) {
    return undefined;
  }
  const [a, b] = r.stdout.trim().split(" ").map(Number);
  return [a, b];
}

/** A Python new enough for the controller: $HOMELAB_BENCH_PYTHON, python3.13/3.12 on PATH, or pyenv's. */
export function findPython(): string {
  const candidates = [process.env.HOMELAB_BENCH_PYTHON, "python3.13", "python3.12", "python3"];
  const pyenv = path.join(process.env.HOME ?? "/root", ".pyenv", "versions");
  if (fs.existsSync(pyenv)) {
    for (const v of fs.readdirSync(pyenv).sort().reverse()) {
      candidates.push(path.join(pyenv, v, "bin", "python3"));
    }
  }
  for (const c of candidates) {
    if (!c) {
      continue;
    }
    const v = pythonVersion(c);
    if (v && (v[0] > MIN_PYTHON[0] || (v[0] === MIN_PYTHON[0] && v[1] >= MIN_PYTHON[1]))) {
      return c;
    }
  }
  throw new Error(`bench peers: no Python ${MIN_PYTHON.join(".")} or newer found for ansible ${ANSIBLE_VERSION} (set HOMELAB_BENCH_PYTHON)`);
}

export function ansibleVenvDir(): string {
  return path.join(cacheDir(), "bench-peers", `ansible-${ANSIBLE_VERSION}`);
}

/** Creates the venv and installs the pinned packages unless a complete one is there. */
export function ensureAnsible(log: (line: string) => void = () => undefined): AnsibleEnv {
  const venv = ansibleVenvDir();
  const python = path.join(venv, "bin", "python");
  const ansiblePlaybook = path.join(venv, "bin", "ansible-playbook");
  const stamp = path.join(venv, ".installed");
  if (!fs.existsSync(stamp)) {
    fs.rmSync(venv, { recursive: true, force: true });
    fs.mkdirSync(path.dirname(venv), { recursive: true });
    const base = findPython();
    log(`bench peers: venv with ${base} in ${venv}`);
    execFileSync(base, ["-m", "venv", venv], { stdio: ["ignore", "inherit", "inherit"] });
    log(`bench peers: pip install ansible==${ANSIBLE_VERSION} kubernetes==${KUBERNETES_CLIENT_VERSION}`);
    execFileSync(python, ["-m", "pip", "install", "--disable-pip-version-check", "--no-input", "--quiet", `ansible==${ANSIBLE_VERSION}`, `kubernetes==${KUBERNETES_CLIENT_VERSION}`], {
      stdio: ["ignore", "inherit", "inherit"],
    });
    fs.writeFileSync(stamp, `ansible==${ANSIBLE_VERSION}\nkubernetes==${KUBERNETES_CLIENT_VERSION}\n`);
  }
  const kubernetesClient = spawnSync(python, ["-c", "import kubernetes"]).status === 0;
  const core = execFileSync(ansiblePlaybook, ["--version"], { encoding: "utf8" }).split("\n")[0].trim();
  return { venv, ansiblePlaybook, python, kubernetesClient, version: `ansible ${ANSIBLE_VERSION} (${core})` };
}

if (require.main === module) {
  const a = ensureAnsible((l) => process.stderr.write(`${l}\n`));
  process.stdout.write(`${a.version}\nkubernetes client: ${a.kubernetesClient}\n`);
}
