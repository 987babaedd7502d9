# shellcheck shell=sh
# Stops the project and removes its containers, keeping its volumes. Waits for a deploy running
# on the host (the deploy directory's lock), at most STEP seconds.
# Parameters: DIR, PROJECT, STEP, EXIT_BUSY.
set -eu
REL="$DIR/.release"
compose() { timeout -k 5 "$STEP" docker compose --project-name "$PROJECT" --project-directory "$DIR" -f "$DIR/docker-compose.yml" "$@"; }
if [ -d "$REL" ]; then
  exec 9>> "$REL/lock"
  flock -w "$STEP" 9 || { echo "deploy: BUSY: another deploy held $DIR for ${STEP}s" >&2; exit "$EXIT_BUSY"; }
fi
if [ -f "$DIR/docker-compose.yml" ]; then compose down --remove-orphans; fi
