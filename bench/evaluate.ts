import * as fs from "fs";
import * as os from "os";
import * as path from "path";

/*
 * One evaluation of a program under Pulumi's mocks, in a fresh process: `program` is the homelab
 * program (config and release file read, every resource registered), `empty` the providers-only
 * program. Prints {"seconds": …, "resources": …}: from the first import to the last registration.
 */
async function main(mode: string): Promise<void> {
  const t0 = performance.now();
  const pulumi = await import("@pulumi/pulumi");
  let last = t0;
  let resources = 0;
  await pulumi.runtime.setMocks(
    {
      newResource(args) {
        last = performance.now();
        resources++;
        return { id: `${args.name}-id`, state: args.inputs as Record<string, unknown> };
      },
      call(args) {
        return args.inputs as Record<string, unknown>;
      },
    },
    "homelab",
    "bench",
    false,
  );
  const { DIGEST_A, DIGEST_B, HOST_KEY, SECRET_KEYS, TAG_A, TAG_B, fakePrivateKey, releaseText, validConfig } = await import("../test/support/fixtures");
  if (mode === "program") {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "homelab-eval-"));
    try {
      fs.mkdirSync(path.join(dir, "flux/clusters/production"), { recursive: true });
      fs.writeFileSync(path.join(dir, "flux/clusters/production/release.yaml"), releaseText(TAG_A, TAG_B));
      pulumi.runtime.setAllConfig(validConfig(), SECRET_KEYS);
      const { loadConfig } = await import("../stacks/config");
      const { homelabStack } = await import("../stacks/homelab");
      homelabStack(loadConfig(dir).homelab!, { kind: "resolved", digests: { frontend: DIGEST_A, backend: DIGEST_B } });
      await settle(() => resources);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  } else if (mode === "empty") {
    pulumi.runtime.setAllConfig(
      {
        "scale:empty": "true",
        "scale:kubeconfig": "apiVersion: v1\nkind: Config\nclusters: []\n",
        "scale:vmHost": "127.0.0.1",
        "scale:vmPort": "22",
        "scale:vmUser": "deploy",
        "scale:vmHostKey": HOST_KEY,
        "scale:vmPrivateKey": fakePrivateKey(),
      },
      ["scale:kubeconfig", "scale:vmPrivateKey"],
    );
    await import("./scale/index");
    await settle(() => resources);
  } else {
    throw new Error(`evaluate: unknown mode ${mode} (program or empty)`);
  }
  process.stdout.write(`${JSON.stringify({ seconds: (last - t0) / 1000, resources })}\n`);
}

/** Waits until no registration has arrived for a few event-loop turns. */
async function settle(count: () => number): Promise<void> {
  let seen = -1;
  let stable = 0;
  while (stable < 5) {
    await new Promise((r) => setTimeout(r, 20));
    stable = count() === seen ? stable + 1 : 0;
    seen = count();
  }
}

main(process.argv[2] ?? "program").then(
  () => process.exit(0),
  (e: unknown) => {
    process.stderr.write(`${(e as Error).stack ?? String(e)}\n`);
    process.exit(1);
  },
);
