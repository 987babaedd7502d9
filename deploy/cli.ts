// npm run deploy   -- --stack NAME [--cwd DIR] [--policy-pack DIR]... [--watch [--interval SECONDS]]
// npm run rollback -- --stack NAME --reason TEXT [--to FRONTEND_TAG,BACKEND_TAG] [--cwd DIR]
// npm run releases -- --stack NAME [--json] [--cwd DIR]
// npm run status   -- --stack NAME [--json] [--cwd DIR]
import * as path from "path";
import { LocalWorkspace } from "@pulumi/pulumi/automation";
import type { LedgerEntry } from "../components/release-record";
import { DeployOptions, POLICY_PACK, deploy } from "./guarded-deploy";
import { fileHistory, git } from "./git";
import { manualRollback } from "./manual-rollback";
import { EXIT } from "./outcome";
import { formatHistory, releaseHistory } from "./releases";
import { StackConfig, setting } from "./release-state";
import { STATUS_EXIT, formatStatus } from "./status";
import { liveStatus } from "./live-status";
import { watch } from "./watch";

export type Command = "deploy" | "rollback" | "releases" | "status";

const USAGE: Record<Command, string> = {
  deploy: "usage: npm run deploy -- --stack NAME [--cwd PROJECT_DIR] [--policy-pack DIR]... [--watch [--interval SECONDS] [--check-every SECONDS]]",
  rollback: "usage: npm run rollback -- --stack NAME --reason TEXT [--to FRONTEND_TAG,BACKEND_TAG] [--cwd PROJECT_DIR]",
  releases: "usage: npm run releases -- --stack NAME [--json] [--cwd PROJECT_DIR]",
  status: "usage: npm run status -- --stack NAME [--json] [--cwd PROJECT_DIR]",
};

export interface CliOptions extends DeployOptions {
  readonly command: Command;
  readonly watch: boolean;
  readonly intervalSeconds: number;
  readonly checkEverySeconds: number;
  readonly reason?: string;
  readonly to?: { frontend: string; backend: string };
  readonly json: boolean;
}

/** Reads the command line; throws with the usage on bad input. */
export function parseArgs(argv: readonly string[], repo: string): CliOptions {
  let command: Command = "deploy";
  let rest = argv;
  if (argv[0] === "rollback" || argv[0] === "releases" || argv[0] === "status") {
    command = argv[0];
    rest = argv.slice(1);
  }
  const usage = USAGE[command];
  let stack: string | undefined;
  let workDir = repo;
  const packs: string[] = [];
  let watchBranch = false;
  let intervalSeconds = 30;
  let checkEverySeconds = 300;
  let reason: string | undefined;
  let to: CliOptions["to"];
  let json = false;
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i];
    const value = (): string => {
      const v = rest[++i];
      if (v === undefined || v.startsWith("--")) {
        throw new Error(`${a} needs a value (${usage})`);
      }
      return v;
    };
    if (a === "--stack" || a === "-s") {
      stack = value();
    } else if (a === "--cwd") {
      workDir = path.resolve(value());
    } else if (a === "--policy-pack" && command === "deploy") {
      packs.push(path.resolve(value()));
    } else if (a === "--watch" && command === "deploy") {
      watchBranch = true;
    } else if ((a === "--interval" || a === "--check-every") && command === "deploy") {
      const v = value();
      const seconds = Number(v);
      if (!Number.isInteger(seconds) || seconds < 1 || seconds > 86400) {
        throw new Error(`${a}: ${JSON.stringify(v)} is not a number of seconds from 1 to 86400`);
      }
      if (a === "--interval") {
        intervalSeconds = seconds;
      } else {
        checkEverySeconds = seconds;
      }
    } else if (a === "--reason" && command === "rollback") {
      reason = value();
    } else if (a === "--to" && command === "rollback") {
      const v = value();
      const [frontend, backend, extra] = v.split(",");
      if (!frontend || !backend || extra !== undefined) {
        throw new Error(`--to: ${JSON.stringify(v)} is not FRONTEND_TAG,BACKEND_TAG`);
      }
      to = { frontend, backend };
    } else if (a === "--json" && (command === "releases" || command === "status")) {
      json = true;
    } else {
      throw new Error(`unknown argument ${JSON.stringify(a)} (${usage})`);
    }
  }
  // Pulumi stack names: a name, or org/project/name.
  if (!stack || !/^[A-Za-z0-9_.-]+(\/[A-Za-z0-9_.-]+){0,2}$/.test(stack)) {
    throw new Error(`--stack: ${JSON.stringify(stack ?? "")} is not a stack name (${usage})`);
  }
  if (command === "rollback" && !reason?.trim()) {
    throw new Error(`--reason is required: it goes into the rollback commit (${usage})`);
  }
  // The reason travels only as a commit message on stdin, so any printable text will do.
  // eslint-disable-next-line no-control-regex -- control characters are exactly what is refused
  const reasonProblem = reason === undefined ? undefined : reason.length > 500 ? "is longer than 500 characters" : /[\0-\x09\x0b-\x1f\x7f]/.test(reason) ? "contains control characters" : undefined;
  if (reasonProblem) {
    throw new Error(`--reason: ${reasonProblem}`);
  }
  return {
    command,
    stack,
    workDir,
    policyPacks: packs.length > 0 ? [POLICY_PACK, ...packs] : undefined,
    watch: watchBranch,
    intervalSeconds,
    checkEverySeconds,
    reason,
    to,
    json,
  };
}

async function releases(opts: CliOptions): Promise<number> {
  const stack = await LocalWorkspace.selectStack({ stackName: opts.stack, workDir: opts.workDir });
  const cfg = (await stack.getAllConfig()) as StackConfig;
  const branch = setting(cfg, "gitBranch");
  const root = git(opts.workDir, ["rev-parse", "--show-toplevel"]).trim();
  const file = path.relative(root, path.resolve(opts.workDir, setting(cfg, "releaseFile")));
  let ref = "HEAD";
  try {
    git(root, ["fetch", "--quiet", "origin", `+refs/heads/${branch}:refs/remotes/origin/${branch}`]);
    ref = `refs/remotes/origin/${branch}`;
  } catch (e) {
    process.stderr.write(`releases: cannot fetch ${branch} (${(e as Error).message}); showing the local history\n`);
  }
  const ledger = ((await stack.outputs()).ledger?.value as LedgerEntry[] | undefined) ?? [];
  const history = releaseHistory(fileHistory({ root, file }, ref), ledger);
  process.stdout.write(opts.json ? `${JSON.stringify(history, null, 2)}\n` : `${formatHistory(history)}\n`);
  return 0;
}

/** What each part runs against what the stack records; the exit code says whether they agree. */
async function status(opts: CliOptions): Promise<number> {
  const stack = await LocalWorkspace.selectStack({ stackName: opts.stack, workDir: opts.workDir });
  const result = await liveStatus(stack, opts.workDir, (t) => void process.stderr.write(t));
  process.stdout.write(opts.json ? `${JSON.stringify(result, null, 2)}\n` : `${formatStatus(result)}\n`);
  return result.agree ? STATUS_EXIT.agree : STATUS_EXIT.disagree;
}

const say = (line: string): void => void process.stderr.write(`deploy: ${line}\n`);

async function main(opts: CliOptions): Promise<number> {
  switch (opts.command) {
    case "releases":
      return releases(opts);
    case "status":
      return status(opts);
    case "rollback":
      return manualRollback({ ...opts, reason: opts.reason ?? "" });
    case "deploy":
      if (opts.watch) {
        const stop = new AbortController();
        for (const sig of ["SIGINT", "SIGTERM"] as const) {
          process.once(sig, () => {
            process.stderr.write(`watch: ${sig}: stopping after the deploy in progress\n`);
            stop.abort();
          });
        }
        await watch({ ...opts, signal: stop.signal });
        return 0;
      }
      return deploy(opts);
  }
}

if (require.main === module) {
  const argv = process.argv.slice(2);
  if (argv.includes("--help") || argv.includes("-h")) {
    process.stdout.write(`${Object.values(USAGE).join("\n")}\n`);
    process.exit(0);
  }
  let opts: CliOptions;
  try {
    opts = parseArgs(argv, path.resolve(__dirname, ".."));
  } catch (e) {
    say((e as Error).message);
    process.exit(EXIT.refused);
  }
  main(opts).then(
    (code) => process.exit(code),
    (e: unknown) => {
      const msg = (e as Error).message;
      const busy = msg.startsWith("another deploy");
      say(busy ? `REFUSED: ${msg}` : `unexpected error: ${msg}`);
      process.exit(busy ? EXIT.refused : EXIT.unexpected);
    },
  );
}
