# shellcheck shell=sh
# The deploy itself, run detached by deploy.sh with its run directory as $1. It stages the bundle,
# pulls, starts the new release, and waits for health judged on this deploy's evidence (restarts
# from before it do not count). Only then is the release recorded as `current` (atomically; the
# release that was current becomes `previous`). On failure it prints the failed release's logs
# and brings `current` back: the last release that passed its health check on this host, never
# files that merely were there. A release identical to a healthy `current` is left alone. Every
# step has a deadline, and the registry credentials leave the host once the pull is over.
# Parameters: DIR, PROJECT, FILES and HEALTH_SERVICES (space-separated), HEALTH_URL (may be
# empty), DEADLINE, STEP, LOG_LINES, LOOK (seconds), REGISTRY_SERVER and REGISTRY_USERNAME (empty
# for no login), BUNDLE_END, and the EXIT_* codes; after process.sh.
set -eu
umask 077
R="$1"
# First of all, so a follower can tell this run alive from one that was killed.
record_run "$R"
REL="$DIR/.release"
RUNS="$REL/runs"
START=$(date +%s)
say() { echo "deploy: $*"; }
warn() { echo "deploy: $*" >&2; }
# Every compose call that may wait on the engine or a registry has the step deadline.
compose() { timeout -k 5 "$STEP" docker compose --project-name "$PROJECT" --project-directory "$DIR" -f "$DIR/docker-compose.yml" "$@"; }
# The staged release, for pulling before anything in the deploy directory changes.
staged() { timeout -k 5 "$STEP" docker compose --project-name "$PROJECT" --project-directory "$REL/next" -f "$REL/next/docker-compose.yml" "$@"; }
engine_down() { ! timeout -k 5 30 docker info >/dev/null 2>&1; }
# A hung engine must not hold the host's deploy lock: every look at a container is bounded too.
inspect() { timeout -k 1 "$LOOK" docker inspect "$@"; }
# A Docker engine recreates its socket when it starts: a changed socket means it restarted during
# this deploy, and what its containers did meanwhile says nothing about the release.
engine_mark() { s="${DOCKER_HOST:-unix:///var/run/docker.sock}"; case "$s" in unix://*) stat -c '%i %Y %Z' "${s#unix://}" 2>/dev/null || true ;; esac; }
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
  printf '%s\n' "$code" > "$R/verdict.tmp" && mv -f "$R/verdict.tmp" "$R/verdict"
}
trap finish EXIT
trap 'exit 143' TERM INT HUP
mkdir -p "$DIR" "$DOCKER_CONFIG"
if [ -d "$HOME/.docker/cli-plugins" ] && [ ! -e "$DOCKER_CONFIG/cli-plugins" ]; then ln -s "$HOME/.docker/cli-plugins" "$DOCKER_CONFIG/cli-plugins"; fi
forget_login

exec 9>> "$REL/lock"
if ! flock -w "$STEP" 9; then warn "BUSY: another deploy held $DIR for ${STEP}s; nothing was changed"; exit "$EXIT_BUSY"; fi
# A run killed before it read its bundle left it behind (the registry password among it): gone
# now, whichever run it was.
for run in "$RUNS"/*; do
  if [ "$run" != "$R" ] && [ -f "$run/bundle" ] && { [ -f "$run/verdict" ] || run_lost "$run"; }; then rm -f "$run/bundle"; fi
done
# The last ten runs' output is kept for whoever follows them; older ones go (run ids are
# letters, digits and -, so ls lists them whole).
# shellcheck disable=SC2012
ls -1t "$RUNS" | tail -n +11 | while read -r old; do rm -rf "${RUNS:?}/$old"; done

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
  for entry in $BASE; do case "$entry" in "$1=$2="*) echo $(( $3 - ${entry##*=} )); return ;; esac; done
  echo "$3"
}
STATE_FORMAT='{{.State.Status}} {{.RestartCount}} {{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}'
# status restarts health of a service's container, or nothing.
state_of() {
  cid=$(compose ps -q "$1" 2>/dev/null | head -n 1 || true)
  [ -n "$cid" ] || return 0
  # The times of its health results, where the engine's template supports them. The fields are
  # words: split on purpose.
  # shellcheck disable=SC2046
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
        # shellcheck disable=SC2086
        set -- $st; status=$1 restarts=$2 health=$3
        case "$status" in exited|dead) warn "service $svc exited"; return 1 ;; esac
        if [ "$restarts" -gt 0 ]; then warn "service $svc is restarting (crash loop, $restarts restarts during this deploy)"; return 1; fi
        if [ "$health" = unhealthy ]; then warn "service $svc is unhealthy"; return 1; fi
        if [ "$status" = running ] && { [ "$health" = healthy ] || [ "$health" = none ] || [ -n "$HEALTH_URL" ]; }; then break; fi
      fi
      if [ "$(date +%s)" -ge "$end" ]; then warn "service $svc not healthy within ${DEADLINE}s"; return 1; fi
      sleep 1
    done
  done
  if [ -n "$HEALTH_URL" ]; then
    until curl -fsS -o /dev/null --max-time 5 "$HEALTH_URL" 2>/dev/null; do
      for svc in $HEALTH_SERVICES; do
        st=$(state_of "$svc")
        # shellcheck disable=SC2086
        if [ -n "$st" ]; then set -- $st; if [ "$2" -gt 0 ]; then warn "service $svc is restarting (crash loop)"; return 1; fi; fi
      done
      if [ "$(date +%s)" -ge "$end" ]; then warn "$HEALTH_URL did not answer 2xx within ${DEADLINE}s"; return 1; fi
      sleep 1
    done
  fi
  return 0
}
# Healthy right now, without waiting: for a release that is already running.
healthy_now() {
  for svc in $HEALTH_SERVICES; do
    st=$(state_of "$svc"); [ -n "$st" ] || return 1
    # shellcheck disable=SC2086
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
  old=$(readlink "$REL/current" 2>/dev/null || true); old=${old#releases/}
  if [ -n "$old" ] && [ "$old" != "$id" ]; then point previous "$old"; fi
  point current "$id"
  # Only current and previous are kept.
  keep_prev=$(readlink "$REL/previous" 2>/dev/null || true); keep_prev=${keep_prev#releases/}
  for d in "$REL"/releases/*; do
    [ -e "$d" ] || continue
    case "${d##*/}" in "$id"|"$keep_prev") ;; *) rm -rf "$d" ;; esac
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

if engine_down; then warn "ENGINE: the Docker engine on $(hostname) does not answer"; exit "$EXIT_ENGINE_UNREACHABLE"; fi

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
    "$BUNDLE_END"|'') ;;
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
  if [ -n "$REGISTRY_SERVER" ] && [ -n "$REGISTRY_PASSWORD" ]; then
    if ! printf '%s' "$REGISTRY_PASSWORD" | timeout -k 5 "$STEP" docker login --username "$REGISTRY_USERNAME" --password-stdin "$REGISTRY_SERVER" >/dev/null; then
      warn "PULL: could not log in to $REGISTRY_SERVER within ${STEP}s; the running release was not touched"
      exit "$EXIT_PULL_FAILED"
    fi
    say "logged in to $REGISTRY_SERVER"
  fi
  REGISTRY_PASSWORD=''
  say "pulling images"
  if staged pull --quiet >&2; then :; else
    code=$?
    forget_login
    if engine_down; then warn "ENGINE: the Docker engine on $(hostname) stopped answering during the pull"; exit "$EXIT_ENGINE_UNREACHABLE"; fi
    if [ "$code" = 124 ] || [ "$code" = 137 ]; then warn "PULL: the pull did not finish within ${STEP}s; the running release was not touched"
    else warn "PULL: the images of the release could not be pulled; the running release was not touched"; fi
    exit "$EXIT_PULL_FAILED"
  fi
  forget_login
}
pull

fail() {
  # Without an engine nothing about the release can be judged (or restored): say so, apart.
  if engine_down; then warn "ENGINE: the Docker engine on $(hostname) stopped answering ($1)"; exit "$EXIT_ENGINE_UNREACHABLE"; fi
  if engine_restarted; then warn "ENGINE: the Docker engine on $(hostname) restarted during the deploy ($1); the release was not judged"; exit "$EXIT_ENGINE_UNREACHABLE"; fi
  warn "FAILED: $1"
  warn "last $LOG_LINES log lines of the failed release:"
  compose logs --no-color --tail "$LOG_LINES" >&2 || true
  mkdir -p "$REL/failed.tmp"
  for f in $FILES; do if [ -f "$DIR/$f" ]; then cp -p "$DIR/$f" "$REL/failed.tmp/$f"; fi; done
  rm -rf "$REL/failed" && mv "$REL/failed.tmp" "$REL/failed"
  if [ ! -f "$REL/current/docker-compose.yml" ]; then
    warn "no previous release to restore (none passed its health check on this host)"
    CONSISTENT=1
    exit "$EXIT_NO_PREVIOUS"
  fi
  warn "restoring the previous release ($(release_id "$REL/current"), the last that passed its health check here)"
  if bring_back_current; then
    warn "previous release restored and healthy"
    CONSISTENT=1
    exit "$EXIT_RESTORED"
  fi
  warn "previous release did not come back healthy"
  CONSISTENT=1
  exit "$EXIT_RESTORE_FAILED"
}

baseline
# From here the deploy directory is between two releases until a verdict.
printf '%s\n' "${R##*/}" > "$REL/active"
CONSISTENT=0
for f in $FILES; do if [ -f "$REL/next/$f" ]; then mv -f "$REL/next/$f" "$DIR/$f"; else rm -f "$DIR/$f"; fi; done
say "starting"
# Compose's own last line says why it failed (e.g. a dependency that never turned healthy).
if out=$(compose up -d --remove-orphans 2>&1); then :; else
  code=$?
  printf '%s\n' "$out" >&2
  if [ "$code" = 124 ] || [ "$code" = 137 ]; then fail "compose up did not finish within ${STEP}s"; fi
  fail "compose up failed: $(printf '%s\n' "$out" | grep -v '^ *$' | tail -n 1)"
fi
printf '%s\n' "$out" >&2
say "waiting for health"
wait_healthy || fail "health check failed"
record_current
CONSISTENT=1
say "healthy after $(( $(date +%s) - START ))s"
