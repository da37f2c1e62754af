# Sourced by rotor's scripts (not run): makes Node.js 22 LTS, the runtime rotor is tested on, the `node` (and the
# `node` npm runs on) of this shell. A machine whose Node is 22 or newer is used as it is. An older one gets
# Node 22 from the npm registry's `node` package, installed once into .rotor-stack/node (git-ignored).
# ROTOR_USE_MACHINE_NODE=true keeps the machine's Node (to try another Node by hand).
ROTOR_NODE_VERSION=22.23.3
rotor_use_node() {
  local root major dir
  root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  [[ "${ROTOR_USE_MACHINE_NODE:-}" == "true" ]] && return 0
  major="$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)"
  ((major >= 22)) && return 0
  dir="${ROTOR_STACK_DIR:-$root/.rotor-stack}/node"
  source "$root/scripts/node-install.sh"
  rotor_install_node "$ROTOR_NODE_VERSION" "$dir"
  export PATH="$dir/node_modules/node/bin:$PATH"
  printf '[node] using Node %s from %s\n' "$(node --version)" "$dir" >&2
}
rotor_use_node
