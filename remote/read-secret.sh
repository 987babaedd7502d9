# shellcheck shell=sh
# Prints a file from a service's container (e.g. an API key the app writes on first start) and
# nothing else on stdout, trying ATTEMPTS times 2 s apart. A file still missing then is not a
# failed release: it says so on stderr and succeeds.
# Parameters: DIR, PROJECT, SERVICE, FILE, ATTEMPTS.
set -eu
compose() { docker compose --project-name "$PROJECT" --project-directory "$DIR" -f "$DIR/docker-compose.yml" "$@"; }
i=0
while :; do
  value=$(compose exec -T "$SERVICE" cat "$FILE" 2>/dev/null || true)
  if [ -n "$value" ]; then printf '%s' "$value"; exit 0; fi
  i=$((i + 1))
  if [ "$i" -ge "$ATTEMPTS" ]; then echo "read-secret: $FILE is still empty or missing in service $SERVICE after $ATTEMPTS attempts" >&2; exit 0; fi
  sleep 2
done
