// npm run init -- --stack NAME [--force] [--KEY VALUE ...]
//
// Writes Pulumi.<NAME>.yaml for another homelab: the values that differ from one homelab to the
// next, validated by the program's own config rules, never a secret; then prints what is left
// to do (the stack, its Flux path in git, the secrets, the host keys).
import * as fs from "fs";
import * as path from "path";
import * as readline from "readline";
import { parseArgs } from "util";
import { CONFIG_KEYS, CONFIG_NAMESPACE, ConfigError, ConfigKey, parseConfig } from "../lib/config";
import { fluxGitUrl } from "../lib/flux-install";
import { shq } from "../lib/shell";
import { RawValues, renderStackFile, stackFileEntries, stackFileName } from "../lib/stack-file";

/** Exit codes, as the deploy uses them: refused before anything was written, or an unexpected error. */
export const INIT_EXIT = { written: 0, unexpected: 1, refused: 2 } as const;

/** Keys of both parts: which parts the stack deploys. */
const STACK_KEYS = ["deployHomelab", "deployVps"] as const satisfies readonly ConfigKey[];

/** The homelab's keys that differ from one homelab to the next (those Pulumi.production.yaml sets, and the like). */
const HOMELAB_KEYS = [
  "registry",
  "registryUsername",
  "registryInsecure",
  "kubeContext",
  "namespace",
  "frontendImage",
  "backendImage",
  "frontendHost",
  "publicUrl",
  "vmHost",
  "vmPort",
  "vmUser",
  "vmHostKey",
  "backendAddress",
  "deployDir",
  "backendPort",
  "backendContainerName",
  "backendHealthPath",
  "backendVersionField",
  "frontendVersionMarker",
  "gitUrl",
  "gitBranch",
  "gitPath",
  "gitKnownHosts",
  "releaseFile",
  "gitInterval",
  "imageScanInterval",
  "gateDeadlineSeconds",
  "gateSoakSeconds",
  "postPromotionWatchSeconds",
] as const satisfies readonly ConfigKey[];

/** The VPS app's keys that differ from one homelab to the next. */
const VPS_KEYS = [
  "vpsHost",
  "vpsPort",
  "vpsUser",
  "vpsHostKey",
  "vpsDomain",
  "vpsTls",
  "vpsAcmeEmail",
  "vpsImage",
  "vpsVersionOwner",
  "vpsDeployDir",
  "vpsAppName",
  "vpsAppPort",
  "vpsDataPath",
  "vpsApiKeyFile",
  "vpsSshKeysMount",
] as const satisfies readonly ConfigKey[];

/** Every key init takes as a flag; none is a secret. */
export const INIT_KEYS: readonly ConfigKey[] = [...STACK_KEYS, ...HOMELAB_KEYS, ...VPS_KEYS];

/** What a terminal is asked for when its flag is missing, in this order, by part. */
const ASKED: Readonly<Record<"stack" | "homelab" | "vps", readonly ConfigKey[]>> = {
  stack: ["deployVps"],
  homelab: ["registry", "registryUsername", "registryInsecure", "publicUrl", "frontendHost", "namespace", "vmHost", "vmPort", "vmUser", "deployDir", "gitUrl", "gitBranch"],
  vps: ["vpsHost", "vpsUser", "vpsDomain", "vpsImage"],
};

/** Pinned after the file is written, from what ssh-keyscan reads off the host: never asked for. */
const HOST_KEY_KEYS = ["vmHostKey", "gitKnownHosts", "vpsHostKey"] as const satisfies readonly ConfigKey[];

/** How each secret is usually given to `pulumi config set --secret`; `optional` ones are listed for the part even when not required. */
const SECRET_INPUT: Readonly<Partial<Record<ConfigKey, { readonly input?: string; readonly note?: string; readonly optional?: boolean }>>> = {
  registryPassword: { note: "prompts for it" },
  kubeconfig: { input: "< ~/.kube/k3s.yaml" },
  vmPrivateKey: { input: "< ~/.ssh/backend_deploy" },
  gitDeployKey: { input: "< ~/.ssh/flux_deploy_key", note: "read-write deploy key" },
  backendEnv: { input: `'{"DATABASE_URL":"postgres://…"}'`, note: "optional: the backend's environment", optional: true },
  vpsPrivateKey: { input: "< ~/.ssh/vps_deploy" },
  vpsRegistryToken: { note: "optional, prompts for it: a token when vpsImage's registry is private", optional: true },
  vpsEnv: { input: `'{"NAME":"value"}'`, note: "optional: more of the app's environment", optional: true },
};

/** A key's flag: the key in kebab-case (`vmHost` → `--vm-host`). */
export function flagOf(key: ConfigKey): string {
  return `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
}

const full = (key: ConfigKey): string => `${CONFIG_NAMESPACE}:${key}`;
const isInitKey = (key: string): key is ConfigKey => (INIT_KEYS as readonly string[]).includes(key);
const isVpsKey = (key: ConfigKey): boolean => key.startsWith("vps");
const deploysHomelab = (values: RawValues): boolean => values.deployHomelab !== "false";
const deploysVps = (values: RawValues): boolean => values.deployVps === "true";

/** A bad command line; the usage follows it. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** The person at the terminal ended the questions (Ctrl-D, Ctrl-C). */
export class InputEnded extends Error {
  constructor() {
    super("input ended");
    this.name = "InputEnded";
  }
}

export interface InitArgs {
  readonly stack?: string;
  readonly force: boolean;
  readonly help: boolean;
  /** The values given, by config key, as typed ("" unsets). */
  readonly values: RawValues;
}

/** Reads `--flag value` and `--flag=value`; an unknown flag, a missing value or a positional is a UsageError. */
export function parseInitArgs(argv: readonly string[]): InitArgs {
  const options: Record<string, { type: "string" | "boolean"; short?: string }> = {
    stack: { type: "string", short: "s" },
    force: { type: "boolean" },
    help: { type: "boolean", short: "h" },
  };
  for (const key of INIT_KEYS) {
    options[flagOf(key).slice(2)] = { type: "string" };
  }
  const parsed = (() => {
    try {
      return parseArgs({ args: [...argv], options, strict: true, allowPositionals: false });
    } catch (e) {
      const code = (e as { code?: string }).code;
      const option = /'([^']+)'/.exec((e as Error).message)?.[1];
      throw new UsageError(code === "ERR_PARSE_ARGS_UNKNOWN_OPTION" && option ? `unknown flag ${option} (npm run init -- --help lists them)` : (e as Error).message);
    }
  })();
  const values: Partial<Record<ConfigKey, string>> = {};
  for (const key of INIT_KEYS) {
    const v = parsed.values[flagOf(key).slice(2)];
    if (typeof v === "string") {
      values[key] = v.trim();
    }
  }
  const stack = parsed.values.stack;
  return { stack: typeof stack === "string" ? stack.trim() : undefined, force: parsed.values.force === true, help: parsed.values.help === true, values };
}

/** Pulumi's rule for a stack name; the name also names the stack file. */
export function stackNameProblem(stack: string): string | undefined {
  return /^[A-Za-z0-9_.-]{1,100}$/.test(stack) ? undefined : `--stack: ${JSON.stringify(stack)} is not a stack name (up to 100 letters, digits, '-', '_' and '.')`;
}

/** Where the stack's Flux path and release file go when not given: the defaults are production's own. */
export function stackPaths(stack: string): { readonly gitPath: string; readonly releaseFile: string } {
  return { gitPath: `./flux/clusters/${stack}`, releaseFile: `flux/clusters/${stack}/release.yaml` };
}

/** The values the file is written from: those given, and the stack's own Flux paths where the homelab is deployed. */
export function stackValues(stack: string, given: RawValues): RawValues {
  return deploysHomelab(given) ? { ...stackPaths(stack), ...given } : given;
}

export interface Problem {
  /** The keys it is about, when they have flags. */
  readonly keys: readonly ConfigKey[];
  /** Names the flag, the key and the value. */
  readonly text: string;
}

export interface Validation {
  /** Bad values, and required values not given. */
  readonly problems: readonly Problem[];
  /** Secrets the program requires for what the stack deploys, set by hand afterwards. */
  readonly secrets: readonly ConfigKey[];
  /** Host keys still to pin with ssh-keyscan. */
  readonly hostKeys: readonly ConfigKey[];
}

/** The program's own problems with these values (parseConfig, with no secrets set). */
function programProblems(values: RawValues): string[] {
  const raw = Object.fromEntries(Object.entries(values).map(([k, v]) => [full(k as ConfigKey), v ?? ""]));
  try {
    parseConfig(raw, () => true);
    return [];
  } catch (e) {
    if (e instanceof ConfigError) {
      return [...e.problems];
    }
    throw e;
  }
}

/** A program problem with the flags of the keys it names in front. */
function withFlags(problem: string): Problem {
  const own = new RegExp(`^${CONFIG_NAMESPACE}:(\\w+): ([\\s\\S]*)$`).exec(problem);
  if (own && isInitKey(own[1])) {
    return { keys: [own[1]], text: `${flagOf(own[1])} (${full(own[1])}): ${own[2]}` };
  }
  const keys = [...problem.matchAll(new RegExp(`${CONFIG_NAMESPACE}:(\\w+)`, "g"))].map((m) => m[1]).filter(isInitKey);
  return { keys, text: keys.length > 0 ? `${keys.map(flagOf).join(", ")}: ${problem}` : problem };
}

/**
 * Checks the values with the program's own rules (lib/config.ts's parseConfig), so init refuses
 * exactly what `pulumi up` would. Every value given is checked, also of a part the stack does not
 * deploy yet; what is required follows the parts it deploys. Secrets and host keys are left out:
 * they are set afterwards, and listed.
 */
export function validateValues(values: RawValues): Validation {
  const required = new RegExp(`^${CONFIG_NAMESPACE}:(\\w+): required\\b`);
  const found = [
    ...programProblems(values),
    ...programProblems({ ...values, deployHomelab: "true", deployVps: "true" }).filter((p) => !required.test(p)),
  ];
  const problems: Problem[] = [];
  const secrets = new Set<ConfigKey>();
  const hostKeys = new Set<ConfigKey>();
  if (deploysHomelab(values) && !values.vmHostKey) {
    // Optional for the program (trust on first use), but pinned before the first deploy is better.
    hostKeys.add("vmHostKey");
  }
  for (const p of new Set(found)) {
    const key = required.exec(p)?.[1];
    if (key === undefined || !(key in CONFIG_KEYS)) {
      problems.push(withFlags(p));
    } else if (CONFIG_KEYS[key as ConfigKey].kind === "secret") {
      secrets.add(key as ConfigKey);
    } else if ((HOST_KEY_KEYS as readonly string[]).includes(key)) {
      hostKeys.add(key as ConfigKey);
    } else if (isInitKey(key)) {
      problems.push({ keys: [key], text: `${flagOf(key)} (${full(key)}): required, and not given (${CONFIG_KEYS[key].description})` });
    } else {
      problems.push(withFlags(p));
    }
  }
  const order = Object.keys(CONFIG_KEYS) as ConfigKey[];
  // In the order of the usage, whatever order the program found them in.
  const rank = (p: Problem): number => (p.keys.length > 0 ? INIT_KEYS.indexOf(p.keys[0]) : INIT_KEYS.length);
  return {
    problems: [...problems].sort((a, b) => rank(a) - rank(b)),
    secrets: order.filter((k) => secrets.has(k)),
    hostKeys: HOST_KEY_KEYS.filter((k) => hostKeys.has(k)),
  };
}

/** A value as one shell word: as it is when it is plain, quoted otherwise. */
function word(value: string): string {
  return /^[A-Za-z0-9_.:@%+=,/-]+$/.test(value) ? value : shq(value);
}

/** The `pulumi config set --secret` commands still to run: the required secrets, then the optional ones of the parts deployed. */
export function secretCommands(stack: string, values: RawValues, required: readonly ConfigKey[]): string[] {
  const optional = (Object.keys(SECRET_INPUT) as ConfigKey[]).filter(
    (k) => SECRET_INPUT[k]?.optional && !required.includes(k) && (isVpsKey(k) ? deploysVps(values) : deploysHomelab(values)),
  );
  return [...required, ...optional].map((key) => {
    const how = SECRET_INPUT[key] ?? {};
    const note = key === "registryPassword" && values.registryUsername ? `${how.note}: the password of ${values.registryUsername} on ${values.registry ?? "the registry"}` : how.note;
    return [`pulumi config set --stack ${word(stack)} --secret ${full(key)}`, how.input, note && `  # ${note}`].filter(Boolean).join(" ");
  });
}

/** `ssh-keyscan` of a host, with its port when not 22. */
function keyscan(host: string, port: string | undefined): string {
  return `ssh-keyscan -t ed25519 ${port && port !== "22" ? `-p ${word(port)} ` : ""}${word(host)} 2>/dev/null`;
}

/** The commands that pin the host keys still missing, read off the hosts as the README shows. */
export function hostKeyCommands(stack: string, values: RawValues, keys: readonly ConfigKey[]): string[] {
  const set = `pulumi config set --stack ${word(stack)}`;
  return keys.flatMap((key) => {
    if (key === "vmHostKey" && values.vmHost) {
      return [`${set} ${full(key)} "$(${keyscan(values.vmHost, values.vmPort)} | cut -d' ' -f2-)"`];
    }
    if (key === "vpsHostKey" && values.vpsHost) {
      return [`${set} ${full(key)} "$(${keyscan(values.vpsHost, values.vpsPort)} | cut -d' ' -f2-)"`];
    }
    if (key === "gitKnownHosts" && values.gitUrl) {
      // An scp-like address (git@host:owner/repo.git) is read as its ssh:// URL, as the program reads it.
      const url = new URL(fluxGitUrl(values.gitUrl));
      return [`${set} ${full(key)} "$(${keyscan(url.hostname, url.port)})"`];
    }
    return [];
  });
}

/** Where the stack's Flux path and release file come from in git, when they are not production's. */
export function releaseFileCommands(values: RawValues): string[] {
  if (!deploysHomelab(values)) {
    return [];
  }
  const dir = (p: string): string => path.posix.dirname(p);
  const flux = (p: string): string => p.replace(/^\.\//, "");
  const copies: [string, string][] = [];
  const gitPath = flux(values.gitPath ?? CONFIG_KEYS.gitPath.default);
  const productionPath = flux(CONFIG_KEYS.gitPath.default);
  if (gitPath !== productionPath) {
    copies.push([`${productionPath}/kustomization.yaml`, `${gitPath}/kustomization.yaml`]);
  }
  const releaseFile = values.releaseFile ?? CONFIG_KEYS.releaseFile.default;
  if (releaseFile !== CONFIG_KEYS.releaseFile.default) {
    copies.push([CONFIG_KEYS.releaseFile.default, releaseFile]);
  }
  const dirs = [...new Set(copies.map(([, to]) => dir(to)))];
  return [...dirs.map((d) => `mkdir -p ${word(d)}`), ...copies.map(([from, to]) => `cp ${word(from)} ${word(to)}`)];
}

/** What is left to do once the file is written. */
export function nextSteps(stack: string, values: RawValues, validation: Validation): string[] {
  const steps: { text: string; commands: string[] }[] = [
    {
      text: "Create the stack in your Pulumi backend (a passphrase encrypts its secrets; a cloud KMS URL works too, README \"Secrets in git\"):",
      commands: [`pulumi stack init ${word(stack)} --secrets-provider passphrase`],
    },
  ];
  const copies = releaseFileCommands(values);
  if (copies.length > 0) {
    const registry = values.registry ?? "<registry>";
    steps.push({
      text:
        `Give the stack its own Flux path in git, copied from production's; then point the two image lines of ` +
        `${values.releaseFile ?? CONFIG_KEYS.releaseFile.default} at ${registry}/${values.frontendImage || CONFIG_KEYS.frontendImage.default} and ` +
        `${registry}/${values.backendImage || CONFIG_KEYS.backendImage.default}, keeping the placeholder tags (the first deploy installs Flux ` +
        `and image automation and waits for the first build image automation commits), ` +
        `commit, and push to ${values.gitBranch || CONFIG_KEYS.gitBranch.default} of ${values.gitUrl ?? "the git repository"}:`,
      commands: copies,
    });
  }
  const secrets = secretCommands(stack, values, validation.secrets);
  if (secrets.length > 0) {
    steps.push({
      text: "Set the secrets (written into the stack file encrypted), then commit the file so every clone and CI have them:",
      commands: [...secrets, `git add ${word(`Pulumi.${stack}.yaml`)} && git commit -m ${word(`${stack}: stack config and encrypted secrets`)}`],
    });
  }
  if (deploysHomelab(values) && values.registryInsecure === "false") {
    const registry = values.registry ?? "<registry>";
    steps.push({
      text:
        `Only if ${registry}'s https certificate is signed by a CA of your own (one the hosts' system roots lack): give the stack its certificate, ` +
        `and put it where the VM's Docker reads it (each k3s node too: README "An https registry with its own CA"):`,
      commands: [
        `pulumi config set --stack ${word(stack)} ${full("registryCaCert")} < ca.crt`,
        `sudo install -D -m 0644 ca.crt ${word(`/etc/docker/certs.d/${registry}/ca.crt`)}   # on the VM`,
      ],
    });
  }
  const hostKeys = hostKeyCommands(stack, values, validation.hostKeys);
  if (hostKeys.length > 0) {
    steps.push({ text: "Pin the host keys, read off the hosts from a network you trust:", commands: hostKeys });
  }
  steps.push({
    text: "Preview, then deploy:",
    commands: [`pulumi preview --stack ${word(stack)} --policy-pack ./policy`, `npm run deploy -- --stack ${word(stack)}`],
  });
  return [`Next steps for stack ${stack}:`, ...steps.flatMap((s, i) => [`  ${i + 1}. ${s.text}`, ...s.commands.map((c) => `       ${c}`)])];
}

/** The usage, with every flag and the key it sets. */
export function usage(): string {
  const paths = stackPaths("<NAME>");
  const line = (key: ConfigKey): string => {
    const spec = CONFIG_KEYS[key];
    const shown = key === "gitPath" || key === "releaseFile" ? paths[key] : String(spec.default);
    const value = spec.kind === "boolean" ? "true|false" : spec.kind === "integer" ? "N" : "VALUE";
    return `  ${`${flagOf(key)} ${value}`.padEnd(36)} ${spec.description}${shown === "" ? "" : ` [${shown}]`}`;
  };
  return [
    "usage: npm run init -- --stack NAME [--force] [--KEY VALUE ...]",
    "",
    "Writes Pulumi.<NAME>.yaml for another homelab: the values given that differ from Pulumi.yaml's",
    "defaults, checked by the program's own rules. Each flag is its config key in kebab-case",
    "(--vm-host sets homelab:vmHost), given as --flag VALUE or --flag=VALUE. Secrets are never",
    "written: the commands that set them are printed at the end. On a terminal, the usual values",
    "not given are asked for; elsewhere a required value not given is an error.",
    "",
    `  ${"--stack NAME".padEnd(36)} The new stack; letters, digits, '-', '_' and '.'.`,
    `  ${"--force".padEnd(36)} Overwrite an existing Pulumi.<NAME>.yaml.`,
    "",
    "Both parts:",
    ...STACK_KEYS.map(line),
    "",
    "The homelab (Flux and the frontend on k3s, the backend VM):",
    ...HOMELAB_KEYS.map(line),
    "",
    "The VPS app (with --deploy-vps true):",
    ...VPS_KEYS.map(line),
  ].join("\n");
}

/** How init talks to the person running it. */
export interface InitIo {
  /** Missing values may be asked for (standard input is a terminal). */
  readonly interactive: boolean;
  /** Asks one question; rejects with InputEnded when input ends. */
  ask(question: string): Promise<string>;
  out(line: string): void;
  err(line: string): void;
  close(): void;
}

/** The process's terminal: questions on standard error, so standard output carries only the result. */
export function terminalIo(): InitIo {
  let rl: readline.Interface | undefined;
  let closed = false;
  return {
    interactive: process.stdin.isTTY === true,
    ask: (question) =>
      new Promise((resolve, reject) => {
        if (closed) {
          reject(new InputEnded());
          return;
        }
        if (!rl) {
          rl = readline.createInterface({ input: process.stdin, output: process.stderr });
          rl.on("close", () => (closed = true));
          // Ctrl-C ends the questions, and nothing is written.
          rl.on("SIGINT", () => rl?.close());
        }
        const onClose = (): void => reject(new InputEnded());
        rl.once("close", onClose);
        rl.question(question, (answer) => {
          rl?.off("close", onClose);
          resolve(answer);
        });
      }),
    out: (line) => void process.stdout.write(`${line}\n`),
    err: (line) => void process.stderr.write(`${line}\n`),
    close: () => rl?.close(),
  };
}

/** Asks for each usual value not given, showing its default, until the program accepts it (three tries). */
async function askMissing(stack: string, given: RawValues, io: InitIo): Promise<RawValues> {
  const values: Partial<Record<ConfigKey, string>> = { ...given };
  const asked = (): ConfigKey[] => [...ASKED.stack, ...(deploysHomelab(values) ? ASKED.homelab : []), ...(deploysVps(values) ? ASKED.vps : [])];
  for (let i = 0; i < asked().length; i++) {
    const key = asked()[i];
    if (key in given) {
      continue;
    }
    const spec = CONFIG_KEYS[key];
    const shown = String(spec.default);
    for (let attempt = 0; attempt < 3; attempt++) {
      const answer = (await io.ask(`${spec.description}\n  ${flagOf(key)} (${full(key)})${shown === "" ? "" : ` [${shown}]`}: `)).trim();
      if (answer === "") {
        delete values[key];
      } else {
        values[key] = answer;
      }
      const problems = validateValues(stackValues(stack, values)).problems.filter((p) => p.keys.includes(key));
      if (problems.length === 0) {
        break;
      }
      problems.forEach((p) => io.err(`  ${p.text}`));
    }
  }
  return values;
}

/**
 * The command: checks the stack name and every value, writes `<projectDir>/Pulumi.<stack>.yaml`
 * (only with --force over an existing file) and prints the next steps. Nothing is written when
 * anything is wrong; every problem is reported at once.
 */
export async function main(argv: readonly string[], projectDir = path.resolve(__dirname, ".."), io: InitIo = terminalIo()): Promise<number> {
  try {
    return await init(argv, projectDir, io);
  } catch (e) {
    if (e instanceof UsageError) {
      io.err(`init: ${e.message}`);
      io.err("usage: npm run init -- --stack NAME [--force] [--KEY VALUE ...]   (--help lists the flags)");
      return INIT_EXIT.refused;
    }
    if (e instanceof InputEnded) {
      io.err("init: stopped before every answer was given: nothing written");
      return INIT_EXIT.refused;
    }
    io.err(`init: unexpected error: ${(e as Error).message}`);
    return INIT_EXIT.unexpected;
  } finally {
    io.close();
  }
}

async function init(argv: readonly string[], projectDir: string, io: InitIo): Promise<number> {
  const args = parseInitArgs(argv);
  if (args.help) {
    io.out(usage());
    return INIT_EXIT.written;
  }
  let stack = args.stack;
  if (stack === undefined && io.interactive) {
    stack = (await io.ask("Name of the new stack\n  --stack: ")).trim();
  }
  const refusals: string[] = [];
  const file = stack ? path.join(projectDir, stackFileName(stack)) : "";
  const stackProblem = stack ? stackNameProblem(stack) : "--stack: required, and not given (the new stack's name; it names Pulumi.<NAME>.yaml)";
  if (stackProblem) {
    refusals.push(stackProblem);
  } else if (fs.existsSync(file) && !args.force) {
    refusals.push(existsRefusal(stack ?? "", file));
  }
  if (refusals.length > 0 && io.interactive) {
    // Said before any question, not after them.
    return refuse(io, refusals);
  }
  const name = stackProblem ? "" : (stack ?? "");
  const given = io.interactive ? await askMissing(name, args.values, io) : args.values;
  const values = stackProblem ? given : stackValues(name, given);
  const validation = validateValues(values);
  const problems = [...refusals, ...validation.problems.map((p) => p.text)];
  if (problems.length > 0) {
    return refuse(io, problems);
  }
  try {
    // "wx": another init that wrote the file meanwhile is not overwritten either.
    fs.writeFileSync(file, renderStackFile(name, values), { flag: args.force ? "w" : "wx" });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "EEXIST") {
      return refuse(io, [existsRefusal(name, file)]);
    }
    throw e;
  }
  const count = Object.keys(stackFileEntries(values)).length;
  io.out(`init: wrote ${file} (${count} setting${count === 1 ? "" : "s"}; every other key keeps Pulumi.yaml's default)`);
  io.out("");
  nextSteps(name, values, validation).forEach((l) => io.out(l));
  return INIT_EXIT.written;
}

function existsRefusal(stack: string, file: string): string {
  const whose = stack === "production" ? ", the original homelab's stack file," : "";
  return `--stack: ${file}${whose} already exists and is left as it is; to replace it, run again with --force`;
}

function refuse(io: InitIo, problems: readonly string[]): number {
  io.err(`init: nothing written, ${problems.length} problem${problems.length === 1 ? "" : "s"}:`);
  problems.forEach((p) => io.err(`  - ${p}`));
  return INIT_EXIT.refused;
}

if (require.main === module) {
  void main(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}
