import { after, before, describe, it } from "node:test";
import * as assert from "node:assert/strict";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { DEPLOY_EXIT, HOST_CHECK_EXIT, renderBundle, renderDeployScript, renderDownScript, renderHostCheckScript } from "../../lib/remote-deploy";

/*
 * The rendered scripts run for real under /bin/sh here, against a stand-in `docker` and `curl`
 * that record what they were asked and behave according to the image in the compose file:
 * images named *unhealthy* report an unhealthy container, *crash* ones keep restarting.
 */
const FAKE_DOCKER = `#!/bin/sh
log="$FAKE_STATE/calls"
if [ "$1" = login ]; then pw=$(cat); echo "login $* pwlen=\${#pw}" >> "$log"; exit 0; fi
if [ "$1" = inspect ]; then
  img=$(cat "$FAKE_STATE/running" 2>/dev/null)
  case "$3" in
    *State.Status*) case "$img" in *crash*) echo restarting ;; *) echo running ;; esac ;;
    *RestartCount*) case "$img" in *crash*) echo 3 ;; *) echo 0 ;; esac ;;
    *Health*) case "$img" in *unhealthy*) echo unhealthy ;; *) echo healthy ;; esac ;;
  esac
  exit 0
fi
if [ "$1" = compose ]; then
  shift; file=""
  while [ $# -gt 0 ]; do case "$1" in -f) file="$2"; shift 2 ;; --project-name|--project-directory) shift 2 ;; *) break ;; esac; done
  echo "compose $*" >> "$log"
  case "$1" in
    version) echo "2.40.3"; exit 0 ;;
    pull) grep -q missing "$file" && exit 1; exit 0 ;;
    up) sed -n 's/^ *image: //p' "$file" > "$FAKE_STATE/running"
      # An engine restart recreates its socket.
      grep -q engine-restart "$file" && : > "$FAKE_STATE/docker.sock.new" && mv "$FAKE_STATE/docker.sock.new" "$FAKE_STATE/docker.sock"
      exit 0 ;;
    ps) echo cid123; exit 0 ;;
    logs) echo "backend | boom"; exit 0 ;;
    down) rm -f "$FAKE_STATE/running"; exit 0 ;;
  esac
fi
if [ "$1" = info ]; then [ -e "$FAKE_STATE/engine-down" ] && exit 1; exit 0; fi
exit 0
`;
const FAKE_CURL = `#!/bin/sh
img=$(cat "$FAKE_STATE/running" 2>/dev/null)
case "$img" in *unhealthy*|*crash*|"") exit 22 ;; esac
exit 0
`;

let root: string;
let bin: string;
let state: string;
let deployDir: string;

before(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), "deploy-script-"));
  bin = path.join(root, "bin");
  state = path.join(root, "state");
  deployDir = path.join(root, "opt", "backend");
  fs.mkdirSync(bin);
  fs.mkdirSync(state);
  fs.writeFileSync(path.join(bin, "docker"), FAKE_DOCKER, { mode: 0o755 });
  fs.writeFileSync(path.join(bin, "curl"), FAKE_CURL, { mode: 0o755 });
  fs.writeFileSync(path.join(state, "docker.sock"), "");
});
after(() => fs.rmSync(root, { recursive: true, force: true }));

function compose(image: string): string {
  return `name: backend\nservices:\n  backend:\n    image: ${image}\n`;
}

function deploy(image: string, env = "SECRET='s3cr3t-value'\n"): { code: number | null; stdout: string; stderr: string } {
  const script = renderDeployScript({
    deployDir,
    project: "backend",
    files: ["docker-compose.yml", ".env"],
    registry: { server: "127.0.0.1:5000", username: "robot$flux" },
    healthServices: ["backend"],
    healthUrl: "http://127.0.0.1:3001/api/health",
    deadlineSeconds: 3,
  });
  const bundle = renderBundle(
    [
      { name: "docker-compose.yml", content: compose(image), mode: "0644" },
      { name: ".env", content: env, mode: "0600" },
    ],
    { registryPassword: "pa$$ word" },
  );
  const r = spawnSync("/bin/sh", ["-c", script], { input: bundle, env: { ...process.env, PATH: `${bin}:${process.env.PATH}`, FAKE_STATE: state, DOCKER_HOST: `unix://${path.join(state, "docker.sock")}` }, encoding: "utf8" });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const read = (f: string): string => fs.readFileSync(path.join(deployDir, f), "utf8");

describe("deploy script", () => {
  it("fails with no previous release to restore on a first deploy that is unhealthy", () => {
    const r = deploy("r/backend:unhealthy-0");
    assert.equal(r.code, DEPLOY_EXIT.noPrevious, r.stderr);
    assert.match(r.stderr, /service backend is unhealthy/);
    assert.match(r.stderr, /no previous release to restore/);
    fs.rmSync(deployDir, { recursive: true });
  });

  it("deploys a healthy release, writing .env with mode 0600 and logging in through stdin", () => {
    const r = deploy("r/backend:good-1");
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /deploy: healthy after \d+s/);
    assert.equal(read("docker-compose.yml"), compose("r/backend:good-1"));
    assert.equal(read(".env"), "SECRET='s3cr3t-value'\n");
    assert.equal(fs.statSync(path.join(deployDir, ".env")).mode & 0o777, 0o600);
    const calls = fs.readFileSync(path.join(state, "calls"), "utf8");
    assert.match(calls, /login --username robot\$flux --password-stdin 127.0.0.1:5000 pwlen=9/);
    assert.doesNotMatch(calls + r.stdout + r.stderr, /pa\$\$ word|s3cr3t-value/);
    assert.match(calls, /compose pull --quiet\ncompose up -d --remove-orphans/);
  });

  it("on an unhealthy release prints its logs, restores the previous files and exits 10", () => {
    const r = deploy("r/backend:unhealthy-2", "SECRET='other'\n");
    assert.equal(r.code, DEPLOY_EXIT.restored, r.stderr);
    assert.match(r.stderr, /FAILED: health check failed/);
    assert.match(r.stderr, /backend \| boom/);
    assert.match(r.stderr, /previous release restored and healthy/);
    assert.equal(read("docker-compose.yml"), compose("r/backend:good-1"));
    assert.equal(read(".env"), "SECRET='s3cr3t-value'\n");
    assert.equal(fs.readFileSync(path.join(state, "running"), "utf8").trim(), "r/backend:good-1");
    assert.equal(fs.readFileSync(path.join(deployDir, ".release/failed/docker-compose.yml"), "utf8"), compose("r/backend:unhealthy-2"));
  });

  it("treats a crash loop as a failure and restores", () => {
    const r = deploy("r/backend:crash-3");
    assert.equal(r.code, DEPLOY_EXIT.restored, r.stderr);
    assert.match(r.stderr, /crash loop/);
    assert.equal(fs.readFileSync(path.join(state, "running"), "utf8").trim(), "r/backend:good-1");
  });

  it("leaves the running release untouched when the images cannot be pulled, with its own exit code", () => {
    const calls = path.join(state, "calls");
    fs.rmSync(calls, { force: true });
    const r = deploy("r/backend:missing-4");
    assert.equal(r.code, DEPLOY_EXIT.pullFailed, r.stderr);
    assert.match(r.stderr, /PULL: the images of the release could not be pulled; the running release was not touched/);
    assert.equal(read("docker-compose.yml"), compose("r/backend:good-1"));
    assert.equal(fs.readFileSync(path.join(state, "running"), "utf8").trim(), "r/backend:good-1");
    assert.doesNotMatch(fs.readFileSync(calls, "utf8"), /compose up/, "nothing was recreated");
  });

  it("does not judge a release whose health check failed while the Docker engine restarted", () => {
    const r = deploy("r/backend:unhealthy-engine-restart-7");
    assert.equal(r.code, DEPLOY_EXIT.engineUnreachable, r.stderr);
    assert.match(r.stderr, /ENGINE: the Docker engine on .* restarted during the deploy \(health check failed\); the release was not judged/);
    assert.doesNotMatch(r.stderr, /restoring/);
    // Put the last good release back for the tests after this one.
    assert.equal(deploy("r/backend:good-1").code, 0);
  });

  it("stops before any change when the Docker engine does not answer, with its own exit code", () => {
    fs.writeFileSync(path.join(state, "engine-down"), "");
    try {
      const r = deploy("r/backend:good-6");
      assert.equal(r.code, DEPLOY_EXIT.engineUnreachable, r.stderr);
      assert.match(r.stderr, /ENGINE: the Docker engine on .* does not answer/);
      assert.equal(read("docker-compose.yml"), compose("r/backend:good-1"));
    } finally {
      fs.rmSync(path.join(state, "engine-down"));
    }
  });

  it("keeps the last good release as previous across a new promotion", () => {
    assert.equal(deploy("r/backend:good-5").code, 0);
    assert.equal(fs.readFileSync(path.join(deployDir, ".release/previous/docker-compose.yml"), "utf8"), compose("r/backend:good-1"));
    const r = deploy("r/backend:unhealthy-6");
    assert.equal(r.code, DEPLOY_EXIT.restored);
    assert.equal(fs.readFileSync(path.join(state, "running"), "utf8").trim(), "r/backend:good-5");
  });

  it("stops the project on delete without removing volumes", () => {
    const script = renderDownScript({ deployDir, project: "backend" });
    const r = spawnSync("/bin/sh", ["-c", script], { env: { ...process.env, PATH: `${bin}:${process.env.PATH}`, FAKE_STATE: state, DOCKER_HOST: `unix://${path.join(state, "docker.sock")}` }, encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);
    const calls = fs.readFileSync(path.join(state, "calls"), "utf8").trim().split("\n");
    assert.equal(calls[calls.length - 1], "compose down --remove-orphans");
  });

  it("checks the host and names what is missing", () => {
    const ok = spawnSync("/bin/sh", ["-c", renderHostCheckScript({ deployDir })], { env: { ...process.env, PATH: `${bin}:${process.env.PATH}`, FAKE_STATE: state, DOCKER_HOST: `unix://${path.join(state, "docker.sock")}` }, encoding: "utf8" });
    assert.equal(ok.status, 0, ok.stderr);
    assert.match(ok.stdout, /host-check: ok: 2.40.3/);
    const none = spawnSync("/bin/sh", ["-c", renderHostCheckScript({ deployDir })], { env: { PATH: "/nonexistent" }, encoding: "utf8" });
    assert.equal(none.status, HOST_CHECK_EXIT.noDocker);
    assert.match(none.stderr, /docker is not installed/);
  });

  it("refuses relative directories and odd file names", () => {
    assert.throws(() => renderDownScript({ deployDir: "opt/x", project: "p" }), /deployDir: "opt\/x" must be an absolute path/);
    assert.throws(() => renderBundle([{ name: "../x", content: "", mode: "0644" }]), /must be a plain file name/);
  });
});
