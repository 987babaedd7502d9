import { after, describe, it } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "fs";
import * as net from "net";
import * as os from "os";
import * as path from "path";
import { isAlive, readState } from "../../sandbox/processes";
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

    // A restart comes back on its old port. Another process on this machine may take a free
    // port between the stop and the start (the tests run side by side); a registry that moves
    // for no reason moves on every try, so three moves in a row fail the test.
    let current = first;
    let restarted = first;
    try {
      for (let attempt = 1; ; attempt++) {
        await current.stop();
        assert.equal(isAlive(current.pid), false);
        assert.deepEqual(readState(dir).processes, {});
        restarted = await startRegistry(dir);
        assert.notEqual(restarted.pid, current.pid);
        if (restarted.host === current.host || attempt === 3) {
          assert.equal(restarted.host, current.host, `the registry moved from ${current.host} to ${restarted.host} on three restarts in a row`);
          break;
        }
        current = restarted;
      }
      assert.equal(restarted.password, first.password);
      assert.equal(await restarted.digest("backend", "main-abcdef0-1700000000"), digest);
      assert.equal(await restarted.digest("backend", "missing"), undefined);

      // Its port taken while it was stopped: it starts on another and keeps its images.
      await restarted.stop();
      const taker = net.createServer();
      await new Promise<void>((resolve, reject) => taker.once("error", reject).listen(Number(restarted.host.split(":")[1]), "127.0.0.1", resolve));
      try {
        const moved = await startRegistry(dir);
        assert.notEqual(moved.host, restarted.host);
        assert.equal(await moved.digest("backend", "main-abcdef0-1700000000"), digest);
        restarted = moved;
      } finally {
        await new Promise((resolve) => taker.close(resolve));
      }
    } finally {
      await restarted.stop({ keepData: false });
    }
    assert.equal(isAlive(restarted.pid), false);
    assert.equal(fs.existsSync(restarted.dataDir), false);
  });
});
