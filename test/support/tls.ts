import { execFileSync } from "child_process";
import * as fs from "fs";
import * as path from "path";

/** A CA, a server certificate for 127.0.0.1 and a client certificate, made with openssl for this run. */
export function makeCertificates(dir: string): Record<"ca" | "caKey" | "serverCert" | "serverKey" | "clientCert" | "clientKey" | "otherCa", string> {
  const ssl = (...args: string[]): void => void execFileSync("openssl", args, { cwd: dir, stdio: "pipe" });
  const key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  ssl("req", "-x509", ...key, "-keyout", "ca.key", "-out", "ca.crt", "-days", "1", "-subj", "/CN=test-ca");
  ssl("req", "-x509", ...key, "-keyout", "other.key", "-out", "other.crt", "-days", "1", "-subj", "/CN=other-ca");
  fs.writeFileSync(path.join(dir, "san.ext"), "subjectAltName=IP:127.0.0.1\n");
  for (const [name, cn, ext] of [["server", "127.0.0.1", ["-extfile", "san.ext"]], ["client", "homelab-test", []]] as const) {
    ssl("req", ...key, "-keyout", `${name}.key`, "-out", `${name}.csr`, "-subj", `/CN=${cn}`);
    ssl("x509", "-req", "-in", `${name}.csr`, "-CA", "ca.crt", "-CAkey", "ca.key", "-set_serial", name === "server" ? "2" : "3", "-days", "1", "-out", `${name}.crt`, ...ext);
  }
  const read = (f: string): string => fs.readFileSync(path.join(dir, f), "utf8");
  return {
    ca: read("ca.crt"),
    caKey: read("ca.key"),
    serverCert: read("server.crt"),
    serverKey: read("server.key"),
    clientCert: read("client.crt"),
    clientKey: read("client.key"),
    otherCa: read("other.crt"),
  };
}
