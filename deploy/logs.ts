import * as fs from "fs";
import { LocalWorkspace } from "@pulumi/pulumi/automation";
import { composeDeployName } from "../components/compose-host";
import { FRONTEND_APP_TYPE } from "../components/frontend-app";
import { vpsComposeName } from "../components/vps-app";
import { inlineKubeconfigFiles, kubeApi } from "../lib/kube-api";
import { LogPart, LogWindow, labelSelector, lineSplitter, logsInvocation, podLogPath } from "../lib/logs";
import { runScript } from "../lib/ssh";
import { REMOTE_SCRIPT_TYPE, endpoint } from "../providers/remote-script";
import { PART } from "../stacks/names";
import { parseUrn } from "./outcome";
import { StackConfig, StateResource, revealed, secretValues, setting, stateResources } from "./release-state";
import { redact } from "./rollback-commit";

export interface LogsOptions extends LogWindow {
  readonly stack: string;
  readonly workDir: string;
  readonly part: LogPart;
  /** Stops a followed log (Ctrl-C). */
  readonly signal?: AbortSignal;
  /** Each line, redacted. @default stdout */
  readonly out?: (line: string) => void;
  readonly say: (line: string) => void;
}

/** Exit codes of `homelab logs`. */
export const LOGS_EXIT = { shown: 0, unexpected: 1, refused: 2, unreachable: 4 } as const;

/**
 * The values never to print: every secret of the stack's config, and each value of one that holds
 * a JSON object (the backend's environment), which an app may well print on its own.
 */
export function logSecrets(cfg: StackConfig): string[] {
  const values = secretValues(cfg);
  const inner = values.flatMap((v) => {
    try {
      const parsed = JSON.parse(v) as unknown;
      return typeof parsed === "object" && parsed !== null && !Array.isArray(parsed) ? Object.values(parsed).filter((x): x is string => typeof x === "string" && x.length >= 4) : [];
    } catch {
      return [];
    }
  });
  return [...values, ...inner];
}

/** The recorded compose deploy of a host part, by the name the program gives it. */
function hostRun(resources: readonly StateResource[], part: "backend" | "vps"): StateResource | undefined {
  const name = part === "backend" ? composeDeployName(PART.backend) : composeDeployName(vpsComposeName(PART.vps));
  return resources.find((r) => r.type === REMOTE_SCRIPT_TYPE && parseUrn(r.urn).name === name);
}

/** Prints a part's logs; resolves to the exit code. */
export async function showLogs(o: LogsOptions): Promise<number> {
  const ws = await LocalWorkspace.create({ workDir: o.workDir });
  const [state, cfg] = await Promise.all([ws.exportStack(o.stack), ws.getAllConfig(o.stack) as Promise<StackConfig>]);
  const resources = stateResources(state);
  const secrets = logSecrets(cfg);
  const print = o.out ?? ((line: string) => void process.stdout.write(`${line}\n`));
  const out = (line: string): void => print(redact(line, secrets));
  if (o.part === "frontend") {
    return frontendLogs(o, resources, cfg, out);
  }
  const run = hostRun(resources, o.part);
  // The connection is a secret in the state (it holds the SSH key).
  const outputs = revealed(run?.outputs) as { connection?: Parameters<typeof endpoint>[0]["connection"]; pinnedHostKey?: string; logs?: string } | undefined;
  if (!outputs?.connection) {
    o.say(`stack ${o.stack} has no ${o.part} deployed (nothing in its state)`);
    return LOGS_EXIT.refused;
  }
  if (!outputs.logs) {
    o.say(`the ${o.part}'s recorded deploy predates homelab logs: deploy once (npm run deploy), then ask again`);
    return LOGS_EXIT.refused;
  }
  const ep = endpoint({ connection: outputs.connection }, outputs.pinnedHostKey);
  let r;
  try {
    r = await runScript(ep, logsInvocation(outputs.logs, o), "", { onLine: out, signal: o.signal, holdStdin: o.follow });
  } catch (e) {
    o.say(`cannot read the ${o.part}'s logs: ${redact((e as Error).message, secrets)}`);
    return LOGS_EXIT.unreachable;
  }
  if (r.code !== 0 && r.code !== 130 && !(o.follow && r.code === 143)) {
    o.say(`the ${o.part}'s host answered with exit code ${r.code}: ${redact(r.stderr.trim().split("\n").slice(-5).join("\n"), secrets)}`);
    return LOGS_EXIT.unexpected;
  }
  return LOGS_EXIT.shown;
}

/** The frontend's pods, each line prefixed with its pod, from the Kubernetes API. */
async function frontendLogs(o: LogsOptions, resources: readonly StateResource[], cfg: StackConfig, out: (line: string) => void): Promise<number> {
  const deployment = resources.find((r) => r.type === "kubernetes:apps/v1:Deployment" && r.urn.includes(`${FRONTEND_APP_TYPE}$`));
  const d = deployment?.outputs as { metadata?: { namespace?: string }; spec?: { selector?: { matchLabels?: Record<string, string> }; template?: { spec?: { containers?: { name?: string }[] } } } } | undefined;
  const namespace = d?.metadata?.namespace;
  const matchLabels = d?.spec?.selector?.matchLabels;
  const container = d?.spec?.template?.spec?.containers?.[0]?.name;
  if (!namespace || !matchLabels || !container) {
    o.say(`stack ${o.stack} has no frontend deployed (nothing in its state)`);
    return LOGS_EXIT.refused;
  }
  try {
    const api = kubeApi(inlineKubeconfigFiles(setting(cfg, "kubeconfig"), (f) => fs.readFileSync(f)), setting(cfg, "kubeContext") || undefined);
    const listed = await api.get(`/api/v1/namespaces/${encodeURIComponent(namespace)}/pods?labelSelector=${encodeURIComponent(labelSelector(matchLabels))}`);
    if (listed.status !== 200) {
      o.say(`cannot list the frontend's pods: ${listed.summary}`);
      return LOGS_EXIT.unexpected;
    }
    const pods = ((listed.body as { items?: { metadata?: { name?: string } }[] }).items ?? []).map((p) => p.metadata?.name).filter((n): n is string => !!n).sort();
    if (pods.length === 0) {
      o.say(`the frontend has no pod in ${namespace} (${labelSelector(matchLabels)})`);
      return LOGS_EXIT.shown;
    }
    // Every pod at once, so following shows each as it speaks; each line names its pod.
    const results = await Promise.all(
      pods.map(async (pod) => {
        const lines = lineSplitter((line) => out(`${pod} ${line}`));
        const res = await api.stream(podLogPath(namespace, pod, container, o), (t) => lines.push(t), o.signal);
        lines.flush();
        return { pod, res };
      }),
    );
    const failed = results.filter((x) => x.res.status !== 200 && x.res.summary !== "stopped");
    failed.forEach((x) => o.say(`cannot read the log of pod ${x.pod}: ${x.res.summary}`));
    return failed.length > 0 ? LOGS_EXIT.unexpected : LOGS_EXIT.shown;
  } catch (e) {
    o.say(`cannot read the frontend's logs: ${(e as Error).message}`);
    return LOGS_EXIT.unreachable;
  }
}
