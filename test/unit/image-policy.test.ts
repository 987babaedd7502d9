import { describe, it } from "node:test";
import * as assert from "node:assert/strict";
import { checkTag } from "../../lib/image-ref";
import { ConfigError, DEFAULT_TAG_PATTERN, parseConfig } from "../../lib/config";
import { TIMESTAMP_EXTRACT, selectTag, timestampGroupProblem } from "../../lib/image-policy";
import { SECRET_KEYS, validConfig } from "../support/fixtures";
import { installMocks, settle, valueOf } from "../support/mocks";

const isSecret = (k: string): boolean => SECRET_KEYS.includes(k);
/** Flux's own default exclusion, which the component keeps. */
const SIG = "^.*\\.sig$";

function problems(overrides: Record<string, string>): string[] {
  try {
    parseConfig(validConfig(overrides), isSecret);
  } catch (e) {
    assert.ok(e instanceof ConfigError, `expected ConfigError, got ${String(e)}`);
    return [...e.problems];
  }
  return [];
}

describe("the tag a numerical ImagePolicy picks", () => {
  it("is the newest build, even when its commit hash sorts lowest", () => {
    assert.equal(selectTag(["main-fff0000-1700000000", "main-0a1b2c3-1800000000"], DEFAULT_TAG_PATTERN, []), "main-0a1b2c3-1800000000");
    assert.equal(selectTag(["main-0a1b2c3-1800000000", "main-fff0000-1700000000"], DEFAULT_TAG_PATTERN, []), "main-0a1b2c3-1800000000");
  });

  it("skips the tags an exclusion regex matches, picking the newest build left", () => {
    const tags = ["main-fff0000-1700000000", "main-0a1b2c3-1800000000", "main-1234567-1750000000", "main-0a1b2c3-1800000000.sig"];
    assert.equal(selectTag(tags, DEFAULT_TAG_PATTERN, [SIG, "^main-0a1b2c3-1800000000$"]), "main-1234567-1750000000");
    assert.equal(selectTag(tags, DEFAULT_TAG_PATTERN, [SIG, "^main-0a1b2c3-1800000000$", "^main-1234567-1750000000$", "^main-fff0000-1700000000$"]), undefined);
  });

  it("ignores tags the pattern does not match", () => {
    const tags = ["main-fff0000-1700000000", "latest", "main-0A1B2C3-1900000000", "main-0a1b2c3-19000000000", "dev-0a1b2c3-1900000000", "main-0a1b2c3-190000000"];
    assert.equal(selectTag(tags, DEFAULT_TAG_PATTERN, [SIG]), "main-fff0000-1700000000");
    assert.equal(selectTag(["latest", "v1.2.3"], DEFAULT_TAG_PATTERN, [SIG]), undefined);
  });

  it("orders the extracted values as numbers, not as text", () => {
    assert.equal(selectTag(["build-99", "build-100", "build-7"], "^build-(?<ts>[0-9]+)$", []), "build-100");
  });

  it("counts tags extracting the same value once, the later one, as the controller's map does", () => {
    assert.equal(selectTag(["main-aaaaaaa-1800000000", "main-bbbbbbb-1800000000", "main-ccccccc-1700000000"], DEFAULT_TAG_PATTERN, []), "main-bbbbbbb-1800000000");
  });

  it("fails, as the controller does, on a value that is not a number", () => {
    assert.throws(() => selectTag(["main-x", "main-1"], "^main-(?<ts>.*)$", []), /^Error: failed to parse invalid numeric value 'x'$/);
    // A tag where the group takes no part extracts "".
    assert.throws(() => selectTag(["main-"], "^main-(?<ts>[0-9]+)?$", []), /invalid numeric value ''/);
  });
});

describe("the timestamp group of a tag pattern", () => {
  it("is there in the default, which the ImagePolicy extracts as $ts", () => {
    assert.equal(DEFAULT_TAG_PATTERN, "^main-[a-f0-9]{7}-(?<ts>[0-9]{10})$");
    assert.equal(timestampGroupProblem(DEFAULT_TAG_PATTERN), undefined);
    assert.equal(TIMESTAMP_EXTRACT, "$ts");
  });

  it("is found as a group, not as text", () => {
    for (const pattern of ["^main-[a-f0-9]{7}-[0-9]{10}$", "^main-[a-f0-9]{7}-(?<time>[0-9]{10})$", "^main-(?<tss>[0-9]+)$", "^main-[(?<ts>)]+$", "^main-\\(?<ts>[0-9]+\\)$"]) {
      assert.match(timestampGroupProblem(pattern) ?? "", /^has no named group \(\?<ts>…\)/, pattern);
    }
    assert.equal(timestampGroupProblem("^(?<sha>[a-f0-9]{7})-(?<ts>[0-9]+)$"), undefined);
    assert.match(timestampGroupProblem("^main-(?P<ts>[0-9]+)$") ?? "", /^is not a valid regular expression \(/);
  });

  it("keeps release tag checks working with the group", () => {
    assert.doesNotThrow(() => checkTag("pin", "main-0a1b2c3-1800000000", DEFAULT_TAG_PATTERN));
    assert.throws(() => checkTag("pin", "latest", DEFAULT_TAG_PATTERN), /^Error: pin: tag "latest" does not match the release pattern \^main-\[a-f0-9\]\{7\}-\(\?<ts>\[0-9\]\{10\}\)\$$/);
  });
});

describe("homelab:tagPattern", () => {
  it("defaults to the pattern with the timestamp group, and takes pins that match it", () => {
    const s = parseConfig(validConfig({ "homelab:frontendTag": "main-0a1b2c3-1800000000" }), isSecret).homelab!.settings;
    assert.equal(s.tagPattern, DEFAULT_TAG_PATTERN);
    assert.equal(s.pins.frontendTag, "main-0a1b2c3-1800000000");
  });

  it("refuses a pattern without the group, naming the key and the value, along with every other problem", () => {
    const found = problems({ "homelab:tagPattern": "^main-[a-f0-9]{7}-[0-9]{10}$", "homelab:vmPort": "0" });
    assert.equal(found.length, 2, found.join("\n"));
    assert.equal(
      found[0],
      'homelab:tagPattern: "^main-[a-f0-9]{7}-[0-9]{10}$" has no named group (?<ts>…) around the tag\'s unix time, which image automation orders the tags by (e.g. ^main-[a-f0-9]{7}-(?<ts>[0-9]{10})$)',
    );
    assert.match(found[1], /^homelab:vmPort: "0"/);
  });

  it("refuses Go's (?P<ts>…) spelling, which JavaScript cannot compile, saying what to write", () => {
    assert.deepEqual(problems({ "homelab:tagPattern": "^main-[a-f0-9]{7}-(?P<ts>[0-9]{10})$" }), [
      'homelab:tagPattern: "^main-[a-f0-9]{7}-(?P<ts>[0-9]{10})$" uses Go\'s old (?P<name>…) group, which JavaScript refuses: write (?<name>…), which Flux reads as well',
    ]);
  });

  it("takes another pattern with the group", () => {
    const s = parseConfig(validConfig({ "homelab:tagPattern": "^release-(?<ts>[0-9]+)$", "homelab:backendTag": "release-42" }), isSecret).homelab!.settings;
    assert.equal(s.tagPattern, "^release-(?<ts>[0-9]+)$");
    assert.equal(s.pins.backendTag, "release-42");
  });
});

describe("ImageAutomation's ImagePolicies", () => {
  it("extract $ts and order it numerically, so Flux's pick over the registered objects is the newest build", async () => {
    const rec = installMocks();
    const { ImageAutomation, exclusionPattern } = await import("../../components/image-automation");
    const automation = new ImageAutomation("ia", {
      registry: "127.0.0.1:5000",
      username: "flux",
      password: "pw",
      images: [
        { name: "frontend", repository: "frontend" },
        { name: "backend", repository: "backend", excludedTags: ["main-0a1b2c3-1800000000"] },
      ],
      tagPattern: DEFAULT_TAG_PATTERN,
      gitRepositoryName: "flux-system",
      author: { name: "fluxcdbot", email: "fluxcdbot@users.noreply.github.com" },
    });
    await valueOf(automation.policyNames);
    await settle(rec);

    const policies = rec.ofType("kubernetes:image.toolkit.fluxcd.io/v1:ImagePolicy");
    assert.deepEqual(policies.map((p) => p.name).sort(), ["ia-backend-policy", "ia-frontend-policy"]);
    for (const p of policies) {
      const spec = p.inputs.spec as { filterTags: unknown; policy: unknown };
      assert.deepEqual(spec.filterTags, { pattern: "^main-[a-f0-9]{7}-(?<ts>[0-9]{10})$", extract: "$ts" });
      assert.deepEqual(spec.policy, { numerical: { order: "asc" } });
    }

    // What Flux picks, from the objects as registered: each repository's exclusions, then its policy.
    const tags = ["main-fff0000-1700000000", "main-0a1b2c3-1800000000", "main-0a1b2c3-1800000000.sig", "main-1234567-1750000000", "latest"];
    const pick = (image: string): string | undefined => {
      const repo = rec.byName(`ia-${image}-repository`).inputs.spec as { exclusionList: string[] };
      const policy = rec.byName(`ia-${image}-policy`).inputs.spec as { filterTags: { pattern: string } };
      return selectTag(tags, policy.filterTags.pattern, repo.exclusionList);
    };
    assert.equal(pick("frontend"), "main-0a1b2c3-1800000000");
    assert.equal(pick("backend"), "main-1234567-1750000000", "the rolled-back build is never picked again");
    assert.equal(exclusionPattern("main-0a1b2c3-1800000000"), "^main-0a1b2c3-1800000000$");
  });

  it("refuses a pattern without the timestamp group", async () => {
    installMocks();
    const { ImageAutomation } = await import("../../components/image-automation");
    assert.throws(
      () =>
        new ImageAutomation("bad", {
          registry: "127.0.0.1:5000",
          username: "flux",
          password: "pw",
          images: [{ name: "frontend", repository: "frontend" }],
          tagPattern: "^main-[a-f0-9]{7}-[0-9]{10}$",
          gitRepositoryName: "flux-system",
          author: { name: "fluxcdbot", email: "fluxcdbot@users.noreply.github.com" },
        }),
      /ImageAutomation: tagPattern "\^main-\[a-f0-9\]\{7\}-\[0-9\]\{10\}\$" has no named group \(\?<ts>…\)/,
    );
  });
});
