import * as pulumi from "@pulumi/pulumi";
import { loadConfig } from "./stacks/config";
import { frozenRefusal } from "./lib/freeze";
import { releaseTags } from "./lib/release";
import { promotedBefore, runningTags } from "./stacks/first-release";
import { homelabStack } from "./stacks/homelab";
import { vpsStack } from "./stacks/vps";

/**
 * Reads all config and the release file, and resolves every image's digest in its registry. A
 * release whose images the registry does not hold yet is accepted only until the stack's first
 * promotion: afterwards it is refused, naming the images, before anything changes. Flux objects
 * in flux-system that something else made (flux bootstrap) are refused too, unless
 * homelab:fluxAdopt takes them over, and so is a new pair while the release file is frozen.
 */
async function prepare() {
  const config = loadConfig();
  const [homelabRelease, vpsDigest, fluxWarnings] = await Promise.all([
    config.homelab?.resolveDigests(),
    config.vps?.resolveDigest(),
    config.homelab?.checkFluxObjects(),
  ]);
  for (const line of fluxWarnings ?? []) {
    void pulumi.log.warn(line);
  }
  if (homelabRelease?.kind === "missing" && (await promotedBefore())) {
    throw new Error(homelabRelease.images.map((image) => `image ${image} is not in the registry (no such tag)`).join("\n"));
  }
  const release = config.homelab?.release;
  if (release?.frozen) {
    const refusal = frozenRefusal(release.frozen, { source: config.homelab!.settings.releaseFile, ...releaseTags(release) }, await runningTags());
    if (refusal) {
      throw new Error(refusal);
    }
  }
  return { config, homelabRelease, vpsDigest };
}

/**
 * Validates all config and the release file, and checks that every image exists in its registry
 * (with the configured credentials), before any resource is registered; then builds the parts
 * this stack deploys.
 */
export = async () => {
  const { config, homelabRelease, vpsDigest } = await prepare().catch((e: unknown) => {
    // Bad input is the user's to fix: the message names the key and value; a stack trace adds nothing.
    throw new pulumi.RunError((e as Error).message);
  });
  const homelab = config.homelab && homelabRelease ? homelabStack(config.homelab, homelabRelease) : undefined;
  const vps = config.vps && vpsDigest ? vpsStack(config.vps, vpsDigest) : undefined;
  return {
    stack: pulumi.getStack(),
    frontendUrl: homelab?.frontendUrl,
    apiUrl: homelab?.apiUrl,
    // Only while there is something to wait for: an undefined output is warned about on every run.
    ...(homelab?.waitingForImages ? { waitingForImages: homelab.waitingForImages } : {}),
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
