#!/usr/bin/env bash
# Installs the Debian packages the tests and the local sandbox run for real: a registry
# (Harbor's stand-in), htpasswd for its auth, an SSH server, a Docker engine, and what the
# sandbox's Kubernetes node runs pods with (containerd, runc, the CNI plugins, iptables, ip,
# openssl for its certificate), systemd-analyze for the --watch unit's check, and Chromium, which
# renders the releases page in its test. Idempotent.
set -euo pipefail

packages=(docker-registry apache2-utils openssh-server openssh-client docker.io curl git shellcheck busybox-static
  containerd runc containernetworking-plugins iptables iproute2 openssl systemd chromium)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: system packages present"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "setup: missing Debian packages: ${missing[*]}" >&2
  echo "setup: install them with: sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# Debian's packages start their services on install where they can; the tests start their own.
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "setup: done"
