# shellcheck shell=sh
# Checks a host for what a deploy needs: Docker, compose v2, util-linux's and coreutils' tools, a
# reachable engine, an engine that accepts the plain-HTTP registry REGISTRY (when set), an engine
# that trusts the CA of the https registry CA_REGISTRY (when set), and a writable deploy directory;
# each missing one exits with its own EXIT_* code, naming it. With INSTALL_DOCKER=1, missing Docker
# or compose is installed first (get.docker.com) instead.
# Parameters: DIR, INSTALL_DOCKER (0 or 1), DOCKER_INSTALL_SHA256 (the install script's pinned
# SHA-256, or empty), REGISTRY (host[:port], or empty), ENGINE_ALLOWS_INSECURE
# (engine-allows-insecure.awk), CA_REGISTRY (host[:port], or empty), CA_BODIES (the CA
# certificates' base64, space-separated), CA_FINGERPRINT (to name it), CERTS_DIR (Docker's
# certs.d), and the EXIT_* codes.
set -eu

install_docker() {
  if [ "$(id -u)" -eq 0 ]; then SUDO=""
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"
  else echo "host-check: installing Docker on $(hostname) needs root or passwordless sudo for $(id -un)" >&2; exit "$EXIT_INSTALL_FAILED"; fi
  command -v curl >/dev/null 2>&1 || { echo "host-check: installing Docker on $(hostname) needs curl" >&2; exit "$EXIT_INSTALL_FAILED"; }
  echo "host-check: $1; installing Docker and compose v2 on $(hostname) (get.docker.com)" >&2
  # Downloaded whole before anything runs, and checked where a hash is pinned.
  script=$(mktemp) || { echo "host-check: could not make a temporary file on $(hostname)" >&2; exit "$EXIT_INSTALL_FAILED"; }
  curl -fsSL https://get.docker.com -o "$script" || { rm -f "$script"; echo "host-check: could not download https://get.docker.com on $(hostname)" >&2; exit "$EXIT_INSTALL_FAILED"; }
  if [ -n "$DOCKER_INSTALL_SHA256" ]; then
    got=$(sha256sum < "$script" | cut -d ' ' -f 1)
    if [ "$got" != "$DOCKER_INSTALL_SHA256" ]; then
      rm -f "$script"
      echo "host-check: https://get.docker.com has SHA-256 $got, not the pinned $DOCKER_INSTALL_SHA256 (homelab:vpsDockerInstallSha256); nothing was installed on $(hostname)" >&2
      exit "$EXIT_INSTALL_FAILED"
    fi
  fi
  # SUDO is empty or two words.
  # shellcheck disable=SC2086
  $SUDO sh "$script" >&2 || { rm -f "$script"; echo "host-check: the Docker install failed on $(hostname)" >&2; exit "$EXIT_INSTALL_FAILED"; }
  rm -f "$script"
  # shellcheck disable=SC2086
  if command -v systemctl >/dev/null 2>&1; then $SUDO systemctl enable --now docker >&2 || true; fi
}

# Without the engine's consent every pull from a plain-HTTP registry fails on the host with an
# HTTPS error that does not say what to change; this one names the daemon.json setting.
check_registry() {
  setting="\"insecure-registries\": [\"$REGISTRY\"]"
  registry_config=$(docker info --format '{{json .RegistryConfig}}' 2>/dev/null) || registry_config=""
  case "$registry_config" in
    *'"IndexConfigs"'*) ;;
    *) echo "host-check: could not read the registry settings of the Docker engine on $(hostname) (docker info --format '{{json .RegistryConfig}}'), needed to check the plain-HTTP registry $REGISTRY" >&2; exit "$EXIT_INSECURE_REGISTRY" ;;
  esac
  printf '%s\n' "$registry_config" | REGISTRY="$REGISTRY" awk "$ENGINE_ALLOWS_INSECURE" || {
    echo "host-check: the Docker engine on $(hostname) does not allow the plain-HTTP registry $REGISTRY; add it to \"insecure-registries\" in /etc/docker/daemon.json on $(hostname) ($setting) and restart dockerd (sudo systemctl restart docker)" >&2
    exit "$EXIT_INSECURE_REGISTRY"
  }
}

# Docker trusts an https registry's CA from certs.d/<host:port>/*.crt or from the system roots;
# without it every pull fails with "x509: certificate signed by unknown authority".
check_registry_ca() {
  for file in "$CERTS_DIR/$CA_REGISTRY"/*.crt "${XDG_CONFIG_HOME:-${HOME:-/nonexistent}/.config}/docker/certs.d/$CA_REGISTRY"/*.crt \
    /etc/ssl/certs/ca-certificates.crt /etc/pki/tls/certs/ca-bundle.crt; do
    [ -r "$file" ] || continue
    content=$(tr -d ' \t\r\n' < "$file")
    for body in $CA_BODIES; do
      case "$content" in *"$body"*) return 0 ;; esac
    done
  done
  echo "host-check: the Docker engine on $(hostname) does not trust the CA of the registry $CA_REGISTRY (homelab:registryCaCert, SHA-256 $CA_FINGERPRINT): put it in $CERTS_DIR/$CA_REGISTRY/ca.crt on $(hostname) (sudo mkdir -p $CERTS_DIR/$CA_REGISTRY, then copy the PEM there); Docker reads it at the next pull, without a restart" >&2
  exit "$EXIT_UNTRUSTED_REGISTRY"
}

if [ "$INSTALL_DOCKER" = 1 ]; then
  command -v docker >/dev/null 2>&1 || install_docker "docker is not installed"
  docker compose version >/dev/null 2>&1 || install_docker "the docker compose v2 plugin is missing"
  hint=""
else
  hint=", and installing it is not enabled"
fi
command -v docker >/dev/null 2>&1 || { echo "host-check: docker is not installed on $(hostname)$hint" >&2; exit "$EXIT_NO_DOCKER"; }
docker compose version >/dev/null 2>&1 || { echo "host-check: the docker compose v2 plugin is missing on $(hostname)$hint" >&2; exit "$EXIT_NO_COMPOSE"; }
for tool in setsid flock timeout sha256sum; do command -v "$tool" >/dev/null 2>&1 || { echo "host-check: $tool is missing on $(hostname) (util-linux and coreutils)" >&2; exit "$EXIT_NO_TOOLS"; }; done
docker info >/dev/null 2>&1 || { echo "host-check: $(id -un) cannot reach the Docker engine on $(hostname) (not running, or the user is not in the docker group)" >&2; exit "$EXIT_NO_ENGINE"; }
if [ -n "$REGISTRY" ]; then check_registry; fi
if [ -n "$CA_REGISTRY" ]; then check_registry_ca; fi
if ! mkdir -p "$DIR" 2>/dev/null || [ ! -w "$DIR" ]; then echo "host-check: $DIR is not writable by $(id -un)" >&2; exit "$EXIT_DIR_NOT_WRITABLE"; fi
echo "host-check: ok: $(docker compose version --short) on $(hostname)"
