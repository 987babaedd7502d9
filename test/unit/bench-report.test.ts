import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { renderReport } from "../../bench/report";
import { BenchResults, PeerProfile } from "../../bench/results";
import { figure, ratio } from "../../bench/stats";
import { Timeline, criticalPath, stageSeconds } from "../../bench/timeline";

const step = (name: string, op: string, start: number, end: number): Timeline["steps"][number] => ({ urn: `urn:pulumi:s::p::t::${name}`, name, type: "t", op, start, end });

describe("bench timeline", () => {
  // t0 = 1000 ms; the first change starts 3 s in, the last ends at 9 s, the whole up takes 10 s.
  const t: Timeline = {
    seconds: 10,
    t0: 1000,
    changes: { update: 2 },
    steps: [step("namespace", "same", 3500, 3600), step("frontend-deployment", "update", 4000, 6000), step("backend-deploy", "update", 6500, 10000)],
  };

  it("splits an up into its stages and the engine's time before and after the steps", () => {
    const st = stageSeconds(t);
    assert.equal(st.frontend, 2);
    assert.equal(st.backend, 3.5);
    assert.equal(st["before the first step"], 2.5);
    assert.equal(st["after the last step"], 1);
  });

  it("splits a no-op into the engine's start, the diff of every resource and its end", () => {
    const noop: Timeline = { seconds: 6, t0: 0, changes: {}, steps: [step("namespace", "same", 1500, 1600), step("frontend-deployment", "same", 1700, 4000)] };
    assert.deepEqual(
      criticalPath(noop).map((p) => [p.what, p.from, p.to]),
      [
        ["engine start, program evaluation, registry look-ups", 0, 1.5],
        ["2 unchanged resources read and diffed", 1.5, 4],
        ["state write, engine exit", 4, 6],
      ],
    );
  });

  it("lists the changed steps in order with the engine's gaps between them", () => {
    assert.deepEqual(
      criticalPath(t).map((p) => [p.what, p.from, p.to]),
      [
        ["engine start, program evaluation, registry look-ups", 0, 3],
        ["frontend-deployment (update)", 3, 5],
        ["engine between steps", 5, 5.5],
        ["backend-deploy (update)", 5.5, 9],
        ["state write, engine exit", 9, 10],
      ],
    );
  });
});

describe("bench report", () => {
  const profile: PeerProfile = {
    name: "seed-shaped",
    description: "images that take the seeds' time to become ready",
    floor: { frontend: figure([12, 13]), backend: figure([21, 22]), total: figure([33, 35]), back: figure([34, 34]) },
    frontend: { ours: figure([13, 14]), flux: figure([15, 16]), ansible: figure([16, 17]), oursOverFlux: ratio([13, 14], [15, 16]), oursOverAnsible: ratio([13, 14], [16, 17]), oursOverFloor: ratio([13, 14], [12, 13]) },
    backend: { ours: figure([22, 23]), ansible: figure([31, 32]), oursOverAnsible: ratio([22, 23], [31, 32]), oursOverFloor: ratio([22, 23], [21, 22]) },
    promotion: { ours: figure([44, 46]), ansible: figure([55, 56]), oursOverAnsible: ratio([44, 46], [55, 56]), oursOverFloor: ratio([44, 46], [33, 35]) },
    back: { ours: figure([40, 41]), ansible: figure([50, 52]), flux: figure([15, 15]), oursOverAnsible: ratio([40, 41], [50, 52]), oursOverFloor: ratio([40, 41], [34, 34]) },
    stages: { frontend: figure([13, 14]) },
    noop: { up: figure([6, 7]), before: figure([3, 3]), after: figure([1, 1]) },
    rollback: { verdictToHealthy: figure([18, 19]), verdictToExit: figure([20, 21]), oursOverFloor: ratio([18, 19], [34, 34]), oursOverAnsible: ratio([18, 19], [50, 52]) },
    phases: {
      promotion: [
        { what: "engine start, program evaluation, registry look-ups", from: 0, to: 3 },
        { what: "frontend-deployment (update)", from: 3, to: 16 },
      ],
      noop: [
        { what: "2 unchanged resources read and diffed", from: 1.5, to: 5 },
        { what: "state write, engine exit", from: 5, to: 6.5 },
      ],
    },
    rolloutSurge: { oneAtATime: figure([58, 60]), allAtOnce: figure([44, 46]), frontendOneAtATime: figure([27, 28]), frontendAllAtOnce: figure([13, 14]), cut: ratio([44, 46], [58, 60]) },
  };
  const results: BenchResults = {
    date: "2026-12-01T12:00:00.000Z",
    machine: { cpu: "cpu", cores: 2, memoryGiB: 24, kernel: "6", node: "v24", loadavgAtStart: [1, 1, 1] },
    runs: 2,
    seconds: 600,
    peers: { ansible: { version: "ansible 14.5.0", kubernetesClient: true }, profiles: [profile] },
  };
  const md = renderReport(results);

  it("shows each peer row with ours, the peer's, their ratio and the runs", () => {
    assert.match(md, /\| whole promotion: `pulumi up` vs `ansible-playbook` \| 45\.00 s \| 55\.50 s \| 0\.81× \| 34\.00 s \| 1\.32× \| 44\.00, 46\.00 \/ 55\.00, 56\.00 \|/);
    assert.match(md, /\| rollback: verdict → both on the previous pair .* \| 18\.50 s \| 51\.00 s \| 0\.36× \| 34\.00 s \| 0\.54× \|/);
  });

  it("shows the phases of the median promotion and no-op, and the rollout change before and after", () => {
    assert.match(md, /The median promotion to the new pair `up`, phase by phase/);
    assert.match(md, /\| frontend-deployment \(update\) \| 3\.00 \| 16\.00 \| 13\.00 \|/);
    assert.match(md, /\| state write, engine exit \| 5\.00 \| 6\.50 \| 1\.50 \|/);
    assert.match(md, /\| `pulumi up` to the new pair \| 59\.00 s \| 45\.00 s \| 0\.76× \| 58\.00, 60\.00 \/ 44\.00, 46\.00 \|/);
  });
});

describe("bench report: the soak", () => {
  const withSoak = [150.2, 148.8, 151.0];
  const without = [27.1, 26.5, 28.0];
  const md = renderReport({
    date: "2026-12-07T00:00:00Z",
    machine: { cpu: "x", cores: 2, memoryGiB: 24, kernel: "6", node: "v24", loadavgAtStart: [0, 0, 0] },
    runs: 3,
    seconds: 900,
    soak: { seconds: 60, shortSeconds: 1, with: figure(withSoak), without: figure(without), cost: figure(withSoak.map((w, i) => w - without[i])), ratio: ratio(withSoak, without) },
  });

  it("shows the promotion with the production soak and with the short one, and the cost taken run by run", () => {
    assert.match(md, /## The soak: what verifying a release costs/);
    assert.match(md, /\| promotion, 60 s soak \| 150\.20 s \| 150\.20, 148\.80, 151\.00 \|/);
    assert.match(md, /\| promotion, 1 s soak \| 27\.10 s \| 27\.10, 26\.50, 28\.00 \|/);
    assert.match(md, /\| the soak's cost \(per run\) \| 123\.00 s \| 123\.10, 122\.30, 123\.00 \|/);
    assert.match(md, /\| ratio \(per run\) \| 5\.\d\d× \|/);
  });
});
