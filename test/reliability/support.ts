import { execFileSync, spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { Stack } from "@pulumi/pulumi/automation";
import { pinnedRef } from "../../sandbox/images";
import { Sandbox } from "../../sandbox/sandbox";

/** A frontend and backend tag deployed together. */
export type Pair = readonly [frontend: string, backend: string];

/** One row of bench/reliability.json. */
export interface ScenarioResult {
  scenario: string;
  /** A fault of the platform or the deploy process (the release is healthy), hostile input, or a release that fails its health check. */
  kind: "fault" | "bad input" | "bad release";
  /** What the guarded deploy concluded: promoted, rolled back, refused, rollback failed, unexpected. */
  outcome: string;
  exitCode: number;
  /** The marker file written into the backend's data volume at the start is still there, unchanged. */
  dataIntact: boolean;
  /** Afterwards the frontend and backend serve the pair the stack records (the previous one unless promoted). */
  releaseServing: boolean;
  /** Neither the registry password nor the SSH private key appears in what the deploy printed. */
  noSecretInLogs: boolean;
  /** The next deploy without the fault exits 0 and a preview after it shows no change. */
  convergedOnNextRun: boolean;
  /** A rollback commit blamed the release (only a bad release may be blamed; every fault row's target is healthy). */
  blamedRelease: boolean;
  seconds: number;
  detail: string;
}

export const OUTCOMES: Record<number, string> = {
  0: "promoted",
  1: "unexpected error",
  2: "refused before any change",
  3: "rolled back",
  4: "rollback failed",
  5: "rolled back, not recorded in git",
  6: "platform failure, nothing blamed",
};

export const DATA_VOLUME = "backend_backend-data";
const MARKER = "reliability-marker";

export function docker(sb: Sandbox, ...args: string[]): string {
  return execFileSync("docker", args, { env: sb.docker.env(), encoding: "utf8", timeout: 60_000 }).trim();
}

/** Runs busybox from the backend image against the data volume directly, whatever runs or not. */
function inVolume(sb: Sandbox, script: string): { ok: boolean; out: string } {
  const image = pinnedRef(sb.images, "backend", sb.images.backend.v1);
  const r = spawnSync("docker", ["run", "--rm", "-v", `${DATA_VOLUME}:/d`, "--entrypoint", "/bin/busybox", image, "sh", "-c", script], { env: sb.docker.env(), encoding: "utf8", timeout: 60_000 });
  return { ok: r.status === 0, out: (r.stdout ?? "").trim() };
}

export function writeMarker(sb: Sandbox, value: string): void {
  const r = inVolume(sb, `echo ${value} > /d/${MARKER} && cat /d/${MARKER}`);
  if (!r.ok || r.out !== value) {
    throw new Error(`could not write the marker into ${DATA_VOLUME}: ${r.out}`);
  }
}

export function markerIntact(sb: Sandbox, value: string): boolean {
  const r = inVolume(sb, `cat /d/${MARKER}`);
  return r.ok && r.out === value;
}

/** The pair the frontend page, the backend on the VM and /api/health through the ingress serve, if they agree. */
export async function servingPair(sb: Sandbox): Promise<Pair | undefined> {
  const get = async (url: string): Promise<string | undefined> => {
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(3000) });
      return res.ok ? await res.text() : undefined;
    } catch {
      return undefined;
    }
  };
  const page = await get(`${sb.ingressUrl}/`);
  const frontend = sb.images.frontend.find((t) => page?.includes(t));
  const version = (text: string | undefined): string | undefined => {
    try {
      return text ? (JSON.parse(text) as { version?: string }).version : undefined;
    } catch {
      return undefined;
    }
  };
  const direct = version(await get(`http://${sb.backendHost}:${sb.backendPort}/api/health`));
  const routed = version(await get(`${sb.ingressUrl}/api/health`));
  return frontend && direct && direct === routed ? [frontend, direct] : undefined;
}

/** Polls until the served pair equals `pair` (the stand-in ingress follows the cluster within seconds). */
export async function waitServing(sb: Sandbox, pair: Pair, timeoutMs = 30_000): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const now = await servingPair(sb);
    if (now && now[0] === pair[0] && now[1] === pair[1]) {
      return true;
    }
    if (Date.now() > end) {
      return false;
    }
    await new Promise((r) => setTimeout(r, 500));
  }
}

/** The pair the stack records as promoted. */
export async function recordedPair(stack: Stack): Promise<Pair> {
  const release = (await stack.outputs()).release?.value as { frontend: { tag: string }; backend: { tag: string } };
  return [release.frontend.tag, release.backend.tag];
}

/** Whether `text` shows the sandbox's registry password or any line of the VM's private key. */
export function leaksSecret(sb: Sandbox, text: string): boolean {
  const keyLines = sb.vm.privateKey.split("\n").filter((l) => l.length > 20 && !l.startsWith("-----"));
  return text.includes(sb.registry.password) || keyLines.some((l) => text.includes(l));
}

/** Children of a process, from /proc. */
export function childPids(pid: number): number[] {
  const out: number[] = [];
  for (const entry of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) {
      continue;
    }
    try {
      const stat = fs.readFileSync(path.join("/proc", entry, "stat"), "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (ppid === pid) {
        out.push(Number(entry));
      }
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

export function commandName(pid: number): string {
  try {
    return fs.readFileSync(`/proc/${pid}/comm`, "utf8").trim();
  } catch {
    return "";
  }
}
