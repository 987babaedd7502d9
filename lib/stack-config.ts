import type { ConfigMap } from "@pulumi/pulumi/automation";

/**
 * Config entries for a list-typed key. The engine checks declared `array` keys, so lists are
 * stored as structured config (`key[0]`, `key[1]`, …) set with `path: true`, not as JSON text.
 */
export function listConfig(key: string, values: readonly string[]): ConfigMap {
  return Object.fromEntries(values.map((v, i) => [`${key}[${i}]`, { value: v }]));
}
