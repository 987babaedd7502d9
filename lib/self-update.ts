import { shq } from "./shell";

/** Which containers to read: a compose project's service on the host. */
export interface RunningImageScriptOptions {
  readonly project: string;
  readonly service: string;
}

const NAME = /^[a-z0-9][a-z0-9_-]*$/;

/**
 * Renders a read-only script printing, for each running container of the service, its id and
 * the registry digests (`repo@sha256:…`) of the image it runs: `container ID DIGEST…`. Labels,
 * not the compose CLI, select the containers, so it reads whatever compose created them (the
 * program's deploy or the app's own update).
 */
export function renderRunningImageScript(o: RunningImageScriptOptions): string {
  for (const [field, value] of [["project", o.project], ["service", o.service]] as const) {
    if (!NAME.test(value)) {
      throw new Error(`${field}: ${JSON.stringify(value)} is not a compose name`);
    }
  }
  // Each docker call bounded, so a hung engine fails the read instead of holding it.
  return `set -eu
ids=$(timeout -k 5 30 docker ps -q --filter ${shq(`label=com.docker.compose.project=${o.project}`)} --filter ${shq(`label=com.docker.compose.service=${o.service}`)} --filter label=com.docker.compose.oneoff=False)
for id in $ids; do
  image=$(timeout -k 5 30 docker inspect -f '{{.Image}}' "$id")
  echo "container $id $(timeout -k 5 30 docker image inspect -f '{{join .RepoDigests " "}}' "$image")"
done
`;
}

/**
 * The digest of the image the service runs, from the script's output: the first container's
 * digest in `repository` (`registry/repo`), else its first digest; "" when nothing runs.
 */
export function parseRunningImage(text: string, repository: string): string {
  const containers = text
    .split("\n")
    .map((l) => l.trim().split(/\s+/))
    .filter((f) => f[0] === "container" && f.length >= 2);
  for (const [, , ...digests] of containers) {
    const refs = digests.filter((d) => /@sha256:[a-f0-9]{64}$/.test(d));
    const own = refs.find((d) => d.startsWith(`${repository}@`)) ?? refs[0];
    if (own) {
      return own.slice(own.indexOf("@") + 1);
    }
  }
  return "";
}
