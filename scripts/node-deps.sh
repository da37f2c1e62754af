#!/usr/bin/env bash
# Installs the project's npm dependencies when node_modules is missing or older than package-lock.json,
# so that `npm run demo` and `npm test` work on a fresh clone.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
stamp=node_modules/.rotor-lock-stamp
if [[ -f "$stamp" ]] && cmp -s package-lock.json "$stamp"; then exit 0; fi
echo "[deps] installing npm dependencies" >&2
# `npm install` rather than `npm ci`: npm 11 drops other platforms' optional packages of @swc/core from the lock
# file it writes and then refuses it in `npm ci`. The lock file still pins every version.
npm install --no-audit --no-fund --loglevel=error >&2
cp package-lock.json "$stamp"
