#!/usr/bin/env bash
# `npm test`: installs what is missing, type-checks, lints and checks the format (before anything starts, so a typo
# fails in seconds), starts the local stack, then runs every test (unit, workflow on the time-skipping server, replay,
# integration on the real stack) with the stack's environment. Runs on Node 22 (scripts/use-node.sh installs it when the machine's
# Node is older). Extra arguments go to vitest, e.g. `npm test -- test/unit`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/use-node.sh
echo "[test] node $(node --version)" >&2
bash scripts/node-deps.sh
echo "[test] type-check" >&2
npx tsc -p tsconfig.json --noEmit
echo "[test] lint" >&2
npx eslint .
echo "[test] format (prettier --check; npx prettier --write . fixes it)" >&2
npx prettier --check --log-level warn .
bash scripts/stack.sh up
echo "[test] vitest" >&2
bash scripts/stack.sh exec -- npx vitest run "$@"
