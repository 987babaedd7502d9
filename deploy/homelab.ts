// homelab COMMAND [OPTIONS]: the deploy's commands behind one name, the package's `homelab` bin.
// `npx homelab status --json` prints only what the command prints: npm adds no banner around a bin.
import { ARGUMENTS, run } from "./cli";
import { INIT_EXIT, main as init } from "./init";

/** The commands the bin takes, in the order its help lists them. */
export const BIN_COMMANDS = ["deploy", "rollback", "releases", "status", "logs", "freeze", "unfreeze", "init"] as const;
export type BinCommand = (typeof BIN_COMMANDS)[number];

/** The bin's help: one line per command. */
export function binUsage(): string {
  const lines = BIN_COMMANDS.map((c) => `  homelab ${c} ${c === "init" ? "--stack NAME [--force] [--KEY VALUE ...]" : ARGUMENTS[c]}`);
  return ["usage: homelab COMMAND [OPTIONS]   (homelab help: this list)", ...lines].join("\n");
}

/** What a bin's command line asks for: a command, the help, or nothing it knows (and why). */
export function binCommand(argv: readonly string[]): { command: BinCommand } | { help: true } | { problem: string } {
  const word = argv[0];
  // `npx homelab --help` shows npx's own help, so the word `help` asks for it too.
  if (word === "help" || word === "--help" || word === "-h") {
    return { help: true };
  }
  if (word === undefined) {
    return { problem: "no command given" };
  }
  if (word.startsWith("-")) {
    return { problem: `${JSON.stringify(word)} is not a command: the command comes first` };
  }
  return (BIN_COMMANDS as readonly string[]).includes(word) ? { command: word as BinCommand } : { problem: `unknown command ${JSON.stringify(word)}` };
}

/** Runs the command a bin's command line names; sets the exit code or exits with it. */
export function main(argv: readonly string[]): void {
  const found = binCommand(argv);
  if ("help" in found) {
    process.stdout.write(`${binUsage()}\n`);
  } else if ("problem" in found) {
    process.stderr.write(`homelab: ${found.problem}\n${binUsage()}\n`);
    process.exitCode = INIT_EXIT.refused;
  } else if (found.command === "init") {
    void init(argv.slice(1)).then((code) => (process.exitCode = code));
  } else {
    // The deploy's own parser takes `deploy` without its word, the other commands with theirs.
    run(found.command === "deploy" ? argv.slice(1) : argv);
  }
}

if (require.main === module) {
  main(process.argv.slice(2));
}
