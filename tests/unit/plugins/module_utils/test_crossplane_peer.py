"""The crossplane that test_nginx_parser's differential test compares against is crossplane
0.5.8 as published.

gixy-ng depends on ngxparse, a fork that installs the same `crossplane` package: installed into
one environment, one overwrites the other's files and the differential test would compare
against a mix. gixy-ng lives in .venv-gixy (requirements-gixy.txt); this test fails if the
package imported here is not, file for file, what the crossplane 0.5.8 distribution installed.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import hashlib
import os

import pytest

crossplane = pytest.importorskip("crossplane")
metadata = pytest.importorskip("importlib.metadata")


def test_the_imported_crossplane_is_crossplane_0_5_8_file_for_file():
    dist = metadata.distribution("crossplane")
    assert dist.version == "0.5.8"
    assert crossplane.__version__ == "0.5.8"
    assert os.path.realpath(crossplane.__file__) == os.path.realpath(str(dist.locate_file("crossplane/__init__.py")))
    recorded = [f for f in dist.files if str(f).startswith("crossplane/") and str(f).endswith(".py") and f.hash]
    assert len(recorded) >= 8, "crossplane's RECORD lists its modules with their hashes"
    changed = []
    for entry in recorded:
        with open(str(entry.locate()), "rb") as handle:
            digest = hashlib.new(entry.hash.mode, handle.read()).digest()
        if base64.urlsafe_b64encode(digest).rstrip(b"=").decode() != entry.hash.value:
            changed.append(str(entry))
    assert changed == [], "files of crossplane 0.5.8 overwritten by another distribution: %s" % changed
