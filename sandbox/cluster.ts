import { execFile } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { promisify } from "util";
import * as YAML from "yaml";
import { toolchainEnv } from "../toolchain/env";
import { freePort, waitFor } from "./processes";
import { kubeClient } from "./kube";
import { inlineKubeconfigFiles } from "../lib/kube-api";

const run = promisify(execFile);

export interface SandboxCluster {
  readonly name: string;
  readonly kubeconfig: string;
  readonly server: string;
  /** The cluster's CA (ca.crt, ca.key) and admin credentials, which a real node's certificate is signed by. */
  readonly pkiDir: string;
  stop(): Promise<void>;
}

/**
 * A real Kubernetes control plane on loopback: etcd, kube-apiserver, kube-controller-manager and
 * kube-scheduler, with kwok simulating nodes and pods, all run as local binaries by kwokctl (which
 * records and stops its processes by PID). With `nodes: 0` kwok does not run at all and pods wait
 * for a real node (sandbox/node.ts). Idempotent: an existing cluster of the same name in `dir` is
 * reused.
 */
export async function startCluster(dir: string, opts: { name?: string; nodes?: number; log?: (l: string) => void } = {}): Promise<SandboxCluster> {
  const name = opts.name ?? "homelab";
  const log = opts.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  const bin = toolchainEnv().sandboxBinDir;
  const kwokctl = path.join(bin, "kwokctl");
  for (const b of ["kwokctl", "kwok", "etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"]) {
    if (!fs.existsSync(path.join(bin, b))) {
      throw new Error(`cluster: ${path.join(bin, b)} is missing; run: npm run toolchain -- --only sandbox`);
    }
  }
  const workdir = path.join(dir, "kwok");
  const kubeconfig = path.join(dir, "kubeconfig.yaml");
  const env = { ...process.env, KWOK_WORKDIR: workdir, PATH: `${bin}:${process.env.PATH ?? ""}` };
  const kwok = (...args: string[]): Promise<{ stdout: string }> => run(kwokctl, ["--name", name, ...args], { env, maxBuffer: 16 << 20 });

  const existing = (await run(kwokctl, ["get", "clusters"], { env })).stdout.split("\n").map((l) => l.trim());
  if (!existing.includes(name)) {
    const port = await freePort();
    // kwokctl numbers the other components' ports down from 32767 by itself, so two clusters
    // created at once get the same ones, and the second API server ends up on the first's etcd.
    // Every port is picked here, from the kernel's free ones.
    const [etcdPort, etcdPeerPort, managerPort, schedulerPort, kwokPort] = [await freePort(), await freePort(), await freePort(), await freePort(), await freePort()];
    const config = path.join(dir, "kwokctl.yaml");
    fs.mkdirSync(dir, { recursive: true });
    const pki = path.join(workdir, "clusters", name, "pki");
    fs.writeFileSync(
      config,
      YAML.stringify({
        apiVersion: "config.kwok.x-k8s.io/v1alpha1",
        kind: "KwokctlConfiguration",
        options: { etcdPeerPort },
        // The API server reaches the real node's kubelet (pod logs, exec) at its InternalIP, with
        // the admin certificate the kubelet's client CA signed; kwokctl sets neither.
        componentsPatches: [
          {
            name: "kube-apiserver",
            extraArgs: [
              { key: "kubelet-client-certificate", value: path.join(pki, "admin.crt") },
              { key: "kubelet-client-key", value: path.join(pki, "admin.key") },
              { key: "kubelet-preferred-address-types", value: "InternalIP,Hostname" },
            ],
          },
        ],
      }),
    );
    log(`cluster: starting etcd, kube-apiserver (127.0.0.1:${port}), controller-manager, scheduler${opts.nodes === 0 ? "" : " and kwok"}`);
    await kwok(
      "create", "cluster",
      "--config", config,
      "--runtime", "binary",
      "--kube-apiserver-port", String(port),
      "--etcd-port", String(etcdPort),
      "--kube-controller-manager-port", String(managerPort),
      "--kube-scheduler-port", String(schedulerPort),
      "--controller-port", String(kwokPort),
      "--kube-apiserver-binary", path.join(bin, "kube-apiserver"),
      "--kube-controller-manager-binary", path.join(bin, "kube-controller-manager"),
      "--kube-scheduler-binary", path.join(bin, "kube-scheduler"),
      "--kwok-controller-binary", path.join(bin, "kwok"),
      "--etcd-binary", path.join(bin, "etcd"),
      "--kubeconfig", kubeconfig,
      // Without kwok nodes the pods are a real node's: kwok, which manages every node, stays off.
      ...(opts.nodes === 0 ? ["--disable", "kwok-controller"] : []),
      "--wait", "2m",
    );
    if ((opts.nodes ?? 2) > 0) {
      await kwok("scale", "node", "--replicas", String(opts.nodes ?? 2));
    }
  } else {
    await kwok("start", "cluster").catch(() => undefined);
  }
  if (!fs.existsSync(kubeconfig)) {
    fs.copyFileSync(path.join(workdir, "clusters", name, "kubeconfig.yaml"), kubeconfig);
  }
  const client = kubeClient(kubeconfig);
  await waitFor(
    async () => {
      const nodes = await client.get<{ items: unknown[] }>("/api/v1/nodes").catch(() => undefined);
      // Pods are refused until the controller-manager made the namespace's default service account.
      const account = await client.get<unknown>("/api/v1/namespaces/default/serviceaccounts/default").catch(() => undefined);
      return nodes !== undefined && (opts.nodes === 0 || nodes.items.length > 0) && account !== undefined;
    },
    { what: `cluster ${name} ready for pods (${opts.nodes === 0 ? "" : "kwok nodes, "}default service account)`, timeoutMs: 120_000 },
  );
  const server = (/server: (\S+)/.exec(fs.readFileSync(kubeconfig, "utf8")) ?? [])[1] ?? "";
  return {
    name,
    kubeconfig,
    server,
    pkiDir: path.join(workdir, "clusters", name, "pki"),
    async stop() {
      await kwok("delete", "cluster").catch((e: unknown) => log(`cluster: delete failed: ${(e as Error).message}`));
    },
  };
}

/** The kubeconfig at `file` with its certificate files embedded, as k3s writes its own. */
export function embeddedKubeconfig(file: string): string {
  return inlineKubeconfigFiles(fs.readFileSync(file, "utf8"), (f) => fs.readFileSync(f));
}

/** Deletes the cluster kwokctl runs in `dir` (stopping its processes), if there is one. */
export async function stopCluster(dir: string, name = "homelab"): Promise<void> {
  const workdir = path.join(dir, "kwok");
  const kwokctl = path.join(toolchainEnv().sandboxBinDir, "kwokctl");
  if (!fs.existsSync(path.join(workdir, "clusters", name)) || !fs.existsSync(kwokctl)) {
    return;
  }
  await run(kwokctl, ["--name", name, "delete", "cluster"], { env: { ...process.env, KWOK_WORKDIR: workdir } });
}
