#!/usr/bin/env bash
# Run `ansible-test sanity --local` on a copy of the collection.
# ansible-test needs the tree at .../ansible_collections/<namespace>/<name> (a real copy,
# not a symlink) and without stale tests/output. --venv and --docker cannot fetch what they
# need here; --local with --requirements works once pip's bootstrap script is cached.
set -euo pipefail
dest=${1:?usage: $0 DEST/ansible_collections/hardened/openresty [ansible-test args]}
shift
src=$(cd "$(dirname "$0")/.." && pwd)

bootstrap="$HOME/.ansible/test/cache/get_pip_24_2.py"
if [ ! -f "$bootstrap" ]; then
  mkdir -p "$(dirname "$bootstrap")"
  cat >"$bootstrap" <<'PY'
import subprocess, sys
subprocess.check_call([sys.executable, "-m", "ensurepip", "--upgrade"])
subprocess.check_call([sys.executable, "-m", "pip", "install", "pip==24.2"])
PY
fi

rm -rf "$dest"
mkdir -p "$dest"
# Only what git tracks (plus new files not yet ignored), never venvs, caches or outputs.
(cd "$src" && git ls-files -z --cached --others --exclude-standard) |
  (cd "$src" && xargs -0 tar -cf - --no-recursion --ignore-failed-read 2>/dev/null) | tar -C "$dest" -xf -
cd "$dest"
python_version=$(python -c 'import sys; print("%d.%d" % sys.version_info[:2])')
ansible-test sanity --local --requirements --python "$python_version" --color no "$@"
