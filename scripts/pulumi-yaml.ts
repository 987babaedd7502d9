// Writes Pulumi.yaml's config schema from CONFIG_KEYS (lib/config.ts), the one source of truth;
// a unit test fails when the two differ. Run: npx tsx scripts/pulumi-yaml.ts
//
// Secret keys are not declared `secret: true`: the engine then insists on an encrypted value even
// for the "" default of a part the stack does not deploy. parseConfig refuses them in plain text.
import * as fs from "fs";
import * as path from "path";
import * as YAML from "yaml";
import { CONFIG_KEYS } from "../lib/config";

const file = path.join(__dirname, "..", "Pulumi.yaml");
const project = YAML.parse(fs.readFileSync(file, "utf8")) as Record<string, unknown>;
const config: Record<string, Record<string, unknown>> = {};
for (const [key, spec] of Object.entries(CONFIG_KEYS) as [string, { kind: string; description: string; default?: unknown }][]) {
  config[key] = {
    type: spec.kind === "secret" ? "string" : spec.kind,
    ...(spec.kind === "array" ? { items: { type: "string" } } : {}),
    description: spec.kind === "secret" ? `Secret (set with --secret). ${spec.description}` : spec.description,
    ...(spec.default !== undefined ? { default: spec.default } : {}),
  };
}
const description = "A homelab's production stack from one program: Flux on k3s, the frontend and the backend VM promoted through health gates, and a VPS app behind Caddy.";
fs.writeFileSync(file, YAML.stringify({ ...project, description, config }, { lineWidth: 0 }));
