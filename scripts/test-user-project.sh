#!/usr/bin/env bash
# shellcheck disable=SC2154  # repo and work are set by lib/release-check.sh
# A user's project (tests/user-project) tested with molecule against the collection installed
# from its built tarball, with nothing else on the collections path: the project's own
# scenario, site playbook and a verify.yml that imports hardened.openresty.verify.
set -euo pipefail

source "$(dirname "$0")/lib/release-check.sh"

# Only the installed copy: no roles path of this repository, no other collections path.
unset ANSIBLE_ROLES_PATH
export ANSIBLE_COLLECTIONS_PATH="$work/collections"

echo "== build and install the tarball"
ansible-galaxy collection build --output-path "$work/dist" "$repo" >/dev/null
ansible-galaxy collection install --offline --force -p "$work/collections" "$work"/dist/hardened-openresty-*.tar.gz >/dev/null
installed="$work/collections/ansible_collections/hardened/openresty"
[ -f "$installed/playbooks/verify.yml" ] || fail "the installed collection has no playbooks/verify.yml"
where=$(ansible-galaxy collection list hardened.openresty 2>/dev/null | awk '/^# /{print $2}')
[ "$where" = "$work/collections/ansible_collections" ] || fail "hardened.openresty resolves to '$where', not the installed tarball"

echo "== molecule test in the user's project"
cd "$repo/tests/user-project"
molecule test
echo "PASS: a user's molecule scenario converges and verifies with the collection from its tarball"
