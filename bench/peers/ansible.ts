import { execFile } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { promisify } from "util";
import * as YAML from "yaml";
import { composeToYaml, renderBackendCompose } from "../../lib/compose";
import { FRONTEND_PORT, backendHealthcheck, pinnedRef } from "../../sandbox/images";
import { toolchainEnv } from "../../toolchain/env";
import { Sandbox } from "../../sandbox/sandbox";
import { kubeClient } from "../../sandbox/kube";
import { copyPullSecrets, deploymentCopy } from "./deployment";
import { AnsibleEnv } from "./setup";

const run = promisify(execFile);

/*
 * The Ansible peer: what a homelab user would run instead of the program. A playbook writes the
 * same compose file and `.env` to the same VM over the same sshd, logs in to the registry, runs
 * community.docker.docker_compose_v2 with `pull: always` and `wait`, and checks /api/health. The
 * frontend play applies the same Deployment with kubernetes.core.k8s and `wait`. Its compose
 * project, container, port and namespace are its own, so it never touches the program's.
 */

export const ANSIBLE_NAMESPACE = "bench-ansible";

/** One `ansible-playbook` run: its wall-clock seconds and each play's (from the JSON callback). */
export interface PlaybookRun {
  readonly seconds: number;
  readonly plays: Record<string, number>;
}

export interface AnsiblePeer {
  /** Moves the backend to `tag` (until /api/health serves it). */
  backend(tag: string): Promise<PlaybookRun>;
  /** Moves the frontend Deployment to `tag` (rollout complete). */
  frontend(tag: string): Promise<PlaybookRun>;
  /** The whole promotion in one playbook run: plays "frontend", "frontend gate", "backend" (its health check the gate). */
  promotion(frontendTag: string, backendTag: string): Promise<PlaybookRun>;
}

/**
 * Writes the peer's inventory, config and playbooks in `dir`. `live` is the program's frontend
 * Deployment as the API server returns it; the peer applies a copy (bench/peers/deployment.ts).
 */
export async function prepareAnsiblePeer(sb: Sandbox, a: AnsibleEnv, dir: string, port: number, live: Record<string, unknown>): Promise<AnsiblePeer> {
  fs.mkdirSync(path.join(dir, "tmp"), { recursive: true });
  const kubectl = path.join(toolchainEnv().sandboxBinDir, "kubectl");
  await run(kubectl, ["create", "namespace", ANSIBLE_NAMESPACE], { env: { ...process.env, KUBECONFIG: sb.kubeconfig } }).catch(() => undefined);
  await copyPullSecrets(kubeClient(sb.kubeconfig), live, ANSIBLE_NAMESPACE);
  const deployDir = path.join(sb.vm.workDir, "ansible-backend");
  const cfg = path.join(dir, "ansible.cfg");
  fs.writeFileSync(
    cfg,
    [
      "[defaults]",
      `inventory = ${path.join(dir, "inventory.ini")}`,
      "host_key_checking = True",
      "retry_files_enabled = False",
      "interpreter_python = /usr/bin/python3",
      `local_tmp = ${path.join(dir, "tmp")}`,
      "[ssh_connection]",
      "pipelining = True",
      `control_path_dir = ${path.join(dir, "cp")}`,
      `ssh_args = -o ControlMaster=auto -o ControlPersist=60s -o IdentitiesOnly=yes -o UserKnownHostsFile=${sb.vm.knownHostsFile} -o GlobalKnownHostsFile=/dev/null`,
      "",
    ].join("\n"),
  );
  fs.writeFileSync(
    path.join(dir, "inventory.ini"),
    [
      "[vm]",
      `backend ansible_host=${sb.vm.host} ansible_port=${sb.vm.port} ansible_user=${sb.vm.user} ansible_ssh_private_key_file=${sb.vm.privateKeyFile}`,
      "[control]",
      `localhost ansible_connection=local ansible_python_interpreter=${a.python}`,
      "",
    ].join("\n"),
  );
  const healthUrl = `http://${sb.vm.host}:${port}/api/health`;
  const backendPlay = {
    name: "backend",
    hosts: "vm",
    gather_facts: false,
    vars_files: [path.join(dir, "vars.yml")],
    tasks: [
      { name: "deploy directory", "ansible.builtin.file": { path: deployDir, state: "directory", mode: "0750" } },
      { name: "compose file", "ansible.builtin.copy": { dest: `${deployDir}/docker-compose.yml`, content: "{{ compose }}", mode: "0640" } },
      { name: ".env", "ansible.builtin.copy": { dest: `${deployDir}/.env`, content: "{{ env_file }}", mode: "0600" }, no_log: true },
      {
        name: "registry login",
        "ansible.builtin.command": { cmd: "docker login --username {{ registry_user }} --password-stdin {{ registry }}", stdin: "{{ registry_password }}" },
        environment: { DOCKER_CONFIG: `${deployDir}/.docker` },
        changed_when: false,
        no_log: true,
      },
      {
        name: "compose up",
        "community.docker.docker_compose_v2": { project_src: deployDir, pull: "always", wait: true, wait_timeout: 180 },
        environment: { DOCKER_CONFIG: `${deployDir}/.docker` },
      },
      {
        name: "health",
        "ansible.builtin.uri": { url: healthUrl, return_content: true },
        register: "health",
        // busybox httpd serves the file as application/octet-stream: uri leaves it unparsed.
        until: "health.status == 200 and (health.content | from_json).version == version",
        retries: 120,
        delay: 1,
      },
    ],
  };
  const frontendPlay = {
    name: "frontend",
    hosts: "control",
    gather_facts: false,
    vars_files: [path.join(dir, "vars.yml")],
    tasks: [
      {
        name: "frontend Deployment",
        "kubernetes.core.k8s": { kubeconfig: sb.kubeconfig, state: "present", definition: "{{ deployment }}", apply: true, wait: true, wait_timeout: 180 },
      },
    ],
  };
  // The frontend gate: every pod of the new rollout serving the release's page (pods' addresses
  // are routed to the node's bridge from this machine).
  const frontendGate = {
    name: "frontend gate",
    hosts: "control",
    gather_facts: false,
    vars_files: [path.join(dir, "vars.yml")],
    tasks: [
      {
        name: "the Deployment's pods",
        "kubernetes.core.k8s_info": { kubeconfig: sb.kubeconfig, kind: "Pod", namespace: ANSIBLE_NAMESPACE, label_selectors: "{{ selector }}", field_selectors: ["status.phase=Running"] },
        register: "pods",
      },
      {
        name: "each pod serves the release",
        "ansible.builtin.uri": { url: "http://{{ item }}:{{ frontend_port }}/", return_content: true },
        loop: "{{ pods.resources | rejectattr('metadata.deletionTimestamp', 'defined') | map(attribute='status.podIP') | list }}",
        register: "page",
        until: "page.status == 200 and frontend_version in page.content",
        retries: 60,
        delay: 1,
      },
    ],
  };
  const write = (name: string, plays: unknown[]): string => {
    const f = path.join(dir, name);
    fs.writeFileSync(f, YAML.stringify(plays));
    return f;
  };
  const books = {
    backend: write("backend.yml", [backendPlay]),
    frontend: write("frontend.yml", [frontendPlay]),
    promotion: write("promotion.yml", [frontendPlay, frontendGate, backendPlay]),
  };
  const env = {
    ...process.env,
    ...sb.docker.env(),
    ANSIBLE_CONFIG: cfg,
    ANSIBLE_HOME: path.join(dir, "home"),
    ANSIBLE_NOCOLOR: "1",
    // One JSON document on stdout, with each play's start and end.
    ANSIBLE_STDOUT_CALLBACK: "ansible.posix.json",
    ANSIBLE_LOCALHOST_WARNING: "False",
    PATH: `${path.join(a.venv, "bin")}:${process.env.PATH ?? ""}`,
  };
  const vars = (frontendTag: string | undefined, backendTag: string | undefined): void => {
    const v: Record<string, unknown> = {
      registry: sb.registry.host,
      registry_user: sb.registry.username,
      registry_password: sb.registry.password,
    };
    if (backendTag) {
      v.version = backendTag;
      v.compose = composeToYaml(
        renderBackendCompose({
          project: "bench-ansible",
          image: pinnedRef(sb.images, "backend", backendTag),
          containerName: "bench-ansible-backend",
          port,
          bindAddress: sb.vm.host,
          dataVolume: "bench-ansible-data",
          healthcheckTest: backendHealthcheck(port),
        }),
      );
      v.env_file = `GREETING=hello from the sandbox\nPORT=${port}\n`;
    }
    if (frontendTag) {
      const d = deploymentCopy(live, pinnedRef(sb.images, "frontend", frontendTag), ANSIBLE_NAMESPACE) as { spec: { selector: { matchLabels: Record<string, string> } } };
      v.frontend_version = frontendTag;
      v.frontend_port = FRONTEND_PORT;
      v.selector = Object.entries(d.spec.selector.matchLabels).map(([k, x]) => `${k}=${x}`).join(",");
      v.deployment = d;
    }
    // Holds the registry password: a file only root reads, never an argument.
    fs.writeFileSync(path.join(dir, "vars.yml"), YAML.stringify(v), { mode: 0o600 });
  };
  const play = async (book: string): Promise<PlaybookRun> => {
    const t0 = Date.now();
    let stdout: string;
    try {
      stdout = (await run(path.join(a.venv, "bin", "ansible-playbook"), [book], { env, cwd: dir, maxBuffer: 64 * 1024 * 1024 })).stdout;
    } catch (e) {
      // The tasks holding the password are no_log: the output names them without their values.
      const out = e as { stdout?: string; stderr?: string };
      throw new Error(`ansible peer: ${path.basename(book)} failed:\n${(out.stdout ?? "").slice(-4000)}${out.stderr ?? ""}`, { cause: e });
    }
    const seconds = (Date.now() - t0) / 1000;
    const report = JSON.parse(stdout) as { plays: { play: { name: string; duration?: { start: string; end: string } } }[] };
    const plays: Record<string, number> = {};
    for (const p of report.plays) {
      if (p.play.duration) {
        plays[p.play.name] = (Date.parse(p.play.duration.end) - Date.parse(p.play.duration.start)) / 1000;
      }
    }
    return { seconds, plays };
  };
  return {
    async backend(tag) {
      vars(undefined, tag);
      return play(books.backend);
    },
    async frontend(tag) {
      vars(tag, undefined);
      return play(books.frontend);
    },
    async promotion(frontendTag, backendTag) {
      vars(frontendTag, backendTag);
      return play(books.promotion);
    },
  };
}

/** Removes the peer's compose project (and its volume) and namespace. */
export async function removeAnsiblePeer(sb: Sandbox): Promise<void> {
  const deployDir = path.join(sb.vm.workDir, "ansible-backend");
  const kubectl = path.join(toolchainEnv().sandboxBinDir, "kubectl");
  await run(toolchainEnv().dockerCompose, ["--project-name", "bench-ansible", "--project-directory", deployDir, "-f", path.join(deployDir, "docker-compose.yml"), "down", "-v"], { env: sb.docker.env() }).catch(() => undefined);
  await run(kubectl, ["delete", "namespace", ANSIBLE_NAMESPACE, "--wait=false"], { env: { ...process.env, KUBECONFIG: sb.kubeconfig } }).catch(() => undefined);
}
