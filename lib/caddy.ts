/** One Caddyfile directive: a name, its arguments and an optional block of sub-directives. */
export interface CaddyDirective {
  readonly name: string;
  readonly args?: readonly string[];
  readonly block?: readonly CaddyDirective[];
}

/** A site block: the addresses it answers for and its directives. */
export interface CaddySite {
  readonly addresses: readonly string[];
  readonly directives: readonly CaddyDirective[];
}

/** A Caddyfile as data: global options, then site blocks. */
export interface Caddyfile {
  readonly global?: readonly CaddyDirective[];
  readonly sites: readonly CaddySite[];
}

/** Tokens written bare; anything else is double-quoted. */
const BARE = /^[A-Za-z0-9._:/@*=+-]+$/;

function token(value: string): string {
  // eslint-disable-next-line no-control-regex -- control characters are exactly what is refused
  if (value === "" || /[\0-\x1f\x7f]/.test(value)) {
    throw new Error(`Caddyfile: token ${JSON.stringify(value)} is empty or holds a control character`);
  }
  if (BARE.test(value) && !value.startsWith("{")) {
    return value;
  }
  return `"${value.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`;
}

function directiveLines(d: CaddyDirective, indent: string): string[] {
  const head = [token(d.name), ...(d.args ?? []).map(token)].join(" ");
  if (!d.block || d.block.length === 0) {
    return [`${indent}${head}`];
  }
  return [`${indent}${head} {`, ...d.block.flatMap((c) => directiveLines(c, `${indent}\t`)), `${indent}}`];
}

/** Serialises a Caddyfile object; the only place Caddyfile text is made. */
export function caddyfileToText(file: Caddyfile): string {
  const blocks: string[] = [];
  if (file.global && file.global.length > 0) {
    blocks.push(["{", ...file.global.flatMap((d) => directiveLines(d, "\t")), "}"].join("\n"));
  }
  for (const site of file.sites) {
    if (site.addresses.length === 0) {
      throw new Error("Caddyfile: a site needs at least one address");
    }
    blocks.push([`${site.addresses.map(token).join(", ")} {`, ...site.directives.flatMap((d) => directiveLines(d, "\t")), "}"].join("\n"));
  }
  return `${blocks.join("\n\n")}\n`;
}

/** How Caddy gets the site's certificate. */
export type CaddyTls =
  /** A public ACME CA (Let's Encrypt, then ZeroSSL); the domain's DNS must point at the host. */
  | { readonly kind: "acme"; readonly email?: string }
  /** Caddy's own local CA: for test domains and private networks. */
  | { readonly kind: "internal" };

export interface VpsCaddyfileOptions {
  /** The public domain Caddy serves and gets a certificate for. */
  readonly domain: string;
  /** Compose service name of the app. */
  readonly upstreamHost: string;
  /** The app's port inside the compose network. */
  readonly upstreamPort: number;
  readonly tls: CaddyTls;
  /**
   * The app's webhook path, when it has one: a request body bigger than `webhookMaxBody` is
   * refused there before it reaches the app (GitHub's push payloads are well below it).
   */
  readonly webhookPath?: string;
  /** @default "5MB" */
  readonly webhookMaxBody?: string;
}

/**
 * The VPS app's Caddyfile: HTTPS for the domain (HTTP redirects to it), everything proxied to the
 * app. With the internal CA, Caddy is told not to install its root in the container's trust store,
 * which it cannot do and does not need.
 */
export function renderVpsCaddyfile(o: VpsCaddyfileOptions): Caddyfile {
  const global: CaddyDirective[] = [];
  if (o.tls.kind === "acme" && o.tls.email) {
    global.push({ name: "email", args: [o.tls.email] });
  }
  if (o.tls.kind === "internal") {
    global.push({ name: "skip_install_trust" });
  }
  const directives: CaddyDirective[] = [];
  if (o.tls.kind === "internal") {
    directives.push({ name: "tls", args: ["internal"] });
  }
  if (o.webhookPath) {
    directives.push({ name: "@webhook", args: ["path", o.webhookPath] });
    directives.push({ name: "request_body", args: ["@webhook"], block: [{ name: "max_size", args: [o.webhookMaxBody ?? "5MB"] }] });
  }
  directives.push({ name: "reverse_proxy", args: [`${o.upstreamHost}:${o.upstreamPort}`] });
  return { global, sites: [{ addresses: [o.domain], directives }] };
}
