// A real Kubernetes node for the sandbox's API server: Debian's containerd (with runc and the
// CNI plugins) on a config, root, state and socket of its own under a directory, a bridge
// network of its own, the sandbox's pause image, and the kubelet built by the toolchain,
// registered with a client certificate of the cluster's CA. Pods on it run for real.

import { spawnSync } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import * as YAML from "yaml";
import { toolchainEnv, toolchainPaths } from "../toolchain/env";
import { kubeClient } from "./kube";
import { buildImage, ociArchive } from "./oci";
import {
  freePort, logTail, readState, recordAlive, runCommand, startProcess, stopPid, stopProcess, updateState, waitFor,
} from "./processes";

/** Name containerd knows the pause image by (never pulled: imported at start). */
export const PAUSE_IMAGE = "sandbox.localhost/pause:v1";

/** Where Debian's containernetworking-plugins put the plugins. */
export const CNI_BIN_DIR = "/usr/lib/cni";

/** The cluster the node joins: its kubeconfig and the directory holding its CA (ca.crt, ca.key). */
export interface NodeCluster {
  readonly kubeconfig: string;
  readonly pkiDir: string;
}

export interface NodeOptions {
  readonly cluster: NodeCluster;
  /** Node name. @default "sandbox-node" */
  readonly name?: string;
  /** Registries containerd pulls from over plain HTTP (`127.0.0.1:PORT`); credentials come from pull secrets. */
  readonly insecureRegistries?: readonly string[];
  /** @default 120000 */
  readonly timeoutMs?: number;
  /** Progress lines. @default stderr */
  readonly log?: (line: string) => void;
}

export interface SandboxNode {
  readonly name: string;
  /** The node's InternalIP: the bridge's address, which pods' addresses are routed through. */
  readonly address: string;
  /** The pods' subnet on the bridge, e.g. `10.118.7.0/24`. */
  readonly podSubnet: string;
  readonly bridge: string;
  readonly containerdSocket: string;
  /** The kubelet's cgroup root (`/name`), this node's alone. */
  readonly cgroupRoot: string;
  readonly containerdPid: number;
  readonly kubeletPid: number;
  /**
   * Stops the node and removes everything it made: its pods (through the API server when it
   * answers, else straight through containerd), the kubelet and containerd with their shims,
   * mounts under the directory, pod network namespaces, the bridge, the iptables chains the
   * kubelet added, the Node object, and the directory's contents.
   */
  stop(): Promise<void>;
}

/** What the node made on the host, kept in the directory's state file. */
interface NodeResources {
  name: string;
  bridge: string;
  address: string;
  podSubnet: string;
  /** iptables/ip6tables chains (`family table chain`) that existed before the kubelet started. */
  chainsBefore: string[];
  /** The kubelet's cgroup root (`/name`), made in every cgroup v1 hierarchy for this node alone. */
  cgroupRoot: string;
  kubeconfig: string;
}

const STATE_KEY = "node";

function sh(cmd: string, args: readonly string[], what: string): string {
  const r = spawnSync(cmd, args, { encoding: "utf8" });
  if (r.status !== 0) {
    throw new Error(`node: ${what} failed (${cmd} ${args.join(" ")}): ${(r.stderr || r.stdout || String(r.error)).trim()}`);
  }
  return r.stdout;
}

function which(bin: string): string | undefined {
  for (const dir of ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"]) {
    if (fs.existsSync(path.join(dir, bin))) {
      return path.join(dir, bin);
    }
  }
  return undefined;
}

/** A bridge name and a /24 of 10.0.0.0/8 derived from the directory, clear of the host's routes. */
function pickNetwork(dir: string): { bridge: string; address: string; podSubnet: string } {
  const routes = sh("ip", ["-4", "route", "show"], "listing routes");
  const links = sh("ip", ["-o", "link", "show"], "listing links");
  const seed = crypto.createHash("sha256").update(dir).digest();
  for (let i = 0; i < 64; i++) {
    const a = 100 + ((seed[i % 32] + i) % 100);
    const b = (seed[(i + 7) % 32] + 3 * i) % 256;
    const prefix = `10.${a}.${b}.`;
    const bridge = `hlnode${seed.readUInt32BE(i % 28).toString(16).slice(0, 6)}${i === 0 ? "" : String(i)}`.slice(0, 15);
    if (!routes.includes(prefix) && !links.includes(` ${bridge}:`)) {
      return { bridge, address: `${prefix}1`, podSubnet: `${prefix}0/24` };
    }
  }
  throw new Error("node: no free 10.x.y.0/24 for the pods' bridge");
}

/** Every iptables and ip6tables chain, as `family table chain`. */
function chains(): string[] {
  const out: string[] = [];
  for (const family of ["iptables", "ip6tables"]) {
    for (const table of ["filter", "nat", "mangle"]) {
      const r = spawnSync(family, ["-t", table, "-S"], { encoding: "utf8" });
      for (const m of (r.stdout ?? "").matchAll(/^-N (\S+)$/gm)) {
        out.push(`${family} ${table} ${m[1]}`);
      }
    }
  }
  return out;
}

/** Splits an `iptables -S` rule into arguments (double-quoted words kept whole). */
function ruleArgs(rule: string): string[] {
  return [...rule.matchAll(/"((?:[^"\\]|\\.)*)"|(\S+)/g)].map((m) => (m[1] !== undefined ? m[1].replace(/\\(.)/g, "$1") : m[2]));
}

/** Removes the chains (and the rules jumping to them) that are not in `before`. */
function removeNewChains(before: readonly string[]): string[] {
  const keep = new Set(before);
  const added = chains().filter((c) => !keep.has(c) && /^\S+ \S+ (KUBE-|CNI-)/.test(c));
  for (const c of added) {
    const [family, table, chain] = c.split(" ");
    const rules = spawnSync(family, ["-t", table, "-S"], { encoding: "utf8" }).stdout ?? "";
    for (const line of rules.split("\n")) {
      const args = ruleArgs(line);
      if (args[0] === "-A" && args[1] !== chain && args.includes(chain)) {
        spawnSync(family, ["-t", table, "-D", ...args.slice(1)]);
      }
    }
    spawnSync(family, ["-t", table, "-F", chain]);
  }
  for (const c of added) {
    const [family, table, chain] = c.split(" ");
    spawnSync(family, ["-t", table, "-X", chain]);
  }
  return added;
}

const CGROUP_FS = "/sys/fs/cgroup";

/** The cgroup hierarchies mounted under /sys/fs/cgroup (cpu, memory, name=systemd…, unified). */
function cgroupHierarchies(): string[] {
  return fs.readFileSync("/proc/self/mountinfo", "utf8").split("\n")
    .filter((l) => / - cgroup2? /.test(l))
    .map((l) => l.split(" ")[4])
    .filter((m) => m.startsWith(`${CGROUP_FS}/`));
}

/**
 * Makes the cgroup `root` in every hierarchy, so that the kubelet's pods live apart from any other
 * node's (and from the default `/kubepods`); cpuset needs its CPUs and memory nodes set first.
 */
function makeCgroupRoot(root: string): void {
  for (const h of cgroupHierarchies()) {
    const dir = path.join(h, root);
    fs.mkdirSync(dir, { recursive: true });
    for (const f of ["cpuset.cpus", "cpuset.mems"]) {
      if (fs.existsSync(path.join(h, f))) {
        fs.writeFileSync(path.join(dir, f), fs.readFileSync(path.join(h, f), "utf8").trim() || "0");
      }
    }
  }
}

/** Removes the cgroup `root` and everything below it (empty once the pods are gone). */
function removeCgroupRoot(root: string): void {
  const rmTree = (dir: string): void => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      if (e.isDirectory()) {
        rmTree(path.join(dir, e.name));
      }
    }
    try {
      fs.rmdirSync(dir);
    } catch {
      // still has tasks: left for the next stop
    }
  };
  for (const h of cgroupHierarchies()) {
    if (fs.existsSync(path.join(h, root))) {
      rmTree(path.join(h, root));
    }
  }
}

/** Mount points at or under `dir`, deepest first. */
function mountsUnder(dir: string): string[] {
  const prefix = path.resolve(dir);
  return fs.readFileSync("/proc/self/mountinfo", "utf8").split("\n")
    .map((l) => l.split(" ")[4]?.replace(/\\040/g, " "))
    .filter((m): m is string => m !== undefined && (m === prefix || m.startsWith(`${prefix}/`)))
    .sort((a, b) => b.length - a.length);
}

function unmountUnder(dir: string): void {
  for (let round = 0; round < 5; round++) {
    const mounts = mountsUnder(dir);
    if (mounts.length === 0) {
      return;
    }
    for (const m of mounts) {
      if (spawnSync("umount", [m]).status !== 0) {
        spawnSync("umount", ["-l", m]);
      }
    }
  }
}

/** PIDs of the containerd shims serving the containerd on `socket`. */
function shimsOf(socket: string): number[] {
  const pids: number[] = [];
  for (const p of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(p)) {
      continue;
    }
    try {
      const argv = fs.readFileSync(`/proc/${p}/cmdline`, "utf8").split("\0");
      if (path.basename(argv[0] ?? "").startsWith("containerd-shim") && argv.includes(socket)) {
        pids.push(Number(p));
      }
    } catch {
      // gone
    }
  }
  return pids;
}

/** Certificate and key for the kubelet's client identity `system:node:<name>`, signed by the cluster's CA. */
function nodeCredentials(dir: string, name: string, pkiDir: string): { cert: string; key: string } {
  const key = path.join(dir, "node.key");
  const cert = path.join(dir, "node.crt");
  if (fs.existsSync(cert) && fs.existsSync(key)) {
    return { cert, key };
  }
  const csr = path.join(dir, "node.csr");
  sh("openssl", ["req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", key,
    "-subj", `/O=system:nodes/CN=system:node:${name}`, "-out", csr], "making the node's key");
  sh("openssl", ["x509", "-req", "-in", csr, "-CA", path.join(pkiDir, "ca.crt"), "-CAkey", path.join(pkiDir, "ca.key"),
    "-CAcreateserial", "-CAserial", path.join(dir, "ca.srl"), "-days", "365", "-out", cert], "signing the node's certificate");
  fs.rmSync(csr, { force: true });
  fs.chmodSync(key, 0o600);
  return { cert, key };
}

/** containerd's config: every path under `dir`, the sandbox's pause image, CNI from `cniConfDir`. */
export function containerdConfig(o: {
  dir: string; socket: string; cniConfDir: string; registriesDir: string;
}): string {
  const cri = 'plugins."io.containerd.grpc.v1.cri"';
  return [
    "version = 2",
    `root = ${JSON.stringify(path.join(o.dir, "root"))}`,
    `state = ${JSON.stringify(path.join(o.dir, "state"))}`,
    "",
    "[grpc]",
    `  address = ${JSON.stringify(o.socket)}`,
    "[ttrpc]",
    `  address = ""`,
    "[debug]",
    `  address = ""`,
    "[metrics]",
    `  address = ""`,
    "",
    '[plugins."io.containerd.internal.v1.opt"]',
    `  path = ${JSON.stringify(path.join(o.dir, "opt"))}`,
    `[${cri}]`,
    `  sandbox_image = ${JSON.stringify(PAUSE_IMAGE)}`,
    // No CAP_SYS_RESOURCE in a container: runc may not lower oom_score_adj below its own.
    "  restrict_oom_score_adj = true",
    `  stream_server_address = "127.0.0.1"`,
    `  stream_server_port = "0"`,
    "  enable_selinux = false",
    `[${cri}.containerd]`,
    `  snapshotter = "overlayfs"`,
    `  default_runtime_name = "runc"`,
    `[${cri}.containerd.runtimes.runc]`,
    `  runtime_type = "io.containerd.runc.v2"`,
    `[${cri}.containerd.runtimes.runc.options]`,
    "  SystemdCgroup = false",
    `[${cri}.cni]`,
    `  bin_dir = ${JSON.stringify(CNI_BIN_DIR)}`,
    `  conf_dir = ${JSON.stringify(o.cniConfDir)}`,
    `[${cri}.registry]`,
    `  config_path = ${JSON.stringify(o.registriesDir)}`,
    "",
  ].join("\n");
}

/** The pods' network: a bridge with the node's address as gateway, addresses from host-local. */
export function cniConflist(o: { bridge: string; address: string; podSubnet: string; ipamDir: string }): unknown {
  return {
    cniVersion: "1.0.0",
    name: "sandbox-pods",
    plugins: [{
      type: "bridge",
      bridge: o.bridge,
      isGateway: true,
      ipMasq: false,
      hairpinMode: true,
      ipam: {
        type: "host-local",
        dataDir: o.ipamDir,
        ranges: [[{ subnet: o.podSubnet, gateway: o.address }]],
        routes: [{ dst: "0.0.0.0/0" }],
      },
    }],
  };
}

/** The kubelet's configuration for cgroup v1 hosts without systemd cgroups, in a container. */
export function kubeletConfig(o: {
  address: string; port: number; healthzPort: number; clientCA: string; socket: string; cgroupRoot: string; podLogsDir: string;
}): unknown {
  return {
    apiVersion: "kubelet.config.k8s.io/v1beta1",
    kind: "KubeletConfiguration",
    failCgroupV1: false,
    cgroupDriver: "cgroupfs",
    cgroupRoot: o.cgroupRoot,
    failSwapOn: false,
    address: o.address,
    port: o.port,
    readOnlyPort: 0,
    healthzBindAddress: "127.0.0.1",
    healthzPort: o.healthzPort,
    authentication: { anonymous: { enabled: false }, webhook: { enabled: false }, x509: { clientCAFile: o.clientCA } },
    authorization: { mode: "AlwaysAllow" },
    containerRuntimeEndpoint: `unix://${o.socket}`,
    // A kubelet removes every pod log directory of a pod it does not run: nodes sharing the
    // machine's /var/log/pods would delete each other's logs.
    podLogsDir: o.podLogsDir,
    // The machine's disk and memory are shared with everything else: never evict the sandbox's pods.
    evictionHard: { "memory.available": "1Mi", "nodefs.available": "1%", "imagefs.available": "1%", "nodefs.inodesFree": "1%" },
    imageGCHighThresholdPercent: 100,
    imageGCLowThresholdPercent: 99,
    localStorageCapacityIsolation: false,
    serializeImagePulls: false,
    clusterDomain: "cluster.local",
    resolvConf: "/etc/resolv.conf",
    shutdownGracePeriod: "0s",
  };
}

async function ctr(socket: string, args: readonly string[]): Promise<string> {
  const r = await runCommand("ctr", ["--address", socket, "--namespace", "k8s.io", ...args], { timeoutMs: 60_000 });
  if (r.status !== 0) {
    throw new Error(`node: ctr ${args.join(" ")} failed: ${(r.stderr || r.stdout).trim()}`);
  }
  return r.stdout;
}

/** The pause image: the toolchain's static pause program, alone in a layer. */
function pauseArchive(): Buffer {
  const pause = toolchainPaths().pause;
  if (!fs.existsSync(pause)) {
    throw new Error(`node: ${pause} is missing; run: npm run toolchain -- --only sandbox`);
  }
  return ociArchive(buildImage({
    entries: [{ path: "pause", type: "file", mode: 0o755, from: pause }],
    entrypoint: ["/pause"],
    env: [],
  }), PAUSE_IMAGE);
}

interface NodeStatus {
  status?: { conditions?: { type: string; status: string; message?: string }[] };
}

/**
 * Starts (or finds running) the node in `dir`. Idempotent: a node whose containerd and kubelet
 * still run is reused.
 */
export async function startNode(dir: string, opts: NodeOptions): Promise<SandboxNode> {
  dir = path.resolve(dir);
  const name = opts.name ?? "sandbox-node";
  const log = opts.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  const timeoutMs = opts.timeoutMs ?? 120_000;
  const kubelet = path.join(toolchainEnv().sandboxBinDir, "kubelet");
  const missing = [
    fs.existsSync(kubelet) ? undefined : `${kubelet} (npm run toolchain -- --only sandbox)`,
    ...["containerd", "runc", "ctr", "iptables", "ip", "openssl"].map((b) => (which(b) ? undefined : `${b} (npm run setup)`)),
    fs.existsSync(path.join(CNI_BIN_DIR, "bridge")) ? undefined : `${CNI_BIN_DIR}/bridge (npm run setup)`,
  ].filter((m): m is string => m !== undefined);
  if (missing.length > 0) {
    throw new Error(`node: missing ${missing.join(", ")}`);
  }

  const containerdDir = path.join(dir, "containerd");
  const socket = path.join(containerdDir, "containerd.sock");
  const state = readState(dir);
  const existing = state.resources[STATE_KEY] as NodeResources | undefined;
  const running = existing && recordAlive(state.processes.containerd) && recordAlive(state.processes.kubelet);
  if (existing && running) {
    return handle(dir, existing, socket, log);
  }
  if (existing) {
    await stopNode(dir, { log });
  }

  try {
    return await startFresh(dir, name, opts, socket, containerdDir, kubelet, log, timeoutMs);
  } catch (e) {
    // Leave nothing half made: the next start begins from scratch.
    await stopNode(dir, { log }).catch(() => undefined);
    throw e;
  }
}

async function startFresh(
  dir: string, name: string, opts: NodeOptions, socket: string, containerdDir: string, kubelet: string,
  log: (l: string) => void, timeoutMs: number,
): Promise<SandboxNode> {
  const client = kubeClient(opts.cluster.kubeconfig);
  const net = pickNetwork(dir);
  const res: NodeResources = {
    name, ...net, chainsBefore: chains(), kubeconfig: opts.cluster.kubeconfig,
    cgroupRoot: `/sandbox-node-${crypto.createHash("sha256").update(dir).digest("hex").slice(0, 8)}`,
  };
  updateState(dir, (s) => {
    s.resources[STATE_KEY] = res;
  });
  log(`node: ${name} on bridge ${net.bridge} (${net.address}, pods ${net.podSubnet})`);
  sh("ip", ["link", "add", net.bridge, "type", "bridge"], `creating bridge ${net.bridge}`);
  sh("ip", ["addr", "add", `${net.address}/24`, "dev", net.bridge], `addressing bridge ${net.bridge}`);
  sh("ip", ["link", "set", net.bridge, "up"], `bringing bridge ${net.bridge} up`);
  makeCgroupRoot(res.cgroupRoot);

  // containerd, with the pods' network and the registries it may pull from over plain HTTP.
  const cniConfDir = path.join(dir, "cni", "net.d");
  const registriesDir = path.join(containerdDir, "certs.d");
  fs.mkdirSync(cniConfDir, { recursive: true });
  fs.writeFileSync(path.join(cniConfDir, "10-sandbox-pods.conflist"),
    JSON.stringify(cniConflist({ ...net, ipamDir: path.join(dir, "cni", "ipam") }), null, 2) + "\n");
  for (const host of opts.insecureRegistries ?? []) {
    fs.mkdirSync(path.join(registriesDir, host), { recursive: true });
    fs.writeFileSync(path.join(registriesDir, host, "hosts.toml"),
      [`server = "http://${host}"`, "", `[host."http://${host}"]`, `  capabilities = ["pull", "resolve"]`, ""].join("\n"));
  }
  fs.mkdirSync(registriesDir, { recursive: true });
  const configFile = path.join(containerdDir, "config.toml");
  fs.writeFileSync(configFile, containerdConfig({ dir: containerdDir, socket, cniConfDir, registriesDir }));
  const cd = startProcess(dir, { name: "containerd", command: which("containerd")!, args: ["--config", configFile] });
  await waitFor(async () => (await runCommand("ctr", ["--address", socket, "version"], { timeoutMs: 5000 })).status === 0,
    { what: `containerd on ${socket}`, timeoutMs, pid: cd.pid, logFile: cd.logFile, intervalMs: 250 });
  const archive = path.join(containerdDir, "pause.oci.tar");
  fs.writeFileSync(archive, pauseArchive());
  await ctr(socket, ["images", "import", archive]);

  // The kubelet, as system:node:<name>.
  const pkiDir = path.join(dir, "pki");
  fs.mkdirSync(pkiDir, { recursive: true });
  const creds = nodeCredentials(pkiDir, name, opts.cluster.pkiDir);
  const server = (YAML.parse(fs.readFileSync(opts.cluster.kubeconfig, "utf8")) as { clusters: { cluster: { server: string } }[] })
    .clusters[0].cluster.server;
  const caFile = path.join(opts.cluster.pkiDir, "ca.crt");
  const kubeconfig = path.join(dir, "kubelet.kubeconfig");
  fs.writeFileSync(kubeconfig, YAML.stringify({
    apiVersion: "v1",
    kind: "Config",
    clusters: [{ name: "sandbox", cluster: { server, "certificate-authority": caFile } }],
    users: [{ name: name, user: { "client-certificate": creds.cert, "client-key": creds.key } }],
    contexts: [{ name: "node", context: { cluster: "sandbox", user: name } }],
    "current-context": "node",
  }), { mode: 0o600 });
  const configPath = path.join(dir, "kubelet.yaml");
  fs.mkdirSync(path.join(dir, "pod-logs"), { recursive: true });
  fs.writeFileSync(configPath, YAML.stringify(kubeletConfig({
    address: net.address, port: await freePort(), healthzPort: await freePort(), clientCA: caFile, socket,
    cgroupRoot: res.cgroupRoot, podLogsDir: path.resolve(dir, "pod-logs"),
  })));
  const kl = startProcess(dir, {
    name: "kubelet",
    command: kubelet,
    args: [
      "--config", configPath, "--kubeconfig", kubeconfig, "--root-dir", path.join(dir, "kubelet"),
      "--hostname-override", name, "--node-ip", net.address, "--v", "1",
    ],
  });
  try {
    await waitFor(async () => {
      const node = await client.get<NodeStatus>(`/api/v1/nodes/${name}`);
      return node?.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True") ?? false;
    }, { what: `node ${name} Ready`, timeoutMs, pid: kl.pid, logFile: kl.logFile, intervalMs: 500 });
  } catch (e) {
    log(`node: containerd log:\n${logTail(cd.logFile)}`);
    throw e;
  }
  return handle(dir, res, socket, log);
}

function handle(dir: string, res: NodeResources, socket: string, log: (l: string) => void): SandboxNode {
  const state = readState(dir);
  return {
    name: res.name,
    address: res.address,
    podSubnet: res.podSubnet,
    bridge: res.bridge,
    containerdSocket: socket,
    cgroupRoot: res.cgroupRoot,
    containerdPid: state.processes.containerd?.pid ?? 0,
    kubeletPid: state.processes.kubelet?.pid ?? 0,
    stop: () => stopNode(dir, { log }),
  };
}

/** Stops the node `dir` holds, if any, and removes what it made (see SandboxNode.stop). */
export async function stopNode(dir: string, opts: { log?: (l: string) => void } = {}): Promise<void> {
  dir = path.resolve(dir);
  const log = opts.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  const state = readState(dir);
  const res = state.resources[STATE_KEY] as NodeResources | undefined;
  const socket = path.join(dir, "containerd", "containerd.sock");
  const containerdUp = recordAlive(state.processes.containerd);

  // 1. The pods, through the kubelet while it runs: it stops their containers and sandboxes
  //    (CNI DEL, network namespaces) as it does on any node.
  if (res && recordAlive(state.processes.kubelet) && containerdUp && fs.existsSync(res.kubeconfig)) {
    await drainThroughApi(res, socket).catch((e: unknown) =>
      log(`node: ${res.name}'s pods not deleted through the API server (${(e as Error).message.split("\n")[0].trim()}): removing them through containerd`));
  }
  await stopProcess(dir, "kubelet");

  // 2. What is left, straight through containerd: tasks killed, sandboxes' namespaces removed.
  if (containerdUp) {
    await removeContainers(socket).catch((e: unknown) => log(`node: removing containers: ${(e as Error).message}`));
  }
  await stopProcess(dir, "containerd");
  for (const pid of shimsOf(socket)) {
    await stopPid(pid, { timeoutMs: 2000 });
  }

  // 3. Host state.
  unmountUnder(dir);
  if (res) {
    spawnSync("ip", ["link", "del", res.bridge]);
    removeNewChains(res.chainsBefore);
    removeCgroupRoot(res.cgroupRoot);
    if (fs.existsSync(res.kubeconfig)) {
      await deleteNodeObject(res).catch(() => undefined);
    }
  }
  for (const e of fs.existsSync(dir) ? fs.readdirSync(dir) : []) {
    if (e !== "sandbox-state.json") {
      fs.rmSync(path.join(dir, e), { recursive: true, force: true });
    }
  }
  updateState(dir, (s) => {
    delete s.resources[STATE_KEY];
  });
}

async function deleteNodeObject(res: NodeResources): Promise<void> {
  const r = await runCommand(path.join(toolchainEnv().sandboxBinDir, "kubectl"),
    ["--kubeconfig", res.kubeconfig, "delete", "node", res.name, "--ignore-not-found", "--wait=false", "--request-timeout=5s"],
    { timeoutMs: 15_000 });
  if (r.status !== 0) {
    throw new Error(r.stderr.trim());
  }
}

/**
 * Cordons the node (so that controllers' replacement pods stay pending), deletes its pods at once
 * and waits until containerd runs no task for them.
 */
async function drainThroughApi(res: NodeResources, socket: string): Promise<void> {
  const kubectl = path.join(toolchainEnv().sandboxBinDir, "kubectl");
  const cordon = await runCommand(kubectl, ["--kubeconfig", res.kubeconfig, "cordon", res.name, "--request-timeout=10s"], { timeoutMs: 20_000 });
  if (cordon.status !== 0) {
    throw new Error(cordon.stderr.trim());
  }
  const r = await runCommand(kubectl, [
    "--kubeconfig", res.kubeconfig, "delete", "pods", "--all-namespaces", "--field-selector", `spec.nodeName=${res.name}`,
    "--grace-period", "0", "--force", "--wait=false", "--request-timeout=10s",
  ], { timeoutMs: 20_000 });
  if (r.status !== 0) {
    throw new Error(r.stderr.trim());
  }
  await waitFor(async () => (await ctr(socket, ["tasks", "ls", "-q"])).trim() === "" && (await podNetns(socket)).length === 0,
    { what: `the pods of node ${res.name} to stop`, timeoutMs: 60_000, intervalMs: 500 });
}

interface ContainerInfo {
  Labels?: Record<string, string>;
  Spec?: { linux?: { namespaces?: { type: string; path?: string }[] } };
}

/** Network namespaces of the node's pod sandboxes that still exist. */
export async function podNetns(socket: string): Promise<string[]> {
  const out: string[] = [];
  for (const id of (await ctr(socket, ["containers", "ls", "-q"])).split("\n").filter(Boolean)) {
    // The kubelet removes exited containers as it goes: one listed a moment ago may be gone.
    const raw = await ctr(socket, ["containers", "info", id]).catch((e: unknown) => {
      if (/not found/.test(String(e))) {
        return undefined;
      }
      throw e;
    });
    if (raw === undefined) {
      continue;
    }
    const info = JSON.parse(raw) as ContainerInfo;
    if (info.Labels?.["io.cri-containerd.kind"] !== "sandbox") {
      continue;
    }
    const ns = info.Spec?.linux?.namespaces?.find((n) => n.type === "network")?.path;
    if (ns && fs.existsSync(ns)) {
      out.push(ns);
    }
  }
  return out;
}

async function removeContainers(socket: string): Promise<void> {
  const netns = await podNetns(socket);
  for (const id of (await ctr(socket, ["tasks", "ls", "-q"])).split("\n").filter(Boolean)) {
    await ctr(socket, ["tasks", "kill", "--signal", "SIGKILL", id]).catch(() => undefined);
  }
  await waitFor(async () => (await ctr(socket, ["tasks", "ls"])).split("\n").slice(1).every((l) => !/RUNNING|PAUSED/.test(l)),
    { what: "the node's tasks to exit", timeoutMs: 20_000, intervalMs: 250 }).catch(() => undefined);
  for (const id of (await ctr(socket, ["tasks", "ls", "-q"])).split("\n").filter(Boolean)) {
    await ctr(socket, ["tasks", "delete", "--force", id]).catch(() => undefined);
  }
  for (const id of (await ctr(socket, ["containers", "ls", "-q"])).split("\n").filter(Boolean)) {
    await ctr(socket, ["containers", "delete", id]).catch(() => undefined);
  }
  for (const ns of netns) {
    spawnSync("umount", [ns]);
    fs.rmSync(ns, { force: true });
  }
}
