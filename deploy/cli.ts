// npm run deploy   -- --stack NAME [--cwd DIR] [--policy-pack DIR]... [--watch [--interval SECONDS] [--check-every SECONDS]]
// npm run rollback -- --stack NAME --reason TEXT [--to FRONTEND_TAG,BACKEND_TAG] [--cwd DIR]
// npm run releases -- --stack NAME [--json | --html FILE] [--cwd DIR]
// npm run status   -- --stack NAME [--quick] [--json] [--cwd DIR]
// npm run freeze   -- --stack NAME --reason TEXT [--cwd DIR]
// npm run unfreeze -- --stack NAME [--cwd DIR]
// npm run logs     -- --stack NAME frontend|backend|vps [--follow] [--since 10m] [--tail N] [--cwd DIR]
// Every option takes its value as `--stack NAME` or `--stack=NAME`.
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as util from "util";
import { LocalWorkspace } from "@pulumi/pulumi/automation";
import type { LedgerEntry } from "../components/release-record";
import { DeployOptions, POLICY_PACK, deploy } from "./guarded-deploy";
import { PulumiNotFound, findOnPath, pulumiNotFound } from "./engine";
import { fileHistory, git } from "./git";
import { freeze } from "./freeze";
import { manualRollback } from "./manual-rollback";
import { EXIT } from "./outcome";
import { formatHistory, releaseHistory } from "./releases";
import { renderReleasesPage } from "../lib/releases-page";
import { checkPlatform } from "./platform";
import { StackConfig, lastPromoted, setting } from "./release-state";
import { STATUS_EXIT, formatStatus, statusExit } from "./status";
import { liveStatus } from "./live-status";
import { showLogs } from "./logs";
import { LOG_PARTS, LogPart, LogWindow, parseSince, parseTail } from "../lib/logs";
import { formatQuickStatus, quickStatus } from "./quick-status";
import { watch } from "./watch";
import { changedParts, releaseFault, watchWindowEnd } from "./watch-window";

export type Command = "deploy" | "rollback" | "releases" | "status" | "freeze" | "unfreeze" | "logs";

/** Each command's arguments, as both ways in take them (`npm run NAME --` and `homelab NAME`). */
export const ARGUMENTS: Record<Command, string> = {
  deploy: "--stack NAME [--cwd PROJECT_DIR] [--policy-pack DIR]... [--watch [--interval SECONDS] [--check-every SECONDS]]",
  rollback: "--stack NAME --reason TEXT [--to FRONTEND_TAG,BACKEND_TAG] [--cwd PROJECT_DIR]",
  releases: "--stack NAME [--json | --html FILE] [--cwd PROJECT_DIR]",
  status: "--stack NAME [--quick] [--json] [--cwd PROJECT_DIR]",
  freeze: "--stack NAME --reason TEXT [--cwd PROJECT_DIR]",
  unfreeze: "--stack NAME [--cwd PROJECT_DIR]",
  logs: "--stack NAME frontend|backend|vps [--follow] [--since 10m] [--tail N] [--cwd PROJECT_DIR]",
};

const USAGE = Object.fromEntries(Object.entries(ARGUMENTS).map(([c, a]) => [c, `usage: npm run ${c} -- ${a}`])) as Record<Command, string>;

type Options = NonNullable<util.ParseArgsConfig["options"]>;

const COMMON = {
  stack: { type: "string", short: "s" },
  cwd: { type: "string" },
} as const satisfies Options;

/** The options each command takes; any other is refused. */
const OPTIONS = {
  deploy: {
    ...COMMON,
    "policy-pack": { type: "string", multiple: true },
    watch: { type: "boolean" },
    interval: { type: "string" },
    "check-every": { type: "string" },
  },
  rollback: { ...COMMON, reason: { type: "string" }, to: { type: "string" } },
  releases: { ...COMMON, json: { type: "boolean" }, html: { type: "string" } },
  status: { ...COMMON, json: { type: "boolean" }, quick: { type: "boolean" } },
  freeze: { ...COMMON, reason: { type: "string" } },
  unfreeze: { ...COMMON },
  logs: { ...COMMON, follow: { type: "boolean", short: "f" }, since: { type: "string" }, tail: { type: "string" } },
} as const satisfies Record<Command, Options>;

export interface CliOptions extends DeployOptions {
  readonly command: Command;
  readonly watch: boolean;
  readonly intervalSeconds: number;
  readonly checkEverySeconds: number;
  readonly reason?: string;
  readonly to?: { frontend: string; backend: string };
  readonly json: boolean;
  /** status: a glance with no refresh and nothing read over SSH. */
  readonly quick: boolean;
  /** releases: write the history as one self-contained HTML page to this file. */
  readonly html?: string;
  /** logs: which part, and which lines. */
  readonly logs?: LogWindow & { readonly part: LogPart };
}

/**
 * What is wrong with a command line the strict parse refused, naming the option, from the
 * tokens of a lenient parse of the same arguments.
 */
function commandLineProblem(args: readonly string[], options: Options, positionals = false): string | undefined {
  const { tokens } = util.parseArgs({ args: [...args], options, strict: false, allowPositionals: true, tokens: true });
  for (const t of tokens) {
    if (t.kind === "positional" && !positionals) {
      return `unknown argument ${JSON.stringify(t.value)}`;
    }
    if (t.kind !== "option") {
      continue;
    }
    if (!Object.hasOwn(options, t.name)) {
      return `unknown option ${JSON.stringify(t.rawName)}`;
    }
    const type = options[t.name].type;
    if (type === "string" && t.value === undefined) {
      return `${t.rawName} needs a value`;
    }
    // The strict parse takes no option-like word as a value: one that begins with "-" goes inline.
    if (type === "string" && !t.inlineValue && t.value?.startsWith("-")) {
      return `${t.rawName} needs a value (write --${t.name}=VALUE for one that begins with "-")`;
    }
    if (type === "boolean" && t.inlineValue) {
      return `${t.rawName} takes no value`;
    }
  }
  return undefined;
}

/** A number of seconds from 1 to 86400, or an error naming the option. */
function seconds(option: string, v: string | undefined, fallback: number): number {
  if (v === undefined) {
    return fallback;
  }
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > 86400) {
    throw new Error(`${option}: ${JSON.stringify(v)} is not a number of seconds from 1 to 86400`);
  }
  return n;
}

/** Reads the command line; throws with the usage on bad input. */
export function parseArgs(argv: readonly string[], repo: string): CliOptions {
  let command: Command = "deploy";
  let rest = argv;
  if (argv[0] === "rollback" || argv[0] === "releases" || argv[0] === "status" || argv[0] === "freeze" || argv[0] === "unfreeze" || argv[0] === "logs") {
    command = argv[0];
    rest = argv.slice(1);
  }
  const usage = USAGE[command];
  const options: Options = OPTIONS[command];
  // Only logs takes a word of its own: the part.
  const allowPositionals = command === "logs";
  let values: Record<string, string | boolean | (string | boolean)[] | undefined>;
  let positionals: string[];
  try {
    ({ values, positionals } = util.parseArgs({ args: [...rest], options, strict: true, allowPositionals }));
  } catch (e) {
    throw new Error(`${commandLineProblem(rest, options, allowPositionals) ?? (e as Error).message} (${usage})`, { cause: e });
  }
  // `--cwd=` or `--cwd "$UNSET"` is a mistake, not the current directory.
  const empty = Object.entries(values).find(([, v]) => v === "" || (Array.isArray(v) && v.includes("")));
  if (empty) {
    throw new Error(`--${empty[0]} needs a value (${usage})`);
  }
  const text = (name: string): string | undefined => values[name] as string | undefined;
  const stack = text("stack");
  const reason = text("reason");
  const packs = ((values["policy-pack"] as string[] | undefined) ?? []).map((p) => path.resolve(p));
  let to: CliOptions["to"];
  const toText = text("to");
  if (toText !== undefined) {
    const [frontend, backend, extra] = toText.split(",");
    if (!frontend || !backend || extra !== undefined) {
      throw new Error(`--to: ${JSON.stringify(toText)} is not FRONTEND_TAG,BACKEND_TAG`);
    }
    to = { frontend, backend };
  }
  const html = text("html");
  if (html !== undefined && values.json === true) {
    throw new Error(`--json and --html: one of them (${usage})`);
  }
  const intervalSeconds = seconds("--interval", text("interval"), 30);
  const checkEverySeconds = seconds("--check-every", text("check-every"), 300);
  // Pulumi stack names: a name, or org/project/name.
  if (!stack || !/^[A-Za-z0-9_.-]+(\/[A-Za-z0-9_.-]+){0,2}$/.test(stack)) {
    throw new Error(`--stack: ${JSON.stringify(stack ?? "")} is not a stack name (${usage})`);
  }
  if ((command === "rollback" || command === "freeze") && !reason?.trim()) {
    throw new Error(`--reason is required: it goes into the ${command} commit (${usage})`);
  }
  // The reason travels only as a commit message on stdin, so any printable text will do.
  // eslint-disable-next-line no-control-regex -- control characters are exactly what is refused
  const reasonProblem = reason === undefined ? undefined : reason.length > 500 ? "is longer than 500 characters" : /[\0-\x09\x0b-\x1f\x7f]/.test(reason) ? "contains control characters" : undefined;
  if (reasonProblem) {
    throw new Error(`--reason: ${reasonProblem}`);
  }
  let logs: CliOptions["logs"];
  if (command === "logs") {
    const part = positionals[0];
    if (positionals.length !== 1 || !(LOG_PARTS as readonly string[]).includes(part)) {
      throw new Error(`name one part: ${LOG_PARTS.join(", ")}${positionals.length > 0 ? ` (not ${positionals.map((p) => JSON.stringify(p)).join(" ")})` : ""} (${usage})`);
    }
    const since = text("since");
    logs = { part: part as LogPart, tail: parseTail(text("tail") ?? "100"), sinceSeconds: since === undefined ? undefined : parseSince(since), follow: values.follow === true };
  }
  const cwd = text("cwd");
  return {
    command,
    stack,
    workDir: cwd === undefined ? repo : path.resolve(cwd),
    policyPacks: packs.length > 0 ? [POLICY_PACK, ...packs] : undefined,
    watch: values.watch === true,
    intervalSeconds,
    checkEverySeconds,
    reason,
    to,
    json: values.json === true,
    quick: values.quick === true,
    ...(html !== undefined ? { html: path.resolve(html) } : {}),
    ...(logs ? { logs } : {}),
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
  if (opts.html) {
    fs.writeFileSync(opts.html, renderReleasesPage(opts.stack, history, new Date().toISOString()));
    process.stdout.write(`releases: wrote ${opts.html} (${history.length} entries)\n`);
    return 0;
  }
  process.stdout.write(opts.json ? `${JSON.stringify(history, null, 2)}\n` : `${formatHistory(history)}\n`);
  return 0;
}

/** What each part runs against what the stack records; the exit code is the worst part's condition. */
async function status(opts: CliOptions): Promise<number> {
  if (opts.quick) {
    const glance = await quickStatus(opts.stack, opts.workDir);
    process.stdout.write(opts.json ? `${JSON.stringify(glance, null, 2)}\n` : `${formatQuickStatus(glance)}\n`);
    return statusExit(glance);
  }
  const stack = await LocalWorkspace.selectStack({ stackName: opts.stack, workDir: opts.workDir });
  const result = await liveStatus(stack, opts.workDir, (t) => void process.stderr.write(t));
  process.stdout.write(opts.json ? `${JSON.stringify(result, null, 2)}\n` : `${formatStatus(result)}\n`);
  // Inside a promotion's watch window, what differs is judged as --watch judges it.
  const cfg = (await stack.getAllConfig()) as StackConfig;
  const last = await lastPromoted(stack);
  const window = watchWindowEnd(last.promotion, Number(setting(cfg, "postPromotionWatchSeconds")));
  if (window) {
    const fault = releaseFault(result, await checkPlatform(cfg), changedParts(last.current, last.previous));
    say(
      `the last promotion is in its watch window until ${window.toISOString()}` +
        (fault ? `: the promoted release fails (${fault.part}: ${fault.evidence}); --watch rolls it back` : ": a crash loop or a gate answering wrong now counts as the release's failure"),
    );
  }
  return statusExit(result);
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
    case "freeze":
    case "unfreeze":
      return freeze({ ...opts, lift: opts.command === "unfreeze" });
    case "logs": {
      // Ctrl-C ends a followed log cleanly: the streams close, the remote follower with them.
      const stop = new AbortController();
      process.once("SIGINT", () => stop.abort());
      process.once("SIGTERM", () => stop.abort());
      return showLogs({ ...opts.logs!, stack: opts.stack, workDir: opts.workDir, signal: stop.signal, say: (l) => void process.stderr.write(`logs: ${l}\n`) });
    }
    case "deploy":
      if (opts.watch) {
        const stop = new AbortController();
        // Kept for every signal (`on`, not `once`): execa, with which the Automation API runs the
        // CLI, listens too (signal-exit), and when it finds no other listener it raises the signal
        // again, which ends the watcher and the lock's `pulumi up` in the middle of a deploy.
        for (const sig of ["SIGINT", "SIGTERM"] as const) {
          process.on(sig, () => {
            if (stop.signal.aborted) {
              process.stderr.write(`watch: ${sig} again: stopping now\n`);
              process.exit(128 + os.constants.signals[sig]);
            }
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

/**
 * Runs one command from its command line (`deploy`'s without the word, the others with theirs)
 * and exits with its code: `npm run deploy|rollback|…` and the `homelab` bin both come here.
 */
export function run(argv: readonly string[]): void {
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
  // Looked for before anything starts: without the CLI nothing can run, so its absence is a
  // refusal before any change (2; for status, "unreadable", also 2). A CLI lost later, mid-run,
  // is said the same way but stays an unexpected error (1): something may have changed by then.
  if (!findOnPath("pulumi")) {
    say(new PulumiNotFound("pulumi").message);
    process.exit(opts.command === "status" ? STATUS_EXIT.unreadable : EXIT.refused);
  }
  main(opts).then(
    (code) => process.exit(code),
    (e: unknown) => {
      const msg = pulumiNotFound(e)?.message ?? (e as Error).message;
      const busy = msg.startsWith("another deploy");
      say(busy ? `REFUSED: ${msg}` : `unexpected error: ${msg}`);
      // For status, 1 means drift: a status that could not be read at all says 2.
      process.exit(busy ? EXIT.refused : opts.command === "status" ? STATUS_EXIT.unreadable : EXIT.unexpected);
    },
  );
}

if (require.main === module) {
  run(process.argv.slice(2));
}
