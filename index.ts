import * as pulumi from "@pulumi/pulumi";
import { loadConfig } from "./stacks/config";
import { homelabStack } from "./stacks/homelab";
import { vpsStack } from "./stacks/vps";

/** Reads all config and the release file, and resolves every image's digest in its registry. */
async function prepare() {
  const config = loadConfig();
  const [homelabDigests, vpsDigest] = await Promise.all([config.homelab?.resolveDigests(), config.vps?.resolveDigest()]);
  return { config, homelabDigests, vpsDigest };
}

/**
 * Validates all config and the release file, and checks that every image exists in its registry
 * (with the configured credentials), before any resource is registered; then builds the parts
 * this stack deploys.
 */
export = async () => {
  const { config, homelabDigests, vpsDigest } = await prepare().catch((e: unknown) => {
    // Bad input is the user's to fix: the message names the key and value; a stack trace adds nothing.
    throw new pulumi.RunError((e as Error).message);
  });
  const homelab = config.homelab && homelabDigests ? homelabStack(config.homelab, homelabDigests) : undefined;
  const vps = config.vps && vpsDigest ? vpsStack(config.vps, vpsDigest) : undefined;
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
    vpsDashboardUrl: vps?.dashboardUrl,
    vpsWebhookUrl: vps?.webhookUrl,
    vpsApiKey: vps?.apiKey,
    vpsWebhookSecret: vps?.webhookSecret,
    vpsVersionOwner: vps?.versionOwner,
    vpsImage: vps?.image,
    vpsRunningImage: vps?.runningImage,
  };
};
