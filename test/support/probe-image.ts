import { buildImage, type OciImage } from "../../sandbox/oci";

/** Debian's busybox-static (npm run setup installs it). */
export const BUSYBOX = "/bin/busybox";
/** Port the probe image's web server listens on. */
export const PROBE_PORT = 8080;
/** The probe image's web server: `/` says hello, `/healthz` answers ok, anything else 404. */
export const HTTPD = [BUSYBOX, "httpd", "-f", "-p", String(PROBE_PORT), "-h", "/www"];
export const PROBE_GREETING = "hello from a real pod\n";

/** A one-layer image `FROM scratch` around busybox: a web server for pods on the sandbox's node. */
export function probeImage(): OciImage {
  return buildImage({
    entries: [
      { path: "bin", type: "dir" },
      { path: "bin/busybox", type: "file", mode: 0o755, from: BUSYBOX },
      { path: "bin/sh", type: "symlink", target: "busybox" },
      { path: "www", type: "dir" },
      { path: "www/index.html", type: "file", content: PROBE_GREETING },
      { path: "www/healthz", type: "file", content: "ok\n" },
    ],
    cmd: HTTPD,
    user: "10001",
  });
}
