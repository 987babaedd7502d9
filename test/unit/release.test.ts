import { describe, it } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "fs";
import * as path from "path";
import { formatImageRef, parseImageRef } from "../../lib/image-ref";
import { parseReleaseFile, readReleaseState, renderReleaseFile, updateReleaseFile } from "../../lib/release";
import { ROLLBACK_TRAILER, RollbackRecord, redact, rollbackChange, rollbackMessage, trailers } from "../../deploy/rollback-commit";
import { repositoryKey } from "../../deploy/git";
import { DIGEST_A, TAG_A, TAG_B, excludedBlock, releaseText } from "../support/fixtures";

const expect = { registry: "127.0.0.1:5000", frontendRepository: "frontend", backendRepository: "backend", tagPattern: "^main-[a-f0-9]{7}-(?<ts>[0-9]{10})$" };

describe("image references", () => {
  it("parses and formats registry/repo:tag@digest", () => {
    const ref = parseImageRef(`192.168.0.40:5000/team/backend:${TAG_A}@${DIGEST_A}`);
    assert.deepEqual(ref, { registry: "192.168.0.40:5000", repository: "team/backend", tag: TAG_A, digest: DIGEST_A });
    assert.equal(formatImageRef(ref), `192.168.0.40:5000/team/backend:${TAG_A}@${DIGEST_A}`);
  });
  for (const bad of ["backend:tag", "127.0.0.1:5000/backend", "127.0.0.1:5000/backend:$(id)", "127.0.0.1:5000/backend:a b", "127.0.0.1:5000/Backend:x"]) {
    it(`rejects ${JSON.stringify(bad)}`, () => {
      assert.throws(() => parseImageRef(bad), /is not of the form registry\/repository:tag/);
    });
  }
});

describe("release file", () => {
  it("reads both images", () => {
    const r = parseReleaseFile(releaseText(TAG_A, TAG_B), "release.yaml", expect);
    assert.deepEqual(r, {
      frontend: { registry: "127.0.0.1:5000", repository: "frontend", tag: TAG_A },
      backend: { registry: "127.0.0.1:5000", repository: "backend", tag: TAG_B },
      excluded: [],
      rollback: undefined,
    });
  });

  it("lets pinned tags win", () => {
    const r = parseReleaseFile(releaseText(TAG_A, TAG_A), "release.yaml", expect, { backendTag: TAG_B });
    assert.equal(r.backend.tag, TAG_B);
    assert.equal(r.frontend.tag, TAG_A);
  });

  it("rejects a tag outside the release pattern, naming file and field", () => {
    assert.throws(() => parseReleaseFile(releaseText(TAG_A, "latest"), "release.yaml", expect), /release.yaml: data.backend: tag "latest" does not match the release pattern/);
  });

  it("rejects an image from another registry", () => {
    assert.throws(() => parseReleaseFile(releaseText(TAG_A, TAG_A, "evil.example:5000"), "release.yaml", expect), /data.frontend is "evil.example:5000\/frontend:.*", expected an image of 127.0.0.1:5000\/frontend/);
  });

  it("rejects a file that is not a release", () => {
    assert.throws(() => parseReleaseFile("just: text\n", "r.yaml", expect), /r.yaml: expected a ConfigMap with a data section/);
    assert.throws(() => parseReleaseFile("data: [\n", "r.yaml", expect), /r.yaml: not valid YAML/);
  });

  it("renders a file that parses back, with one setter comment per image line", () => {
    const release = parseReleaseFile(releaseText(TAG_A, TAG_B), "x", expect);
    const text = renderReleaseFile(release);
    assert.deepEqual(parseReleaseFile(text, "x", expect), release);
    assert.match(text, new RegExp(`frontend: 127.0.0.1:5000/frontend:${TAG_A} # \\{"\\$imagepolicy": "flux-system:frontend"\\}`));
    assert.match(text, new RegExp(`backend: 127.0.0.1:5000/backend:${TAG_B} # \\{"\\$imagepolicy": "flux-system:backend"\\}`));
  });

  it("the committed production release file is well formed", () => {
    const text = fs.readFileSync(path.join(__dirname, "../../flux/clusters/production/release.yaml"), "utf8");
    const r = parseReleaseFile(text, "release.yaml", { ...expect, registry: "192.168.0.40:5000" });
    assert.equal(r.frontend.registry, "192.168.0.40:5000");
    assert.match(text, /# \{"\$imagepolicy": "flux-system:backend"\}/);
  });
});

const BAD = "main-bad0bad-1707350000";

describe("release state in the release file", () => {
  it("reads the excluded tags with when and why", () => {
    const r = parseReleaseFile(releaseText(TAG_A, TAG_B, "127.0.0.1:5000", excludedBlock([{ image: "backend", tag: BAD, reason: "backend gate: 503" }])), "release.yaml", expect);
    assert.deepEqual(r.excluded, [{ image: "backend", tag: BAD, at: "2026-01-01T00:00:00Z", reason: "backend gate: 503" }]);
  });

  it("refuses a release naming an excluded tag, naming the tag, when and why, and how to release it", () => {
    const text = releaseText(TAG_A, BAD, "127.0.0.1:5000", excludedBlock([{ image: "backend", tag: BAD, reason: "backend gate: 503" }]));
    assert.throws(() => parseReleaseFile(text, "release.yaml", { ...expect, tagPattern: ".*" }), /release.yaml: data.backend: tag main-bad0bad-1707350000 is excluded: it was rolled back at 2026-01-01T00:00:00Z \(backend gate: 503\)\. A commit that removes it from data.excluded releases it/);
    // The same tag of the other image is not excluded.
    const other = releaseText(BAD, TAG_B, "127.0.0.1:5000", excludedBlock([{ image: "backend", tag: BAD }]));
    assert.equal(parseReleaseFile(other, "release.yaml", { ...expect, tagPattern: ".*" }).frontend.tag, BAD);
  });

  it("rejects an exclusion of an unknown image", () => {
    const text = releaseText(TAG_A, TAG_B, "127.0.0.1:5000", excludedBlock([{ image: "database", tag: BAD }]));
    assert.throws(() => parseReleaseFile(text, "release.yaml", expect), /release.yaml: data.excluded\[0\].image is "database", expected "frontend" or "backend"/);
  });

  const record: RollbackRecord = {
    event: {
      id: "rb-1",
      at: "2026-11-30T12:00:00.000Z",
      failed: { frontend: TAG_B, backend: BAD },
      restored: { frontend: TAG_A, backend: TAG_A },
      stage: "backend gate",
      reason: "backend-gate-probe: http://vm:3001/api/health answered 503\nsecond line",
      stages: { up: 42 },
    },
    digests: { restored: { frontend: DIGEST_A, backend: DIGEST_A } },
  };

  it("a rollback moves both images back, keeps comments and setter markers, excludes the failed tags and records the event", () => {
    const before = `# header comment\n${releaseText(TAG_B, BAD)}`;
    const after = rollbackChange(record)(before);
    assert.match(after, /^# header comment/);
    assert.match(after, new RegExp(`frontend: 127.0.0.1:5000/frontend:${TAG_A} # \\{"\\$imagepolicy": "flux-system:frontend"\\}`));
    assert.match(after, new RegExp(`backend: 127.0.0.1:5000/backend:${TAG_A} # \\{"\\$imagepolicy": "flux-system:backend"\\}`));
    const state = readReleaseState(after, "x");
    assert.deepEqual(state.tags, { frontend: TAG_A, backend: TAG_A });
    assert.deepEqual(
      state.excluded.map((e) => [e.image, e.tag, e.at, e.reason]),
      // The backend gate blames the backend alone: the frontend moves back but is not excluded.
      [["backend", BAD, record.event.at, "backend gate: backend-gate-probe: http://vm:3001/api/health answered 503"]],
    );
    assert.deepEqual(state.rollback, record.event);
    // The program reads it back, and refuses the failed pair from now on.
    assert.equal(parseReleaseFile(after, "x", expect).backend.tag, TAG_A);
    assert.throws(() => parseReleaseFile(updateReleaseFile(after, { tags: { backend: BAD } }), "x", { ...expect, tagPattern: ".*" }), /is excluded/);
  });

  it("a commit that removes an exclusion releases the tag; an exclusion is listed once", () => {
    let text = rollbackChange({ event: { ...record.event, stage: "update" } })(releaseText(TAG_B, BAD));
    text = updateReleaseFile(text, { exclude: [{ image: "backend", tag: BAD, at: "later", reason: "again" }] });
    assert.equal(readReleaseState(text, "x").excluded.filter((e) => e.tag === BAD).length, 1);
    text = updateReleaseFile(text, { release: [{ image: "backend", tag: BAD }, { image: "frontend", tag: TAG_B }], tags: { backend: BAD } });
    assert.deepEqual(readReleaseState(text, "x").excluded, []);
    assert.doesNotMatch(text, /excluded:/);
    assert.equal(parseReleaseFile(text, "x", { ...expect, tagPattern: ".*" }).backend.tag, BAD);
  });

  it("the rollback commit message names the stage, the reason, both pairs with digests, the time and a trailer", () => {
    const msg = rollbackMessage(record);
    assert.equal(msg.split("\n")[0], `Roll back to frontend ${TAG_A}, backend ${TAG_A}`);
    assert.match(msg, new RegExp(`The backend gate failed for frontend ${TAG_B}, backend ${BAD}`));
    assert.match(msg, /Reason:\n {2}backend-gate-probe: http:\/\/vm:3001\/api\/health answered 503\n {2}second line/);
    assert.match(msg, new RegExp(`Restored: frontend ${TAG_A}@${DIGEST_A}, backend ${TAG_A}@${DIGEST_A}`));
    assert.match(msg, new RegExp(`Excluded: backend ${BAD}\n`));
    assert.match(rollbackMessage({ event: { ...record.event, stage: "update" } }), new RegExp(`Excluded: frontend ${TAG_B}, backend ${BAD}\n`), "an unknown stage blames both");
    assert.match(msg, /At: {7}2026-11-30T12:00:00.000Z/);
    assert.deepEqual(trailers(msg), { [ROLLBACK_TRAILER]: "rb-1", "Homelab-Failed-Stage": "backend gate" });
  });

  it("redacts secret values, and the values inside a secret JSON object, from a reason", () => {
    const env = JSON.stringify({ DATABASE_URL: "postgres://app:db-secret-456@db/app", TOKEN: "tok-987654" });
    const text = "compose failed: postgres://app:db-secret-456@db/app refused; TOKEN=tok-987654; password registry-pass-123";
    assert.equal(redact(text, [env, "registry-pass-123", "ab"]), "compose failed: [secret] refused; TOKEN=[secret]; password [secret]");
    // Ports and flags inside the environment object are left readable.
    assert.equal(redact("http://127.0.0.1:3001/api/health", [JSON.stringify({ PORT: "3001", DEBUG: "true", KEY: "k-123456" })]), "http://127.0.0.1:3001/api/health");
  });

  it("compares git URLs by the repository they name", () => {
    assert.equal(repositoryKey("ssh://git@github.com/me/homelab.git"), repositoryKey("git@github.com:me/homelab"));
    assert.equal(repositoryKey("ssh://git@127.0.0.1:2222/srv/git/website.git"), repositoryKey("ssh://homelab-git@127.0.0.1:2222/srv/git/website"));
    assert.notEqual(repositoryKey("git@github.com:me/homelab.git"), repositoryKey("git@github.com:me/other.git"));
  });
});

