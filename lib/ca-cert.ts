import * as crypto from "crypto";

/** One PEM certificate block; nothing else (a key, a request) counts. */
const CERT_BLOCK = /-----BEGIN CERTIFICATE-----\r?\n([A-Za-z0-9+/=\r\n]+?)-----END CERTIFICATE-----/g;

/** The PEM certificate blocks in `text`, each normalised to `BEGIN`, 64-column base64, `END`. */
export function certificateBlocks(text: string): string[] {
  return [...text.matchAll(CERT_BLOCK)].map((m) => {
    const body = m[1].replace(/\s+/g, "");
    return `-----BEGIN CERTIFICATE-----\n${body.replace(/(.{64})/g, "$1\n").replace(/\n$/, "")}\n-----END CERTIFICATE-----\n`;
  });
}

/**
 * Why `text` is not a bundle of PEM CA certificates, or undefined when it is. The text is never
 * quoted back: a private key pasted by mistake must not reach an error message or a log.
 */
export function caBundleProblem(text: string): string | undefined {
  if (/PRIVATE KEY/.test(text)) {
    return "holds a private key; it takes only the CA's certificate (PEM), which is not secret";
  }
  const blocks = certificateBlocks(text);
  if (blocks.length === 0) {
    return "holds no PEM certificate (-----BEGIN CERTIFICATE----- … -----END CERTIFICATE-----)";
  }
  for (const [i, block] of blocks.entries()) {
    try {
      const cert = new crypto.X509Certificate(block);
      if (cert.validTo && Date.parse(cert.validTo) < Date.now()) {
        return `has certificate ${i + 1} (${cert.subject.replace(/\n/g, ", ")}) expired on ${cert.validTo}`;
      }
    } catch (e) {
      return `has certificate ${i + 1} that is not a valid X.509 certificate (${(e as Error).message})`;
    }
  }
  return undefined;
}

/** The SHA-256 fingerprints (`AA:BB:…`) of the bundle's certificates, to say which CA is meant. */
export function caFingerprints(text: string): string[] {
  return certificateBlocks(text).map((b) => new crypto.X509Certificate(b).fingerprint256);
}
