import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import { ConfigMap, LocalWorkspace, Stack } from "@pulumi/pulumi/automation";
import { listConfig } from "../lib/stack-config";
import { cacheDir, ensureToolchain, toolchainEnv } from "../toolchain/env";
import { embeddedKubeconfig, startCluster, stopCluster } from "./cluster";
import { SandboxNode, startNode, stopNode } from "./node";
import { SandboxTraefik, startTraefik, stopTraefik } from "./traefik";
import { ensureVmAddress, removeVmAddress } from "./vm-address";
import { DockerEngine, ensureDockerEngine, stopDockerEngine, unmountBelow } from "./docker-engine";
import { SandboxImageAutomation, startImageAutomation, stopImageAutomation } from "./image-automation";
import { ensureFluxManifests } from "./flux-manifests";
import { SandboxFluxControllers, startFluxControllers, stopFluxControllers } from "./flux-controllers";
import { cloneProject, commitRelease, serverFile } from "./checkout";
import { GitServer, startGitServer, stopGitServer } from "./git-server";
import { DemoImages, backendHealthcheck, buildDemoImages } from "./images";
import { freePort, runningProcess } from "./processes";
import { RunningRegistry, startRegistry } from "./registry";
import { Vm, startVm, stopVm } from "./vm";
import { VPS_API_KEY_FILE, VPS_APP_PORT, VPS_DATA_PATH, VpsImages, buildVpsImages, vpsAppHealthcheck } from "./vps-images";

/*
 * The local sandbox: every part of the homelab, for real, on this machine. A Docker engine, a
 * registry standing in for Harbor, an sshd "VM" whose deploy user runs compose, a git host
 * (sshd and git-shell) serving the repository Flux syncs, a Kubernetes control plane with a
 * real node (kubelet and containerd) running the pods, Traefik serving the cluster's Ingresses
 * as on k3s, and Flux's source and kustomize controllers; optionally a second sshd host as the VPS, whose app is served by a real
 * Caddy with its internal CA. The `local` stack's config points the program at them.
 */

/** The test domain the sandbox's VPS serves (RFC 2606 reserves .test). */
export const VPS_DOMAIN = "app.homelab.test";

/** The sandbox's VPS: a second sshd host on the same engine, and its images. */
export interface SandboxVps {
  readonly vm: Vm;
  readonly images: VpsImages;
  readonly domain: string;
  /** Loopback ports Caddy's 80 and 443 are published on. */
  readonly httpPort: number;
  readonly httpsPort: number;
}

export const LOCAL_STACK = "local";

export interface Sandbox {
  readonly dir: string;
  readonly docker: DockerEngine;
  readonly registry: RunningRegistry;
  readonly vm: Vm;
  /** The git host: the repository Flux watches, over SSH with a deploy key. */
  readonly git: GitServer;
  readonly kubeconfig: string;
  /** The cluster's node: the frontend's pods run on it for real. */
  readonly node: SandboxNode;
  /** Traefik, serving the program's Ingresses. */
  readonly traefik: SandboxTraefik;
  /** Flux's source-controller and kustomize-controller, syncing the git host's repository. */
  readonly flux: SandboxFluxControllers;
  readonly images: DemoImages;
  /** Traefik's web entry point, the stack's publicUrl. */
  readonly ingressUrl: string;
  /** The backend VM's address: its sshd, the backend's port and the cluster's EndpointSlice use it. */
  readonly backendHost: string;
  readonly backendPort: number;
  /** The main job's project checkout: a clone of the git host's repository with the program linked in. */
  readonly checkout: string;
  /** Environment under which `pulumi` manages the local stack (toolchain, state backend, passphrase file). */
  readonly pulumiEnv: Record<string, string>;
  /** Present when the sandbox was started with a VPS. */
  readonly vps?: SandboxVps;
  /** The image automation stand-in, when started (`SandboxOptions.imageAutomation`). */
  readonly imageAutomation?: SandboxImageAutomation;
}

export function sandboxDir(name = "default"): string {
  return path.join(cacheDir(), "sandbox", name);
}

/**
 * The environment under which `pulumi` and `git` manage the stacks of the sandbox in `dir`: the
 * toolchain's engine, the sandbox's state and passphrase, and SSH to its git host with the deploy key.
 */
export function sandboxPulumiEnv(dir: string): Record<string, string> {
  let gitEnv: Record<string, string> = {};
  try {
    gitEnv = JSON.parse(fs.readFileSync(path.join(dir, GIT_ENV_FILE), "utf8")) as Record<string, string>;
  } catch {
    // the git host has not started yet
  }
  return {
    ...toolchainEnv().vars,
    PULUMI_BACKEND_URL: `file://${path.join(dir, "state")}`,
    PULUMI_CONFIG_PASSPHRASE_FILE: path.join(dir, "passphrase"),
    ...gitEnv,
  };
}

const GIT_ENV_FILE = "git-env.json";

type Log = (line: string) => void;

async function step<T>(log: Log, what: string, fn: () => Promise<T> | T): Promise<T> {
  const started = Date.now();
  log(`sandbox: ${what}…`);
  const result = await fn();
  log(`sandbox: ${what}: done in ${((Date.now() - started) / 1000).toFixed(1)}s`);
  return result;
}

export interface SandboxOptions {
  /** Deploy user on the VM; distinct sandboxes need distinct users. @default "homelab-deploy" */
  readonly vmUser?: string;
  /** System user of the git server; distinct sandboxes need distinct users. @default "<vmUser>-git", or "homelab-git" */
  readonly gitUser?: string;
  /** Docker networking of a dockerd started here; "isolated" lets two run side by side. @default "default" */
  readonly network?: "default" | "isolated";
  /** Host port of the demo backend (passed to it as PORT). @default 3001 */
  readonly backendPort?: number;
  /** Also run the VPS (its own sshd host, Caddy and app images); `user` names its SSH user. @default false */
  readonly vps?: boolean | { readonly user?: string };
  /**
   * Run the stand-in for Flux's image controllers (sandbox/image-automation.ts) every
   * `intervalSeconds` (default 30). Off by default: the suites commit releases themselves, and the
   * demo images' newest builds are the faulty ones they deploy on purpose.
   */
  readonly imageAutomation?: { readonly intervalSeconds?: number };
  /** @default stderr */
  readonly log?: Log;
}

/** Starts (or reuses) every part of the sandbox in `dir`. */
export async function startSandbox(dir: string, opts: SandboxOptions = {}): Promise<Sandbox> {
  const log = opts.log ?? ((l: string) => void process.stderr.write(`${l}\n`));
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  await step(log, "toolchain", () => ensureToolchain({ only: ["engine", "providers", "sandbox"], log }));
  const tc = toolchainEnv();
  const docker = await step(log, "Docker engine", () => ensureDockerEngine(path.join(dir, "docker"), { network: opts.network }));
  const registry = await step(log, "registry (Harbor's stand-in)", () => startRegistry(path.join(dir, "registry")));
  const vmAddress = await step(log, "the VM's address", () => ensureVmAddress(path.join(dir, "vm-address")));
  const vm = await step(log, `backend VM (sshd + deploy user) on ${vmAddress}`, () =>
    startVm(path.join(dir, "vm"), { docker, composePlugin: tc.dockerCompose, user: opts.vmUser, address: vmAddress }));
  const gitUser = opts.gitUser ?? (opts.vmUser ? `${opts.vmUser}-git` : "homelab-git");
  const git = await step(log, "git server (sshd + git-shell)", () => startGitServer(path.join(dir, "git"), { user: gitUser }));
  const cluster = await step(log, "Kubernetes (etcd, kube-apiserver, controller-manager, scheduler)", () =>
    startCluster(path.join(dir, "cluster"), { nodes: 0, log }));
  const node = await step(log, "node (kubelet + containerd)", () =>
    startNode(path.join(dir, "node"), { cluster, insecureRegistries: [registry.host], log }));
  const traefik = await step(log, "Traefik", () => startTraefik(path.join(dir, "traefik"), { kubeconfig: cluster.kubeconfig }));
  const images = await step(log, "demo images", () => buildDemoImages({ docker, registry, dir: path.join(dir, "images"), log }));
  const fluxCrds = await step(log, "Flux CRDs", () => ensureFluxManifests(log));
  // Out of the cluster, as the program's `fluxControllers: external` expects; the CRDs go in
  // first because the controllers refuse to start without them (the program applies the same).
  const flux = await step(log, "Flux (source-controller, kustomize-controller)", () =>
    startFluxControllers(path.join(dir, "flux"), { kubeconfig: cluster.kubeconfig, crds: fluxCrds, log }));

  const imageAutomationDir = path.join(dir, "image-automation");
  const imageAutomation = opts.imageAutomation
    ? await step(log, "image automation (a stand-in for Flux's image controllers)", () =>
      startImageAutomation(imageAutomationDir, { kubeconfig: cluster.kubeconfig, intervalSeconds: opts.imageAutomation?.intervalSeconds ?? 30 }))
    : await stopImageAutomation(imageAutomationDir).then(() => undefined);

  const backendPort = opts.backendPort ?? 3001;

  const vps = opts.vps ? await step(log, "VPS (sshd host, Caddy and app images)", () => startVps(dir, docker, registry, tc.dockerCompose, opts.vps === true ? {} : opts.vps || {}, log)) : undefined;

  fs.writeFileSync(path.join(dir, GIT_ENV_FILE), JSON.stringify(git.gitEnv()));
  // The first release names the sandbox's v1 images (the seed names production's registry).
  if (!serverFile(git).includes(`${images.registry}/frontend:`)) {
    await commitRelease(git, images, images.frontend[0], images.backend.v1, "Sandbox: first release");
  }
  const checkout = path.join(dir, "checkout");
  if (!fs.existsSync(path.join(checkout, ".git"))) {
    fs.rmSync(checkout, { recursive: true, force: true });
    cloneProject(git, checkout);
  }
  const passphraseFile = path.join(dir, "passphrase");
  if (!fs.existsSync(passphraseFile)) {
    fs.writeFileSync(passphraseFile, crypto.randomBytes(24).toString("hex"), { mode: 0o600 });
  }
  fs.mkdirSync(path.join(dir, "state"), { recursive: true });
  const pulumiEnv = sandboxPulumiEnv(dir);
  return {
    dir, docker, registry, vm, git, kubeconfig: cluster.kubeconfig, node, traefik, flux, images,
    ingressUrl: traefik.url, backendHost: vm.host, backendPort, checkout, pulumiEnv, vps, imageAutomation,
  };
}

async function startVps(
  dir: string,
  docker: DockerEngine,
  registry: RunningRegistry,
  composePlugin: string,
  o: { user?: string },
  log: Log,
): Promise<SandboxVps> {
  const vm = await startVm(path.join(dir, "vps"), { docker, composePlugin, user: o.user ?? "homelab-vps" });
  const images = await buildVpsImages({ docker, registry, dir: path.join(dir, "vps-images"), log });
  // Ports are kept across restarts so the stack's config stays valid.
  const portsFile = path.join(dir, "vps-ports.json");
  let ports: { http: number; https: number };
  try {
    ports = JSON.parse(fs.readFileSync(portsFile, "utf8")) as { http: number; https: number };
  } catch {
    ports = { http: await freePort(), https: await freePort() };
    fs.writeFileSync(portsFile, JSON.stringify(ports));
  }
  return { vm, images, domain: VPS_DOMAIN, httpPort: ports.http, httpsPort: ports.https };
}

/** Commits a release to the sandbox's git host, the way Flux image automation would. */
export function writeRelease(sb: Pick<Sandbox, "git" | "images">, frontendTag: string, backendTag: string): Promise<string> {
  return commitRelease(sb.git, sb.images, frontendTag, backendTag);
}

/** The `local` stack's configuration: the program pointed at the sandbox. */
export function sandboxConfig(sb: Sandbox): ConfigMap {
  return {
    "homelab:registry": { value: sb.registry.host },
    "homelab:registryInsecure": { value: "true" },
    "homelab:registryUsername": { value: sb.registry.username },
    "homelab:registryPassword": { value: sb.registry.password, secret: true },
    // Its certificates embedded, as k3s writes its kubeconfig: the program reads no other file.
    "homelab:kubeconfig": { value: embeddedKubeconfig(sb.kubeconfig), secret: true },
    "homelab:publicUrl": { value: sb.ingressUrl },
    "homelab:frontendReplicas": { value: "2" },
    "homelab:frontendPort": { value: "8080" },
    // One address for SSH, the gate and the cluster's EndpointSlice, as on the homelab's LAN.
    "homelab:vmHost": { value: sb.vm.host },
    "homelab:vmPort": { value: String(sb.vm.port) },
    "homelab:vmUser": { value: sb.vm.user },
    "homelab:vmHostKey": { value: sb.vm.hostKey },
    "homelab:vmPrivateKey": { value: sb.vm.privateKey, secret: true },
    "homelab:deployDir": { value: path.join(sb.vm.workDir, "backend") },
    "homelab:backendPort": { value: String(sb.backendPort) },
    "homelab:backendBindAddress": { value: sb.vm.host },
    "homelab:backendContainerName": { value: "homelab-sandbox-backend" },
    "homelab:backendVersionField": { value: "version" },
    "homelab:backendEnv": { value: JSON.stringify({ GREETING: "hello from the sandbox", PORT: String(sb.backendPort) }), secret: true },
    "homelab:fluxManifests": { value: ensureFluxManifests() },
    "homelab:fluxControllers": { value: "external" },
    // The sandbox's git host (sshd + git-shell, its deploy key), which Flux syncs from.
    "homelab:gitUrl": { value: sb.git.url },
    "homelab:gitBranch": { value: sb.git.branch },
    "homelab:gitKnownHosts": { value: sb.git.knownHosts },
    "homelab:gitDeployKey": { value: sb.git.privateKey, secret: true },
    "homelab:gateDeadlineSeconds": { value: "120" },
    // A short soak: the sandbox's faults show within seconds, and every scenario promotes.
    "homelab:gateSoakSeconds": { value: "1" },
    "homelab:frontendVersionMarker": { value: "meta:app-version" },
    // The sandbox's stacks are thrown away with it.
    "homelab:protect": { value: "false" },
    ...listConfig("homelab:backendHealthcheck", backendHealthcheck(sb.backendPort)),
    ...(sb.vps ? vpsConfig(sb, sb.vps) : {}),
  };
}

/** The VPS part of the sandbox's config: the app's v1 served by Caddy with its internal CA. */
export function vpsConfig(sb: Sandbox, vps: SandboxVps, appTag: string = vps.images.app.v1): ConfigMap {
  return {
    "homelab:deployVps": { value: "true" },
    "homelab:vpsHost": { value: "127.0.0.1" },
    "homelab:vpsPort": { value: String(vps.vm.port) },
    "homelab:vpsUser": { value: vps.vm.user },
    "homelab:vpsHostKey": { value: vps.vm.hostKey },
    "homelab:vpsPrivateKey": { value: vps.vm.privateKey, secret: true },
    "homelab:vpsDeployDir": { value: path.join(vps.vm.workDir, "app") },
    "homelab:vpsDomain": { value: vps.domain },
    "homelab:vpsTls": { value: "internal" },
    "homelab:vpsImage": { value: `${vps.images.appRepository}:${appTag}` },
    "homelab:vpsRegistryUsername": { value: sb.registry.username },
    "homelab:vpsRegistryToken": { value: sb.registry.password, secret: true },
    "homelab:vpsRegistryInsecure": { value: "true" },
    "homelab:vpsCaddyImage": { value: vps.images.caddy },
    "homelab:vpsAppPort": { value: String(VPS_APP_PORT) },
    "homelab:vpsDataPath": { value: VPS_DATA_PATH },
    "homelab:vpsApiKeyFile": { value: VPS_API_KEY_FILE },
    "homelab:vpsSshKeysMount": { value: "/home/app/.ssh" },
    "homelab:vpsBindAddress": { value: "127.0.0.1" },
    "homelab:vpsHttpPort": { value: String(vps.httpPort) },
    "homelab:vpsHttpsPort": { value: String(vps.httpsPort) },
    "homelab:vpsDeadlineSeconds": { value: "60" },
    "homelab:vpsEnv": { value: JSON.stringify({ APP_ENV: "sandbox" }), secret: true },
    ...listConfig("homelab:vpsHealthcheck", vpsAppHealthcheck()),
  };
}

/** Creates or selects a stack of this program against the sandbox and sets its config. */
export async function sandboxStack(sb: Sandbox, stackName = LOCAL_STACK, workDir = sb.checkout): Promise<Stack> {
  Object.assign(process.env, sb.pulumiEnv);
  const stack = await LocalWorkspace.createOrSelectStack({ stackName, workDir }, { envVars: sb.pulumiEnv });
  // List keys are set path by path; clear them first so a shorter list leaves nothing behind.
  await stack.removeConfig("homelab:backendHealthcheck").catch(() => undefined);
  await stack.removeConfig("homelab:vpsHealthcheck").catch(() => undefined);
  // Set by sandboxes before the VM had an address of its own: the VM's host is the default now.
  await stack.removeConfig("homelab:backendAddress").catch(() => undefined);
  await stack.setAllConfig(sandboxConfig(sb), true);
  return stack;
}

/** Stops what startSandbox started in `dir`, by PID, and removes what it created. */
export async function stopSandbox(dir: string, log: Log = (l) => process.stderr.write(`${l}\n`)): Promise<void> {
  // Every part is stopped and removed whatever failed or died before: one part that cannot be
  // stopped must not leave the others running.
  const failed: string[] = [];
  const attempt = async (what: string, fn: () => unknown): Promise<void> => {
    try {
      await step(log, what, fn);
    } catch (e) {
      failed.push(`${what}: ${(e as Error).message}`);
      log(`sandbox: ${what} failed: ${(e as Error).message}`);
    }
  };
  await attempt("stopping image automation's stand-in", () => stopImageAutomation(path.join(dir, "image-automation")));
  await attempt("stopping Flux's controllers", () => stopFluxControllers(path.join(dir, "flux")));
  await attempt("stopping Traefik", () => stopTraefik(path.join(dir, "traefik")));
  // The node first: it drains its pods through the API server while that still answers.
  await attempt("stopping the node", () => stopNode(path.join(dir, "node"), { log }));
  await attempt("stopping Kubernetes", () => stopCluster(path.join(dir, "cluster")));
  // The VPS started after the VM, so it stops first (the VM may own the shared compose plugin).
  if (fs.existsSync(path.join(dir, "vps"))) {
    await attempt("stopping the VPS", () => stopVm(path.join(dir, "vps")));
  }
  await attempt("stopping the git server", () => stopGitServer(path.join(dir, "git")));
  await attempt("stopping the backend VM", () => stopVm(path.join(dir, "vm")));
  await attempt("removing the VM's address", () => removeVmAddress(path.join(dir, "vm-address")));
  if (runningProcess(path.join(dir, "registry"), "registry")) {
    await attempt("stopping the registry", async () => (await startRegistry(path.join(dir, "registry"))).stop({ keepData: false }));
  }
  // Only a dockerd this sandbox started is stopped (the machine's own engine is left alone); one
  // that died earlier still has its mounts, docker0 and rules removed from its record.
  if (fs.existsSync(path.join(dir, "docker"))) {
    await attempt("stopping the Docker engine", () => stopDockerEngine(path.join(dir, "docker"), { keepData: false }));
  }
  await attempt("removing the sandbox's directory", () => {
    unmountBelow(dir);
    fs.rmSync(dir, { recursive: true, force: true, maxRetries: 5 });
  });
  if (failed.length > 0) {
    throw new Error(`the sandbox in ${dir} was not stopped whole:\n${failed.map((f) => `  - ${f}`).join("\n")}`);
  }
}
