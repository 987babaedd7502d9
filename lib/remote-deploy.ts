import { shq } from "./shell";

/** A file the deploy writes into the deploy directory. */
export interface BundleFile {
  /** Plain file name inside the deploy directory. */
  readonly name: string;
  readonly content: string;
  /** Octal mode; secret-bearing files use 0600. */
  readonly mode: "0600" | "0644";
}

/** Secrets the deploy script consumes but never writes to disk as plain files. */
export interface BundleSecrets {
  /** Password or token for `docker login --password-stdin`. */
  readonly registryPassword?: string;
}

const FILE_NAME = /^[A-Za-z0-9._-]+$/;

function b64(text: string): string {
  return Buffer.from(text, "utf8").toString("base64");
}

/**
 * Renders what the deploy script reads on stdin: one line per entry, `kind name mode base64`.
 * Everything that may be secret travels here, never on a command line.
 */
export function renderBundle(files: readonly BundleFile[], secrets: BundleSecrets = {}): string {
  const lines: string[] = [];
  for (const f of files) {
    if (!FILE_NAME.test(f.name) || f.name === "." || f.name === "..") {
      throw new Error(`bundle: file name ${JSON.stringify(f.name)} must be a plain file name`);
    }
    lines.push(`file ${f.name} ${f.mode} ${b64(f.content)}`);
  }
  if (secrets.registryPassword !== undefined) {
    lines.push(`secret registry-password - ${b64(secrets.registryPassword)}`);
  }
  return lines.join("\n") + "\n";
}

/** How the deploy script runs one compose project on a host. */
export interface DeployScriptOptions {
  /** Absolute directory holding the compose file, `.env` and the release history. */
  readonly deployDir: string;
  /** Compose project name. */
  readonly project: string;
  /** Names of the files the bundle carries; they are what a release consists of. */
  readonly files: readonly string[];
  /** Registry to log in to when the bundle carries a password. */
  readonly registry?: { readonly server: string; readonly username: string };
  /** Services that must be running and not unhealthy (healthy, where they have a health check). */
  readonly healthServices: readonly string[];
  /** URL probed from the host until it answers 2xx, e.g. `http://127.0.0.1:3001/api/health`. */
  readonly healthUrl?: string;
  /** Seconds to wait for health before the release counts as failed. */
  readonly deadlineSeconds: number;
  /** Log lines printed from the failed release. @default 30 */
  readonly logLines?: number;
}

/** Exit codes of the deploy script, so callers can tell a restored failure from a broken host. */
export const DEPLOY_EXIT = {
  /** The new release failed; the previous one is back and healthy. */
  restored: 10,
  /** The new release failed and the previous one did not come back healthy. */
  restoreFailed: 11,
  /** The new release failed and there was no previous release to restore. */
  noPrevious: 12,
  /** The host could not pull the release's images; the running release was not touched. */
  pullFailed: 13,
  /** The host's Docker engine did not answer; the release was not judged. */
  engineUnreachable: 14,
} as const;

function checkAbsolute(field: string, dir: string): void {
  if (!dir.startsWith("/") || /[\0\n]/.test(dir)) {
    throw new Error(`${field}: ${JSON.stringify(dir)} must be an absolute path`);
  }
}

/** The compose invocation shared by every script, pinned to one project and file. */
function composeFunction(o: { deployDir: string; project: string }): string {
  return `compose() { docker compose --project-name ${shq(o.project)} --project-directory "$DIR" -f "$DIR/docker-compose.yml" "$@"; }`;
}

/**
 * Renders the deploy script. It stages the bundle, keeps the current release as the previous
 * one, pulls and starts the new release, waits for health and, on failure, prints the failed
 * release's logs, restores the previous files, starts them again and exits non-zero.
 */
export function renderDeployScript(o: DeployScriptOptions): string {
  checkAbsolute("deployDir", o.deployDir);
  for (const f of o.files) {
    if (!FILE_NAME.test(f)) {
      throw new Error(`files: ${JSON.stringify(f)} must be a plain file name`);
    }
  }
  if (!o.files.includes("docker-compose.yml")) {
    throw new Error(`files: must include docker-compose.yml`);
  }
  const login = o.registry
    ? `if [ -n "$REGISTRY_PASSWORD" ]; then
  printf '%s' "$REGISTRY_PASSWORD" | docker login --username ${shq(o.registry.username)} --password-stdin ${shq(o.registry.server)} >/dev/null
  say "logged in to ${o.registry.server.replace(/[^A-Za-z0-9.:-]/g, "")}"
fi
`
    : "";
  return `set -eu
umask 077
DIR=${shq(o.deployDir)}
FILES=${shq(o.files.join(" "))}
HEALTH_SERVICES=${shq(o.healthServices.join(" "))}
HEALTH_URL=${shq(o.healthUrl ?? "")}
DEADLINE=${Math.max(1, Math.floor(o.deadlineSeconds))}
LOG_LINES=${Math.max(1, Math.floor(o.logLines ?? 30))}
REL="$DIR/.release"
START=$(date +%s)
say() { echo "deploy: $*"; }
warn() { echo "deploy: $*" >&2; }
${composeFunction(o)}
# The staged release, for pulling before anything in the deploy directory changes.
staged() { docker compose --project-name ${shq(o.project)} --project-directory "$REL/next" -f "$REL/next/docker-compose.yml" "$@"; }
engine_down() { ! docker info >/dev/null 2>&1; }
# A Docker engine recreates its socket when it starts: a changed socket means it restarted during
# this deploy, and what its containers did meanwhile says nothing about the release.
engine_mark() { s="\${DOCKER_HOST:-unix:///var/run/docker.sock}"; case "$s" in unix://*) stat -c '%i %Y %Z' "\${s#unix://}" 2>/dev/null || true ;; esac; }
ENGINE_AT_START=$(engine_mark)
engine_restarted() { [ -n "$ENGINE_AT_START" ] && [ "$(engine_mark)" != "$ENGINE_AT_START" ]; }
# Registry credentials stay in the deploy directory, not the user's own Docker config; the
# user's CLI plugins (compose) are linked in so docker still finds them.
export DOCKER_CONFIG="$DIR/.docker"
mkdir -p "$DIR" "$REL" "$DOCKER_CONFIG"
if [ -d "$HOME/.docker/cli-plugins" ] && [ ! -e "$DOCKER_CONFIG/cli-plugins" ]; then ln -s "$HOME/.docker/cli-plugins" "$DOCKER_CONFIG/cli-plugins"; fi
rm -rf "$REL/next" && mkdir -p "$REL/next"
REGISTRY_PASSWORD=''
while IFS=' ' read -r kind name mode data; do
  case "$kind" in
    file) printf '%s' "$data" | base64 -d > "$REL/next/$name" && chmod "$mode" "$REL/next/$name" ;;
    secret) [ "$name" = registry-password ] && REGISTRY_PASSWORD=$(printf '%s' "$data" | base64 -d) ;;
    '') ;;
    *) echo "deploy: unknown bundle entry '$kind'" >&2; exit 2 ;;
  esac
done
${login}if engine_down; then warn "ENGINE: the Docker engine on $(hostname) does not answer"; exit ${DEPLOY_EXIT.engineUnreachable}; fi
say "pulling images"
if ! staged pull --quiet >&2; then
  if engine_down; then warn "ENGINE: the Docker engine on $(hostname) stopped answering during the pull"; exit ${DEPLOY_EXIT.engineUnreachable}; fi
  warn "PULL: the images of the release could not be pulled; the running release was not touched"
  exit ${DEPLOY_EXIT.pullFailed}
fi
changed=0
for f in $FILES; do cmp -s "$REL/next/$f" "$DIR/$f" || changed=1; done
if [ "$changed" = 1 ] && [ -f "$DIR/docker-compose.yml" ]; then
  rm -rf "$REL/previous" && mkdir -p "$REL/previous"
  for f in $FILES; do if [ -f "$DIR/$f" ]; then cp -p "$DIR/$f" "$REL/previous/$f"; fi; done
fi
for f in $FILES; do mv -f "$REL/next/$f" "$DIR/$f"; done

wait_healthy() {
  end=$(( $(date +%s) + DEADLINE ))
  for svc in $HEALTH_SERVICES; do
    while :; do
      cid=$(compose ps -q "$svc" 2>/dev/null || true)
      if [ -n "$cid" ]; then
        status=$(docker inspect -f '{{.State.Status}}' "$cid")
        restarts=$(docker inspect -f '{{.RestartCount}}' "$cid")
        health=$(docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}' "$cid")
        case "$status" in
          exited|dead) warn "service $svc exited"; return 1 ;;
        esac
        if [ "$restarts" -gt 0 ]; then warn "service $svc is restarting (crash loop, $restarts restarts)"; return 1; fi
        if [ "$health" = unhealthy ]; then warn "service $svc is unhealthy"; return 1; fi
        if [ "$status" = running ] && { [ "$health" = healthy ] || [ "$health" = none ] || [ -n "$HEALTH_URL" ]; }; then break; fi
      fi
      if [ "$(date +%s)" -ge "$end" ]; then warn "service $svc not healthy within \${DEADLINE}s"; return 1; fi
      sleep 1
    done
  done
  if [ -n "$HEALTH_URL" ]; then
    until curl -fsS -o /dev/null --max-time 5 "$HEALTH_URL" 2>/dev/null; do
      for svc in $HEALTH_SERVICES; do
        cid=$(compose ps -q "$svc" 2>/dev/null || true)
        if [ -n "$cid" ] && [ "$(docker inspect -f '{{.RestartCount}}' "$cid")" -gt 0 ]; then warn "service $svc is restarting (crash loop)"; return 1; fi
      done
      if [ "$(date +%s)" -ge "$end" ]; then warn "$HEALTH_URL did not answer 2xx within \${DEADLINE}s"; return 1; fi
      sleep 1
    done
  fi
  return 0
}

fail() {
  # Without an engine nothing about the release can be judged (or restored): say so, apart.
  if engine_down; then warn "ENGINE: the Docker engine on $(hostname) stopped answering ($1)"; exit ${DEPLOY_EXIT.engineUnreachable}; fi
  if engine_restarted; then warn "ENGINE: the Docker engine on $(hostname) restarted during the deploy ($1); the release was not judged"; exit ${DEPLOY_EXIT.engineUnreachable}; fi
  echo "deploy: FAILED: $1" >&2
  echo "deploy: last $LOG_LINES log lines of the failed release:" >&2
  compose logs --no-color --tail "$LOG_LINES" >&2 || true
  rm -rf "$REL/failed" && mkdir -p "$REL/failed"
  for f in $FILES; do if [ -f "$DIR/$f" ]; then cp -p "$DIR/$f" "$REL/failed/$f"; fi; done
  if [ ! -f "$REL/previous/docker-compose.yml" ]; then
    echo "deploy: no previous release to restore" >&2
    exit ${DEPLOY_EXIT.noPrevious}
  fi
  echo "deploy: restoring the previous release" >&2
  for f in $FILES; do if [ -f "$REL/previous/$f" ]; then cp -p "$REL/previous/$f" "$DIR/$f"; else rm -f "$DIR/$f"; fi; done
  if compose up -d --remove-orphans --force-recreate >&2 && wait_healthy >&2; then
    echo "deploy: previous release restored and healthy" >&2
    exit ${DEPLOY_EXIT.restored}
  fi
  echo "deploy: previous release did not come back healthy" >&2
  exit ${DEPLOY_EXIT.restoreFailed}
}

say "starting"
# Compose's own last line says why it failed (e.g. a dependency that never turned healthy).
if ! out=$(compose up -d --remove-orphans 2>&1); then
  printf '%s\n' "$out" >&2
  fail "compose up failed: $(printf '%s\n' "$out" | grep -v '^ *$' | tail -n 1)"
fi
printf '%s\n' "$out" >&2
wait_healthy || fail "health check failed"
say "healthy after $(( $(date +%s) - START ))s"
`;
}

/** Renders the delete script: stops the project and removes its containers, keeping its volumes. */
export function renderDownScript(o: { deployDir: string; project: string }): string {
  checkAbsolute("deployDir", o.deployDir);
  return `set -eu
DIR=${shq(o.deployDir)}
${composeFunction(o)}
if [ -f "$DIR/docker-compose.yml" ]; then compose down --remove-orphans; fi
`;
}

/** Exit codes of the host check, one per missing prerequisite. */
export const HOST_CHECK_EXIT = { noDocker: 20, noCompose: 21, noEngine: 22, dirNotWritable: 23, installFailed: 24 } as const;

export interface HostCheckScriptOptions {
  readonly deployDir: string;
  /**
   * Install Docker and compose v2 (Docker's get.docker.com script) where they are missing. Needs
   * root or passwordless sudo on the host. @default false
   */
  readonly installDocker?: boolean;
}

/**
 * Renders the host check: Docker, compose v2 and a writable deploy directory, or a named failure.
 * With `installDocker`, missing Docker or compose is installed first instead of failing.
 */
export function renderHostCheckScript(o: HostCheckScriptOptions): string {
  checkAbsolute("deployDir", o.deployDir);
  const install = o.installDocker
    ? `install_docker() {
  if [ "$(id -u)" -eq 0 ]; then SUDO=""
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"
  else echo "host-check: installing Docker on $(hostname) needs root or passwordless sudo for $(id -un)" >&2; exit ${HOST_CHECK_EXIT.installFailed}; fi
  command -v curl >/dev/null 2>&1 || { echo "host-check: installing Docker on $(hostname) needs curl" >&2; exit ${HOST_CHECK_EXIT.installFailed}; }
  echo "host-check: $1; installing Docker and compose v2 on $(hostname) (get.docker.com)" >&2
  curl -fsSL https://get.docker.com | $SUDO sh >&2 || { echo "host-check: the Docker install failed on $(hostname)" >&2; exit ${HOST_CHECK_EXIT.installFailed}; }
  if command -v systemctl >/dev/null 2>&1; then $SUDO systemctl enable --now docker >&2 || true; fi
}
command -v docker >/dev/null 2>&1 || install_docker "docker is not installed"
docker compose version >/dev/null 2>&1 || install_docker "the docker compose v2 plugin is missing"
`
    : "";
  const hint = o.installDocker ? "" : ", and installing it is not enabled";
  return `set -eu
DIR=${shq(o.deployDir)}
${install}command -v docker >/dev/null 2>&1 || { echo "host-check: docker is not installed on $(hostname)${hint}" >&2; exit ${HOST_CHECK_EXIT.noDocker}; }
docker compose version >/dev/null 2>&1 || { echo "host-check: the docker compose v2 plugin is missing on $(hostname)${hint}" >&2; exit ${HOST_CHECK_EXIT.noCompose}; }
docker info >/dev/null 2>&1 || { echo "host-check: $(id -un) cannot reach the Docker engine on $(hostname) (not running, or the user is not in the docker group)" >&2; exit ${HOST_CHECK_EXIT.noEngine}; }
mkdir -p "$DIR" 2>/dev/null && [ -w "$DIR" ] || { echo "host-check: $DIR is not writable by $(id -un)" >&2; exit ${HOST_CHECK_EXIT.dirNotWritable}; }
echo "host-check: ok: $(docker compose version --short) on $(hostname)"
`;
}

/** How to read a secret file out of a running service's container. */
export interface ReadSecretScriptOptions {
  readonly deployDir: string;
  readonly project: string;
  readonly service: string;
  /** Absolute path of the file inside the container. */
  readonly file: string;
  /** Reads tried before failing, 2s apart; the app may write the file shortly after it starts. @default 10 */
  readonly attempts?: number;
}

/**
 * Renders a script that prints a file from a service's container (e.g. an API key the app
 * generates on first start) and nothing else on stdout, trying a bounded number of times.
 */
export function renderReadSecretScript(o: ReadSecretScriptOptions): string {
  checkAbsolute("deployDir", o.deployDir);
  checkAbsolute("file", o.file);
  const attempts = Math.max(1, Math.floor(o.attempts ?? 10));
  return `set -eu
DIR=${shq(o.deployDir)}
${composeFunction(o)}
i=0
while :; do
  value=$(compose exec -T ${shq(o.service)} cat ${shq(o.file)} 2>/dev/null || true)
  if [ -n "$value" ]; then printf '%s' "$value"; exit 0; fi
  i=$((i + 1))
  if [ "$i" -ge ${attempts} ]; then echo "read-secret: ${o.file.replace(/[^A-Za-z0-9._/-]/g, "")} is empty or missing in service ${o.service.replace(/[^A-Za-z0-9._-]/g, "")} after ${attempts} attempts" >&2; exit 1; fi
  sleep 2
done
`;
}

/** How to read what a compose project runs on a host, for `pulumi refresh` and `npm run status`. */
export interface InspectScriptOptions {
  readonly deployDir: string;
  readonly project: string;
  /** Names of the files a release consists of. */
  readonly files: readonly string[];
}

/**
 * Renders a read-only script that prints, one per line, each release file's SHA-256 (`file NAME
 * HASH`, or `missing`), whether the Docker engine answers (`engine down`), and each of the
 * project's containers: `container SERVICE STATUS HEALTH RESTARTS IMAGE`. It prints no file's
 * content, so nothing secret leaves the host.
 */
export function renderInspectScript(o: InspectScriptOptions): string {
  checkAbsolute("deployDir", o.deployDir);
  for (const f of o.files) {
    if (!FILE_NAME.test(f)) {
      throw new Error(`files: ${JSON.stringify(f)} must be a plain file name`);
    }
  }
  return `set -u
DIR=${shq(o.deployDir)}
FILES=${shq(o.files.join(" "))}
${composeFunction(o)}
for f in $FILES; do
  if [ -f "$DIR/$f" ]; then echo "file $f $(sha256sum < "$DIR/$f" | cut -d ' ' -f 1)"; else echo "file $f missing"; fi
done
if ! docker info >/dev/null 2>&1; then echo "engine down"; exit 0; fi
[ -f "$DIR/docker-compose.yml" ] || exit 0
ids=$(compose ps -a -q 2>/dev/null || true)
[ -n "$ids" ] || exit 0
docker inspect -f 'container {{index .Config.Labels "com.docker.compose.service"}} {{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}} {{.RestartCount}} {{.Config.Image}}' $ids
`;
}
