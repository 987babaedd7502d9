import type { Stack } from "@pulumi/pulumi/automation";
import { readLive } from "./engine";
import { lastPromoted, secretValues, StackConfig } from "./release-state";
import { redact } from "./rollback-commit";
import { StackStatus, stackStatus } from "./status";

/**
 * Reads every part of the stack as it runs now (`pulumi refresh --preview-only`: the hosts, the
 * gates' URLs, the cluster; nothing is written) against the release the stack records.
 */
export async function liveStatus(stack: Stack, workDir: string, onOutput: (text: string) => void = () => undefined): Promise<StackStatus> {
  // The secrets first: what the hosts print on the way may carry them.
  const [cfg, promoted] = await Promise.all([stack.getAllConfig(), lastPromoted(stack)]);
  const secrets = secretValues(cfg as StackConfig);
  const run = await readLive({ stack: stack.name, workDir, onOutput, secrets });
  if (!run.ok && !run.events.some((e) => e.resOutputsEvent?.metadata.op === "refresh")) {
    throw new Error(`pulumi refresh --preview-only failed: ${run.error ?? "no output"}`);
  }
  const result = stackStatus(stack.name, run.events, promoted.current);
  const clean = (t: string): string => redact(t, secrets);
  return { ...result, parts: result.parts.map((p) => ({ ...p, recorded: clean(p.recorded), running: clean(p.running), findings: p.findings.map(clean) })) };
}
