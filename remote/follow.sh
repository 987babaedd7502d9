# shellcheck shell=sh
# Follows a run of deploy.sh (RUN_ID set before it) after the connection that started it dropped:
# the run's output from its start, then its exit code. Exits EXIT_NO_RUN when the host has no
# such run (it never started, so it may be sent again).
# Parameters: DIR, EXIT_NO_RUN, EXIT_LOST; after process.sh and runs.sh.
R="$RUNS/${RUN_ID:-none}"
if [ -z "${RUN_ID:-}" ] || [ ! -f "$R/started" ]; then echo "deploy: no run ${RUN_ID:-} on $(hostname)" >&2; exit "$EXIT_NO_RUN"; fi
follow
