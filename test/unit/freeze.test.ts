import { after, before, describe, it } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import { FREEZE_TRAILER, freezeMessage } from "../../deploy/freeze";
import { parseArgs } from "../../deploy/cli";
import { trailers } from "../../deploy/rollback-commit";
import { Freeze, frozenRefusal, parseFreeze } from "../../lib/freeze";
import { parseReleaseFile, readReleaseState, updateReleaseFile } from "../../lib/release";
import { DIGEST_A, DIGEST_B, SECRET_KEYS, TAG_A, TAG_B, releaseText, validConfig } from "../support/fixtures";
import { Recorder, installMocks, settle, valueOf } from "../support/mocks";

const FREEZE: Freeze = { by: "Ada <ada@example.com>", at: "2026-12-07T09:00:00.000Z", reason: "conference demo on Friday" };
const EXPECT = { registry: "127.0.0.1:5000", frontendRepository: "frontend", backendRepository: "backend", tagPattern: "^main-[a-f0-9]{7}-(?<ts>[0-9]{10})$" };

describe("a freeze in the release file", () => {
  it("is recorded and lifted by commits that keep the setter comments image automation follows", () => {
    const frozen = updateReleaseFile(releaseText(TAG_A, TAG_B), { frozen: FREEZE });
    assert.deepEqual(readReleaseState(frozen, "release.yaml").frozen, FREEZE);
    assert.deepEqual(parseReleaseFile(frozen, "release.yaml", EXPECT).frozen, FREEZE);
    assert.match(frozen, /\{"\$imagepolicy": "flux-system:frontend"\}/);
    const lifted = updateReleaseFile(frozen, { frozen: null });
    assert.equal(readReleaseState(lifted, "release.yaml").frozen, undefined);
    assert.equal(lifted, releaseText(TAG_A, TAG_B));
  });

  it("refuses a freeze that is not who, when and why in plain text, naming the field", () => {
    assert.throws(() => parseFreeze("by: ada\nat: 2026-12-07T09:00:00Z\n", "release.yaml"), /release\.yaml: data\.frozen needs reason as text/);
    assert.throws(() => parseFreeze(`by: ada\nat: yesterday\nreason: x\n`, "release.yaml"), /data\.frozen at "yesterday" is not a time/);
    assert.throws(() => parseFreeze(`by: "ada\\u001b[2J"\nat: 2026-12-07T09:00:00Z\nreason: x\n`, "release.yaml"), /data\.frozen holds a control character/);
    assert.throws(() => parseFreeze(42, "release.yaml"), /must be a YAML block in a string/);
    assert.equal(parseFreeze(undefined, "release.yaml"), undefined);
  });

  it("lets the running pair be deployed (repairs, rollbacks) and refuses any other pair, naming who, when and why", () => {
    const file = { source: "release.yaml", frontend: TAG_A, backend: TAG_B };
    assert.equal(frozenRefusal(FREEZE, file, { frontend: TAG_A, backend: TAG_B }), undefined);
    assert.equal(frozenRefusal(undefined, file, { frontend: TAG_B, backend: TAG_B }), undefined);
    const refusal = frozenRefusal(FREEZE, file, { frontend: TAG_B, backend: TAG_B });
    assert.match(refusal ?? "", /^releases are frozen by Ada <ada@example\.com> at 2026-12-07T09:00:00\.000Z: "conference demo on Friday"\. release\.yaml names frontend \S+, backend \S+, but the stack runs frontend \S+, backend \S+: a new pair is not deployed until `npm run unfreeze`/);
    assert.match(frozenRefusal(FREEZE, file, undefined) ?? "", /and the stack has promoted nothing yet/);
  });

  it("is committed with a trailer tools read, and npm run freeze needs a reason", () => {
    assert.equal(trailers(freezeMessage({ freeze: FREEZE }))[FREEZE_TRAILER], "frozen");
    assert.match(freezeMessage({ freeze: FREEZE }), /^Freeze releases: conference demo on Friday\n/);
    assert.equal(trailers(freezeMessage({ lifted: FREEZE }))[FREEZE_TRAILER], "lifted");
    assert.throws(() => parseArgs(["freeze", "--stack", "production"], "/repo"), /--reason is required: it goes into the freeze commit/);
    assert.equal(parseArgs(["unfreeze", "--stack", "production"], "/repo").command, "unfreeze");
  });
});

describe("a frozen stack's image automation", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "homelab-freeze-"));
  let rec: Recorder;
  before(async () => {
    fs.mkdirSync(path.join(dir, "flux/clusters/production"), { recursive: true });
    fs.writeFileSync(path.join(dir, "flux/clusters/production/release.yaml"), updateReleaseFile(releaseText(TAG_A, TAG_B), { frozen: FREEZE }));
    rec = installMocks();
    pulumi.runtime.setAllConfig(validConfig(), SECRET_KEYS);
    const { loadConfig } = await import("../../stacks/config");
    const { homelabStack } = await import("../../stacks/homelab");
    const out = homelabStack(loadConfig(dir).homelab!, { kind: "resolved", digests: { frontend: DIGEST_A, backend: DIGEST_B } });
    await valueOf(out.release!);
    await settle(rec);
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("is suspended while frozen, so no release commits pile up", () => {
    assert.equal((rec.byName("image-automation-update").inputs.spec as { suspend?: boolean }).suspend, true);
  });
});
