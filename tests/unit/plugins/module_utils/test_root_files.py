"""place_root_file: root-owned files outside the sealed trees, through descriptors only."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import stat
import time

import pytest

from ansible_collections.hardened.openresty.plugins.module_utils import sealed_tree
from ansible_collections.hardened.openresty.plugins.module_utils.sealed_tree import SealError, place_root_file
from ansible_collections.hardened.openresty.tests.unit.plugins.module_utils.worker_race import (
    Worker,
    remove,
    shared_dir,
)

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="gives files to another user")
OWNER = sealed_tree.ROOT if os.geteuid() == 0 else (os.geteuid(), os.getegid())


def identity(path):
    st = os.lstat(str(path))
    return st.st_uid, st.st_gid, "%04o" % stat.S_IMODE(st.st_mode)


def place(top, relative, data=b"x\n", **kwargs):
    return place_root_file(str(top / relative), data, owner=OWNER, top=str(top), **kwargs)


@pytest.fixture
def top(tmp_path):
    top = tmp_path / "top"
    top.mkdir()
    os.chmod(str(top), 0o755)
    return top


def test_missing_directories_and_file_are_created_and_a_second_run_settles(top):
    target = top / "etc" / "ansible" / "facts.d" / "layout.fact"
    result = place(top, "etc/ansible/facts.d/layout.fact", b'{"a": 1}\n')
    assert result["changed"] and result["created"] == [
        str(top / "etc"), str(top / "etc" / "ansible"), str(top / "etc" / "ansible" / "facts.d")]
    assert target.read_bytes() == b'{"a": 1}\n'
    assert identity(target) == OWNER + ("0644",)
    for directory in result["created"]:
        assert identity(directory) == OWNER + ("0755",)
    again = place(top, "etc/ansible/facts.d/layout.fact", b'{"a": 1}\n')
    assert again == {"changed": False, "created": [], "repaired": None, "existed": True, "before": b'{"a": 1}\n'}


def test_check_mode_writes_nothing_and_reports_what_would_change(top):
    preview = place(top, "a/b/file.conf", b"new\n", check_mode=True)
    assert preview["changed"] and preview["created"] == [str(top / "a"), str(top / "a" / "b")]
    assert os.listdir(str(top)) == []

    place(top, "a/b/file.conf", b"old\n")
    os.chmod(str(top / "a" / "b"), 0o700)
    preview = place(top, "a/b/file.conf", b"new\n", check_mode=True)
    assert preview["changed"] and preview["before"] == b"old\n"
    assert preview["repaired"]["mode"] == "0700"
    assert (top / "a" / "b" / "file.conf").read_bytes() == b"old\n"
    assert identity(top / "a" / "b") == OWNER + ("0700",)


def test_a_changed_file_is_a_new_inode_and_an_equal_one_is_left_alone(top):
    place(top, "d/file.conf", b"one\n")
    path = top / "d" / "file.conf"
    inode = os.lstat(str(path)).st_ino
    assert place(top, "d/file.conf", b"one\n")["changed"] is False
    assert os.lstat(str(path)).st_ino == inode
    result = place(top, "d/file.conf", b"two\n")
    assert result["changed"] and result["before"] == b"one\n"
    assert path.read_bytes() == b"two\n" and os.lstat(str(path)).st_ino != inode
    assert os.listdir(str(top / "d")) == ["file.conf"], "the temporary file was left behind"


def test_wrong_mode_or_a_second_name_means_a_fresh_copy(top):
    place(top, "d/file.conf", b"same\n")
    path = top / "d" / "file.conf"
    os.chmod(str(path), 0o666)
    assert place(top, "d/file.conf", b"same\n")["changed"]
    assert identity(path) == OWNER + ("0644",)
    os.link(str(path), str(top / "elsewhere"))
    assert place(top, "d/file.conf", b"same\n")["changed"]
    assert os.lstat(str(path)).st_nlink == 1 and os.lstat(str(top / "elsewhere")).st_nlink == 1


def test_a_link_at_the_name_is_replaced_never_written_through(top):
    (top / "d").mkdir(mode=0o755)
    secret = top / "secret"
    secret.write_bytes(b"keep")
    os.symlink(str(secret), str(top / "d" / "file.conf"))
    result = place(top, "d/file.conf", b"new\n")
    assert result["changed"] and result["existed"] and result["before"] is None
    assert secret.read_bytes() == b"keep"
    assert not os.path.islink(str(top / "d" / "file.conf"))
    assert (top / "d" / "file.conf").read_bytes() == b"new\n"


def test_a_linked_directory_on_the_way_is_refused_and_nothing_is_created_through_it(top):
    (top / "real").mkdir(mode=0o755)
    os.symlink("real", str(top / "etc"))
    with pytest.raises(SealError, match="is not a directory"):
        place(top, "etc/facts.d/layout.fact")
    assert os.listdir(str(top / "real")) == []
    with pytest.raises(SealError, match="is not a directory"):
        place(top, "etc/facts.d/layout.fact", present=False)


@needs_root
def test_a_directory_on_the_way_that_another_user_can_change_is_refused(top):
    (top / "etc").mkdir(mode=0o755)
    os.chown(str(top / "etc"), 33, 33)
    with pytest.raises(SealError, match="%s, a directory on the way" % (top / "etc")):
        place(top, "etc/facts.d/layout.fact")
    assert os.listdir(str(top / "etc")) == []
    os.chown(str(top / "etc"), 0, 0)
    os.chmod(str(top / "etc"), 0o777)
    with pytest.raises(SealError, match=r"mode 0777"):
        place(top, "etc/facts.d/layout.fact", present=False)


@needs_root
def test_the_files_directory_is_repaired_but_the_file_only_changes_when_it_differs(top):
    place(top, "unit.d/sandbox.conf", b"[Service]\n")
    os.chown(str(top / "unit.d"), 33, 33)
    os.chmod(str(top / "unit.d"), 0o777)
    result = place(top, "unit.d/sandbox.conf", b"[Service]\n")
    assert result["changed"] is False
    assert result["repaired"] == {"path": str(top / "unit.d"), "mode": "0777", "uid": 33, "gid": 33}
    assert identity(top / "unit.d") == (0, 0, "0755")


def test_absent_removes_the_file_and_creates_or_repairs_nothing(top):
    place(top, "d/file.conf")
    os.chmod(str(top / "d"), 0o700)
    preview = place(top, "d/file.conf", present=False, check_mode=True)
    assert preview["changed"] and (top / "d" / "file.conf").exists()
    result = place(top, "d/file.conf", present=False)
    assert result["changed"] and result["repaired"] is None
    assert os.listdir(str(top / "d")) == [] and identity(top / "d") == OWNER + ("0700",)
    assert place(top, "d/file.conf", present=False)["changed"] is False
    assert place(top, "gone/file.conf", present=False) == {
        "changed": False, "created": [], "repaired": None, "existed": False, "before": None}
    assert not (top / "gone").exists()


def test_a_directory_at_the_name_and_paths_outside_top_are_refused(top, tmp_path):
    (top / "d" / "file.conf").mkdir(parents=True)
    with pytest.raises(SealError, match="is a directory"):
        place(top, "d/file.conf")
    with pytest.raises(SealError, match="is not below"):
        place_root_file(str(tmp_path / "other" / "x"), b"", owner=OWNER, top=str(top))


@needs_root
def test_a_racing_worker_never_changes_a_file_outside_the_directory():
    """the worker owns the file's directory and keeps swapping the name between a file and a
    link to a root-only file; after the repair the name is the root file and the secret
    kept its content, owner and mode."""
    base = shared_dir("root-file-race-")
    try:
        top = os.path.join(base, "top")
        os.mkdir(top, 0o755)
        secret = os.path.join(base, "secret")
        with open(secret, "w") as handle:
            handle.write("root only")
        os.chmod(secret, 0o600)
        before = os.lstat(secret)
        unit_dir = os.path.join(top, "unit.d")
        target = os.path.join(unit_dir, "sandbox.conf")

        def swap(ready):
            ready()
            stop = time.monotonic() + 3
            for dummy in range(20000):
                if time.monotonic() > stop:
                    break
                try:
                    os.symlink(secret, target + ".l")
                    os.rename(target + ".l", target)
                    with open(target + ".f", "w") as handle:
                        handle.write("[Service]\nExecStartPre=/bin/sh\n")
                    os.rename(target + ".f", target)
                except OSError:
                    return 0
            return 0

        for round_ in range(10):
            remove(unit_dir)
            os.mkdir(unit_dir)
            os.chown(unit_dir, 33, 33)
            os.chmod(unit_dir, 0o777)
            worker = Worker(swap)
            try:
                worker.wait_ready()
                time.sleep(0.002 * (round_ % 5))
                place_root_file(target, b"[Service]\nNoNewPrivileges=yes\n", top=top)
            finally:
                worker.stop()
            after = os.lstat(secret)
            assert (after.st_ino, after.st_uid, after.st_mode) == (before.st_ino, before.st_uid, before.st_mode)
            with open(secret) as handle:
                assert handle.read() == "root only", "round %d: written through the link" % round_
            assert identity(unit_dir) == (0, 0, "0755")
            assert identity(target) == (0, 0, "0644") and not os.path.islink(target)
            with open(target) as handle:
                assert handle.read() == "[Service]\nNoNewPrivileges=yes\n"
    finally:
        remove(base)
