# shellcheck shell=sh
# Prints a compose project's logs on its host: `docker compose logs` of the project the deploy
# wrote. Positional parameters (set before it, see lib/logs.ts logsInvocation): $1 lines to
# tail, $2 since how many seconds (or empty), $3 non-empty to follow.
# Parameters: DIR, PROJECT.
set -u
[ -f "$DIR/docker-compose.yml" ] || { echo "no compose project in $DIR" >&2; exit 3; }
TAIL=$1 SINCE=$2 FOLLOW=$3
set -- --tail "$TAIL"
if [ -n "$SINCE" ]; then set -- "$@" --since "${SINCE}s"; fi
if [ -z "$FOLLOW" ]; then
  # Without --follow the command ends by itself; a watcher on stdin (which the client ends at
  # once) would kill it before it has printed everything.
  exec docker compose --project-name "$PROJECT" --project-directory "$DIR" -f "$DIR/docker-compose.yml" logs --no-color --timestamps "$@"
fi
set -- "$@" --follow
# A command run in the background reads /dev/null: the watcher reads the session's stdin through fd 3.
exec 3<&0
docker compose --project-name "$PROJECT" --project-directory "$DIR" -f "$DIR/docker-compose.yml" logs --no-color --timestamps "$@" &
pid=$!
# The client holds stdin open: when it goes away (Ctrl-C, a dropped connection), stdin ends and
# a follower would otherwise stay until its next line fails to write.
( cat <&3 >/dev/null; kill "$pid" 2>/dev/null ) &
watcher=$!
wait "$pid"
status=$?
kill "$watcher" 2>/dev/null
exit "$status"
