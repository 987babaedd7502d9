import { after, describe, it } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { readReleaseFileText } from "../../lib/release-file";
import { releaseText } from "../support/fixtures";

/*
 * A hostile commit can make the release file a symbolic link to any file of the machine that
 * deploys; its content must never be read (a parse error would quote it into the CI log).
 */
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "homelab-release-file-"));
const repo = path.join(dir, "repo");
const SECRET = "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
const FILE = "flux/clusters/production/release.yaml";
fs.mkdirSync(path.join(repo, path.dirname(FILE)), { recursive: true });
fs.writeFileSync(path.join(dir, "credentials"), `${SECRET}\n`);
after(() => fs.rmSync(dir, { recursive: true, force: true }));

function place(make: (target: string) => void): void {
  const target = path.join(repo, FILE);
  fs.rmSync(target, { recursive: true, force: true });
  make(target);
}

describe("reading the release file", () => {
  it("reads a regular file of the repository", () => {
    place((t) => fs.writeFileSync(t, releaseText()));
    assert.equal(readReleaseFileText(repo, FILE), releaseText());
  });

  it("refuses a symbolic link, naming the key and the path and never quoting the target", () => {
    place((t) => fs.symlinkSync(path.join(dir, "credentials"), t));
    assert.throws(() => readReleaseFileText(repo, FILE), (e: Error) => {
      assert.equal(e.message, `homelab:releaseFile: "${FILE}" goes through the symbolic link ${FILE}: the release file must be a regular file; its content is not read`);
      assert.ok(!e.message.includes("wJalr"));
      return true;
    });
  });

  it("refuses a path through a linked directory, a link outside the repository, or something that is not a file", () => {
    const linked = path.join(repo, "linked");
    fs.symlinkSync(dir, linked);
    fs.copyFileSync(path.join(dir, "credentials"), path.join(dir, "release.yaml"));
    assert.throws(() => readReleaseFileText(repo, "linked/release.yaml"), /goes through the symbolic link linked:/);
    // A path the stack's config sets outside the repository is read, but never through a link.
    assert.equal(readReleaseFileText(repo, "../credentials"), `${SECRET}\n`);
    fs.symlinkSync(path.join(dir, "credentials"), path.join(dir, "linked-credentials"));
    assert.throws(() => readReleaseFileText(repo, path.join(dir, "linked-credentials")), /goes through the symbolic link \/.*linked-credentials: the release file must be a regular file/);
    place((t) => fs.mkdirSync(t));
    assert.throws(() => readReleaseFileText(repo, FILE), /is not a regular file/);
    assert.throws(() => readReleaseFileText(repo, "flux/missing.yaml"), /"flux\/missing\.yaml" does not exist \(no flux\/missing\.yaml\)/);
  });
});
