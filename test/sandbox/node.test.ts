import { after, before, describe, it } from "node:test";
import * as assert from "node:assert/strict";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as YAML from "yaml";
import { processesMentioning } from "../support/leftovers";
import { RestartsUnreadable, readRestarts, restartsBetween } from "../../lib/restarts";
import { BUSYBOX, HTTPD, PROBE_GREETING, PROBE_PORT as PORT, probeImage } from "../support/probe-image";
import { toolchainEnv } from "../../toolchain/env";
import { SandboxCluster, embeddedKubeconfig, startCluster } from "../../sandbox/cluster";
import { PAUSE_IMAGE, SandboxNode, podNetns, startNode } from "../../sandbox/node";
import { pushImage } from "../../sandbox/oci";
import { CommandRun, runCommand, waitFor } from "../../sandbox/processes";
import { RunningRegistry, startRegistry } from "../../sandbox/registry";

/*
 * The sandbox's real node: containerd, runc, the CNI bridge and the kubelet the toolchain builds,
 * registered with the sandbox's API server. Pods run an image pulled from the sandbox registry.
 * Needs root, the Debian packages of `npm run setup` and `npm run toolchain -- --only sandbox`.
 */


let dir: string;
let cluster: SandboxCluster;
let registry: RunningRegistry;
let node: SandboxNode;
let image: string;

interface Pod {
  status?: {
    phase?: string;
    podIP?: string;
    conditions?: { type: string; status: string }[];
    containerStatuses?: { ready: boolean; restartCount: number; lastState?: { terminated?: { exitCode: number } } }[];
  };
}

async function kubectl(...args: string[]): Promise<string> {
  const r = await runCommand(path.join(toolchainEnv().sandboxBinDir, "kubectl"), ["--kubeconfig", cluster.kubeconfig, ...args]);
  if (r.status !== 0) {
    throw new Error(`kubectl ${args.join(" ")}: ${r.stderr.trim()}`);
  }
  return r.stdout;
}

async function pod(name: string): Promise<Pod> {
  return JSON.parse(await kubectl("get", "pod", name, "-o", "json")) as Pod;
}

const ready = (p: Pod): boolean => p.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True") ?? false;

/** A pod of the test image on the real node, with an HTTP readiness probe of `probePath`. */
async function runPod(name: string, o: { command: string[]; probePath?: string }): Promise<void> {
  const manifest = {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name, labels: { app: name } },
    spec: {
      nodeName: node.name,
      terminationGracePeriodSeconds: 1,
      imagePullSecrets: [{ name: "sandbox-registry" }],
      containers: [{
        name: "main",
        image,
        command: o.command,
        ports: [{ containerPort: PORT }],
        resources: { limits: { cpu: "100m", memory: "32Mi" } },
        ...(o.probePath
          ? { readinessProbe: { httpGet: { path: o.probePath, port: PORT }, periodSeconds: 1, failureThreshold: 1 } }
          : {}),
      }],
    },
  };
  const file = path.join(dir, `${name}.yaml`);
  fs.writeFileSync(file, YAML.stringify(manifest));
  await kubectl("apply", "-f", file);
}


const out = (cmd: string, args: string[]): string => spawnSync(cmd, args, { encoding: "utf8" }).stdout ?? "";

/** Names of the host's network interfaces, or of those enslaved to `master`. */
const links = (master?: string): string[] =>
  out("ip", ["-o", "link", "show", ...(master ? ["master", master] : [])]).split("\n")
    .map((l) => l.split(":")[1]?.trim().split("@")[0] ?? "").filter(Boolean);

/*
 * What a node may leave on the host. Docker engines of other tests may come and go meanwhile,
 * so only what is the node's kind is compared: Kubernetes' and CNI's chains, CNI's namespaces.
 */
function hostState(): { chains: string[]; netns: string[] } {
  const chains: string[] = [];
  for (const family of ["iptables", "ip6tables"]) {
    for (const table of ["filter", "nat", "mangle"]) {
      chains.push(...[...out(family, ["-t", table, "-S"]).matchAll(/^-N ((?:KUBE|CNI)-\S+)$/gm)].map((m) => `${family} ${table} ${m[1]}`));
    }
  }
  return {
    chains,
    netns: fs.existsSync("/var/run/netns") ? fs.readdirSync("/var/run/netns").filter((n) => n.startsWith("cni-")) : [],
  };
}

const mounts = (): string[] => fs.readFileSync("/proc/self/mountinfo", "utf8").split("\n").map((l) => l.split(" ")[4]).filter(Boolean);

let before0: ReturnType<typeof hostState>;

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "hl-node-"));
  before0 = hostState();
  cluster = await startCluster(path.join(dir, "cluster"), { name: "node-test", nodes: 0 });
  registry = await startRegistry(path.join(dir, "registry"));
  const probe = probeImage();
  await pushImage(registry, "probe", "v1", probe);
  image = `${registry.host}/probe:v1`;
  node = await startNode(path.join(dir, "node"), { cluster, insecureRegistries: [registry.host] });
  await kubectl("create", "secret", "docker-registry", "sandbox-registry", `--docker-server=${registry.host}`,
    `--docker-username=${registry.username}`, `--docker-password=${registry.password}`);
});

after(async () => {
  await node?.stop().catch(() => undefined);
  await cluster?.stop().catch(() => undefined);
  await registry?.stop({ keepData: false }).catch(() => undefined);
  fs.rmSync(dir, { recursive: true, force: true });
});

describe("sandbox node", () => {
  it("registers with the API server as a Ready node with the bridge's address, and is reused while it runs", async () => {
    const n = JSON.parse(await kubectl("get", "node", node.name, "-o", "json")) as {
      status: { addresses: { type: string; address: string }[]; nodeInfo: { kubeletVersion: string; containerRuntimeVersion: string } };
    };
    assert.deepEqual(n.status.addresses.find((a) => a.type === "InternalIP")?.address, node.address);
    assert.equal(n.status.nodeInfo.kubeletVersion, "v1.36.3");
    assert.match(n.status.nodeInfo.containerRuntimeVersion, /^containerd:\/\//);
    const again = await startNode(path.join(dir, "node"), { cluster, insecureRegistries: [registry.host] });
    assert.deepEqual([again.kubeletPid, again.containerdPid], [node.kubeletPid, node.containerdPid]);
  });

  it("runs a pod from the sandbox registry, Ready through its HTTP readiness probe and reachable from the host", async () => {
    await runPod("web", { command: HTTPD, probePath: "/healthz" });
    await waitFor(async () => ready(await pod("web")), { what: "pod web Ready", timeoutMs: 90_000, intervalMs: 500 });
    const ip = (await pod("web")).status?.podIP ?? "";
    assert.ok(ip.startsWith(node.podSubnet.replace(/0\/24$/, "")), `pod IP ${ip} in ${node.podSubnet}`);
    const res = await fetch(`http://${ip}:${PORT}/`, { signal: AbortSignal.timeout(5000) });
    assert.equal(res.status, 200);
    assert.equal(await res.text(), PROBE_GREETING);
    // Its logs are in the node's own pod log directory, not the machine's /var/log/pods.
    assert.ok(fs.readdirSync(path.join(dir, "node", "pod-logs")).some((d) => d.includes("_web_")), "the pod's log directory is the node's own");
  });

  it("never marks a pod Ready whose readiness probe fails", async () => {
    await runPod("not-ready", { command: HTTPD, probePath: "/missing" });
    await waitFor(async () => (await pod("not-ready")).status?.phase === "Running", { what: "pod not-ready Running", timeoutMs: 60_000 });
    // Long enough for many probes (period 1 s).
    for (let i = 0; i < 8; i++) {
      const p = await pod("not-ready");
      assert.equal(ready(p), false);
      assert.equal(p.status?.containerStatuses?.[0]?.ready, false);
      await new Promise((r) => setTimeout(r, 1000));
    }
    // The server itself runs: only the probe's path is missing.
    const ip = (await pod("not-ready")).status?.podIP ?? "";
    assert.equal((await fetch(`http://${ip}:${PORT}/missing`, { signal: AbortSignal.timeout(5000) })).status, 404);
  });

  it("restarts a crashing container, and a gate's soak reads the restarts and the last exit through the API", async () => {
    await runPod("crash", { command: [BUSYBOX, "sh", "-c", "echo crashing; exit 3"] });
    // Its certificates embedded, as the stack's kubeconfig has them.
    const kubeconfig = embeddedKubeconfig(cluster.kubeconfig);
    const source = { kind: "pods" as const, kubeconfig, namespace: "default", selector: "app=crash" };
    const first = await readRestarts(source);
    assert.deepEqual(Object.keys(first), ["crash"]);
    await waitFor(async () => ((await pod("crash")).status?.containerStatuses?.[0]?.restartCount ?? 0) >= (first.crash?.restarts ?? 0) + 2,
      { what: "pod crash restarted twice", timeoutMs: 90_000, intervalMs: 1000 });
    const terminated = (await pod("crash")).status?.containerStatuses?.[0]?.lastState?.terminated;
    assert.equal(terminated?.exitCode, 3);
    const events = await kubectl("get", "events", "--field-selector", "involvedObject.name=crash", "-o", "json");
    assert.match(events, /BackOff/);
    assert.match(restartsBetween(first, await readRestarts(source)) ?? "", /^crash restarted [2-9] time\(s\) \(last: exit code 3, Error\)$/);
    // An API server that does not answer is unreadable: the platform's problem, not a restart.
    const closed = kubeconfig.replace(/server: https:\/\/[^\s]+/, "server: https://127.0.0.1:9");
    await assert.rejects(readRestarts({ ...source, kubeconfig: closed }, 3000), RestartsUnreadable);
  });

  it("leaves no process, mount, interface, iptables chain or container behind when stopped", async () => {
    const nodeDir = path.join(dir, "node");
    const podLinks = links(node.bridge);
    assert.ok(podLinks.length >= 3, `the pods' interfaces on ${node.bridge}: ${podLinks.join(", ")}`);
    assert.ok(mounts().some((m) => m.startsWith(nodeDir)), "the running node has mounts under its directory");
    // This node's pods' namespaces: other sandboxes on a shared machine may have their own.
    const netns = await podNetns(node.containerdSocket);
    assert.ok(netns.length > 0, "the pods have network namespaces");
    await node.stop();
    const now = hostState();
    assert.deepEqual(processesMentioning(nodeDir), []);
    assert.deepEqual(mounts().filter((m) => m.startsWith(nodeDir) || netns.includes(m)), []);
    assert.deepEqual(netns.filter((n) => fs.existsSync(n)), []);
    assert.deepEqual(links().filter((l) => l === node.bridge || podLinks.includes(l)), []);
    assert.deepEqual(now.chains.filter((c) => !before0.chains.includes(c)), []);
    for (const h of ["memory", "cpu", "pids", "unified"]) {
      assert.deepEqual(fs.readdirSync(`/sys/fs/cgroup/${h}`).filter((d) => d === "kubepods" || `/${d}` === node.cgroupRoot), [], h);
    }
    assert.deepEqual(fs.readdirSync(nodeDir).filter((f) => f !== "sandbox-state.json"), []);
    const nodes = JSON.parse(await kubectl("get", "nodes", "-o", "json")) as { items: unknown[] };
    assert.equal(nodes.items.length, 0);
    // Stopping again is harmless.
    await node.stop();
  });
});

describe("sandbox node without its API server", () => {
  it("removes its pods straight through containerd when the API server stopped first", async () => {
    const own = path.join(dir, "second");
    const c = await startCluster(path.join(own, "cluster"), { name: "node-test-2", nodes: 0 });
    const n = await startNode(path.join(own, "node"), { cluster: c, name: "second-node" });
    try {
      const file = path.join(own, "pod.yaml");
      fs.writeFileSync(file, YAML.stringify({
        apiVersion: "v1",
        kind: "Pod",
        metadata: { name: "holder" },
        // The node's own pause image: present without any registry.
        spec: { nodeName: n.name, automountServiceAccountToken: false, containers: [{ name: "main", image: PAUSE_IMAGE }] },
      }));
      const kc = (...args: string[]): Promise<CommandRun> =>
        runCommand(path.join(toolchainEnv().sandboxBinDir, "kubectl"), ["--kubeconfig", c.kubeconfig, ...args]);
      assert.equal((await kc("apply", "-f", file)).status, 0);
      await waitFor(async () => (await kc("get", "pod", "holder", "-o", "jsonpath={.status.phase}")).stdout === "Running",
        { what: "pod holder Running", timeoutMs: 60_000, intervalMs: 500 });
      const podLinks = links(n.bridge);
      assert.equal(podLinks.length, 1);
      const netns = await podNetns(n.containerdSocket);
      assert.equal(netns.length, 1);
      await c.stop();
      await n.stop();
      assert.deepEqual(processesMentioning(path.join(own, "node")), []);
      assert.deepEqual(mounts().filter((m) => m.startsWith(path.join(own, "node")) || netns.includes(m)), []);
      assert.deepEqual(netns.filter((ns) => fs.existsSync(ns)), []);
      assert.deepEqual(links().filter((l) => l === n.bridge || podLinks.includes(l)), []);
      assert.deepEqual(hostState().chains.filter((ch) => !before0.chains.includes(ch)), []);
    } finally {
      await n.stop().catch(() => undefined);
      await c.stop().catch(() => undefined);
    }
  });
});
