import { after, describe, it } from "node:test";
import * as assert from "node:assert/strict";
import * as crypto from "crypto";
import * as fs from "fs";
import * as http from "http";
import type { AddressInfo } from "net";
import * as os from "os";
import * as path from "path";
import { FLUX_SYNC_NAME, fluxInstallObjects, fluxSyncObjects, parseManifests, readFluxManifests } from "../../lib/flux-install";
import { installMocks, settle, valueOf } from "../support/mocks";

/** The shape of Flux's install.yaml: one object of every kind it ships, names as upstream's. */
const INSTALL_YAML = `
---
apiVersion: v1
kind: Namespace
metadata:
  name: flux-system
---
apiVersion: v1
kind: ResourceQuota
metadata: { name: critical-pods-flux-system, namespace: flux-system }
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: { name: gitrepositories.source.toolkit.fluxcd.io }
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: { name: kustomizations.kustomize.toolkit.fluxcd.io }
---
apiVersion: v1
kind: ServiceAccount
metadata: { name: source-controller, namespace: flux-system }
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: { name: crd-controller-flux-system }
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: flux-edit-flux-system
  labels: { rbac.authorization.k8s.io/aggregate-to-admin: "true", rbac.authorization.k8s.io/aggregate-to-edit: "true" }
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: flux-view-flux-system
  labels: { rbac.authorization.k8s.io/aggregate-to-view: "true" }
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: { name: cluster-reconciler-flux-system }
roleRef: { apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin }
---
apiVersion: v1
kind: Service
metadata: { name: source-controller, namespace: flux-system }
---
apiVersion: apps/v1
kind: Deployment
metadata: { name: source-controller, namespace: flux-system }
---
apiVersion: apps/v1
kind: Deployment
metadata: { name: kustomize-controller, namespace: flux-system }
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: allow-egress, namespace: flux-system }
---
`;

const names = (objs: unknown[]): string[] => objs.map((o) => `${(o as { kind: string }).kind}/${(o as { metadata: { name: string } }).metadata.name}`);

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "homelab-flux-install-"));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

describe("Flux's install manifests", () => {
  const all = parseManifests(INSTALL_YAML, "install.yaml");

  it("parses every document and skips empty ones", () => {
    assert.equal(all.length, 13);
    assert.deepEqual(parseManifests("---\n---\n", "empty.yaml"), []);
    assert.throws(() => parseManifests("a: [1\n", "bad.yaml"), /^Error: bad\.yaml: document 1: /);
  });

  it("in-cluster: installs everything, the controllers included", () => {
    assert.deepEqual(fluxInstallObjects(all, "in-cluster"), all);
  });

  it("external: only the CRDs, the namespace and the aggregated user roles; nothing that runs or authorises a controller", () => {
    assert.deepEqual(names(fluxInstallObjects(all, "external")), [
      "Namespace/flux-system",
      "CustomResourceDefinition/gitrepositories.source.toolkit.fluxcd.io",
      "CustomResourceDefinition/kustomizations.kustomize.toolkit.fluxcd.io",
      "ClusterRole/flux-edit-flux-system",
      "ClusterRole/flux-view-flux-system",
    ]);
  });

  it("external: refuses manifests without CRDs (a wrong URL or directory)", () => {
    assert.throws(() => fluxInstallObjects(parseManifests("kind: Namespace\nmetadata: {name: x}\n", "x.yaml"), "external"), /no CustomResourceDefinition/);
  });

  it("reads a directory's *.yaml files in name order, as the in-cluster install applies them", async () => {
    const d = path.join(dir, "manifests");
    fs.mkdirSync(d);
    fs.writeFileSync(path.join(d, "b.yaml"), "kind: CustomResourceDefinition\nmetadata: {name: b}\n");
    fs.writeFileSync(path.join(d, "00-namespace.yaml"), "kind: Namespace\nmetadata: {name: flux-system}\n");
    fs.writeFileSync(path.join(d, "notes.txt"), "not a manifest");
    assert.deepEqual(names(await readFluxManifests({ kind: "directory", path: d })), ["Namespace/flux-system", "CustomResourceDefinition/b"]);
  });

  it("reads manifests from a URL, refusing a download whose SHA-256 is not the pinned one", async () => {
    const text = "kind: CustomResourceDefinition\nmetadata: {name: c}\n";
    const server = http.createServer((_req, res) => res.end(text));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/install.yaml`;
      const sha256 = crypto.createHash("sha256").update(text).digest("hex");
      assert.deepEqual(names(await readFluxManifests({ kind: "url", url })), ["CustomResourceDefinition/c"]);
      assert.deepEqual(names(await readFluxManifests({ kind: "url", url, sha256 })), ["CustomResourceDefinition/c"]);
      const other = "b".repeat(64);
      await assert.rejects(readFluxManifests({ kind: "url", url, sha256: other }), {
        message: `homelab:fluxManifestsSha256: ${url} has SHA-256 ${sha256}, not the pinned ${other}; nothing of it was applied`,
      });
    } finally {
      server.close();
    }
  });

  it("builds the flux-system GitRepository and Kustomization", () => {
    const o = fluxSyncObjects({ gitUrl: "ssh://git@git.lan/site.git", namespace: "flux-system", branch: "main", path: "./clusters/x", interval: "1m", timeout: "5m", secretName: FLUX_SYNC_NAME });
    assert.deepEqual(o.gitRepository.spec, { url: "ssh://git@git.lan/site.git", ref: { branch: "main" }, interval: "1m", secretRef: { name: "flux-system" } });
    assert.deepEqual(o.kustomization.spec.sourceRef, { kind: "GitRepository", name: "flux-system" });
    assert.equal(o.kustomization.spec.path, "./clusters/x");
    assert.equal(fluxSyncObjects({ namespace: "flux-system", gitUrl: "https://git.lan/x.git", branch: "m", path: "./", interval: "1m", timeout: "1m" }).gitRepository.spec.secretRef, undefined);
  });
});

describe("FluxBootstrap with external controllers", () => {
  it("hands the ConfigGroup the filtered objects instead of the files", async () => {
    const d = path.join(dir, "install");
    fs.mkdirSync(d);
    fs.writeFileSync(path.join(d, "install.yaml"), INSTALL_YAML);
    const rec = installMocks();
    const { FluxBootstrap } = await import("../../components/flux-bootstrap");
    const flux = new FluxBootstrap("flux", { manifests: { kind: "directory", path: d }, controllers: "external", gitUrl: "https://git.lan/x.git" });
    await valueOf(flux.gitRepositoryName);
    await settle(rec);
    const install = rec.byName("flux-install");
    assert.equal(install.inputs.files, undefined);
    assert.deepEqual(names(install.inputs.objs as unknown[]), names(fluxInstallObjects(parseManifests(INSTALL_YAML, "x"), "external")));
    assert.ok(rec.byName("flux-source").dependencies.includes(install.urn));
  });

  it("in-cluster, reads pinned manifests itself to check them, and leaves unpinned ones to the provider", async () => {
    const server = http.createServer((_req, res) => res.end(INSTALL_YAML));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/install.yaml`;
      const sha256 = crypto.createHash("sha256").update(INSTALL_YAML).digest("hex");
      const rec = installMocks();
      const { FluxBootstrap } = await import("../../components/flux-bootstrap");
      const pinned = new FluxBootstrap("pinned", { manifests: { kind: "url", url, sha256 }, gitUrl: "https://git.lan/x.git" });
      const open = new FluxBootstrap("open", { manifests: { kind: "url", url }, gitUrl: "https://git.lan/x.git" });
      await Promise.all([valueOf(pinned.gitRepositoryName), valueOf(open.gitRepositoryName)]);
      await settle(rec);
      assert.equal(rec.byName("pinned-install").inputs.files, undefined);
      assert.deepEqual(names(rec.byName("pinned-install").inputs.objs as unknown[]), names(parseManifests(INSTALL_YAML, "x")));
      assert.deepEqual(rec.byName("open-install").inputs.files, [url]);
    } finally {
      server.close();
    }
  });
});

describe("the sandbox's Flux controllers", () => {
  it("listen on loopback only, serve and advertise artifacts on the same loopback port, without leader election", async () => {
    const { fluxControllerArgs } = await import("../../sandbox/flux-controllers");
    const args = fluxControllerArgs("/sb/flux", {
      kubeconfig: "/sb/kubeconfig.yaml",
      storagePort: 9001,
      ports: { "source-controller": { metrics: 9002, health: 9003 }, "kustomize-controller": { metrics: 9004, health: 9005 } },
    });
    assert.deepEqual(args["source-controller"], [
      "--metrics-addr=127.0.0.1:9002",
      "--health-addr=127.0.0.1:9003",
      "--enable-leader-election=false",
      "--log-encoding=json",
      "--storage-path=/sb/flux/storage",
      "--storage-addr=127.0.0.1:9001",
      "--storage-adv-addr=127.0.0.1:9001",
    ]);
    assert.deepEqual(args["kustomize-controller"], ["--metrics-addr=127.0.0.1:9004", "--health-addr=127.0.0.1:9005", "--enable-leader-election=false", "--log-encoding=json"]);
  });
});
