from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import stat

import pytest

from ansible_collections.hardened.openresty.plugins.module_utils import sealed_tree

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="ownership checks need root")


def mode(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "root"
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "init.lua").write_text("return {}")
    (root / "app.lua").write_text("return {}")
    os.symlink("pkg", str(root / "current"))
    for path in (root, root / "pkg"):
        os.chmod(str(path), 0o555)
    for path in (root / "pkg" / "init.lua", root / "app.lua"):
        os.chmod(str(path), 0o444)
    return root


def test_sealed_tree_has_no_deviations(tree):
    assert sealed_tree.find_deviations(str(tree)) == []


def test_drift_is_found_and_repaired(tree):
    os.chmod(str(tree / "pkg"), 0o777)
    os.chown(str(tree / "app.lua"), 33, 33)
    found = sealed_tree.find_deviations(str(tree))
    assert sorted(d["path"] for d in found) == sorted([str(tree / "app.lua"), str(tree / "pkg")])
    assert "mode 0777, not 0555" in [d for d in found if d["kind"] == "directory"][0]["reason"]
    assert "owned by 33:33" in [d for d in found if d["kind"] == "file"][0]["reason"]

    assert len(sealed_tree.seal(str(tree), check_mode=True)) == 2
    assert mode(str(tree / "pkg")) == 0o777, "check mode must not change anything"

    assert len(sealed_tree.seal(str(tree))) == 2
    assert mode(str(tree / "pkg")) == 0o555
    assert os.lstat(str(tree / "app.lua")).st_uid == 0
    assert sealed_tree.find_deviations(str(tree)) == []


def test_symlinks_are_not_followed(tree, tmp_path):
    outside = tmp_path / "outside.lua"
    outside.write_text("return {}")
    os.chmod(str(outside), 0o666)
    os.symlink(str(outside), str(tree / "escape.lua"))
    assert sealed_tree.find_deviations(str(tree)) == []
    sealed_tree.seal(str(tree))
    assert mode(str(outside)) == 0o666


def test_special_files_are_reported_not_fixed(tree):
    os.chmod(str(tree), 0o755)
    os.mkfifo(str(tree / "pipe"))
    os.chmod(str(tree), 0o555)
    found = sealed_tree.seal(str(tree))
    assert [d["kind"] for d in found] == ["special"]
    assert os.path.exists(str(tree / "pipe"))


def test_writable_ancestors(tmp_path):
    parent = tmp_path / "parent"
    child = parent / "root"
    child.mkdir(parents=True)
    os.chmod(str(parent), 0o777)
    found = sealed_tree.writable_ancestors(str(child))
    assert str(parent) in [entry["path"] for entry in found]
    os.chmod(str(parent), 0o755)
    assert str(parent) not in [entry["path"] for entry in sealed_tree.writable_ancestors(str(child))]
