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
