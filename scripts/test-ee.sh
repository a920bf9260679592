#!/usr/bin/env bash
# shellcheck disable=SC2154  # repo and work are set by lib/release-check.sh
# Check the execution environment definitions without building an image and without network:
# `ansible-builder create` renders examples/execution-environment.yml into a build context,
# then the context's own galaxy step and introspection script run here, offline, the way the
# image build would run them, to show which requirements of this collection reach the image.
set -euo pipefail

source "$(dirname "$0")/lib/release-check.sh"

version=$(galaxy_version)
tarball_name="hardened-openresty-$version.tar.gz"
for file in execution-environment.yml requirements.yml; do
  grep -qF "$tarball_name" "$repo/examples/$file" ||
    fail "examples/$file does not name $tarball_name (the version in galaxy.yml is $version)"
done

echo "== build the collection next to a copy of the example definition"
ee="$work/ee"
mkdir -p "$ee"
cp "$repo/examples/execution-environment.yml" "$repo/examples/requirements.yml" "$ee/"
ansible-galaxy collection build --output-path "$ee" "$repo" >/dev/null
[ -f "$ee/$tarball_name" ] || fail "ansible-galaxy did not build $tarball_name"

echo "== ansible-builder create, with no network and no container runtime"
# Stand-ins that record any call: create must not pull or build anything.
mkdir -p "$work/shims"
for runtime in podman docker; do
  printf '#!/bin/sh\necho "%s $*" >>"%s"\nexit 1\n' "$runtime" "$work/runtime-calls" >"$work/shims/$runtime"
  chmod +x "$work/shims/$runtime"
done
offline=()
if [ "$(id -u)" -eq 0 ] && command -v unshare >/dev/null && unshare --net true 2>/dev/null; then
  offline=(unshare --net)  # a network namespace with only a down loopback: nothing is reachable
  echo "create runs in an empty network namespace"
else
  echo "note: cannot create a network namespace; create runs with the host's network"
fi
context="$work/context"
(cd "$work" && PATH="$work/shims:$PATH" "${offline[@]}" ansible-builder create \
  -f "$ee/execution-environment.yml" -c "$context" --output-filename Containerfile -v 2) >"$work/create.log" 2>&1 ||
  { cat "$work/create.log" >&2; fail "ansible-builder create failed"; }
[ ! -e "$work/runtime-calls" ] || fail "create called a container runtime: $(cat "$work/runtime-calls")"
containerfile="$context/Containerfile"
[ -f "$containerfile" ] || fail "no Containerfile in $context"

echo "== the build context carries the collection"
build="$context/_build"
cmp -s "$ee/$tarball_name" "$build/collections/$tarball_name" || fail "the tarball is not in $build/collections"
cmp -s "$ee/requirements.yml" "$build/requirements.yml" || fail "requirements.yml is not in $build"
# The steps are literal Containerfile text, $variables included.
# shellcheck disable=SC2016
for step in \
  'COPY _build /build' \
  'ansible-galaxy collection install $ANSIBLE_GALAXY_CLI_COLLECTION_OPTS -r requirements.yml --collections-path "/usr/share/ansible/collections"' \
  'COPY --from=galaxy /usr/share/ansible /usr/share/ansible' \
  'RUN $PYCMD /output/scripts/introspect.py introspect'; do
  grep -qF "$step" "$containerfile" || fail "the Containerfile has no step '$step'"
done
grep -E '^FROM |ansible-galaxy collection install|introspect.py' "$containerfile"

echo "== what the image build's galaxy and builder stages would do, run here offline"
# The galaxy stage runs in a copy of _build (WORKDIR /build), so the relative tarball path
# of requirements.yml must resolve there.
stage="$work/stage"
cp -r "$build" "$stage"
(cd "$stage" && ANSIBLE_COLLECTIONS_PATH="$work/collections" ANSIBLE_HOME="$work/ansible-home" \
  ANSIBLE_GALAXY_DISABLE_GPG_VERIFY=1 ansible-galaxy collection install --offline -r requirements.yml \
  --collections-path "$work/collections") >"$work/galaxy.log" 2>&1 ||
  { cat "$work/galaxy.log" >&2; fail "the galaxy step cannot install requirements.yml"; }
[ -f "$work/collections/ansible_collections/hardened/openresty/meta/execution-environment.yml" ] ||
  fail "the installed collection has no meta/execution-environment.yml"
python "$build/scripts/introspect.py" introspect "$work/collections" >"$work/introspect.yml" ||
  fail "introspection of the installed collection failed"
cat "$work/introspect.yml"

# What reaches the image from this collection must be exactly what it declares.
python - "$work/introspect.yml" "$repo" <<'PY'
import os
import sys

import yaml

with open(sys.argv[1]) as handle:
    found = yaml.safe_load(handle) or {}
repo = sys.argv[2]
with open(os.path.join(repo, "meta", "execution-environment.yml")) as handle:
    declared_files = yaml.safe_load(handle)["dependencies"]
tag = "  # from collection hardened.openresty"
problems = []
for kind in ("python", "system"):
    declared = []
    if declared_files.get(kind):
        with open(os.path.join(repo, declared_files[kind])) as handle:
            declared = [line.strip() for line in handle if line.strip() and not line.startswith("#")]
    reached = [line[:-len(tag)] for line in (found.get(kind) or []) if line.endswith(tag)]
    if sorted(reached) != sorted(declared):
        problems.append("%s: the image would get %s, the collection declares %s" % (kind, reached, declared))
if problems:
    sys.exit("\n".join(problems))
print("the image gets exactly the requirements the collection declares")
PY

echo "PASS: examples/execution-environment.yml renders offline and installs $tarball_name with its declared requirements"
