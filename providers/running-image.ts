import * as pulumi from "@pulumi/pulumi";
import { parseRunningImage } from "../lib/self-update";
import { SshEndpoint, runScript } from "../lib/ssh";
import { SshConnectionInput } from "./ssh-connection";

/** Inputs of the record of the image an app runs. */
export interface RunningImageArgs {
  readonly connection: SshConnectionInput;
  /** The read-only script that lists the service's containers (lib/self-update.ts renderRunningImageScript). */
  readonly script: pulumi.Input<string>;
  /** The image's repository, `registry/repo`, whose digest is recorded. */
  readonly repository: pulumi.Input<string>;
  /** Changes whenever the program deployed: the digest is recorded again then, never otherwise. */
  readonly trigger: pulumi.Input<string>;
}

interface State {
  connection: SshEndpoint;
  script: string;
  repository: string;
  trigger: string;
  /** The digest running when the program last deployed. */
  recorded?: string;
  /** The digest running when the host was last read (a deploy or a refresh); "" when nothing runs. */
  running?: string;
}

/** How long reading the running image may take. */
export const READ_DEADLINE_SECONDS = 120;

async function readDigest(s: State, attempts?: number): Promise<string> {
  // Bounded: a hung docker on the host must not hang every refresh and deploy.
  const r = await runScript({ ...s.connection, attempts: attempts ?? s.connection.attempts }, s.script, "", { deadlineSeconds: READ_DEADLINE_SECONDS });
  if (r.code !== 0) {
    throw new Error(`reading the running image on ${s.connection.host} exited with code ${r.code}: ${(r.stderr || r.stdout).trim().split("\n").slice(-5).join("\n")}`);
  }
  return parseRunningImage(r.stdout, s.repository);
}

/** The provider behind RunningImage (exported for its unit test). */
export const runningImageProvider: pulumi.dynamic.ResourceProvider = {
  async create(inputs: State) {
    const digest = await readDigest(inputs);
    return { id: `${inputs.connection.host}:${inputs.connection.port}:${inputs.repository}`, outs: { ...inputs, recorded: digest, running: digest } };
  },
  diff(_id: string, olds: State, news: State) {
    // What runs is read, not decided: only a new deploy (or a new script) records it again.
    const changes = olds.trigger !== news.trigger || olds.script !== news.script || olds.repository !== news.repository;
    return Promise.resolve({ changes });
  },
  async update(_id: string, _olds: State, news: State) {
    const digest = await readDigest(news);
    return { outs: { ...news, recorded: digest, running: digest } };
  },
  /** A refresh reads what runs now and keeps what was recorded at the last deploy. */
  async read(id: string, props: State) {
    if (!props.connection) {
      return { id, props };
    }
    return { id, props: { ...props, running: await readDigest(props, Math.min(2, props.connection.attempts ?? 3)) } };
  },
};

/**
 * The image digest an app runs, read from its host over SSH: `recorded` when the program last
 * deployed it, `running` as of the last read (a deploy or a refresh). For an app that updates
 * itself, a newer `running` is the app's own doing and never a reason to deploy again.
 */
export class RunningImage extends pulumi.dynamic.Resource {
  declare public readonly recorded: pulumi.Output<string>;
  declare public readonly running: pulumi.Output<string>;

  constructor(name: string, args: RunningImageArgs, opts?: pulumi.CustomResourceOptions) {
    super(
      runningImageProvider,
      name,
      { ...args, recorded: undefined, running: undefined },
      pulumi.mergeOptions(opts, { additionalSecretOutputs: ["connection"] }),
      "homelab",
      "RunningImage",
    );
  }
}
