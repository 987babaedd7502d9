import { after, describe, it } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { isAlive, portOpen, readState } from "../../sandbox/processes";
import { startRegistry } from "../../sandbox/registry";

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "hl-reg-"));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

describe("sandbox registry", () => {
  it("is idempotent, keeps its images, address and credentials across a restart, and stops cleanly", async () => {
    const first = await startRegistry(dir);
    const digest = await first.push("backend", "main-abcdef0-1700000000");
    const again = await startRegistry(dir);
    assert.equal(again.pid, first.pid);
    assert.equal(again.host, first.host);

    const unauth = await fetch(`http://${first.host}/v2/backend/tags/list`);
    assert.equal(unauth.status, 401);

    await first.stop();
    assert.equal(isAlive(first.pid), false);
    assert.deepEqual(readState(dir).processes, {});

    const restarted = await startRegistry(dir);
    try {
      assert.notEqual(restarted.pid, first.pid);
      // Its old port again, unless another process on the machine took it meanwhile.
      if (restarted.host !== first.host) {
        assert.equal(await portOpen("127.0.0.1", Number(first.host.split(":")[1])), true, `the registry moved from ${first.host} to ${restarted.host} though its port was free`);
      }
      assert.equal(restarted.password, first.password);
      assert.equal(await restarted.digest("backend", "main-abcdef0-1700000000"), digest);
      assert.equal(await restarted.digest("backend", "missing"), undefined);
    } finally {
      await restarted.stop({ keepData: false });
    }
    assert.equal(isAlive(restarted.pid), false);
    assert.equal(fs.existsSync(restarted.dataDir), false);
  });
});
