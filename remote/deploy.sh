# shellcheck shell=sh
# Starts a deploy as a run of its own on the host, detached from the SSH session, and follows it.
# The run (WORKER, deploy-run.sh) writes its output and verdict under $RUNS/$RUN_ID, so a dropped
# connection neither kills nor hides it: follow.sh picks it up again.
# Parameters: DIR, WORKER, BUNDLE_END, EXIT_INCOMPLETE, EXIT_LOST; after process.sh and runs.sh.
umask 077
for tool in setsid flock timeout; do command -v "$tool" >/dev/null 2>&1 || { echo "deploy: $tool is missing on $(hostname)" >&2; exit 2; }; done
# Without a RUN_ID (a run by hand) the bundle need not end with its end line.
if [ -z "${RUN_ID:-}" ]; then RUN_ID="$(date +%s)-$$"; NEED_END=0; else NEED_END=1; fi
R="$RUNS/$RUN_ID"
mkdir -p "$RUNS"
# The same run sent again after a dropped connection is followed, never started twice.
if [ ! -f "$R/started" ]; then
  rm -rf "$R" && mkdir -p "$R"
  cat > "$R/bundle"
  if [ "$NEED_END" = 1 ] && [ "$(tail -n 1 "$R/bundle")" != "$BUNDLE_END" ]; then
    rm -rf "$R"
    echo "deploy: the bundle arrived cut short; nothing was changed" >&2
    exit "$EXIT_INCOMPLETE"
  fi
  printf '%s\n' "$WORKER" > "$R/run.sh"
  : > "$R/out"; : > "$R/err"; : > "$R/started"
  # A session of its own: the run outlives this SSH session and its signals.
  setsid sh "$R/run.sh" "$R" < /dev/null > "$R/out" 2> "$R/err" &
fi
follow
