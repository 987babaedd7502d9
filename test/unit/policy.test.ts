import { after, before, describe, it } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { createRequire } from "module";
import * as pulumi from "@pulumi/pulumi";
import type { PolicyResource, ResourceValidationArgs, ResourceValidationPolicy, StackValidationPolicy } from "@pulumi/policy";
import {
  containersBounded,
  imagePinProblem,
  imagesPinned,
  ingressApiBeforeRoot,
  noPlainSecrets,
  remoteHostKeyPinned,
  resourcePolicies,
  stackPolicies,
} from "../../policy/rules";
import { DEFAULT_TAG_PATTERN } from "../../lib/config";
import { DIGEST_A, DIGEST_B, HOST_KEY, SECRET_KEYS, TAG_A, TAG_B, fakePrivateKey, releaseText, validConfig } from "../support/fixtures";
import { Recorder, installMocks, settle, valueOf } from "../support/mocks";

const PRIORITY = "traefik.ingress.kubernetes.io/router.priority";
const GOOD_IMAGE = `127.0.0.1:5000/frontend:${TAG_A}@${DIGEST_A}`;

function resourceArgs(type: string, name: string, props: Record<string, any>, config: object = {}): ResourceValidationArgs {
  return {
    type,
    name,
    props,
    urn: `urn:pulumi:test::homelab::${type}::${name}`,
    opts: { protect: false, ignoreChanges: [], aliases: [], additionalSecretOutputs: [], customTimeouts: { createSeconds: 0, updateSeconds: 0, deleteSeconds: 0 } },
    stackTags: new Map(),
    isType: () => false,
    asType: () => undefined,
    getConfig: <T extends object>() => config as T,
    notApplicable: (reason?: string) => {
      throw new Error(`not applicable: ${reason}`);
    },
  };
}

/** Runs a resource policy like the engine does and returns its violation messages. */
async function violations(policy: ResourceValidationPolicy, args: ResourceValidationArgs): Promise<string[]> {
  const found: string[] = [];
  const validations = policy.validateResource === undefined ? [] : Array.isArray(policy.validateResource) ? policy.validateResource : [policy.validateResource];
  for (const v of validations) {
    await v(args, (message) => found.push(message));
  }
  return found;
}

function stackResource(type: string, name: string, props: Record<string, any>): PolicyResource {
  return {
    type,
    name,
    props,
    urn: `urn:pulumi:test::homelab::${type}::${name}`,
    opts: resourceArgs(type, name, props).opts,
    dependencies: [],
    propertyDependencies: {},
    isType: () => false,
    asType: () => undefined,
  };
}

async function stackViolations(policy: StackValidationPolicy, resources: PolicyResource[]): Promise<{ message: string; urn?: string }[]> {
  const found: { message: string; urn?: string }[] = [];
  await policy.validateStack(
    {
      resources,
      stackTags: new Map(),
      getConfig: <T extends object>() => ({}) as T,
      notApplicable: (reason?: string) => {
        throw new Error(`not applicable: ${reason}`);
      },
    },
    (message, urn) => found.push({ message, urn }),
  );
  return found;
}

function deployment(container: Record<string, any>, extra: Record<string, any> = {}): Record<string, any> {
  return { metadata: { name: "web" }, spec: { template: { spec: { containers: [container], ...extra } } } };
}
const goodContainer = (): Record<string, any> => ({
  name: "web",
  image: GOOD_IMAGE,
  resources: { limits: { cpu: "500m", memory: "256Mi" } },
  readinessProbe: { httpGet: { path: "/", port: "http" } },
});

function ingress(name: string, paths: string[], priority: string | undefined, namespace = "website"): PolicyResource {
  return stackResource("kubernetes:networking.k8s.io/v1:Ingress", name, {
    metadata: { name, namespace, annotations: priority === undefined ? {} : { [PRIORITY]: priority } },
    spec: { rules: [{ http: { paths: paths.map((p) => ({ path: p, pathType: "Prefix" })) } }] },
  });
}

describe("policy: images pinned", () => {
  it("uses the same release pattern as the program", () => {
    assert.equal(DEFAULT_TAG_PATTERN, "^main-[a-f0-9]{7}-(?<ts>[0-9]{10})$");
    assert.equal(imagePinProblem(`r/x:${TAG_B}`), undefined);
  });

  it("accepts release tags and sha256 digests in containers and init containers", async () => {
    const props = deployment(goodContainer(), {
      initContainers: [{ name: "migrate", image: `127.0.0.1:5000/backend:${TAG_B}` }, { name: "wait", image: `busybox@${DIGEST_B}` }],
    });
    assert.deepEqual(await violations(imagesPinned, resourceArgs("kubernetes:apps/v1:Deployment", "web", props)), []);
    assert.deepEqual(await violations(imagesPinned, resourceArgs("kubernetes:apps/v1:Deployment", "flux", deployment({ name: "c", image: "ghcr.io/fluxcd/source-controller:v1.8.3" }))), []);
  });

  it("rejects latest, untagged and non-release tags, naming the resource and the image", async () => {
    const props = deployment({ ...goodContainer(), image: "nginx:latest" }, { initContainers: [{ name: "init", image: "busybox" }] });
    assert.deepEqual(await violations(imagesPinned, resourceArgs("kubernetes:apps/v1:Deployment", "web", props)), [
      'kubernetes:apps/v1:Deployment "web" container "web": image "nginx:latest" uses the mutable tag latest',
      'kubernetes:apps/v1:Deployment "web" initContainer "init": image "busybox" has no tag and no digest',
    ]);
    const job = { spec: { jobTemplate: { spec: { template: { spec: { containers: [{ name: "c", image: "127.0.0.1:5000/x:main-abc1234" }] } } } } } };
    const [msg] = await violations(imagesPinned, resourceArgs("kubernetes:batch/v1:CronJob", "nightly", job));
    assert.match(msg, /^kubernetes:batch\/v1:CronJob "nightly" container "c": image "127.0.0.1:5000\/x:main-abc1234" has tag "main-abc1234", which is neither a release tag/);
    const pod = await violations(imagesPinned, resourceArgs("kubernetes:core/v1:Pod", "p", { spec: { containers: [{ name: "c", image: `x:latest@${DIGEST_A}` }] } }));
    assert.equal(pod.length, 1, "a digest does not excuse a latest tag");
  });

  it("lets a stack's policy config replace the vendor allow-list", async () => {
    const props = deployment({ name: "c", image: "ghcr.io/fluxcd/source-controller:v1.8.3" });
    const found = await violations(imagesPinned, resourceArgs("kubernetes:apps/v1:Deployment", "flux", props, { vendorImages: [] }));
    assert.equal(found.length, 1);
  });

  it("ignores resources without pods", async () => {
    assert.deepEqual(await violations(imagesPinned, resourceArgs("kubernetes:core/v1:Service", "svc", { spec: {} })), []);
  });
});

describe("policy: limits and readiness", () => {
  it("accepts a container with cpu and memory limits and a readiness probe; init containers need neither", async () => {
    const props = deployment(goodContainer(), { initContainers: [{ name: "init", image: GOOD_IMAGE }] });
    assert.deepEqual(await violations(containersBounded, resourceArgs("kubernetes:apps/v1:StatefulSet", "db", props)), []);
  });

  it("rejects missing limits and a missing readiness probe", async () => {
    const props = deployment({ name: "web", image: GOOD_IMAGE, resources: { limits: { cpu: "1" } } });
    assert.deepEqual(await violations(containersBounded, resourceArgs("kubernetes:apps/v1:Deployment", "web", props)), [
      'kubernetes:apps/v1:Deployment "web" container "web": resources.limits {"cpu":"1"} lacks memory',
      'kubernetes:apps/v1:Deployment "web" container "web": no readinessProbe (readinessProbe is undefined)',
    ]);
  });

  it("asks jobs for limits but not for readiness", async () => {
    const job = { spec: { template: { spec: { containers: [{ name: "c", image: GOOD_IMAGE }] } } } };
    assert.deepEqual(await violations(containersBounded, resourceArgs("kubernetes:batch/v1:Job", "once", job)), [
      'kubernetes:batch/v1:Job "once" container "c": resources.limits {} lacks cpu and memory',
    ]);
  });
});

describe("policy: no plain secrets", () => {
  it("accepts secretKeyRef, harmless values and references to secret files", async () => {
    const c = {
      ...goodContainer(),
      env: [
        { name: "DB_PASSWORD", valueFrom: { secretKeyRef: { name: "db", key: "password" } } },
        { name: "NODE_ENV", value: "production" },
        { name: "DB_PASSWORD_FILE", value: "/run/secrets/db" },
      ],
    };
    assert.deepEqual(await violations(noPlainSecrets, resourceArgs("kubernetes:apps/v1:Deployment", "web", deployment(c))), []);
    const cm = { data: { "release.yaml": "frontend: x", LOG_LEVEL: "info" } };
    assert.deepEqual(await violations(noPlainSecrets, resourceArgs("kubernetes:core/v1:ConfigMap", "cfg", cm)), []);
  });

  it("rejects secret-named env values, private keys and tokens without repeating the value", async () => {
    const key = fakePrivateKey();
    const token = `ghp_${"A1b2C3d4".repeat(5)}`;
    const c = { ...goodContainer(), env: [{ name: "API_KEY", value: "hunter2" }, { name: "SSH", value: key }] };
    const init = [{ name: "init", image: GOOD_IMAGE, env: [{ name: "X", value: `postgres://app:pw@db/app` }] }];
    const found = await violations(noPlainSecrets, resourceArgs("kubernetes:apps/v1:Deployment", "web", deployment(c, { initContainers: init })));
    assert.deepEqual(found, [
      'kubernetes:apps/v1:Deployment "web" container "web": env "API_KEY" is a plain value, but its name says it holds a secret; keep it in a Secret (env valueFrom.secretKeyRef or a mounted Secret)',
      'kubernetes:apps/v1:Deployment "web" container "web": env "SSH" is a plain value, but its value looks like a private key; keep it in a Secret (env valueFrom.secretKeyRef or a mounted Secret)',
      'kubernetes:apps/v1:Deployment "web" initContainer "init": env "X" is a plain value, but its value looks like a URL with a password; keep it in a Secret (env valueFrom.secretKeyRef or a mounted Secret)',
    ]);
    const cm = { data: { "db.password": "hunter2", notes: `push with ${token}` } };
    const cmFound = await violations(noPlainSecrets, resourceArgs("kubernetes:core/v1:ConfigMap", "cfg", cm));
    assert.deepEqual(cmFound, [
      'kubernetes:core/v1:ConfigMap "cfg": data key "db.password" is plain text, but its name says it holds a secret; keep it in a Secret (env valueFrom.secretKeyRef or a mounted Secret)',
      'kubernetes:core/v1:ConfigMap "cfg": data key "notes" is plain text, but its value looks like a GitHub token; keep it in a Secret (env valueFrom.secretKeyRef or a mounted Secret)',
    ]);
    assert.doesNotMatch([...found, ...cmFound].join("\n"), /hunter2|PRIVATE KEY|ghp_|:pw@/);
  });

  it("leaves Secrets alone", async () => {
    assert.deepEqual(await violations(noPlainSecrets, resourceArgs("kubernetes:core/v1:Secret", "s", { stringData: { password: "x" } })), []);
  });
});

describe("policy: remote host key pinned", () => {
  const conn = (extra: Record<string, any>): Record<string, any> => ({ connection: { host: "10.0.0.5", user: "deploy", ...extra }, create: "true" });

  it("accepts a pinned host key on commands and copies", async () => {
    assert.deepEqual(await violations(remoteHostKeyPinned, resourceArgs("command:remote:Command", "deploy", conn({ hostKey: HOST_KEY }))), []);
    assert.deepEqual(await violations(remoteHostKeyPinned, resourceArgs("command:remote:CopyToRemote", "copy", conn({ hostKey: HOST_KEY }))), []);
    assert.deepEqual(await violations(remoteHostKeyPinned, resourceArgs("command:local:Command", "local", { create: "true" })), []);
  });

  it("rejects a missing or empty host key and a missing connection", async () => {
    assert.deepEqual(await violations(remoteHostKeyPinned, resourceArgs("command:remote:Command", "deploy", conn({}))), [
      'command:remote:Command "deploy": connection to "10.0.0.5" has hostKey undefined; set it to the server\'s public host key',
    ]);
    assert.deepEqual(await violations(remoteHostKeyPinned, resourceArgs("command:remote:CopyToRemote", "copy", conn({ hostKey: "" }))), [
      'command:remote:CopyToRemote "copy": connection to "10.0.0.5" has hostKey ""; set it to the server\'s public host key',
    ]);
    assert.equal((await violations(remoteHostKeyPinned, resourceArgs("command:remote:Command", "x", {}))).length, 1);
  });

  it("accepts the program's RemoteScript with trust on first use, and nothing else without a key", async () => {
    assert.deepEqual(await violations(remoteHostKeyPinned, resourceArgs("pulumi-nodejs:dynamic/homelab:RemoteScript", "vm-check", conn({ trustOnFirstUse: true }))), []);
    assert.deepEqual(await violations(remoteHostKeyPinned, resourceArgs("command:remote:Command", "deploy", conn({ trustOnFirstUse: true }))), [
      'command:remote:Command "deploy": connection to "10.0.0.5" has hostKey undefined; set it to the server\'s public host key',
    ]);
    assert.equal((await violations(remoteHostKeyPinned, resourceArgs("pulumi-nodejs:dynamic/homelab:RemoteScript", "vm-check", conn({ trustOnFirstUse: "yes" })))).length, 1);
  });

  it("leaves a host key unknown during preview to the engine's advisory path, without a violation", async () => {
    // What @pulumi/policy's server hands a rule: properties behind a proxy that throws on unknowns.
    const load = createRequire(__filename);
    const proxy = load("@pulumi/policy/proxy");
    const props = proxy.unknownCheckingProxy(conn({ hostKey: proxy.unknownStringValue }));
    await assert.rejects(violations(remoteHostKeyPinned, resourceArgs("command:remote:Command", "deploy", props)), (e: unknown) => e instanceof proxy.UnknownValueError);
  });
});

describe("policy: ingress /api before /", () => {
  it("accepts /api above / and ingresses in other namespaces", async () => {
    assert.deepEqual(await stackViolations(ingressApiBeforeRoot, [ingress("api", ["/api"], "2000"), ingress("web", ["/"], "1000"), ingress("other", ["/"], "9999", "blog")]), []);
    assert.deepEqual(await stackViolations(ingressApiBeforeRoot, [ingress("both", ["/api", "/"], undefined)]), []);
  });

  it("rejects an /api ingress that does not outrank the / ingress", async () => {
    const api = ingress("api", ["/api"], "1000");
    const found = await stackViolations(ingressApiBeforeRoot, [api, ingress("web", ["/"], "1000")]);
    assert.deepEqual(found, [
      {
        message:
          'kubernetes:networking.k8s.io/v1:Ingress "api" routes /api with traefik.ingress.kubernetes.io/router.priority="1000", which must be strictly higher than "1000" of kubernetes:networking.k8s.io/v1:Ingress "web" routing / in namespace "website"',
        urn: api.urn,
      },
    ]);
    const unset = await stackViolations(ingressApiBeforeRoot, [ingress("api", ["/api/"], undefined), ingress("web", ["/"], "10")]);
    assert.match(unset[0].message, /priority=undefined, which must be strictly higher than "10"/);
  });

  it("rejects a single ingress listing / before /api", async () => {
    const found = await stackViolations(ingressApiBeforeRoot, [ingress("both", ["/", "/api"], "5")]);
    assert.deepEqual(found.map((f) => f.message), ['kubernetes:networking.k8s.io/v1:Ingress "both" lists "/" (path 0) before "/api" (path 1); list the /api path first']);
  });
});

describe("policy: the stack program complies", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "homelab-policy-"));
  let rec: Recorder;

  before(async () => {
    fs.mkdirSync(path.join(dir, "flux/clusters/production"), { recursive: true });
    fs.writeFileSync(path.join(dir, "flux/clusters/production/release.yaml"), releaseText(TAG_A, TAG_B));
    rec = installMocks();
    pulumi.runtime.setAllConfig(validConfig(), SECRET_KEYS);
    const { loadConfig } = await import("../../stacks/config");
    const { homelabStack } = await import("../../stacks/homelab");
    const outputs = homelabStack(loadConfig(dir).homelab!, { kind: "resolved", digests: { frontend: DIGEST_A, backend: DIGEST_B } });
    await valueOf(outputs.release!);
    await settle(rec);
  });

  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("passes every rule with every resource it declares", async () => {
    const found: string[] = [];
    for (const r of rec.resources) {
      for (const policy of resourcePolicies) {
        found.push(...(await violations(policy, resourceArgs(r.type, r.name, r.inputs))));
      }
    }
    const all = rec.resources.map((r) => stackResource(r.type, r.name, r.inputs));
    for (const policy of stackPolicies) {
      found.push(...(await stackViolations(policy, all)).map((v) => v.message));
    }
    assert.deepEqual(found, []);
    // The rules had something to look at.
    assert.equal(rec.ofType("kubernetes:apps/v1:Deployment").length, 1);
    assert.equal(rec.ofType("pulumi-nodejs:dynamic/homelab:RemoteScript").length, 2);
    assert.equal(rec.ofType("kubernetes:networking.k8s.io/v1:Ingress").length, 2);
  });

  it("would be caught if the frontend ran an unpinned image or /api lost its priority", async () => {
    const dep = rec.ofType("kubernetes:apps/v1:Deployment")[0];
    const bad = structuredClone(dep.inputs) as any;
    bad.spec.template.spec.containers[0].image = "127.0.0.1:5000/frontend:latest";
    assert.deepEqual(await violations(imagesPinned, resourceArgs(dep.type, dep.name, bad)), [
      `kubernetes:apps/v1:Deployment "frontend-deployment" container "frontend": image "127.0.0.1:5000/frontend:latest" uses the mutable tag latest`,
    ]);
    const all = rec.resources.map((r) => {
      const props = structuredClone(r.inputs) as any;
      if (r.name === "frontend-ingress-api") {
        props.metadata.annotations[PRIORITY] = "1";
      }
      return stackResource(r.type, r.name, props);
    });
    const found = await stackViolations(ingressApiBeforeRoot, all);
    assert.equal(found.length, 1);
    assert.match(found[0].message, /Ingress "frontend-ingress-api" routes \/api with .*="1", which must be strictly higher than "1000" of .*"frontend-ingress-web"/);
  });
});
