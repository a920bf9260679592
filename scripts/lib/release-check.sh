# shellcheck shell=bash
# Shared set-up of the release checks (scripts/test-*.sh), sourced after `set -euo pipefail`:
#   repo  the repository root; the project's .venv (or $VENV) comes first on PATH when present
#   work  a private temporary directory, removed on exit together with every path that
#         cleanup_also names
#   fail  print FAIL: <message> and exit 1
#   galaxy_version  the version field of galaxy.yml
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
venv=${VENV:-$repo/.venv}
if [ -d "$venv/bin" ]; then
  PATH="$venv/bin:$PATH"
fi

work=$(mktemp -d)
__cleanup_paths=("$work")
cleanup_also() {
  __cleanup_paths+=("$@")
}
__cleanup() {
  rm -rf "${__cleanup_paths[@]}"
}
trap __cleanup EXIT

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

galaxy_version() {
  python -c 'import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))["version"])' "$repo/galaxy.yml"
}
