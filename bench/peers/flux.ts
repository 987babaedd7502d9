import { execFile } from "child_process";
import * as path from "path";
import { promisify } from "util";
import * as YAML from "yaml";
import { FLUX_SYNC_NAME } from "../../lib/flux-install";
import { commitToServer } from "../../sandbox/git-server";
import { pinnedRef } from "../../sandbox/images";
import { kubeClient } from "../../sandbox/kube";
import { FLUX_NAMESPACE, requestReconcile } from "../../sandbox/flux-controllers";
import { Sandbox } from "../../sandbox/sandbox";
import { toolchainEnv } from "../../toolchain/env";
import { copyPullSecrets, deploymentCopy, rolloutComplete } from "./deployment";

const run = promisify(execFile);

/*
 * The Flux peer of the frontend stage: the same Deployment committed to the sandbox's git server
 * and applied by kustomize-controller from the GitRepository the program's Flux syncs, a reconcile
 * of both requested at once (as `flux reconcile kustomization --with-source` does) rather than
 * waiting for their interval, until the rollout is complete. Its Kustomization, path and namespace
 * are its own.
 */

export const FLUX_PEER_NAMESPACE = "bench-flux";
const KUSTOMIZATION = "bench-flux-peer";
const PATH = "bench/flux-peer";

export interface FluxPeer {
  /** Seconds from the commit to the rollout of `tag` being complete. */
  frontend(tag: string): Promise<number>;
}

export async function prepareFluxPeer(sb: Sandbox, live: Record<string, unknown>): Promise<FluxPeer> {
  const kubectl = path.join(toolchainEnv().sandboxBinDir, "kubectl");
  const kenv = { ...process.env, KUBECONFIG: sb.kubeconfig };
  await run(kubectl, ["create", "namespace", FLUX_PEER_NAMESPACE], { env: kenv }).catch(() => undefined);
  const client = kubeClient(sb.kubeconfig);
  await copyPullSecrets(client, live, FLUX_PEER_NAMESPACE);
  const ksPath = `/apis/kustomize.toolkit.fluxcd.io/v1/namespaces/${FLUX_NAMESPACE}/kustomizations`;
  if (!(await client.get(`${ksPath}/${KUSTOMIZATION}`))) {
    await client.post(ksPath, {
      apiVersion: "kustomize.toolkit.fluxcd.io/v1",
      kind: "Kustomization",
      metadata: { name: KUSTOMIZATION, namespace: FLUX_NAMESPACE },
      // The interval is long: every apply measured is one requested.
      spec: { interval: "1h", path: `./${PATH}`, prune: true, sourceRef: { kind: "GitRepository", name: FLUX_SYNC_NAME } },
    });
  }
  const deploymentUrl = `/apis/apps/v1/namespaces/${FLUX_PEER_NAMESPACE}/deployments/frontend`;
  return {
    async frontend(tag) {
      const image = pinnedRef(sb.images, "frontend", tag);
      const manifest = YAML.stringify(deploymentCopy(live, image, FLUX_PEER_NAMESPACE));
      const t0 = Date.now();
      await commitToServer(sb.git, { [`${PATH}/deployment.yaml`]: manifest }, `bench: frontend ${tag} through Flux`);
      await requestReconcile(sb.kubeconfig, "GitRepository", FLUX_SYNC_NAME);
      await requestReconcile(sb.kubeconfig, "Kustomization", KUSTOMIZATION);
      const end = t0 + 180_000;
      while (!rolloutComplete(await client.get(deploymentUrl), image)) {
        if (Date.now() > end) {
          throw new Error(`flux peer: the rollout of ${tag} did not complete within 180s`);
        }
        await new Promise((r) => setTimeout(r, 100));
      }
      return (Date.now() - t0) / 1000;
    },
  };
}

/** Removes the peer's Kustomization (pruning what it applied) and namespace. */
export async function removeFluxPeer(sb: Sandbox): Promise<void> {
  const kubectl = path.join(toolchainEnv().sandboxBinDir, "kubectl");
  const kenv = { ...process.env, KUBECONFIG: sb.kubeconfig };
  await run(kubectl, ["delete", "kustomization", "-n", FLUX_NAMESPACE, KUSTOMIZATION, "--wait=false"], { env: kenv }).catch(() => undefined);
  await run(kubectl, ["delete", "namespace", FLUX_PEER_NAMESPACE, "--wait=false"], { env: kenv }).catch(() => undefined);
}
