import { after, before, describe, it } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import { DIGEST_A, DIGEST_B, SECRET_KEYS, TAG_A, TAG_B, releaseText, validConfig } from "../support/fixtures";
import { Recorder, installMocks, settle, valueOf } from "../support/mocks";
import { waitingLine } from "../../stacks/first-release";

/*
 * A new homelab's release file names images the registry does not hold yet: the stack installs
 * what needs no image and promotes nothing, and the first real release later only adds to it.
 */
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "homelab-first-"));
// One config for both runs: its made-up keys differ from call to call.
const CONFIG = validConfig();
const MISSING = [`127.0.0.1:5000/frontend:${TAG_A}`, `127.0.0.1:5000/backend:${TAG_B}`];

/** Every resource the stack registers, by URN, for one resolution of the release's images. */
async function registered(waiting: boolean): Promise<{ rec: Recorder; outputs: import("../../stacks/homelab").HomelabOutputs }> {
  const rec = installMocks();
  pulumi.runtime.setAllConfig(CONFIG, SECRET_KEYS);
  const { loadConfig } = await import("../../stacks/config");
  const { homelabStack } = await import("../../stacks/homelab");
  const outputs = homelabStack(
    loadConfig(dir).homelab!,
    waiting ? { kind: "missing", images: MISSING } : { kind: "resolved", digests: { frontend: DIGEST_A, backend: DIGEST_B } },
  );
  await settle(rec);
  return { rec, outputs };
}

let waiting: Awaited<ReturnType<typeof registered>>;
let full: Awaited<ReturnType<typeof registered>>;

before(async () => {
  fs.mkdirSync(path.join(dir, "flux/clusters/production"), { recursive: true });
  fs.writeFileSync(path.join(dir, "flux/clusters/production/release.yaml"), releaseText(TAG_A, TAG_B));
  waiting = await registered(true);
  full = await registered(false);
});

after(() => fs.rmSync(dir, { recursive: true, force: true }));

describe("a stack whose release names no image yet", () => {
  it("installs Flux, its sync, image automation, the VM check and the namespace", () => {
    const types = new Set(waiting.rec.resources.map((r) => r.type));
    for (const t of ["homelab:flux:FluxBootstrap", "homelab:flux:ImageAutomation", "homelab:host:HostCheck", "kubernetes:core/v1:Namespace"]) {
      assert.ok(types.has(t), `${t} is registered; registered: ${[...types].join(", ")}`);
    }
    assert.ok(waiting.rec.ofType("kubernetes:core/v1:Secret").some((r) => r.name === "frontend-pull-secret"), "the pods' pull Secret is ready for the first release");
  });

  it("deploys no workload, runs no gate and records no release", () => {
    for (const t of ["kubernetes:apps/v1:Deployment", "homelab:host:ComposeHost", "homelab:release:HealthGate", "homelab:release:ReleaseRecord", "kubernetes:networking.k8s.io/v1:Ingress"]) {
      assert.deepEqual(waiting.rec.ofType(t).map((r) => r.name), [], `${t} waits for the first image`);
    }
    assert.equal(waiting.outputs.release, undefined);
    assert.equal(waiting.outputs.gates, undefined);
  });

  it("names the images it waits for in an output and in one line", async () => {
    assert.deepEqual(await valueOf(waiting.outputs.waitingForImages!), MISSING);
    assert.equal(full.outputs.waitingForImages, undefined, "a stack with both images waits for nothing");
    const line = waitingLine(MISSING);
    assert.equal(line.split("\n").length, 1);
    for (const image of MISSING) {
      assert.ok(line.includes(image), line);
    }
  });

  it("the first release adds resources and changes none of those already installed", () => {
    const fullUrns = new Map(full.rec.resources.map((r) => [r.urn, r]));
    for (const r of waiting.rec.resources) {
      const same = fullUrns.get(r.urn);
      assert.ok(same, `${r.urn} is registered by the full stack too (a new URN would replace it)`);
      assert.equal(same.parent, r.parent, `${r.urn} keeps its parent`);
      // The VM check runs again when the first release arrives (its trigger names the release).
      if (!r.urn.includes("HostCheck")) {
        assert.deepEqual(same.inputs, r.inputs, `${r.urn} keeps its inputs`);
      }
    }
    assert.ok(full.rec.resources.length > waiting.rec.resources.length);
  });
});
