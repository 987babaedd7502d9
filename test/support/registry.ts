// The loopback registry now lives in the sandbox (sandbox/registry.ts); tests keep importing it here.
export { freePort, startRegistry } from "../../sandbox/registry";
export type { RunningRegistry } from "../../sandbox/registry";
