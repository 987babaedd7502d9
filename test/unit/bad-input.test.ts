import { describe, it } from "node:test";
import * as assert from "node:assert/strict";
import * as crypto from "crypto";
import { ConfigError, parseConfig } from "../../lib/config";
import { renderEnvFile } from "../../lib/compose";
import { envProblem } from "../../lib/validate";
import { parseReleaseFile } from "../../lib/release";
import { SECRET_KEYS, TAG_A, TAG_B, excludedBlock, releaseText, validConfig } from "../support/fixtures";
import { PAYLOADS } from "../support/hostile";

/*
 * Hostile input: every value that reaches a shell, a YAML or .env file, a URL or the Kubernetes
 * API is refused by config validation or release-file parsing, naming the key and the value
 * (never a secret's value), before anything runs.
 */


const isSecret = (k: string): boolean => SECRET_KEYS.includes(k);

function problems(overrides: Record<string, string>): string[] {
  try {
    parseConfig(validConfig(overrides), isSecret);
  } catch (e) {
    assert.ok(e instanceof ConfigError, `expected ConfigError, got ${String(e)}`);
    return [...e.problems];
  }
  return [];
}

/** The config keys that carry tags, hosts, domain names and remote paths, each with a valid value to spoil. */
const KEYS: Readonly<Record<string, string>> = {
  frontendTag: TAG_A,
  backendTag: TAG_B,
  registry: "127.0.0.1:5000",
  vmHost: "vm.lan",
  backendAddress: "vm.lan",
  frontendHost: "website.lan",
  publicUrl: "http://website.lan",
  gitUrl: "ssh://git@git.lan/website.git",
  deployDir: "/opt/backend",
};

describe("hostile config values are refused, naming the key and the value", () => {
  for (const [key, valid] of Object.entries(KEYS)) {
    for (const [label, payload] of Object.entries(PAYLOADS)) {
      it(`homelab:${key} with ${label}`, () => {
        const value = `${valid}${payload}`;
        const found = problems({ [`homelab:${key}`]: value });
        const mine = found.filter((p) => p.startsWith(`homelab:${key}: `));
        assert.equal(mine.length, 1, `expected one problem for homelab:${key}, got:\n${found.join("\n")}`);
        assert.ok(mine[0].includes(JSON.stringify(value).slice(0, 60)), `the problem shows the value: ${mine[0]}`);
      });
    }
  }

  for (const [label, payload] of Object.entries(PAYLOADS)) {
    it(`an excluded tag with ${label} in the release file`, () => {
      const text = releaseText(TAG_A, TAG_B, "127.0.0.1:5000", excludedBlock([{ image: "backend", tag: `${TAG_A}${payload}` }]));
      assert.throws(
        () => parseReleaseFile(text, "release.yaml", { registry: "127.0.0.1:5000", frontendRepository: "frontend", backendRepository: "backend", tagPattern: "^main-[a-f0-9]{7}-(?<ts>[0-9]{10})$" }),
        (e: Error) => /^release\.yaml: data\.excluded(\[0\]\.tag "|: not valid YAML)/.test(e.message),
      );
    });
  }

  // Permissive, yet with the timestamp group every tag pattern needs.
  for (const pattern of ["(?<ts>.*)", "^main-(?<ts>.*)$", "(?<ts>[\\s\\S]*)"]) {
    for (const [label, payload] of Object.entries(PAYLOADS)) {
      it(`a pinned tag with ${label} under the permissive pattern ${pattern}`, () => {
        const value = `${TAG_A}${payload}`;
        const found = problems({ "homelab:tagPattern": pattern, "homelab:backendTag": value });
        assert.equal(found.length, 1, found.join("\n"));
        assert.ok(found[0].startsWith(`homelab:backendTag: ${JSON.stringify(value).slice(0, 40)}`), found[0]);
      });
    }
  }

  for (const [label, payload] of Object.entries(PAYLOADS)) {
    it(`a backend env value with ${label} is refused by name or written literally, never echoed`, () => {
      const value = `s3cret-value${payload}`;
      const text = JSON.stringify({ DATABASE_URL: value });
      const found = problems({ "homelab:backendEnv": text });
      assert.ok(found.every((p) => p.startsWith("homelab:backendEnv: the secret value ") && !p.includes("s3cret")), found.join("\n"));
      const problem = envProblem(text);
      let rendered: string | undefined;
      try {
        rendered = renderEnvFile({ DATABASE_URL: value });
      } catch (e) {
        assert.ok(problem, `the .env renderer refuses what validation let through: ${(e as Error).message}`);
      }
      if (problem) {
        assert.match(problem, /^has a value for DATABASE_URL /);
        assert.ok(!problem.includes("s3cret"), "the secret value is not echoed");
        assert.equal(rendered, undefined, "what validation refuses the .env renderer refuses too");
        return;
      }
      // Accepted: the .env line carries exactly the value, on one line, with no interpolation.
      const m = /^DATABASE_URL=(?:'([^']*)'|"((?:[^"\\$]|\\.)*)")\n$/.exec(rendered ?? "");
      assert.ok(m, `a single quoted literal: ${String(rendered).slice(0, 80)}`);
      assert.equal(m[1] ?? m[2].replace(/\\(.)/g, "$1"), value);
    });
  }
  it("env names that are not variable names are refused by name", () => {
    assert.match(envProblem(JSON.stringify({ "A;B": "x" })) ?? "", /^has a name "A;B" that is not an environment variable name$/);
    assert.match(envProblem(JSON.stringify({ A: 1 })) ?? "", /^has a value for A that is not a string$/);
  });
});

describe("hostile release files are refused, naming the file, the field and the value", () => {
  const expect = { registry: "127.0.0.1:5000", frontendRepository: "frontend", backendRepository: "backend", tagPattern: "^main-[a-f0-9]{7}-(?<ts>[0-9]{10})$" };
  /** The release file with data.backend set to `value`, written as a YAML double-quoted scalar. */
  const withBackend = (value: string): string => releaseText(TAG_A, TAG_B).replace(/^ {2}backend: .*$/m, `  backend: ${JSON.stringify(value)}`);
  for (const [label, payload] of Object.entries(PAYLOADS)) {
    for (const pattern of [expect.tagPattern, ".*"]) {
      it(`a backend tag with ${label} (pattern ${pattern})`, () => {
        const value = `127.0.0.1:5000/backend:${TAG_B}${payload}`;
        assert.throws(() => parseReleaseFile(withBackend(value), "release.yaml", { ...expect, tagPattern: pattern }), (e: Error) => e.message.startsWith(`release.yaml: data.backend: `) && e.message.includes(JSON.stringify(value).slice(0, 40)));
      });
    }
    it(`a registry host with ${label}`, () => {
      const value = `127.0.0.1:5000${payload}/backend:${TAG_B}`;
      assert.throws(() => parseReleaseFile(withBackend(value), "release.yaml", expect), (e: Error) => e.message.startsWith(`release.yaml: data.backend: `));
    });
    it(`a pinned tag with ${label} under a permissive pattern`, () => {
      const tag = `${TAG_B}${payload}`;
      assert.throws(
        () => parseReleaseFile(releaseText(TAG_A, TAG_B), "release.yaml", { ...expect, tagPattern: ".*" }, { backendTag: tag }),
        (e: Error) => e.message.startsWith(`homelab:backendTag: tag ${JSON.stringify(tag).slice(0, 30)}`),
      );
    });
  }
  it("a second YAML document smuggled into the file", () => {
    assert.throws(() => parseReleaseFile(`${releaseText(TAG_A, TAG_B)}---\nkind: Secret\n`, "release.yaml", expect), (e: Error) => e.message.startsWith("release.yaml: not valid YAML"));
  });
  it("a comment after a valid reference is only a comment", () => {
    const r = parseReleaseFile(releaseText(TAG_A, TAG_B).replace(`backend:${TAG_B}`, `backend:${TAG_B} #$(id)`), "release.yaml", expect);
    assert.equal(r.backend.tag, TAG_B);
  });
});

describe("credentials in plain config are refused", () => {
  // Made at test time: a token-shaped value and a password, never committed.
  const token = `ghp_${crypto.randomBytes(18).toString("hex")}`;
  const password = crypto.randomBytes(6).toString("hex");
  for (const url of [`https://deploy:${token}@github.com/me/website.git`, `https://${token}@github.com/me/website.git`, `ssh://git:${password}@git.lan/website.git`]) {
    it(`homelab:gitUrl ${url.replace(/\/\/.*@/, "//…@")}, named and masked`, () => {
      const found = problems({ "homelab:gitUrl": url });
      const mine = found.filter((p) => p.startsWith("homelab:gitUrl: "));
      assert.equal(mine.length, 1, found.join("\n"));
      assert.match(mine[0], /^homelab:gitUrl: "(https|ssh):\/\/\*\*\*@(github\.com|git\.lan)\/.*website\.git" carries credentials \(user:token@\)/);
      assert.ok(!mine[0].includes(token) && !mine[0].includes(password), "the credential is not echoed");
    });
  }

  it("an ssh user alone is a name, not a credential", () => {
    assert.deepEqual(problems({ "homelab:gitUrl": "ssh://git@git.lan/website.git" }).filter((p) => p.startsWith("homelab:gitUrl")), []);
  });

  it("homelab:registryTokenHosts takes host[:port] names only", () => {
    assert.deepEqual(problems({ "homelab:registryTokenHosts": JSON.stringify(["auth.docker.io", "harbor.lan:8443"]) }), []);
    const found = problems({ "homelab:registryTokenHosts": JSON.stringify(["https://auth.docker.io/token"]) });
    assert.equal(found.filter((p) => p.startsWith("homelab:registryTokenHosts")).length, 1, found.join("\n"));
  });
});
