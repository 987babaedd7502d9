import * as fs from "fs";
import * as path from "path";
import { BenchResults } from "./results";
import { Figure } from "./stats";

/** Renders BENCHMARKS.md from the results of one run (plus bench/findings.md, the analysis). */
export function renderReport(r: BenchResults): string {
  const s = (f: Figure | undefined): string => (f && Number.isFinite(f.median) ? `${f.median.toFixed(2)} s` : "—");
  const x = (f: Figure | undefined): string => (f && Number.isFinite(f.median) ? `${f.median.toFixed(2)}×` : "—");
  const runs = (f: Figure | undefined): string => (f ? f.runs.map((v) => v.toFixed(2)).join(", ") : "");
  const row = (cells: string[]): string => `| ${cells.join(" | ")} |`;
  const out: string[] = [];
  out.push("# Benchmarks", "");
  out.push(
    `Measured by \`npm run bench\` on the local sandbox (real engine; a Kubernetes control plane with one real node, kubelet and containerd; Traefik; Flux's source- and kustomize-controller; the VM's sshd; Docker engine; registry; git server) ` +
      `on ${r.date.slice(0, 10)} (${r.date}), ${r.runs} runs per figure, ${Math.round(r.seconds / 60)} minutes in all.`,
    "",
    `Machine: ${r.machine.cpu}, ${r.machine.cores} cores, ${r.machine.memoryGiB} GiB, Linux ${r.machine.kernel}, Node.js ${r.machine.node}; ` +
      `load average at start ${r.machine.loadavgAtStart.join(" / ")} (1/5/15 min). Other work on the machine may have run meanwhile.`,
    "",
    "Every figure is the **median** of its runs; every ratio is taken **run by run** (ours over the floor measured in the same run) and its median shown. " +
      "The raw runs are in `bench/results.json`.",
    "",
  );

  if (r.promotion) {
    const p = r.promotion;
    out.push("## Promotion: moving the stack to a new tag pair", "");
    out.push(
      "Floor: the backend image started directly (`docker compose up -d` of the same compose file to the first 200 from `/api/health`) " +
        "plus a copy of the frontend Deployment applied with `kubectl apply` to the same cluster until its rollout is complete.",
      "",
    );
    out.push(row(["what", "median", "floor (median)", "ratio (median of per-run)", "runs"]), row(["---", "---:", "---:", "---:", "---"]));
    out.push(row(["floor: frontend Deployment applied until Available", s(p.floor.frontend), "", "", runs(p.floor.frontend)]));
    out.push(row(["floor: backend `compose up -d` to first 200", s(p.floor.backend), "", "", runs(p.floor.backend)]));
    out.push(row(["floor: both", s(p.floor.total), "", "", runs(p.floor.total)]));
    out.push(row(["`pulumi up` to a new pair", s(p.up), s(p.floor.total), x(p.upRatio), runs(p.up)]));
    out.push(row(["`npm run deploy` to a new pair (git sync, one `pulumi up` previewing first, policy pack)", s(p.deploy), s(p.floor.total), x(p.deployRatio), runs(p.deploy)]));
    if (p.deployOverUp) {
      out.push(row(["`npm run deploy` ÷ bare `pulumi up` (Automation API, no preview) of the same change", "", "", x(p.deployOverUp), ""]));
    }
    if (p.cliUp && p.deployOverCliUp) {
      out.push(row(["`pulumi up --yes` from the CLI (previews first, no policy pack) to a new pair", s(p.cliUp), s(p.floor.total), "", runs(p.cliUp)]));
      out.push(row(["`npm run deploy` ÷ `pulumi up --yes` from the CLI of the same change", "", "", x(p.deployOverCliUp), ""]));
    }
    out.push(row(["stage: frontend (Deployment rollout)", s(p.stages.frontend), s(p.floor.frontend), x(p.stageRatios.frontend), runs(p.stages.frontend)]));
    out.push(row(["stage: backend (compose over SSH)", s(p.stages.backend), s(p.floor.backend), x(p.stageRatios.backend), runs(p.stages.backend)]));
    out.push("");
    out.push(`SSH sessions on the VM per \`pulumi up\`: ${p.sshSessions.up.join(", ")}; per \`npm run deploy\`: ${p.sshSessions.deploy.join(", ")}.`, "");
    if (p.deployPhases && Object.keys(p.deployPhases).length > 0) {
      out.push("### Where the time of `npm run deploy` goes, by phase", "");
      out.push(
        "As the deploy prints it at its end (`deploy: timings: …`): start-up is from the process's start (Node.js, the deploy's own code); " +
          "`refresh and preview` and `update` are the two halves of its one `pulumi up --refresh`, policy pack included in both.",
        "",
      );
      const noop = r.noop?.deployPhases ?? {};
      out.push(row(["phase", "promotion (median)", "no-op (median)", "promotion runs"]), row(["---", "---:", "---:", "---"]));
      for (const [k, f] of Object.entries(p.deployPhases)) {
        out.push(row([k, s(f), noop[k] ? s(noop[k]) : "", runs(f)]));
      }
      out.push("");
    }
    out.push("### Where the time of `pulumi up` goes, by stage", "");
    out.push(row(["stage", "median", "runs"]), row(["---", "---:", "---"]));
    for (const [k, f] of Object.entries(p.stages)) {
      out.push(row([k, s(f), runs(f)]));
    }
    out.push("", "Stages overlap where the engine runs steps in parallel; each is from its first step starting to its last step finishing (engine events).", "");
    out.push("The median run, step by step (seconds from the start of `pulumi up`):", "", row(["what", "from", "to", "seconds"]), row(["---", "---:", "---:", "---:"]));
    for (const st of p.timeline) {
      out.push(row([st.what, st.from.toFixed(2), st.to.toFixed(2), (st.to - st.from).toFixed(2)]));
    }
    out.push("");
  }

  if (r.noop) {
    const n = r.noop;
    out.push("## No-op: nothing changed", "");
    out.push("Floor: `pulumi preview` of a program that only loads the same providers (the Kubernetes provider and one dynamic-provider resource, `bench/scale` with `scale:empty`).", "");
    out.push(row(["what", "median", "floor (median)", "ratio", "runs"]), row(["---", "---:", "---:", "---:", "---"]));
    out.push(row(["`pulumi preview`, providers only", s(n.emptyPreview), "", "", runs(n.emptyPreview)]));
    out.push(row(["`pulumi preview`, nothing changed", s(n.preview), s(n.emptyPreview), x(n.previewRatio), runs(n.preview)]));
    out.push(row(["`pulumi up`, nothing changed", s(n.up), s(n.emptyPreview), x(n.upRatio), runs(n.up)]));
    if (n.deploy && n.deployOverUp) {
      out.push(row(["`npm run deploy`, nothing changed (ratio: over the no-op `up`, run by run)", s(n.deploy), s(n.up), x(n.deployOverUp), runs(n.deploy)]));
    }
    if (n.previewTypeChecked && n.typeCheckCut) {
      out.push(row(["`pulumi preview`, nothing changed, ts-node type-checking the program", s(n.previewTypeChecked), s(n.preview), x(n.typeCheckCut), runs(n.previewTypeChecked)]));
    }
    if (n.previewFreshTranspile && n.freshTranspileCost) {
      out.push(row(["`pulumi preview`, nothing changed, the program's transpile cache emptied first", s(n.previewFreshTranspile), s(n.preview), x(n.freshTranspileCost), runs(n.previewFreshTranspile)]));
    }
    out.push("", `SSH sessions per no-op \`up\`: ${n.sshSessions.join(", ")}.`, "");
    out.push(
      `Median no-op \`up\`: ${Object.entries(n.upStages)
        .filter(([k]) => k.startsWith("before") || k.startsWith("after"))
        .map(([k, v]) => `${v.toFixed(2)} s ${k}`)
        .join(", ")}.`,
      "",
    );
  }

  if (r.rollback) {
    const b = r.rollback;
    out.push("## Rollback: a failing release back to the previous pair", "");
    out.push(
      "`npm run deploy` of a pair whose backend crashes on start: the frontend moves first, the backend fails, both are redeployed on the previous pair. " +
        "Measured from the failed stage's verdict (the deploy printing `FAILED`) until the frontend page, the backend on the VM and `/api/health` through the ingress all serve the previous pair. " +
        "Floor: both moved back by hand (the two floor steps above) in the same run.",
      "",
    );
    out.push(row(["what", "median", "floor (median)", "ratio", "runs"]), row(["---", "---:", "---:", "---:", "---"]));
    out.push(row(["verdict → both healthy on the previous pair", s(b.verdictToHealthy), s(b.floor), x(b.ratio), runs(b.verdictToHealthy)]));
    out.push(row(["verdict → `npm run deploy` exits (rolled back)", s(b.verdictToExit), "", "", runs(b.verdictToExit)]));
    out.push(row(["the failed `up` before the verdict", s(b.failedUp), "", "", runs(b.failedUp)]));
    out.push("");
  }

  if (r.soak) {
    const k = r.soak;
    out.push("## The soak: what verifying a release costs", "");
    out.push(
      `\`pulumi up\` of a new pair with each gate's soak at the production ${k.seconds} s (\`Pulumi.production.yaml\`) and at the sandbox's ${k.shortSeconds} s, which every other section runs with, in the same runs. ` +
        "The soak keeps probing after a gate first passes and counts the restarts of what it guards; the frontend's comes before the backend deploys, so both add to a promotion." +
        (k.date ? ` Measured on ${k.date.slice(0, 10)} in a run of its own (\`npm run bench -- --only soak\`).` : ""),
      "",
    );
    out.push(row(["what", "median", "runs"]), row(["---", "---:", "---"]));
    out.push(row([`promotion, ${k.seconds} s soak`, s(k.with), runs(k.with)]));
    out.push(row([`promotion, ${k.shortSeconds} s soak`, s(k.without), runs(k.without)]));
    out.push(row(["the soak's cost (per run)", s(k.cost), runs(k.cost)]));
    out.push(row(["ratio (per run)", x(k.ratio), runs(k.ratio)]));
    out.push("");
  }

  if (r.peers) {
    out.push("## Peers: the tools a homelab user would run instead, on two workload profiles", "");
    out.push(
      "Measured in the same runs as the program and the floor, on the same sandbox, each moving to the new pair and back: " +
        "**Flux** (the same Deployment committed to the sandbox's git server, applied by kustomize-controller with a reconcile of its GitRepository and Kustomization requested at once, until the rollout is complete) and " +
        `**an Ansible playbook** (${r.peers.ansible.version}, from PyPI in a virtual environment of the bench's own) that applies the same Deployment with \`kubernetes.core.k8s\` and \`wait\`, checks every new pod's page, ` +
        "then writes the same compose file and `.env` to the same VM over the same sshd, logs in to the registry, runs `community.docker.docker_compose_v2` with `pull: always` and `wait`, and checks `/api/health`. " +
        "A stage of the program is its steps' span in the engine's events; a stage of the playbook is its play's span (the JSON callback); neither counts its tool's start-up. " +
        "The whole promotion and the move back are each tool's wall-clock time. Ratios are ours over the other (below 1: ahead), run by run.",
      "",
    );
    for (const q of r.peers.profiles) {
      out.push(`### Profile: ${q.name}`, "", `${q.description[0].toUpperCase()}${q.description.slice(1)}.`, "");
      out.push(row(["what", "ours (median)", "peer (median)", "ours ÷ peer", "floor (median)", "ours ÷ floor", "runs: ours / peer"]), row(["---", "---:", "---:", "---:", "---:", "---:", "---"]));
      out.push(row(["frontend stage vs Flux", s(q.frontend.ours), s(q.frontend.flux), x(q.frontend.oursOverFlux), s(q.floor.frontend), x(q.frontend.oursOverFloor), `${runs(q.frontend.ours)} / ${runs(q.frontend.flux)}`]));
      out.push(row(["frontend stage vs the playbook's frontend play", s(q.frontend.ours), s(q.frontend.ansible), x(q.frontend.oursOverAnsible), s(q.floor.frontend), x(q.frontend.oursOverFloor), `${runs(q.frontend.ours)} / ${runs(q.frontend.ansible)}`]));
      out.push(row(["backend stage vs the playbook's backend play", s(q.backend.ours), s(q.backend.ansible), x(q.backend.oursOverAnsible), s(q.floor.backend), x(q.backend.oursOverFloor), `${runs(q.backend.ours)} / ${runs(q.backend.ansible)}`]));
      out.push(row(["whole promotion: `pulumi up` vs `ansible-playbook`", s(q.promotion.ours), s(q.promotion.ansible), x(q.promotion.oursOverAnsible), s(q.floor.total), x(q.promotion.oursOverFloor), `${runs(q.promotion.ours)} / ${runs(q.promotion.ansible)}`]));
      out.push(row(["back to the previous pair: `pulumi up` vs `ansible-playbook`", s(q.back.ours), s(q.back.ansible), x(q.back.oursOverAnsible), s(q.floor.back), x(q.back.oursOverFloor), `${runs(q.back.ours)} / ${runs(q.back.ansible)}`]));
      out.push(row(["back to the previous pair: Flux (the frontend alone)", "", s(q.back.flux), "", "", "", runs(q.back.flux)]));
      if (q.rollback) {
        out.push(
          row([
            "rollback: verdict → both on the previous pair (`npm run deploy`) vs the playbook re-applying it",
            s(q.rollback.verdictToHealthy),
            s(q.back.ansible),
            x(q.rollback.oursOverAnsible),
            s(q.floor.back),
            x(q.rollback.oursOverFloor),
            `${runs(q.rollback.verdictToHealthy)} / ${runs(q.back.ansible)}`,
          ]),
        );
      }
      out.push("", "The program's `up` to the new pair, by stage:", "", row(["stage", "median", "runs"]), row(["---", "---:", "---"]));
      for (const [k, f] of Object.entries(q.stages)) {
        out.push(row([k, s(f), runs(f)]));
      }
      out.push(row(["no-op `up` (after the move back): whole", s(q.noop.up), runs(q.noop.up)]));
      out.push(row(["no-op `up`: before the first step", s(q.noop.before), runs(q.noop.before)]));
      out.push(row(["no-op `up`: after the last step", s(q.noop.after), runs(q.noop.after)]));
      out.push("");
      if (q.phases) {
        // A single phase says nothing (runs before no-op phases were split out recorded only one).
        for (const [label, phases] of ([["promotion to the new pair", q.phases.promotion], ["no-op", q.phases.noop]] as const).filter(([, ph]) => ph.length > 1)) {
          out.push(`The median ${label} \`up\`, phase by phase (seconds from its start):`, "", row(["phase", "from", "to", "seconds"]), row(["---", "---:", "---:", "---:"]));
          for (const ph of phases) {
            out.push(row([ph.what, ph.from.toFixed(2), ph.to.toFixed(2), (ph.to - ph.from).toFixed(2)]));
          }
          out.push("");
        }
      }
      if (q.rolloutSurge) {
        const g = q.rolloutSurge;
        out.push(
          "The frontend's rollout, before and after it started every new pod at once (`frontendRolloutSurge`: `1`, the old one-after-another rollout, against the default `100%`; no old pod goes before a new one is ready in either), the same promotion in the same runs:",
          "",
          row(["what", "one new pod at a time", "every new pod at once", "after ÷ before", "runs: before / after"]),
          row(["---", "---:", "---:", "---:", "---"]),
          row(["`pulumi up` to the new pair", s(g.oneAtATime), s(g.allAtOnce), x(g.cut), `${runs(g.oneAtATime)} / ${runs(g.allAtOnce)}`]),
          row(["its frontend stage", s(g.frontendOneAtATime), s(g.frontendAllAtOnce), "", `${runs(g.frontendOneAtATime)} / ${runs(g.frontendAllAtOnce)}`]),
          "",
        );
      }
    }
  }

  if (r.evaluation) {
    const e = r.evaluation;
    out.push("## Evaluation under mocks", "");
    out.push("A fresh Node.js process per run, `pulumi.runtime.setMocks`, from the first import to the last resource registration. Floor: the providers-only program.", "");
    out.push(row(["what", "median", "floor (median)", "ratio", "runs"]), row(["---", "---:", "---:", "---:", "---"]));
    out.push(row(["providers-only program", s(e.empty), "", "", runs(e.empty)]));
    out.push(row(["the homelab program", s(e.program), s(e.empty), x(e.ratio), runs(e.program)]));
    out.push("");
  }

  if (r.scale) {
    out.push("## Scale: frontend workloads and services on the VM", "");
    out.push(
      "`bench/scale`: the program's own components (HostCheck, N FrontendApp, one ComposeHost with M services). Each run moves every workload to the other tag pair: " +
        "`preview` then `up`. Growth is over the 1 × 1 point, run by run; the preview floor is the providers-only preview.",
      "",
    );
    out.push(
      "Floor of `up`: the same move done directly, `kubectl apply` of N copies of the Deployment until every rollout is complete, then `docker compose up -d --wait` of the M services.",
      "",
      row(["frontends × services", "resources", "preview", "preview / providers-only", "up", "floor", "up / floor", "up growth", "SSH sessions per up"]),
      row(["---", "---:", "---:", "---:", "---:", "---:", "---:", "---:", "---"]),
    );
    for (const pt of r.scale.points) {
      const floor = r.noop?.emptyPreview.median ?? NaN;
      const pr = floor > 0 ? `${(pt.preview.median / floor).toFixed(2)}×` : "—";
      out.push(row([`${pt.frontends} × ${pt.services}`, String(pt.resources), s(pt.preview), pr, s(pt.up), s(pt.floor), x(pt.upRatio), x(pt.upGrowth), pt.sshSessions.join(", ")]));
    }
    out.push("", `Preview floor: the providers-only preview of the no-op section, ${s(r.noop?.emptyPreview)}.`, "");
  }

  const findings = path.join(__dirname, "findings.md");
  if (fs.existsSync(findings)) {
    out.push(fs.readFileSync(findings, "utf8").trim(), "");
  }
  return out.join("\n");
}
