import { describe, it } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "fs";
import * as path from "path";
import { formatImageRef, parseImageRef } from "../../lib/image-ref";
import { parseReleaseFile, renderReleaseFile } from "../../lib/release";
import { DIGEST_A, TAG_A, TAG_B, releaseText } from "../support/fixtures";

const expect = { registry: "127.0.0.1:5000", frontendRepository: "frontend", backendRepository: "backend", tagPattern: "^main-[a-f0-9]{7}-[0-9]{10}$" };

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
