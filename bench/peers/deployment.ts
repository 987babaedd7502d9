import { KubeClient } from "../../sandbox/kube";

/**
 * A copy of the program's frontend Deployment (as the API server returns it) in another
 * namespace with another image: what the floor and the peers apply, so every one moves the same
 * spec.
 */
export function deploymentCopy(live: Record<string, unknown>, image: string, namespace: string): Record<string, unknown> {
  const spec = live.spec as Record<string, unknown>;
  const meta = live.metadata as { labels?: Record<string, string> };
  const template = JSON.parse(JSON.stringify(spec.template)) as { spec: { containers: { image: string }[] } };
  template.spec.containers[0].image = image;
  return {
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: { name: "frontend", namespace, labels: meta.labels },
    spec: { ...JSON.parse(JSON.stringify(spec)), template },
  };
}

interface DeploymentStatus {
  metadata?: { generation?: number };
  spec?: { replicas?: number; template?: { spec?: { containers?: { image?: string }[] } } };
  status?: { observedGeneration?: number; replicas?: number; updatedReplicas?: number; availableReplicas?: number; readyReplicas?: number };
}

/** The rollout of `image` is complete, as `kubectl rollout status` judges it: every replica updated and available, none old left. */
export function rolloutComplete(d: DeploymentStatus | undefined, image: string): boolean {
  if (!d?.status || d.spec?.template?.spec?.containers?.[0]?.image !== image) {
    return false;
  }
  const want = d.spec.replicas ?? 1;
  const s = d.status;
  return (s.observedGeneration ?? 0) >= (d.metadata?.generation ?? 1) && s.updatedReplicas === want && s.replicas === want && s.availableReplicas === want;
}

/**
 * Copies the image pull Secrets the program's Deployment names into `namespace`, so a copy of it
 * there pulls as the program's pods do: the kubelet checks a pod's own credentials even for an
 * image already on the node (Kubernetes' ensure-secret-pulled-images). Read and written through
 * the API, so the registry password never reaches a command line.
 */
export async function copyPullSecrets(client: KubeClient, live: Record<string, unknown>, namespace: string): Promise<void> {
  const from = (live.metadata as { namespace: string }).namespace;
  const spec = live.spec as { template: { spec: { imagePullSecrets?: { name: string }[] } } };
  for (const { name } of spec.template.spec.imagePullSecrets ?? []) {
    if (await client.get(`/api/v1/namespaces/${namespace}/secrets/${name}`)) {
      continue;
    }
    const secret = await client.get<{ type: string; data: Record<string, string> }>(`/api/v1/namespaces/${from}/secrets/${name}`);
    if (!secret) {
      throw new Error(`bench: the program's pull secret ${from}/${name} is missing`);
    }
    await client.post(`/api/v1/namespaces/${namespace}/secrets`, { apiVersion: "v1", kind: "Secret", metadata: { name, namespace }, type: secret.type, data: secret.data });
  }
}
