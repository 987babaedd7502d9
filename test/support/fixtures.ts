import * as crypto from "crypto";

/** A line of OpenSSH's private key armour ("BEGIN" or "END"), put together here so no key-like line is committed. */
export function opensshArmour(edge: "BEGIN" | "END"): string {
  return ["-----" + edge, "OPENSSH PRIVATE KEY-----"].join(" ");
}

/** A throwaway private key in OpenSSH's PEM armour, made at test time (never committed). */
export function fakePrivateKey(): string {
  return `${opensshArmour("BEGIN")}\n${crypto.randomBytes(48).toString("base64")}\n${opensshArmour("END")}\n`;
}

export const HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHg0ZXN0aG9zdGtleWZvcnVuaXR0ZXN0c29ubHkx";
export const TAG_A = "main-abc1234-1707300000";
export const TAG_B = "main-def5678-1707400000";
export const DIGEST_A = `sha256:${"a".repeat(64)}`;
export const DIGEST_B = `sha256:${"b".repeat(64)}`;

/** Plain config values of a valid loopback stack, as the engine would pass them. */
export function validConfig(overrides: Record<string, string> = {}): Record<string, string> {
  return {
    "homelab:registry": "127.0.0.1:5000",
    "homelab:registryUsername": "robot$flux",
    "homelab:registryPassword": "registry-pass-123",
    "homelab:kubeconfig": "apiVersion: v1\nkind: Config\nclusters: []\n",
    "homelab:publicUrl": "http://127.0.0.1:8080",
    "homelab:vmHost": "127.0.0.1",
    "homelab:vmPort": "2222",
    "homelab:vmUser": "deploy",
    "homelab:vmHostKey": HOST_KEY,
    "homelab:vmPrivateKey": fakePrivateKey(),
    "homelab:gitUrl": "ssh://git@127.0.0.1:2223/website.git",
    "homelab:gitKnownHosts": `127.0.0.1 ${HOST_KEY}`,
    "homelab:gitDeployKey": fakePrivateKey(),
    "homelab:backendEnv": JSON.stringify({ DATABASE_URL: "postgres://app:db-secret-456@db/app", NODE_ENV: "production" }),
    ...overrides,
  };
}

export const SECRET_KEYS = ["homelab:registryPassword", "homelab:kubeconfig", "homelab:vmPrivateKey", "homelab:gitDeployKey", "homelab:backendEnv"];

/** A release file for the loopback registry; `extra` is appended to its data section as it is. */
export function releaseText(frontendTag = TAG_A, backendTag = TAG_A, registry = "127.0.0.1:5000", extra = ""): string {
  return `apiVersion: v1
kind: ConfigMap
metadata:
  name: website-release
  namespace: flux-system
data:
  frontend: ${registry}/frontend:${frontendTag} # {"$imagepolicy": "flux-system:frontend"}
  backend: ${registry}/backend:${backendTag} # {"$imagepolicy": "flux-system:backend"}
${extra}`;
}

/** A release file's `excluded` entry, as the data section holds it. */
export function excludedBlock(entries: readonly { image: string; tag: string; at?: string; reason?: string }[]): string {
  return `  excluded: |\n${entries.map((e) => `    - image: ${e.image}\n      tag: ${JSON.stringify(e.tag)}\n      at: "${e.at ?? "2026-01-01T00:00:00Z"}"\n      reason: ${JSON.stringify(e.reason ?? "backend gate: unhealthy")}\n`).join("")}`;
}

/** Plain config values of a valid VPS-only stack. */
export function validVpsConfig(overrides: Record<string, string> = {}): Record<string, string> {
  return {
    "homelab:deployHomelab": "false",
    "homelab:deployVps": "true",
    "homelab:vpsHost": "127.0.0.1",
    "homelab:vpsPort": "2224",
    "homelab:vpsUser": "deploy",
    "homelab:vpsHostKey": HOST_KEY,
    "homelab:vpsPrivateKey": fakePrivateKey(),
    "homelab:vpsDomain": "app.homelab.test",
    "homelab:vpsImage": "127.0.0.1:5000/infrakt:1.4.0",
    "homelab:vpsRegistryToken": "ghp_token-789",
    "homelab:vpsEnv": JSON.stringify({ LOG_LEVEL: "info" }),
    ...overrides,
  };
}

export const VPS_SECRET_KEYS = ["homelab:vpsPrivateKey", "homelab:vpsRegistryToken", "homelab:vpsEnv"];
