import { spawn } from "child_process";
import * as readline from "readline";

/*
 * Runs npm scripts at the same time, each line of their output prefixed with the script's name,
 * and exits with the first non-zero exit code (0 when all pass). The suites it runs this way
 * each start a sandbox of their own (own network, VM user and ports), and most of their time is
 * spent waiting on deadlines and probes, so two of them share the two cores well.
 *
 *   tsx test/side-by-side.ts test:reliability test:e2e
 */
async function runScript(name: string): Promise<{ name: string; code: number; seconds: number }> {
  const started = Date.now();
  const child = spawn("npm", ["run", "-s", name], { stdio: ["ignore", "pipe", "pipe"] });
  for (const stream of [child.stdout, child.stderr]) {
    const sink = stream === child.stdout ? process.stdout : process.stderr;
    readline.createInterface({ input: stream }).on("line", (line) => sink.write(`[${name}] ${line}\n`));
  }
  const code = await new Promise<number>((resolve) => {
    child.on("error", () => resolve(127));
    child.on("close", (c, signal) => resolve(c ?? (signal ? 128 : 1)));
  });
  return { name, code, seconds: (Date.now() - started) / 1000 };
}

async function main(): Promise<void> {
  const names = process.argv.slice(2);
  if (names.length === 0) {
    throw new Error("side-by-side: name the npm scripts to run, e.g. test:reliability test:e2e");
  }
  const results = await Promise.all(names.map(runScript));
  for (const r of results) {
    process.stdout.write(`side-by-side: ${r.name} ${r.code === 0 ? "passed" : `failed (exit ${r.code})`} in ${r.seconds.toFixed(0)}s\n`);
  }
  process.exitCode = results.find((r) => r.code !== 0)?.code ?? 0;
}

main().catch((e: unknown) => {
  process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n`);
  process.exitCode = 2;
});
