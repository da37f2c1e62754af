#!/usr/bin/env bash
# The oldest Node rotor-consumers claims (its `engines`): installs that exact version from the npm registry's `node`
# package into .rotor-stack/node-<version> (git-ignored, once), then runs the consumer package's tests on it and
# loads its build as an application does (require, then each lazily loaded part). `.ci/run` runs it before
# `npm test`, which runs the same tests on Node 22.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
version="$(node -p 'require("./packages/consumers/package.json").engines.node.replace(/^>=/, "")')"
dir=".rotor-stack/node-$version"
source scripts/node-install.sh
rotor_install_node "$version" "$dir"
bash scripts/node-deps.sh
oldest="$PWD/$dir/node_modules/node/bin/node"
echo "[oldest-node] rotor-consumers' tests on $("$oldest" --version)" >&2
"$oldest" node_modules/vitest/vitest.mjs run packages/consumers/test
echo "[oldest-node] rotor-consumers' build on $("$oldest" --version)" >&2
"$oldest" packages/consumers/test/load-build.cjs
