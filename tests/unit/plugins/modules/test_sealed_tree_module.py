from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import stat

import pytest

from ansible_collections.hardened.openresty.plugins.modules import sealed_tree
from ansible_collections.hardened.openresty.tests.unit.owner import OWNER

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="gives files to another user")
# Creating, removing or replacing entries inside a sealed (0555) directory: only root may.
writes_into_sealed = pytest.mark.skipif(os.geteuid() != 0, reason="writes into a 0555 directory")


def owner_mode(path):
    st = os.lstat(str(path))
    return st.st_uid, st.st_gid, "%04o" % stat.S_IMODE(st.st_mode)


@pytest.fixture
def base(tmp_path, monkeypatch):
    """An OWNER-owned 0755 directory whose ancestors count as safe; the module seals for OWNER.

    pytest's tmp_path lives under the world-writable /tmp, which the module rightly
    refuses; ancestors above `base` are therefore only flagged when a test marks them.
    """
    base = tmp_path / "srv"
    base.mkdir()
    os.chmod(str(base), 0o755)
    monkeypatch.setattr(sealed_tree, "_OWNER", OWNER)
    real = sealed_tree.writable_ancestors

    def writable_below_base(path, owner):
        return [w for w in real(path, owner) if w["path"].startswith(str(base))]
    monkeypatch.setattr(sealed_tree, "writable_ancestors", writable_below_base)
    return base


@writes_into_sealed
def test_roots_sharing_a_missing_ancestor_are_created_once(base, run_module):
    roots = [str(base / "app"), str(base / "app" / "releases")]
    result = run_module(sealed_tree, {"path": roots})
    assert result["created"] == roots
    assert owner_mode(base / "app") == OWNER + ("0555",)
    assert owner_mode(base / "app" / "releases") == OWNER + ("0555",)
    assert run_module(sealed_tree, {"path": roots})["changed"] is False


def test_missing_root_is_created_sealed(base, run_module):
    root = base / "lua" / "lib"
    preview = run_module(sealed_tree, {"path": [str(root)]}, check_mode=True)
    assert preview["changed"] and preview["created"] == [str(base / "lua"), str(root)]
    assert not os.path.exists(str(base / "lua"))

    result = run_module(sealed_tree, {"path": str(root)})
    assert result["created"] == [str(base / "lua"), str(root)]
    assert owner_mode(base / "lua") == OWNER + ("0755",)
    assert owner_mode(root) == OWNER + ("0555",)
    assert run_module(sealed_tree, {"path": str(root)})["changed"] is False


@needs_root
def test_drift_is_repaired_and_shown_in_the_diff(base, run_module):
    root = base / "lib"
    (root / "app").mkdir(parents=True)
    (root / "app" / "init.lua").write_text("return {}")
    os.chmod(str(root / "app"), 0o777)
    os.chown(str(root / "app" / "init.lua"), 33, 33)
    os.chmod(str(root / "app" / "init.lua"), 0o664)

    preview = run_module(sealed_tree, {"path": str(root)}, check_mode=True, diff=True)
    assert owner_mode(root / "app") == OWNER + ("0777",), "check mode changed the tree"
    assert "%s 0664 33:33\n" % (root / "app" / "init.lua") in preview["diff"]["before"]
    assert "%s 0444 %d:%d\n" % ((root / "app" / "init.lua",) + OWNER) in preview["diff"]["after"]

    result = run_module(sealed_tree, {"path": str(root)})
    assert sorted(f["path"] for f in result["fixed"]) == sorted(
        [str(root), str(root / "app"), str(root / "app" / "init.lua")])
    assert owner_mode(root / "app") == OWNER + ("0555",)
    assert owner_mode(root / "app" / "init.lua") == OWNER + ("0444",)
    assert run_module(sealed_tree, {"path": str(root)})["changed"] is False


def test_symlinked_root_seals_its_target_and_settles(base, run_module):
    release = base / "releases" / "r1"
    release.mkdir(parents=True)
    (release / "m.lua").write_text("return 1")
    os.chmod(str(release), 0o777)
    os.symlink("releases/r1", str(base / "current"))
    assert run_module(sealed_tree, {"path": str(base / "current")})["changed"] is True
    assert owner_mode(release) == OWNER + ("0555",)
    assert run_module(sealed_tree, {"path": str(base / "current")})["changed"] is False


def test_writable_ancestor_is_refused_before_any_change(base, run_module):
    (base / "open" / "lib").mkdir(parents=True)
    os.chmod(str(base / "open"), 0o777)
    os.chmod(str(base / "open" / "lib"), 0o755)
    result = run_module(sealed_tree, {"path": [str(base / "open" / "lib")]})
    assert result["failed"]
    assert str(base / "open" / "lib") in result["msg"] and str(base / "open") + " (" in result["msg"]
    assert owner_mode(base / "open" / "lib") == OWNER + ("0755",)

    missing = run_module(sealed_tree, {"path": [str(base / "open" / "new" / "lib")]})
    assert missing["failed"] and not os.path.exists(str(base / "open" / "new"))


def test_special_file_is_refused_and_nothing_is_changed(base, run_module):
    root = base / "lib"
    root.mkdir()
    os.chmod(str(root), 0o777)
    os.mkfifo(str(root / "pipe"))
    result = run_module(sealed_tree, {"path": str(root)})
    assert result["failed"] and str(root / "pipe") in result["msg"]
    assert owner_mode(root) == OWNER + ("0777",)


def test_every_root_is_checked_before_any_is_changed(base, run_module):
    good = base / "good"
    good.mkdir()
    os.chmod(str(good), 0o777)
    result = run_module(sealed_tree, {"path": [str(good), "relative/path"]})
    assert result["failed"] and "relative/path" in result["msg"]
    assert owner_mode(good) == OWNER + ("0777",)


def test_missing_root_without_create_fails(base, run_module):
    result = run_module(sealed_tree, {"path": str(base / "absent"), "create": False})
    assert result["failed"] and "does not exist" in result["msg"]


def test_a_new_root_behind_a_symlinked_parent_is_refused(base, run_module):
    """the nearest existing ancestor is checked where it resolves to."""
    worker_dir = base / "www"
    (worker_dir / "sub").mkdir(parents=True)
    os.chmod(str(worker_dir), 0o777)
    os.symlink(str(worker_dir / "sub"), str(base / "link"))
    root = base / "link" / "lua"
    result = run_module(sealed_tree, {"path": str(root)})
    assert not os.path.exists(str(worker_dir / "sub" / "lua")), "the root was created"
    assert result["failed"] and str(worker_dir) in result["msg"]


@needs_root
def test_checked_refuses_a_directory_the_worker_can_write_by_name(base, run_module):
    """a library root like /var/lib/nginx is refused, nothing changes."""
    library = base / "var-lib-nginx"
    library.mkdir()
    os.chown(str(library), 33, 33)
    result = run_module(sealed_tree, {"path": [str(library)], "state": "checked",
                                      "label": "server_lua_library_roots"})
    assert result["failed"]
    assert result["msg"].startswith("server_lua_library_roots: %r is writable by" % str(library))
    assert "owned by uid 33" in result["msg"]
    assert owner_mode(library)[:2] == (33, 33), "checked changed the directory"


def test_checked_looks_below_and_above(base, run_module):
    library = base / "lib" / "lua"
    (library / "resty").mkdir(parents=True)
    (library / "resty" / "core.lua").write_text("return {}")
    for path in (base / "lib", library, library / "resty"):
        os.chmod(str(path), 0o755)
    os.chmod(str(library / "resty" / "core.lua"), 0o644)
    args = {"path": [str(library)], "state": "checked", "label": "server_lua_library_roots"}
    assert run_module(sealed_tree, args) == {"changed": False, "failed": False, "fixed": [], "created": [],
                                             "installed": [], "linked": [], "root_files": [], "missing": []}

    os.chmod(str(library / "resty" / "core.lua"), 0o666)
    result = run_module(sealed_tree, args)
    assert result["failed"] and str(library / "resty" / "core.lua") in result["msg"]
    os.chmod(str(library / "resty" / "core.lua"), 0o644)

    os.chmod(str(base / "lib"), 0o777)
    result = run_module(sealed_tree, args)
    assert result["failed"] and str(base / "lib") in result["msg"]
    assert result["msg"].startswith("server_lua_library_roots: ")
    os.chmod(str(base / "lib"), 0o755)

    missing = {"path": [str(base / "lib" / "nothing")], "state": "checked"}
    assert run_module(sealed_tree, missing)["missing"] == [str(base / "lib" / "nothing")]


@writes_into_sealed
def test_a_link_out_of_the_root_is_removed_and_shown(base, run_module):
    """before, the link was only lchowned and a rerun said changed=false."""
    root = base / "lib"
    root.mkdir()
    outside = base / "outside.lua"
    outside.write_text("return {}")
    os.symlink(str(outside), str(root / "escape.lua"))
    os.chmod(str(root), 0o555)
    preview = run_module(sealed_tree, {"path": str(root)}, check_mode=True, diff=True)
    assert preview["changed"] and os.path.lexists(str(root / "escape.lua"))
    assert "%s absent\n" % (root / "escape.lua") in preview["diff"]["after"]
    result = run_module(sealed_tree, {"path": str(root)})
    assert [(f["path"], f["action"]) for f in result["fixed"]] == [(str(root / "escape.lua"), "remove")]
    assert not os.path.lexists(str(root / "escape.lua"))
    assert outside.read_text() == "return {}"
    assert run_module(sealed_tree, {"path": str(root)})["changed"] is False


@writes_into_sealed
def test_files_are_shipped_sealed_and_only_when_they_differ(base, run_module):
    root = base / "lib"
    args = {"path": [str(root)], "files": {"helper.lua": "return 1\n"}}
    preview = run_module(sealed_tree, args, check_mode=True)
    assert preview["installed"] == [str(root / "helper.lua")] and not root.exists()
    result = run_module(sealed_tree, args)
    assert result["changed"] and result["installed"] == [str(root / "helper.lua")]
    assert (root / "helper.lua").read_text() == "return 1\n"
    assert owner_mode(root / "helper.lua") == OWNER + ("0444",)
    again = run_module(sealed_tree, args)
    assert again["changed"] is False and again["installed"] == []

    inode = os.stat(str(root / "helper.lua")).st_ino
    changed = run_module(sealed_tree, dict(args, files={"helper.lua": "return 2\n"}))
    assert changed["installed"] == [str(root / "helper.lua")]
    assert (root / "helper.lua").read_text() == "return 2\n"
    # A fresh file renamed over the old one: a handle on the old inode cannot write into it.
    assert os.stat(str(root / "helper.lua")).st_ino != inode


@writes_into_sealed
def test_a_shipped_file_replaced_by_a_link_is_written_as_a_file_not_through_the_link(base, run_module):
    root = base / "lib"
    run_module(sealed_tree, {"path": [str(root)]})
    outside = base / "outside.txt"
    outside.write_text("keep")
    os.chmod(str(root), 0o755)
    os.symlink(str(outside), str(root / "helper.lua"))
    os.chmod(str(root), 0o555)
    result = run_module(sealed_tree, {"path": [str(root)], "files": {"helper.lua": "return 1\n"}})
    assert result["installed"] == [str(root / "helper.lua")]
    assert outside.read_text() == "keep"
    assert not os.path.islink(str(root / "helper.lua"))
    assert (root / "helper.lua").read_text() == "return 1\n"


def test_a_file_name_with_a_slash_is_refused(base, run_module):
    result = run_module(sealed_tree, {"path": [str(base / "lib")], "files": {"../evil.lua": "x"}})
    assert result["failed"] and "not a plain file name" in result["msg"]
    assert not (base / "evil.lua").exists()


@writes_into_sealed
def test_a_missing_link_gets_a_sealed_target_and_an_existing_one_is_kept(base, run_module):
    app = base / "app"
    args = {"path": [str(app), str(app / "releases")],
            "links": {str(app / "current"): "releases/initial"}}
    preview = run_module(sealed_tree, args, check_mode=True)
    assert preview["linked"] == [str(app / "current")] and not app.exists()
    result = run_module(sealed_tree, args)
    assert result["linked"] == [str(app / "current")]
    assert os.readlink(str(app / "current")) == "releases/initial"
    assert owner_mode(app / "releases" / "initial") == OWNER + ("0555",)
    assert os.lstat(str(app / "current")).st_uid == 0
    assert run_module(sealed_tree, args)["changed"] is False

    os.chmod(str(app), 0o755)
    os.unlink(str(app / "current"))
    os.symlink("releases/v2", str(app / "current"))
    os.chmod(str(app), 0o555)
    kept = run_module(sealed_tree, args)
    assert kept["linked"] == [] and os.readlink(str(app / "current")) == "releases/v2"


def test_a_link_outside_the_paths_is_refused(base, run_module):
    result = run_module(sealed_tree, {"path": [str(base / "app")],
                                      "links": {str(base / "other" / "current"): "x"}})
    assert result["failed"]
    assert "not directly inside one of the paths" in result["msg"]


def test_checks_name_their_own_variable_and_run_before_anything_changes(base, run_module):
    """one task refuses the roots of several variables, each by its name, in order."""
    library = base / "lib"
    library.mkdir()
    os.chmod(str(library), 0o755)
    modules = base / "open" / "lua"
    modules.mkdir(parents=True)
    os.chmod(str(modules), 0o755)
    to_seal = base / "seal-me"
    to_seal.mkdir()
    os.chmod(str(to_seal), 0o777)
    checks = [{"path": [str(library)], "label": "server_lua_library_roots"},
              {"path": [str(modules)], "label": "server_lua_module_roots", "state": "sealed"},
              {"path": [str(base / "app")], "label": "server_lua_app_roots", "state": "sealed"}]
    assert run_module(sealed_tree, {"checks": checks}) == {
        "changed": False, "failed": False, "fixed": [], "created": [], "installed": [], "linked": [],
        "root_files": [], "missing": []}
    assert not os.path.exists(str(base / "app")), "a check created a root"

    # A writable parent of the module roots: refused by that variable's name, nothing sealed.
    os.chmod(str(base / "open"), 0o777)
    result = run_module(sealed_tree, {"checks": checks, "path": [str(to_seal)]})
    assert result["failed"]
    assert result["msg"].startswith("server_lua_module_roots: %r is not sealed while" % str(modules))
    assert owner_mode(to_seal) == OWNER + ("0777",), "a failed check let the seal run"
    os.chmod(str(base / "open"), 0o755)

    # The first failing check is the one reported: the library root, by its name.
    os.chmod(str(library), 0o777)
    os.chmod(str(base / "open"), 0o777)
    result = run_module(sealed_tree, {"checks": checks, "path": [str(to_seal)]})
    assert result["failed"] and result["msg"].startswith("server_lua_library_roots: %r is writable by" % str(library))
    os.chmod(str(library), 0o755)
    os.chmod(str(base / "open"), 0o755)

    # A fifo in a release root: what sealing refuses, refused by the check.
    app = base / "app"
    app.mkdir()
    os.mkfifo(str(app / "pipe"))
    result = run_module(sealed_tree, {"checks": checks})
    assert result["failed"] and result["msg"].startswith("server_lua_app_roots: %r contains entries" % str(app))
    os.unlink(str(app / "pipe"))

    # All checks pass: the seal runs, and a missing checked path is reported.
    checks[0]["path"].append(str(base / "nothing"))
    result = run_module(sealed_tree, {"checks": checks, "path": [str(to_seal)]})
    assert result["changed"] and owner_mode(to_seal) == OWNER + ("0555",)
    assert result["missing"] == [str(base / "nothing")]


def test_neither_path_nor_checks_is_refused(run_module):
    result = run_module(sealed_tree, {})
    assert result["failed"] and "path" in result["msg"] and "checks" in result["msg"]


@pytest.fixture
def top(base, monkeypatch):
    """The walk to each root file starts at `base` (the module's starts at /)."""
    monkeypatch.setattr(sealed_tree, "_TOP", str(base))
    return base


def test_root_files_report_each_change_and_settle(top, run_module):
    dropin = top / "systemd" / "nginx.service.d" / "hardened-openresty.conf"
    fact = top / "ansible" / "facts.d" / "hardened_openresty.fact"
    args = {"root_files": [{"path": str(dropin), "content": "[Service]\nNoNewPrivileges=yes\n"},
                           {"path": str(fact), "content": '{\n    "flavor": "debian"\n}\n'}]}

    preview = run_module(sealed_tree, args, check_mode=True, diff=True)
    assert preview["changed"] and [e["changed"] for e in preview["root_files"]] == [True, True]
    assert preview["root_files"][0]["created"] == [str(top / "systemd"), str(dropin.parent)]
    assert os.listdir(str(top)) == [], "check mode wrote something"
    assert [d["after_header"] for d in preview["diff"]] == [str(dropin), str(fact)]
    assert preview["diff"][1]["before"] == "" and preview["diff"][1]["after"] == args["root_files"][1]["content"]

    result = run_module(sealed_tree, args)
    assert [(e["path"], e["state"], e["changed"]) for e in result["root_files"]] == [
        (str(dropin), "present", True), (str(fact), "present", True)]
    assert fact.read_text() == '{\n    "flavor": "debian"\n}\n'
    assert owner_mode(dropin) == OWNER + ("0644",) and owner_mode(dropin.parent) == OWNER + ("0755",)
    assert run_module(sealed_tree, args)["changed"] is False

    # Only the fact differs: only its entry says so (the drop-in's restart hangs on its own).
    args["root_files"][1]["content"] = '{\n    "flavor": "none"\n}\n'
    result = run_module(sealed_tree, args, diff=True)
    assert result["changed"] and [e["changed"] for e in result["root_files"]] == [False, True]
    assert '"debian"' in result["diff"]["before"] and '"none"' in result["diff"]["after"]


def test_root_file_absent_is_removed_and_a_refusal_changes_nothing(top, run_module):
    dropin = top / "unit.d" / "sandbox.conf"
    run_module(sealed_tree, {"root_files": [{"path": str(dropin), "content": "a\n"}]})
    off = {"root_files": [{"path": str(dropin), "state": "absent"}]}
    result = run_module(sealed_tree, off)
    assert result["changed"] and result["root_files"][0]["changed"] and not dropin.exists()
    assert run_module(sealed_tree, off)["changed"] is False

    # The second file's way goes through a link: nothing is placed or sealed, the first
    # file included.
    (top / "real").mkdir()
    os.symlink("real", str(top / "linked"))
    result = run_module(sealed_tree, {"path": [str(top / "lua")], "root_files": [
        {"path": str(dropin), "content": "a\n"},
        {"path": str(top / "linked" / "facts.d" / "x.fact"), "content": "{}\n"}]})
    assert result["failed"] and result["msg"].startswith("root_files: %s: " % (top / "linked" / "facts.d" / "x.fact"))
    assert not dropin.exists() and not (top / "lua").exists() and os.listdir(str(top / "real")) == []


@pytest.mark.parametrize("args, message", [
    ({"root_files": [{"path": "/etc/x.conf", "content": ""}], "path": "/srv/lua", "state": "checked"},
     "root_files: state=checked changes nothing"),
    ({"root_files": [{"path": "/etc/x.conf", "content": ""}, {"path": "/etc//x.conf", "state": "absent"}]},
     "root_files: '/etc/x.conf' must be an absolute path, given once"),
    ({"root_files": [{"path": "/etc/x.conf"}]}, "state is present but all of the following are missing: content"),
    ({"root_files": [{"path": "/etc/x.conf", "content": ""}], "files": {"a.lua": ""}},
     "path: files and links go into the paths, and no path is given"),
])
def test_root_file_mistakes_are_refused_before_anything(args, message, run_module):
    result = run_module(sealed_tree, args)
    assert result["failed"] and message in result["msg"]
