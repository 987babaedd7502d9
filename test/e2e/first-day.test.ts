import { after, before, describe, it } from "node:test";
import * as assert from "node:assert/strict";
import { ChildProcessWithoutNullStreams, execFileSync, spawn, spawnSync } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { main as init } from "../../deploy/init";
import { EXIT } from "../../deploy/outcome";
import { ensureFluxManifests } from "../../sandbox/flux-manifests";
import { runImageAutomationOnce } from "../../sandbox/image-automation";
import { kubeClient } from "../../sandbox/kube";
import { backendHealthcheck } from "../../sandbox/images";
import { freePort } from "../../sandbox/processes";
import { Sandbox, startSandbox, stopSandbox } from "../../sandbox/sandbox";
import { cloneProject, serverFile } from "../../sandbox/checkout";
import { commitToServer } from "../../sandbox/git-server";
import { readReleaseState } from "../../lib/release";
import { runDeployCli, userPulumiEnv } from "../support/user-env";
import { embeddedKubeconfig } from "../../sandbox/cluster";

/*
 * A new homelab's first day, from nothing: the registry holds no image of the stack's
 * repositories, the stack file is written by `npm run init` for values that differ from the
 * sandbox's defaults and committed with its secrets encrypted, and the release file keeps its
 * placeholder tags. The first deploy installs Flux and image automation and waits for the first
 * image; builds are then pushed whose newest has the lowest sha, image automation (the sandbox's
 * stand-in for Flux's image controllers) commits it, and `--watch` promotes it, then a newer push.
 * Every deploy runs from a fresh clone with only the passphrase and the backend in its
 * environment, as CI would.
 */
const STACK = "day1";
const REPO = path.resolve(__dirname, "../..");
const FRONTEND = "day1/frontend";
const BACKEND = "day1/backend";
const NAMESPACE = "day1-web";
const RELEASE = `flux/clusters/${STACK}/release.yaml`;
const passphrase = crypto.randomBytes(18).toString("hex");

let dir: string;
let sb: Sandbox;
let env: NodeJS.ProcessEnv;
let started = 0;
/** Build time of the first pushed images; later pushes are newer. */
const T0 = Math.floor(Date.now() / 1000) - 3600;

function timed(name: string, fn: () => Promise<void>): void {
  it(name, async () => {
    const t = Date.now();
    try {
      await fn();
    } catch (e) {
      // Said here too: the runner's own summary can be cut short when it exits.
      process.stderr.write(`e2e first day: ${name}: FAILED: ${(e as Error).stack ?? String(e)}\n`);
      throw e;
    } finally {
      process.stderr.write(`e2e first day: ${name}: ${((Date.now() - t) / 1000).toFixed(1)}s\n`);
    }
  });
}

/** A fresh clone of the repository the stack deploys from, as a CI job or another machine has it. */
let clones = 0;
function freshClone(): string {
  return cloneProject(sb.git, path.join(dir, `clone-${++clones}`));
}

function pulumi(args: string[], cwd: string, input?: string): string {
  const r = spawnSync("pulumi", args, { cwd, env, input, encoding: "utf8" });
  assert.equal(r.status, 0, `pulumi ${args.join(" ")}: ${r.stderr}`);
  return r.stdout;
}

function git(cwd: string, args: string[]): string {
  return execFileSync("git", args, { cwd, env, encoding: "utf8" });
}

/** Pushes a demo image's content under the stack's repository and a release tag of the given build. */
function push(source: string, repository: string, tag: string): void {
  const config = path.join(dir, "docker-config");
  fs.mkdirSync(config, { recursive: true, mode: 0o700 });
  const denv = { ...sb.docker.env(), DOCKER_CONFIG: config };
  const run = (args: string[], input?: string): void => {
    const r = spawnSync("docker", args, { env: denv, input, encoding: "utf8", timeout: 120_000 });
    assert.equal(r.status, 0, `docker ${args[0]}: ${r.stderr}`);
  };
  run(["login", "--username", sb.registry.username, "--password-stdin", sb.registry.host], sb.registry.password);
  const target = `${sb.registry.host}/${repository}:${tag}`;
  run(["tag", source, target]);
  run(["push", "--quiet", target]);
}

/** `main-<sha7>-<ts>` for a build made `offset` seconds after T0. */
function tag(sha7: string, offset: number): string {
  return `main-${sha7}-${T0 + offset}`;
}

/** Runs the stand-in for Flux's image controllers once, as its interval would. */
async function imageAutomationPass(): Promise<void> {
  const pass = await runImageAutomationOnce({ kubeconfig: sb.kubeconfig, announce: false, log: (l) => void process.stderr.write(`${l}\n`) });
  assert.ok(pass.policies.length >= 2, `image automation saw the program's policies: ${JSON.stringify(pass.policies)}`);
}

/** The pair the release file on the git host names now. */
function releaseInGit(): [string, string] {
  const { tags } = readReleaseState(serverFile(sb.git, RELEASE), "release file");
  return [tags.frontend, tags.backend];
}

/**
 * The watcher as the service unit runs it (`node --import tsx deploy/cli.ts --watch`), until
 * `stop()`: SIGTERM to it alone, as `systemctl stop` with KillMode=mixed delivers it.
 */
function startWatch(cwd: string): { lines: string[]; child: ChildProcessWithoutNullStreams; stop(): Promise<number> } {
  const child = spawn(process.execPath, ["--import", "tsx", path.join(REPO, "deploy", "cli.ts"), "--stack", STACK, "--cwd", cwd, "--watch", "--interval", "2"], { env, cwd: REPO });
  const lines: string[] = [];
  const collect = (c: Buffer): void => {
    lines.push(...c.toString().split("\n").filter(Boolean));
    process.stderr.write(c);
  };
  child.stdout.on("data", collect);
  child.stderr.on("data", collect);
  const exited = new Promise<number>((resolve) => child.on("close", (code) => resolve(code ?? 1)));
  return {
    lines,
    child,
    stop: async () => {
      child.kill("SIGTERM");
      return exited;
    },
  };
}

async function waitForLine(lines: string[], pattern: RegExp, timeoutMs: number): Promise<string> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const hit = lines.find((l) => pattern.test(l));
    if (hit) {
      return hit;
    }
    assert.ok(Date.now() < end, `no line matching ${String(pattern)} within ${timeoutMs / 1000}s:\n${lines.slice(-40).join("\n")}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

/** What the ingress serves: the frontend page and the backend's health version. */
async function serving(): Promise<{ page: string; version?: string }> {
  const page = await (await fetch(`${sb.ingressUrl}/`, { signal: AbortSignal.timeout(5000) })).text().catch(() => "");
  const health = await fetch(`${sb.ingressUrl}/api/health`, { signal: AbortSignal.timeout(5000) }).then((r) => r.json() as Promise<{ version?: string }>).catch(() => ({ version: undefined }));
  return { page, version: health.version };
}

before(async () => {
  started = Date.now();
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "homelab-day1-"));
  sb = await startSandbox(path.join(dir, "sandbox"), { vmUser: "homelab-day1", network: "isolated", backendPort: await freePort() });
  // A user's own Pulumi: the CLI on PATH, a PULUMI_HOME and a backend of their own, only the
  // passphrase to decrypt the stack's secrets, and their SSH access to the git host.
  const state = path.join(dir, "state");
  fs.mkdirSync(state);
  const passphraseFile = path.join(dir, "unused-passphrase");
  env = { ...userPulumiEnv(path.join(dir, "user"), { url: `file://${state}`, passphraseFile }), ...sb.git.gitEnv() };
  delete env.PULUMI_CONFIG_PASSPHRASE_FILE;
  env.PULUMI_CONFIG_PASSPHRASE = passphrase;
  process.stderr.write(`e2e first day: sandbox ready in ${((Date.now() - started) / 1000).toFixed(1)}s\n`);
});

after(async () => {
  try {
    if (env && clones > 0) {
      const cwd = freshClone();
      spawnSync("pulumi", ["destroy", "--yes", "--stack", STACK], { cwd, env, encoding: "utf8" });
    }
  } finally {
    if (dir) {
      await stopSandbox(path.join(dir, "sandbox"), () => undefined);
      fs.rmSync(dir, { recursive: true, force: true });
    }
    process.stderr.write(`e2e first day: total ${((Date.now() - started) / 1000).toFixed(1)}s\n`);
  }
});

describe("a homelab's first day, from nothing", { concurrency: false }, () => {
  const builds = { older: tag("fff0001", 0), newest: tag("0000a01", 100), next: tag("8888b02", 200), frozen: tag("4444c03", 300) };

  timed("1. the stack file is written by npm run init, committed with encrypted secrets, beside a release file with placeholder tags", async () => {
    const project = freshClone();
    const out: string[] = [];
    const io = { interactive: false, ask: () => Promise.reject(new Error("no terminal")), out: (l: string) => void out.push(l), err: (l: string) => void out.push(l), close: () => undefined };
    const code = await init([
      "--stack", STACK,
      "--registry", sb.registry.host, "--registry-username", sb.registry.username, "--registry-insecure", "true",
      "--frontend-image", FRONTEND, "--backend-image", BACKEND, "--namespace", NAMESPACE,
      "--vm-host", sb.vm.host, `--vm-port=${sb.vm.port}`, "--vm-user", sb.vm.user, "--vm-host-key", sb.vm.hostKey,
      "--deploy-dir", path.join(sb.vm.workDir, "day1"), "--backend-port", String(sb.backendPort),
      "--git-url", sb.git.url, "--git-branch", sb.git.branch, "--git-known-hosts", sb.git.knownHosts,
      "--public-url", sb.ingressUrl,
    ], project, io);
    assert.equal(code, 0, out.join("\n"));
    const printed = out.join("\n");
    assert.match(printed, /pulumi stack init day1 --secrets-provider passphrase/);
    for (const key of ["registryPassword", "kubeconfig", "vmPrivateKey", "gitDeployKey"]) {
      assert.match(printed, new RegExp(`pulumi config set --stack day1 --secret homelab:${key}`), `init names the ${key} secret to set`);
    }

    pulumi(["stack", "init", STACK, "--secrets-provider", "passphrase"], project);
    // What only the sandbox needs: Flux's controllers run beside its API server, the demo backend's
    // own health check and port, one frontend replica, the sandbox's short soak, and a stack that
    // can be destroyed.
    const plain: [string, string][] = [
      ["fluxManifests", ensureFluxManifests()], ["fluxControllers", "external"],
      ["backendBindAddress", sb.vm.host], ["frontendReplicas", "1"], ["gateDeadlineSeconds", "120"], ["gateSoakSeconds", "1"], ["protect", "false"],
    ];
    for (const [k, v] of plain) {
      pulumi(["config", "set", "--stack", STACK, `homelab:${k}`, v], project);
    }
    // `--`: some words of the check start with a dash.
    backendHealthcheck(sb.backendPort).forEach((word, i) => pulumi(["config", "set", "--stack", STACK, "--path", `homelab:backendHealthcheck[${i}]`, "--", word], project));
    // The user's secrets, as init printed them.
    pulumi(["config", "set", "--stack", STACK, "--secret", "homelab:registryPassword"], project, sb.registry.password);
    // As a user copies k3s's kubeconfig: its certificates embedded.
    pulumi(["config", "set", "--stack", STACK, "--secret", "homelab:kubeconfig"], project, embeddedKubeconfig(sb.kubeconfig));
    pulumi(["config", "set", "--stack", STACK, "--secret", "homelab:vmPrivateKey"], project, sb.vm.privateKey);
    pulumi(["config", "set", "--stack", STACK, "--secret", "homelab:gitDeployKey"], project, sb.git.privateKey);
    pulumi(["config", "set", "--stack", STACK, "--secret", "homelab:backendEnv"], project, JSON.stringify({ PORT: String(sb.backendPort) }));

    const stackFile = fs.readFileSync(path.join(project, `Pulumi.${STACK}.yaml`), "utf8");
    assert.match(stackFile, /^encryptionsalt: /m);
    assert.ok(!stackFile.includes(sb.registry.password) && !stackFile.includes(sb.git.privateKey.split("\n")[1]), "no secret in plain text");
    assert.match(stackFile, /homelab:registryPassword:\n\s+secure: v1:/);

    // The release file: production's, pointing at this registry's repositories, placeholder tags kept.
    const production = fs.readFileSync(path.join(REPO, "flux/clusters/production/release.yaml"), "utf8");
    const release = production.replace(/192\.168\.0\.40:5000\/frontend:/, `${sb.registry.host}/${FRONTEND}:`).replace(/192\.168\.0\.40:5000\/backend:/, `${sb.registry.host}/${BACKEND}:`);
    assert.match(release, /main-0000000-0000000000/);
    fs.mkdirSync(path.join(project, `flux/clusters/${STACK}`), { recursive: true });
    fs.writeFileSync(path.join(project, RELEASE), release);
    fs.copyFileSync(path.join(REPO, "flux/clusters/production/kustomization.yaml"), path.join(project, `flux/clusters/${STACK}/kustomization.yaml`));
    git(project, ["add", RELEASE, `flux/clusters/${STACK}/kustomization.yaml`, `Pulumi.${STACK}.yaml`]);
    git(project, ["-c", "user.name=New User", "-c", "user.email=user@homelab.test", "commit", "--quiet", "-m", "day1: stack config with encrypted secrets, placeholder release"]);
    git(project, ["push", "--quiet", "origin", `HEAD:${sb.git.branch}`]);
  });

  timed("2. the first deploy, from a fresh clone with only the passphrase, installs Flux and image automation and waits for the first image", async () => {
    const r = await runDeployCli(["--stack", STACK, "--cwd", freshClone()], env);
    assert.equal(r.code, EXIT.waiting, r.log.slice(-4000));
    assert.match(r.log, /WAITING after [\d.]+s: waiting for the first image: .*day1\/frontend:main-0000000-0000000000/);
    const kube = kubeClient(sb.kubeconfig);
    for (const p of ["/apis/image.toolkit.fluxcd.io/v1/namespaces/flux-system/imagepolicies/frontend", "/apis/image.toolkit.fluxcd.io/v1/namespaces/flux-system/imageupdateautomations", `/api/v1/namespaces/${NAMESPACE}`]) {
      assert.ok(await kube.get(p).catch(() => undefined), `${p} exists`);
    }
    assert.equal(await kube.get(`/apis/apps/v1/namespaces/${NAMESPACE}/deployments/frontend`).catch(() => undefined), undefined, "no workload before the first image");
  });

  timed("3. builds are pushed, the newest with the lowest sha: image automation commits the newest, and --watch promotes it; frozen, it refuses a new pair until unfrozen", async () => {
    push(`${sb.registry.host}/frontend:${sb.images.frontend[0]}`, FRONTEND, builds.older);
    push(`${sb.registry.host}/backend:${sb.images.backend.v1}`, BACKEND, builds.older);
    push(`${sb.registry.host}/frontend:${sb.images.frontend[1]}`, FRONTEND, builds.newest);
    push(`${sb.registry.host}/backend:${sb.images.backend.v2}`, BACKEND, builds.newest);
    const watching = startWatch(freshClone());
    try {
      await imageAutomationPass();
      assert.deepEqual(releaseInGit(), [builds.newest, builds.newest], "image automation wrote the newest build, not the highest sha");
      const author = execFileSync("git", ["--git-dir", sb.git.repository, "log", "-1", "--format=%an", sb.git.branch], { encoding: "utf8" }).trim();
      assert.equal(author, "fluxcdbot");
      await waitForLine(watching.lines, /watch: [0-9a-f]{12}: promoted/, 600_000);
      const now = await serving();
      assert.ok(now.page.includes(sb.images.frontend[1]), `the newest frontend build serves: ${now.page.slice(0, 200)}`);
      assert.equal(now.version, sb.images.backend.v2, "the newest backend build answers through the ingress");

      push(`${sb.registry.host}/frontend:${sb.images.frontend[0]}`, FRONTEND, builds.next);
      push(`${sb.registry.host}/backend:${sb.images.backend.v1}`, BACKEND, builds.next);
      await imageAutomationPass();
      assert.deepEqual(releaseInGit(), [builds.next, builds.next]);
      const promoted = (): number => watching.lines.filter((l) => /watch: [0-9a-f]{12}: promoted/.test(l)).length;
      const end = Date.now() + 600_000;
      while (promoted() < 2) {
        assert.ok(Date.now() < end, `the newer push was not promoted:\n${watching.lines.slice(-40).join("\n")}`);
        await new Promise((r) => setTimeout(r, 1000));
      }
      const later = await serving();
      assert.ok(later.page.includes(sb.images.frontend[0]), "the newer push serves");
      assert.equal(later.version, sb.images.backend.v1);

      // Frozen from a workstation's clone: the freeze is a commit, image automation is suspended,
      // and --watch refuses a pair a person commits anyway, until the freeze is lifted.
      // The command's own deploy may find the watcher already deploying its commit: either applies it.
      const appliedOrBusy = (r: { code: number; log: string }): boolean => r.code === EXIT.promoted || (r.code === EXIT.refused && /REFUSED: another deploy of stack /.test(r.log));
      const frozen = await runDeployCli(["freeze", "--stack", STACK, "--cwd", freshClone(), "--reason", "e2e: demo day"], env);
      assert.ok(appliedOrBusy(frozen), frozen.log.slice(-3000));
      assert.match(serverFile(sb.git, RELEASE), /^ {2}frozen: \|/m);
      // Applied by the freeze's own deploy or by the watcher's: image automation is suspended.
      const automation = "/apis/image.toolkit.fluxcd.io/v1/namespaces/flux-system/imageupdateautomations/flux-system";
      const suspending = Date.now() + 300_000;
      while ((await kubeClient(sb.kubeconfig).get<{ spec?: { suspend?: boolean } }>(automation))?.spec?.suspend !== true) {
        assert.ok(Date.now() < suspending, `image automation was not suspended:\n${watching.lines.slice(-40).join("\n")}`);
        await new Promise((r) => setTimeout(r, 1000));
      }
      push(`${sb.registry.host}/frontend:${sb.images.frontend[1]}`, FRONTEND, builds.frozen);
      push(`${sb.registry.host}/backend:${sb.images.backend.v2}`, BACKEND, builds.frozen);
      await imageAutomationPass();
      assert.deepEqual(releaseInGit(), [builds.next, builds.next], "suspended image automation committed nothing");
      const byHand = await commitToServer(sb.git, { [RELEASE]: serverFile(sb.git, RELEASE).replaceAll(builds.next, builds.frozen) }, "release by hand during the freeze");
      await waitForLine(watching.lines, new RegExp(`watch: ${byHand.slice(0, 12)}: refused`), 300_000);
      assert.ok(watching.lines.some((l) => /releases are frozen by .* "e2e: demo day"/.test(l)), "the refusal names the freeze");
      assert.equal((await serving()).version, sb.images.backend.v1, "the running pair stays while frozen");
      // A plain `pulumi up` from a workstation's clone is refused the same way, by the program itself.
      const plainClone = freshClone();
      let plain = spawnSync("pulumi", ["up", "--yes", "--stack", STACK, "--non-interactive", "--color", "never"], { cwd: plainClone, env, encoding: "utf8", timeout: 300_000 });
      // The watcher's look at what runs may hold the stack a moment: try again, as a person would.
      for (let i = 0; i < 3 && /currently locked|another update/.test(`${plain.stdout}${plain.stderr}`); i++) {
        await new Promise((r) => setTimeout(r, 5000));
        plain = spawnSync("pulumi", ["up", "--yes", "--stack", STACK, "--non-interactive", "--color", "never"], { cwd: plainClone, env, encoding: "utf8", timeout: 300_000 });
      }
      assert.notEqual(plain.status, 0, plain.stdout.slice(-3000));
      assert.match(`${plain.stdout}${plain.stderr}`, /releases are frozen by .* "e2e: demo day"/);
      assert.equal((await serving()).version, sb.images.backend.v1, "nothing moved");

      const unfrozen = await runDeployCli(["unfreeze", "--stack", STACK, "--cwd", freshClone()], env);
      assert.ok(appliedOrBusy(unfrozen), unfrozen.log.slice(-3000));
      assert.doesNotMatch(serverFile(sb.git, RELEASE), /frozen:/);
      const thawing = Date.now() + 300_000;
      while ((await serving()).version !== sb.images.backend.v2) {
        assert.ok(Date.now() < thawing, `the pair committed during the freeze was not deployed once it was lifted:\n${watching.lines.slice(-40).join("\n")}`);
        await new Promise((r) => setTimeout(r, 1000));
      }
      assert.ok((await serving()).page.includes(sb.images.frontend[1]), "its frontend serves too");
    } finally {
      assert.equal(await watching.stop(), 0, "the watcher stops cleanly");
    }
  });

  timed("4. another fresh clone with only the passphrase deploys the same stack and changes nothing", async () => {
    const r = await runDeployCli(["--stack", STACK, "--cwd", freshClone()], env);
    assert.equal(r.code, EXIT.promoted, r.log.slice(-4000));
    assert.match(r.log, new RegExp(`frontend ${builds.frozen}`));
  });
});
