// npm run deploy -- --stack NAME [--cwd PROJECT_DIR] [--policy-pack DIR]...
import * as path from "path";
import { DeployOptions, POLICY_PACK, deploy } from "./guarded-deploy";
import { EXIT } from "./outcome";

const USAGE = "usage: npm run deploy -- --stack NAME [--cwd PROJECT_DIR] [--policy-pack DIR]...";

/** Reads the command line; throws with the usage on bad input. */
export function parseArgs(argv: readonly string[], repo: string): DeployOptions {
  let stack: string | undefined;
  let workDir = repo;
  const packs: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined || v.startsWith("--")) {
        throw new Error(`${a} needs a value (${USAGE})`);
      }
      return v;
    };
    if (a === "--stack" || a === "-s") {
      stack = value();
    } else if (a === "--cwd") {
      workDir = path.resolve(value());
    } else if (a === "--policy-pack") {
      packs.push(path.resolve(value()));
    } else {
      throw new Error(`unknown argument ${JSON.stringify(a)} (${USAGE})`);
    }
  }
  // Pulumi stack names: a name, or org/project/name.
  if (!stack || !/^[A-Za-z0-9_.-]+(\/[A-Za-z0-9_.-]+){0,2}$/.test(stack)) {
    throw new Error(`--stack: ${JSON.stringify(stack ?? "")} is not a stack name (${USAGE})`);
  }
  return { stack, workDir, policyPacks: packs.length > 0 ? [POLICY_PACK, ...packs] : undefined };
}

const say = (line: string): void => void process.stderr.write(`deploy: ${line}\n`);

if (require.main === module) {
  const argv = process.argv.slice(2);
  if (argv.includes("--help") || argv.includes("-h")) {
    process.stdout.write(`${USAGE}\n`);
    process.exit(0);
  }
  let opts: DeployOptions;
  try {
    opts = parseArgs(argv, path.resolve(__dirname, ".."));
  } catch (e) {
    say((e as Error).message);
    process.exit(EXIT.refused);
  }
  deploy(opts).then(
    (code) => process.exit(code),
    (e: unknown) => {
      const msg = (e as Error).message;
      const busy = msg.startsWith("another deploy");
      say(busy ? `REFUSED: ${msg}` : `unexpected error: ${msg}`);
      process.exit(busy ? EXIT.refused : EXIT.unexpected);
    },
  );
}
