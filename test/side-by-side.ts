import { spawn } from "child_process";
import * as readline from "readline";

/*
 * Runs npm scripts at the same time, each line of their output prefixed with the script's name,
 * and exits with the first non-zero exit code (0 when all pass). The suites it runs this way
 * each start a sandbox of their own (own network, VM user and ports), and most of their time is
 * spent waiting on deadlines and probes, so two of them share the two cores well.
 *
 * A script that fails has its failures printed again at the end: a CI log keeps only its tail,
 * and a suite that failed early is otherwise buried under the other one's output.
 *
 *   tsx test/side-by-side.ts test:reliability test:e2e
 */

/** Lines kept after each line that marks a failure, and the most kept per script. */
const FAILURE_CONTEXT = 40;
const FAILURE_LINES = 600;

/** A line of node's test reporter (spec or TAP) or of a scenario that says something failed. */
export function marksFailure(line: string): boolean {
  return /^\s*(✖|not ok\b)/.test(line) || /^e2e\b.*: FAILED: /.test(line);
}

/** Collects the failure lines of one script's output, each with the lines that follow it. */
export class FailureLog {
  readonly lines: string[] = [];
  private left = 0;

  add(line: string): void {
    if (marksFailure(line)) {
      this.left = FAILURE_CONTEXT;
    }
    if (this.left > 0) {
      this.left -= 1;
      this.lines.push(line);
      if (this.lines.length > FAILURE_LINES) {
        this.lines.shift();
      }
    }
  }
}

async function runScript(name: string): Promise<{ name: string; code: number; seconds: number; failures: FailureLog }> {
  const started = Date.now();
  const failures = new FailureLog();
  const child = spawn("npm", ["run", "-s", name], { stdio: ["ignore", "pipe", "pipe"] });
  for (const stream of [child.stdout, child.stderr]) {
    const sink = stream === child.stdout ? process.stdout : process.stderr;
    readline.createInterface({ input: stream }).on("line", (line) => {
      failures.add(line);
      sink.write(`[${name}] ${line}\n`);
    });
  }
  const code = await new Promise<number>((resolve) => {
    child.on("error", () => resolve(127));
    child.on("close", (c, signal) => resolve(c ?? (signal ? 128 : 1)));
  });
  return { name, code, seconds: (Date.now() - started) / 1000, failures };
}

async function main(): Promise<void> {
  const names = process.argv.slice(2);
  if (names.length === 0) {
    throw new Error("side-by-side: name the npm scripts to run, e.g. test:reliability test:e2e");
  }
  const results = await Promise.all(names.map(runScript));
  for (const r of results.filter((x) => x.code !== 0)) {
    process.stdout.write(`side-by-side: ${r.name} failed; its failures again (${r.failures.lines.length} lines):\n`);
    for (const line of r.failures.lines) {
      process.stdout.write(`[${r.name}] ${line}\n`);
    }
    if (r.failures.lines.length === 0) {
      process.stdout.write(`side-by-side: ${r.name} printed no failure line: it ended (exit ${r.code}) before reporting one; its last lines are above\n`);
    }
  }
  for (const r of results) {
    process.stdout.write(`side-by-side: ${r.name} ${r.code === 0 ? "passed" : `failed (exit ${r.code})`} in ${r.seconds.toFixed(0)}s\n`);
  }
  process.exitCode = results.find((r) => r.code !== 0)?.code ?? 0;
}

if (process.argv[1]?.endsWith("side-by-side.ts")) {
  main().catch((e: unknown) => {
    process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n`);
    process.exitCode = 2;
  });
}
