#!/usr/bin/env bash
# Installs the project's npm dependencies with `npm ci` (exactly the committed package-lock.json) when node_modules
# is missing or was installed from another lock file, so that `npm run demo` and `npm test` work on a fresh clone.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
stamp=node_modules/.rotor-lock-stamp
if [[ -f "$stamp" ]] && cmp -s package-lock.json "$stamp"; then exit 0; fi
echo "[deps] installing npm dependencies (npm ci)" >&2
npm ci --no-audit --no-fund --loglevel=error >&2
cp package-lock.json "$stamp"
