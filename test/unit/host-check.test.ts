import { after, before, describe, it } from "node:test";
import * as assert from "node:assert/strict";
import { spawnSync } from "child_process";
import { X509Certificate } from "crypto";
import * as fs from "fs";
import * as path from "path";
import { DOCKER_DEFAULT_REGISTRY_CONFIG, FakeDockerHost, fakeDockerHost, writeRegistryConfig } from "../support/fake-docker";
import { PAYLOADS } from "../support/hostile";
import { Recorder, installMocks, settle } from "../support/mocks";
import { makeCertificates } from "../support/tls";
import { HOST_CHECK_EXIT, renderHostCheckScript } from "../../lib/remote-deploy";

const REGISTRY = "192.168.0.40:5000";

let host: FakeDockerHost;
let rec: Recorder;

before(() => {
  host = fakeDockerHost("host-check-");
  rec = installMocks();
});
after(() => host.remove());

/** The engine's RegistryConfig with these IndexConfigs and CIDRs, shaped as `docker info` prints it. */
function engine(indexConfigs: Record<string, { secure: boolean; mirrors?: string[] }>, cidrs: string[] = DOCKER_DEFAULT_REGISTRY_CONFIG.InsecureRegistryCIDRs): unknown {
  const entries = Object.entries(indexConfigs).map(([name, c]) => [name, { Name: name, Mirrors: c.mirrors ?? [], Secure: c.secure, Official: false }]);
  return { ...DOCKER_DEFAULT_REGISTRY_CONFIG, IndexConfigs: { ...DOCKER_DEFAULT_REGISTRY_CONFIG.IndexConfigs, ...Object.fromEntries(entries) }, InsecureRegistryCIDRs: cidrs };
}

/** Runs a host check script on the stand-in host whose engine reports `config` (Docker's default when undefined). */
function run(script: string, config?: unknown): { code: number | null; stdout: string; stderr: string } {
  fs.rmSync(path.join(host.state, "registry-config.json"), { force: true });
  fs.rmSync(path.join(host.state, "info-calls"), { force: true });
  fs.rmSync(host.deployDir, { recursive: true, force: true });
  if (config !== undefined) {
    writeRegistryConfig(host.state, config);
  }
  const r = spawnSync("/bin/sh", ["-c", script], { env: host.env(), encoding: "utf8" });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const check = (registry: string, config?: unknown): ReturnType<typeof run> => run(renderHostCheckScript({ deployDir: host.deployDir, insecureRegistry: registry }), config);

function refusal(registry: string): RegExp {
  const esc = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  return new RegExp(
    `^host-check: the Docker engine on \\S+ does not allow the plain-HTTP registry ${esc(registry)}; ` +
      `add it to "insecure-registries" in /etc/docker/daemon.json on \\S+ \\(${esc(`"insecure-registries": ["${registry}"]`)}\\) ` +
      `and restart dockerd \\(sudo systemctl restart docker\\)$`,
    "m",
  );
}

describe("host check: a plain-HTTP registry must be allowed by the Docker engine", () => {
  it("accepts a 127.x registry through the engine's default insecure CIDR 127.0.0.0/8", () => {
    for (const registry of ["127.0.0.1:5000", "127.12.0.9:5000"]) {
      const r = check(registry);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /host-check: ok: 2.40.3/);
    }
    assert.equal(fs.readFileSync(path.join(host.state, "info-calls"), "utf8"), "info --format {{json .RegistryConfig}}\n");
  });

  it("accepts a registry the engine lists by its exact name with Secure false", () => {
    const r = check(REGISTRY, engine({ [REGISTRY]: { secure: false } }));
    assert.equal(r.code, 0, r.stderr);
    const named = check("harbor.lan:5000", engine({ "harbor.lan:5000": { secure: false } }));
    assert.equal(named.code, 0, named.stderr);
  });

  it("refuses an engine without it before anything changes, naming the daemon.json setting and host:port", () => {
    const r = check(REGISTRY);
    assert.equal(r.code, HOST_CHECK_EXIT.insecureRegistry);
    assert.match(r.stderr, refusal(REGISTRY));
    assert.equal(r.stdout, "");
    assert.ok(!fs.existsSync(host.deployDir), "the deploy directory was not created");
  });

  it("decides as dockerd: an exact entry wins over the CIDRs; another port, text in a mirror URL or a DNS name in a CIDR do not count", () => {
    // An entry of the exact name that is secure: dockerd never looks at the CIDRs.
    assert.match(check("127.0.0.1:5000", engine({ "127.0.0.1:5000": { secure: true } })).stderr, refusal("127.0.0.1:5000"));
    assert.equal(check(REGISTRY, engine({ "192.168.0.40:5001": { secure: false } })).code, HOST_CHECK_EXIT.insecureRegistry);
    assert.equal(check(REGISTRY, engine({ "docker.io": { secure: true, mirrors: [`http://mirror.lan/"${REGISTRY}":{"Secure":false}`] } })).code, HOST_CHECK_EXIT.insecureRegistry);
    // A CIDR of the user's own covers an IPv4 host, whatever its port; a DNS name is matched only by name.
    assert.equal(check(REGISTRY, engine({}, ["::1/128", "127.0.0.0/8", "192.168.0.0/24"])).code, 0);
    assert.equal(check("192.168.0.40", engine({}, ["192.168.0.0/24"])).code, 0);
    assert.equal(check("192.168.1.40:5000", engine({}, ["192.168.0.0/24"])).code, HOST_CHECK_EXIT.insecureRegistry);
    assert.equal(check("harbor.lan:5000", engine({}, ["0.0.0.0/0"])).code, HOST_CHECK_EXIT.insecureRegistry);
  });

  it("refuses an engine whose registry settings cannot be read, saying so", () => {
    // An answer that is not a RegistryConfig (an engine too old or too odd to report one).
    const r = check(REGISTRY, "");
    assert.equal(r.code, HOST_CHECK_EXIT.insecureRegistry);
    assert.match(r.stderr, /host-check: could not read the registry settings of the Docker engine on \S+ \(docker info --format '\{\{json \.RegistryConfig\}\}'\), needed to check the plain-HTTP registry 192\.168\.0\.40:5000/);
  });
});

describe("HostCheck: the registry is checked only where it is insecure", () => {
  const connection = { host: "vm", user: "ubuntu", privateKey: "key", hostKey: "ssh-ed25519 AAAA" };

  it("passes the registry to the check when insecure, and checks nothing of it otherwise", async () => {
    const { HostCheck } = await import("../../components/host-check");
    new HostCheck("https-vm", { connection, deployDir: host.deployDir, trigger: "r1", registry: { host: REGISTRY, insecure: false } });
    new HostCheck("plain-vm", { connection, deployDir: host.deployDir, trigger: "r1", registry: { host: REGISTRY, insecure: true } });
    new HostCheck("no-registry-vm", { connection, deployDir: host.deployDir, trigger: "r1" });
    await settle(rec);
    const script = (name: string): string => rec.byName(name).inputs.create as string;
    const plain = renderHostCheckScript({ deployDir: host.deployDir, installDocker: false });
    assert.equal(script("https-vm-check"), plain);
    assert.equal(script("no-registry-vm-check"), plain);
    assert.equal(script("plain-vm-check"), renderHostCheckScript({ deployDir: host.deployDir, installDocker: false, insecureRegistry: REGISTRY }));

    // Not insecure: the engine's settings are never asked for, even on an engine that would refuse it.
    const r = run(script("https-vm-check"));
    assert.equal(r.code, 0, r.stderr);
    assert.ok(!fs.existsSync(path.join(host.state, "info-calls")), "docker info --format was not run");
    assert.match(plain, /^REGISTRY=''$/m);
    assert.match(plain, /^ENGINE_ALLOWS_INSECURE=''$/m);
  });

  it("takes a registry value into the script only as quoted parameters, and refuses hostile ones", async () => {
    const { HostCheck } = await import("../../components/host-check");
    for (const registry of [REGISTRY, "harbor.lan:5000", "127.0.0.1"]) {
      const lines = renderHostCheckScript({ deployDir: "/opt/backend", insecureRegistry: registry }).split("\n");
      // The awk program reads it from the environment; the body names only "$REGISTRY".
      assert.deepEqual(
        lines.filter((l) => l.includes(registry)),
        [`REGISTRY='${registry}'`],
      );
    }
    for (const [what, payload] of Object.entries(PAYLOADS)) {
      const registry = `${REGISTRY}${payload}`;
      assert.throws(
        () => renderHostCheckScript({ deployDir: "/opt/backend", insecureRegistry: registry }),
        (e: Error) => e.message.startsWith(`insecureRegistry: ${JSON.stringify(registry)} is not`),
        what,
      );
      assert.throws(() => new HostCheck(`hostile-${what.replace(/\W/g, "-")}`, { connection, deployDir: "/opt/backend", trigger: "r1", registry: { host: registry, insecure: true } }), /insecureRegistry: /, what);
    }
    await settle(rec);
    assert.ok(!rec.resources.some((r) => r.name.startsWith("hostile-") && r.name.endsWith("-check")), "no check script was registered with a hostile registry");
  });
});

describe("host check: an https registry with its own CA must be trusted by the Docker engine", () => {
  const HTTPS = "harbor.lan:443";
  let certs: ReturnType<typeof makeCertificates>;
  let certsDir: string;

  before(() => {
    const dir = fs.mkdtempSync(path.join(host.state, "tls-"));
    certs = makeCertificates(dir);
    certsDir = path.join(host.state, "certs.d");
  });

  const caCheck = (caCert: string): ReturnType<typeof run> => run(renderHostCheckScript({ deployDir: host.deployDir, registryCa: { host: HTTPS, caCert, certsDir } }));
  const placeCa = (files: Record<string, string>): void => {
    fs.rmSync(certsDir, { recursive: true, force: true });
    fs.mkdirSync(path.join(certsDir, HTTPS), { recursive: true });
    for (const [name, text] of Object.entries(files)) {
      fs.writeFileSync(path.join(certsDir, HTTPS, name), text);
    }
  };

  it("refuses an engine without the CA before anything changes, naming the registry, the CA's fingerprint and where to put it", () => {
    fs.rmSync(certsDir, { recursive: true, force: true });
    const r = caCheck(certs.ca);
    assert.equal(r.code, HOST_CHECK_EXIT.untrustedRegistry, r.stderr);
    const fingerprint = new X509Certificate(certs.ca).fingerprint256;
    assert.match(r.stderr, new RegExp(`does not trust the CA of the registry harbor\\.lan:443 \\(homelab:registryCaCert, SHA-256 ${fingerprint}\\): put it in ${certsDir}/harbor\\.lan:443/ca\\.crt`));
    assert.ok(!fs.existsSync(host.deployDir), "the deploy directory was not created");
  });

  it("accepts the CA in certs.d/<host:port>/*.crt, however the file wraps it and whatever else it holds", () => {
    placeCa({ "ca.crt": certs.ca });
    assert.equal(caCheck(certs.ca).code, 0);
    // Another CA first, CRLF line ends and a 76-column wrap: the same certificate all the same.
    const body = certs.ca.replace(/-----[^-]+-----/g, "").replace(/\s+/g, "");
    placeCa({ "bundle.crt": `${certs.otherCa}-----BEGIN CERTIFICATE-----\r\n${body.replace(/(.{76})/g, "$1\r\n")}\r\n-----END CERTIFICATE-----\r\n` });
    assert.equal(caCheck(certs.ca).code, 0);
  });

  it("does not count another CA, a client certificate (.cert) or another registry's directory", () => {
    placeCa({ "ca.crt": certs.otherCa, "client.cert": certs.ca });
    assert.equal(caCheck(certs.ca).code, HOST_CHECK_EXIT.untrustedRegistry);
    fs.rmSync(certsDir, { recursive: true, force: true });
    fs.mkdirSync(path.join(certsDir, "harbor.lan:5000"), { recursive: true });
    fs.writeFileSync(path.join(certsDir, "harbor.lan:5000", "ca.crt"), certs.ca);
    assert.equal(caCheck(certs.ca).code, HOST_CHECK_EXIT.untrustedRegistry);
  });

  it("HostCheck checks the CA only for an https registry given one", async () => {
    const { HostCheck } = await import("../../components/host-check");
    const connection = { host: "vm", user: "ubuntu", privateKey: "key", hostKey: "ssh-ed25519 AAAA" };
    new HostCheck("ca-vm", { connection, deployDir: host.deployDir, trigger: "r1", registry: { host: HTTPS, insecure: false, caCert: certs.ca } });
    await settle(rec);
    const script = rec.byName("ca-vm-check").inputs.create as string;
    assert.equal(script, renderHostCheckScript({ deployDir: host.deployDir, installDocker: false, registryCa: { host: HTTPS, caCert: certs.ca } }));
    assert.match(script, /^CA_REGISTRY='harbor\.lan:443'$/m);
    assert.match(script, /^CERTS_DIR='\/etc\/docker\/certs\.d'$/m);
    assert.match(renderHostCheckScript({ deployDir: host.deployDir }), /^CA_REGISTRY=''$/m);
  });

  it("refuses a CA value that holds no certificate, or a registry that is not host[:port]", () => {
    assert.throws(() => renderHostCheckScript({ deployDir: "/opt/backend", registryCa: { host: HTTPS, caCert: "not a certificate" } }), /^Error: registryCa\.caCert: holds no PEM certificate$/);
    assert.throws(() => renderHostCheckScript({ deployDir: "/opt/backend", registryCa: { host: "harbor.lan:443; id", caCert: certs.ca } }), /^Error: registryCa\.host: "harbor\.lan:443; id" is not host\[:port\]/);
  });
});
