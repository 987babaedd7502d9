import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { Stack } from "@pulumi/pulumi/automation";
import { Sandbox, stopSandbox } from "../../sandbox/sandbox";

/**
 * Ends a suite that ran a stack on a private sandbox in `dir`: destroys and removes the stack,
 * prunes the engine's volumes, stops the sandbox by PID and removes `dir`. Each step runs even
 * when an earlier one fails.
 */
export async function tearDownSandboxStack(stack: Stack | undefined, stackName: string, sb: Sandbox | undefined, dir: string | undefined): Promise<void> {
  try {
    await stack?.destroy({ color: "never" }).catch(() => undefined);
    await stack?.workspace.removeStack(stackName).catch(() => undefined);
    if (sb) {
      spawnSync("docker", ["volume", "prune", "-af"], { env: sb.docker.env() });
    }
  } finally {
    if (dir) {
      await stopSandbox(path.join(dir, "sandbox"), () => undefined);
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }
}
