// What the toolchain builds, and from which Go modules. Versions of the
// Pulumi engine and plugins come from package-lock.json / node_modules; the
// module versions below are the ones the Go module proxy serves for them.

import * as path from "path";

/** Root of the repository (the directory holding package.json). */
export const REPO_ROOT = path.resolve(__dirname, "..");

export const PULUMI_VERSION = "3.276.0";

export type Group = "engine" | "providers" | "sandbox";
export const GROUPS: readonly Group[] = ["engine", "providers", "sandbox"];

export interface ProviderSpec {
  /** Plugin name, as in `pulumi plugin install resource NAME`. */
  readonly name: string;
  /** npm package whose package.json `pulumi.version` is the requested plugin version. */
  readonly npmPackage: string;
  /** Wrapper module under toolchain/go/ (undefined: no buildable source). */
  readonly wrapperDir?: string;
  /** Go module holding the provider and its cmd/ directory. */
  readonly module: string;
  /** Version of `module` in the wrapper go.mod. */
  readonly moduleVersion?: string;
  /** Release the module version corresponds to (what the binary reports). */
  readonly sourceRelease?: string;
  /** Path of the main package inside the module. */
  readonly cmdPath: string;
  /** Files generated next to main.go before building (go:embed targets). */
  readonly embeds: readonly { readonly from: string; readonly to: string; readonly setVersion: boolean }[];
  /** -X ldflag variable receiving the version. */
  readonly versionVar: string;
  /** Why the provider cannot be built, when it cannot. */
  readonly unavailable?: string;
}

export const PROVIDERS: readonly ProviderSpec[] = [
  {
    name: "kubernetes",
    npmPackage: "@pulumi/kubernetes",
    wrapperDir: "kubernetes",
    module: "github.com/pulumi/pulumi-kubernetes/provider/v4",
    // Commit f47bc2d6f199 is the v4.25.0 release: the newest release commit
    // the module proxy serves (v4.28.0, v4.30.0, v4.31.x, v4.32.0 answer 403).
    moduleVersion: "v4.0.0-20260115033456-f47bc2d6f199",
    sourceRelease: "4.25.0",
    cmdPath: "cmd/pulumi-resource-kubernetes",
    embeds: [
      { from: "schema.json", to: "schema-embed.json", setVersion: true },
      { from: "terraform-mapping.json", to: "terraform-mapping-embed.json", setVersion: false },
    ],
    versionVar: "github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/version.Version",
  },
  {
    name: "command",
    npmPackage: "@pulumi/command",
    module: "github.com/pulumi/pulumi-command/provider",
    cmdPath: "cmd/pulumi-resource-command",
    embeds: [],
    versionVar: "github.com/pulumi/pulumi-command/provider/pkg/version.Version",
    unavailable:
      "the Go module proxy serves no version of github.com/pulumi/pulumi-command/provider " +
      "(v1.2.1 = v0.0.0-20260303235922-7f3eb6f3b77c and earlier releases answer 403 'not available')",
  },
  {
    name: "random",
    npmPackage: "@pulumi/random",
    module: "github.com/pulumi/pulumi-random/provider/v4",
    cmdPath: "cmd/pulumi-resource-random",
    embeds: [],
    versionVar: "github.com/pulumi/pulumi-random/provider/v4/pkg/version.Version",
    unavailable:
      "the Go module proxy serves no version of github.com/pulumi/pulumi-random/provider/v4 " +
      "(v4.21.1 = v4.0.0-20260722185042-f2d8b029d0f7 and earlier releases answer 403 'not available')",
  },
  {
    name: "docker",
    npmPackage: "@pulumi/docker",
    module: "github.com/pulumi/pulumi-docker/provider/v5",
    cmdPath: "cmd/pulumi-resource-docker",
    embeds: [],
    versionVar: "github.com/pulumi/pulumi-docker/provider/v5/pkg/version.Version",
    unavailable:
      "the Go module proxy serves no version of github.com/pulumi/pulumi-docker/provider/v5 " +
      "(v5.1.0 = v5.0.0-20260626165050-e944612c4c97 and v5.0.0 answer 403 'not available')",
  },
];

export interface GoBuildSpec {
  readonly id: string;
  readonly title: string;
  readonly group: Group;
  /** Wrapper module directory under toolchain/go/. */
  readonly wrapperDir: string;
  /** Directory under <cache>/bin/ that receives the binaries. */
  readonly binSubdir: string;
  /** [package, output file name] pairs, built in one `go build` per entry group. */
  readonly outputs: readonly { readonly pkg: string; readonly out: string }[];
  readonly tags?: string;
  readonly ldflags: string;
  /** Module and version named in failure messages. */
  readonly moduleLabel: string;
  /**
   * Build inside this module instead of the wrapper: it is copied from the module cache (its
   * `Sum` checked) and its go.mod and go.sum are replaced by the wrapper's; `outputs` name
   * packages relative to it. For modules whose own replace directives a dependent would lose.
   */
  readonly mainModule?: { readonly path: string; readonly version: string; readonly sum: string };
}

const K8S_VERSION = "v1.36.3";
const k8sLdflags = (() => {
  const cb = "k8s.io/component-base/version";
  const cg = "k8s.io/client-go/pkg/version";
  const [maj, min] = K8S_VERSION.replace(/^v/, "").split(".");
  return [
    `-X ${cb}.gitVersion=${K8S_VERSION}`, `-X ${cb}.gitMajor=${maj}`, `-X ${cb}.gitMinor=${min}`,
    `-X ${cb}.gitTreeState=clean`,
    `-X ${cg}.gitVersion=${K8S_VERSION}`, `-X ${cg}.gitMajor=${maj}`, `-X ${cg}.gitMinor=${min}`,
  ].join(" ");
})();

export const SANDBOX_VERSIONS = {
  kubernetes: K8S_VERSION,
  etcd: "v3.6.8",
  kwok: "v0.8.0",
  compose: "v2.40.3",
  traefik: "v3.6.12",
  flux: "v1.9.6",
  pause: "v1",
} as const;

/** In the order they start (two at a time by default): the longest builds first. */
export const SANDBOX_BUILDS: readonly GoBuildSpec[] = [
  {
    id: "sandbox-k8s",
    title: `kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, kubelet ${K8S_VERSION}, etcd ${SANDBOX_VERSIONS.etcd}, kwok/kwokctl ${SANDBOX_VERSIONS.kwok}`,
    group: "sandbox",
    wrapperDir: "sandbox",
    binSubdir: `sandbox-k8s-${K8S_VERSION}`,
    outputs: [
      { pkg: "k8s.io/kubernetes/cmd/kube-apiserver", out: "kube-apiserver" },
      { pkg: "k8s.io/kubernetes/cmd/kube-controller-manager", out: "kube-controller-manager" },
      { pkg: "k8s.io/kubernetes/cmd/kube-scheduler", out: "kube-scheduler" },
      { pkg: "k8s.io/kubernetes/cmd/kubectl", out: "kubectl" },
      { pkg: "k8s.io/kubernetes/cmd/kubelet", out: "kubelet" },
      { pkg: "go.etcd.io/etcd/server/v3", out: "etcd" },
      { pkg: "sigs.k8s.io/kwok/cmd/kwok", out: "kwok" },
      { pkg: "sigs.k8s.io/kwok/cmd/kwokctl", out: "kwokctl" },
    ],
    tags: "selinux,notest,grpcnotrace",
    ldflags: `-s -w ${k8sLdflags}`,
    moduleLabel: `k8s.io/kubernetes@${K8S_VERSION}, go.etcd.io/etcd/server/v3@${SANDBOX_VERSIONS.etcd}, sigs.k8s.io/kwok@${SANDBOX_VERSIONS.kwok}`,
  },
  {
    id: "sandbox-traefik",
    title: `traefik ${SANDBOX_VERSIONS.traefik}`,
    group: "sandbox",
    wrapperDir: "traefik",
    binSubdir: `traefik-${SANDBOX_VERSIONS.traefik}`,
    outputs: [{ pkg: "./cmd/traefik", out: "traefik" }],
    ldflags: `-s -w -X github.com/traefik/traefik/v3/pkg/version.Version=${SANDBOX_VERSIONS.traefik}`,
    moduleLabel: `github.com/traefik/traefik/v3@${SANDBOX_VERSIONS.traefik}`,
    mainModule: {
      path: "github.com/traefik/traefik/v3",
      version: SANDBOX_VERSIONS.traefik,
      sum: "h1:6pe4s7aaDTQs+AsF7KP3sM/xnq7zOVvibRQe5tw9eFo=",
    },
  },
  // Flux's controllers replace their ./api module with the folder, which the module zip lacks;
  // the wrappers drop that replace (the published api module of the same release is used), and
  // source-controller takes github.com/fluxcd/pkg/artifact v0.18.0 (v0.18.3 answers 403).
  {
    id: "sandbox-source-controller",
    title: `Flux source-controller ${SANDBOX_VERSIONS.flux}`,
    group: "sandbox",
    wrapperDir: "source-controller",
    binSubdir: `source-controller-${SANDBOX_VERSIONS.flux}`,
    outputs: [{ pkg: ".", out: "source-controller" }],
    ldflags: "-s -w",
    tags: "netgo,osusergo,static_build",
    moduleLabel: `github.com/fluxcd/source-controller@${SANDBOX_VERSIONS.flux}`,
    mainModule: {
      path: "github.com/fluxcd/source-controller",
      version: SANDBOX_VERSIONS.flux,
      sum: "h1:nG534/bI6nVpyHra7ONAk6xDB3xPsVT+EOLHZHXPrrc=",
    },
  },
  {
    id: "sandbox-kustomize-controller",
    title: `Flux kustomize-controller ${SANDBOX_VERSIONS.flux}`,
    group: "sandbox",
    wrapperDir: "kustomize-controller",
    binSubdir: `kustomize-controller-${SANDBOX_VERSIONS.flux}`,
    outputs: [{ pkg: ".", out: "kustomize-controller" }],
    ldflags: "-s -w",
    tags: "netgo,osusergo,static_build",
    moduleLabel: `github.com/fluxcd/kustomize-controller@${SANDBOX_VERSIONS.flux}`,
    mainModule: {
      path: "github.com/fluxcd/kustomize-controller",
      version: SANDBOX_VERSIONS.flux,
      sum: "h1:XB+G3A0mky0j5uVHZWv4oSlS2RvZBoNIUhstIvY0JKE=",
    },
  },
  {
    id: "sandbox-compose",
    title: `docker compose CLI plugin ${SANDBOX_VERSIONS.compose}`,
    group: "sandbox",
    wrapperDir: "compose",
    binSubdir: `compose-${SANDBOX_VERSIONS.compose}`,
    outputs: [{ pkg: "github.com/docker/compose/v2/cmd", out: "docker-compose" }],
    ldflags: `-s -w -X github.com/docker/compose/v2/internal.Version=${SANDBOX_VERSIONS.compose}`,
    moduleLabel: `github.com/docker/compose/v2@${SANDBOX_VERSIONS.compose}`,
  },
  {
    id: "sandbox-pause",
    title: `pause ${SANDBOX_VERSIONS.pause} (the node's pod sandbox process)`,
    group: "sandbox",
    wrapperDir: "pause",
    binSubdir: `pause-${SANDBOX_VERSIONS.pause}`,
    outputs: [{ pkg: ".", out: "pause" }],
    ldflags: "-s -w",
    moduleLabel: "toolchain/go/pause",
  },
];
