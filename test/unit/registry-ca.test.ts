import { after, before, describe, it } from "node:test";
import * as assert from "node:assert/strict";
import { X509Certificate } from "crypto";
import * as fs from "fs";
import * as https from "https";
import type { AddressInfo } from "net";
import * as os from "os";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import { caBundleProblem, caFingerprints, certificateBlocks } from "../../lib/ca-cert";
import { ConfigError, parseConfig } from "../../lib/config";
import { resolveDigest } from "../../lib/registry-client";
import { listTags } from "../../sandbox/image-automation";
import { DIGEST_A, DIGEST_B, SECRET_KEYS, TAG_A, TAG_B, releaseText, validConfig } from "../support/fixtures";
import { Recorder, installMocks, settle, valueOf } from "../support/mocks";
import { makeCertificates } from "../support/tls";

/*
 * An https registry whose certificate a CA of the user's own signed (homelab:registryCaCert): the
 * program's digest lookups, Flux's ImageRepository (certSecretRef) and the VM check trust it.
 */
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "registry-ca-"));
const certs = makeCertificates(dir);
after(() => fs.rmSync(dir, { recursive: true, force: true }));
const isSecret = (k: string): boolean => SECRET_KEYS.includes(k);
const HTTPS = { "homelab:registryInsecure": "false", "homelab:registryCaCert": certs.ca };

function problems(overrides: Record<string, string>): string[] {
  try {
    parseConfig(validConfig(overrides), isSecret);
  } catch (e) {
    assert.ok(e instanceof ConfigError, String(e));
    return [...e.problems];
  }
  return [];
}

describe("registry CA: config", () => {
  it("takes a PEM CA certificate for an https registry", () => {
    assert.equal(parseConfig(validConfig(HTTPS), isSecret).homelab!.settings.registry.caCert, certs.ca);
    assert.equal(parseConfig(validConfig(), isSecret).homelab!.settings.registry.caCert, undefined, "none by default");
    assert.equal(caBundleProblem(`${certs.otherCa}\n${certs.ca}`), undefined, "a bundle of several");
    assert.deepEqual(caFingerprints(certs.ca), [new X509Certificate(certs.ca).fingerprint256]);
  });

  it("refuses a CA for a plain-HTTP registry, naming both keys", () => {
    assert.deepEqual(problems({ "homelab:registryCaCert": certs.ca }), [
      "homelab:registryCaCert: a CA certificate is for an https registry, and homelab:registryInsecure is true (plain HTTP); set homelab:registryInsecure false",
    ]);
  });

  it("refuses what is not a certificate without quoting it, a private key above all", () => {
    const key = problems({ ...HTTPS, "homelab:registryCaCert": certs.caKey });
    assert.deepEqual(key, ["homelab:registryCaCert: holds a private key; it takes only the CA's certificate (PEM), which is not secret"]);
    const body = certs.caKey.split("\n")[1];
    assert.ok(!key.join("\n").includes(body.slice(0, 16)), "no part of the key is quoted");
    assert.deepEqual(problems({ ...HTTPS, "homelab:registryCaCert": "ca.crt" }), [
      "homelab:registryCaCert: holds no PEM certificate (-----BEGIN CERTIFICATE----- … -----END CERTIFICATE-----)",
    ]);
    const broken = certs.ca.replace(/\n[A-Za-z0-9+/]{20}/, "\nAAAAAAAAAAAAAAAAAAAA");
    assert.match(problems({ ...HTTPS, "homelab:registryCaCert": broken })[0], /^homelab:registryCaCert: has certificate 1 that is not a valid X\.509 certificate/);
  });

  it("reads each certificate however it is wrapped", () => {
    const body = certs.ca.replace(/-----[^-]+-----/g, "").replace(/\s+/g, "");
    const crlf = `-----BEGIN CERTIFICATE-----\r\n${body.replace(/(.{76})/g, "$1\r\n")}\r\n-----END CERTIFICATE-----\r\n`;
    assert.deepEqual(certificateBlocks(crlf), certificateBlocks(certs.ca));
    assert.equal(certificateBlocks(`${certs.ca}${certs.otherCa}`).length, 2);
  });
});

describe("registry CA: the registry's https trusted with it", () => {
  let server: https.Server;
  let registry: string;
  const DIGEST = `sha256:${"c".repeat(64)}`;

  before(async () => {
    // A registry's manifest and tag list, on a certificate the test CA signed.
    server = https.createServer({ cert: certs.serverCert, key: certs.serverKey }, (req, res) => {
      if (req.url?.startsWith("/v2/frontend/manifests/")) {
        res.writeHead(200, { "docker-content-digest": DIGEST, "content-type": "application/vnd.oci.image.manifest.v1+json" });
        res.end();
      } else if (req.url === "/v2/frontend/tags/list") {
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify({ name: "frontend", tags: ["main-0000a01-1800000000"] }));
      } else {
        res.writeHead(404);
        res.end();
      }
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    registry = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => server.close());

  const ref = (): { registry: string; repository: string; tag: string } => ({ registry, repository: "frontend", tag: "main-0000a01-1800000000" });

  it("resolves a digest over https with the CA, and says what to set without it", async () => {
    assert.equal(await resolveDigest(ref(), undefined, false, { caCert: certs.ca }), DIGEST);
    await assert.rejects(resolveDigest(ref(), undefined, false), /cannot reach the registry for .*: \S+ \(its certificate is not signed by a CA this machine trusts: set homelab:registryCaCert to the CA's PEM\)$/);
    await assert.rejects(resolveDigest(ref(), undefined, false, { caCert: certs.otherCa }), /\(its certificate does not chain to homelab:registryCaCert\)$/);
  });

  it("lists tags in the image automation stand-in with the certSecretRef's CA, and refuses the certificate without it", async () => {
    assert.deepEqual(await listTags(`${registry}/frontend`, false, undefined, certs.ca), ["main-0000a01-1800000000"]);
    await assert.rejects(listTags(`${registry}/frontend`, false));
  });
});

describe("registry CA: the stack", () => {
  const stackDir = fs.mkdtempSync(path.join(os.tmpdir(), "homelab-registry-ca-"));
  let rec: Recorder;

  before(async () => {
    fs.mkdirSync(path.join(stackDir, "flux/clusters/production"), { recursive: true });
    fs.writeFileSync(path.join(stackDir, "flux/clusters/production/release.yaml"), releaseText(TAG_A, TAG_B, "127.0.0.1:5000"));
    rec = installMocks();
    pulumi.runtime.setAllConfig(validConfig(HTTPS), SECRET_KEYS);
    const { loadConfig } = await import("../../stacks/config");
    const { homelabStack } = await import("../../stacks/homelab");
    const outputs = homelabStack(loadConfig(stackDir).homelab!, { kind: "resolved", digests: { frontend: DIGEST_A, backend: DIGEST_B } });
    await valueOf(outputs.release!);
    await settle(rec);
    fs.rmSync(stackDir, { recursive: true, force: true });
  });

  it("gives Flux the CA in a Secret its ImageRepositories name as certSecretRef", () => {
    const ca = rec.byName("image-automation-registry-ca");
    assert.equal(ca.type, "kubernetes:core/v1:Secret");
    assert.deepEqual(ca.inputs.metadata, { name: "harbor-ca", namespace: "flux-system" });
    assert.equal(ca.inputs.type, "Opaque");
    assert.deepEqual(ca.inputs.stringData, { "ca.crt": certs.ca });
    for (const part of ["frontend", "backend"]) {
      const repo = rec.byName(`image-automation-${part}-repository`);
      const spec = repo.inputs.spec as { insecure: boolean; certSecretRef: unknown };
      assert.deepEqual(spec.certSecretRef, { name: "harbor-ca" });
      assert.equal(spec.insecure, false);
      assert.ok(repo.dependencies.includes(ca.urn), "the Secret exists before Flux scans with it");
    }
  });

  it("has the VM check the engine trusts the CA", () => {
    const script = rec.byName("backend-vm-check").inputs.create as string;
    assert.match(script, /^CA_REGISTRY='127\.0\.0\.1:5000'$/m);
  });
});
