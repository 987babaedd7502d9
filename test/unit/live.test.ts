import { describe, it } from "node:test";
import * as assert from "node:assert/strict";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import type { EngineEvent } from "@pulumi/pulumi/automation";
import { parseArgs } from "../../deploy/cli";
import { driftFound } from "../../deploy/outcome";
import { STATUS_EXIT, formatStatus, stackStatus, statusExit } from "../../deploy/status";
import { COMPOSE_HOST_TYPE } from "../../components/compose-host";
import { FRONTEND_APP_TYPE } from "../../components/frontend-app";
import { GATE_PROBE_TYPE } from "../../components/health-gate";
import type { PromotedRelease } from "../../components/release-record";
import { VPS_APP_TYPE } from "../../components/vps-app";
import { LiveProject, composeImages, findDrift, parseInspect, sha256, stopsService } from "../../lib/live";
import { renderInspectScript } from "../../lib/remote-deploy";
import { REMOTE_SCRIPT_TYPE } from "../../providers/remote-script";

const COMPOSE = "services:\n  backend:\n    image: r/backend:v2@sha256:bb\n  cache:\n    image: r/cache:1@sha256:cc\n";
const ENV = "SECRET='s3cr3t-value'\n";
const recorded = { "docker-compose.yml": COMPOSE, ".env": ENV };
const healthy = (): string =>
  [
    `file docker-compose.yml ${sha256(COMPOSE)}`,
    `file .env ${sha256(ENV)}`,
    "container backend running healthy 0 r/backend:v2@sha256:bb",
    "container cache running none 2 r/cache:1@sha256:cc",
  ].join("\n");

describe("what a host runs against the recorded release", () => {
  it("reads the inspect script's lines", () => {
    assert.deepEqual(parseInspect(healthy() + "\n"), {
      files: { "docker-compose.yml": sha256(COMPOSE), ".env": sha256(ENV) },
      engineUp: true,
      containers: [
        { service: "backend", status: "running", health: "healthy", restarts: 0, image: "r/backend:v2@sha256:bb" },
        { service: "cache", status: "running", health: "none", restarts: 2, image: "r/cache:1@sha256:cc" },
      ],
    });
    assert.deepEqual(composeImages(COMPOSE), { backend: "r/backend:v2@sha256:bb", cache: "r/cache:1@sha256:cc" });
  });

  it("finds nothing on a host that runs the recorded release", () => {
    assert.deepEqual(findDrift(recorded, parseInspect(healthy())), []);
  });

  it("names a stopped, unhealthy, missing or re-imaged service and an edited or missing file, never their content", () => {
    const live = healthy()
      .replace(`file .env ${sha256(ENV)}`, `file .env ${sha256("SECRET=other\n")}`)
      .replace("container backend running healthy 0 r/backend:v2@sha256:bb", "container backend exited none 0 r/backend:v1@sha256:aa")
      .replace(/\ncontainer cache .*/, "");
    assert.deepEqual(findDrift(recorded, parseInspect(live)), [
      ".env on the host differs from the recorded release",
      "service backend is exited",
      "service backend runs r/backend:v1@sha256:aa, not the recorded r/backend:v2@sha256:bb",
      "service cache has no container",
    ]);
    const missing = parseInspect(`file docker-compose.yml missing\nfile .env ${sha256(ENV)}\ncontainer backend running unhealthy 0 r/backend:v2@sha256:bb\ncontainer cache running none 0 r/cache:1@sha256:cc`);
    assert.deepEqual(findDrift(recorded, missing), ["docker-compose.yml is missing on the host", "service backend is unhealthy"]);
    assert.deepEqual(findDrift(recorded, parseInspect(`file docker-compose.yml ${sha256(COMPOSE)}\nfile .env ${sha256(ENV)}\nengine down`)), ["the Docker engine does not answer"]);
    assert.ok(!JSON.stringify(findDrift(recorded, parseInspect(live))).includes("s3cr3t"));
  });

  it("runs as a read-only script that prints hashes and container states, not file contents", () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), "inspect-"));
    try {
      const bin = path.join(root, "bin");
      const dir = path.join(root, "opt", "backend");
      fs.mkdirSync(bin);
      fs.mkdirSync(dir, { recursive: true });
      fs.writeFileSync(path.join(dir, "docker-compose.yml"), COMPOSE);
      fs.writeFileSync(path.join(dir, ".env"), ENV, { mode: 0o600 });
      fs.writeFileSync(
        path.join(bin, "docker"),
        `#!/bin/sh
case "$1" in
  info) exit 0 ;;
  compose) echo c1; echo c2 ;;
  inspect) echo "container backend running healthy 0 r/backend:v2@sha256:bb"; echo "container cache running none 0 r/cache:1@sha256:cc" ;;
esac
`,
        { mode: 0o755 },
      );
      const script = renderInspectScript({ deployDir: dir, project: "backend", files: ["docker-compose.yml", ".env", "Caddyfile"] });
      const r = spawnSync("/bin/sh", ["-c", script], { env: { ...process.env, PATH: `${bin}:${process.env.PATH}` }, encoding: "utf8" });
      assert.equal(r.status, 0, r.stderr);
      assert.doesNotMatch(r.stdout, /s3cr3t|image:/);
      const live = parseInspect(r.stdout);
      assert.equal(live.files.Caddyfile, "missing");
      assert.deepEqual(findDrift(recorded, live), []);
    } finally {
      fs.rmSync(root, { recursive: true, force: true });
    }
  });
});

const urn = (types: string[], name: string): string => `urn:pulumi:e2e::homelab::${types.join("$")}::${name}`;
const refreshed = (u: string, type: string, outputs: Record<string, unknown>, diffs: string[] = []): EngineEvent =>
  ({ sequence: 0, timestamp: 0, resOutputsEvent: { metadata: { op: "refresh", urn: u, type, old: null, new: { type, urn: u, outputs }, diffs, provider: "" } } }) as unknown as EngineEvent;

const RELEASE: PromotedRelease = {
  frontend: { image: "r/frontend", tag: "f2", digest: "sha256:ff" },
  backend: { image: "r/backend", tag: "b2", digest: "sha256:bb" },
  gates: { frontendMs: 1, backendMs: 1 },
};

function events(opts: { replicas?: number; ready?: number; backendDrift?: string[]; gateDrift?: string[] } = {}): EngineEvent[] {
  return [
    refreshed(urn([FRONTEND_APP_TYPE, "kubernetes:apps/v1:Deployment"], "frontend"), "kubernetes:apps/v1:Deployment", {
      spec: { replicas: opts.replicas ?? 1, template: { spec: { containers: [{ image: "r/frontend:f2@sha256:ff" }] } } },
      status: { readyReplicas: opts.ready ?? 1 },
    }, opts.replicas === 0 ? ["spec"] : []),
    refreshed(urn(["homelab:release:HealthGate", GATE_PROBE_TYPE], "frontend-gate-probe"), GATE_PROBE_TYPE, { targets: [{ url: "http://i/" }], drift: opts.gateDrift ?? [] }),
    refreshed(urn([COMPOSE_HOST_TYPE, REMOTE_SCRIPT_TYPE], "backend-deploy"), REMOTE_SCRIPT_TYPE, { drift: opts.backendDrift ?? [] }),
    refreshed(urn(["homelab:release:HealthGate", GATE_PROBE_TYPE], "backend-gate-probe"), GATE_PROBE_TYPE, { targets: [{ url: "http://vm/api/health" }], drift: [] }),
  ];
}

describe("npm run status", () => {
  it("agrees when every part runs the recorded release", () => {
    const s = stackStatus("e2e", events(), RELEASE);
    assert.equal(s.agree, true);
    assert.deepEqual(s.parts.map((p) => [p.part, p.findings.length]), [["frontend", 0], ["frontend-gate", 0], ["backend", 0], ["backend-gate", 0]]);
    assert.match(formatStatus(s), /every part runs the recorded release/);
  });

  it("names each part that differs, and a refresh's drift says the same", () => {
    const ev = events({ replicas: 0, ready: 0, backendDrift: ["service backend is exited"], gateDrift: ["http://i/: status 503 (expected 200)"] });
    const s = stackStatus("e2e", ev, RELEASE);
    assert.equal(s.agree, false);
    assert.deepEqual(s.parts.find((p) => p.part === "frontend")?.findings, ["the Deployment is scaled to 0"]);
    assert.deepEqual(s.parts.find((p) => p.part === "backend")?.findings, ["service backend is exited"]);
    assert.match(formatStatus(s), /some parts differ/);
    assert.deepEqual(driftFound(ev), ["frontend: changed on the cluster (spec)", "frontend-gate-probe: http://i/: status 503 (expected 200)", "backend-deploy: service backend is exited"]);
  });

  it("says which part could not be read", () => {
    const ev = events().filter((e) => !e.resOutputsEvent?.metadata.urn.endsWith("backend-deploy"));
    ev.push({ sequence: 0, timestamp: 0, diagnosticEvent: { urn: urn([COMPOSE_HOST_TYPE, REMOTE_SCRIPT_TYPE], "backend-deploy"), message: "cannot reach deploy@127.0.0.1:22: ECONNREFUSED\n", color: "never", severity: "error" } });
    const s = stackStatus("e2e", ev, RELEASE);
    assert.deepEqual(s.parts.find((p) => p.part === "backend")?.findings, ["cannot read: cannot reach deploy@127.0.0.1:22: ECONNREFUSED"]);
  });

  it("gives each part a condition and exits with the worst: 0 agrees, 1 drift, 3 down, 4 unreachable", () => {
    const of = (ev: EngineEvent[]): [string, string][] => stackStatus("e2e", ev, RELEASE).parts.map((p) => [p.part, p.condition]);
    const exit = (ev: EngineEvent[]): number => statusExit(stackStatus("e2e", ev, RELEASE));
    assert.equal(exit(events()), STATUS_EXIT.agrees);
    // Files or an image other than recorded, still serving: drift.
    const edited = events({ backendDrift: ["docker-compose.yml on the host differs from the recorded release"] });
    assert.deepEqual(of(edited)[2], ["backend", "drift"]);
    assert.equal(exit(edited), 1);
    assert.equal(exit(events({ ready: 1, replicas: 2 })), 1, "one of two pods Ready still serves");
    // A stopped service, no Ready pod, a failing gate: down.
    assert.deepEqual(of(events({ backendDrift: ["service backend is exited"] }))[2], ["backend", "down"]);
    assert.deepEqual(of(events({ replicas: 0, ready: 0 }))[0], ["frontend", "down"]);
    assert.deepEqual(of(events({ gateDrift: ["http://i/: status 503 (expected 200)"] }))[1], ["frontend-gate", "down"]);
    // Not read: unreachable, and down outranks it.
    const unreached = events().filter((e) => !e.resOutputsEvent?.metadata.urn.endsWith("backend-deploy"));
    unreached.push({ sequence: 0, timestamp: 0, diagnosticEvent: { urn: urn([COMPOSE_HOST_TYPE, REMOTE_SCRIPT_TYPE], "backend-deploy"), message: "cannot reach\n", color: "never", severity: "error" } });
    assert.deepEqual(of(unreached)[2], ["backend", "unreachable"]);
    assert.equal(exit(unreached), 4);
    assert.equal(exit([...unreached.slice(0, 1), ...events({ gateDrift: ["x"] }).slice(1, 2), ...unreached.slice(2)]), 3);
    assert.deepEqual(Object.values(STATUS_EXIT).sort(), [0, 1, 2, 3, 4]);
  });

  it("counts as down exactly the findings of a service that does not run", () => {
    const one = "services:\n  backend:\n    image: r/backend:b2@sha256:bb\n";
    const live = (status: string, health = "healthy"): LiveProject => ({ engineUp: true, files: { "docker-compose.yml": sha256(one) }, containers: [{ service: "backend", status, health, restarts: 0, image: "r/backend:b2@sha256:bb" }] });
    for (const [project, down] of [
      [live("exited"), true],
      [live("restarting"), true],
      [live("running", "unhealthy"), true],
      [{ engineUp: false, files: {}, containers: [] }, true],
      [{ engineUp: true, files: { "docker-compose.yml": sha256(one) }, containers: [] }, true],
      [{ ...live("running"), files: { "docker-compose.yml": "0".repeat(64) } }, false],
      [{ ...live("running"), containers: [{ service: "backend", status: "running", health: "healthy", restarts: 0, image: "r/backend:old" }] }, false],
    ] as [LiveProject, boolean][]) {
      const findings = findDrift({ "docker-compose.yml": one }, project);
      assert.ok(findings.length > 0, JSON.stringify(project));
      assert.equal(findings.some(stopsService), down, findings.join("; "));
    }
  });

  it("shows what a self-updating VPS app runs, and counts its own update as no difference", () => {
    const compose = "services:\n  caddy:\n    image: caddy:2\n  infrakt:\n    image: r/infrakt:latest\n";
    const vpsEvents = (running: string, drift: string[] = []): EngineEvent[] => [
      refreshed(urn([VPS_APP_TYPE, COMPOSE_HOST_TYPE, REMOTE_SCRIPT_TYPE], "vps-compose-deploy"), REMOTE_SCRIPT_TYPE, { files: { "docker-compose.yml": compose }, drift }),
      refreshed(urn([VPS_APP_TYPE, "pulumi-nodejs:dynamic/homelab:RunningImage"], "vps-running-image"), "pulumi-nodejs:dynamic/homelab:RunningImage", { recorded: "sha256:aa", running }),
    ];
    const same = stackStatus("e2e", vpsEvents("sha256:aa"), undefined).parts;
    assert.deepEqual(same, [{ part: "vps", recorded: "r/infrakt:latest@sha256:aa", running: "r/infrakt:latest@sha256:aa, healthy", condition: "agrees", findings: [] }]);
    const updated = stackStatus("e2e", vpsEvents("sha256:bb"), undefined);
    assert.equal(updated.agree, true);
    assert.equal(updated.parts[0].running, "r/infrakt:latest@sha256:bb, updated by the app, healthy");
    const gone = stackStatus("e2e", vpsEvents("", ["service infrakt has no container"]), undefined);
    assert.deepEqual([gone.agree, gone.parts[0].running, gone.parts[0].findings], [false, "r/infrakt:latest, not running", ["service infrakt has no container"]]);
  });

  it("takes --json, and --check-every for the watch, checking their values", () => {
    const o = parseArgs(["status", "--stack", "production", "--json"], "/repo");
    assert.deepEqual([o.command, o.stack, o.json], ["status", "production", true]);
    assert.equal(parseArgs(["--stack", "p", "--watch", "--check-every", "60"], "/repo").checkEverySeconds, 60);
    assert.throws(() => parseArgs(["--stack", "p", "--check-every", "0"], "/repo"), /--check-every: "0" is not a number of seconds/);
  });
});
