import { describe, it } from "node:test";
import * as assert from "node:assert/strict";
import { COMMIT_MESSAGE_TEMPLATE, exclusionPattern } from "../../components/image-automation";
import { DEFAULT_TAG_PATTERN } from "../../lib/config";
import { renderDockerConfigJson } from "../../lib/dockerconfig";
import { TIMESTAMP_EXTRACT, selectTag } from "../../lib/image-policy";
import { renderReleaseFile } from "../../lib/release";
import {
  DEFAULT_COMMIT_MESSAGE,
  SetterChange,
  applySetters,
  fallbackCommitMessage,
  isSetterCandidate,
  renderCommitMessage,
  setterMarker,
  setterValues,
} from "../../lib/setters";
import {
  PolicyError,
  applyExclusions,
  expandExtract,
  goPatternToJs,
  parseImageName,
  registryCredentials,
  selectLatestTag,
} from "../../sandbox/image-automation";

/*
 * The pure parts of the sandbox's stand-in for Flux's image controllers, pinned by Flux's own
 * documentation and tests (taken as facts):
 * - GUIDE: https://fluxcd.io/flux/guides/image-update/ (fluxcd/website content/en/flux/guides/image-update.md)
 * - IUA:   https://fluxcd.io/flux/components/image/imageupdateautomations/ (image-automation-controller docs/spec/v1)
 * - IP:    https://fluxcd.io/flux/components/image/imagepolicies/ (image-reflector-controller docs/spec/v1)
 * - image-automation-controller internal/update/update_test.go and testdata/setters/{original,expected}
 * - image-reflector-controller internal/policy/{alphabetical,numerical,filter}_test.go
 */

const podinfo = (tag: string) => setterValues([{ namespace: "flux-system", name: "podinfo", latest: { name: "ghcr.io/stefanprodan/podinfo", tag } }]);

describe("setter markers, as the Setters strategy documents them", () => {
  it("rewrites the whole image reference of a `<ns>:<policy>` marker, keeping the marker (GUIDE, Configure image updates)", () => {
    const before = [
      "spec:",
      "  containers:",
      "  - name: podinfod",
      '    image: ghcr.io/stefanprodan/podinfo:5.0.0 # {"$imagepolicy": "flux-system:podinfo"}',
      "",
    ].join("\n");
    const r = applySetters(before, podinfo("5.0.3"));
    // The guide's `git pull && cat … | grep "image:"` after the automation's commit.
    assert.equal(r.text, before.replace("podinfo:5.0.0 #", "podinfo:5.0.3 #"));
    assert.match(r.text, /^ {4}image: ghcr\.io\/stefanprodan\/podinfo:5\.0\.3 # \{"\$imagepolicy": "flux-system:podinfo"\}$/m);
    assert.deepEqual(r.changes, [{ oldValue: "ghcr.io/stefanprodan/podinfo:5.0.0", newValue: "ghcr.io/stefanprodan/podinfo:5.0.3", setter: "flux-system:podinfo" }]);
  });

  it("writes only the tag for `:tag` and only the name for `:name` (GUIDE, HelmRelease example)", () => {
    const before = [
      "apiVersion: helm.toolkit.fluxcd.io/v2beta1",
      "kind: HelmRelease",
      "metadata:",
      "  name: podinfo",
      "  namespace: default",
      "spec:",
      "  values:",
      "    image:",
      '      repository: ghcr.io/stefanprodan/podinfo # {"$imagepolicy": "flux-system:podinfo:name"}',
      '      tag: 5.0.0  # {"$imagepolicy": "flux-system:podinfo:tag"}',
      "",
    ].join("\n");
    const r = applySetters(before, podinfo("5.0.3"));
    assert.equal(r.text, before.replace("tag: 5.0.0  #", "tag: 5.0.3  #"));
    assert.deepEqual(r.changes, [{ oldValue: "5.0.0", newValue: "5.0.3", setter: "flux-system:podinfo:tag" }]);
  });

  // image-automation-controller's TestUpdateWithSetters: its policies, files and expected Result.
  const upstreamPolicies = setterValues([
    { namespace: "automation-ns", name: "policy", latest: { name: "index.repo.fake/updated", tag: "v1.0.1" } },
    { namespace: "automation-ns", name: "unchanged", latest: { name: "image", tag: "v1.0.0" } },
    {
      namespace: "automation-ns",
      name: "policy-with-digest",
      latest: { name: "image", tag: "v1.0.0", digest: "sha256:6745aaad46d795c9836632e1fb62f24b7e7f4c843144da8e47a5465c411a14be" },
    },
  ]);

  it("matches upstream's testdata/setters marked.yaml: the changed policy's line only", () => {
    const original = [
      "---",
      "apiVersion: batch/v1beta1",
      "kind: CronJob",
      "metadata:",
      "  name: foo",
      "  namespace: bar",
      "spec:",
      '  schedule: "*/1 * * * *"',
      "  jobTemplate:",
      "    spec:",
      "      template:",
      "        spec:",
      "          containers:",
      "          - name: c",
      '            image: image:v1.0.0 # {"$imagepolicy": "automation-ns:policy"}',
      "          - name: d",
      '            image: image:v1.0.0 # {"$imagepolicy": "automation-ns:unchanged"}',
      "",
    ].join("\n");
    const expected = original.replace('image: image:v1.0.0 # {"$imagepolicy": "automation-ns:policy"}', 'image: index.repo.fake/updated:v1.0.1 # {"$imagepolicy": "automation-ns:policy"}');
    const r = applySetters(original, upstreamPolicies);
    assert.equal(r.text, expected);
    assert.deepEqual(r.changes, [{ oldValue: "image:v1.0.0", newValue: "index.repo.fake/updated:v1.0.1", setter: "automation-ns:policy" }]);
  });

  it("matches upstream's testdata/setters kustomization.yml: :name, :tag, :digest and a full reference with digest; a block scalar untouched", () => {
    const tail = [
      "# Prove fix for https://github.com/fluxcd/flux2/issues/3284",
      "patches:",
      "  - patch: |",
      "      - op: replace",
      "        path: /spec/template/spec/containers/0/volumeMounts",
      "        value:",
      "          - mountPath: /usr/share/wildfly/wildfly/standalone/configuration/appConfigMaps/WF",
      "            name: wf-config",
      "          - mountPath: /usr/share/wildfly/wildfly/standalone/configuration/appConfigMaps/xxx_config",
      "            name: xxx-config",
      "          - mountPath: /usr/share/wildfly/wildfly/standalone/log",
      "            name: wildfly-standalone-log",
      "    target:",
      "      group: apps",
      "      version: v1",
      "      kind: Deployment",
      "      name: sxxxxdadminservice",
    ];
    const head = ["# This is not intended to be a working kustomization", "apiVersion: kustomize.config.k8s.io/v1beta1", "kind: Kustomization", "resources:", "  - unimportant.yaml", "images:", "  - name: container"];
    const original = [
      ...head,
      '    newName: replaced # {"$imagepolicy": "automation-ns:policy:name"}',
      '    newTag: v1 # {"$imagepolicy": "automation-ns:policy:tag"}',
      '    newDigest: sha256:1234567890abcdef # {"$imagepolicy": "automation-ns:policy-with-digest:digest"}',
      ...tail,
      '      image: image # {"$imagepolicy": "automation-ns:policy-with-digest"}',
      "",
    ].join("\n");
    const expected = [
      ...head,
      '    newName: index.repo.fake/updated # {"$imagepolicy": "automation-ns:policy:name"}',
      '    newTag: v1.0.1 # {"$imagepolicy": "automation-ns:policy:tag"}',
      '    newDigest: sha256:6745aaad46d795c9836632e1fb62f24b7e7f4c843144da8e47a5465c411a14be # {"$imagepolicy": "automation-ns:policy-with-digest:digest"}',
      ...tail,
      '      image: image:v1.0.0@sha256:6745aaad46d795c9836632e1fb62f24b7e7f4c843144da8e47a5465c411a14be # {"$imagepolicy": "automation-ns:policy-with-digest"}',
      "",
    ].join("\n");
    const r = applySetters(original, upstreamPolicies);
    assert.equal(r.text, expected);
    assert.deepEqual(r.changes, [
      { oldValue: "replaced", newValue: "index.repo.fake/updated", setter: "automation-ns:policy:name" },
      { oldValue: "v1", newValue: "v1.0.1", setter: "automation-ns:policy:tag" },
      { oldValue: "sha256:1234567890abcdef", newValue: "sha256:6745aaad46d795c9836632e1fb62f24b7e7f4c843144da8e47a5465c411a14be", setter: "automation-ns:policy-with-digest:digest" },
      { oldValue: "image", newValue: "image:v1.0.0@sha256:6745aaad46d795c9836632e1fb62f24b7e7f4c843144da8e47a5465c411a14be", setter: "automation-ns:policy-with-digest" },
    ]);
  });

  it("reads only YAML files (and `Kustomization`) that carry the quoted token, as upstream's screening reader", () => {
    const marked = 'image: a:1 # {"$imagepolicy": "ns:p"}\n';
    assert.equal(isSetterCandidate("deploy/app.yaml", marked), true);
    assert.equal(isSetterCandidate("app.yml", marked), true);
    assert.equal(isSetterCandidate("overlay/Kustomization", marked), true);
    assert.equal(isSetterCandidate("notes.txt", marked), false);
    assert.equal(isSetterCandidate("chart/values.yaml.tpl", marked), false);
    // upstream's testdata/setters/original/test.yaml holds just "testing.yaml".
    assert.equal(isSetterCandidate("test.yaml", "testing.yaml"), false);
    assert.equal(isSetterCandidate("app.yaml", "image: a:1 # $imagepolicy\n"), false);
  });

  it("takes a marker only as kyaml does: a JSON object of strings with a non-empty $imagepolicy", () => {
    assert.equal(setterMarker(' {"$imagepolicy": "flux-system:podinfo"}'), "flux-system:podinfo");
    assert.equal(setterMarker('# {"$imagepolicy": "flux-system:podinfo:tag"}'), "flux-system:podinfo:tag");
    assert.equal(setterMarker(' {"$imagepolicy": "flux-system:podinfo"} and more'), undefined);
    assert.equal(setterMarker(' {"$imagepolicy": 1}'), undefined);
    assert.equal(setterMarker(' {"$imagepolicy": ""}'), undefined);
    assert.equal(setterMarker(" just a comment"), undefined);
  });

  it("leaves alone markers of unknown policies, other comments, keys and values already current", () => {
    const text = [
      'a: x:1 # {"$imagepolicy": "flux-system:other"}',
      "b: x:1 # a comment",
      'c: ghcr.io/stefanprodan/podinfo:5.0.3 # {"$imagepolicy": "flux-system:podinfo"}',
      'd: |  # {"$imagepolicy": "flux-system:podinfo"}',
      "  block",
      "",
    ].join("\n");
    const r = applySetters(text, podinfo("5.0.3"));
    assert.equal(r.text, text);
    assert.deepEqual(r.changes, []);
  });

  it("keeps a value's quoting, and quotes a plain value that would no longer read as a string", () => {
    const values = setterValues([{ namespace: "ns", name: "p", latest: { name: "reg.example/app", tag: "1800000000" } }]);
    const text = [
      'a: "reg.example/app:1" # {"$imagepolicy": "ns:p"}',
      "b: 'reg.example/app:1' # {\"$imagepolicy\": \"ns:p\"}",
      'c: 5 # {"$imagepolicy": "ns:p:tag"}',
      "",
    ].join("\n");
    const r = applySetters(text, values);
    assert.equal(r.text, [
      'a: "reg.example/app:1800000000" # {"$imagepolicy": "ns:p"}',
      "b: 'reg.example/app:1800000000' # {\"$imagepolicy\": \"ns:p\"}",
      'c: "1800000000" # {"$imagepolicy": "ns:p:tag"}',
      "",
    ].join("\n"));
    assert.deepEqual(r.changes.map((c) => c.oldValue), ["reg.example/app:1", "reg.example/app:1", "5"]);
  });

  it("skips a file that does not parse, saying so, as upstream records a problem file", () => {
    const text = 'a: [x # {"$imagepolicy": "flux-system:podinfo"}\n';
    const r = applySetters(text, podinfo("5.0.3"));
    assert.equal(r.text, text);
    assert.deepEqual(r.changes, []);
    assert.match(r.problem ?? "", /^not valid YAML/);
  });

  it("defines no :digest setter without a digest, so such a marker is left alone", () => {
    assert.deepEqual([...podinfo("5.0.3").keys()], ["flux-system:podinfo", "flux-system:podinfo:tag", "flux-system:podinfo:name"]);
    const text = 'digest: sha256:abc # {"$imagepolicy": "flux-system:podinfo:digest"}\n';
    assert.equal(applySetters(text, podinfo("5.0.3")).text, text);
  });

  it("changes only the two image lines of the program's release file, markers intact", () => {
    const release = (f: string, b: string) =>
      renderReleaseFile({ frontend: { registry: "127.0.0.1:5000", repository: "frontend", tag: f }, backend: { registry: "127.0.0.1:5000", repository: "backend", tag: b } });
    const before = release("main-0000000-0000000000", "main-0000000-0000000000");
    const values = setterValues([
      { namespace: "flux-system", name: "frontend", latest: { name: "127.0.0.1:5000/frontend", tag: "main-0a1b2c3-1800000000" } },
      { namespace: "flux-system", name: "backend", latest: { name: "127.0.0.1:5000/backend", tag: "main-fff0000-1700000000" } },
    ]);
    const r = applySetters(before, values);
    assert.equal(r.text, release("main-0a1b2c3-1800000000", "main-fff0000-1700000000"));
    const changed = before.split("\n").map((l, i) => [l, r.text.split("\n")[i]]).filter(([a, b]) => a !== b);
    assert.deepEqual(changed, [
      ['  frontend: 127.0.0.1:5000/frontend:main-0000000-0000000000 # {"$imagepolicy": "flux-system:frontend"}', '  frontend: 127.0.0.1:5000/frontend:main-0a1b2c3-1800000000 # {"$imagepolicy": "flux-system:frontend"}'],
      ['  backend: 127.0.0.1:5000/backend:main-0000000-0000000000 # {"$imagepolicy": "flux-system:backend"}', '  backend: 127.0.0.1:5000/backend:main-fff0000-1700000000 # {"$imagepolicy": "flux-system:backend"}'],
    ]);
    assert.deepEqual(applySetters(r.text, values), { text: r.text, changes: [] });
  });
});

describe("the commit message template", () => {
  const changes: SetterChange[] = [
    { oldValue: "127.0.0.1:5000/frontend:main-0000000-0000000000", newValue: "127.0.0.1:5000/frontend:main-0a1b2c3-1800000000", setter: "flux-system:frontend" },
    { oldValue: "127.0.0.1:5000/backend:main-0000000-0000000000", newValue: "127.0.0.1:5000/backend:main-fff0000-1700000000", setter: "flux-system:backend" },
  ];

  it("renders the program's template as Go's text/template would: one `- old -> new` line per change", () => {
    assert.equal(
      renderCommitMessage(COMMIT_MESSAGE_TEMPLATE, changes),
      "chore(release): update image tags\n\n" +
        "- 127.0.0.1:5000/frontend:main-0000000-0000000000 -> 127.0.0.1:5000/frontend:main-0a1b2c3-1800000000\n" +
        "- 127.0.0.1:5000/backend:main-0000000-0000000000 -> 127.0.0.1:5000/backend:main-fff0000-1700000000\n",
    );
  });

  it("counts a change once however many files made it (upstream's Result.Changes)", () => {
    assert.equal(renderCommitMessage(COMMIT_MESSAGE_TEMPLATE, [changes[0], changes[0]]), `chore(release): update image tags\n\n- ${changes[0].oldValue} -> ${changes[0].newValue}\n`);
  });

  it("honours trim markers only where written", () => {
    assert.equal(renderCommitMessage("{{range .Changed.Changes}}{{.Setter}}: {{.OldValue}} -> {{.NewValue}}\n{{end}}", [changes[0]]), `flux-system:frontend: ${changes[0].oldValue} -> ${changes[0].newValue}\n`);
    assert.equal(renderCommitMessage("a  {{- /* why */ -}}  b", []), "ab");
  });

  it("renders a template without actions as it is, and an empty one as upstream's default (IUA, Message Template)", () => {
    assert.equal(renderCommitMessage("Automated image update by Flux", changes), "Automated image update by Flux");
    assert.equal(renderCommitMessage("", changes), DEFAULT_COMMIT_MESSAGE);
    assert.equal(DEFAULT_COMMIT_MESSAGE, "Update from image update automation");
  });

  it("does not guess at what it does not render: functions, other data, variables (IUA's examples) fall back", () => {
    for (const t of [
      "{{range .Changed.Changes}}{{print .OldValue}} -> {{println .NewValue}}{{end}}",
      "Automated image update by Flux for cluster {{ .Values.cluster }}.",
      "Automation name: {{ .AutomationObject }}",
      "{{ range $filename, $_ := .Changed.FileChanges -}}\n- {{ $filename }}\n{{ end -}}",
      "{{ range .Changed.Changes }}{{ range .Changed.Changes }}{{ end }}{{ end }}",
      "{{ range .Changed.Changes }}unclosed",
    ]) {
      assert.equal(renderCommitMessage(t, changes), undefined, t);
    }
    assert.equal(fallbackCommitMessage(changes), `Update from image update automation\n\n- ${changes[0].oldValue} -> ${changes[0].newValue}\n- ${changes[1].oldValue} -> ${changes[1].newValue}\n`);
  });
});

describe("tag selection, as image-reflector-controller's policies", () => {
  const numerical = (pattern: string, extract: string, order = "asc") => ({ filterTags: { pattern, extract }, policy: { numerical: { order } } });

  it("picks the newest build of `${GIT_BRANCH}-${GIT_SHA:0:7}-$(date +%s)` tags, whatever its sha (GUIDE, ImagePolicy examples, (?P<ts>…))", () => {
    const tags = ["main-2d3fcbd-1611906956", "main-fffffff-1611906000", "main-0000001-1611907000"];
    assert.equal(selectLatestTag(tags, numerical("^main-[a-fA-F0-9]+-(?P<ts>.*)", "$ts")), "main-0000001-1611907000");
    assert.equal(selectLatestTag(tags, numerical("^main-[a-fA-F0-9]+-(?P<ts>[1-9][0-9]*)", "$ts")), "main-0000001-1611907000");
  });

  it("decides the program's own shape with the product's rule, and the general path agrees with it", () => {
    const sets = [
      ["main-fff0000-1700000000", "main-0a1b2c3-1800000000", "main-1234567-1750000000", "latest", "main-0a1b2c3-1800000000.sig"],
      ["main-aaaaaaa-1800000000", "main-bbbbbbb-1800000000", "main-ccccccc-1700000000"],
      ["main-0000000-0000000000", "v1.2.3"],
    ];
    for (const tags of sets) {
      const program = selectLatestTag(tags, numerical(DEFAULT_TAG_PATTERN, TIMESTAMP_EXTRACT));
      assert.equal(program, selectTag(tags, DEFAULT_TAG_PATTERN, []));
      // `${ts}` is the same extraction to Go's Expand, and takes the general path.
      assert.equal(selectLatestTag(tags, numerical(DEFAULT_TAG_PATTERN, "${ts}")), program);
    }
    assert.throws(() => selectLatestTag(["latest"], numerical(DEFAULT_TAG_PATTERN, TIMESTAMP_EXTRACT)), /^PolicyError: version list argument cannot be empty$/);
  });

  it("orders RELEASE.<timestamp> tags alphabetically on the extracted value (GUIDE and IP, minio example)", () => {
    const spec = { filterTags: { pattern: "^RELEASE\\.(?P<timestamp>.*)Z$", extract: "$timestamp" }, policy: { alphabetical: { order: "asc" } } };
    const tags = ["RELEASE.2021-01-30T00-20-58Z", "RELEASE.2021-02-01T22-56-21Z", "RELEASE.2020-12-29T23-29-29Z", "latest"];
    assert.equal(selectLatestTag(tags, spec), "RELEASE.2021-02-01T22-56-21Z");
  });

  it("matches upstream's alphabetical tests", () => {
    const alpha = (order?: string) => ({ policy: { alphabetical: { order } } });
    assert.equal(selectLatestTag(["16.04", "16.04.1", "16.10", "20.04", "20.10"], alpha()), "20.10");
    assert.equal(selectLatestTag(["16.04", "16.04.1", "16.10", "20.04", "20.10"], alpha("desc")), "16.04");
    assert.equal(selectLatestTag(["xenial", "yakkety", "zesty", "artful", "bionic"], alpha("asc")), "zesty");
    assert.equal(selectLatestTag(["xenial", "yakkety", "zesty", "artful", "bionic"], alpha("desc")), "artful");
    assert.equal(selectLatestTag(["1606234201", "1606364286", "1606334092", "1606334284", "1606334201"], alpha("desc")), "1606234201");
    assert.equal(selectLatestTag(["rel-1606234201", "rel-1606364286", "rel-1606334092", "rel-1606334284", "rel-1606334201"], alpha()), "rel-1606364286");
    assert.throws(() => selectLatestTag([], alpha()), /version list argument cannot be empty/);
    assert.throws(() => selectLatestTag(["a"], alpha("sideways")), (e: unknown) => e instanceof PolicyError && e.invalid && /invalid order argument provided: 'SIDEWAYS'/.test(e.message));
  });

  it("matches upstream's numerical tests", () => {
    const num = (order?: string) => ({ policy: { numerical: { order } } });
    assert.equal(selectLatestTag(["-62", "-88", "73", "72", "15", "16", "15", "29", "-33", "-91"], num()), "73");
    assert.equal(selectLatestTag(["5", "-8", "-78", "25", "70", "-4", "80", "92", "-20", "-24"], num("desc")), "-78");
    assert.equal(selectLatestTag(["47.40896403322944", "-27.8520927455902", "53.47333823144817", "3.2008658570411086"], num("asc")), "53.47333823144817");
    assert.equal(selectLatestTag(["-65.27202780220686", "57.82948329142309", "-90.29082099756083", "16.06867070412028"], num("desc")), "-90.29082099756083");
    assert.equal(selectLatestTag(["1606234201", "1606364286", "1606334092", "1606334284", "1606334201"], num()), "1606364286");
    assert.equal(selectLatestTag(["1"], num("desc")), "1");
    assert.throws(() => selectLatestTag(["0", "1a", "b"], num()), /^PolicyError: failed to parse invalid numeric value '1a'$/);
  });

  it("extracts with a group index too (upstream's filter test: ver(\\d+), $1)", () => {
    assert.equal(selectLatestTag(["ver1", "ver2", "ver3", "rel1", "ver10"], numerical("ver(\\d+)", "$1")), "ver10");
  });

  it("says plainly that semver is not played", () => {
    assert.throws(
      () => selectLatestTag(["5.0.3"], { policy: { semver: { range: "5.0.x" } } }),
      (e: unknown) => e instanceof PolicyError && e.notPlayed && /semver policies \(range "5\.0\.x"\) are not played by this stand-in/.test(e.message),
    );
  });

  it("expands `extract` as Go's Regexp.Expand does", () => {
    const m = /^(?<a>x)(y)?(z)$/.exec("xz")!;
    assert.equal(expandExtract("$a", m), "x");
    assert.equal(expandExtract("${a}-$3", m), "x-z");
    // Go's doc: "$1x is equivalent to ${1x}, not ${1}x"; "$$" is a literal "$".
    assert.equal(expandExtract("$1x", /^(a)$/.exec("a")!), "");
    assert.equal(expandExtract("${1}x", /^(a)$/.exec("a")!), "ax");
    assert.equal(expandExtract("$$1", m), "$1");
    // An unmatched or unknown group expands to nothing; a malformed $ stays.
    assert.equal(expandExtract("[$2][$nope][$01]", m), "[][][]");
    assert.equal(expandExtract("cost: $ and ${", m), "cost: $ and ${");
  });

  it("reads Go's (?P<name>…) groups, outside classes and escapes only", () => {
    assert.equal(goPatternToJs("^main-(?P<ts>[0-9]+)$"), "^main-(?<ts>[0-9]+)$");
    assert.equal(goPatternToJs("[(?P<]\\(?P<x"), "[(?P<]\\(?P<x");
  });
});

describe("the ImageRepository's side", () => {
  it("drops the tags the exclusion list matches; the default list only drops signatures", () => {
    const tags = ["main-0a1b2c3-1800000000", "main-0a1b2c3-1800000000.sig", "main-fff0000-1700000000"];
    assert.deepEqual(applyExclusions(tags, undefined), ["main-0a1b2c3-1800000000", "main-fff0000-1700000000"]);
    assert.deepEqual(applyExclusions(tags, []), ["main-0a1b2c3-1800000000", "main-fff0000-1700000000"]);
    // The program's list: the signature rule kept, each rolled-back tag escaped and anchored.
    assert.deepEqual(applyExclusions(tags, ["^.*\\.sig$", exclusionPattern("main-0a1b2c3-1800000000")]), ["main-fff0000-1700000000"]);
  });

  it("finds the registry and repository of an image name, with Docker Hub's defaults", () => {
    assert.deepEqual(parseImageName("192.168.0.40:5000/frontend"), { registry: "192.168.0.40:5000", repository: "frontend" });
    assert.deepEqual(parseImageName("ghcr.io/stefanprodan/podinfo"), { registry: "ghcr.io", repository: "stefanprodan/podinfo" });
    assert.deepEqual(parseImageName("localhost/app"), { registry: "localhost", repository: "app" });
    assert.deepEqual(parseImageName("alpine"), { registry: "index.docker.io", repository: "library/alpine" });
    assert.deepEqual(parseImageName("stefanprodan/podinfo"), { registry: "index.docker.io", repository: "stefanprodan/podinfo" });
  });

  it("takes the registry's credentials from the program's dockerconfigjson Secret", () => {
    const doc = renderDockerConfigJson("127.0.0.1:5000", "robot", "s3cr:et");
    assert.deepEqual(registryCredentials(doc, "127.0.0.1:5000"), { username: "robot", password: "s3cr:et" });
    assert.equal(registryCredentials(doc, "127.0.0.1:5001"), undefined);
    const authOnly = JSON.stringify({ auths: { "https://reg.example/v1/": { auth: Buffer.from("u:p:q").toString("base64") } } });
    assert.deepEqual(registryCredentials(authOnly, "reg.example"), { username: "u", password: "p:q" });
  });
});
