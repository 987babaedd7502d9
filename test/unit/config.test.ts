import { describe, it } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "fs";
import * as path from "path";
import * as YAML from "yaml";
import { CONFIG_KEYS, ConfigError, FLUX_VERSION, parseConfig } from "../../lib/config";
import { committedStackFileProblems } from "../../lib/stack-file-secrets";
import { nestedQuantifier } from "../../lib/validate";
import { SECRET_KEYS, validConfig } from "../support/fixtures";

const isSecret = (k: string): boolean => SECRET_KEYS.includes(k);

function problems(overrides: Record<string, string>, secret = isSecret): string[] {
  try {
    parseConfig(validConfig(overrides), secret);
  } catch (e) {
    assert.ok(e instanceof ConfigError, `expected ConfigError, got ${String(e)}`);
    return [...e.problems];
  }
  return [];
}

describe("config", () => {
  it("accepts a valid stack and applies defaults", () => {
    const cfg = parseConfig(validConfig(), isSecret);
    const s = cfg.homelab!.settings;
    assert.equal(s.namespace, "website");
    assert.equal(s.backend.port, 3001);
    assert.equal(s.backend.deployDir, "/opt/backend");
    assert.equal(s.flux.branch, "master");
    assert.equal(s.flux.path, "./flux/clusters/production");
    assert.equal(s.gates.deadlineSeconds, 300);
    assert.equal(s.frontend.rolloutSurge, "100%");
    assert.equal(parseConfig(validConfig({ "homelab:frontendRolloutSurge": "1" }), isSecret).homelab!.settings.frontend.rolloutSurge, 1);
    assert.deepEqual(s.flux.manifests, { kind: "url", url: "https://github.com/fluxcd/flux2/releases/download/v2.9.5/install.yaml" });
    assert.deepEqual(cfg.homelab!.secrets.backendEnv, { DATABASE_URL: "postgres://app:db-secret-456@db/app", NODE_ENV: "production" });
  });

  const cases: [string, Record<string, string>, RegExp][] = [
    ["host", { "homelab:vmHost": "bad host;rm -rf /" }, /^homelab:vmHost: "bad host;rm -rf \/" is not a host name or IPv4 address$/],
    ["IPv4 range", { "homelab:vmHost": "300.1.1.1" }, /^homelab:vmHost: "300.1.1.1" is not a host/],
    ["port range", { "homelab:vmPort": "70000" }, /^homelab:vmPort: "70000" is not an integer from 1 to 65535$/],
    ["port text", { "homelab:backendPort": "http" }, /^homelab:backendPort: "http" is not an integer/],
    ["url", { "homelab:publicUrl": "website.lan" }, /^homelab:publicUrl: "website.lan" is not a URL$/],
    ["url scheme", { "homelab:publicUrl": "ftp://x" }, /^homelab:publicUrl: "ftp:\/\/x" must use http or https$/],
    ["registry", { "homelab:registry": "127.0.0.1:99999" }, /^homelab:registry: "127.0.0.1:99999" is not a port/],
    ["tag pin", { "homelab:backendTag": "latest" }, /^homelab:backendTag: "latest" does not match the release pattern/],
    ["tag pattern", { "homelab:tagPattern": "([" }, /^homelab:tagPattern: "\(\[" is not a valid regular expression/],
    ["list", { "homelab:backendHealthcheck": "CMD" }, /^homelab:backendHealthcheck: "CMD" is not a list of strings$/],
    ["rollout surge", { "homelab:frontendRolloutSurge": "0" }, /^homelab:frontendRolloutSurge: "0" is not a pod count from 1 to 999 or a percentage from 1% to 100%$/],
    ["rollout surge percentage", { "homelab:frontendRolloutSurge": "150%" }, /^homelab:frontendRolloutSurge: "150%" is not a pod count/],
    ["bool", { "homelab:registryInsecure": "yes" }, /^homelab:registryInsecure: "yes" is not true or false$/],
    ["namespace", { "homelab:namespace": "Web_Site" }, /^homelab:namespace: "Web_Site" is not a DNS-1123 label/],
    ["deploy dir", { "homelab:deployDir": "opt/backend" }, /^homelab:deployDir: "opt\/backend" is not an absolute path/],
    ["deploy dir dots", { "homelab:deployDir": "/opt/../etc" }, /^homelab:deployDir: "\/opt\/..\/etc" is not an absolute path/],
    ["host key", { "homelab:vmHostKey": "AAAA" }, /^homelab:vmHostKey: "AAAA" is not a public host key/],
    ["duration", { "homelab:gitInterval": "1 minute" }, /^homelab:gitInterval: "1 minute" is not a duration/],
    ["unknown key", { "homelab:vmHots": "x" }, /^homelab:vmHots: unknown key/],
    ["git url", { "homelab:gitUrl": "github.com/a/b.git" }, /^homelab:gitUrl: "github.com\/a\/b.git" is not a URL \(ssh:\/\/git@host\/owner\/repo.git, /],
    ["scp-like git address", { "homelab:gitUrl": "git@github.com:22/a/b.git" }, /^homelab:gitUrl: "git@github.com:22\/a\/b.git" is not a valid scp-style git address/],
    ["tag pattern without its timestamp group", { "homelab:tagPattern": "^main-[a-f0-9]{7}-[0-9]{10}$" }, /^homelab:tagPattern: "\^main-\[a-f0-9\]\{7\}-\[0-9\]\{10\}\$" has no named group \(\?<ts>…\)/],
    ["author", { "homelab:commitAuthorName": "bot`id`" }, /^homelab:commitAuthorName: "bot`id`" contains control characters/],
  ];
  for (const [label, overrides, expected] of cases) {
    it(`rejects a bad ${label}, naming the key and the value`, () => {
      const found = problems(overrides);
      assert.equal(found.length, 1, found.join("\n"));
      assert.match(found[0], expected);
    });
  }

  it("reports every problem in one error", () => {
    const found = problems({ "homelab:vmPort": "0", "homelab:publicUrl": "nope", "homelab:namespace": "A" });
    assert.equal(found.length, 3);
    assert.throws(() => parseConfig(validConfig({ "homelab:vmPort": "0", "homelab:publicUrl": "nope" }), isSecret), /2 problems/);
  });

  it("names missing required keys and secrets", () => {
    const raw = validConfig();
    delete raw["homelab:vmHost"];
    delete raw["homelab:registryPassword"];
    let err: ConfigError | undefined;
    try {
      parseConfig(raw, isSecret);
    } catch (e) {
      err = e as ConfigError;
    }
    assert.ok(err);
    assert.deepEqual(
      err.problems.map((p) => p.split(":").slice(0, 2).join(":")),
      ["homelab:vmHost", "homelab:registryPassword"],
    );
    assert.match(err.problems[1], /pulumi config set --secret homelab:registryPassword/);
  });

  it("refuses a secret stored in plain text", () => {
    const found = problems({}, (k) => k !== "homelab:vmPrivateKey" && isSecret(k));
    assert.deepEqual(found, ["homelab:vmPrivateKey: must be set with --secret (it is stored in plain text)"]);
  });

  it("never echoes a bad secret value", () => {
    const found = problems({ "homelab:backendEnv": "{not json but secret-xyz" });
    assert.deepEqual(found, ["homelab:backendEnv: the secret value is not JSON"]);
    assert.doesNotMatch(found.join(), /secret-xyz/);
  });

  it("leaves the host key to trust on first use when unset, and refuses the old switch that turned checking off", () => {
    const raw = validConfig();
    delete raw["homelab:vmHostKey"];
    assert.equal(parseConfig(raw, isSecret).homelab!.settings.vm.hostKey, undefined);
    assert.throws(
      () => parseConfig({ ...raw, "homelab:vmSkipHostKeyCheck": "true" }, isSecret),
      /homelab:vmSkipHostKeyCheck: "true" no longer turns host-key checking off: remove it and leave homelab:vmHostKey unset, and the first deploy pins the key the VM presents/,
    );
    assert.equal(parseConfig({ ...raw, "homelab:vmSkipHostKeyCheck": "false" }, isSecret).homelab!.settings.vm.hostKey, undefined);
  });

  it("runs Flux's controllers in the cluster unless told they run elsewhere", () => {
    assert.equal(parseConfig(validConfig(), isSecret).homelab!.settings.flux.controllers, "in-cluster");
    assert.equal(parseConfig(validConfig({ "homelab:fluxControllers": "external" }), isSecret).homelab!.settings.flux.controllers, "external");
    assert.deepEqual(problems({ "homelab:fluxControllers": "outside" }), ["homelab:fluxControllers: \"outside\" is not 'in-cluster' or 'external'"]);
  });

  it("takes the VM's step deadline, 0 (the gate deadline) unless set", () => {
    assert.equal(parseConfig(validConfig(), isSecret).homelab!.settings.vmStepDeadlineSeconds, 0);
    assert.equal(parseConfig(validConfig({ "homelab:vmStepDeadlineSeconds": "45" }), isSecret).homelab!.settings.vmStepDeadlineSeconds, 45);
    assert.throws(() => parseConfig(validConfig({ "homelab:vmStepDeadlineSeconds": "-1" }), isSecret), /homelab:vmStepDeadlineSeconds: "-1" is not an integer from 0 to 3600/);
  });

  it("takes the frontend's version marker and the gates' soak, refusing a marker it cannot read", () => {
    const plain = parseConfig(validConfig(), isSecret).homelab!.settings;
    assert.equal(plain.frontend.version, undefined);
    assert.equal(plain.gates.soakSeconds, 60);
    const set = parseConfig(validConfig({ "homelab:frontendVersionMarker": "header:X-App-Version", "homelab:frontendVersionPath": "/version", "homelab:gateSoakSeconds": "0" }), isSecret).homelab!.settings;
    assert.deepEqual(set.frontend.version, { marker: { kind: "header", name: "X-App-Version" }, path: "/version" });
    assert.equal(set.gates.soakSeconds, 0);
    assert.deepEqual(problems({ "homelab:frontendVersionMarker": "X-App-Version" }), ['homelab:frontendVersionMarker: "X-App-Version" is not header:NAME, json:FIELD.PATH or meta:NAME']);
    assert.deepEqual(problems({ "homelab:frontendVersionMarker": "meta:app version" }), ['homelab:frontendVersionMarker: "meta:app version" names "app version", which is not a meta tag name']);
    assert.deepEqual(problems({ "homelab:gateSoakSeconds": "-5" }), ['homelab:gateSoakSeconds: "-5" is not an integer from 0 to 3600']);
  });

  it("refuses polling intervals without a pause and tag patterns whose matching can explode, naming the key", () => {
    assert.deepEqual(problems({ "homelab:imageScanInterval": "0s" }), ['homelab:imageScanInterval: "0s" is shorter than 10s: Flux would poll without pause']);
    assert.deepEqual(problems({ "homelab:gitInterval": "500ms" }), ['homelab:gitInterval: "500ms" is shorter than 10s: Flux would poll without pause']);
    assert.deepEqual(problems({ "homelab:gitInterval": "1m30s", "homelab:imageScanInterval": "10s" }), []);
    assert.deepEqual(problems({ "homelab:tagPattern": "^main-(a+)+-(?<ts>[0-9]{10})$" }), [
      'homelab:tagPattern: "^main-(a+)+-(?<ts>[0-9]{10})$" repeats a group that itself repeats (like (a+)+), which can take a matcher minutes on one tag: write it without the nested repetition',
    ]);
  });

  it("pins Flux's manifests read from a URL by their SHA-256, naming the key for a bad one", () => {
    const sha = "a".repeat(64);
    assert.deepEqual(parseConfig(validConfig({ "homelab:fluxManifestsSha256": sha }), isSecret).homelab!.settings.flux.manifests, {
      kind: "url",
      url: `https://github.com/fluxcd/flux2/releases/download/${FLUX_VERSION}/install.yaml`,
      sha256: sha,
    });
    assert.deepEqual(problems({ "homelab:fluxManifestsSha256": "abc" }), ['homelab:fluxManifestsSha256: "abc" is not a SHA-256 (64 lower-case hex digits)']);
    assert.deepEqual(problems({ "homelab:fluxManifests": "vendor/flux", "homelab:fluxManifestsSha256": sha }), [
      `homelab:fluxManifestsSha256: "${sha}" pins manifests read from a URL, and homelab:fluxManifests is the directory "vendor/flux"`,
    ]);
  });

  it("takes a local directory of Flux manifests", () => {
    const cfg = parseConfig(validConfig({ "homelab:fluxManifests": "vendor/flux" }), isSecret);
    assert.deepEqual(cfg.homelab!.settings.flux.manifests, { kind: "directory", path: "vendor/flux" });
  });

  it("matches the schema Pulumi.yaml declares (types and defaults)", () => {
    const project = YAML.parse(fs.readFileSync(path.join(__dirname, "../../Pulumi.yaml"), "utf8")) as {
      name: string;
      config: Record<string, { type: string; default?: unknown; secret?: boolean; description: string }>;
    };
    assert.equal(project.name, "homelab");
    assert.deepEqual(Object.keys(project.config).sort(), Object.keys(CONFIG_KEYS).sort());
    for (const [key, spec] of Object.entries(CONFIG_KEYS) as [string, { kind: string; default?: unknown; description: string }][]) {
      const declared = project.config[key];
      assert.equal(declared.type, spec.kind === "secret" ? "string" : spec.kind, key);
      assert.equal(declared.secret, undefined, key);
      assert.deepEqual(declared.default, spec.default, key);
      assert.equal(declared.description, spec.kind === "secret" ? `Secret (set with --secret). ${spec.description}` : spec.description, key);
    }
  });

  it("is documented key by key in the README", () => {
    const readme = fs.readFileSync(path.join(__dirname, "../../README.md"), "utf8");
    for (const key of Object.keys(CONFIG_KEYS)) {
      assert.match(readme, new RegExp(`\\| \`homelab:${key}\` \\|`), key);
    }
  });

  it("validates the production stack file, its secrets committed encrypted or set apart", () => {
    const text = fs.readFileSync(path.join(__dirname, "../../Pulumi.production.yaml"), "utf8");
    // No secret in plain text, and what decrypts its secure: values (README, "Secrets in git");
    // test/unit/stack-file.test.ts checks every committed stack file the same way.
    assert.deepEqual(committedStackFileProblems(text), []);
    const prod = YAML.parse(text) as { config: Record<string, unknown> };
    const holdsSecure = (v: unknown): boolean => typeof v === "object" && v !== null && ("secure" in v || Object.values(v).some(holdsSecure));
    const raw: Record<string, string> = {};
    const encrypted = new Set<string>();
    for (const [k, v] of Object.entries(prod.config)) {
      if (holdsSecure(v)) {
        // Not decrypted here: the fixture's value stands in, as for the secrets set apart.
        encrypted.add(k);
      } else {
        raw[k] = typeof v === "string" ? v : JSON.stringify(v);
      }
    }
    const fixture = validConfig();
    for (const k of [...SECRET_KEYS, "homelab:vmHostKey", ...encrypted]) {
      if (k in fixture) {
        raw[k] = fixture[k];
      }
    }
    const cfg = parseConfig(raw, (k) => isSecret(k) || encrypted.has(k)).homelab!.settings;
    // The homelab's values, wherever the file holds them in plain text (any key may be encrypted).
    const expected: [string, unknown, unknown][] = [
      ["homelab:registry", cfg.registry.host, "192.168.0.40:5000"],
      ["homelab:vmHost", cfg.vm.host, "192.168.0.50"],
      ["homelab:vmUser", cfg.vm.user, "ubuntu"],
      ["homelab:deployDir", cfg.backend.deployDir, "/opt/backend"],
      ["homelab:backendPort", cfg.backend.port, 3001],
      ["homelab:namespace", cfg.namespace, "website"],
      ["homelab:gitBranch", cfg.flux.branch, "master"],
      ["homelab:gitPath", cfg.flux.path, "./flux/clusters/production"],
      ["homelab:backendContainerName", cfg.backend.containerName, "edwards-backend"],
    ];
    for (const [key, actual, value] of expected.filter(([key]) => !encrypted.has(key))) {
      assert.equal(actual, value, key);
    }
  });
});


describe("a tag pattern's repetitions", () => {
  it("finds a repeated group that repeats inside, at any depth, and nothing else", () => {
    for (const p of ["(a+)+$", "(\\d*)*", "((a+))+", "(ab{2,})*", "(.*,)+x", "(?<ts>[0-9]+)+"]) {
      assert.equal(nestedQuantifier(p), true, p);
    }
    for (const p of ["^main-[a-f0-9]{7}-(?<ts>[0-9]{10})$", "(a|b)+", "(?<ts>[0-9]+)", "^(x+)?$", "([+*])+", "(a{3})+", "\\(a+\\)+"]) {
      assert.equal(nestedQuantifier(p), false, p);
    }
  });
});
