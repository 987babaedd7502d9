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
