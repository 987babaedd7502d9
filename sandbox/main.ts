import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { LocalWorkspace } from "@pulumi/pulumi/automation";
import { deploy } from "../deploy/guarded-deploy";
import { EXIT } from "../deploy/outcome";
import { cacheDir } from "../toolchain/env";
import { LOCAL_STACK, Sandbox, sandboxDir, sandboxPulumiEnv, sandboxStack, startSandbox, stopSandbox } from "./sandbox";

const log = (line: string): void => void process.stderr.write(`${line}\n`);

function shellQuote(v: string): string {
  return `'${v.replace(/'/g, `'\\''`)}'`;
}

/** Copies the root of Caddy's internal CA out of the VPS's Caddy container, for clients to trust. */
function saveCaddyRoot(sb: Sandbox): string | undefined {
  const env = sb.docker.env();
  const id = spawnSync("docker", ["ps", "-q", "--filter", "label=com.docker.compose.service=caddy"], { env, encoding: "utf8" }).stdout.trim().split("\n")[0];
  const root = id ? spawnSync("docker", ["exec", id, "cat", "/data/caddy/pki/authorities/local/root.crt"], { env, encoding: "utf8" }) : undefined;
  if (!root || root.status !== 0) {
    return undefined;
  }
  const file = path.join(sb.dir, "vps-ca.crt");
  fs.writeFileSync(file, root.stdout);
  return file;
}

async function up(imageAutomation: boolean): Promise<number> {
  const started = Date.now();
  const sb = await startSandbox(sandboxDir(), { vps: true, imageAutomation: imageAutomation ? {} : undefined });
  const stack = await sandboxStack(sb);
  log(`sandbox: ready in ${((Date.now() - started) / 1000).toFixed(1)}s; deploying the local stack`);
  // As a user would: from a clone of the repository Flux watches, on its branch.
  const code = await deploy({ stack: LOCAL_STACK, workDir: sb.checkout });
  const outputs = await stack.outputs();
  const caFile = sb.vps ? saveCaddyRoot(sb) : undefined;
  const show = (k: string): string => JSON.stringify(outputs[k]?.value ?? null);
  process.stdout.write(
    [
      "",
      `The sandbox is running (on 127.0.0.1; the backend VM on ${sb.backendHost}):`,
      `  frontend URL:   ${show("frontendUrl")}`,
      `  API URL:        ${show("apiUrl")}`,
      `  frontend image: ${show("frontendImage")}`,
      `  backend image:  ${show("backendImage")}`,
      `  VPS dashboard:  ${show("vpsDashboardUrl")} (Caddy, internal CA; resolve ${sb.vps?.domain ?? ""} to 127.0.0.1)`,
      `  VPS webhook:    ${show("vpsWebhookUrl")}`,
      `  VPS app image:  ${show("vpsImage")}`,
      `  git repository: ${sb.git.url} (branch ${sb.git.branch}); checkout ${sb.checkout}`,
      `  demo tags:      frontend ${sb.images.frontend.join(", ")} (never ready ${sb.images.frontendFaults.unready}, crash ${sb.images.frontendFaults.crash}); ` +
        `backend v1 ${sb.images.backend.v1}, v2 ${sb.images.backend.v2}, unhealthy ${sb.images.backend.unhealthy}, crash ${sb.images.backend.crash}`,
      "",
      "Use it:",
      `  curl ${String(outputs.apiUrl?.value ?? sb.ingressUrl + "/api")}/health`,
      "  eval \"$(npm run -s sandbox -- --print-env)\"   (pulumi, the state, and git over SSH to the sandbox's git host)",
      `  cd ${sb.checkout}, edit flux/clusters/production/release.yaml to another demo tag, git commit and git push`,
      `  npm run deploy -- --stack local --cwd ${sb.checkout}     (or --watch, to deploy each push)`,
      `  npm run releases -- --stack local --cwd ${sb.checkout}`,
      "  pulumi stack output --stack local",
      `  curl --resolve ${sb.vps?.domain ?? ""}:${sb.vps?.httpsPort ?? 0}:127.0.0.1 --cacert ${caFile ?? "<Caddy's root>"} ${String(outputs.vpsDashboardUrl?.value ?? "")}api/health`,
      "  the VPS app's API key: pulumi stack output --stack local --show-secrets vpsApiKey",
      "Stop it and remove everything it created: npm run sandbox:down",
      "",
    ].join("\n"),
  );
  return code;
}

async function down(): Promise<number> {
  const dir = sandboxDir();
  if (fs.existsSync(path.join(dir, "state"))) {
    const env = sandboxPulumiEnv(dir);
    Object.assign(process.env, env);
    try {
      const stack = await LocalWorkspace.selectStack({ stackName: LOCAL_STACK, workDir: path.join(dir, "checkout") }, { envVars: env });
      log("sandbox: destroying the local stack");
      await stack.destroy({ onOutput: (o) => process.stdout.write(o), color: "never" });
      await stack.workspace.removeStack(LOCAL_STACK);
    } catch (e) {
      log(`sandbox: could not destroy the local stack (${(e as Error).message.split("\n")[0]}); stopping the sandbox anyway`);
    }
  }
  await stopSandbox(dir, log);
  log("sandbox: stopped; nothing it started is left running");
  return 0;
}

function printEnv(): number {
  for (const [k, v] of Object.entries(sandboxPulumiEnv(sandboxDir()))) {
    process.stdout.write(`export ${k}=${shellQuote(v)}\n`);
  }
  return 0;
}

async function main(argv: string[]): Promise<number> {
  // --image-automation (with up): the stand-in for Flux's image controllers commits new builds.
  const imageAutomation = argv.includes("--image-automation");
  const [command = "up", ...rest] = argv.filter((a) => a !== "--image-automation");
  if (rest.length > 0) {
    throw new Error(`unexpected arguments: ${rest.join(" ")}`);
  }
  switch (command) {
    case "up":
      return up(imageAutomation);
    case "down":
      return down();
    case "--print-env":
      return printEnv();
    default:
      throw new Error(`unknown command ${JSON.stringify(command)}: use up, down or --print-env (cache: ${cacheDir()})`);
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    log(`sandbox: ${(e as Error).message}`);
    process.exit(EXIT.unexpected);
  },
);
