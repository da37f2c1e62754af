# Sourced by scripts/use-node.sh and scripts/oldest-node.sh (not run): installs one exact Node.js version from the
# npm registry's `node` package into a folder, once. `rotor_install_node <version> <dir>` leaves the binary at
# <dir>/node_modules/node/bin/node.
rotor_install_node() {
  local version="$1" dir="$2"
  if [[ "$("$dir/node_modules/node/bin/node" --version 2>/dev/null)" != "v$version" ]]; then
    printf '[node] installing Node %s (npm package node) into %s\n' "$version" "$dir" >&2
    mkdir -p "$dir"
    npm install --prefix "$dir" --no-audit --no-fund --loglevel=error "node@$version" >&2
  fi
}
