import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
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

/** Where deploy locks live on this machine: one per stack of a state backend, whatever the checkout. */
export function defaultLockDir(): string {
  return path.join(process.env.XDG_RUNTIME_DIR || os.tmpdir(), "homelab-stack-locks");
}

/** The lock's file name for a stack of a backend (`pulumi whoami --verbose`'s URL). */
export function lockName(backendUrl: string, stack: string): string {
  const key = crypto.createHash("sha256").update(`${backendUrl}\n${stack}`).digest("hex").slice(0, 12);
  return `${stack.replace(/[^A-Za-z0-9_.-]/g, "_")}-${key}`;
}

/**
 * Takes an exclusive lock file holding this process's PID. The file appears with its content in
 * one step (written aside, then hard-linked into place), so a reader never sees it half written.
 * A lock whose process is gone is taken over; a live one is refused with who holds it and since when.
 */
export function acquireDeployLock(dir: string, name: string, what = name): DeployLock {
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${name}.lock`);
  const mine = JSON.stringify({ pid: process.pid, since: new Date().toISOString() });
  const staging = path.join(dir, `.${name}.${process.pid}.${crypto.randomBytes(4).toString("hex")}`);
  fs.writeFileSync(staging, mine);
  try {
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        fs.linkSync(staging, file);
        return {
          release() {
            try {
              if (fs.readFileSync(file, "utf8") === mine) {
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
        let text = "";
        try {
          text = fs.readFileSync(file, "utf8");
          holder = JSON.parse(text) as typeof holder;
        } catch {
          // unreadable: written by something else; treated as stale
        }
        if (holder.pid !== undefined && alive(holder.pid)) {
          throw new Error(`another deploy of ${what} is running (pid ${holder.pid}, since ${holder.since ?? "?"}); wait for it to finish`, { cause: e });
        }
        // Only the stale lock that was read is removed, never one another process just took.
        try {
          if (fs.readFileSync(file, "utf8") === text) {
            fs.rmSync(file);
          }
        } catch {
          // gone meanwhile
        }
      }
    }
    throw new Error(`could not take the deploy lock ${file}`);
  } finally {
    fs.rmSync(staging, { force: true });
  }
}
