#!/usr/bin/env bash
# `npm run demo` and `npm run bench`: Node 22 (scripts/use-node.sh), the npm dependencies, the local stack, then
# the command with the stack's environment.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/use-node.sh
bash scripts/node-deps.sh
bash scripts/stack.sh up
exec bash scripts/stack.sh exec -- "$@"
