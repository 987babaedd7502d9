/**
 * The names the program gives the parts of a release. The stack parts name their components with
 * them, and the guarded deploy finds those components' resources in the engine's events by them.
 */
export const PART = {
  /** The FrontendApp on the cluster. */
  frontend: "frontend",
  /** The ComposeHost of the backend on the VM. */
  backend: "backend",
  /** The HostCheck of the backend VM. */
  backendVm: "backend-vm",
  /** The VpsApp. */
  vps: "vps",
  /** The HealthGate of the frontend, through the ingress. */
  frontendGate: "frontend-gate",
  /** The HealthGate of the backend, on the VM and through the ingress. */
  backendGate: "backend-gate",
} as const;
