import { describe, it } from "node:test";
import * as assert from "node:assert/strict";
import * as zlib from "zlib";
import { runChains } from "../../toolchain/build";
import { PAUSE_IMAGE, cniConflist, containerdConfig, kubeletConfig } from "../../sandbox/node";
import { buildImage, layerTar, ociArchive, sha256 } from "../../sandbox/oci";
import { traefikConfig, traefikRbac } from "../../sandbox/traefik";

const tick = (): Promise<void> => new Promise((r) => setTimeout(r, 5));

describe("toolchain chains", () => {
  it("runs at most `jobs` chains at once, in order", async () => {
    let running = 0;
    let most = 0;
    const started: number[] = [];
    const chain = (i: number) => async (): Promise<void> => {
      started.push(i);
      running++;
      most = Math.max(most, running);
      await tick();
      running--;
    };
    await runChains([0, 1, 2, 3, 4].map(chain), 2);
    assert.deepEqual(started, [0, 1, 2, 3, 4]);
    assert.equal(most, 2);
  });

  it("starts no chain after a failure, lets the running one finish, and throws the first error", async () => {
    const done: string[] = [];
    await assert.rejects(
      runChains([
        async () => {
          await tick();
          await tick();
          done.push("slow");
        },
        async () => {
          await tick();
          throw new Error("step failed");
        },
        () => {
          done.push("never");
          return Promise.resolve();
        },
      ], 2),
      /step failed/,
    );
    assert.deepEqual(done, ["slow"]);
  });
});

describe("sandbox node configuration", () => {
  it("containerd keeps every path under its directory, the sandbox's pause image and restrict_oom_score_adj", () => {
    const toml = containerdConfig({ dir: "/s/containerd", socket: "/s/containerd/containerd.sock", cniConfDir: "/s/cni/net.d", registriesDir: "/s/containerd/certs.d" });
    for (const line of [
      'root = "/s/containerd/root"',
      'state = "/s/containerd/state"',
      '  address = "/s/containerd/containerd.sock"',
      `  sandbox_image = "${PAUSE_IMAGE}"`,
      "  restrict_oom_score_adj = true",
      "  SystemdCgroup = false",
      '  conf_dir = "/s/cni/net.d"',
      '  config_path = "/s/containerd/certs.d"',
    ]) {
      assert.ok(toml.split("\n").includes(line), line);
    }
  });

  it("the pods' bridge routes through the node's address, without masquerading", () => {
    assert.deepEqual(cniConflist({ bridge: "hlnode1", address: "10.120.3.1", podSubnet: "10.120.3.0/24", ipamDir: "/s/ipam" }), {
      cniVersion: "1.0.0",
      name: "sandbox-pods",
      plugins: [{
        type: "bridge",
        bridge: "hlnode1",
        isGateway: true,
        ipMasq: false,
        hairpinMode: true,
        ipam: { type: "host-local", dataDir: "/s/ipam", ranges: [[{ subnet: "10.120.3.0/24", gateway: "10.120.3.1" }]], routes: [{ dst: "0.0.0.0/0" }] },
      }],
    });
  });

  it("the kubelet runs on cgroup v1 with cgroupfs, its own cgroup root and no anonymous access", () => {
    const c = kubeletConfig({ address: "10.120.3.1", port: 41000, healthzPort: 41001, clientCA: "/ca.crt", socket: "/s/c.sock", cgroupRoot: "/sandbox-node-1", podLogsDir: "/n/pod-logs" }) as Record<string, unknown>;
    // Its own pod log directory: kubelets sharing one would remove each other's pods' logs.
    assert.equal(c.podLogsDir, "/n/pod-logs");
    assert.equal(c.failCgroupV1, false);
    assert.equal(c.cgroupDriver, "cgroupfs");
    assert.equal(c.cgroupRoot, "/sandbox-node-1");
    assert.equal(c.containerRuntimeEndpoint, "unix:///s/c.sock");
    assert.deepEqual(c.authentication, { anonymous: { enabled: false }, webhook: { enabled: false }, x509: { clientCAFile: "/ca.crt" } });
    assert.equal(c.readOnlyPort, 0);
    assert.equal(c.healthzBindAddress, "127.0.0.1");
  });
});

describe("sandbox images without an engine", () => {
  it("a layer keeps modes, directories and symlinks in ustar headers", () => {
    const tar = layerTar([
      { path: "bin", type: "dir" },
      { path: "bin/tool", type: "file", mode: 0o755, content: "#!/bin/sh\n" },
      { path: "bin/sh", type: "symlink", target: "tool" },
    ]);
    const name = (off: number): string => tar.subarray(off, off + 100).toString().replace(/\0.*$/s, "");
    assert.equal(name(0), "bin/");
    assert.equal(tar.subarray(156, 157).toString(), "5");
    assert.equal(name(512), "bin/tool");
    assert.equal(tar.subarray(512 + 100, 512 + 107).toString(), "0000755");
    assert.equal(name(1536), "bin/sh");
    assert.equal(tar.subarray(1536 + 156, 1536 + 157).toString(), "2");
    assert.equal(tar.subarray(1536 + 157, 1536 + 161).toString(), "tool");
    assert.equal(tar.length % 512, 0);
  });

  it("an image's config names its layer's uncompressed digest and the manifest its blobs", () => {
    const image = buildImage({ entries: [{ path: "pause", type: "file", mode: 0o755, content: "x" }], entrypoint: ["/pause"] });
    const config = JSON.parse(image.config.toString()) as { config: { Entrypoint: string[] }; rootfs: { diff_ids: string[] } };
    assert.deepEqual(config.config.Entrypoint, ["/pause"]);
    assert.equal(config.rootfs.diff_ids[0], sha256(zlib.gunzipSync(image.layer)));
    const manifest = JSON.parse(image.manifest.toString()) as { config: { digest: string }; layers: { digest: string }[] };
    assert.equal(manifest.config.digest, image.configDigest);
    assert.equal(manifest.layers[0].digest, image.layerDigest);
    assert.equal(image.digest, sha256(image.manifest));
    const archive = ociArchive(image, PAUSE_IMAGE).toString("latin1");
    assert.ok(archive.includes(`"io.containerd.image.name":"${PAUSE_IMAGE}"`));
    assert.ok(archive.includes(`blobs/sha256/${image.digest.slice(7)}`));
  });
});

describe("sandbox traefik configuration", () => {
  it("serves loopback only, reads Ingresses as its service account with the cluster's CA, and never calls home", () => {
    assert.deepEqual(traefikConfig({ port: 8000, pingPort: 8001, server: "https://127.0.0.1:6443", token: "t", caFile: "/ca.crt", ingressClass: "traefik" }), {
      entryPoints: { web: { address: "127.0.0.1:8000" }, ping: { address: "127.0.0.1:8001" } },
      ping: { entryPoint: "ping" },
      providers: { kubernetesIngress: { endpoint: "https://127.0.0.1:6443", token: "t", certAuthFilePath: "/ca.crt", ingressClass: "traefik", ingressEndpoint: { ip: "127.0.0.1" } } },
      log: { level: "INFO", noColor: true },
      global: { checkNewVersion: false, sendAnonymousUsage: false },
    });
  });

  it("may update Ingress status and nothing else", () => {
    const role = traefikRbac("traefik").find((o) => (o as { kind: string }).kind === "ClusterRole") as { rules: { resources: string[]; verbs: string[] }[] };
    const writes = role.rules.filter((r) => r.verbs.some((v) => !["get", "list", "watch"].includes(v)));
    assert.deepEqual(writes, [{ apiGroups: ["networking.k8s.io"], resources: ["ingresses/status"], verbs: ["update"] }]);
  });
});
