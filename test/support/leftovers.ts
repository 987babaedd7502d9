import { spawnSync } from "child_process";
import * as fs from "fs";

/** PIDs of every process whose command line mentions `text` (a sandbox directory): what a stop left behind. */
export function processesMentioning(text: string): string[] {
  return fs
    .readdirSync("/proc")
    .filter((p) => /^\d+$/.test(p))
    .filter((p) => {
      try {
        return fs.readFileSync(`/proc/${p}/cmdline`, "utf8").includes(text);
      } catch {
        return false;
      }
    });
}

/** What a sandbox can leave on the host besides processes: links, addresses, iptables chains, mounts. */
export interface HostSnapshot {
  readonly links: string[];
  readonly addresses: string[];
  readonly chains: string[];
  readonly mounts: string[];
}

function lines(cmd: string, args: readonly string[]): string[] {
  const r = spawnSync(cmd, args, { encoding: "utf8" });
  return (r.stdout ?? "").split("\n").map((l) => l.trim()).filter(Boolean);
}

export function hostSnapshot(): HostSnapshot {
  const chains: string[] = [];
  for (const family of ["iptables", "ip6tables"]) {
    for (const table of ["filter", "nat", "mangle"]) {
      chains.push(...lines(family, ["-t", table, "-S"]).filter((l) => l.startsWith("-N ")).map((l) => `${family} ${table} ${l.slice(3)}`));
    }
  }
  return {
    links: lines("ip", ["-o", "link", "show"]).map((l) => l.split(":")[1]?.trim().split("@")[0] ?? ""),
    addresses: lines("ip", ["-o", "addr", "show"]).map((l) => l.split(/\s+/).slice(1, 4).join(" ")),
    chains,
    mounts: fs.readFileSync("/proc/self/mountinfo", "utf8").split("\n").map((l) => l.split(" ")[4]).filter(Boolean),
  };
}

/** What `after` has that `before` had not (mounts only under `dir`), as readable lines; empty when nothing was left. */
export function leftoversSince(before: HostSnapshot, after: HostSnapshot, dir: string): string[] {
  const added = (key: keyof HostSnapshot): string[] => after[key].filter((x) => !before[key].includes(x)).map((x) => `${key}: ${x}`);
  return [
    ...added("links"),
    ...added("addresses"),
    ...added("chains"),
    ...after.mounts.filter((m) => m.startsWith(dir)).map((m) => `mount: ${m}`),
    ...processesMentioning(dir).map((p) => `process ${p}: ${fs.readFileSync(`/proc/${p}/cmdline`, "utf8").replace(/\0/g, " ").trim()}`),
  ];
}
