#!/usr/bin/env bash
# Make sure a LuaJIT interpreter is on PATH for the unit tests' oracle (the dangerous-call
# finder is compared with what LuaJIT reaches). Uses one that is there; as root on an apt
# system, installs Debian's luajit package. Otherwise it says so and exits 0: the oracle
# tests then skip with that reason, the other tests still run.
set -euo pipefail

if command -v luajit >/dev/null 2>&1; then
  exit 0
fi

if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "LuaJIT is not installed and this script can only install it as root on Debian/Ubuntu;" \
       "the LuaJIT oracle tests will be skipped (install the luajit package to run them)." >&2
  exit 0
fi

echo "Installing luajit (Debian package) for the unit tests' oracle..." >&2
if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq luajit >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq luajit >/dev/null
fi
command -v luajit >/dev/null 2>&1
