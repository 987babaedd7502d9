import * as YAML from "yaml";
import { CONFIG_KEYS, CONFIG_NAMESPACE, ConfigKey } from "./config";

/** Raw values as flags and prompts give them, keyed by config key; "" is unset. */
export type RawValues = Readonly<Partial<Record<ConfigKey, string>>>;

/** The stack file Pulumi reads for a stack, in the project directory. */
export function stackFileName(stack: string): string {
  return `Pulumi.${stack}.yaml`;
}

/**
 * The `homelab:` entries a stack file needs: the values that differ from the program's defaults
 * (CONFIG_KEYS, which a unit test keeps in step with Pulumi.yaml), typed as Pulumi.yaml declares
 * them. A secret key is refused: these values are written as plain text, and a secret reaches the
 * file only encrypted, through `pulumi config set --secret`.
 */
export function stackFileEntries(values: RawValues): Record<string, string | number | boolean> {
  const entries: Record<string, string | number | boolean> = {};
  for (const key of Object.keys(CONFIG_KEYS) as ConfigKey[]) {
    const v = values[key];
    if (v === undefined || v === "") {
      continue;
    }
    const spec = CONFIG_KEYS[key];
    switch (spec.kind) {
      case "secret":
        throw new Error(`${CONFIG_NAMESPACE}:${key} is a secret: it is set with pulumi config set --secret, never written to a stack file`);
      case "array":
        throw new Error(`${CONFIG_NAMESPACE}:${key} is a list: set it with pulumi config set --path`);
      case "integer":
        if (Number(v) !== spec.default) {
          entries[`${CONFIG_NAMESPACE}:${key}`] = Number(v);
        }
        break;
      case "boolean":
        if (v !== String(spec.default)) {
          entries[`${CONFIG_NAMESPACE}:${key}`] = v === "true";
        }
        break;
      case "string":
        if (v !== spec.default) {
          entries[`${CONFIG_NAMESPACE}:${key}`] = v;
        }
        break;
    }
  }
  return entries;
}

/** The text of `Pulumi.<stack>.yaml` for validated values. */
export function renderStackFile(stack: string, values: RawValues): string {
  const doc = new YAML.Document({
    config: {
      "pulumi:disable-default-providers": ["kubernetes", "docker"],
      ...stackFileEntries(values),
    },
  });
  doc.commentBefore =
    ` The ${stack} stack. Secrets are never here in plain text: \`pulumi config set --secret\`\n` +
    " (README, \"Secrets in git\") writes them encrypted, and the file is committed with them.";
  const providers = (doc.get("config") as YAML.YAMLMap).items[0];
  (providers.key as YAML.Scalar).commentBefore = " Every Kubernetes and Docker resource must name its provider; no ambient kubeconfig is used.";
  // Host keys and known_hosts lines stay on one line, as ssh-keyscan prints them.
  return doc.toString({ lineWidth: 0 });
}
