# shellcheck shell=sh
# Where a deploy directory keeps its detached runs, and how one is followed. Shared by deploy.sh
# and follow.sh. Parameters: DIR.
set -eu
REL="$DIR/.release"
RUNS="$REL/runs"
case "${RUN_ID:-}" in *[!A-Za-z0-9-]*) echo "deploy: RUN_ID must be letters, digits and -" >&2; exit 2 ;; esac

# Prints a detached run's progress (stdout) and messages (stderr) from its start until its
# verdict is written, then exits with it. The verdict is read before the last copy, so nothing
# written before it is missed.
follow() {
  o=0; e=0
  while :; do
    v=$(cat "$R/verdict" 2>/dev/null || true)
    n=$(wc -c < "$R/out"); if [ "$n" -gt "$o" ]; then tail -c +$((o + 1)) "$R/out" | head -c $((n - o)); o=$n; fi
    n=$(wc -c < "$R/err"); if [ "$n" -gt "$e" ]; then tail -c +$((e + 1)) "$R/err" | head -c $((n - e)) >&2; e=$n; fi
    if [ -n "$v" ]; then exit "$v"; fi
    sleep 1
  done
}
