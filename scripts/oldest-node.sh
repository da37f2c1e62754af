#!/usr/bin/env bash
# The oldest Node rotor-consumers claims (its `engines`): installs that exact version from the npm registry's `node`
# package into .rotor-stack/node-<version> (git-ignored, once), then runs the consumer package's tests on it and
# loads its build as an application does (require, then each lazily loaded part). `.ci/run` runs it before
# `npm test`, which runs the same tests on Node 22.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
version="$(node -p 'require("./packages/consumers/package.json").engines.node.replace(/^>=/, "")')"
dir=".rotor-stack/node-$version"
if [[ "$("$dir/node_modules/node/bin/node" --version 2>/dev/null)" != "v$version" ]]; then
  echo "[oldest-node] installing Node $version (npm package node) into $dir" >&2
  mkdir -p "$dir"
  npm install --prefix "$dir" --no-audit --no-fund --loglevel=error "node@$version" >&2
fi
bash scripts/node-deps.sh
oldest="$PWD/$dir/node_modules/node/bin/node"
echo "[oldest-node] rotor-consumers' tests on $("$oldest" --version)" >&2
"$oldest" node_modules/vitest/vitest.mjs run packages/consumers/test
echo "[oldest-node] rotor-consumers' build on $("$oldest" --version)" >&2
"$oldest" packages/consumers/test/load-build.cjs
