import { describe, it } from "node:test";
import * as assert from "node:assert/strict";
import { spawnSync } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { VPS_APP_SCRIPTS } from "../../sandbox/vps-images";

/*
 * The sandbox demo app's self-update webhook, run with busybox as its CGI runs in the image, a
 * fake docker CLI recording what it is asked: the signature is checked with the secret before
 * anything reaches the engine.
 */
const BUSYBOX = "/bin/busybox";
const SECRET = crypto.randomBytes(32).toString("hex");

function setUp(): { dir: string; run: (body: string, env: Record<string, string>) => { status: string; calls: string } } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "vps-webhook-"));
  const bin = path.join(dir, "bin");
  fs.mkdirSync(bin);
  for (const tool of ["sh", "hostname", "od", "tr", "sha256sum", "cut", "xxd", "printf", "cat", "head", "mktemp", "rm"]) {
    fs.symlinkSync(BUSYBOX, path.join(bin, tool));
  }
  fs.writeFileSync(path.join(bin, "docker"), `#!/bin/sh\necho "docker $*" >> ${dir}/calls\n[ "$1" = inspect ] && echo sha256:1mage\nexit 0\n`, { mode: 0o755 });
  fs.writeFileSync(path.join(dir, "hmac.sh"), VPS_APP_SCRIPTS.hmac);
  const cgi = path.join(dir, "self-update");
  fs.writeFileSync(cgi, VPS_APP_SCRIPTS.webhook.replace("/app/hmac.sh", path.join(dir, "hmac.sh")).replace(/@TAG@/g, "v1"), { mode: 0o755 });
  return {
    dir,
    run(body, env) {
      fs.rmSync(path.join(dir, "calls"), { force: true });
      const r = spawnSync(BUSYBOX, ["sh", cgi], {
        input: body,
        env: { PATH: bin, TMPDIR: dir, REQUEST_METHOD: "POST", CONTENT_LENGTH: String(Buffer.byteLength(body)), ...env },
        encoding: "utf8",
      });
      const calls = fs.existsSync(path.join(dir, "calls")) ? fs.readFileSync(path.join(dir, "calls"), "utf8") : "";
      return { status: r.stdout.split("\r\n")[0], calls };
    },
  };
}

describe("sandbox demo app's self-update webhook", { skip: !fs.existsSync(BUSYBOX) && "busybox-static is not installed" }, () => {
  const self = { GITHUB_WEBHOOK_SECRET: SECRET, COMPOSE_FILE: "/opt/app/docker-compose.yml", COMPOSE_PROJECT_NAME: "app" };
  const body = JSON.stringify({ ref: "refs/heads/main", after: "0".repeat(40) });
  const sign = (key: string, text: string): string => `sha256=${crypto.createHmac("sha256", key).update(text).digest("hex")}`;

  it("starts the update in a container of its own when GitHub's signature matches the secret", () => {
    const t = setUp();
    try {
      const r = t.run(body, { ...self, HTTP_X_HUB_SIGNATURE_256: sign(SECRET, body) });
      assert.equal(r.status, "Status: 202 Accepted");
      assert.match(r.calls, /^docker run -d --rm --name app-self-update --network none --volumes-from (\S+) -e COMPOSE_FILE -e COMPOSE_PROJECT_NAME -e DOCKER_AUTH_CONFIG -e SELF_CONTAINER=\1 --entrypoint \/app\/self-update sha256:1mage$/m);
    } finally {
      fs.rmSync(t.dir, { recursive: true, force: true });
    }
  });

  it("refuses a wrong or missing signature, and a body changed after signing, before touching the engine", () => {
    const t = setUp();
    try {
      for (const signature of [sign("another-secret", body), "", `sha256=${"0".repeat(64)}`]) {
        const r = t.run(body, { ...self, HTTP_X_HUB_SIGNATURE_256: signature });
        assert.equal(r.status, "Status: 401 Unauthorized");
        assert.equal(r.calls, "");
      }
      assert.equal(t.run(`${body} `, { ...self, HTTP_X_HUB_SIGNATURE_256: sign(SECRET, body) }).status, "Status: 401 Unauthorized");
    } finally {
      fs.rmSync(t.dir, { recursive: true, force: true });
    }
  });

  it("is off where the program owns the version (no secret, no compose project)", () => {
    const t = setUp();
    try {
      const r = t.run(body, { HTTP_X_HUB_SIGNATURE_256: sign("", body) });
      assert.equal(r.status, "Status: 404 Not Found");
      assert.equal(r.calls, "");
    } finally {
      fs.rmSync(t.dir, { recursive: true, force: true });
    }
  });

  it("computes HMAC-SHA256 as RFC 2104 does, for short, block-sized and long keys", () => {
    const t = setUp();
    try {
      const file = path.join(t.dir, "msg");
      fs.writeFileSync(file, Buffer.from([0, 255, 10, 13, 32, 65]));
      for (const key of ["k", SECRET, "x".repeat(100)]) {
        const r = spawnSync(BUSYBOX, ["sh", "-c", `. ${t.dir}/hmac.sh; hmac_sha256 "$1" "$2"`, "sh", key, file], { env: { PATH: path.join(t.dir, "bin") }, encoding: "utf8" });
        assert.equal(r.stdout.trim(), crypto.createHmac("sha256", key).update(fs.readFileSync(file)).digest("hex"), `key of ${key.length} bytes`);
      }
    } finally {
      fs.rmSync(t.dir, { recursive: true, force: true });
    }
  });
});
