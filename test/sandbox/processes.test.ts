import { after, describe, it } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "fs";
import * as http from "http";
import * as os from "os";
import * as path from "path";
import {
  freePort,
  reservePort,
  isAlive,
  readState,
  runningProcess,
  startProcess,
  stopPid,
  stopProcess,
  waitFor,
  waitForPort,
  waitForUrl,
} from "../../sandbox/processes";

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "hl-proc-"));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

describe("sandbox processes", () => {
  it("starts a detached process with log and pidfile, records it and stops it by PID", async () => {
    const rec = startProcess(dir, { name: "sleeper", command: "/bin/sh", args: ["-c", "echo hello; exec sleep 300"] });
    assert.ok(isAlive(rec.pid, rec.startTime));
    assert.equal(fs.readFileSync(path.join(dir, "sleeper.pid"), "utf8").trim(), String(rec.pid));
    assert.equal(readState(dir).processes.sleeper.pid, rec.pid);
    assert.equal(runningProcess(dir, "sleeper")?.pid, rec.pid);
    await waitFor(() => fs.readFileSync(rec.logFile, "utf8").includes("hello"), { what: "sleeper's log line", timeoutMs: 5000 });
    await stopProcess(dir, "sleeper");
    assert.equal(isAlive(rec.pid), false);
    assert.equal(readState(dir).processes.sleeper, undefined);
    assert.equal(fs.existsSync(path.join(dir, "sleeper.pid")), false);
  });

  it("a start time that does not match means another process: never signalled", async () => {
    const rec = startProcess(dir, { name: "other", command: "sleep", args: ["300"] });
    assert.equal(isAlive(rec.pid, (rec.startTime ?? 0) + 1), false);
    await stopPid(rec.pid, { startTime: (rec.startTime ?? 0) + 1 });
    assert.ok(isAlive(rec.pid, rec.startTime), "a PID with another start time must not be killed");
    await stopProcess(dir, "other");
    assert.equal(isAlive(rec.pid), false);
  });

  it("escalates to SIGKILL when SIGTERM is ignored", async () => {
    const rec = startProcess(dir, { name: "stubborn", command: "/bin/sh", args: ["-c", "trap '' TERM; while :; do sleep 0.1; done"] });
    await new Promise((r) => setTimeout(r, 200));
    const started = Date.now();
    await stopPid(rec.pid, { startTime: rec.startTime, timeoutMs: 500 });
    assert.equal(isAlive(rec.pid), false);
    assert.ok(Date.now() - started < 5000);
    await stopProcess(dir, "stubborn");
  });

  it("free ports come from below the kernel's ephemeral range and Kubernetes' NodePorts, so no other process's listen(0) takes them", async () => {
    const low = Number(fs.readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/)[0]);
    const ports = [await freePort(), await freePort(), await freePort()];
    for (const port of ports) {
      assert.ok(port >= 20000 && port < Math.min(low, 30000), `port ${port} outside [20000, ${Math.min(low, 30000)})`);
    }
  });

  it("never hands out a port twice, and a port another process reserved moments ago is not taken", async () => {
    const reservations = fs.mkdtempSync(path.join(os.tmpdir(), "ports-"));
    try {
      const ports: number[] = [];
      for (let i = 0; i < 30; i++) {
        ports.push(await freePort(reservations));
      }
      assert.equal(new Set(ports).size, ports.length, `a port handed out twice: ${ports.join(" ")}`);
      assert.deepEqual(fs.readdirSync(reservations).map(Number).sort(), [...ports].sort());
      // Another process's fresh reservation holds; an old one (its services long started) does not.
      assert.equal(reservePort(reservations, ports[0]), false);
      const old = new Date(Date.now() - 60 * 60_000);
      fs.utimesSync(path.join(reservations, String(ports[0])), old, old);
      assert.equal(reservePort(reservations, ports[0]), true);
    } finally {
      fs.rmSync(reservations, { recursive: true, force: true });
    }
  });

  it("wait helpers name what did not come up and the log", async () => {
    const port = await freePort();
    const log = path.join(dir, "svc.log");
    fs.writeFileSync(log, "svc: bind failed: address in use\n");
    await assert.rejects(
      waitForPort("127.0.0.1", port, { what: "svc on its port", timeoutMs: 300, logFile: log }),
      (e: Error) => /svc on its port did not come up within/.test(e.message) && e.message.includes(log) && /bind failed/.test(e.message),
    );
    const dead = startProcess(dir, { name: "dies", command: "/bin/sh", args: ["-c", "echo dying; exit 3"] });
    await assert.rejects(
      waitForUrl(`http://127.0.0.1:${port}/`, { what: "dies' HTTP", timeoutMs: 10_000, pid: dead.pid, logFile: dead.logFile }),
      /dies' HTTP did not come up: process \d+ exited; log .*dies\.log:\ndying/,
    );
    const server = http.createServer((_req, res) => {
      res.statusCode = 204;
      res.end();
    });
    await new Promise<void>((r) => server.listen(port, "127.0.0.1", r));
    try {
      await waitForPort("127.0.0.1", port, { timeoutMs: 2000 });
      await waitForUrl(`http://127.0.0.1:${port}/`, { timeoutMs: 2000 });
    } finally {
      server.closeAllConnections();
      server.close();
    }
  });
});
