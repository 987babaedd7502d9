import * as pulumi from "@pulumi/pulumi";

/**
 * Whether this stack has promoted a release before: the `release` output of its last update, read
 * back through a reference to the stack itself. Asked only when the release file names an image
 * the registry does not hold, so a stack with both images registers no extra resource.
 */
export async function promotedBefore(): Promise<boolean> {
  const self = new pulumi.StackReference(`${pulumi.getOrganization()}/${pulumi.getProject()}/${pulumi.getStack()}`);
  const details = await self.getOutputDetails("release");
  return details.value !== undefined || details.secretValue !== undefined;
}

/**
 * The tags of the pair this stack last promoted, read back like `promotedBefore`; asked only
 * while releases are frozen.
 */
export async function runningTags(): Promise<{ frontend: string; backend: string } | undefined> {
  const self = new pulumi.StackReference(`${pulumi.getOrganization()}/${pulumi.getProject()}/${pulumi.getStack()}`);
  const release = (await self.getOutputDetails("release")).value as { frontend?: { tag?: string }; backend?: { tag?: string } } | undefined;
  return release?.frontend?.tag && release.backend?.tag ? { frontend: release.frontend.tag, backend: release.backend.tag } : undefined;
}

/**
 * The one line a stack prints while its release file names images the registry does not hold yet
 * and it never promoted a release: everything that needs no image is installed, nothing promoted.
 */
export function waitingLine(images: readonly string[]): string {
  return `waiting for the first image: ${images.join(", ")} ${images.length === 1 ? "is" : "are"} not in the registry yet; ` +
    `everything else is installed, and image automation commits the first release once a build is pushed`;
}
