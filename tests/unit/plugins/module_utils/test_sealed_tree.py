from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import stat
import time

import pytest

from ansible_collections.hardened.openresty.plugins.module_utils import sealed_tree
from ansible_collections.hardened.openresty.tests.unit.plugins.module_utils.worker_race import (
    Worker,
    remove,
    shared_dir,
)

# Tests that give files to another user (the worker, uid 33) or switch to it need root; the
# rest seal to OWNER: root:root as root, else the user running the tests.
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="gives files to another user")
OWNER = sealed_tree.ROOT if os.geteuid() == 0 else (os.geteuid(), os.getegid())


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
    assert sealed_tree.find_deviations(str(tree), OWNER) == []


def test_the_tree_is_sealed_for_the_owner_given(tmp_path):
    """owner is what every check and repair compares with and sets (root:root by default)."""
    assert sealed_tree.ROOT == (0, 0)
    # As root: another owner than root, so that a root default left anywhere shows.
    other = (33, 33) if os.geteuid() == 0 else OWNER
    root = tmp_path / "root"
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "init.lua").write_text(u"return {}")
    os.chmod(str(root / "pkg" / "init.lua"), 0o644)
    fixed = sealed_tree.seal(str(root), owner=other)
    entries = [str(root), str(root / "pkg"), str(root / "pkg" / "init.lua")]
    assert sorted(d["path"] for d in fixed) == sorted(entries)
    for path in entries:
        assert (os.lstat(path).st_uid, os.lstat(path).st_gid) == other, path
    assert sealed_tree.find_deviations(str(root), other) == []
    assert sealed_tree.install_files(str(root / "pkg"), {"init.lua": b"return {}"}, owner=other) == []
    # Only root writes into a 0555 directory; any other user needs it writable for a new file.
    os.chmod(str(root / "pkg"), 0o755)
    assert sealed_tree.install_files(str(root / "pkg"), {"init.lua": b"return 1"}, owner=other) == ["init.lua"]
    assert os.lstat(str(root / "pkg" / "init.lua")).st_uid == other[0]
    os.chmod(str(root), 0o755)
    assert sealed_tree.ensure_link(str(root), "current", "releases/r1", owner=other) is True
    assert os.lstat(str(root / "current")).st_uid == other[0]
    assert os.lstat(str(root / "releases" / "r1")).st_uid == other[0]
    if other != sealed_tree.ROOT:
        found = sealed_tree.find_deviations(str(root / "pkg"))
        assert "owned by %d:%d, not root:root" % other in found[0]["reason"]


@needs_root
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


def test_links_inside_the_tree_are_kept_and_never_followed(tree):
    os.chmod(str(tree / "pkg"), 0o777)
    os.symlink("../app.lua", str(tree / "pkg" / "alias.lua"))
    os.chmod(str(tree / "app.lua"), 0o644)
    sealed_tree.seal(str(tree), owner=OWNER)
    assert os.readlink(str(tree / "pkg" / "alias.lua")) == "../app.lua"
    assert os.readlink(str(tree / "current")) == "pkg"
    assert sealed_tree.find_deviations(str(tree), OWNER) == []


@needs_root
def test_links_that_leave_the_tree_are_removed_whatever_the_hop(tree, tmp_path):
    """a link out of the tree, directly or through a later hop."""
    outside = tmp_path / "outside.lua"
    outside.write_text("return {}")
    os.chmod(str(outside), 0o666)
    swappable = tmp_path / "swappable"
    swappable.mkdir()
    os.chown(str(swappable), 33, 33)
    os.symlink(str(tree / "app.lua"), str(swappable / "hop"))
    os.chmod(str(tree), 0o755)
    os.chmod(str(tree / "pkg"), 0o755)
    os.symlink(str(outside), str(tree / "escape.lua"))
    # First hop inside the tree, second hop out of it.
    os.symlink("../../outside.lua", str(tree / "pkg" / "inner.lua"))
    os.symlink("pkg/inner.lua", str(tree / "two_hops.lua"))
    # Resolves into the tree, but through a link the worker can re-point.
    os.symlink(str(swappable / "hop"), str(tree / "via_worker.lua"))
    # '..' after a hop that went up: lexically inside, really outside.
    os.symlink("..", str(tree / "pkg" / "up"))
    os.symlink("pkg/up/../outside.lua", str(tree / "dotdot.lua"))
    leaving = sorted(str(tree / n) for n in ("escape.lua", "pkg/inner.lua", "two_hops.lua", "via_worker.lua",
                                             "dotdot.lua"))

    reported = sealed_tree.find_deviations(str(tree))
    fixed = sealed_tree.seal(str(tree))
    for path in leaving:
        assert not os.path.lexists(path), "%s still leaves the sealed tree" % path
    assert sorted(d["path"] for d in reported if d["action"] == "remove") == leaving
    assert sorted(d["path"] for d in fixed if d["action"] == "remove") == leaving
    assert os.readlink(str(tree / "current")) == "pkg"
    assert mode(str(outside)) == 0o666
    assert sealed_tree.find_deviations(str(tree)) == []
    assert sealed_tree.seal(str(tree)) == []


def test_special_files_are_reported_not_fixed(tree):
    os.chmod(str(tree), 0o755)
    os.mkfifo(str(tree / "pipe"))
    os.chmod(str(tree), 0o555)
    found = sealed_tree.seal(str(tree), owner=OWNER)
    assert [d["kind"] for d in found] == ["special"]
    assert os.path.exists(str(tree / "pipe"))


def test_hard_linked_files_are_refused_not_chmodded(tree, tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("root only")
    os.chmod(str(secret), 0o600)
    os.chmod(str(tree), 0o755)
    os.link(str(secret), str(tree / "linked.lua"))
    os.chmod(str(tree), 0o555)
    fixed = sealed_tree.seal(str(tree), owner=OWNER)
    assert mode(str(secret)) == 0o600
    assert [(d["path"], d["action"]) for d in fixed] == [(str(tree / "linked.lua"), "refuse")]


def _drift(root, names):
    remove(root)
    os.mkdir(root)
    os.chown(root, 33, 33)
    os.chmod(root, 0o755)
    for name in names:
        path = os.path.join(root, name)
        with open(path, "w") as handle:
            handle.write("return {}")
        os.chown(path, 33, 33)
        os.chmod(path, 0o664)


def _toggler(paths, secret, content, denied_limit):
    """The worker's loop: toggle each path between a link to secret and a regular file
    holding content, for 3 s or until more than denied_limit attempts were refused."""
    def swap(ready):
        ready()
        stop = time.monotonic() + 3
        denied = 0
        for dummy in range(20000):
            if time.monotonic() > stop or denied > denied_limit:
                break
            for path in paths:
                try:
                    os.symlink(secret, path + ".l")
                    os.rename(path + ".l", path)
                    with open(path + ".f", "w") as handle:
                        handle.write(content)
                    os.rename(path + ".f", path)
                except OSError:
                    denied += 1
        return 0
    return swap


def _identity(path):
    st = os.lstat(path)
    return (st.st_ino, st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode))


@needs_root
def test_a_racing_worker_never_changes_a_file_outside_the_tree():
    """the worker swaps its files for links to a root-only file while
    the drifted tree is repaired; the root-only file keeps its owner and mode."""
    base = shared_dir("seal-race-")
    try:
        secret = os.path.join(base, "secret")
        with open(secret, "w") as handle:
            handle.write("root only")
        os.chmod(secret, 0o600)
        before = _identity(secret)
        root = os.path.join(base, "root")
        os.mkdir(root)
        # Drift after the worker's directory in walk order keeps a repair busy for a while.
        busy = os.path.join(root, "zz")
        os.mkdir(busy)
        for i in range(1500):
            with open(os.path.join(busy, "b%04d.lua" % i), "w") as handle:
                handle.write("return {}")
        attacked = os.path.join(root, "z")
        names = ["m%02d.lua" % i for i in range(24)]

        swap = _toggler([os.path.join(attacked, name) for name in names], secret, "return {}", 200)

        deadline = time.monotonic() + 30
        rounds = 0
        errors = []
        while rounds < 20 and time.monotonic() < deadline:
            rounds += 1
            os.chmod(root, 0o755)
            os.chmod(busy, 0o755)
            for name in os.listdir(busy):
                os.chmod(os.path.join(busy, name), 0o644)
            _drift(attacked, names)
            worker = Worker(swap)
            try:
                worker.wait_ready()
                time.sleep(0.005 + 0.002 * (rounds % 5))
                sealed_tree.seal(root)
            except OSError as exc:
                errors.append("round %d: %s" % (rounds, exc))
            finally:
                worker.stop()
            assert _identity(secret) == before, "round %d: the secret's owner or mode changed" % rounds
            if sealed_tree.find_deviations(root):
                errors.append("round %d: the tree is not sealed" % rounds)
        assert errors == [], "the repair failed under the race"
    finally:
        remove(base)


@needs_root
def test_a_write_handle_opened_before_the_repair_cannot_write_the_sealed_file():
    """a file the worker could write is replaced, not chmodded."""
    base = shared_dir("seal-handle-")
    try:
        root = os.path.join(base, "root")
        _drift(root, ["app.lua"])
        os.chown(root, 0, 0)
        path = os.path.join(root, "app.lua")
        go_read, go_write = os.pipe()

        def keep_a_handle(ready):
            fd = os.open(path, os.O_WRONLY)
            ready()
            os.read(go_read, 1)
            os.pwrite(fd, b"os.execute('id')", 0)
            return 0

        worker = Worker(keep_a_handle)
        worker.wait_ready()
        old_inode = os.lstat(path).st_ino
        fixed = sealed_tree.seal(root)
        os.write(go_write, b"g")
        assert worker.join() == 0, "the worker could not write through its handle"
        with open(path) as handle:
            assert handle.read() == "return {}", "the worker's handle wrote into the sealed file"
        assert [(d["path"], d["action"]) for d in fixed if d["kind"] == "file"] == [(path, "replace")]
        assert os.lstat(path).st_ino != old_inode
        assert _identity(path)[1:] == (0, 0, 0o444)
        assert sorted(os.listdir(root)) == ["app.lua"], "the temporary copy was left behind"
    finally:
        remove(base)


@needs_root
def test_ancestors_of_a_missing_root_behind_a_symlinked_parent(tmp_path):
    """the resolved nearest existing ancestor, and every hop, count."""
    worker_dir = tmp_path / "www"
    (worker_dir / "sub").mkdir(parents=True)
    os.chown(str(worker_dir), 33, 33)
    os.symlink(str(worker_dir / "sub"), str(tmp_path / "link"))
    paths = [w["path"] for w in sealed_tree.writable_ancestors(str(tmp_path / "link" / "lua" / "lib"))]
    assert str(worker_dir) in paths


@needs_root
def test_ancestors_of_every_hop_count(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    worker_dir = tmp_path / "www"
    worker_dir.mkdir()
    os.chown(str(worker_dir), 33, 33)
    os.symlink(str(real), str(worker_dir / "hop"))
    os.symlink(str(worker_dir / "hop"), str(tmp_path / "root"))
    paths = [w["path"] for w in sealed_tree.writable_ancestors(str(tmp_path / "root"))]
    assert str(worker_dir) in paths
    assert str(real) not in paths, "the root itself is sealed, not refused"


def test_resolution_follows_every_hop(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    os.symlink("a/b", str(tmp_path / "l1"))
    os.symlink(str(tmp_path / "l1"), str(tmp_path / "l2"))
    found = sealed_tree.resolution(str(tmp_path / "l2" / "missing" / "x"))
    assert found["links"] == [str(tmp_path / "l2"), str(tmp_path / "l1")]
    assert found["resolved"] == str(tmp_path / "a" / "b" / "missing" / "x")
    assert found["missing"] == "missing/x"
    assert os.path.realpath(str(tmp_path / "l2")) == sealed_tree.resolution(str(tmp_path / "l2"))["resolved"]


@needs_root
def test_writable_ancestors(tmp_path):
    parent = tmp_path / "parent"
    child = parent / "root"
    child.mkdir(parents=True)
    os.chmod(str(parent), 0o777)
    found = sealed_tree.writable_ancestors(str(child))
    assert str(parent) in [entry["path"] for entry in found]
    os.chmod(str(parent), 0o755)
    assert str(parent) not in [entry["path"] for entry in sealed_tree.writable_ancestors(str(child))]


# -- root_files: root-owned files outside the sealed trees, through descriptors only ------

def _owner_mode(path):
    st = os.lstat(str(path))
    return st.st_uid, st.st_gid, "%04o" % stat.S_IMODE(st.st_mode)


def place(top, relative, data=b"x\n", **kwargs):
    return sealed_tree.place_root_file(str(top / relative), data, owner=OWNER, top=str(top), **kwargs)


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
    assert _owner_mode(target) == OWNER + ("0644",)
    for directory in result["created"]:
        assert _owner_mode(directory) == OWNER + ("0755",)
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
    assert _owner_mode(top / "a" / "b") == OWNER + ("0700",)


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
    assert _owner_mode(path) == OWNER + ("0644",)
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
    with pytest.raises(sealed_tree.SealError, match="is not a directory"):
        place(top, "etc/facts.d/layout.fact")
    assert os.listdir(str(top / "real")) == []
    with pytest.raises(sealed_tree.SealError, match="is not a directory"):
        place(top, "etc/facts.d/layout.fact", present=False)


@needs_root
def test_a_directory_on_the_way_that_another_user_can_change_is_refused(top):
    (top / "etc").mkdir(mode=0o755)
    os.chown(str(top / "etc"), 33, 33)
    with pytest.raises(sealed_tree.SealError, match="%s, a directory on the way" % (top / "etc")):
        place(top, "etc/facts.d/layout.fact")
    assert os.listdir(str(top / "etc")) == []
    os.chown(str(top / "etc"), 0, 0)
    os.chmod(str(top / "etc"), 0o777)
    with pytest.raises(sealed_tree.SealError, match=r"mode 0777"):
        place(top, "etc/facts.d/layout.fact", present=False)


@needs_root
def test_the_files_directory_is_repaired_but_the_file_only_changes_when_it_differs(top):
    place(top, "unit.d/sandbox.conf", b"[Service]\n")
    os.chown(str(top / "unit.d"), 33, 33)
    os.chmod(str(top / "unit.d"), 0o777)
    result = place(top, "unit.d/sandbox.conf", b"[Service]\n")
    assert result["changed"] is False
    assert result["repaired"] == {"path": str(top / "unit.d"), "mode": "0777", "uid": 33, "gid": 33}
    assert _owner_mode(top / "unit.d") == (0, 0, "0755")


def test_absent_removes_the_file_and_creates_or_repairs_nothing(top):
    place(top, "d/file.conf")
    os.chmod(str(top / "d"), 0o700)
    preview = place(top, "d/file.conf", present=False, check_mode=True)
    assert preview["changed"] and (top / "d" / "file.conf").exists()
    result = place(top, "d/file.conf", present=False)
    assert result["changed"] and result["repaired"] is None
    assert os.listdir(str(top / "d")) == [] and _owner_mode(top / "d") == OWNER + ("0700",)
    assert place(top, "d/file.conf", present=False)["changed"] is False
    assert place(top, "gone/file.conf", present=False) == {
        "changed": False, "created": [], "repaired": None, "existed": False, "before": None}
    assert not (top / "gone").exists()


def test_a_directory_at_the_name_and_paths_outside_top_are_refused(top, tmp_path):
    (top / "d" / "file.conf").mkdir(parents=True)
    with pytest.raises(sealed_tree.SealError, match="is a directory"):
        place(top, "d/file.conf")
    with pytest.raises(sealed_tree.SealError, match="is not below"):
        sealed_tree.place_root_file(str(tmp_path / "other" / "x"), b"", owner=OWNER, top=str(top))


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

        swap = _toggler([target], secret, "[Service]\nExecStartPre=/bin/sh\n", 0)

        for round_ in range(10):
            remove(unit_dir)
            os.mkdir(unit_dir)
            os.chown(unit_dir, 33, 33)
            os.chmod(unit_dir, 0o777)
            worker = Worker(swap)
            try:
                worker.wait_ready()
                time.sleep(0.002 * (round_ % 5))
                sealed_tree.place_root_file(target, b"[Service]\nNoNewPrivileges=yes\n", top=top)
            finally:
                worker.stop()
            after = os.lstat(secret)
            assert (after.st_ino, after.st_uid, after.st_mode) == (before.st_ino, before.st_uid, before.st_mode)
            with open(secret) as handle:
                assert handle.read() == "root only", "round %d: written through the link" % round_
            assert _owner_mode(unit_dir) == (0, 0, "0755")
            assert _owner_mode(target) == (0, 0, "0644") and not os.path.islink(target)
            with open(target) as handle:
                assert handle.read() == "[Service]\nNoNewPrivileges=yes\n"
    finally:
        remove(base)
