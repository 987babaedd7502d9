import { after, describe, it } from "node:test";
import * as assert from "node:assert/strict";
import { spawn } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { LocalWorkspace } from "@pulumi/pulumi/automation";
import { CliOptions, parseArgs } from "../../deploy/cli";
import { PulumiNotFound, findOnPath, pulumiNotFound, up } from "../../deploy/engine";
import { POLICY_PACK } from "../../deploy/guarded-deploy";
import { EXIT } from "../../deploy/outcome";
import { STATUS_EXIT } from "../../deploy/status";

const REPO = path.resolve(__dirname, "../..");
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "homelab-cli-"));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

const parse = (...argv: string[]): CliOptions => parseArgs(argv, "/repo");
const refused = (argv: string[], message: RegExp): void => {
  assert.throws(() => parseArgs(argv, "/repo"), { message }, argv.join(" "));
};

describe("the deploy's command line", () => {
  it("takes each option's value after it or after =, and -s for --stack", () => {
    const forms = [
      ["--stack", "production"],
      ["--stack=production"],
      ["-s", "production"],
      ["-sproduction"],
    ];
    for (const argv of forms) {
      assert.equal(parse(...argv).stack, "production", argv.join(" "));
    }
    assert.equal(parse("--stack", "acme/homelab/production").stack, "acme/homelab/production");
    assert.equal(parse("--stack=p", "--cwd=/srv/homelab").workDir, "/srv/homelab");
    assert.equal(parse("--stack", "p", "--cwd", "/srv/homelab").workDir, "/srv/homelab");
  });

  it("gives a deploy its defaults", () => {
    assert.deepEqual(parse("--stack", "production"), {
      command: "deploy",
      stack: "production",
      workDir: "/repo",
      policyPacks: undefined,
      watch: false,
      intervalSeconds: 30,
      checkEverySeconds: 300,
      reason: undefined,
      to: undefined,
      json: false,
      quick: false,
    });
  });

  it("takes a deploy's policy packs (any number, after the program's own), --watch and its timings", () => {
    const o = parse("--stack=production", "--policy-pack", "packs/a", "--policy-pack=/srv/b", "--watch", "--interval=60", "--check-every", "120");
    assert.deepEqual(o.policyPacks, [POLICY_PACK, path.resolve("packs/a"), "/srv/b"]);
    assert.deepEqual([o.watch, o.intervalSeconds, o.checkEverySeconds], [true, 60, 120]);
  });

  it("takes a rollback's reason and pair, in either form", () => {
    const a = parse("rollback", "--stack", "production", "--reason", "checkout page broken", "--to", "main-1a2b3c4-1764500000,main-5d6e7f8-1764500000");
    const b = parse("rollback", "--stack=production", "--reason=checkout page broken", "--to=main-1a2b3c4-1764500000,main-5d6e7f8-1764500000");
    assert.deepEqual(a, b);
    assert.deepEqual([a.command, a.reason, a.to], ["rollback", "checkout page broken", { frontend: "main-1a2b3c4-1764500000", backend: "main-5d6e7f8-1764500000" }]);
    assert.equal(parse("rollback", "-s", "p", "--reason=--force was wrong").reason, "--force was wrong");
  });

  it("takes --html FILE for releases, resolved, and not with --json", () => {
    const o = parse("releases", "--stack", "production", "--html", "out/releases.html");
    assert.equal(o.html, path.resolve("out/releases.html"));
    assert.equal(parse("releases", "--stack", "production").html, undefined);
    assert.throws(() => parse("releases", "--stack", "production", "--html", "r.html", "--json"), /--json and --html: one of them/);
    assert.throws(() => parse("status", "--stack", "production", "--html", "r.html"), /--html/);
  });

  it("takes --json for releases and status", () => {
    for (const command of ["releases", "status"] as const) {
      const o = parse(command, "--stack=production", "--json");
      assert.deepEqual([o.command, o.stack, o.json], [command, "production", true]);
      assert.equal(parse(command, "--stack", "production").json, false);
    }
  });

  it("refuses an unknown option, naming it, with the command's usage", () => {
    refused(["--stack", "p", "--bogus"], /^unknown option "--bogus" \(usage: npm run deploy -- --stack NAME/);
    refused(["--stack=p", "-x"], /^unknown option "-x" \(usage: npm run deploy/);
    refused(["--stack=p", "--constructor"], /^unknown option "--constructor"/);
    refused(["--stack", "p", "--stack-name", "q"], /^unknown option "--stack-name"/);
    refused(["--stack", "p", "extra"], /^unknown argument "extra" \(usage: npm run deploy/);
  });

  it("refuses another command's options", () => {
    refused(["--stack", "p", "--json"], /^unknown option "--json" \(usage: npm run deploy -- /);
    refused(["--stack", "p", "--reason", "x"], /^unknown option "--reason"/);
    refused(["status", "--stack", "p", "--watch"], /^unknown option "--watch" \(usage: npm run status -- /);
    refused(["releases", "--stack", "p", "--policy-pack", "x"], /^unknown option "--policy-pack" \(usage: npm run releases -- /);
    refused(["rollback", "--stack", "p", "--reason", "x", "--json"], /^unknown option "--json" \(usage: npm run rollback -- /);
    refused(["rollback", "--stack", "p", "--reason", "x", "--interval", "5"], /^unknown option "--interval"/);
  });

  it("refuses an option without its value, and a flag with one", () => {
    refused(["--stack"], /^--stack needs a value \(usage: npm run deploy/);
    refused(["-s"], /^-s needs a value \(usage/);
    refused(["--stack", "--watch"], /^--stack needs a value \(write --stack=VALUE for one that begins with "-"\) \(usage/);
    refused(["--stack", "p", "--cwd"], /^--cwd needs a value/);
    refused(["--stack", "p", "--cwd="], /^--cwd needs a value \(usage/);
    refused(["--stack=", "--watch"], /^--stack needs a value/);
    refused(["--stack", "p", "--policy-pack", "--watch"], /^--policy-pack needs a value/);
    refused(["--stack", "p", "--interval"], /^--interval needs a value/);
    refused(["rollback", "--stack", "p", "--reason"], /^--reason needs a value/);
    refused(["rollback", "--stack", "p", "--reason", "x", "--to"], /^--to needs a value/);
    refused(["--stack", "p", "--watch=yes"], /^--watch takes no value \(usage/);
    refused(["status", "--stack", "p", "--json=false"], /^--json takes no value/);
  });

  it("checks the values as before", () => {
    refused([], /^--stack: "" is not a stack name \(usage: npm run deploy/);
    refused(["--stack", "a/b/c/d"], /^--stack: "a\/b\/c\/d" is not a stack name/);
    for (const bad of ["0", "86401", "1.5", "soon"]) {
      refused(["--stack", "p", "--watch", `--interval=${bad}`], new RegExp(`^--interval: "${bad}" is not a number of seconds from 1 to 86400$`));
      refused(["--stack", "p", "--watch", "--check-every", bad], new RegExp(`^--check-every: "${bad}" is not a number of seconds from 1 to 86400$`));
    }
    refused(["rollback", "--stack", "p", "--reason", "x", "--to", "only-one"], /^--to: "only-one" is not FRONTEND_TAG,BACKEND_TAG$/);
    refused(["rollback", "--stack", "p", "--reason", "x", "--to=a,b,c"], /^--to: "a,b,c" is not FRONTEND_TAG,BACKEND_TAG$/);
    refused(["rollback", "--stack", "p"], /^--reason is required: it goes into the rollback commit \(usage: npm run rollback/);
    refused(["rollback", "--stack", "p", "--reason", "   "], /^--reason is required/);
    refused(["rollback", "--stack", "p", "--reason", "a\u0007b"], /^--reason: contains control characters$/);
    refused(["rollback", "--stack", "p", `--reason=${"x".repeat(501)}`], /^--reason: is longer than 500 characters$/);
  });
});

describe("a Pulumi CLI missing from PATH", () => {
  const emptyBin = fs.mkdtempSync(path.join(tmp, "bin-"));
  const message = new PulumiNotFound("pulumi").message;

  it("is said in one line: not found on PATH, what to install, and PATH for a systemd unit", () => {
    assert.doesNotMatch(message, /\n/);
    assert.match(message, /^the Pulumi CLI \(pulumi\) was not found on PATH: /);
    assert.match(message, /3\.276 or newer/);
    assert.match(message, /https:\/\/www\.pulumi\.com\/docs\/install\//);
    assert.match(message, /systemd.*Environment=PATH=/);
  });

  it("is looked for in PATH as a spawn looks", () => {
    const bin = fs.mkdtempSync(path.join(tmp, "bin-"));
    fs.writeFileSync(path.join(bin, "pulumi"), "#!/bin/sh\n", { mode: 0o755 });
    fs.writeFileSync(path.join(bin, "not-executable"), "", { mode: 0o644 });
    fs.mkdirSync(path.join(bin, "a-directory"));
    assert.equal(findOnPath("pulumi", { PATH: `${emptyBin}:${bin}` }), path.join(bin, "pulumi"));
    assert.equal(findOnPath("pulumi", { PATH: emptyBin }), undefined);
    assert.equal(findOnPath("not-executable", { PATH: bin }), undefined);
    assert.equal(findOnPath("a-directory", { PATH: bin }), undefined);
    assert.equal(findOnPath(path.join(bin, "pulumi"), { PATH: emptyBin }), path.join(bin, "pulumi"));
  });

  /** Runs the test's body with PATH set to a directory without pulumi. */
  async function withoutPulumi<T>(body: () => Promise<T>): Promise<T> {
    const saved = process.env.PATH;
    process.env.PATH = emptyBin;
    try {
      return await body();
    } finally {
      process.env.PATH = saved;
    }
  }

  it("stops the engine's run with that line, not spawn's ENOENT", async () => {
    const run = withoutPulumi(() => up({ stack: "production", workDir: tmp, policyPacks: [], onOutput: () => undefined }));
    await assert.rejects(run, (e: unknown) => e instanceof PulumiNotFound && e.message === message);
  });

  it("is recognised in the Automation API's report of it", async () => {
    const err = await withoutPulumi(() => LocalWorkspace.selectStack({ stackName: "production", workDir: tmp }).then(() => undefined, (e: unknown) => e));
    assert.match((err as Error).message, /spawn pulumi ENOENT/);
    assert.equal(pulumiNotFound(err)?.message, message);
    assert.equal(pulumiNotFound(new Error("could not take the deploy lock", { cause: err }))?.message, message);
    assert.equal(pulumiNotFound(new Error("spawn git ENOENT")), undefined);
  });

  /** The deploy's command line as `npm run` starts it, with PATH holding no pulumi. */
  function cli(...argv: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
    return new Promise((resolve, reject) => {
      const child = spawn(process.execPath, ["--import", "tsx", "deploy/cli.ts", ...argv], { cwd: REPO, env: { ...process.env, PATH: emptyBin }, stdio: ["ignore", "pipe", "pipe"] });
      let stdout = "";
      let stderr = "";
      child.stdout.setEncoding("utf8").on("data", (t: string) => (stdout += t));
      child.stderr.setEncoding("utf8").on("data", (t: string) => (stderr += t));
      child.on("error", reject);
      child.on("close", (code) => resolve({ code, stdout, stderr }));
    });
  }

  it("refuses a deploy, a watch and a status before anything starts, in that one line", async () => {
    const [deployRun, watchRun, statusRun] = await Promise.all([
      cli("--stack", "production"),
      cli("--watch", "--stack=production"),
      cli("status", "--stack", "production", "--json"),
    ]);
    for (const [r, code] of [[deployRun, EXIT.refused], [watchRun, EXIT.refused], [statusRun, STATUS_EXIT.unreadable]] as const) {
      assert.equal(r.stderr, `deploy: ${message}\n`);
      assert.equal(r.stdout, "");
      assert.equal(r.code, code);
    }
  });

  it("still says what is wrong with the command line first", async () => {
    const r = await cli("--stack", "production", "--bogus");
    assert.match(r.stderr, /^deploy: unknown option "--bogus" \(usage: npm run deploy -- /);
    assert.equal(r.code, EXIT.refused);
  });
});
