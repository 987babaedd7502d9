/**
 * The names the program gives the parts of a release. The stack parts name their components with
 * them, and the guarded deploy finds those components' resources in the engine's events by them.
 */
export const PART = {
  /** The FrontendApp on the cluster. */
  frontend: "frontend",
  /** The ComposeHost of the backend on the VM. */
  backend: "backend",
  /** The VpsApp. */
  vps: "vps",
} as const;
