#!/usr/bin/env bash
# Installs the workspace's npm dependencies with `npm ci` (exactly the committed package-lock.json) when node_modules
# is missing or was installed from another lock file, so that `npm run demo` and `npm test` work on a fresh clone.
# Then builds rotor-consumers when its build is older than its sources: tsc, tsx and vitest read both packages from
# their sources, but webpack, which bundles the workflows, reads rotor-consumers as installed (its dist/).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
stamp=node_modules/.rotor-lock-stamp
if [[ ! -f "$stamp" ]] || ! cmp -s package-lock.json "$stamp"; then
  echo "[deps] installing npm dependencies (npm ci)" >&2
  npm ci --no-audit --no-fund --loglevel=error >&2
  cp package-lock.json "$stamp"
fi
built=packages/consumers/dist/index.js
if [[ ! -f "$built" ]] || [[ -n "$(find packages/consumers/src packages/consumers/package.json packages/consumers/tsconfig.build.json tsconfig.json -newer "$built" -print -quit)" ]]; then
  echo "[deps] building rotor-consumers" >&2
  npm run --silent build -w rotor-consumers >&2
fi
