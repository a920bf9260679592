from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import stat
import subprocess
import sys

import pytest

from ansible_collections.hardened.openresty.plugins.module_utils import staged_config
from ansible_collections.hardened.openresty.plugins.module_utils.staged_config import ConfigError

ME = (os.getuid(), os.getgid())

# A stand-in for `nginx -t -c FILE`: it follows `include` the way nginx does (relative
# paths against the directory of FILE, globs skip dotfiles, the kernel follows symlinks) and
# rejects any file that contains the word BROKEN, naming the file and line as nginx would.
# With FAKE_NGINX_OPENED set, it appends the path of every file it opens to that file.
FAKE_NGINX = r'''
import glob, os, re, sys
assert sys.argv[1:3] == ["-t", "-c"], sys.argv
main = sys.argv[3]
prefix = os.path.dirname(main)
OPENED = os.environ.get("FAKE_NGINX_OPENED")

def record(path):
    if OPENED:
        with open(OPENED, "a") as log:
            log.write(path + "\n")

def fail(msg):
    sys.stderr.write("nginx: [emerg] %s\nnginx: configuration file %s test failed\n" % (msg, main))
    sys.exit(1)

def check(path):
    record(path)
    if not os.path.isfile(path):
        fail('open() "%s" failed (2: No such file or directory)' % path)
    with open(path) as handle:
        for number, line in enumerate(handle, 1):
            if "BROKEN" in line:
                fail('unknown directive "BROKEN" in %s:%d' % (path, number))
            include = re.match(r"\s*include\s+(\S+);", line)
            if include:
                pattern = include.group(1)
                if not os.path.isabs(pattern):
                    pattern = os.path.join(prefix, pattern)
                found = sorted(glob.glob(pattern))
                if not found and not glob.has_magic(pattern):
                    fail('open() "%s" failed (2: No such file or directory) in %s:%d' % (pattern, path, number))
                for name in found:
                    check(name)

check(main)
sys.stderr.write("nginx: configuration file %s test is successful\n" % main)
'''


@pytest.fixture
def nginx(tmp_path):
    path = tmp_path / "bin" / "nginx"
    path.parent.mkdir()
    path.write_text("#!%s\n%s" % (sys.executable, FAKE_NGINX))
    os.chmod(str(path), 0o755)
    return str(path)


def run(argv):
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
    out, err = proc.communicate()
    return proc.returncode, out, err


@pytest.fixture
def live(tmp_path):
    """A configuration directory laid out like Debian's /etc/nginx."""
    conf = tmp_path / "etc" / "nginx"
    for sub in ("conf.d", "sites-available", "sites-enabled", "snippets"):
        (conf / sub).mkdir(parents=True)
    (conf / "nginx.conf").write_text(
        "events {}\nhttp {\n    include snippets/lua.conf;\n"
        "    include %s/conf.d/*.conf;\n    include %s/sites-enabled/*;\n}\n" % (conf, conf))
    (conf / "snippets" / "lua.conf").write_text("lua_socket_read_timeout 2s;\n")
    (conf / "conf.d" / "a.conf").write_text("# a\n")
    (conf / "sites-available" / "default").write_text("server { listen 80; }\n")
    os.symlink(str(conf / "sites-available" / "default"), str(conf / "sites-enabled" / "default"))
    for path in (conf / "nginx.conf", conf / "snippets" / "lua.conf", conf / "conf.d" / "a.conf"):
        os.chmod(str(path), 0o644)
    return str(conf)


def read(path):
    with open(path) as handle:
        return handle.read()


def snapshot(root):
    """Every path under root with its content (or link target) and mode."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                found[path] = ("link", os.readlink(path))
            elif stat.S_ISREG(st.st_mode):
                found[path] = (read(path), stat.S_IMODE(st.st_mode))
            else:
                found[path] = ("dir", stat.S_IMODE(st.st_mode))
    return found


def staged_test(live, nginx, changes, tmp_path):
    workdir = tmp_path / "work"
    workdir.mkdir(parents=True)
    root = staged_config.stage(live, changes, str(workdir))
    return staged_config.run_staged_test(run, nginx, root, "nginx.conf", live)


# --- paths -------------------------------------------------------------------------------

@pytest.mark.parametrize("path,expected", [
    ("nginx.conf", "nginx.conf"),
    ("conf.d//x.conf", "conf.d/x.conf"),
    ("/etc/nginx/conf.d/x.conf", "conf.d/x.conf"),
])
def test_relative_path_accepts_paths_in_the_directory(path, expected):
    assert staged_config.relative_path("/etc/nginx", path) == expected


@pytest.mark.parametrize("path", ["../passwd", "conf.d/../../x", "/etc/nginx2/x.conf", "/etc/passwd", "/etc/nginx", ""])
def test_relative_path_refuses_paths_outside(path):
    with pytest.raises(ConfigError):
        staged_config.relative_path("/etc/nginx", path)


# --- plan --------------------------------------------------------------------------------

def test_plan_reports_nothing_when_files_match(live):
    files = [{"path": "snippets/lua.conf", "content": "lua_socket_read_timeout 2s;\n", "mode": 0o644}]
    assert staged_config.plan(live, files, owner=ME) == []


def test_plan_reports_content_mode_owner_new_and_removed(live):
    files = [
        {"path": "snippets/lua.conf", "content": "lua_socket_read_timeout 3s;\n", "mode": 0o640},
        {"path": "conf.d/a.conf", "content": "# a\n", "mode": 0o644},
        {"path": "conf.d/new.conf", "content": "# new\n"},
        {"path": "sites-enabled/default", "state": "absent"},
        {"path": "conf.d/never-existed.conf", "state": "absent"},
    ]
    changes = {c["path"]: c for c in staged_config.plan(live, files, owner=(ME[0] + 1, ME[1]))}
    assert sorted(changes) == ["conf.d/a.conf", "conf.d/new.conf", "sites-enabled/default", "snippets/lua.conf"]
    assert changes["snippets/lua.conf"]["reasons"][:2] == ["content", "mode 0644 -> 0640"]
    assert changes["conf.d/a.conf"]["reasons"] == ["owner %d:%d -> %d:%d" % (ME[0], ME[1], ME[0] + 1, ME[1])]
    assert changes["conf.d/new.conf"]["reasons"] == ["created"]
    assert changes["conf.d/new.conf"]["mode"] == 0o644
    assert changes["sites-enabled/default"]["before_link"].endswith("sites-available/default")


@pytest.mark.parametrize("files,message", [
    ([{"path": "sites-enabled/default", "content": "x"}], "is a symlink"),
    ([{"path": "nginx.conf", "state": "absent"}], "cannot be removed"),
    ([{"path": "a.conf", "content": "x"}, {"path": "./a.conf", "content": "y"}], "listed twice"),
    ([{"path": "a.conf"}], "no content"),
    ([{"path": "../a.conf", "content": "x"}], "'..'"),
])
def test_plan_refuses_unsafe_requests(live, files, message):
    with pytest.raises(ConfigError, match=message):
        staged_config.plan(live, files, owner=ME)


def test_plan_refuses_a_path_that_leaves_through_a_symlinked_directory(live, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(str(outside), os.path.join(live, "escape"))
    with pytest.raises(ConfigError, match="through a symlink"):
        staged_config.plan(live, [{"path": "escape/x.conf", "content": "x"}], owner=ME)


def test_diff_shows_before_and_after(live):
    changes = staged_config.plan(live, [
        {"path": "snippets/lua.conf", "content": "lua_socket_read_timeout 3s;\n", "mode": 0o644},
        {"path": "conf.d/new.conf", "content": "# new\n", "mode": 0o644},
    ], owner=ME)
    entries = staged_config.diff(live, changes)
    assert entries[0]["before"] == "lua_socket_read_timeout 2s;\n"
    assert entries[0]["after"] == "lua_socket_read_timeout 3s;\n"
    assert entries[1]["before_header"].endswith("new.conf (absent)")


# --- staged test -------------------------------------------------------------------------

def test_staged_test_passes_and_leaves_the_live_directory_alone(live, nginx, tmp_path):
    before = snapshot(live)
    changes = staged_config.plan(live, [{"path": "snippets/lua.conf", "content": "lua_socket_read_timeout 3s;\n"}])
    ok, output = staged_test(live, nginx, changes, tmp_path)
    assert ok, output
    assert output == "nginx: configuration file %s/nginx.conf test is successful" % live
    assert snapshot(live) == before


def test_broken_file_reached_by_a_relative_include_is_caught_and_named_by_its_live_path(live, nginx, tmp_path):
    changes = staged_config.plan(live, [{"path": "snippets/lua.conf", "content": "ok;\nBROKEN;\n"}])
    ok, output = staged_test(live, nginx, changes, tmp_path)
    assert not ok
    assert 'unknown directive "BROKEN" in %s/snippets/lua.conf:2' % live in output
    assert str(tmp_path / "work") not in output


def test_broken_file_reached_by_an_absolute_include_of_the_live_directory_is_caught(live, nginx, tmp_path):
    # Without pointing the absolute include at the copy, nginx would read the live file.
    changes = staged_config.plan(live, [{"path": "conf.d/a.conf", "content": "BROKEN;\n"}])
    ok, output = staged_test(live, nginx, changes, tmp_path)
    assert not ok
    assert "%s/conf.d/a.conf:1" % live in output


def test_broken_file_reached_through_an_absolute_symlink_is_caught(live, nginx, tmp_path):
    changes = staged_config.plan(live, [{"path": "sites-available/default", "content": "BROKEN;\n"}])
    ok, output = staged_test(live, nginx, changes, tmp_path)
    assert not ok
    assert "%s/sites-enabled/default:1" % live in output


def test_new_included_file_is_part_of_the_test(live, nginx, tmp_path):
    main = read(os.path.join(live, "nginx.conf")).replace("http {\n", "http {\n    include extra/hardening.conf;\n")
    missing = staged_config.plan(live, [{"path": "nginx.conf", "content": main}])
    with pytest.raises(ConfigError, match="cannot read .*%s/extra/hardening.conf" % live):
        staged_test(live, nginx, missing, tmp_path)

    both = staged_config.plan(live, [{"path": "nginx.conf", "content": main},
                                     {"path": "extra/hardening.conf", "content": "lua_code_cache on;\n"}])
    ok, output = staged_test(live, nginx, both, tmp_path / "w2")
    assert ok, output


def test_removed_file_is_removed_in_the_copy(live, nginx, tmp_path):
    os.remove(os.path.join(live, "sites-available", "default"))
    with open(os.path.join(live, "sites-available", "default"), "w") as handle:
        handle.write("BROKEN;\n")
    changes = staged_config.plan(live, [{"path": "sites-enabled/default", "state": "absent"}])
    ok, output = staged_test(live, nginx, changes, tmp_path)
    assert ok, output


def test_symlinks_pointing_outside_keep_their_target_and_inside_point_at_the_copy(live, tmp_path):
    shared = tmp_path / "usr" / "share" / "nginx"
    shared.mkdir(parents=True)
    (shared / "mod.conf").write_text("# module\n")
    os.symlink(os.path.relpath(str(shared / "mod.conf"), os.path.join(live, "conf.d")),
               os.path.join(live, "conf.d", "relative-out.conf"))
    os.symlink("../sites-available/default", os.path.join(live, "conf.d", "relative-in.conf"))
    (tmp_path / "work").mkdir()
    root = staged_config.stage(live, [], str(tmp_path / "work"))
    assert read(os.path.join(root, "conf.d", "relative-out.conf")) == "# module\n"
    assert os.path.realpath(os.path.join(root, "conf.d", "relative-in.conf")) == os.path.join(
        os.path.realpath(root), "sites-available", "default")
    assert os.path.realpath(os.path.join(root, "sites-enabled", "default")).startswith(root)


def test_only_whole_path_components_are_rewritten(live, tmp_path):
    with open(os.path.join(live, "conf.d", "paths.conf"), "w") as handle:
        handle.write("a %s/x;\nb %s2/y;\nc \"%s\";\n" % (live, live, live))
    (tmp_path / "work").mkdir()
    root = staged_config.stage(live, [], str(tmp_path / "work"))
    assert read(os.path.join(root, "conf.d", "paths.conf")) == "a %s/x;\nb %s2/y;\nc \"%s\";\n" % (root, live, root)


# --- nothing live is read during the staged test ----------------------

def opened_files(tmp_path, monkeypatch):
    log = tmp_path / "opened.log"
    monkeypatch.setenv("FAKE_NGINX_OPENED", str(log))
    return lambda: read(str(log)).split() if log.exists() else []


def under(path, root):
    path, root = os.path.realpath(path), os.path.realpath(root)
    return path == root or path.startswith(root + "/")


def use_include(live, spelling):
    main = read(os.path.join(live, "nginx.conf"))
    main = main.replace("include %s/conf.d/*.conf;" % live, "include %s;" % spelling)
    with open(os.path.join(live, "nginx.conf"), "w") as handle:
        handle.write(main)


@pytest.mark.parametrize("spelling", [
    "{etc}//nginx/conf.d/*.conf",
    "{etc}/./nginx/conf.d/*.conf",
    "{etc}/nginx/../nginx//conf.d/*.conf",
    "{tmp}/srv/nginx-link/conf.d/*.conf",
    "{tmp}/srv/conf.d-link/*.conf",
    "{etc}/nginx/conf.d/../conf.d/a.conf",
])
def test_an_include_of_the_conf_dir_under_any_spelling_reads_the_staged_file(
        live, nginx, tmp_path, monkeypatch, spelling):
    (tmp_path / "srv").mkdir()
    os.symlink(live, str(tmp_path / "srv" / "nginx-link"))
    os.symlink(os.path.join(live, "conf.d"), str(tmp_path / "srv" / "conf.d-link"))
    use_include(live, spelling.format(etc=str(tmp_path / "etc"), tmp=str(tmp_path)))
    opened = opened_files(tmp_path, monkeypatch)
    changes = staged_config.plan(live, [{"path": "conf.d/a.conf", "content": "BROKEN;\n"}])
    ok, output = staged_test(live, nginx, changes, tmp_path)
    assert not ok, "nginx -t read the live conf.d/a.conf instead of the staged one: %s" % output
    assert "%s/conf.d/a.conf:1" % live in output
    assert opened() and [p for p in opened() if under(p, live)] == []


def test_a_symlink_in_the_conf_dir_spelled_oddly_points_at_the_copy(live, nginx, tmp_path, monkeypatch):
    os.remove(os.path.join(live, "sites-enabled", "default"))
    os.symlink(str(tmp_path / "etc") + "//nginx/./sites-available/default", os.path.join(live, "sites-enabled", "default"))
    opened = opened_files(tmp_path, monkeypatch)
    changes = staged_config.plan(live, [{"path": "sites-available/default", "content": "BROKEN;\n"}])
    ok, output = staged_test(live, nginx, changes, tmp_path)
    assert not ok and "%s/sites-enabled/default:1" % live in output
    assert [p for p in opened() if under(p, live)] == []


def test_an_include_outside_that_leads_into_the_conf_dir_is_refused(live, nginx, tmp_path, monkeypatch):
    site = tmp_path / "srv" / "site"
    site.mkdir(parents=True)
    os.symlink(os.path.join(live, "conf.d", "a.conf"), str(site / "a.conf"))
    use_include(live, str(site) + "/*.conf")
    opened = opened_files(tmp_path, monkeypatch)
    changes = staged_config.plan(live, [{"path": "conf.d/a.conf", "content": "BROKEN;\n"}])
    with pytest.raises(ConfigError) as caught:
        staged_test(live, nginx, changes, tmp_path)
    message = str(caught.value)
    assert "%s/nginx.conf:4" % live in message and str(site / "a.conf") in message
    assert "cannot stage" in message
    assert opened() == [], "nginx -t must not run"


def test_an_include_outside_the_conf_dir_that_stays_outside_is_read_as_it_is(live, nginx, tmp_path, monkeypatch):
    shared = tmp_path / "usr" / "share" / "nginx" / "modules-available"
    shared.mkdir(parents=True)
    (shared / "mod.conf").write_text("# module\n")
    use_include(live, str(shared) + "/*.conf")
    opened = opened_files(tmp_path, monkeypatch)
    changes = staged_config.plan(live, [{"path": "conf.d/a.conf", "content": "# b\n"}])
    ok, output = staged_test(live, nginx, changes, tmp_path)
    assert ok, output
    assert str(shared / "mod.conf") in opened()
    assert [p for p in opened() if under(p, live)] == []


# --- install and restore -----------------------------------------------------------------

def install(live, files, tmp_path):
    changes = staged_config.plan(live, files, owner=ME)
    backup_dir = staged_config.new_backup_dir(str(tmp_path / "backups"))
    return changes, backup_dir, staged_config.install(live, changes, backup_dir, owner=ME)


def test_install_replaces_files_and_records_backups(live, tmp_path):
    before = snapshot(live)
    changes, backup_dir, backups = install(live, [
        {"path": "snippets/lua.conf", "content": "lua_socket_read_timeout 3s;\n", "mode": 0o640},
        {"path": "extra/new.conf", "content": "# new\n", "mode": 0o644},
        {"path": "sites-enabled/default", "state": "absent"},
    ], tmp_path)
    assert read(os.path.join(live, "snippets/lua.conf")) == "lua_socket_read_timeout 3s;\n"
    assert stat.S_IMODE(os.stat(os.path.join(live, "snippets/lua.conf")).st_mode) == 0o640
    assert stat.S_IMODE(os.stat(os.path.join(live, "extra")).st_mode) == 0o755
    assert not os.path.lexists(os.path.join(live, "sites-enabled/default"))
    by_path = {b["path"]: b["backup"] for b in backups}
    assert by_path[os.path.join(live, "extra/new.conf")] is None
    assert read(by_path[os.path.join(live, "snippets/lua.conf")]) == "lua_socket_read_timeout 2s;\n"
    assert [n for n in os.listdir(os.path.join(live, "snippets")) if n.startswith(".")] == []

    restored = staged_config.restore(live, backup_dir, check_mode=True)
    assert sorted(restored) == ["extra/new.conf", "sites-enabled/default", "snippets/lua.conf"]
    assert read(os.path.join(live, "snippets/lua.conf")) == "lua_socket_read_timeout 3s;\n", "check mode changed files"

    restored = staged_config.restore(live, backup_dir)
    assert sorted(restored) == ["extra", "extra/new.conf", "sites-enabled/default", "snippets/lua.conf"]
    assert snapshot(live) == before
    assert staged_config.restore(live, backup_dir) == []


def test_install_that_fails_half_way_puts_back_what_it_changed(live, tmp_path):
    with open(os.path.join(live, "blocker"), "w") as handle:
        handle.write("a file where a directory is needed\n")
    before = snapshot(live)
    changes = staged_config.plan(live, [
        {"path": "snippets/lua.conf", "content": "changed;\n"},
        {"path": "blocker/x.conf", "content": "x;\n"},
    ], owner=ME)
    backup_dir = staged_config.new_backup_dir(str(tmp_path / "backups"))
    with pytest.raises(OSError):
        staged_config.install(live, changes, backup_dir, owner=ME)
    assert snapshot(live) == before


def test_restore_refuses_a_directory_without_manifest(live, tmp_path):
    with pytest.raises(ConfigError, match="not a configuration backup"):
        staged_config.restore(live, str(tmp_path))


def test_restore_refuses_a_manifest_that_points_outside(live, tmp_path):
    backup_dir = staged_config.new_backup_dir(str(tmp_path / "backups"))
    with open(os.path.join(backup_dir, "manifest.json"), "w") as handle:
        handle.write('{"conf_dir": "%s", "files": [{"path": "../../evil", "backup": null}]}' % live)
    with pytest.raises(ConfigError, match="'..'"):
        staged_config.restore(live, backup_dir)


def test_prune_backups_keeps_the_newest(tmp_path):
    root = tmp_path / "backups"
    made = []
    for dummy in range(4):
        path = staged_config.new_backup_dir(str(root))
        with open(os.path.join(path, "manifest.json"), "w") as handle:
            handle.write("{}")
        made.append(path)
    (root / "unrelated").mkdir()
    removed = staged_config.prune_backups(str(root), 2, current=made[-1])
    assert removed == made[:2]
    assert sorted(os.listdir(str(root))) == sorted([os.path.basename(p) for p in made[2:]] + ["unrelated"])
    assert staged_config.prune_backups(str(root), 0) == []


def test_a_failed_restore_puts_back_what_it_can_and_names_every_state(live, tmp_path, monkeypatch):
    changes, backup_dir, dummy = install(live, [
        {"path": "snippets/lua.conf", "content": "lua_socket_read_timeout 3s;\n", "mode": 0o644},
        {"path": "conf.d/a.conf", "content": "# b\n", "mode": 0o644},
        {"path": "conf.d/new.conf", "content": "# new\n", "mode": 0o644},
    ], tmp_path)
    real_write = staged_config.write_atomic

    def disk_full(path, data, mode, owner=None):
        if path.endswith("snippets/lua.conf"):
            raise OSError(28, "No space left on device")
        return real_write(path, data, mode, owner)

    monkeypatch.setattr(staged_config, "write_atomic", disk_full)
    with pytest.raises(staged_config.RestoreError) as caught:
        staged_config.restore(live, backup_dir, changes=changes)
    message = str(caught.value)
    assert "snippets/lua.conf: [Errno 28] No space left on device" in message
    assert "%s/snippets/lua.conf: new version" % live in message
    assert "%s/conf.d/a.conf: previous version" % live in message
    assert "%s/conf.d/new.conf: previous version (absent)" % live in message
    assert "restored" not in message.replace("restoring", "")
    assert read(os.path.join(live, "conf.d/a.conf")) == "# a\n", "the other files were put back"
    assert os.path.isfile(os.path.join(backup_dir, "files", "snippets", "lua.conf")), "the backup is kept"


KILLED = r"""
import os, signal, sys
from ansible_collections.hardened.openresty.plugins.module_utils import staged_config
live, backups, after = sys.argv[1], sys.argv[2], int(sys.argv[3])
real_write = staged_config.write_atomic
written = []
def write_then_die(path, data, mode, owner=None):
    real_write(path, data, mode, owner)
    if not path.startswith(live + "/"):
        return  # the manifest and the journal
    written.append(path)
    if len(written) == after:
        os.kill(os.getpid(), signal.SIGKILL)
staged_config.write_atomic = write_then_die
files = [{"path": "snippets/lua.conf", "content": "lua_socket_read_timeout 3s;\n"},
         {"path": "conf.d/a.conf", "content": "# b\n"},
         {"path": "extra/new.conf", "content": "# new\n"}]
staged_config.install(live, staged_config.plan(live, files, owner=None), staged_config.new_backup_dir(backups),
                      owner=None)
"""


@pytest.mark.parametrize("after", [1, 2, 3])
def test_an_install_killed_half_way_is_rolled_back_by_the_next_run(live, tmp_path, after):
    before = snapshot(live)
    backups = str(tmp_path / "backups")
    proc = subprocess.Popen([sys.executable, "-c", KILLED, live, backups, str(after)],
                            env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
    assert proc.wait() == -9
    assert snapshot(live) != before, "the kill left a changed tree"
    assert len(staged_config.interrupted_installs(backups)) == 1
    assert staged_config.recover_interrupted(backups, check_mode=True)[0]["restored"]
    assert snapshot(live) != before, "check mode changed nothing"
    recovered = staged_config.recover_interrupted(backups)
    assert len(recovered) == 1 and recovered[0]["conf_dir"] == live
    assert snapshot(live) == before
    assert staged_config.interrupted_installs(backups) == []
    assert staged_config.recover_interrupted(backups) == []


def test_a_finished_install_leaves_no_journal(live, tmp_path):
    dummy, backup_dir, dummy = install(live, [{"path": "conf.d/a.conf", "content": "# b\n"}], tmp_path)
    assert sorted(os.listdir(backup_dir)) == ["files", "manifest.json"]
    assert staged_config.interrupted_installs(str(tmp_path / "backups")) == []


def test_a_second_run_waits_for_the_lock_then_fails_clearly(tmp_path):
    root = str(tmp_path / "backups")
    with staged_config.backup_lock(root):
        with pytest.raises(ConfigError, match="another nginx_config run holds"):
            with staged_config.backup_lock(root, timeout=0.2):
                pass
    with staged_config.backup_lock(root, timeout=0.2):
        pass


# --- code that runs during nginx -t ------------------------------------

def gate(live, tmp_path, own=(), prefix="/usr/share/nginx", module_dir=None):
    workdir = tmp_path / "gate"
    workdir.mkdir()
    root = staged_config.stage(live, [], str(workdir))
    config = staged_config.load_staged(root, "nginx.conf", live)
    return staged_config.code_loading_refusals(config, root, live, own, prefix, module_dir)


def add_main(live, text):
    with open(os.path.join(live, "nginx.conf")) as handle:
        main = handle.read()
    with open(os.path.join(live, "nginx.conf"), "w") as handle:
        handle.write(text + main)


@pytest.mark.parametrize("line", [
    "load_module /tmp/evil.so;",
    "ssl_engine evil;",
    "perl_modules /tmp/perl;",
    "perl_require evil.pm;",
    "js_import /tmp/evil.js;",
    "js_path /tmp/njs;",
    "ssl_certificate_key engine:evil:key;",
    "proxy_ssl_certificate_key engine:evil:key;",
])
def test_code_loading_directives_in_a_snippet_are_refused_with_file_and_line(live, tmp_path, line):
    with open(os.path.join(live, "conf.d", "snippet.conf"), "w") as handle:
        handle.write("# snippet\n%s\n" % line)
    found = gate(live, tmp_path)
    assert found == ["%s in %s/conf.d/snippet.conf:2" % (
        line.split()[0] + (" engine:" if "engine:" in line else ""), live)]


@pytest.mark.parametrize("line", [
    "# load_module /tmp/evil.so;",
    "ssl_certificate_key /etc/ssl/private/key.pem;",
    "js_set $x y;",
    "set $load_module /tmp/evil.so;",
    "lua_package_path \"/opt/lua/?.lua\";",
])
def test_look_alikes_are_not_refused(live, tmp_path, line):
    with open(os.path.join(live, "conf.d", "snippet.conf"), "w") as handle:
        handle.write("%s\n" % line)
    assert gate(live, tmp_path) == []


def test_a_managed_file_may_load_code(live, tmp_path):
    with open(os.path.join(live, "conf.d", "a.conf"), "w") as handle:
        handle.write("load_module /opt/mods/x.so;\nssl_engine pkcs11;\n")
    assert len(gate(live, tmp_path)) == 2
    (tmp_path / "t2").mkdir()
    assert gate(live, tmp_path / "t2", own=["conf.d/a.conf"]) == []


def test_the_distribution_modules_enabled_may_load_from_the_module_dir_only(live, tmp_path):
    modules = tmp_path / "usr" / "lib" / "nginx" / "modules"
    modules.mkdir(parents=True)
    (modules / "ngx_http_lua_module.so").write_text("")
    share = tmp_path / "usr" / "share" / "nginx"
    share.mkdir(parents=True)
    os.symlink(str(modules), str(share / "modules"))
    available = share / "modules-available"
    available.mkdir()
    (available / "mod-http-lua.conf").write_text("load_module modules/ngx_http_lua_module.so;\n")
    (available / "mod-evil.conf").write_text("load_module /tmp/evil.so;\n")
    os.mkdir(os.path.join(live, "modules-enabled"))
    os.symlink(str(available / "mod-http-lua.conf"), os.path.join(live, "modules-enabled", "50-mod-http-lua.conf"))
    add_main(live, "include %s/modules-enabled/*.conf;\n" % live)
    assert gate(live, tmp_path, prefix=str(share), module_dir=str(modules)) == []

    os.symlink(str(available / "mod-evil.conf"), os.path.join(live, "modules-enabled", "60-mod-evil.conf"))
    (tmp_path / "t2").mkdir()
    assert gate(live, tmp_path / "t2", prefix=str(share), module_dir=str(modules)) == [
        "load_module in %s/modules-enabled/60-mod-evil.conf:1" % live]
    with open(os.path.join(live, "conf.d", "a.conf"), "w") as handle:
        handle.write("load_module %s/ngx_http_lua_module.so;\n" % modules)
    (tmp_path / "t3").mkdir()
    found = gate(live, tmp_path / "t3", prefix=str(share), module_dir=str(modules))
    assert "load_module in %s/conf.d/a.conf:1" % live in found


def test_validate_change_refuses_before_it_runs_anything(live, tmp_path):
    with open(os.path.join(live, "conf.d", "snippet.conf"), "w") as handle:
        handle.write("load_module /tmp/evil.so;\n")
    ran = []
    changes = staged_config.plan(live, [{"path": "conf.d/a.conf", "content": "# b\n"}])
    with pytest.raises(ConfigError, match="load_module in %s/conf.d/snippet.conf:1" % live):
        staged_config.validate_change(live, changes, str(tmp_path), ran.append, "nginx",
                                      own=["conf.d/a.conf"])
    assert ran == []


def test_validate_change_in_check_mode_reports_the_test_without_running_it(live, tmp_path):
    ran = []
    changes = staged_config.plan(live, [{"path": "conf.d/a.conf", "content": "# b\n"}])
    test = staged_config.validate_change(live, changes, str(tmp_path), ran.append, "nginx",
                                         own=["conf.d/a.conf"], run_test=False)
    assert ran == [] and test["ran"] is False and test["ok"] is True
    assert "would run: nginx -t -c %s/nginx.conf" % live in test["output"]
