import { after, before, beforeEach, describe, it } from "node:test";
import * as assert from "node:assert/strict";
import * as crypto from "crypto";
import * as fs from "fs";
import type * as http from "http";
import * as https from "https";
import type { AddressInfo } from "net";
import * as os from "os";
import * as path from "path";
import type { TLSSocket } from "tls";
import * as YAML from "yaml";
import { parseConfig } from "../../lib/config";
import {
  FLUX_COLLECTIONS,
  ForeignFluxObject,
  checkFluxAdoption,
  fluxAdoptionVerdict,
  foreignFluxObjects,
  isProgramManaged,
  listFluxObjects,
  programFluxNames,
} from "../../lib/flux-adoption";
import { FLUX_SYNC_NAME, fluxSyncObjects } from "../../lib/flux-install";
import { KubeApiUnreachable, KubeconfigError, inlineKubeconfigFiles, kubeApi } from "../../lib/kube-api";
import { SECRET_KEYS, validConfig } from "../support/fixtures";
import { makeCertificates } from "../support/tls";

const TARGET = { gitUrl: "ssh://git@git.lan/homelab/website.git", path: "./flux/clusters/production" };

/** A Flux object as the API server lists it, written by `managers`. */
function listed(kind: "GitRepository" | "Kustomization", name: string, spec: Record<string, unknown>, managers: string[]): unknown {
  return {
    apiVersion: kind === "GitRepository" ? "source.toolkit.fluxcd.io/v1" : "kustomize.toolkit.fluxcd.io/v1",
    kind,
    metadata: {
      name,
      namespace: "flux-system",
      managedFields: managers.map((manager) => ({ manager, operation: "Apply", apiVersion: "v1", fieldsType: "FieldsV1", fieldsV1: {} })),
    },
    spec,
  };
}

/** What `flux bootstrap` leaves: both objects written by kustomize-controller (gotk-sync.yaml) and the flux CLI. */
const bootstrapped = {
  GitRepository: [listed("GitRepository", "flux-system", { url: "ssh://git@github.com/me/fleet.git", ref: { branch: "main" } }, ["flux", "kustomize-controller", "source-controller"])],
  Kustomization: [
    listed("Kustomization", "flux-system", { path: "./clusters/home", prune: true, sourceRef: { kind: "GitRepository", name: "flux-system" } }, ["kustomize-controller"]),
    listed("Kustomization", "apps", { path: "./apps", prune: true, sourceRef: { kind: "GitRepository", name: "flux-system" } }, ["kustomize-controller"]),
  ],
};

describe("Flux objects the program did not make", () => {
  it("manages the names fluxSyncObjects gives its GitRepository and Kustomization", () => {
    const sync = fluxSyncObjects({ gitUrl: "x", namespace: "flux-system", branch: "m", path: "./", interval: "1m", timeout: "1m" });
    assert.deepEqual(programFluxNames(), { GitRepository: sync.gitRepository.metadata.name, Kustomization: sync.kustomization.metadata.name });
    assert.equal(programFluxNames().GitRepository, FLUX_SYNC_NAME);
  });

  it("counts an object as the program's when the Pulumi Kubernetes provider wrote it (server-side or client-side apply)", () => {
    assert.equal(isProgramManaged(listed("GitRepository", "flux-system", {}, ["pulumi-kubernetes-8f3a1c2e", "source-controller"])), true);
    assert.equal(isProgramManaged(listed("GitRepository", "flux-system", {}, ["pulumi-kubernetes"])), true);
    assert.equal(isProgramManaged(listed("GitRepository", "flux-system", {}, ["kustomize-controller", "source-controller"])), false);
    assert.equal(isProgramManaged(listed("GitRepository", "flux-system", {}, [])), false);
    assert.equal(isProgramManaged({ metadata: { name: "x" } }), false);
  });

  it("lists the foreign objects with url, path, prune and source, and which collide with the program's names", () => {
    const own = {
      GitRepository: [listed("GitRepository", "flux-system", { url: TARGET.gitUrl }, ["pulumi-kubernetes-1a2b3c"])],
      Kustomization: [listed("Kustomization", "flux-system", { path: TARGET.path, prune: true }, ["pulumi-kubernetes-1a2b3c", "kustomize-controller"])],
    };
    assert.deepEqual(foreignFluxObjects(own), []);
    assert.deepEqual(foreignFluxObjects(bootstrapped), [
      { kind: "GitRepository", name: "flux-system", url: "ssh://git@github.com/me/fleet.git", managers: ["flux", "kustomize-controller", "source-controller"], collides: true },
      { kind: "Kustomization", name: "flux-system", path: "./clusters/home", prune: true, source: "GitRepository/flux-system", managers: ["kustomize-controller"], collides: true },
      { kind: "Kustomization", name: "apps", path: "./apps", prune: true, source: "GitRepository/flux-system", managers: ["kustomize-controller"], collides: false },
    ]);
    const offPrune = foreignFluxObjects({ GitRepository: [], Kustomization: [listed("Kustomization", "flux-system", { path: "./x", prune: false }, ["kubectl-client-side-apply"])] });
    assert.equal(offPrune[0].prune, false);
    // Bootstrapped from the program's own repository: the url stays, and the line says so.
    const same = fluxAdoptionVerdict(foreignFluxObjects({ GitRepository: [listed("GitRepository", "flux-system", { url: TARGET.gitUrl }, ["flux"])], Kustomization: [] }), true, TARGET);
    assert.deepEqual(same, { kind: "adopt", warnings: [`homelab:fluxAdopt: taking over GitRepository/flux-system (written by flux): url ${TARGET.gitUrl} stays`] });
  });

  it("is clear when nothing the program manages is held by something else", () => {
    // A Kustomization of its own beside the program's (the benchmark's peer does this).
    const beside: ForeignFluxObject[] = [{ kind: "Kustomization", name: "peer", path: "./peer", prune: true, source: "GitRepository/flux-system", managers: ["node-fetch"], collides: false }];
    assert.deepEqual(fluxAdoptionVerdict(beside, false, TARGET), { kind: "clear" });
    assert.deepEqual(fluxAdoptionVerdict([], false, TARGET), { kind: "clear" });
  });

  it("refuses, naming each object, its url and path, what prune deletes, and both ways out", () => {
    const verdict = fluxAdoptionVerdict(foreignFluxObjects(bootstrapped), false, TARGET);
    assert.equal(verdict.kind, "refuse");
    const lines = verdict.kind === "refuse" ? verdict.message.split("\n") : [];
    assert.deepEqual(lines, [
      "flux-system already holds Flux objects this program did not make (flux bootstrap, or by hand), and deploying would take them over; nothing was changed:",
      "  - GitRepository/flux-system (written by flux, kustomize-controller, source-controller): url ssh://git@github.com/me/fleet.git becomes ssh://git@git.lan/homelab/website.git",
      "  - Kustomization/flux-system (written by kustomize-controller): path ./clusters/home becomes ./flux/clusters/production; prune is on, so Flux then deletes everything ./clusters/home applied that ./flux/clusters/production of ssh://git@git.lan/homelab/website.git does not hold",
      "  - Kustomization/apps (written by kustomize-controller) is not taken over, but reads GitRepository/flux-system, which would fetch ssh://git@git.lan/homelab/website.git: it would apply ./apps of that repository instead and prune what it applied before",
      "Either:",
      "  - adopt them: check that homelab:gitUrl (ssh://git@git.lan/homelab/website.git) and homelab:gitPath (./flux/clusters/production) hold what the cluster needs, then: pulumi config set homelab:fluxAdopt true",
      "  - or delete them first, suspended so that what they applied stays: flux suspend kustomization flux-system, then flux suspend kustomization apps, then kubectl -n flux-system delete kustomization flux-system, then kubectl -n flux-system delete gitrepository flux-system",
    ]);
  });

  it("says when the program turns prune on, re-points the source, and masks credentials in a url", () => {
    const objects: ForeignFluxObject[] = [
      { kind: "GitRepository", name: "flux-system", url: "https://me:ghp_secret123@github.com/me/fleet.git", managers: [], collides: true },
      { kind: "Kustomization", name: "flux-system", prune: false, source: "GitRepository/fleet", managers: [], collides: true },
    ];
    const verdict = fluxAdoptionVerdict(objects, false, TARGET);
    const message = verdict.kind === "refuse" ? verdict.message : "";
    assert.match(message, /GitRepository\/flux-system: url https:\/\/\*\*\*@github\.com\/me\/fleet\.git becomes/);
    assert.doesNotMatch(message, /ghp_secret123/);
    assert.match(message, /Kustomization\/flux-system: path no path \(the repository's root\) becomes \.\/flux\/clusters\/production, its source GitRepository\/fleet becomes GitRepository\/flux-system; prune is off and the program turns it on, so Flux then deletes/);
  });

  it("with homelab:fluxAdopt on, warns one line per object it takes over or affects", () => {
    const verdict = fluxAdoptionVerdict(foreignFluxObjects(bootstrapped), true, TARGET);
    assert.equal(verdict.kind, "adopt");
    const warnings = verdict.kind === "adopt" ? verdict.warnings : [];
    assert.equal(warnings.length, 3);
    assert.match(warnings[0], /^homelab:fluxAdopt: taking over GitRepository\/flux-system .*: url ssh:\/\/git@github\.com\/me\/fleet\.git becomes ssh:\/\/git@git\.lan\/homelab\/website\.git$/);
    assert.match(warnings[1], /^homelab:fluxAdopt: taking over Kustomization\/flux-system .*path \.\/clusters\/home becomes \.\/flux\/clusters\/production; prune is on, so Flux then deletes everything/);
    assert.match(warnings[2], /^homelab:fluxAdopt: Kustomization\/apps .*is not taken over, but reads GitRepository\/flux-system/);
  });

  it("reads homelab:fluxAdopt, off unless set", () => {
    const isSecret = (k: string): boolean => SECRET_KEYS.includes(k);
    assert.equal(parseConfig(validConfig(), isSecret).homelab!.settings.flux.adopt, false);
    assert.equal(parseConfig(validConfig({ "homelab:fluxAdopt": "true" }), isSecret).homelab!.settings.flux.adopt, true);
    assert.throws(() => parseConfig(validConfig({ "homelab:fluxAdopt": "yes" }), isSecret), /homelab:fluxAdopt: "yes" is not true or false/);
  });
});

const b64 = (pem: string): string => Buffer.from(pem).toString("base64");

/** A kubeconfig for `server` with the given user entry, as `kubectl config view --raw` writes one. */
function kubeconfigFor(server: string, ca: string | undefined, user: Record<string, unknown>, extraCluster: Record<string, unknown> = {}): string {
  return YAML.stringify({
    apiVersion: "v1",
    kind: "Config",
    clusters: [{ name: "k3s", cluster: { server, ...(ca ? { "certificate-authority-data": b64(ca) } : {}), ...extraCluster } }],
    users: [{ name: "admin", user }],
    contexts: [{ name: "lab", context: { cluster: "k3s", user: "admin" } }],
    "current-context": "lab",
  });
}

describe("the read-only Kubernetes API client", () => {
  let dir: string;
  let certs: ReturnType<typeof makeCertificates>;
  let server: https.Server;
  let url: string;
  // Made at test time, never committed.
  const token = `tok-${crypto.randomBytes(16).toString("hex")}`;
  let answer: (req: http.IncomingMessage, res: http.ServerResponse) => void;

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "kube-api-"));
    certs = makeCertificates(dir);
    // The client certificate is asked for, not required, so the token path is tested on the same server.
    server = https.createServer({ key: certs.serverKey, cert: certs.serverCert, ca: certs.ca, requestCert: true, rejectUnauthorized: false }, (req, res) => answer(req, res));
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  after(() => {
    server?.closeAllConnections();
    server?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  /** Like the API server: who the caller is, from its certificate or its token. */
  const caller = (req: http.IncomingMessage): string | undefined => {
    const socket = req.socket as TLSSocket;
    if (socket.authorized) {
      return `cert:${String(socket.getPeerCertificate().subject.CN)}`;
    }
    return req.headers.authorization === `Bearer ${token}` ? "token" : undefined;
  };
  const json = (res: http.ServerResponse, status: number, body: unknown): void =>
    void res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body));

  beforeEach(() => {
    answer = (req, res) => {
      const who = caller(req);
      if (!who) {
        // A careless proxy echoing what it was sent: the client must not repeat it.
        json(res, 401, { kind: "Status", status: "Failure", message: `Unauthorized (got ${req.headers.authorization ?? "nothing"})`, code: 401 });
      } else if (req.url === FLUX_COLLECTIONS.GitRepository) {
        json(res, 200, { kind: "GitRepositoryList", items: bootstrapped.GitRepository, who });
      } else if (req.url === FLUX_COLLECTIONS.Kustomization) {
        json(res, 200, { kind: "KustomizationList", items: bootstrapped.Kustomization, who });
      } else {
        json(res, 404, { kind: "Status", status: "Failure", message: "the server could not find the requested resource", reason: "NotFound", code: 404 });
      }
    };
  });

  const certUser = (): Record<string, unknown> => ({ "client-certificate-data": b64(certs.clientCert), "client-key-data": b64(certs.clientKey) });

  it("GETs with the CA and client certificate of the kubeconfig, and parses the answer", async () => {
    const api = kubeApi(kubeconfigFor(url, certs.ca, certUser()));
    assert.equal(api.server, url);
    const res = await api.get(FLUX_COLLECTIONS.GitRepository);
    assert.equal(res.status, 200);
    assert.equal((res.body as { who: string }).who, "cert:homelab-test");
    assert.equal((res.body as { items: unknown[] }).items.length, 1);
  });

  it("GETs with a bearer token, in the context homelab:kubeContext names", async () => {
    const doc = YAML.parse(kubeconfigFor(url, certs.ca, { token })) as { "current-context": string };
    doc["current-context"] = "elsewhere";
    const res = await kubeApi(YAML.stringify(doc), "lab").get(FLUX_COLLECTIONS.Kustomization);
    assert.equal((res.body as { who: string }).who, "token");
    assert.throws(() => kubeApi(YAML.stringify(doc), "nope"), (e: unknown) => e instanceof KubeconfigError && /^homelab:kubeContext: "nope" is not a context of homelab:kubeconfig$/.test(e.message));
  });

  it("reports a 404 as such, and a list that is not there as empty", async () => {
    const api = kubeApi(kubeconfigFor(url, certs.ca, certUser()));
    const res = await api.get("/apis/example.com/v1/nothing");
    assert.equal(res.status, 404);
    assert.equal(res.summary, "HTTP 404: the server could not find the requested resource");
    answer = (_req, res2) => json(res2, 404, { kind: "Status", code: 404 });
    assert.deepEqual(await listFluxObjects(api), { GitRepository: [], Kustomization: [] });
    // A 404 from something that is not the API server (a web server at the wrong address) proves nothing.
    answer = (_req, res2) => void res2.writeHead(404, { "content-type": "text/html" }).end("<h1>Not Found</h1>");
    await assert.rejects(listFluxObjects(api), /: HTTP 404, not the Kubernetes API's answer$/);
  });

  it("reports a 401 without the token, and the check is skipped, not failed, with the reason", async () => {
    const wrong = `${token}x`;
    const api = kubeApi(kubeconfigFor(url, certs.ca, { token: wrong }));
    const res = await api.get(FLUX_COLLECTIONS.GitRepository);
    assert.equal(res.status, 401);
    assert.equal(res.summary, "HTTP 401: Unauthorized (got Bearer [token])");
    const warnings = await checkFluxAdoption({ kubeconfig: kubeconfigFor(url, certs.ca, { token: wrong }), adopt: false, target: TARGET });
    assert.equal(warnings.length, 1);
    assert.match(warnings[0], /^The check for Flux objects in flux-system that this program did not make was skipped \(GET \/apis\/.* on https:\/\/127\.0\.0\.1:\d+: HTTP 401: Unauthorized/);
    assert.doesNotMatch(warnings[0], new RegExp(token));
  });

  it("refuses an exec-plugin kubeconfig, naming homelab:kubeconfig and nothing of the plugin", () => {
    const exec = { exec: { apiVersion: "client.authentication.k8s.io/v1", command: "aws", args: ["eks", "get-token", "--secret-arg-xyz"] } };
    for (const user of [exec, { "auth-provider": { name: "oidc", config: { "id-token": "secret-id-token-xyz" } } }]) {
      assert.throws(
        () => kubeApi(kubeconfigFor(url, certs.ca, user)),
        (e: unknown) =>
          e instanceof KubeconfigError &&
          /^homelab:kubeconfig: user "admin" authenticates through an (exec|auth-provider) plugin, which the program's own checks of the cluster do not support; give it a client certificate/.test(e.message) &&
          !/xyz|aws/.test(e.message),
      );
    }
  });

  it("refuses file references and unreadable YAML without echoing the value", () => {
    assert.throws(() => kubeApi(kubeconfigFor(url, undefined, { "client-certificate": "/etc/k.crt", "client-key": "/etc/k.key" })), /reads client-certificate from a file.*kubectl config view --raw --flatten/);
    assert.throws(() => kubeApi(kubeconfigFor(url, undefined, {}, { "certificate-authority": "/etc/ca.crt" })), /reads its CA from a file/);
    assert.throws(() => kubeApi(`clusters: [\n  token: ${token}: : :\n`), (e: unknown) => e instanceof KubeconfigError && /^homelab:kubeconfig: the secret value is not YAML/.test(e.message) && !e.message.includes(token));
  });

  it("for the deploy's commands, reads in the CA and client certificate a kubeconfig names by absolute path, and leaves the rest", async () => {
    const files: Record<string, string> = { "/etc/k3s/ca.crt": certs.ca, "/etc/k3s/client.crt": certs.clientCert, "/etc/k3s/client.key": certs.clientKey };
    const read = (f: string): Buffer => {
      if (!(f in files)) {
        throw new Error(`ENOENT: ${f}`);
      }
      return Buffer.from(files[f]);
    };
    const byFile = kubeconfigFor(url, undefined, { "client-certificate": "/etc/k3s/client.crt", "client-key": "/etc/k3s/client.key" }, { "certificate-authority": "/etc/k3s/ca.crt" });
    const inlined = inlineKubeconfigFiles(byFile, read);
    const res = await kubeApi(inlined).get(FLUX_COLLECTIONS.GitRepository);
    assert.equal((res.body as { who: string }).who, "cert:homelab-test");
    assert.doesNotMatch(inlined, /certificate-authority:|client-certificate:|client-key:/);
    // A relative path, a file that is not there, and text that is not YAML stay as they are.
    const relative = kubeconfigFor(url, undefined, {}, { "certificate-authority": "ca.crt" });
    assert.equal(inlineKubeconfigFiles(relative, read), relative);
    const missing = kubeconfigFor(url, undefined, {}, { "certificate-authority": "/etc/none.crt" });
    assert.throws(() => kubeApi(inlineKubeconfigFiles(missing, read)), /reads its CA from a file/);
    assert.equal(inlineKubeconfigFiles("a: [", read), "a: [");
  });

  it("streams a 200's body as it arrives (a followed pod log) until the server ends it, or until stopped", async () => {
    answer = (req, res) => {
      if (!caller(req)) {
        json(res, 401, { kind: "Status", status: "Failure", message: "Unauthorized", code: 401 });
        return;
      }
      if (req.url?.startsWith("/api/v1/namespaces/website/pods/p1/log")) {
        res.writeHead(200, { "content-type": "text/plain" });
        res.write("line one\n");
        setTimeout(() => res.end("line two\n"), 50);
        return;
      }
      if (req.url?.startsWith("/api/v1/namespaces/website/pods/p2/log")) {
        res.writeHead(200, { "content-type": "text/plain" });
        res.write("first\n"); // and never ends: a follow
        return;
      }
      json(res, 404, { kind: "Status", status: "Failure", message: "pods \"p3\" not found", code: 404 });
    };
    const api = kubeApi(kubeconfigFor(url, certs.ca, { token }));
    let text = "";
    const ended = await api.stream("/api/v1/namespaces/website/pods/p1/log?follow=true", (t) => (text += t));
    assert.deepEqual([ended.status, text], [200, "line one\nline two\n"]);
    const stop = new AbortController();
    let followed = "";
    const following = api.stream("/api/v1/namespaces/website/pods/p2/log?follow=true", (t) => {
      followed += t;
      stop.abort();
    }, stop.signal);
    assert.equal((await following).summary, "stopped");
    assert.equal(followed, "first\n");
    const missing = await api.stream("/api/v1/namespaces/website/pods/p3/log", () => assert.fail("no text from a 404"));
    assert.deepEqual([missing.status, missing.summary], [404, 'HTTP 404: pods "p3" not found']);
    await assert.rejects(kubeApi(kubeconfigFor(url, certs.otherCa, { token })).stream("/api/v1/namespaces/website/pods/p1/log", () => undefined), (e: unknown) => e instanceof KubeApiUnreachable);
  });

  it("gives up on a server it does not trust, one that does not answer in time, and one that is not there", async () => {
    await assert.rejects(kubeApi(kubeconfigFor(url, certs.otherCa, certUser())).get("/version"), (e: unknown) => e instanceof KubeApiUnreachable && /certificate/i.test(e.message));
    answer = () => undefined;
    await assert.rejects(kubeApi(kubeconfigFor(url, certs.ca, { token }), undefined, { timeoutMs: 300 }).get("/version"), (e: unknown) => e instanceof KubeApiUnreachable && /no answer within 0\.3 s/.test(e.message) && !e.message.includes(token));
    const closed = https.createServer();
    await new Promise<void>((r) => closed.listen(0, "127.0.0.1", r));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((r) => closed.close(() => r()));
    await assert.rejects(kubeApi(kubeconfigFor(`https://127.0.0.1:${port}`, certs.ca, certUser())).get("/version"), (e: unknown) => e instanceof KubeApiUnreachable && /ECONNREFUSED/.test(e.message));
    const warnings = await checkFluxAdoption({ kubeconfig: kubeconfigFor(`https://127.0.0.1:${port}`, certs.ca, certUser()), adopt: false, target: TARGET });
    assert.match(warnings[0], /was skipped \(GET .* ECONNREFUSED.*look with: kubectl -n flux-system get gitrepositories,kustomizations$/);
  });

  it("refuses a bootstrapped cluster before anything changes, and takes it over when told to", async () => {
    const kubeconfig = kubeconfigFor(url, certs.ca, certUser());
    await assert.rejects(checkFluxAdoption({ kubeconfig, adopt: false, target: TARGET }), /^Error: flux-system already holds Flux objects this program did not make[\s\S]*GitRepository\/flux-system[\s\S]*pulumi config set homelab:fluxAdopt true/);
    const warnings = await checkFluxAdoption({ kubeconfig, adopt: true, target: TARGET });
    assert.equal(warnings.length, 3);
    assert.match(warnings[0], /^homelab:fluxAdopt: taking over GitRepository\/flux-system \(written by flux, kustomize-controller, source-controller\): url ssh:\/\/git@github\.com\/me\/fleet\.git becomes/);
    assert.match(warnings[1], /^homelab:fluxAdopt: taking over Kustomization\/flux-system \(written by kustomize-controller\): path \.\/clusters\/home becomes/);
    assert.match(warnings[2], /^homelab:fluxAdopt: Kustomization\/apps \(written by kustomize-controller\) is not taken over/);
  });
});
