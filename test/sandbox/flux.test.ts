import { after, before, describe, it } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as YAML from "yaml";
import { processesMentioning } from "../support/leftovers";
import { signersAsAuthorizedKeys } from "../../lib/allowed-signers";
import { FLUX_SIGNERS_NAME, FLUX_SYNC_NAME, fluxGitAuthData, fluxSignersData, fluxSyncObjects } from "../../lib/flux-install";
import { updateReleaseFile } from "../../lib/release";
import { toolchainPaths } from "../../toolchain/env";
import { BOT, RELEASE_PATH, serverFile } from "../../sandbox/checkout";
import { SandboxCluster, startCluster } from "../../sandbox/cluster";
import { FLUX_NAMESPACE, SandboxFluxControllers, requestReconcile, startFluxControllers } from "../../sandbox/flux-controllers";
import { ensureFluxManifests } from "../../sandbox/flux-manifests";
import { GitServer, commitToServer, startGitServer } from "../../sandbox/git-server";
import { kubeClient } from "../../sandbox/kube";
import { isAlive, runCommand, waitFor } from "../../sandbox/processes";

/*
 * Flux for real, out of the cluster: the toolchain's source-controller and kustomize-controller
 * reconcile the flux-system GitRepository (ssh:// to the sandbox's git server, deploy key and a
 * pinned host key) and Kustomization the program creates, on a control plane without nodes
 * (nothing here runs a pod). Needs root, the Debian packages of `npm run setup` and
 * `npm run toolchain -- --only sandbox`.
 */

/** A git user of this test's own, so the sandbox's or another test's git server is left alone. */
const GIT_USER = "hl-flux-git";

let dir: string;
let cluster: SandboxCluster;
let server: GitServer;
let flux: SandboxFluxControllers;

interface Condition { type: string; status: string; reason?: string; message?: string }
const condition = (o: FluxObject | undefined, type: string): Condition | undefined => o?.status?.conditions?.find((c) => c.type === type);
interface FluxObject { status?: { conditions?: Condition[]; artifact?: { revision?: string }; lastAppliedRevision?: string; lastHandledReconcileAt?: string } }

async function kubectl(...args: string[]): Promise<string> {
  const r = await runCommand(path.join(toolchainPaths().sandboxBinDir, "kubectl"), ["--kubeconfig", cluster.kubeconfig, ...args]);
  if (r.status !== 0) {
    throw new Error(`kubectl ${args.join(" ")}: ${r.stderr.trim()}`);
  }
  return r.stdout;
}

async function apply(name: string, objects: unknown[]): Promise<void> {
  const file = path.join(dir, `${name}.yaml`);
  fs.writeFileSync(file, objects.map((o) => YAML.stringify(o)).join("---\n"), { mode: 0o600 });
  await kubectl("apply", "-f", file);
}

/** The flux-system deploy-key Secret as the program makes it, with `knownHosts` as the pinned line. */
function gitAuth(knownHosts: string): unknown {
  return {
    apiVersion: "v1",
    kind: "Secret",
    metadata: { name: FLUX_SYNC_NAME, namespace: FLUX_NAMESPACE },
    type: "Opaque",
    stringData: fluxGitAuthData(server.privateKey, knownHosts),
  };
}

const gitRepository = (): Promise<FluxObject | undefined> =>
  kubeClient(cluster.kubeconfig).get<FluxObject>(`/apis/source.toolkit.fluxcd.io/v1/namespaces/${FLUX_NAMESPACE}/gitrepositories/${FLUX_SYNC_NAME}`);
const kustomization = (): Promise<FluxObject | undefined> =>
  kubeClient(cluster.kubeconfig).get<FluxObject>(`/apis/kustomize.toolkit.fluxcd.io/v1/namespaces/${FLUX_NAMESPACE}/kustomizations/${FLUX_SYNC_NAME}`);
const releaseConfigMap = (): Promise<{ data?: Record<string, string> } | undefined> =>
  kubeClient(cluster.kubeconfig).get(`/api/v1/namespaces/${FLUX_NAMESPACE}/configmaps/website-release`);
const ready = (o: FluxObject | undefined): Condition | undefined => o?.status?.conditions?.find((c) => c.type === "Ready");

/** PIDs of processes started in `d` (their working directory) or naming it: what a stop left behind. */
function processesIn(d: string): string[] {
  const cwdIn = (p: string): boolean => {
    try {
      return fs.readlinkSync(`/proc/${p}/cwd`).startsWith(d);
    } catch {
      return false;
    }
  };
  return [...new Set([...processesMentioning(d), ...fs.readdirSync("/proc").filter((p) => /^\d+$/.test(p) && cwdIn(p))])];
}

/** Image automation's commit, played: only the release file's image lines change, author fluxcdbot. */
async function commitTags(frontend: string, backend: string): Promise<string> {
  const text = updateReleaseFile(serverFile(server), { tags: { frontend, backend } });
  return commitToServer(server, { [RELEASE_PATH]: text }, `Update release: frontend ${frontend}, backend ${backend}`, BOT);
}

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "hl-flux-"));
  cluster = await startCluster(path.join(dir, "cluster"), { name: "flux-test", nodes: 0 });
  server = await startGitServer(path.join(dir, "git"), { user: GIT_USER });
});

after(async () => {
  await flux?.stop().catch(() => undefined);
  await server?.stop().catch(() => undefined);
  await cluster?.stop().catch(() => undefined);
  fs.rmSync(dir, { recursive: true, force: true });
});

describe("sandbox flux", () => {
  it("will not start the controllers on a cluster without Flux's CRDs, and names them", async () => {
    await assert.rejects(startFluxControllers(path.join(dir, "flux"), { kubeconfig: cluster.kubeconfig }),
      /does not serve gitrepositories\.source\.toolkit\.fluxcd\.io, .*kustomizations\.kustomize\.toolkit\.fluxcd\.io: install Flux's CRDs first/);
    assert.deepEqual(processesIn(path.join(dir, "flux")), []);
  });

  it("fetches the git server over SSH and applies the release ConfigMap; a pushed commit reaches the cluster", async () => {
    // Flux's API as the sandbox installs it (the program's homelab:fluxManifests directory).
    flux = await startFluxControllers(path.join(dir, "flux"), { kubeconfig: cluster.kubeconfig, crds: ensureFluxManifests() });
    const sync = fluxSyncObjects({ gitUrl: server.url, namespace: FLUX_NAMESPACE, branch: server.branch, path: "./flux/clusters/production", interval: "1m", timeout: "1m", secretName: FLUX_SYNC_NAME });
    await apply("flux-sync", [gitAuth(server.knownHosts), sync.gitRepository, sync.kustomization]);
    const seed = (await runCommand("git", ["--git-dir", server.repository, "rev-parse", server.branch])).stdout.trim();
    await waitFor(async () => (await kustomization())?.status?.lastAppliedRevision?.endsWith(seed) === true, {
      what: `the Kustomization applying ${seed}`, timeoutMs: 90_000, intervalMs: 500, logFile: flux.logs.kustomize,
    });
    assert.equal(ready(await gitRepository())?.status, "True");
    assert.match((await releaseConfigMap())?.data?.frontend ?? "", /\/frontend:main-0000000-0000000000$/);

    const started = Date.now();
    const sha = await commitTags("main-abcdef1-1764547200", "main-1234567-1764547200");
    await requestReconcile(cluster.kubeconfig, "GitRepository", FLUX_SYNC_NAME);
    await waitFor(async () => (await releaseConfigMap())?.data?.backend?.endsWith(":main-1234567-1764547200") === true, {
      what: "the pushed release in the cluster", timeoutMs: 60_000, intervalMs: 250, logFile: flux.logs.kustomize,
    });
    process.stderr.write(`flux: a push reached the cluster in ${((Date.now() - started) / 1000).toFixed(1)}s\n`);
    assert.match((await releaseConfigMap())?.data?.frontend ?? "", /\/frontend:main-abcdef1-1764547200$/);
    assert.ok((await gitRepository())?.status?.artifact?.revision?.endsWith(sha));
    // The controller writes its status after the apply that changed the ConfigMap.
    await waitFor(async () => (await kustomization())?.status?.lastAppliedRevision?.endsWith(sha) === true, {
      what: `the Kustomization's status naming ${sha}`, timeoutMs: 30_000, intervalMs: 250, logFile: flux.logs.kustomize,
    });
  });

  it("refuses a git server whose host key is not the pinned one: not Ready, and a new commit stays out", async () => {
    // Another ed25519 key (the deploy key's public half) pinned for the server's address.
    const wrong = `[127.0.0.1]:${server.port} ${fs.readFileSync(`${server.privateKeyFile}.pub`, "utf8").trim().split(" ").slice(0, 2).join(" ")}`;
    assert.notEqual(wrong, server.knownHosts);
    await apply("flux-auth-wrong", [gitAuth(wrong)]);
    await commitTags("main-fedcba9-1764550800", "main-7654321-1764550800");
    const asked = await requestReconcile(cluster.kubeconfig, "GitRepository", FLUX_SYNC_NAME);
    await waitFor(async () => {
      const repo = await gitRepository();
      return repo?.status?.lastHandledReconcileAt === asked && ready(repo)?.status === "False";
    }, { what: "the GitRepository refusing the host key", timeoutMs: 60_000, intervalMs: 250, logFile: flux.logs.source });
    const cond = ready(await gitRepository())!;
    process.stderr.write(`flux: GitRepository ${cond.reason}: ${cond.message}\n`);
    assert.match(cond.message ?? "", /ssh: handshake failed: knownhosts: key mismatch/, `${cond.reason}: ${cond.message}`);
    assert.match((await releaseConfigMap())?.data?.backend ?? "", /:main-1234567-1764547200$/);
  });

  it("with verify on, applies only a head commit signed by a trusted key: an unsigned head and one signed by another key stay out, a trusted one reaches the cluster", async () => {
    await apply("flux-auth", [gitAuth(server.knownHosts)]);
    const key = path.join(dir, "signer");
    const made = await runCommand("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "release-signer", "-f", key]);
    assert.equal(made.status, 0, made.stderr);
    // homelab:trustedSigners as a user writes it (git's allowed signers), turned into Flux's Secret as the program does.
    const trustedSigners = `# who may sign\nrelease-signer@homelab.test ${fs.readFileSync(`${key}.pub`, "utf8").trim().split(" ").slice(0, 2).join(" ")}\n`;
    const sync = fluxSyncObjects({
      gitUrl: server.url, namespace: FLUX_NAMESPACE, branch: server.branch, path: "./flux/clusters/production", interval: "1m", timeout: "1m",
      secretName: FLUX_SYNC_NAME, verifySecretName: FLUX_SIGNERS_NAME,
    });
    await apply("flux-verify", [
      { apiVersion: "v1", kind: "Secret", metadata: { name: FLUX_SIGNERS_NAME, namespace: FLUX_NAMESPACE }, type: "Opaque", stringData: fluxSignersData(signersAsAuthorizedKeys(trustedSigners)) },
      sync.gitRepository,
    ]);

    const unsigned = await commitTags("main-aaaaaaa-1764554400", "main-bbbbbbb-1764554400");
    const asked = await requestReconcile(cluster.kubeconfig, "GitRepository", FLUX_SYNC_NAME);
    await waitFor(async () => {
      const repo = await gitRepository();
      return repo?.status?.lastHandledReconcileAt === asked && condition(repo, "SourceVerified")?.status === "False";
    }, { what: "the GitRepository refusing the unsigned head", timeoutMs: 60_000, intervalMs: 250, logFile: flux.logs.source });
    const refused = condition(await gitRepository(), "SourceVerified")!;
    process.stderr.write(`flux: unsigned head: ${refused.reason}: ${refused.message}\n`);
    assert.match(refused.message ?? "", new RegExp(`signature verification of commit '${unsigned}' failed`), `${refused.reason}: ${refused.message}`);
    assert.doesNotMatch((await releaseConfigMap())?.data?.backend ?? "", /main-bbbbbbb/);

    // Signed, but by a key the signers do not list (the deploy key, which a pusher may hold).
    const untrusted = await commitToServer(server, { "README.md": "signed by someone else\n" }, "Signed by an untrusted key", BOT, { signingKeyFile: server.privateKeyFile });
    const askedAgain = await requestReconcile(cluster.kubeconfig, "GitRepository", FLUX_SYNC_NAME);
    await waitFor(async () => {
      const repo = await gitRepository();
      return repo?.status?.lastHandledReconcileAt === askedAgain && (condition(repo, "SourceVerified")?.message ?? "").includes(untrusted);
    }, { what: "the GitRepository refusing the head signed by an untrusted key", timeoutMs: 60_000, intervalMs: 250, logFile: flux.logs.source });
    const other = condition(await gitRepository(), "SourceVerified")!;
    process.stderr.write(`flux: head signed by an untrusted key: ${other.reason}: ${other.message}\n`);
    assert.equal(other.status, "False");
    assert.match(other.message ?? "", /unable to verify payload with any of the given authorized keys/, `${other.reason}: ${other.message}`);

    const signed = await commitToServer(
      server,
      { [RELEASE_PATH]: updateReleaseFile(serverFile(server), { tags: { frontend: "main-ccccccc-1764558000", backend: "main-ddddddd-1764558000" } }) },
      "Release signed by a trusted key",
      { name: "Release Signer", email: "release-signer@homelab.test" },
      { signingKeyFile: key },
    );
    await requestReconcile(cluster.kubeconfig, "GitRepository", FLUX_SYNC_NAME);
    await waitFor(async () => (await releaseConfigMap())?.data?.backend?.endsWith(":main-ddddddd-1764558000") === true, {
      what: "the signed release in the cluster", timeoutMs: 60_000, intervalMs: 250, logFile: flux.logs.kustomize,
    });
    const repo = await gitRepository();
    assert.ok(repo?.status?.artifact?.revision?.endsWith(signed));
    assert.equal(condition(repo, "SourceVerified")?.status, "True");
    assert.match(condition(repo, "SourceVerified")?.message ?? "", new RegExp(`verified signature of\\s+- commit '${signed}' with key 'SHA256:`));
  });

  it("stops both controllers by PID: nothing of theirs left running", async () => {
    const pids = [flux.sourcePid, flux.kustomizePid];
    assert.ok(pids.every((p) => isAlive(p)));
    await flux.stop();
    assert.deepEqual(pids.filter((p) => isAlive(p)), []);
    assert.deepEqual(processesIn(path.join(dir, "flux")), []);
    assert.equal(fs.existsSync(path.join(dir, "flux", "storage")), false);
  });
});
