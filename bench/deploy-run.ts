import { spawn } from "child_process";
import * as path from "path";

const REPO = path.resolve(__dirname, "..");

export interface DeployRun {
  readonly code: number;
  readonly seconds: number;
  /** Everything it printed, both streams. */
  readonly output: string;
}

/**
 * Runs `npm run deploy -- --stack NAME --cwd DIR` as an operator would, under `env`; `onLine`
 * sees each line as it is printed.
 */
export function npmDeploy(stack: string, projectDir: string, env: Record<string, string>, onLine?: (line: string) => void): Promise<DeployRun> {
  const t0 = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn("npm", ["run", "-s", "deploy", "--", "--stack", stack, "--cwd", projectDir], { cwd: REPO, env: { ...process.env, ...env } });
    let output = "";
    let partial = "";
    const take = (chunk: Buffer): void => {
      const text = chunk.toString();
      output += text;
      const lines = (partial + text).split("\n");
      partial = lines.pop() ?? "";
      for (const l of lines) {
        onLine?.(l);
      }
    };
    child.stdout.on("data", take);
    child.stderr.on("data", take);
    child.on("error", reject);
    child.on("close", (code) => resolve({ code: code ?? 1, seconds: (Date.now() - t0) / 1000, output }));
  });
}
