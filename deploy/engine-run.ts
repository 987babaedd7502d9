import * as fs from "fs";

/*
 * One run of the engine and the processes it started. The engine starts its plugins (the language
 * host, the program, the providers) in process groups of their own, so when a deploy is killed
 * with its engine, they keep running: orphans holding SSH sessions and the program's memory. Each
 * run carries a marker in its environment, which every plugin inherits, so the next deploy can
 * find exactly the processes of a run it has proved dead, and no other.
 */

/** The environment variable that names the engine run a process belongs to. */
export const ENGINE_RUN_VAR = "HOMELAB_ENGINE_RUN";

/** How long plugins get to end on SIGTERM before SIGKILL. */
const TERM_GRACE_MS = 2000;

/** The processes whose environment names this run (this process excepted), as far as /proc lets this user read. */
export function runProcesses(run: string, procDir = "/proc"): number[] {
  const marker = Buffer.from(`${ENGINE_RUN_VAR}=${run}\0`);
  const pids: number[] = [];
  let entries: string[];
  try {
    entries = fs.readdirSync(procDir);
  } catch {
    return [];
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) {
      continue;
    }
    try {
      const env = fs.readFileSync(`${procDir}/${entry}/environ`);
      // Each variable ends in NUL; the first has nothing before it.
      if (env.subarray(0, marker.length).equals(marker) || env.includes(Buffer.concat([Buffer.from([0]), marker]))) {
        pids.push(Number(entry));
      }
    } catch {
      // gone, or another user's
    }
  }
  return pids;
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}

/**
 * Ends what a dead engine run left running: SIGTERM, then SIGKILL for whatever has not ended
 * within a grace period. Call it only for a run proved dead (its engine gone on this boot, in
 * this PID namespace). Returns the PIDs it ended.
 */
export async function stopRunProcesses(run: string, procDir = "/proc"): Promise<number[]> {
  const pids = runProcesses(run, procDir);
  if (pids.length === 0) {
    return [];
  }
  pids.forEach((pid) => signal(pid, "SIGTERM"));
  const end = Date.now() + TERM_GRACE_MS;
  while (Date.now() < end && runProcesses(run, procDir).length > 0) {
    await new Promise((r) => setTimeout(r, 100));
  }
  runProcesses(run, procDir).forEach((pid) => signal(pid, "SIGKILL"));
  return pids;
}
