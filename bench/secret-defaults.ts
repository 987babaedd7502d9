import * as fs from "fs";
import * as path from "path";
import * as YAML from "yaml";
import { ConfigMap, Stack } from "@pulumi/pulumi/automation";

/**
 * The engine refuses a stack that leaves a secret key declared in Pulumi.yaml at its plain-text
 * default; this sets each such key the stack does not set to its default, encrypted.
 */
export async function encryptSecretDefaults(stack: Stack, projectDir: string): Promise<void> {
  const project = YAML.parse(fs.readFileSync(path.join(projectDir, "Pulumi.yaml"), "utf8")) as {
    name: string;
    config?: Record<string, { secret?: boolean; default?: unknown }>;
  };
  // The stack's own settings file: `pulumi config` would list the project's defaults too.
  const have = (await stack.workspace.stackSettings(stack.name)).config ?? {};
  const missing: ConfigMap = {};
  for (const [key, spec] of Object.entries(project.config ?? {})) {
    const full = key.includes(":") ? key : `${project.name}:${key}`;
    if (spec.secret && spec.default !== undefined && !(full in have)) {
      missing[full] = { value: typeof spec.default === "string" ? spec.default : JSON.stringify(spec.default), secret: true };
    }
  }
  // All at once: the CLI checks the whole stack's config before it sets anything.
  if (Object.keys(missing).length > 0) {
    await stack.setAllConfig(missing);
  }
}
