# shellcheck shell=sh
# Where a deploy directory keeps its detached runs, and how one is followed. Shared by deploy.sh
# and follow.sh, after process.sh. Parameters: DIR, EXIT_LOST.
set -eu
REL="$DIR/.release"
# Used by the file sent after this one (deploy.sh or follow.sh).
# shellcheck disable=SC2034
RUNS="$REL/runs"
case "${RUN_ID:-}" in *[!A-Za-z0-9-]*) echo "deploy: RUN_ID must be letters, digits and -" >&2; exit 2 ;; esac

# Prints a detached run's progress (stdout) and messages (stderr) from its start until its
# verdict is written, then exits with it. The verdict is read before the last copy, so nothing
# written before it is missed. A run that ended without one (killed, or the host restarted) ends
# the follow within seconds with EXIT_LOST, never at the client's deadline.
follow() {
  o=0; e=0
  while :; do
    v=$(cat "$R/verdict" 2>/dev/null || true)
    if [ -z "$v" ] && run_lost "$R"; then
      # Its verdict may have landed just now.
      v=$(cat "$R/verdict" 2>/dev/null || true)
      if [ -z "$v" ]; then
        printf '%s\n' "$EXIT_LOST" > "$R/verdict.tmp" && mv -f "$R/verdict.tmp" "$R/verdict"
        echo "deploy: LOST: run ${R##*/} on $(hostname) ended without a verdict (killed, or the host restarted); the next deploy brings back the current release first" >> "$R/err"
        v=$EXIT_LOST
      fi
    fi
    n=$(wc -c < "$R/out"); if [ "$n" -gt "$o" ]; then tail -c +$((o + 1)) "$R/out" | head -c $((n - o)); o=$n; fi
    n=$(wc -c < "$R/err"); if [ "$n" -gt "$e" ]; then tail -c +$((e + 1)) "$R/err" | head -c $((n - e)) >&2; e=$n; fi
    if [ -n "$v" ]; then exit "$v"; fi
    sleep 1
  done
}
