from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import io
import os
import signal
import stat
import subprocess
import tarfile
import time

import pytest

from ansible_collections.hardened.openresty.plugins.module_utils import lua_release as lr


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def source(tmp_path):
    src = tmp_path / "src"
    write(src / "app.lua", "return {}\n")
    write(src / "lib" / "init.lua", "return 1\n")
    return src


@pytest.fixture
def root(tmp_path):
    base = tmp_path / "app"
    (base / "releases").mkdir(parents=True)
    return base


def fake_run(luajit_output="", luacheck_output="", calls=None):
    """A run() that answers like luajit / luacheck without running them."""

    def run(argv, data=None, cwd=None):
        if calls is not None:
            calls.append((argv, data, cwd))
        if argv[0].endswith("luajit"):
            return (1 if luajit_output else 0), luajit_output, ""
        return (1 if luacheck_output else 0), luacheck_output, ""
    return run


def no_seal(path):
    return []


# --- digest and sources -------------------------------------------------------------------

def test_digest_matches_sha256sum_of_sorted_files(source):
    scanned = lr.scan_source(str(source))
    assert scanned["problems"] == []
    lines = "".join("%s  %s\n" % (hashlib.sha256((source / p).read_bytes()).hexdigest(), p)
                    for p in sorted(["app.lua", "lib/init.lua"]))
    assert scanned["digest"] == hashlib.sha256(lines.encode()).hexdigest()
    assert [f["path"] for f in scanned["files"]] == ["app.lua", "lib/init.lua"]


def test_digest_changes_with_content_and_with_names(source):
    before = lr.scan_source(str(source))["digest"]
    (source / "app.lua").write_text("return { changed = true }\n")
    changed = lr.scan_source(str(source))["digest"]
    os.rename(str(source / "app.lua"), str(source / "main.lua"))
    renamed = lr.scan_source(str(source))["digest"]
    assert len({before, changed, renamed}) == 3


def test_symlink_inside_the_tree_is_read_through(source):
    os.symlink("app.lua", str(source / "alias.lua"))
    scanned = lr.scan_source(str(source))
    assert scanned["problems"] == []
    by_path = dict((f["path"], f["sha256"]) for f in scanned["files"])
    assert by_path["alias.lua"] == by_path["app.lua"]


@pytest.mark.parametrize("make,expected", [
    (lambda src, tmp: os.symlink(str(tmp / "outside.lua"), str(src / "escape.lua")), "points outside the tree"),
    (lambda src, tmp: os.symlink("../outside.lua", str(src / "escape.lua")), "points outside the tree"),
    (lambda src, tmp: os.symlink("missing.lua", str(src / "broken.lua")), "broken symlink"),
    (lambda src, tmp: os.symlink("lib", str(src / "linked")), "not a regular file"),
    (lambda src, tmp: os.mkfifo(str(src / "pipe")), "not a regular file"),
    (lambda src, tmp: write(src / "hardened_release.lua", "return 1"), "reserved"),
])
def test_bad_entries_are_problems(source, tmp_path, make, expected):
    write(tmp_path / "outside.lua", "return 1")
    make(source, tmp_path)
    scanned = lr.scan_source(str(source))
    assert scanned["digest"] is None
    assert any(expected in p for p in scanned["problems"]), scanned["problems"]


@pytest.mark.parametrize("value,expected", [
    ("", "is not set"),
    ("relative/app", "not an absolute path"),
    ("/nonexistent/app", "does not exist"),
])
def test_unusable_source_paths(value, expected):
    assert expected in lr.scan_source(value)["problems"][0]


def test_empty_directory_is_refused(tmp_path):
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    assert lr.scan_source(str(tmp_path / "empty"))["problems"] == ["contains no files"]


def make_tar(path, members):
    with tarfile.open(str(path), "w:gz") as archive:
        for name, data in members:
            info = tarfile.TarInfo(name)
            if data is None:
                info.type = tarfile.SYMTYPE
                info.linkname = "/etc/passwd"
                archive.addfile(info)
            else:
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
    return path


def test_archive_digest_equals_the_directory_digest(source, tmp_path):
    archive = make_tar(tmp_path / "app.tgz", [("./app.lua", b"return {}\n"), ("lib/init.lua", b"return 1\n")])
    assert lr.scan_source(str(archive))["digest"] == lr.scan_source(str(source))["digest"]


def test_source_content_round_trips_to_the_same_digest(source, tmp_path):
    content = lr.source_content(str(source), 1024)
    assert sorted(content) == ["app.lua", "lib/init.lua"]
    written = tmp_path / "written"
    written.mkdir(mode=0o700)
    lr.write_source(content, str(written))
    assert lr.scan_source(str(written))["digest"] == lr.scan_source(str(source))["digest"]
    assert oct(os.stat(str(written / "lib")).st_mode & 0o777) == "0o700"
    assert oct(os.stat(str(written / "app.lua")).st_mode & 0o777) == "0o600"


def test_source_content_is_none_for_a_large_source_an_archive_or_a_refused_one(source, tmp_path):
    size = sum(f["size"] for f in lr.scan_source(str(source))["files"])
    assert lr.source_content(str(source), size) is not None
    assert lr.source_content(str(source), size - 1) is None
    assert lr.source_content(str(source), 0) is None
    archive = make_tar(tmp_path / "app.tgz", [("app.lua", b"return {}\n")])
    assert lr.source_content(str(archive), 1024) is None
    os.symlink("/etc/passwd", str(source / "out.lua"))
    assert lr.source_content(str(source), 1 << 20) is None


@pytest.mark.parametrize("content, expected", [
    ({"a/b.lua": "eA==", "a": "eA=="}, "'a': is a file and a directory at once"),
    ({"./a.lua": "eA=="}, "'./a.lua': a relative path"),
    ({"a.lua": "not base64!"}, "'a.lua': the content is not base64"),
    ({"": "eA=="}, "'': a relative path"),
])
def test_content_problems(content, expected):
    assert expected in "; ".join(lr.content_problems(content))


def test_write_source_never_writes_through_an_existing_link(tmp_path):
    top = tmp_path / "top"
    top.mkdir(mode=0o700)
    target = tmp_path / "target.lua"
    target.write_text("kept\n")
    os.symlink(str(target), str(top / "app.lua"))
    with pytest.raises(OSError):
        lr.write_source({"app.lua": "eA=="}, str(top))
    assert target.read_text() == "kept\n"


@pytest.mark.parametrize("members,expected", [
    ([("../evil.lua", b"x")], "'..' are not allowed"),
    ([("/etc/evil.lua", b"x")], "absolute paths"),
    ([("link.lua", None)], "not a regular file"),
])
def test_bad_archives_are_refused(tmp_path, members, expected):
    archive = make_tar(tmp_path / "bad.tar.gz", members)
    problems = lr.scan_source(str(archive))["problems"]
    assert any(expected in p for p in problems), problems


@pytest.mark.parametrize("value,ok", [
    ("2.4.1", True), ("v1_rc-2", True), ("0123456789ab", True),
    ("../x", False), ("a/b", False), ("..", False), (".hidden", False), ("a..b", False), ("", False),
    ("x" * 65, False), ("a b", False),
])
def test_release_ids(value, ok):
    assert (lr.release_id_errors(value) == []) is ok


# --- pre-flight output parsing --------------------------------------------------------------

def test_luajit_messages_name_file_and_line():
    problems = lr.problems_from_luajit("greeting/init.lua:5: unexpected symbol near 'end'\n")
    assert problems == [{"file": "greeting/init.lua", "line": 5, "column": None, "code": None,
                         "message": "unexpected symbol near 'end'", "tool": "luajit"}]
    assert lr.format_problem(problems[0]) == "greeting/init.lua:5: unexpected symbol near 'end' (luajit)"


def test_luacheck_messages_keep_the_code():
    out = ("app.lua:4:2: (W111) setting non-standard global variable 'foo'\n"
           "bad.lua:2:2: (E011) expected expression near 'return'\n\nTotal: 1 warning / 1 error in 2 files\n")
    problems = lr.problems_from_luacheck(out)
    assert [(p["file"], p["line"], p["column"], p["code"]) for p in problems] == [
        ("app.lua", 4, 2, "W111"), ("bad.lua", 2, 2, "E011")]
    assert "(luacheck W111)" in lr.format_problem(problems[0])


def test_preflight_stops_at_the_compiler():
    calls = []
    run = fake_run(luajit_output="a.lua:1: unexpected symbol\n", luacheck_output="never", calls=calls)
    problems = lr.preflight("/d", ["a.lua"], run, "/usr/bin/luajit", "/usr/bin/luacheck", "/cfg")
    assert [p["tool"] for p in problems] == ["luajit"]
    assert len(calls) == 1 and calls[0][1] == "a.lua" and calls[0][2] == "/d"


def test_preflight_lints_with_the_given_config():
    calls = []
    lr.preflight("/d", ["a.lua", "b.lua"], fake_run(calls=calls), "/usr/bin/luajit", "/usr/bin/luacheck", "/cfg")
    argv = calls[1][0]
    assert argv[argv.index("--config") + 1] == "/cfg"
    assert argv[-3:] == ["--", "a.lua", "b.lua"]


def test_compile_script_reports_every_broken_file(tmp_path):
    """The script passed to luajit -e, run by a real Lua when one is installed."""
    lua = next((p for p in ("/usr/bin/luajit", "/usr/bin/lua5.1", "/usr/bin/lua") if os.path.exists(p)), None)
    if not lua:
        pytest.skip("no Lua interpreter on this machine")
    write(tmp_path / "good.lua", "return 1\n")
    write(tmp_path / "bad.lua", "local x =\nreturn x\n")
    write(tmp_path / "worse.lua", "end\n")
    result = subprocess.run([lua, "-e", lr.LUAJIT_CHECK], input="good.lua\nbad.lua\nworse.lua\n",
                            cwd=str(tmp_path), capture_output=True, text=True, check=False)
    assert result.returncode == 1
    assert [p["file"] for p in lr.problems_from_luajit(result.stdout)] == ["bad.lua", "worse.lua"]


# --- build, switch, prune ---------------------------------------------------------------

def test_build_names_a_checked_release(root, source):
    digest = lr.scan_source(str(source))["digest"]
    calls = []
    result = lr.build(str(root), "r1", digest, str(source), fake_run(calls=calls), "luajit", "luacheck", "/cfg",
                      seal=no_seal)
    assert result["problems"] == []
    release = root / "releases" / "r1"
    assert (release / "lib" / "init.lua").read_text() == "return 1\n"
    assert 'local _M = { id = "r1" }' in (release / "hardened_release.lua").read_text()
    assert calls[0][1].split("\n") == ["app.lua", "hardened_release.lua", "lib/init.lua"]
    assert lr.inspect(str(root), "r1", digest)["matches"]
    assert os.listdir(str(root / "releases")) == ["r1"]


def test_refused_build_leaves_nothing_behind(root, source):
    digest = lr.scan_source(str(source))["digest"]
    result = lr.build(str(root), "r1", digest, str(source),
                      fake_run(luajit_output="lib/init.lua:1: unexpected symbol near 'x'\n"), "luajit", seal=no_seal)
    assert [(p["file"], p["line"]) for p in result["problems"]] == [("lib/init.lua", 1)]
    assert os.listdir(str(root / "releases")) == []


def test_build_refuses_an_upload_that_does_not_match(root, source):
    digest = lr.scan_source(str(source))["digest"]
    (source / "app.lua").write_text("return 'tampered'\n")
    with pytest.raises(lr.ReleaseError, match="not .* as on the controller"):
        lr.build(str(root), "r1", digest, str(source), fake_run(), "luajit", seal=no_seal)
    assert os.listdir(str(root / "releases")) == []


def test_built_release_is_sealed(root, source, owner):
    from ansible_collections.hardened.openresty.plugins.module_utils.sealed_tree import find_deviations, seal
    digest = lr.scan_source(str(source))["digest"]
    lr.build(str(root), "r1", digest, str(source), fake_run(), "luajit", seal=lambda path: seal(path, owner=owner))
    release = root / "releases" / "r1"
    assert find_deviations(str(release), owner) == []
    assert stat.S_IMODE(os.stat(str(release / "app.lua")).st_mode) == 0o444


def test_inspect_detects_a_file_changed_in_place(root, source):
    digest = lr.scan_source(str(source))["digest"]
    lr.build(str(root), "r1", digest, str(source), fake_run(), "luajit", seal=no_seal)
    path = root / "releases" / "r1" / "app.lua"
    path.write_text("return 'patched in place'\n")
    assert lr.inspect(str(root), "r1", digest) == dict(lr.inspect(str(root), "r1", digest), exists=True, matches=False)


def add_release(root, name, age):
    path = root / "releases" / name
    path.mkdir()
    write(path / "app.lua", "return '%s'\n" % name)
    os.utime(str(path), (1000000 + age, 1000000 + age))


def test_switch_moves_current_and_previous_atomically(root):
    add_release(root, "a", 1)
    add_release(root, "b", 2)
    first = lr.switch(str(root), "a")
    assert first["changed"] and first["before"] == {"current": None, "previous": None}
    second = lr.switch(str(root), "b")
    assert second["after"] == {"current": "b", "previous": "a"}
    assert os.readlink(str(root / "current")) == "releases/b"
    assert os.readlink(str(root / "previous")) == "releases/a"
    assert lr.switch(str(root), "b")["changed"] is False
    assert sorted(os.listdir(str(root))) == ["current", "previous", "releases"], "no temporary links left"


def test_switch_can_restore_a_recorded_state(root):
    for age, name in enumerate(["a", "b", "c"]):
        add_release(root, name, age)
    lr.switch(str(root), "a")
    lr.switch(str(root), "b")
    recorded = lr.switch(str(root), "c")["before"]
    restored = lr.switch(str(root), recorded["current"], previous=recorded["previous"])
    assert restored["after"] == {"current": "b", "previous": "a"}
    lr.switch(str(root), "b", previous="")
    assert not os.path.lexists(str(root / "previous"))


def test_switch_check_mode_changes_nothing(root):
    add_release(root, "a", 1)
    lr.switch(str(root), "a")
    result = lr.switch(str(root), "not-built-yet", check_mode=True)
    assert result["changed"] and result["after"]["current"] == "not-built-yet"
    assert os.readlink(str(root / "current")) == "releases/a"


def test_switch_refuses_a_missing_release_and_a_foreign_current(root, tmp_path):
    with pytest.raises(lr.ReleaseError, match="not on this host"):
        lr.switch(str(root), "ghost")
    os.symlink(str(tmp_path), str(root / "current"))
    add_release(root, "a", 1)
    with pytest.raises(lr.ReleaseError, match="not at releases/<id>"):
        lr.switch(str(root), "a")


def test_prune_keeps_the_newest_and_never_current_or_previous(root):
    for age, name in enumerate(["oldest", "old", "mid", "new", "newest"]):
        add_release(root, name, age)
    lr.switch(str(root), "oldest")
    lr.switch(str(root), "old")
    # Making a release current counts as using it: put both back to their old times.
    os.utime(str(root / "releases" / "oldest"), (1000000, 1000000))
    os.utime(str(root / "releases" / "old"), (1000001, 1000001))
    (root / "releases" / ".partial-x-1").mkdir()
    removed = lr.prune(str(root), 3)
    # Three kept: current and previous although they are the oldest, then the newest.
    assert removed == ["new", "mid", ".partial-x-1"]
    assert sorted(os.listdir(str(root / "releases"))) == ["newest", "old", "oldest"]


def test_prune_check_mode_and_minimum(root):
    for age, name in enumerate(["a", "b", "c"]):
        add_release(root, name, age)
    assert lr.prune(str(root), 2, check_mode=True) == ["a"]
    assert sorted(os.listdir(str(root / "releases"))) == ["a", "b", "c"]
    with pytest.raises(lr.ReleaseError, match="at least 2"):
        lr.prune(str(root), 1)


# --- concurrent deploys ----------------------------------------------

def _in_child(fn):
    """Run fn() in a forked process; return its pid. The child's exit code says ok (0)."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            fn()
            code = 0
        finally:
            os._exit(code)
    return pid


def _exit_code(pid, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.WEXITSTATUS(status) if os.WIFEXITED(status) else -1
        time.sleep(0.01)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    raise AssertionError("child %d did not finish in %ds" % (pid, timeout))


def _signalling_run(started, release_after):
    """A run() for preflight that says it started (a file) and waits for a go (a file)."""
    def run(argv, data=None, cwd=None):
        open(started, "w").close()
        deadline = time.monotonic() + 10
        while not os.path.exists(release_after) and time.monotonic() < deadline:
            time.sleep(0.01)
        return 0, "", ""
    return run


def _wait_for(path, timeout=10):
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        assert time.monotonic() < deadline, "%s never appeared" % path
        time.sleep(0.01)


def test_a_prune_in_another_process_spares_a_live_build(root, source, tmp_path):
    """A prune while another run builds: before, it deleted the build's partial directory."""
    digest = lr.scan_source(str(source))["digest"]
    started, go = str(tmp_path / "started"), str(tmp_path / "go")
    builder = _in_child(lambda: lr.build(str(root), "r1", digest, str(source), _signalling_run(started, go),
                                         "luajit", seal=no_seal))
    _wait_for(started)
    pruner = _in_child(lambda: lr.prune(str(root), 2))
    assert _exit_code(pruner) == 0
    open(go, "w").close()
    assert _exit_code(builder) == 0, "the build failed: its partial directory was removed under it"
    assert lr.inspect(str(root), "r1", digest)["matches"]


def test_an_abandoned_partial_is_pruned(root):
    (root / "releases" / ".partial-x-999999").mkdir()
    assert lr.prune(str(root), 2) == [".partial-x-999999"]


def test_a_tree_changed_during_the_build_is_not_published(root, source):
    """The digest of the built tree is checked again right before the rename."""
    digest = lr.scan_source(str(source))["digest"]

    def tampering_run(argv, data=None, cwd=None):
        with open(os.path.join(cwd, "app.lua"), "w") as handle:
            handle.write("os.execute('id')\n")
        return 0, "", ""
    with pytest.raises(lr.ReleaseError, match="changed while it was built"):
        lr.build(str(root), "r1", digest, str(source), tampering_run, "luajit", seal=no_seal)
    assert os.listdir(str(root / "releases")) == []


def test_a_second_deploy_waits_for_the_lock_then_fails_clearly(root, tmp_path):
    held, done = str(tmp_path / "held"), str(tmp_path / "done")

    def hold():
        with lr.deploy_lock(str(root), timeout=5):
            open(held, "w").close()
            _wait_for(done)
    holder = _in_child(hold)
    _wait_for(held)
    began = time.monotonic()
    with pytest.raises(lr.ReleaseError, match=r"another deploy .* holds the lock .*waited 0\.3s"):
        with lr.deploy_lock(str(root), timeout=0.3):
            pass
    assert time.monotonic() - began >= 0.3
    open(done, "w").close()
    assert _exit_code(holder) == 0
    with lr.deploy_lock(str(root), timeout=5):
        lock = os.lstat(str(root / lr.LOCK_FILE))
        assert (lock.st_uid, stat.S_IMODE(lock.st_mode)) == (os.geteuid(), 0o444)


def test_two_deploys_in_processes_never_overlap(root, tmp_path):
    log = str(tmp_path / "log")

    def deploy(name):
        def run():
            with lr.deploy_lock(str(root), timeout=10):
                with open(log, "a") as handle:
                    handle.write("%s in\n" % name)
                time.sleep(0.2)
                with open(log, "a") as handle:
                    handle.write("%s out\n" % name)
        return run
    pids = [_in_child(deploy(n)) for n in ("a", "b", "c")]
    assert [_exit_code(p) for p in pids] == [0, 0, 0]
    lines = open(log).read().split("\n")[:-1]
    assert all(lines[i].split()[0] == lines[i + 1].split()[0] and lines[i].endswith("in")
               for i in range(0, len(lines), 2)), lines


def test_a_lock_file_that_is_a_link_is_refused(root, tmp_path):
    os.symlink(str(tmp_path / "elsewhere"), str(root / lr.LOCK_FILE))
    with pytest.raises(lr.ReleaseError, match="lock"):
        with lr.deploy_lock(str(root), timeout=1):
            pass
    assert not os.path.exists(str(tmp_path / "elsewhere"))
