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
    assert.deepEqual(files.map((f) => path.basename(f)), ["deploy.yml", "preview.yml"]);
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

  it("preview runs on pull requests with the minimal permissions and one run per pull request", () => {
    const w = workflow("preview.yml");
    assert.ok("pull_request" in w.on);
    assert.deepEqual(w.permissions, { contents: "read", "pull-requests": "write" });
    assert.match(w.concurrency.group, /github\.event\.pull_request\.number/);
    const run = (w.jobs.preview.steps as { run?: string }[]).map((s) => s.run ?? "").join("\n");
    assert.match(run, /pulumi preview --stack production --policy-pack \.\/policy --diff/);
    assert.match(run, /npm run check/);
    assert.match(run, /--print-env/);
    const env = (w.jobs.preview.steps as { env?: Record<string, string> }[]).find((s) => s.env?.PULUMI_CONFIG_PASSPHRASE)?.env;
    assert.equal(env?.PULUMI_BACKEND_URL, "${{ secrets.PULUMI_BACKEND_URL }}");
    assert.equal(env?.PULUMI_CONFIG_PASSPHRASE, "${{ secrets.PULUMI_CONFIG_PASSPHRASE }}");
  });

  it("deploy is opt-in, gated by the production environment, never cancelled and on the homelab runner", () => {
    const w = workflow("deploy.yml");
    assert.deepEqual(w.on.push.branches, ["master"]);
    assert.ok("workflow_dispatch" in w.on);
    assert.deepEqual(w.concurrency, { group: "deploy-production", "cancel-in-progress": false });
    const job = w.jobs.deploy;
    assert.equal(job.if, "vars.HOMELAB_DEPLOY_ENABLED == 'true'");
    assert.equal(job.environment, "production");
    assert.deepEqual(job["runs-on"], ["self-hosted", "homelab"]);
    assert.ok((job.steps as { run?: string }[]).some((s) => s.run === "npm run deploy -- --stack production"));
  });
});
