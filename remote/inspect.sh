# shellcheck shell=sh
# Read-only: prints, one per line, each release file's SHA-256 (`file NAME HASH`, or `missing`),
# whether the Docker engine answers (`engine down`), and each of the project's containers:
# `container SERVICE STATUS HEALTH RESTARTS IMAGE`. No file's content leaves the host.
# Parameters: DIR, PROJECT, FILES (space-separated plain names).
set -u
for f in $FILES; do
  if [ -f "$DIR/$f" ]; then echo "file $f $(sha256sum < "$DIR/$f" | cut -d ' ' -f 1)"; else echo "file $f missing"; fi
done
# Every call bounded: a hung engine reads as down, never as a read that never ends.
if ! timeout -k 5 30 docker info >/dev/null 2>&1; then echo "engine down"; exit 0; fi
[ -f "$DIR/docker-compose.yml" ] || exit 0
ids=$(timeout -k 5 30 docker compose --project-name "$PROJECT" --project-directory "$DIR" -f "$DIR/docker-compose.yml" ps -a -q 2>/dev/null || true)
[ -n "$ids" ] || exit 0
# The ids are one per line: split on purpose.
# shellcheck disable=SC2086
timeout -k 5 30 docker inspect -f 'container {{index .Config.Labels "com.docker.compose.service"}} {{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}} {{.RestartCount}} {{.Config.Image}}' $ids
