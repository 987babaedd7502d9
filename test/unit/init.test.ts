import { after, describe, it } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as YAML from "yaml";
import { INIT_KEYS, InitIo, InputEnded, UsageError, flagOf, main, parseInitArgs, stackNameProblem, validateValues } from "../../deploy/init";
import { CONFIG_KEYS, ConfigError, ConfigKey, parseConfig } from "../../lib/config";
import { renderStackFile, stackFileEntries } from "../../lib/stack-file";
import { SECRET_KEYS as SET_SECRET, validConfig } from "../support/fixtures";

const SECRET_KEYS = (Object.keys(CONFIG_KEYS) as ConfigKey[]).filter((k) => CONFIG_KEYS[k].kind === "secret");

/** A scripted terminal (or none): answers in order, everything said kept. */
function fakeIo(interactive = false, answers: string[] = []) {
  const said = { out: [] as string[], err: [] as string[], questions: [] as string[] };
  const io: InitIo = {
    interactive,
    ask: (question) => {
      said.questions.push(question);
      const answer = answers.shift();
      return answer === undefined ? Promise.reject(new InputEnded()) : Promise.resolve(answer);
    },
    out: (line) => void said.out.push(line),
    err: (line) => void said.err.push(line),
    close: () => undefined,
  };
  return { io, said };
}

/** The program's own verdict on a git URL, in an otherwise valid stack. */
function programRefusesGitUrl(url: string): boolean {
  try {
    parseConfig(validConfig({ "homelab:gitUrl": url }), (k) => SET_SECRET.includes(k));
    return false;
  } catch (e) {
    return e instanceof ConfigError && e.problems.some((p) => p.startsWith("homelab:gitUrl:"));
  }
}

const tempDirs: string[] = [];
after(() => tempDirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

function tempProject(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), "homelab-init-"));
  tempDirs.push(d);
  return d;
}

/** A second homelab's values, all valid. */
const GOOD = [
  "--stack",
  "lab2",
  "--registry",
  "10.0.0.5:5000",
  "--registry-username=robot$flux",
  "--registry-insecure",
  "false",
  "--public-url",
  "https://web.lab2.lan",
  "--frontend-host=web.lab2.lan",
  "--vm-host",
  "10.0.0.6",
  "--vm-port",
  "2222",
  "--vm-user",
  "ubuntu",
  "--deploy-dir",
  "/srv/backend",
  "--git-url",
  "ssh://git@git.lab2.lan:2223/me/site.git",
  "--git-branch",
  "main",
  "--namespace",
  "website",
];

/** GOOD with some flags replaced (by name) or dropped (value undefined). */
function args(changes: Record<string, string | undefined> = {}): string[] {
  const out: string[] = [];
  const given = new Set<string>();
  for (let i = 0; i < GOOD.length; i++) {
    const [flag, inline] = GOOD[i].split(/=(.*)/s);
    const value = inline ?? GOOD[++i];
    given.add(flag);
    if (flag in changes) {
      if (changes[flag] !== undefined) {
        out.push(flag, changes[flag]);
      }
    } else {
      out.push(flag, value);
    }
  }
  for (const [flag, value] of Object.entries(changes)) {
    if (!given.has(flag) && value !== undefined) {
      out.push(flag, value);
    }
  }
  return out;
}

async function run(argv: string[], dir = tempProject(), io = fakeIo()) {
  const code = await main(argv, dir, io.io);
  const file = path.join(dir, "Pulumi.lab2.yaml");
  return { code, dir, file, written: fs.existsSync(file) ? fs.readFileSync(file, "utf8") : undefined, ...io.said };
}

describe("init: flags", () => {
  it("maps each flag to its config key in kebab-case, as --flag value or --flag=value", () => {
    assert.equal(flagOf("vmHost"), "--vm-host");
    assert.equal(flagOf("registry"), "--registry");
    assert.equal(flagOf("vpsSshKeysMount"), "--vps-ssh-keys-mount");
    const a = parseInitArgs(["--stack=lab2", "--vm-host", "10.0.0.6", "--vm-port=2222", "--force"]);
    assert.deepEqual(a, { stack: "lab2", force: true, help: false, values: { vmHost: "10.0.0.6", vmPort: "2222" } });
  });

  it("refuses an unknown flag, a flag without a value and a positional", () => {
    assert.throws(() => parseInitArgs(["--vmhost", "x"]), (e: unknown) => e instanceof UsageError && /unknown flag --vmhost/.test(e.message));
    assert.throws(() => parseInitArgs(["--vm-host"]), UsageError);
    assert.throws(() => parseInitArgs(["lab2"]), UsageError);
  });

  it("takes no secret as a flag, and covers every plain key Pulumi.production.yaml sets", () => {
    for (const key of SECRET_KEYS) {
      assert.throws(() => parseInitArgs([flagOf(key), "x"]), UsageError, key);
      assert.ok(!INIT_KEYS.includes(key), key);
    }
    const prod = YAML.parse(fs.readFileSync(path.join(__dirname, "../../Pulumi.production.yaml"), "utf8")) as { config: Record<string, unknown> };
    const keys = Object.keys(prod.config)
      .filter((k) => k.startsWith("homelab:"))
      .map((k) => k.slice("homelab:".length) as ConfigKey);
    assert.deepEqual(
      keys.filter((k) => !INIT_KEYS.includes(k)),
      [],
    );
  });

  it("follows Pulumi's rule for stack names", () => {
    for (const ok of ["lab2", "home-lab_2.test", "a".repeat(100)]) {
      assert.equal(stackNameProblem(ok), undefined, ok);
    }
    for (const bad of ["", "lab 2", "org/lab2", "lab2;rm", "a".repeat(101)]) {
      assert.match(stackNameProblem(bad) ?? "", /^--stack: .* is not a stack name/, bad);
    }
  });
});

describe("init: a good run", () => {
  it("writes only the values that differ from Pulumi.yaml's defaults, typed, and the stack's own Flux path", async () => {
    const r = await run(args());
    assert.equal(r.code, 0, r.err.join("\n"));
    const config = (YAML.parse(r.written ?? "") as { config: Record<string, unknown> }).config;
    assert.deepEqual(config, {
      "pulumi:disable-default-providers": ["kubernetes", "docker"],
      "homelab:registry": "10.0.0.5:5000",
      "homelab:registryInsecure": false,
      "homelab:registryUsername": "robot$flux",
      "homelab:releaseFile": "flux/clusters/lab2/release.yaml",
      "homelab:frontendHost": "web.lab2.lan",
      "homelab:publicUrl": "https://web.lab2.lan",
      "homelab:vmHost": "10.0.0.6",
      "homelab:vmPort": 2222,
      "homelab:deployDir": "/srv/backend",
      "homelab:gitUrl": "ssh://git@git.lab2.lan:2223/me/site.git",
      "homelab:gitBranch": "main",
      "homelab:gitPath": "./flux/clusters/lab2",
    });
    // vmUser ubuntu and namespace website are the defaults: not written.
    assert.doesNotMatch(r.written ?? "", /vmUser|namespace/);
    assert.match(r.out[0], /^init: wrote .*Pulumi\.lab2\.yaml \(12 settings/);
  });

  it("prints the next steps: the stack, the Flux path to copy, the secrets the program requires, the host keys", async () => {
    const r = await run(args());
    const out = r.out.join("\n");
    assert.match(out, /pulumi stack init lab2 --secrets-provider passphrase\n/);
    assert.match(out, /mkdir -p flux\/clusters\/lab2\n/);
    assert.match(out, /cp flux\/clusters\/production\/kustomization\.yaml flux\/clusters\/lab2\/kustomization\.yaml\n/);
    assert.match(out, /cp flux\/clusters\/production\/release\.yaml flux\/clusters\/lab2\/release\.yaml\n/);
    assert.match(out, /10\.0\.0\.5:5000\/frontend and 10\.0\.0\.5:5000\/backend/);
    const set = r.out.filter((l) => l.includes("pulumi config set")).map((l) => l.trim());
    assert.deepEqual(set, [
      "pulumi config set --stack lab2 --secret homelab:registryPassword   # prompts for it: the password of robot$flux on 10.0.0.5:5000",
      "pulumi config set --stack lab2 --secret homelab:kubeconfig < ~/.kube/k3s.yaml",
      "pulumi config set --stack lab2 --secret homelab:vmPrivateKey < ~/.ssh/backend_deploy",
      "pulumi config set --stack lab2 --secret homelab:gitDeployKey < ~/.ssh/flux_deploy_key   # read-write deploy key",
      `pulumi config set --stack lab2 --secret homelab:backendEnv '{"DATABASE_URL":"postgres://…"}'   # optional: the backend's environment`,
      "pulumi config set --stack lab2 homelab:registryCaCert < ca.crt",
      `pulumi config set --stack lab2 homelab:vmHostKey "$(ssh-keyscan -t ed25519 -p 2222 10.0.0.6 2>/dev/null | cut -d' ' -f2-)"`,
      `pulumi config set --stack lab2 homelab:gitKnownHosts "$(ssh-keyscan -t ed25519 -p 2223 git.lab2.lan 2>/dev/null)"`,
    ]);
    assert.match(out, /pulumi preview --stack lab2 --policy-pack \.\/policy\n\s+npm run deploy -- --stack lab2$/);
  });

  it("for an https registry, says where its own CA goes, and for plain HTTP says nothing of one", async () => {
    const r = await run(args({ "--registry-insecure": "false", "--registry": "harbor.lab2.lan" }));
    assert.equal(r.code, 0, r.err.join("\n"));
    const lines = r.out.map((l) => l.trim());
    assert.ok(lines.some((l) => /^\d+\. Only if harbor\.lab2\.lan's https certificate is signed by a CA of your own/.test(l)), r.out.join("\n"));
    assert.ok(lines.includes("pulumi config set --stack lab2 homelab:registryCaCert < ca.crt"));
    assert.ok(lines.includes("sudo install -D -m 0644 ca.crt /etc/docker/certs.d/harbor.lab2.lan/ca.crt   # on the VM"));
    assert.doesNotMatch((await run(args({ "--registry-insecure": "true" }))).out.join("\n"), /registryCaCert|certs\.d/);
  });

  it("asks no deploy key nor known_hosts for an https git URL, and keeps given paths", async () => {
    const r = await run(args({ "--git-url": "https://git.lab2.lan/me/site.git", "--git-path": "./flux/clusters/production", "--release-file": "flux/clusters/production/release.yaml" }));
    assert.equal(r.code, 0, r.err.join("\n"));
    const out = r.out.join("\n");
    assert.doesNotMatch(out, /gitDeployKey|gitKnownHosts|mkdir|cp /);
    assert.doesNotMatch(r.written ?? "", /gitPath|releaseFile/);
  });

  it("writes a VPS stack, asks for what it requires and pins its host key", async () => {
    const r = await run(
      args({
        "--deploy-vps": "true",
        "--vps-host": "203.0.113.7",
        "--vps-port": "2200",
        "--vps-domain": "app.example.org",
        "--vps-image": "ghcr.io/me/app:1.2.3",
        "--vps-app-name": "shop",
      }),
    );
    assert.equal(r.code, 0, r.err.join("\n"));
    const config = (YAML.parse(r.written ?? "") as { config: Record<string, unknown> }).config;
    assert.equal(config["homelab:deployVps"], true);
    assert.equal(config["homelab:vpsPort"], 2200);
    assert.equal(config["homelab:vpsAppName"], "shop");
    const out = r.out.join("\n");
    assert.match(out, /pulumi config set --stack lab2 --secret homelab:vpsPrivateKey < ~\/.ssh\/vps_deploy\n/);
    assert.match(out, /homelab:vpsHostKey "\$\(ssh-keyscan -t ed25519 -p 2200 203\.0\.113\.7 2>\/dev\/null \| cut -d' ' -f2-\)"/);
  });

  it("quotes a value for the shell where it needs it", async () => {
    // A host name is plain; the stack name and the flag values reach the commands only validated.
    const r = await run(args({ "--vm-host": "backend.lab2.lan", "--vm-port": "22" }));
    assert.match(r.out.join("\n"), /"\$\(ssh-keyscan -t ed25519 backend\.lab2\.lan 2>\/dev\/null \| cut -d' ' -f2-\)"/);
  });
});

describe("init: refusals", () => {
  it("reports every bad value at once, naming the flag, the key and the value, and writes nothing", async () => {
    const r = await run(
      args({
        "--registry": "10.0.0.5:99999",
        "--public-url": "web.lab2.lan",
        "--namespace": "Web_Site",
        "--vm-port": "seventy",
        "--vps-domain": "Not A Domain",
      }),
    );
    assert.equal(r.code, 2);
    assert.equal(r.written, undefined);
    assert.equal(r.out.length, 0);
    assert.match(r.err[0], /^init: nothing written, 5 problems:$/);
    const lines = r.err.slice(1).join("\n");
    assert.match(lines, /--registry \(homelab:registry\): "10\.0\.0\.5:99999" is not a port/);
    assert.match(lines, /--public-url \(homelab:publicUrl\): "web\.lab2\.lan" is not a URL/);
    assert.match(lines, /--namespace \(homelab:namespace\): "Web_Site" is not a DNS-1123 label/);
    assert.match(lines, /--vm-port \(homelab:vmPort\): "seventy" is not an integer/);
    // A part not deployed yet is checked too.
    assert.match(lines, /--vps-domain \(homelab:vpsDomain\): "Not A Domain" is not a domain name/);
  });

  const badGitUrls: [string, string][] = [
    ["an https URL with credentials", "https://me:ghp_token123@github.com/me/site.git"],
    ["an scp address with credentials", "me:ghp_token123@github.com:me/site.git"],
    ["an scp address with a bad host", "git@bad_host!:me/site.git"],
    ["no scheme", "github.com/me/site.git"],
  ];
  for (const [name, url] of badGitUrls) {
    it(`refuses a git URL with ${name}, as lib/config.ts does, never showing a token`, async () => {
      assert.ok(programRefusesGitUrl(url), "lib/config.ts accepts it now: pick another example");
      const r = await run(args({ "--git-url": url }));
      assert.equal(r.code, 2);
      assert.equal(r.written, undefined);
      assert.match(r.err.join("\n"), /--git-url \(homelab:gitUrl\): "[^"]+" /);
      assert.doesNotMatch(r.err.join("\n"), /ghp_token123/);
    });
  }

  it("masks the credentials it refuses", async () => {
    const r = await run(args({ "--git-url": "https://me:ghp_token123@github.com/me/site.git" }));
    assert.match(r.err.join("\n"), /--git-url \(homelab:gitUrl\): "https:\/\/\*\*\*@github\.com\/me\/site\.git" carries credentials/);
  });

  it("takes an scp-like git address exactly when lib/config.ts does, and reads its host for known_hosts", async () => {
    const url = "git@git.lab2.lan:me/site.git";
    const r = await run(args({ "--git-url": url }));
    assert.equal(r.code === 2, programRefusesGitUrl(url), r.err.join("\n"));
    if (r.code === 0) {
      assert.match(r.written ?? "", /homelab:gitUrl: git@git\.lab2\.lan:me\/site\.git/);
      assert.match(r.out.join("\n"), /--secret homelab:gitDeployKey /);
      assert.match(r.out.join("\n"), /homelab:gitKnownHosts "\$\(ssh-keyscan -t ed25519 git\.lab2\.lan 2>\/dev\/null\)"/);
    }
  });

  it("without a terminal, a required value not given is an error naming the flag and the key", async () => {
    const r = await run(args({ "--vm-host": undefined, "--git-url": undefined }));
    assert.equal(r.code, 2);
    assert.equal(r.written, undefined);
    const lines = r.err.join("\n");
    assert.match(lines, /--vm-host \(homelab:vmHost\): required, and not given/);
    assert.match(lines, /--git-url \(homelab:gitUrl\): required, and not given/);
    const noStack = await run(args({ "--stack": undefined }));
    assert.equal(noStack.code, 2);
    assert.match(noStack.err.join("\n"), /--stack: required, and not given/);
  });

  it("requires the VPS's values when it deploys the VPS", () => {
    const v = validateValues({ deployHomelab: "false", deployVps: "true", vpsImage: "ghcr.io/me/app:1" });
    assert.deepEqual(
      v.problems.map((p) => p.keys),
      [["vpsHost"], ["vpsDomain"]],
    );
    assert.deepEqual(v.secrets, ["vpsPrivateKey"]);
    assert.deepEqual(v.hostKeys, ["vpsHostKey"]);
  });

  it("refuses a bad stack name", async () => {
    const r = await run(args({ "--stack": "lab 2" }));
    assert.equal(r.code, 2);
    assert.match(r.err.join("\n"), /--stack: "lab 2" is not a stack name/);
    assert.deepEqual(fs.readdirSync(r.dir), []);
  });

  it("does not change an existing file without --force, and says how to overwrite it", async () => {
    const dir = tempProject();
    const file = path.join(dir, "Pulumi.lab2.yaml");
    fs.writeFileSync(file, "config: {}\n");
    const r = await run(args(), dir);
    assert.equal(r.code, 2);
    assert.equal(fs.readFileSync(file, "utf8"), "config: {}\n");
    assert.match(r.err.join("\n"), new RegExp(`${file.replace(/[.]/g, "\\.")} already exists .*run again with --force`));
    const forced = await run([...args(), "--force"], dir);
    assert.equal(forced.code, 0, forced.err.join("\n"));
    assert.match(fs.readFileSync(file, "utf8"), /homelab:vmHost: 10\.0\.0\.6/);
  });

  it("refuses production's own file without --force, before asking anything", async () => {
    const dir = tempProject();
    fs.writeFileSync(path.join(dir, "Pulumi.production.yaml"), "config: {}\n");
    const io = fakeIo(true, ["anything"]);
    const code = await main(["--stack", "production"], dir, io.io);
    assert.equal(code, 2);
    assert.deepEqual(io.said.questions, []);
    assert.match(io.said.err.join("\n"), /Pulumi\.production\.yaml, the original homelab's stack file, already exists/);
  });
});

describe("init: secrets", () => {
  it("never writes a secret key", async () => {
    const r = await run(args({ "--deploy-vps": "true", "--vps-host": "203.0.113.7", "--vps-domain": "app.example.org", "--vps-image": "ghcr.io/me/app:1.2.3" }));
    assert.equal(r.code, 0, r.err.join("\n"));
    for (const key of SECRET_KEYS) {
      assert.doesNotMatch(r.written ?? "", new RegExp(`homelab:${key}\\b`), key);
    }
    for (const key of SECRET_KEYS) {
      assert.throws(() => stackFileEntries({ [key]: "hunter22" }), /is a secret/);
      assert.throws(() => renderStackFile("lab2", { vmHost: "10.0.0.6", [key]: "hunter22" }), /is a secret/);
    }
  });
});

describe("init: on a terminal", () => {
  it("asks for the values not given, showing defaults, and asks again until the program accepts the answer", async () => {
    const given = args({ "--vm-host": undefined, "--vm-user": undefined, "--git-url": undefined });
    // deployVps, vmHost (bad, then good), vmUser (default), gitUrl.
    const io = fakeIo(true, ["", "not a host!", "10.0.0.9", "", "https://git.lab2.lan/me/site.git"]);
    const r = await run(given, tempProject(), io);
    assert.equal(r.code, 0, r.err.join("\n"));
    assert.equal(r.questions.length, 5);
    assert.match(r.questions[0], /--deploy-vps \(homelab:deployVps\) \[false\]: $/);
    assert.match(r.questions[1], /^Host or IPv4 address of the backend VM\.\n {2}--vm-host \(homelab:vmHost\): $/);
    assert.match(r.questions[3], /--vm-user \(homelab:vmUser\) \[ubuntu\]: $/);
    assert.match(r.err.join("\n"), /--vm-host \(homelab:vmHost\): "not a host!" is not a host name/);
    const config = (YAML.parse(r.written ?? "") as { config: Record<string, unknown> }).config;
    assert.equal(config["homelab:vmHost"], "10.0.0.9");
    assert.equal(config["homelab:vmUser"], undefined);
  });

  it("writes nothing when input ends", async () => {
    const r = await run(args({ "--vm-host": undefined }), tempProject(), fakeIo(true, [""]));
    assert.equal(r.code, 2);
    assert.equal(r.written, undefined);
    assert.match(r.err.join("\n"), /stopped before every answer was given: nothing written/);
  });
});
