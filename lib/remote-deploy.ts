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
  /**
   * Seconds each other step on the host may take (waiting for the host's deploy lock, the
   * registry login, the pull, `compose up`); past it the step fails and the release is restored.
   * @default deadlineSeconds
   */
  readonly stepDeadlineSeconds?: number;
  /** Log lines printed from the failed release. @default 30 */
  readonly logLines?: number;
  /** Seconds one look at a container (`docker inspect`) may take before it counts as gone. @default 30 */
  readonly lookSeconds?: number;
}

/** Exit codes of the deploy script, so callers can tell a restored failure from a broken host. */
export const DEPLOY_EXIT = {
  /** The new release failed; the previous one is back and healthy. */
  restored: 10,
  /** The new release failed and the previous one did not come back healthy. */
  restoreFailed: 11,
  /** The new release failed and there was no previous release to restore. */
  noPrevious: 12,
  /** The host could not pull the release's images (or not within the step deadline); the running release was not touched. */
  pullFailed: 13,
  /** The host's Docker engine did not answer; the release was not judged. */
  engineUnreachable: 14,
  /** Another deploy held the deploy directory's lock past the step deadline; nothing was changed. */
  busy: 15,
  /** The run's bundle arrived cut short (the connection dropped while sending it); nothing was changed. */
  incomplete: 16,
} as const;

/** Exit code of the follow script when the host has no run of that id: it never started. */
export const FOLLOW_NO_RUN = 17;

/** The line that ends a detached run's bundle; without it the bundle was cut short. */
export const BUNDLE_END = "end";

function checkAbsolute(field: string, dir: string): void {
  if (!dir.startsWith("/") || /[\0\n]/.test(dir)) {
    throw new Error(`${field}: ${JSON.stringify(dir)} must be an absolute path`);
  }
}

/** The compose invocation shared by every script, pinned to one project and file. */
function composeFunction(o: { deployDir: string; project: string }): string {
  return `compose() { docker compose --project-name ${shq(o.project)} --project-directory "$DIR" -f "$DIR/docker-compose.yml" "$@"; }`;
}

/** Where a deploy directory keeps its release state, runs and lock. */
function releaseState(dir: string): string {
  return `DIR=${shq(dir)}
REL="$DIR/.release"
RUNS="$REL/runs"`;
}

const WORKER_EOF = "HOMELAB_DEPLOY_WORKER";

/**
 * Prints a detached run's progress (stdout) and messages (stderr) from the start until its
 * verdict is written, then exits with it. The verdict is read before the last copy, so nothing
 * written before it is missed.
 */
const FOLLOW = `follow() {
  o=0; e=0
  while :; do
    v=$(cat "$R/verdict" 2>/dev/null || true)
    n=$(wc -c < "$R/out"); if [ "$n" -gt "$o" ]; then tail -c +$((o + 1)) "$R/out" | head -c $((n - o)); o=$n; fi
    n=$(wc -c < "$R/err"); if [ "$n" -gt "$e" ]; then tail -c +$((e + 1)) "$R/err" | head -c $((n - e)) >&2; e=$n; fi
    if [ -n "$v" ]; then exit "$v"; fi
    sleep 1
  done
}`;

const RUN_ID_CHECK = `case "\${RUN_ID:-}" in *[!A-Za-z0-9-]*) echo "deploy: RUN_ID must be letters, digits and -" >&2; exit 2 ;; esac`;

/**
 * Renders the script that follows a run of the deploy script (`RUN_ID` set before it) after the
 * connection that started it dropped: the run's output from its start, then its exit code.
 * Exits FOLLOW_NO_RUN when the host has no such run (it never started, so it may be sent again).
 */
export function renderFollowScript(o: { deployDir: string }): string {
  checkAbsolute("deployDir", o.deployDir);
  return `set -eu
${releaseState(o.deployDir)}
${RUN_ID_CHECK}
R="$RUNS/\${RUN_ID:-none}"
[ -n "\${RUN_ID:-}" ] && [ -f "$R/started" ] || { echo "deploy: no run \${RUN_ID:-} on $(hostname)" >&2; exit ${FOLLOW_NO_RUN}; }
${FOLLOW}
follow
`;
}

/**
 * Renders the deploy script. It starts the deploy as a run of its own on the host, detached from
 * the SSH session, and follows it: the run's output and verdict go to files under
 * `<deployDir>/.release/runs/<RUN_ID>`, so a dropped connection neither kills nor hides it
 * (renderFollowScript picks it up again). The run holds the deploy directory's lock, so one
 * deploy at a time changes it; a run that died without a verdict is undone by the next one first.
 *
 * The run stages the bundle, pulls, starts the new release, and waits for health judged on this
 * deploy's evidence (restarts from before it do not count). Only then is the release recorded
 * as `current` (atomically; the release that was current becomes `previous`). On failure it
 * prints the failed release's logs and brings `current` back, the last release that passed its
 * health check on this host, never files that merely were there. A release identical to a
 * healthy `current` is left alone. Every step has a deadline, and the registry credentials are
 * removed from the host once the pull is over.
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
  const worker = renderWorker(o);
  if (worker.split("\n").includes(WORKER_EOF)) {
    throw new Error(`deploy script: a value holds the line ${WORKER_EOF}`);
  }
  return `set -eu
umask 077
${releaseState(o.deployDir)}
${RUN_ID_CHECK}
for tool in setsid flock timeout; do command -v "$tool" >/dev/null 2>&1 || { echo "deploy: $tool is missing on $(hostname)" >&2; exit 2; }; done
# Without a RUN_ID (a run by hand) the bundle need not end with its end line.
if [ -z "\${RUN_ID:-}" ]; then RUN_ID="$(date +%s)-$$"; NEED_END=0; else NEED_END=1; fi
R="$RUNS/$RUN_ID"
mkdir -p "$RUNS"
# The same run sent again after a dropped connection is followed, never started twice.
if [ ! -f "$R/started" ]; then
  rm -rf "$R" && mkdir -p "$R"
  cat > "$R/bundle"
  if [ "$NEED_END" = 1 ] && [ "$(tail -n 1 "$R/bundle")" != ${BUNDLE_END} ]; then
    rm -rf "$R"
    echo "deploy: the bundle arrived cut short; nothing was changed" >&2
    exit ${DEPLOY_EXIT.incomplete}
  fi
  cat > "$R/run.sh" <<'${WORKER_EOF}'
${worker}
${WORKER_EOF}
  : > "$R/out"; : > "$R/err"; : > "$R/started"
  # A session of its own: the run outlives this SSH session and its signals.
  setsid sh "$R/run.sh" "$R" < /dev/null > "$R/out" 2> "$R/err" &
fi
${FOLLOW}
follow
`;
}

/** The deploy itself, run detached with its run directory as $1. */
function renderWorker(o: DeployScriptOptions): string {
  const deadline = Math.max(1, Math.floor(o.deadlineSeconds));
  const step = Math.max(1, Math.floor(o.stepDeadlineSeconds ?? o.deadlineSeconds));
  const server = o.registry ? o.registry.server.replace(/[^A-Za-z0-9.:-]/g, "") : "";
  const login = o.registry
    ? `if [ -n "$REGISTRY_PASSWORD" ]; then
    if ! printf '%s' "$REGISTRY_PASSWORD" | timeout -k 5 "$STEP" docker login --username ${shq(o.registry.username)} --password-stdin ${shq(o.registry.server)} >/dev/null; then
      warn "PULL: could not log in to ${server} within \${STEP}s; the running release was not touched"
      exit ${DEPLOY_EXIT.pullFailed}
    fi
    say "logged in to ${server}"
  fi
  REGISTRY_PASSWORD=''
`
    : "";
  return `set -eu
umask 077
R="$1"
${releaseState(o.deployDir)}
FILES=${shq(o.files.join(" "))}
HEALTH_SERVICES=${shq(o.healthServices.join(" "))}
HEALTH_URL=${shq(o.healthUrl ?? "")}
DEADLINE=${deadline}
STEP=${step}
LOG_LINES=${Math.max(1, Math.floor(o.logLines ?? 30))}
LOOK=${Math.max(1, Math.floor(o.lookSeconds ?? 30))}
START=$(date +%s)
say() { echo "deploy: $*"; }
warn() { echo "deploy: $*" >&2; }
# Every compose call that may wait on the engine or a registry has the step deadline.
compose() { timeout -k 5 "$STEP" docker compose --project-name ${shq(o.project)} --project-directory "$DIR" -f "$DIR/docker-compose.yml" "$@"; }
# The staged release, for pulling before anything in the deploy directory changes.
staged() { timeout -k 5 "$STEP" docker compose --project-name ${shq(o.project)} --project-directory "$REL/next" -f "$REL/next/docker-compose.yml" "$@"; }
engine_down() { ! timeout -k 5 30 docker info >/dev/null 2>&1; }
# A hung engine must not hold the host's deploy lock: every look at a container is bounded too.
inspect() { timeout -k 1 "$LOOK" docker inspect "$@"; }
# A Docker engine recreates its socket when it starts: a changed socket means it restarted during
# this deploy, and what its containers did meanwhile says nothing about the release.
engine_mark() { s="\${DOCKER_HOST:-unix:///var/run/docker.sock}"; case "$s" in unix://*) stat -c '%i %Y %Z' "\${s#unix://}" 2>/dev/null || true ;; esac; }
ENGINE_AT_START=$(engine_mark)
engine_restarted() { [ -n "$ENGINE_AT_START" ] && [ "$(engine_mark)" != "$ENGINE_AT_START" ]; }
# Registry credentials live in the deploy directory's own Docker config only while pulling; the
# user's CLI plugins (compose) are linked in so docker still finds them.
export DOCKER_CONFIG="$DIR/.docker"
forget_login() { rm -f "$DOCKER_CONFIG/config.json"; }
# The verdict is written last, atomically. A run that ends with the deploy directory in between
# two releases keeps "active", so the next run undoes it before anything else.
CONSISTENT=1
finish() {
  code=$?
  forget_login
  rm -f "$R/bundle"; rm -rf "$REL/next"
  if [ "$CONSISTENT" = 1 ]; then rm -f "$REL/active"; fi
  printf '%s\\n' "$code" > "$R/verdict.tmp" && mv -f "$R/verdict.tmp" "$R/verdict"
}
trap finish EXIT
trap 'exit 143' TERM INT HUP
mkdir -p "$DIR" "$DOCKER_CONFIG"
if [ -d "$HOME/.docker/cli-plugins" ] && [ ! -e "$DOCKER_CONFIG/cli-plugins" ]; then ln -s "$HOME/.docker/cli-plugins" "$DOCKER_CONFIG/cli-plugins"; fi
forget_login

exec 9>> "$REL/lock"
if ! flock -w "$STEP" 9; then warn "BUSY: another deploy held $DIR for \${STEP}s; nothing was changed"; exit ${DEPLOY_EXIT.busy}; fi
# The last ten runs' output is kept for whoever follows them; older ones go.
ls -1t "$RUNS" | tail -n +11 | while read -r old; do rm -rf "\${RUNS:?}/$old"; done

# ---- health, judged on this deploy's evidence ----
# Each health service's container and restart count before this deploy touched it: restarts a
# container had already do not count against the release.
baseline() {
  BASE=""
  for svc in $HEALTH_SERVICES; do
    cid=$(compose ps -q "$svc" 2>/dev/null | head -n 1 || true)
    if [ -n "$cid" ]; then BASE="$BASE $svc=$cid=$(inspect -f '{{.RestartCount}}' "$cid" 2>/dev/null || echo 0)"; fi
  done
  SINCE=$(date +%s)
}
BASE=""; SINCE=$START
restarts_since() {
  for entry in $BASE; do case "$entry" in "$1=$2="*) echo $(( $3 - \${entry##*=} )); return ;; esac; done
  echo "$3"
}
STATE_FORMAT='{{.State.Status}} {{.RestartCount}} {{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}'
# status restarts health last-check-time of a service's container, or nothing.
state_of() {
  cid=$(compose ps -q "$1" 2>/dev/null | head -n 1 || true)
  [ -n "$cid" ] || return 0
  # The times of its health results, where the engine's template supports them.
  set -- "$1" "$cid" $(inspect -f "$STATE_FORMAT {{with .State.Health}}{{range .Log}}{{.End.Unix}} {{end}}{{end}}" "$cid" 2>/dev/null || inspect -f "$STATE_FORMAT" "$cid" 2>/dev/null || echo gone 0 none)
  svc=$1 cid=$2 status=$3 restarts=$4 health=$5; shift 5
  checked=0; for t in "$@"; do checked=$t; done
  restarts=$(restarts_since "$svc" "$cid" "$restarts")
  # A container this deploy did not recreate may still show a health result from before it.
  case " $BASE " in *" $svc=$cid="*) [ "$health" = unhealthy ] && [ "$checked" -lt "$SINCE" ] && health=starting ;; esac
  echo "$status $restarts $health"
}
wait_healthy() {
  end=$(( $(date +%s) + DEADLINE ))
  for svc in $HEALTH_SERVICES; do
    while :; do
      st=$(state_of "$svc")
      if [ -n "$st" ]; then
        set -- $st; status=$1 restarts=$2 health=$3
        case "$status" in exited|dead) warn "service $svc exited"; return 1 ;; esac
        if [ "$restarts" -gt 0 ]; then warn "service $svc is restarting (crash loop, $restarts restarts during this deploy)"; return 1; fi
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
        st=$(state_of "$svc")
        if [ -n "$st" ]; then set -- $st; if [ "$2" -gt 0 ]; then warn "service $svc is restarting (crash loop)"; return 1; fi; fi
      done
      if [ "$(date +%s)" -ge "$end" ]; then warn "$HEALTH_URL did not answer 2xx within \${DEADLINE}s"; return 1; fi
      sleep 1
    done
  fi
  return 0
}
# Healthy right now, without waiting: for a release that is already running.
healthy_now() {
  for svc in $HEALTH_SERVICES; do
    st=$(state_of "$svc"); [ -n "$st" ] || return 1
    set -- $st
    [ "$1" = running ] && { [ "$3" = healthy ] || [ "$3" = none ]; } || return 1
  done
  [ -z "$HEALTH_URL" ] || curl -fsS -o /dev/null --max-time 5 "$HEALTH_URL" 2>/dev/null
}

# ---- releases: "current" passed its health check on this host, "previous" is the one before ----
release_id() { (cd "$1" && for f in $FILES; do if [ -f "$f" ]; then printf '%s ' "$f"; sha256sum < "$f"; fi; done) | sha256sum | cut -c 1-16; }
same_files() { for f in $FILES; do if [ -f "$1/$f" ]; then cmp -s "$1/$f" "$2/$f" || return 1; elif [ -f "$2/$f" ]; then return 1; fi; done; }
# Points a link at a release atomically (a rename), so a crash leaves the old or the new one.
point() { ln -sfn "releases/$2" "$REL/$1.tmp" && mv -Tf "$REL/$1.tmp" "$REL/$1"; }
record_current() {
  id=$(release_id "$DIR")
  if [ ! -d "$REL/releases/$id" ]; then
    rm -rf "$REL/releases/$id.tmp" && mkdir -p "$REL/releases/$id.tmp"
    for f in $FILES; do if [ -f "$DIR/$f" ]; then cp -p "$DIR/$f" "$REL/releases/$id.tmp/$f"; fi; done
    mv "$REL/releases/$id.tmp" "$REL/releases/$id"
  fi
  old=$(readlink "$REL/current" 2>/dev/null || true); old=\${old#releases/}
  if [ -n "$old" ] && [ "$old" != "$id" ]; then point previous "$old"; fi
  point current "$id"
  # Only current and previous are kept.
  keep_prev=$(readlink "$REL/previous" 2>/dev/null || true); keep_prev=\${keep_prev#releases/}
  for d in "$REL"/releases/*; do
    [ -e "$d" ] || continue
    case "\${d##*/}" in "$id"|"$keep_prev") ;; *) rm -rf "$d" ;; esac
  done
  say "release $id is current"
}
# Puts the current release's files back in the deploy directory and starts them.
bring_back_current() {
  for f in $FILES; do if [ -f "$REL/current/$f" ]; then cp -p "$REL/current/$f" "$DIR/$f"; else rm -f "$DIR/$f"; fi; done
  baseline
  compose up -d --remove-orphans >&2 && wait_healthy >&2
}

# Old layouts kept a copy of whatever files were there as "previous": it proves nothing.
if [ -d "$REL/previous" ] && [ ! -L "$REL/previous" ]; then rm -rf "$REL/previous"; fi
rm -rf "$REL/failed.tmp"

if engine_down; then warn "ENGINE: the Docker engine on $(hostname) does not answer"; exit ${DEPLOY_EXIT.engineUnreachable}; fi

# A run before this one stopped between two releases (killed, or the host went down): undo it first.
if [ -f "$REL/active" ]; then
  lost=$(cat "$REL/active" 2>/dev/null || true)
  if [ -f "$REL/current/docker-compose.yml" ]; then
    warn "run $lost ended without a verdict; bringing back the current release first"
    if bring_back_current; then say "current release restored after run $lost"; else warn "the current release did not come back healthy after run $lost"; fi
  else
    warn "run $lost ended without a verdict and there is no current release to bring back"
  fi
  rm -f "$REL/active"
fi
# Deploy directories from before releases were recorded: a release that is healthy now is current.
if [ ! -e "$REL/current" ] && [ -f "$DIR/docker-compose.yml" ] && healthy_now; then
  say "adopting the running release, healthy now, as current"
  record_current
fi

rm -rf "$REL/next" && mkdir -p "$REL/next"
REGISTRY_PASSWORD=''
while IFS=' ' read -r kind name mode data; do
  case "$kind" in
    file) printf '%s' "$data" | base64 -d > "$REL/next/$name" && chmod "$mode" "$REL/next/$name" ;;
    secret) [ "$name" = registry-password ] && REGISTRY_PASSWORD=$(printf '%s' "$data" | base64 -d) ;;
    ${BUNDLE_END}|'') ;;
    *) warn "unknown bundle entry '$kind'"; exit 2 ;;
  esac
done < "$R/bundle"
rm -f "$R/bundle"

# The same release as a healthy current one: nothing to do, nothing to risk.
if [ -f "$REL/current/docker-compose.yml" ] && same_files "$REL/next" "$REL/current" && same_files "$REL/next" "$DIR" && healthy_now; then
  say "release $(release_id "$DIR") is current and healthy; nothing to do"
  say "healthy after $(( $(date +%s) - START ))s"
  exit 0
fi

pull() {
  ${login}say "pulling images"
  if staged pull --quiet >&2; then :; else
    code=$?
    forget_login
    if engine_down; then warn "ENGINE: the Docker engine on $(hostname) stopped answering during the pull"; exit ${DEPLOY_EXIT.engineUnreachable}; fi
    if [ "$code" = 124 ] || [ "$code" = 137 ]; then warn "PULL: the pull did not finish within \${STEP}s; the running release was not touched"
    else warn "PULL: the images of the release could not be pulled; the running release was not touched"; fi
    exit ${DEPLOY_EXIT.pullFailed}
  fi
  forget_login
}
pull

fail() {
  # Without an engine nothing about the release can be judged (or restored): say so, apart.
  if engine_down; then warn "ENGINE: the Docker engine on $(hostname) stopped answering ($1)"; exit ${DEPLOY_EXIT.engineUnreachable}; fi
  if engine_restarted; then warn "ENGINE: the Docker engine on $(hostname) restarted during the deploy ($1); the release was not judged"; exit ${DEPLOY_EXIT.engineUnreachable}; fi
  warn "FAILED: $1"
  warn "last $LOG_LINES log lines of the failed release:"
  timeout -k 5 "$STEP" docker compose --project-name ${shq(o.project)} --project-directory "$DIR" -f "$DIR/docker-compose.yml" logs --no-color --tail "$LOG_LINES" >&2 || true
  mkdir -p "$REL/failed.tmp"
  for f in $FILES; do if [ -f "$DIR/$f" ]; then cp -p "$DIR/$f" "$REL/failed.tmp/$f"; fi; done
  rm -rf "$REL/failed" && mv "$REL/failed.tmp" "$REL/failed"
  if [ ! -f "$REL/current/docker-compose.yml" ]; then
    warn "no previous release to restore (none passed its health check on this host)"
    CONSISTENT=1
    exit ${DEPLOY_EXIT.noPrevious}
  fi
  warn "restoring the previous release ($(release_id "$REL/current"), the last that passed its health check here)"
  if bring_back_current; then
    warn "previous release restored and healthy"
    CONSISTENT=1
    exit ${DEPLOY_EXIT.restored}
  fi
  warn "previous release did not come back healthy"
  CONSISTENT=1
  exit ${DEPLOY_EXIT.restoreFailed}
}

baseline
# From here the deploy directory is between two releases until a verdict.
printf '%s\\n' "\${R##*/}" > "$REL/active"
CONSISTENT=0
for f in $FILES; do if [ -f "$REL/next/$f" ]; then mv -f "$REL/next/$f" "$DIR/$f"; else rm -f "$DIR/$f"; fi; done
say "starting"
# Compose's own last line says why it failed (e.g. a dependency that never turned healthy).
if out=$(compose up -d --remove-orphans 2>&1); then :; else
  code=$?
  printf '%s\\n' "$out" >&2
  if [ "$code" = 124 ] || [ "$code" = 137 ]; then fail "compose up did not finish within \${STEP}s"; fi
  fail "compose up failed: $(printf '%s\\n' "$out" | grep -v '^ *$' | tail -n 1)"
fi
printf '%s\\n' "$out" >&2
say "waiting for health"
wait_healthy || fail "health check failed"
record_current
CONSISTENT=1
say "healthy after $(( $(date +%s) - START ))s"`;
}


/**
 * Renders the delete script: stops the project and removes its containers, keeping its volumes.
 * It waits for a deploy running on the host (the deploy directory's lock) and has a deadline.
 */
export function renderDownScript(o: { deployDir: string; project: string; stepDeadlineSeconds?: number }): string {
  checkAbsolute("deployDir", o.deployDir);
  const step = Math.max(1, Math.floor(o.stepDeadlineSeconds ?? 300));
  return `set -eu
${releaseState(o.deployDir)}
compose() { timeout -k 5 ${step} docker compose --project-name ${shq(o.project)} --project-directory "$DIR" -f "$DIR/docker-compose.yml" "$@"; }
if [ -d "$REL" ]; then
  exec 9>> "$REL/lock"
  flock -w ${step} 9 || { echo "deploy: BUSY: another deploy held $DIR for ${step}s" >&2; exit ${DEPLOY_EXIT.busy}; }
fi
if [ -f "$DIR/docker-compose.yml" ]; then compose down --remove-orphans; fi
`;
}

/** Exit codes of the host check, one per missing prerequisite. */
export const HOST_CHECK_EXIT = { noDocker: 20, noCompose: 21, noEngine: 22, dirNotWritable: 23, installFailed: 24, noTools: 25, insecureRegistry: 26 } as const;

export interface HostCheckScriptOptions {
  readonly deployDir: string;
  /**
   * Install Docker and compose v2 (Docker's get.docker.com script) where they are missing. Needs
   * root or passwordless sudo on the host. @default false
   */
  readonly installDocker?: boolean;
  /**
   * A plain-HTTP registry (host[:port]) the host pulls from: the check fails unless the Docker
   * engine accepts it as insecure, naming the daemon.json setting. @default no registry checked
   */
  readonly insecureRegistry?: string;
}

/**
 * Reads `docker info --format '{{json .RegistryConfig}}'` and exits 0 when the engine treats
 * ENVIRON["REGISTRY"] as insecure, decided as dockerd decides: an IndexConfigs entry of exactly
 * that name wins (insecure when its Secure is false); without one, an IPv4 host inside one of
 * InsecureRegistryCIDRs (127.0.0.0/8 by default) is insecure. Quotes inside JSON strings are
 * escaped, so `"name":{` after `{` or `,` is always a key of IndexConfigs, never text in a URL.
 */
const ENGINE_ALLOWS_INSECURE = String.raw`function ip(s, o) { split(s, o, "."); return ((o[1] * 256 + o[2]) * 256 + o[3]) * 256 + o[4] }
{ json = json $0 }
END {
  reg = ENVIRON["REGISTRY"]
  key = "\"" reg "\":{"; rest = json
  while ((i = index(rest, key)) > 0) {
    before = substr(rest, i - 1, 1); rest = substr(rest, i + length(key))
    if (before == "{" || before == ",") {
      secure = "\"Secure\":"; j = index(rest, secure)
      if (j > 0 && substr(rest, j + length(secure), 5) == "false") { exit 0 }
      exit 1
    }
  }
  host = reg; sub(/:[0-9]+$/, "", host)
  if (host !~ /^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$/) { exit 1 }
  field = "\"InsecureRegistryCIDRs\":["; k = index(json, field)
  if (k == 0) { exit 1 }
  list = substr(json, k + length(field)); list = substr(list, 1, index(list, "]") - 1)
  n = split(list, cidrs, ",")
  for (c = 1; c <= n; c++) {
    v = cidrs[c]; gsub(/"/, "", v)
    if (v !~ /^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+\/[0-9]+$/) { continue }
    split(v, p, "/"); bits = p[2] + 0
    if (bits > 32) { continue }
    size = 1; for (b = bits; b < 32; b++) { size *= 2 }
    if (int(ip(host) / size) == int(ip(p[1]) / size)) { exit 0 }
  }
  exit 1
}`;

/**
 * The check that the engine accepts a plain-HTTP registry; without it, every pull from that
 * registry fails on the VM with an HTTPS error that does not say what to change.
 */
/**
 * `host[:port]` as Docker names a registry (a DNS name or an IPv4 address). Checked here rather
 * than through lib/validate: the remote-script provider is serialized with this module, and an
 * import would carry that whole module (its key-shaped patterns included) into the stack's state.
 */
function registryProblem(value: string): string | undefined {
  const m = /^([A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*)(?::(\d{1,5}))?$/.exec(value);
  if (!m || m[1].length > 253) {
    return "is not host[:port] (a DNS name or an IPv4 address, and a port)";
  }
  const port = m[2] === undefined ? 1 : Number(m[2]);
  return port >= 1 && port <= 65535 ? undefined : "is not host[:port]: the port is not 1-65535";
}

function insecureRegistryCheck(registry: string): string {
  const problem = registryProblem(registry);
  if (problem) {
    throw new Error(`insecureRegistry: ${JSON.stringify(registry)} ${problem}`);
  }
  return `REGISTRY=${shq(registry)}
REGISTRY_SETTING=${shq(`"insecure-registries": ${JSON.stringify([registry])}`)}
# An awk program: its $ are awk's, not the shell's.
# shellcheck disable=SC2016
ENGINE_ALLOWS_INSECURE=${shq(ENGINE_ALLOWS_INSECURE)}
registry_config=$(docker info --format '{{json .RegistryConfig}}' 2>/dev/null) || registry_config=""
case "$registry_config" in *'"IndexConfigs"'*) ;; *) echo "host-check: could not read the registry settings of the Docker engine on $(hostname) (docker info --format '{{json .RegistryConfig}}'), needed to check the plain-HTTP registry $REGISTRY" >&2; exit ${HOST_CHECK_EXIT.insecureRegistry} ;; esac
printf '%s\\n' "$registry_config" | REGISTRY="$REGISTRY" awk "$ENGINE_ALLOWS_INSECURE" || { echo "host-check: the Docker engine on $(hostname) does not allow the plain-HTTP registry $REGISTRY; add it to \\"insecure-registries\\" in /etc/docker/daemon.json on $(hostname) ($REGISTRY_SETTING) and restart dockerd (sudo systemctl restart docker)" >&2; exit ${HOST_CHECK_EXIT.insecureRegistry}; }
`;
}

/**
 * Renders the host check: Docker, compose v2, a writable deploy directory and, with
 * `insecureRegistry`, an engine that accepts that plain-HTTP registry, or a named failure.
 * With `installDocker`, missing Docker or compose is installed first instead of failing.
 */
export function renderHostCheckScript(o: HostCheckScriptOptions): string {
  checkAbsolute("deployDir", o.deployDir);
  const registry = o.insecureRegistry === undefined ? "" : insecureRegistryCheck(o.insecureRegistry);
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
for tool in setsid flock timeout sha256sum; do command -v "$tool" >/dev/null 2>&1 || { echo "host-check: $tool is missing on $(hostname) (util-linux and coreutils)" >&2; exit ${HOST_CHECK_EXIT.noTools}; }; done
docker info >/dev/null 2>&1 || { echo "host-check: $(id -un) cannot reach the Docker engine on $(hostname) (not running, or the user is not in the docker group)" >&2; exit ${HOST_CHECK_EXIT.noEngine}; }
${registry}mkdir -p "$DIR" 2>/dev/null && [ -w "$DIR" ] || { echo "host-check: $DIR is not writable by $(id -un)" >&2; exit ${HOST_CHECK_EXIT.dirNotWritable}; }
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
  /** Reads tried, 2s apart; the app may write the file a while after it turns healthy. @default 10 */
  readonly attempts?: number;
}

/**
 * Renders a script that prints a file from a service's container (e.g. an API key the app
 * generates on first start) and nothing else on stdout, trying a bounded number of times. A
 * file still missing then is not a failed release: the script prints nothing on stdout, says so
 * on stderr and succeeds, and the caller tells people how to read it later.
 */
export function renderReadSecretScript(o: ReadSecretScriptOptions): string {
  checkAbsolute("deployDir", o.deployDir);
  checkAbsolute("file", o.file);
  const attempts = Math.max(1, Math.floor(o.attempts ?? 10));
  return `set -eu
DIR=${shq(o.deployDir)}
SERVICE=${shq(o.service)}
FILE=${shq(o.file)}
${composeFunction(o)}
i=0
while :; do
  value=$(compose exec -T "$SERVICE" cat "$FILE" 2>/dev/null || true)
  if [ -n "$value" ]; then printf '%s' "$value"; exit 0; fi
  i=$((i + 1))
  if [ "$i" -ge ${attempts} ]; then echo "read-secret: $FILE is still empty or missing in service $SERVICE after ${attempts} attempts" >&2; exit 0; fi
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
for f in $FILES; do
  if [ -f "$DIR/$f" ]; then echo "file $f $(sha256sum < "$DIR/$f" | cut -d ' ' -f 1)"; else echo "file $f missing"; fi
done
# Every call bounded: a hung engine reads as down, never as a read that never ends.
if ! timeout -k 5 30 docker info >/dev/null 2>&1; then echo "engine down"; exit 0; fi
[ -f "$DIR/docker-compose.yml" ] || exit 0
ids=$(timeout -k 5 30 docker compose --project-name ${shq(o.project)} --project-directory "$DIR" -f "$DIR/docker-compose.yml" ps -a -q 2>/dev/null || true)
[ -n "$ids" ] || exit 0
timeout -k 5 30 docker inspect -f 'container {{index .Config.Labels "com.docker.compose.service"}} {{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}} {{.RestartCount}} {{.Config.Image}}' $ids
`;
}
