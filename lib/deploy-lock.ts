import * as fs from "fs";
import * as path from "path";

/** A held deploy lock; release it when the deploy ends. */
export interface DeployLock {
  release(): void;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * Takes an exclusive per-stack lock file holding this process's PID. A lock whose process is
 * gone is taken over; a live one is refused with who holds it and since when.
 */
export function acquireDeployLock(dir: string, stack: string): DeployLock {
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${stack.replace(/[^A-Za-z0-9_.-]/g, "_")}.lock`);
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = fs.openSync(file, "wx");
      fs.writeSync(fd, JSON.stringify({ pid: process.pid, since: new Date().toISOString() }));
      fs.closeSync(fd);
      return {
        release() {
          try {
            const held = JSON.parse(fs.readFileSync(file, "utf8")) as { pid: number };
            if (held.pid === process.pid) {
              fs.rmSync(file);
            }
          } catch {
            // already gone
          }
        },
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") {
        throw new Error(`could not create the deploy lock ${file}: ${(e as Error).message}`, { cause: e });
      }
      let holder: { pid?: number; since?: string } = {};
      try {
        holder = JSON.parse(fs.readFileSync(file, "utf8")) as typeof holder;
      } catch {
        // unreadable: treat as stale
      }
      if (holder.pid !== undefined && alive(holder.pid)) {
        throw new Error(`another deploy of stack ${stack} is running (pid ${holder.pid}, since ${holder.since ?? "?"}); wait for it to finish`, { cause: e });
      }
      fs.rmSync(file, { force: true });
    }
  }
  throw new Error(`could not take the deploy lock ${file}`);
}
