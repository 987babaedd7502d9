import { after, before, describe, it } from "node:test";
import * as assert from "node:assert/strict";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { parse } from "yaml";
import { ACTIONLINT_CONFIG, ensureActionlint, workflowFiles } from "../../scripts/actionlint";

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "homelab-actionlint-"));
let actionlint: string;

function lint(files: string[]): { status: number | null; output: string } {
  const r = spawnSync(actionlint, ["-config-file", ACTIONLINT_CONFIG, "-no-color", ...files], { encoding: "utf8" });
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

function workflow(name: string): any {
  return parse(fs.readFileSync(path.join(__dirname, "../../.github/workflows", name), "utf8"));
}

// Building actionlint the first time takes a while; afterwards it comes from the cache.
before(async () => {
  actionlint = await ensureActionlint();
}, { timeout: 600_000 });

after(() => fs.rmSync(dir, { recursive: true, force: true }));

describe("GitHub Actions workflows", () => {
  it("pass actionlint", () => {
    const files = workflowFiles();
    assert.deepEqual(files.map((f) => path.basename(f)), ["deploy.yml", "drift.yml", "preview.yml"]);
    const r = lint(files);
    assert.equal(r.output, "");
    assert.equal(r.status, 0);
  });

  it("a broken workflow fails actionlint, so the check can fail", () => {
    const file = path.join(dir, ".github", "workflows", "broken.yml");
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(
      file,
      [
        "on: pull_request",
        "jobs:",
        "  build:",
        "    runs-on: ubuntu-latest",
        "    needs: [missing-job]",
        "    steps:",
        "      - uses: actions/checkout@v4",
        "      - run: echo ${{ githb.sha }}",
        "      - run: echo ${{ steps.nothing.outputs.x }}",
        "",
      ].join("\n"),
    );
    const r = lint([file]);
    assert.equal(r.status, 1, r.output);
    assert.match(r.output, /missing-job/);
    assert.match(r.output, /undefined variable "githb"/);
  });

  const pkg = JSON.parse(fs.readFileSync(path.join(__dirname, "../../package.json"), "utf8")) as { dependencies: Record<string, string> };
  type Step = { uses?: string; run?: string; with?: Record<string, unknown>; env?: Record<string, string> };
  const steps = (w: any, job: string): Step[] => w.jobs[job].steps as Step[];
  const pulumiStep = (w: any, job: string): Step => {
    const found = steps(w, job).filter((s) => s.uses?.startsWith("pulumi/actions@"));
    assert.equal(found.length, 1);
    return found[0];
  };

  it("use each action at its current major (Node 24 runtimes) and no toolchain build", () => {
    const current: Record<string, string> = { "actions/checkout": "v6", "actions/setup-node": "v6", "pulumi/actions": "v7" };
    for (const name of workflowFiles().map((f) => path.basename(f))) {
      const w = workflow(name);
      for (const job of Object.keys(w.jobs)) {
        for (const s of steps(w, job)) {
          if (s.uses) {
            const [action, version] = s.uses.split("@");
            assert.equal(version, current[action], `${name}: ${s.uses}`);
          }
          assert.doesNotMatch(s.run ?? "", /toolchain|go build|setup-go/, `${name}: ${s.run}`);
          if (s.uses === "actions/setup-node@v6") {
            assert.equal(s.with?.["node-version"], 24);
          }
        }
      }
    }
  });

  it("install the Pulumi CLI of the SDK's release", () => {
    for (const [name, job] of [["preview.yml", "preview"], ["deploy.yml", "deploy"], ["drift.yml", "drift"]]) {
      assert.equal(pulumiStep(workflow(name), job).with?.["pulumi-version"], pkg.dependencies["@pulumi/pulumi"], name);
    }
  });

  it("preview runs on pull requests with the policy pack, the diff and one comment kept up to date", () => {
    const w = workflow("preview.yml");
    assert.ok("pull_request" in w.on);
    assert.deepEqual(w.permissions, { contents: "read" });
    assert.match(w.concurrency.group, /github\.event\.pull_request\.number/);
    // Only for the repository's own branches, once the check passed, and only it may comment.
    const job = w.jobs.preview;
    assert.equal(job.if, "github.event.pull_request.head.repo.full_name == github.repository");
    assert.equal(job.needs, "check");
    assert.deepEqual(job.permissions, { contents: "read", "pull-requests": "write" });
    // A branch's code runs with the preview environment's own credentials, never production's.
    assert.equal(job.environment, "preview");
    assert.ok(!steps(w, "preview").some((s) => s.run === "npm run check"), "the check job ran it");
    const p = pulumiStep(w, "preview");
    assert.deepEqual(
      { command: p.with?.command, stack: p.with?.["stack-name"], policy: p.with?.policyPacks, diff: p.with?.diff, comment: p.with?.["comment-on-pr"], edit: p.with?.["edit-pr-comment"] },
      { command: "preview", stack: "production", policy: "policy", diff: true, comment: true, edit: true },
    );
    assert.equal(p.env?.PULUMI_BACKEND_URL, "${{ secrets.PULUMI_BACKEND_URL }}");
    assert.equal(p.env?.PULUMI_ACCESS_TOKEN, "${{ secrets.PULUMI_ACCESS_TOKEN }}");
    assert.equal(p.env?.PULUMI_CONFIG_PASSPHRASE, "${{ secrets.PULUMI_CONFIG_PASSPHRASE }}");
  });

  it("check runs on every pull request, forks' too: no condition, no secrets, on a GitHub-hosted runner", () => {
    const w = workflow("preview.yml");
    assert.deepEqual(Object.keys(w.jobs), ["check", "preview"]);
    const job = w.jobs.check;
    assert.equal(job.if, undefined);
    assert.equal(job.needs, undefined);
    assert.equal(job.permissions, undefined, "the workflow's read-only contents");
    assert.equal(job["runs-on"], "ubuntu-latest");
    assert.deepEqual(
      steps(w, "check").map((s) => s.uses ?? s.run),
      ["actions/checkout@v6", "actions/setup-node@v6", "npm ci", "npm run check"],
    );
    assert.doesNotMatch(JSON.stringify(job), /secrets\./);
  });

  it("deploy is opt-in, gated by the production environment, never cancelled and on the homelab runner", () => {
    const w = workflow("deploy.yml");
    assert.deepEqual(w.on.push.branches, ["master"]);
    assert.ok("workflow_dispatch" in w.on);
    assert.deepEqual(w.concurrency, { group: "deploy-production", "cancel-in-progress": false });
    const job = w.jobs.deploy;
    // It pushes rollback commits, from a checkout of the branch itself.
    assert.deepEqual(w.permissions, { contents: "write" });
    const checkout = steps(w, "deploy").find((s) => s.uses?.startsWith("actions/checkout@"));
    assert.deepEqual(checkout?.with, { ref: "master", "fetch-depth": 0 });
    assert.equal(job.if, "vars.HOMELAB_DEPLOY_ENABLED == 'true'");
    assert.equal(job.environment, "production");
    assert.deepEqual(job["runs-on"], ["self-hosted", "homelab"]);
    // The action only installs the CLI; the guarded deploy runs it.
    assert.equal(pulumiStep(w, "deploy").with?.command, undefined);
    const deployStep = steps(w, "deploy").find((s) => s.run === "npm run deploy -- --stack production");
    assert.ok(deployStep);
    assert.equal(deployStep.env?.PULUMI_CONFIG_PASSPHRASE, "${{ secrets.PULUMI_CONFIG_PASSPHRASE }}");
  });

  it("drift runs on a schedule and fails when a refreshed preview has changes", () => {
    const w = workflow("drift.yml");
    assert.ok(Array.isArray(w.on.schedule) && w.on.schedule.length === 1);
    assert.deepEqual(w.permissions, { contents: "read" });
    assert.equal(w.jobs.drift.environment, "production", "master's runs alone get production's secrets");
    assert.equal(workflow("deploy.yml").jobs.deploy.environment, "production");
    const p = pulumiStep(w, "drift");
    assert.deepEqual(
      { command: p.with?.command, refresh: p.with?.refresh, expect: p.with?.["expect-no-changes"], policy: p.with?.policyPacks },
      { command: "preview", refresh: true, expect: true, policy: "policy" },
    );
  });
});
