import * as fs from "fs";

/**
 * SSH sessions the VM accepted, counted in its sshd log (LogLevel VERBOSE writes one
 * "Accepted publickey" line per authenticated connection).
 */
export function acceptedSessions(sshdLog: string): number {
  try {
    return fs.readFileSync(sshdLog, "utf8").split("\n").filter((l) => l.includes("Accepted publickey")).length;
  } catch {
    return 0;
  }
}

/** Runs `fn` and returns its result with the number of SSH sessions the VM accepted meanwhile. */
export async function countSessions<T>(sshdLog: string, fn: () => Promise<T>): Promise<{ result: T; sessions: number }> {
  const before = acceptedSessions(sshdLog);
  const result = await fn();
  return { result, sessions: acceptedSessions(sshdLog) - before };
}
