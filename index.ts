import * as pulumi from "@pulumi/pulumi";
import { loadConfig } from "./stacks/config";
import { homelabStack } from "./stacks/homelab";

/**
 * Validates all config and the release file, and checks that both images exist in the registry,
 * before any resource is registered; then builds the stack.
 */
export = async () => {
  const config = loadConfig();
  const homelab = config.homelab ? homelabStack(config.homelab, await config.homelab.resolveDigests()) : undefined;
  return {
    stack: pulumi.getStack(),
    frontendUrl: homelab?.frontendUrl,
    apiUrl: homelab?.apiUrl,
    frontendImage: homelab?.frontendImage,
    backendImage: homelab?.backendImage,
    release: homelab?.release,
    previousRelease: homelab?.previousRelease,
    promotedAt: homelab?.promotedAt,
    ledger: homelab?.ledger,
    gates: homelab?.gates,
    imageAutomationExclusions: homelab?.imageAutomationExclusions,
  };
};
