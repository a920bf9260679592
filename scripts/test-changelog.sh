#!/usr/bin/env bash
# shellcheck disable=SC2154  # repo and work are set by lib/release-check.sh
# Check the changelog without touching the repository: fragments lint clean, galaxy.yml's
# version is semver, CHANGELOG.md is what antsibull-changelog generates from
# changelogs/changelog.yaml, and a release of the pending fragments (done in a scratch copy)
# produces a valid changelog that names every module.
set -euo pipefail

source "$(dirname "$0")/lib/release-check.sh"

version=$(galaxy_version)
semver='^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$'
[[ "$version" =~ $semver ]] || fail "galaxy.yml version '$version' is not semver"
echo "galaxy.yml version $version is semver"

echo "== antsibull-changelog lint"
(cd "$repo" && antsibull-changelog lint) || fail "changelog fragments have errors (above)"
fragments=$(find "$repo/changelogs/fragments" -type f -name '*.y*ml' | wc -l)
echo "$fragments fragment(s) lint clean"

# A scratch copy laid out as ansible_collections/hardened/openresty (antsibull-changelog asks
# ansible-doc about the plugins) with what git tracks or would track: no venvs or caches.
copy="$work/ansible_collections/hardened/openresty"
mkdir -p "$copy"
(cd "$repo" && git ls-files -z --cached --others --exclude-standard) |
  (cd "$repo" && xargs -0 tar -cf - --no-recursion --ignore-failed-read 2>/dev/null) | tar -C "$copy" -xf -
cd "$copy"

if [ -f changelogs/changelog.yaml ]; then
  echo "== the released changelog"
  antsibull-changelog lint-changelog-yaml changelogs/changelog.yaml || fail "changelogs/changelog.yaml is invalid"
  [ -f CHANGELOG.md ] || fail "changelogs/changelog.yaml exists but CHANGELOG.md does not: run antsibull-changelog generate"
  antsibull-changelog generate
  cmp -s CHANGELOG.md "$repo/CHANGELOG.md" ||
    fail "CHANGELOG.md differs from what antsibull-changelog generate writes: $(diff "$repo/CHANGELOG.md" CHANGELOG.md | head -20)"
  echo "CHANGELOG.md matches changelogs/changelog.yaml"
fi

released=$(python - <<'PY'
import os

import yaml

path = "changelogs/changelog.yaml"
releases = {}
if os.path.exists(path):
    with open(path) as handle:
        releases = (yaml.safe_load(handle) or {}).get("releases") or {}
print(" ".join(releases))
PY
)
if [[ " $released " == *" $version "* ]]; then
  [ "$fragments" -eq 0 ] || fail "version $version is released but $fragments fragment(s) wait: bump the version in galaxy.yml"
  echo "PASS: version $version is released and the changelog is consistent"
  exit 0
fi

echo "== a release of $version in the scratch copy"
[ "$fragments" -gt 0 ] || fail "version $version is not released and there are no fragments to release"
antsibull-changelog release --date 2000-01-01 >"$work/release.log" 2>&1 ||
  { cat "$work/release.log" >&2; fail "antsibull-changelog release failed"; }
antsibull-changelog lint-changelog-yaml changelogs/changelog.yaml || fail "the released changelog.yaml is invalid"
[ -s CHANGELOG.md ] || fail "the release wrote no CHANGELOG.md"
# antsibull-changelog lists a module as new in the release its version_added names; a module
# that no release lists has a wrong version_added.
if ! python - "$version" <<'PY'
import glob
import os
import sys

import yaml

with open("changelogs/changelog.yaml") as handle:
    releases = yaml.safe_load(handle)["releases"]
release = releases[sys.argv[1]]
if not release.get("changes", {}).get("release_summary"):
    sys.exit("the release of %s has no release_summary fragment" % sys.argv[1])
listed = set(module["name"] for entry in releases.values() for module in entry.get("modules", []))
modules = set(os.path.basename(path)[:-3] for path in glob.glob("plugins/modules/*.py"))
unlisted = sorted(modules - listed)
if unlisted:
    sys.exit("modules in no release's 'New Modules' (check their version_added): %s" % ", ".join(unlisted))
print("release %s: summary present, every module listed as new in some release" % sys.argv[1])
PY
then
  fail "the release of $version is incomplete (above)"
fi
echo "PASS: the fragments make a valid release of $version (nothing in the repository was changed)"
