#!/usr/bin/env bash
# Prints what a check run must leave alone: the installed packages, where every symlink under
# the given directories points and the checksum of every regular file (one file system each).
set -euo pipefail
dpkg-query -W -f '${Package} ${Version}\n'
find "$@" -xdev -type l -printf '%p -> %l\n' | sort
find "$@" -xdev -type f -print0 | sort -z | xargs -0 -r sha256sum
