import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { ConfigMap, LocalWorkspace, PulumiCommand, Stack } from "@pulumi/pulumi/automation";
import { toolchainEnv } from "../../toolchain/env";
import { linkProgram } from "../../sandbox/checkout";

export interface LocalStack {
  readonly stack: Stack;
  readonly dir: string;
  readonly projectDir: string;
  /** Destroys what the stack created, removes the stack and its temporary directories. */
  cleanup(): Promise<void>;
}

/**
 * A throwaway stack of this program in a temporary project directory, with its own file state
 * backend and passphrase, run by the offline toolchain's engine.
 */
export async function createLocalStack(config: ConfigMap, prefix = "test"): Promise<LocalStack> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `homelab-${prefix}-`));
  const projectDir = path.join(dir, "project");
  const stateDir = path.join(dir, "state");
  fs.mkdirSync(projectDir);
  fs.mkdirSync(stateDir);
  linkProgram(projectDir);
  const tc = toolchainEnv({ backendUrl: `file://${stateDir}` });
  const envVars: Record<string, string> = {
    ...tc.vars,
    PULUMI_CONFIG_PASSPHRASE: crypto.randomBytes(16).toString("hex"),
  };
  // Automation API resolves `pulumi` and plugins through this process's environment.
  Object.assign(process.env, envVars);
  const pulumiCommand = await PulumiCommand.get({ skipVersionCheck: false });
  const stackName = `${prefix}-${crypto.randomBytes(3).toString("hex")}`;
  const stack = await LocalWorkspace.createStack({ stackName, workDir: projectDir }, { envVars, pulumiCommand });
  await stack.setAllConfig(config);
  return {
    stack,
    dir,
    projectDir,
    async cleanup() {
      try {
        await stack.destroy({ color: "never" });
        await stack.workspace.removeStack(stackName);
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}
