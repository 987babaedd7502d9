import { after, before, describe, it } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as YAML from "yaml";
import { COMMIT_MESSAGE_TEMPLATE, REGISTRY_CA_SECRET, SIGNING_KEY_SECRET, exclusionPattern } from "../../components/image-automation";
import { IMAGE_API } from "../../crds/flux";
import { DEFAULT_TAG_PATTERN } from "../../lib/config";
import { renderDockerConfigJson } from "../../lib/dockerconfig";
import { FLUX_SYNC_NAME, fluxGitAuthData, fluxSyncObjects } from "../../lib/flux-install";
import { TIMESTAMP_EXTRACT } from "../../lib/image-policy";
import { renderReleaseFile } from "../../lib/release";
import { toolchainPaths } from "../../toolchain/env";
import { RELEASE_PATH, serverFile } from "../../sandbox/checkout";
import { SandboxCluster, startCluster } from "../../sandbox/cluster";
import { FLUX_NAMESPACE } from "../../sandbox/flux-controllers";
import { ensureFluxManifests } from "../../sandbox/flux-manifests";
import { GitServer, commitToServer, startGitServer } from "../../sandbox/git-server";
import { ImageAutomationPass, RepositoryScan, runImageAutomationOnce } from "../../sandbox/image-automation";
import { kubeClient } from "../../sandbox/kube";
import { runCommand, waitFor } from "../../sandbox/processes";
import { RunningRegistry, startRegistry } from "../../sandbox/registry";
import { makeCertificates } from "../support/tls";

/*
 * The stand-in for Flux's image controllers against the sandbox's real parts: a registry with
 * htpasswd auth, the git host over SSH (deploy key, pinned host key) and an API server serving
 * Flux's CRDs, holding ImageRepository / ImagePolicy / ImageUpdateAutomation / GitRepository
 * objects shaped as the program makes them. No Flux controller runs. Needs root, the Debian
 * packages of `npm run setup` and `npm run toolchain -- --only sandbox`.
 */

/** A git user of this test's own, so the sandbox's or another test's git server is left alone. */
const GIT_USER = "hl-imgauto-git";
const NS = FLUX_NAMESPACE;
const UPDATE_PATH = "./flux/clusters/production";
/** Not the program's default author: the commit must carry the automation object's. */
const AUTHOR = { name: "image-bot", email: "image-bot@homelab.test" };
const PLACEHOLDER = "main-0000000-0000000000";

// The newest build has the lowest sha; the newest tag of all is excluded, as a rolled-back one.
const FRONTEND_OLD = "main-fff0000-1700000000";
const FRONTEND_NEWEST = "main-0a1b2c3-1800000000";
const FRONTEND_EXCLUDED = "main-1111111-1900000000";
const FRONTEND_NEXT = "main-2222222-1950000000";
const BACKEND_OLD = "main-eeeeeee-1650000000";
const BACKEND_NEWEST = "main-0000001-1750000000";
const BACKEND_NEXT = "main-3333333-1960000000";
const BACKEND_SIGNED = "main-4444444-1970000000";

const NOTES = "flux/clusters/production/NOTES.txt";
const ELSEWHERE = "apps/other/release.yaml";

let dir: string;
let registry: RunningRegistry;
let server: GitServer;
let cluster: SandboxCluster;
let seed: Record<string, string>;
const tmpBefore = new Set<string>();

const kube = () => kubeClient(cluster.kubeconfig);
const objectPath = (plural: string, name: string): string => `/apis/${IMAGE_API}/namespaces/${NS}/${plural}/${name}`;

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

async function git(...args: string[]): Promise<string> {
  const r = await runCommand("git", ["--git-dir", server.repository, ...args]);
  if (r.status !== 0) {
    throw new Error(`git ${args.join(" ")}: ${r.stderr.trim()}`);
  }
  return r.stdout;
}

const head = async (): Promise<string> => (await git("rev-parse", server.branch)).trim();

const lines: string[] = [];
function pass(extra: { beforePush?: (attempt: number) => Promise<void> } = {}): Promise<ImageAutomationPass> {
  return runImageAutomationOnce({
    kubeconfig: cluster.kubeconfig,
    log: (l) => {
      lines.push(l);
      process.stderr.write(`${l}\n`);
    },
    ...extra,
  });
}

async function latestRef(policy: string): Promise<{ name: string; tag: string } | undefined> {
  const o = await kube().get<{ status?: { latestRef?: { name: string; tag: string } } }>(objectPath("imagepolicies", policy));
  return o?.status?.latestRef;
}

/** The release file as it reads with these tags: what the automation's rewrite must equal. */
function releaseWith(frontend: string, backend: string): string {
  return renderReleaseFile({ frontend: { registry: registry.host, repository: "frontend", tag: frontend }, backend: { registry: registry.host, repository: "backend", tag: backend } });
}

function ref(repository: string, tag: string): string {
  return `${registry.host}/${repository}:${tag}`;
}

before(async () => {
  for (const e of fs.readdirSync(os.tmpdir())) {
    tmpBefore.add(e);
  }
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "hl-ia-test-"));
  registry = await startRegistry(path.join(dir, "registry"));
  const marked = `frontend: ${ref("frontend", PLACEHOLDER)} # {"$imagepolicy": "${NS}:frontend"}\n`;
  seed = {
    [RELEASE_PATH]: releaseWith(PLACEHOLDER, PLACEHOLDER),
    // A marker outside YAML, and one outside update.path: neither is the automation's.
    [NOTES]: marked,
    [ELSEWHERE]: marked,
  };
  server = await startGitServer(path.join(dir, "git"), { user: GIT_USER, seed });
  cluster = await startCluster(path.join(dir, "cluster"), { name: "image-automation-test", nodes: 0 });

  // Flux's API as the sandbox installs it (the program's homelab:fluxManifests directory); no controller.
  await kubectl("apply", "--server-side", "-f", ensureFluxManifests());
  const crds = ["imagerepositories", "imagepolicies", "imageupdateautomations"].map((p) => `${p}.image.toolkit.fluxcd.io`).concat("gitrepositories.source.toolkit.fluxcd.io");
  await waitFor(async () => {
    const served = await Promise.all(crds.map(async (crd) => {
      const o = await kube().get<{ status?: { conditions?: { type: string; status: string }[] } }>(`/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${crd}`);
      return o?.status?.conditions?.some((c) => c.type === "Established" && c.status === "True") ?? false;
    }));
    return served.every(Boolean);
  }, { what: `Flux's CRDs established (${crds.join(", ")})`, timeoutMs: 60_000, intervalMs: 250 });

  for (const tag of [FRONTEND_OLD, FRONTEND_NEWEST, FRONTEND_EXCLUDED, `${FRONTEND_NEWEST}.sig`]) {
    await registry.push("frontend", tag);
  }
  for (const tag of [BACKEND_OLD, BACKEND_NEWEST]) {
    await registry.push("backend", tag);
  }

  // The objects as components/image-automation.ts and lib/flux-install.ts shape them.
  const sync = fluxSyncObjects({ gitUrl: server.url, namespace: NS, branch: server.branch, path: UPDATE_PATH, interval: "1m", timeout: "1m", secretName: FLUX_SYNC_NAME });
  const watched = [
    { name: "frontend", excluded: [FRONTEND_EXCLUDED] },
    { name: "backend", excluded: [] as string[] },
  ];
  await apply("image-automation", [
    { apiVersion: "v1", kind: "Secret", metadata: { name: FLUX_SYNC_NAME, namespace: NS }, type: "Opaque", stringData: fluxGitAuthData(server.privateKey, server.knownHosts) },
    {
      apiVersion: "v1",
      kind: "Secret",
      metadata: { name: "harbor-credentials", namespace: NS },
      type: "kubernetes.io/dockerconfigjson",
      stringData: { ".dockerconfigjson": renderDockerConfigJson(registry.host, registry.username, registry.password) },
    },
    sync.gitRepository,
    ...watched.flatMap((w) => [
      {
        apiVersion: IMAGE_API,
        kind: "ImageRepository",
        metadata: { name: w.name, namespace: NS },
        spec: { image: `${registry.host}/${w.name}`, interval: "1m", secretRef: { name: "harbor-credentials" }, insecure: true, exclusionList: ["^.*\\.sig$", ...w.excluded.map(exclusionPattern)] },
      },
      {
        apiVersion: IMAGE_API,
        kind: "ImagePolicy",
        metadata: { name: w.name, namespace: NS },
        spec: { imageRepositoryRef: { name: w.name }, filterTags: { pattern: DEFAULT_TAG_PATTERN, extract: TIMESTAMP_EXTRACT }, policy: { numerical: { order: "asc" } } },
      },
    ]),
    {
      apiVersion: IMAGE_API,
      kind: "ImageUpdateAutomation",
      metadata: { name: "flux-system", namespace: NS },
      spec: {
        interval: "1m",
        sourceRef: { kind: "GitRepository", name: FLUX_SYNC_NAME },
        git: {
          checkout: { ref: { branch: server.branch } },
          commit: { author: AUTHOR, messageTemplate: COMMIT_MESSAGE_TEMPLATE },
          push: { branch: server.branch },
        },
        update: { path: UPDATE_PATH, strategy: "Setters" },
      },
    },
  ]);
});

after(async () => {
  await cluster?.stop().catch(() => undefined);
  await server?.stop().catch(() => undefined);
  await registry?.stop({ keepData: false }).catch(() => undefined);
  fs.rmSync(dir, { recursive: true, force: true });
});

describe("image automation's stand-in", () => {
  it("picks the newest build even when its sha is the lowest, never the excluded tag, and commits only the image lines as the automation's author", async () => {
    const start = await head();
    const before = serverFile(server);
    const result = await pass();
    assert.match(lines[0], /^image-automation: stand-in for Flux's image-reflector-controller and image-automation-controller: /);

    // image-reflector-controller's part: the picks, in each ImagePolicy's status.
    const picked = Object.fromEntries(result.policies.map((p) => [p.name, p]));
    assert.equal(picked[`${NS}/frontend`]?.latest?.tag, FRONTEND_NEWEST);
    assert.equal(picked[`${NS}/backend`]?.latest?.tag, BACKEND_NEWEST);
    assert.deepEqual(await latestRef("frontend"), { name: `${registry.host}/frontend`, tag: FRONTEND_NEWEST });
    assert.deepEqual(await latestRef("backend"), { name: `${registry.host}/backend`, tag: BACKEND_NEWEST });
    assert.notEqual((await latestRef("frontend"))?.tag, FRONTEND_EXCLUDED);

    // image-automation-controller's part: one commit on the branch, the automation's.
    assert.equal(result.automations.length, 1);
    const automation = result.automations[0];
    assert.equal(automation.error, undefined);
    assert.ok(automation.commit, "a commit was pushed");
    assert.equal(await head(), automation.commit);
    assert.equal((await git("rev-parse", `${automation.commit}^`)).trim(), start);
    const raw = await git("cat-file", "commit", automation.commit);
    assert.match(raw, /^author image-bot <image-bot@homelab\.test> \d+ [+-]\d{4}$/m);
    assert.match(raw, /^committer image-bot <image-bot@homelab\.test> \d+ [+-]\d{4}$/m);
    assert.equal(
      raw.slice(raw.indexOf("\n\n") + 2),
      "chore(release): update image tags\n\n" +
        `- ${ref("frontend", PLACEHOLDER)} -> ${ref("frontend", FRONTEND_NEWEST)}\n` +
        `- ${ref("backend", PLACEHOLDER)} -> ${ref("backend", BACKEND_NEWEST)}\n`,
    );

    // Only the two image lines changed, their setter markers intact; nothing else in the tree.
    assert.deepEqual((await git("diff", "--name-only", start, automation.commit)).trim().split("\n"), [RELEASE_PATH]);
    const after = serverFile(server);
    assert.equal(after, releaseWith(FRONTEND_NEWEST, BACKEND_NEWEST));
    const changed = before.split("\n").map((l, i) => [l, after.split("\n")[i]]).filter(([a, b]) => a !== b);
    assert.deepEqual(changed, [
      [`  frontend: ${ref("frontend", PLACEHOLDER)} # {"$imagepolicy": "${NS}:frontend"}`, `  frontend: ${ref("frontend", FRONTEND_NEWEST)} # {"$imagepolicy": "${NS}:frontend"}`],
      [`  backend: ${ref("backend", PLACEHOLDER)} # {"$imagepolicy": "${NS}:backend"}`, `  backend: ${ref("backend", BACKEND_NEWEST)} # {"$imagepolicy": "${NS}:backend"}`],
    ]);
    assert.equal(serverFile(server, NOTES), seed[NOTES]);
    assert.equal(serverFile(server, ELSEWHERE), seed[ELSEWHERE]);
  });

  it("makes no commit on a second pass with nothing new", async () => {
    const start = await head();
    const result = await pass();
    assert.equal(result.automations[0].error, undefined);
    assert.equal(result.automations[0].commit, undefined);
    assert.deepEqual(result.automations[0].changes, []);
    assert.equal(await head(), start);
  });

  it("commits nothing while the automation is suspended, though the policy reports the new build; resumed, it commits it", async () => {
    await registry.push("frontend", FRONTEND_NEXT);
    await kube().patch(objectPath("imageupdateautomations", "flux-system"), { spec: { suspend: true } });
    const start = await head();
    const suspended = await pass();
    assert.equal(suspended.automations[0].skipped, "suspended");
    assert.equal(suspended.automations[0].commit, undefined);
    assert.equal(await head(), start);
    assert.equal((await latestRef("frontend"))?.tag, FRONTEND_NEXT);

    await kube().patch(objectPath("imageupdateautomations", "flux-system"), { spec: { suspend: false } });
    const resumed = await pass();
    assert.ok(resumed.automations[0].commit);
    assert.equal(await head(), resumed.automations[0].commit);
    assert.equal(serverFile(server), releaseWith(FRONTEND_NEXT, BACKEND_NEWEST));
  });

  it("never keeps a tag once it is excluded: the next pass moves the line back to the newest build left", async () => {
    await kube().patch(objectPath("imagerepositories", "frontend"), {
      spec: { exclusionList: ["^.*\\.sig$", exclusionPattern(FRONTEND_EXCLUDED), exclusionPattern(FRONTEND_NEXT)] },
    });
    const result = await pass();
    assert.equal((await latestRef("frontend"))?.tag, FRONTEND_NEWEST);
    assert.ok(result.automations[0].commit);
    assert.equal(serverFile(server), releaseWith(FRONTEND_NEWEST, BACKEND_NEWEST));
  });

  it("redoes its commit on top of a commit that won the race to the branch, never forcing over it", async () => {
    await registry.push("backend", BACKEND_NEXT);
    let other = "";
    const result = await pass({
      beforePush: async (attempt) => {
        if (attempt === 1) {
          other = await commitToServer(server, { "README.md": "someone else's change\n" }, "someone else's commit");
        }
      },
    });
    const automation = result.automations[0];
    assert.equal(automation.error, undefined);
    assert.equal(automation.attempts, 2);
    assert.ok(automation.commit);
    assert.equal(await head(), automation.commit);
    assert.equal((await git("rev-parse", `${automation.commit}^`)).trim(), other);
    assert.equal(serverFile(server, "README.md"), "someone else's change\n");
    assert.equal(serverFile(server), releaseWith(FRONTEND_NEWEST, BACKEND_NEXT));
  });

  it("signs its commit with the SSH key of git.commit.signingKey (type ssh), and refuses an OpenPGP key it does not play", async () => {
    const key = path.join(dir, "signing");
    const made = await runCommand("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", AUTHOR.email, "-f", key]);
    assert.equal(made.status, 0, made.stderr);
    const signers = path.join(dir, "allowed_signers");
    fs.writeFileSync(signers, `${AUTHOR.email} ${fs.readFileSync(`${key}.pub`, "utf8").trim().split(" ").slice(0, 2).join(" ")}\n`);
    await apply("signing-key", [{ apiVersion: "v1", kind: "Secret", metadata: { name: SIGNING_KEY_SECRET, namespace: NS }, type: "Opaque", stringData: { identity: fs.readFileSync(key, "utf8") } }]);
    const automation = objectPath("imageupdateautomations", "flux-system");

    await kube().patch(automation, { spec: { git: { commit: { signingKey: { secretRef: { name: SIGNING_KEY_SECRET }, type: "gpg" } } } } });
    await registry.push("backend", BACKEND_SIGNED);
    const start = await head();
    const refused = await pass();
    assert.match(refused.automations[0].error ?? "", /signingKey of type "gpg" is not played by this stand-in: only type ssh/);
    assert.equal(await head(), start, "nothing pushed unsigned");

    await kube().patch(automation, { spec: { git: { commit: { signingKey: { type: "ssh" } } } } });
    const signed = (await pass()).automations[0];
    assert.equal(signed.error, undefined);
    assert.ok(signed.commit);
    assert.equal(serverFile(server), releaseWith(FRONTEND_NEWEST, BACKEND_SIGNED));
    // git itself checks the signature against the signer, as Flux's source-controller does with the same key.
    const verified = await runCommand("git", ["--git-dir", server.repository, "-c", `gpg.ssh.allowedSignersFile=${signers}`, "verify-commit", signed.commit]);
    assert.equal(verified.status, 0, verified.stderr);
    assert.match(verified.stderr, new RegExp(`Good "git" signature for ${AUTHOR.email.replace(/\./g, "\\.")} with ED25519 key`));
    await kube().patch(automation, { spec: { git: { commit: { signingKey: null } } } });
  });

  it("scans an https registry whose own CA the certSecretRef Secret holds (ca.crt), and fails the scan without it or with a Secret of another type", async () => {
    const certs = makeCertificates(fs.mkdtempSync(path.join(dir, "pki-")));
    const secure = await startRegistry(path.join(dir, "registry-tls"), { tls: { certificate: certs.serverCert, key: certs.serverKey, ca: certs.ca } });
    try {
      await secure.push("frontend", FRONTEND_NEWEST);
      const repo = { apiVersion: IMAGE_API, kind: "ImageRepository", metadata: { name: "tls-frontend", namespace: NS } };
      const spec = { image: `${secure.host}/frontend`, interval: "1m", secretRef: { name: "harbor-tls-credentials" }, insecure: false };
      await apply("registry-ca", [
        {
          apiVersion: "v1",
          kind: "Secret",
          metadata: { name: "harbor-tls-credentials", namespace: NS },
          type: "kubernetes.io/dockerconfigjson",
          stringData: { ".dockerconfigjson": renderDockerConfigJson(secure.host, secure.username, secure.password) },
        },
        // As components/image-automation.ts makes it.
        { apiVersion: "v1", kind: "Secret", metadata: { name: REGISTRY_CA_SECRET, namespace: NS }, type: "Opaque", stringData: { "ca.crt": certs.ca } },
        { ...repo, spec: { ...spec, certSecretRef: { name: REGISTRY_CA_SECRET } } },
      ]);
      const scanOf = async (): Promise<RepositoryScan | undefined> => (await pass()).repositories.find((r) => r.name === `${NS}/tls-frontend`);
      assert.deepEqual((await scanOf())?.tags, [FRONTEND_NEWEST]);
      const status = await kube().get<{ status?: { lastScanResult?: { tagCount: number } } }>(objectPath("imagerepositories", "tls-frontend"));
      assert.equal(status?.status?.lastScanResult?.tagCount, 1);

      // Without certSecretRef the registry's certificate is not trusted.
      await kube().patch(objectPath("imagerepositories", "tls-frontend"), { spec: { certSecretRef: null } });
      assert.match((await scanOf())?.error ?? "", /^GET https:\/\/127\.0\.0\.1:\d+\/v2\/frontend\/tags\/list: (SELF_SIGNED|UNABLE_TO_VERIFY|DEPTH_ZERO)\w*: /);
      // A Secret of a type upstream does not read for certSecretRef.
      await kube().patch(objectPath("imagerepositories", "tls-frontend"), { spec: { certSecretRef: { name: "harbor-tls-credentials" } } });
      assert.match((await scanOf())?.error ?? "", /Secret flux-system\/harbor-tls-credentials has type kubernetes\.io\/dockerconfigjson, not Opaque or kubernetes\.io\/tls/);
    } finally {
      await kubectl("delete", "--namespace", NS, "--ignore-not-found", "imagerepository/tls-frontend", `secret/${REGISTRY_CA_SECRET}`, "secret/harbor-tls-credentials");
      await secure.stop({ keepData: false });
    }
  });

  it("leaves no clone or key of its own behind", () => {
    const left = fs.readdirSync(os.tmpdir()).filter((e) => e.startsWith("hl-image-automation-") && !tmpBefore.has(e));
    assert.deepEqual(left, []);
  });
});
