import { describe, it } from "node:test";
import * as assert from "node:assert/strict";
import { RestartsUnreadable, composeRestarts, describeSource, podRestarts, restartsBetween } from "../../lib/restarts";

describe("restarts inside a soak", () => {
  it("sums each pod's containers and keeps the last termination (exit code and reason), from a PodList", () => {
    const list = {
      kind: "PodList",
      items: [
        {
          metadata: { name: "frontend-abc" },
          status: {
            containerStatuses: [
              { name: "web", restartCount: 2, lastState: { terminated: { exitCode: 137, reason: "OOMKilled" } } },
              { name: "sidecar", restartCount: 1 },
            ],
          },
        },
        { metadata: { name: "frontend-def" }, status: { containerStatuses: [{ name: "web", restartCount: 0, lastState: {} }] } },
        { metadata: { name: "frontend-pending" }, status: {} },
      ],
    };
    assert.deepEqual(podRestarts(list), {
      "frontend-abc": { restarts: 3, lastExit: "exit code 137, OOMKilled" },
      "frontend-def": { restarts: 0 },
      "frontend-pending": { restarts: 0 },
    });
  });

  it("refuses an answer that is not a pod list as unreadable", () => {
    assert.throws(() => podRestarts({ kind: "Status", message: "forbidden" }), RestartsUnreadable);
  });

  it("reads the named services' containers from the inspect script, with a stopped one marked", () => {
    const out = [
      "file docker-compose.yml 1f",
      "container backend running healthy 4 reg.example:5000/backend@sha256:ab",
      "container worker exited none 0 reg.example:5000/worker:1",
    ].join("\n");
    assert.deepEqual(composeRestarts(out, ["backend", "worker"]), { backend: { restarts: 4 }, worker: { restarts: 0, notRunning: "exited" } });
    assert.deepEqual(composeRestarts(out, ["backend"]), { backend: { restarts: 4 } });
  });

  it("calls an engine that does not answer unreadable, not a restart", () => {
    assert.throws(() => composeRestarts("engine down\n", ["backend"]), /Docker engine does not answer/);
  });

  it("names what restarted in the window: a rise, a pod new to the window with restarts, a container that stopped", () => {
    assert.equal(restartsBetween({ a: { restarts: 1 } }, { a: { restarts: 1 } }), undefined);
    assert.equal(restartsBetween({ a: { restarts: 1 } }, { a: { restarts: 3, lastExit: "exit code 1, Error" } }), "a restarted 2 time(s) (last: exit code 1, Error)");
    assert.equal(restartsBetween({}, { b: { restarts: 1 } }), "b restarted 1 time(s)");
    assert.equal(restartsBetween({}, { b: { restarts: 0 } }), undefined);
    assert.equal(restartsBetween({ c: { restarts: 0 } }, { c: { restarts: 0, notRunning: "exited" } }), "c is exited");
    assert.equal(restartsBetween({ a: { restarts: 0 } }, {}), undefined, "a pod gone is for the probes to judge");
    assert.equal(restartsBetween({}, { z: { restarts: 1 }, a: { restarts: 1 } }), "a restarted 1 time(s); z restarted 1 time(s)");
  });

  it("describes a source without its credentials", () => {
    const pods = describeSource({ kind: "pods", kubeconfig: "client-key-data: SECRET", namespace: "website", selector: "app=web" });
    const vm = describeSource({ kind: "compose", connection: { host: "10.0.0.5", port: 22, user: "deploy", privateKey: "SECRET" }, inspectScript: "x", services: ["backend"] });
    assert.equal(pods, "the pods app=web in website");
    assert.equal(vm, "the backend container(s) on 10.0.0.5");
  });
});
