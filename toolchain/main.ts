// npm run toolchain [-- --only engine|providers|sandbox[,…]] [--print-env] [--no-ambient]

import { ensureToolchain, ToolchainError } from "./build";
import { printableEnv, toolchainEnv } from "./env";
import { GROUPS, type Group } from "./manifest";

function usage(): string {
  return [
    "usage: npm run toolchain -- [--only GROUP[,GROUP]] [--print-env] [--no-ambient]",
    `  GROUP: ${GROUPS.join(", ")} (default: all). "engine" is the pulumi CLI + Node.js language host;`,
    '  "providers" also builds the resource provider plugins and installs them into the toolchain PULUMI_HOME;',
    '  "sandbox" builds kube-apiserver/controller-manager/scheduler, kubelet, etcd, kwok, kwokctl, docker-compose,',
    '  the node\'s pause, Traefik and Flux\'s source- and kustomize-controller.',
    "  --print-env   print shell export lines for the built toolchain (builds nothing)",
    "  --no-ambient  do not reuse a pulumi/plugins already installed on PATH / in ~/.pulumi",
  ].join("\n");
}

function isGroup(s: string): s is Group {
  return (GROUPS as readonly string[]).includes(s);
}

async function main(argv: readonly string[]): Promise<number> {
  const only: Group[] = [];
  let printEnv = false;
  let noAmbient = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--print-env") {
      printEnv = true;
    } else if (a === "--no-ambient") {
      noAmbient = true;
    } else if (a === "--only" || a.startsWith("--only=")) {
      const value = a === "--only" ? argv[++i] : a.slice("--only=".length);
      for (const g of (value ?? "").split(",").filter(Boolean)) {
        if (!isGroup(g)) {
          process.stderr.write(`unknown group "${g}"\n${usage()}\n`);
          return 2;
        }
        only.push(g);
      }
    } else if (a === "-h" || a === "--help") {
      process.stdout.write(usage() + "\n");
      return 0;
    } else {
      process.stderr.write(`unknown argument "${a}"\n${usage()}\n`);
      return 2;
    }
  }
  if (printEnv) {
    process.stdout.write(printableEnv());
    return 0;
  }
  const t0 = Date.now();
  try {
    const result = await ensureToolchain({ only, noAmbient });
    const te = toolchainEnv();
    process.stderr.write(
      `toolchain ready in ${((Date.now() - t0) / 1000).toFixed(1)}s (${result.source}): ${te.pulumi}\n` +
      "  use it with: eval \"$(npm run -s toolchain -- --print-env)\"\n",
    );
    if (result.missing.length > 0) {
      process.stderr.write("WARNING: these provider plugins are NOT available; programs using them cannot run offline:\n");
      for (const m of result.missing) {
        process.stderr.write(`  - ${m.name} v${m.version}: ${m.reason}\n`);
      }
    }
    return 0;
  } catch (e) {
    if (e instanceof ToolchainError) {
      process.stderr.write(`\n${e.message}\n`);
      return 1;
    }
    throw e;
  }
}

main(process.argv.slice(2)).then(
  (code) => { process.exitCode = code; },
  (e: unknown) => {
    process.stderr.write(`${e instanceof Error ? e.stack ?? e.message : String(e)}\n`);
    process.exitCode = 1;
  },
);
