from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import shutil
import stat
import subprocess
import sys

import pytest

from ansible_collections.hardened.openresty.plugins.module_utils import staged_config
from ansible_collections.hardened.openresty.plugins.modules import nginx_config


@pytest.fixture(autouse=True)
def install_as(owner, monkeypatch):
    """The module installs root:root; run by another user, these tests install as that user."""
    monkeypatch.setattr(nginx_config, "OWNER", owner)
    return owner


# `nginx -V` and `nginx -t -c FILE` stand-in: fails, naming the file, when any file in FILE's directory
# contains BROKEN; succeeds otherwise. Like nginx -t, it loads every load_module it finds (dlopen), and
# with FAKE_NGINX_CALLS set it logs its arguments there. It creates the pid and error_log files of the main
# file, as nginx -t does.
FAKE_NGINX = r'''
import ctypes, os, re, sys
if os.environ.get("FAKE_NGINX_CALLS"):
    with open(os.environ["FAKE_NGINX_CALLS"], "a") as log:
        log.write(" ".join(sys.argv[1:]) + "\n")
if sys.argv[1] == "-V":
    sys.stderr.write("nginx version: nginx/1.22.1\nconfigure arguments: --prefix=/usr/share/nginx\n")
    sys.exit(0)
main = sys.argv[3]
for path in re.findall(r"^\s*(?:pid|error_log)\s+(\S+);", open(main).read(), re.M):
    open(path, "a").close()  # nginx -t creates the pid file and opens the logs
for dirpath, dirnames, filenames in os.walk(os.path.dirname(main)):
    for name in sorted(filenames):
        path = os.path.join(dirpath, name)
        text = open(path).read()
        for module in re.findall(r"^\s*load_module\s+(\S+);", text, re.M):
            ctypes.CDLL(module)  # as nginx -t does: the module's constructors run now
        if "BROKEN" in text:
            sys.stderr.write('nginx: [emerg] unknown directive "BROKEN" in %s:1\n' % path)
            sys.exit(1)
sys.stderr.write("nginx: configuration file %s test is successful\n" % main)
'''


@pytest.fixture
def setup(tmp_path):
    binary = tmp_path / "nginx"
    binary.write_text("#!%s\n%s" % (sys.executable, FAKE_NGINX))
    os.chmod(str(binary), 0o755)
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "nginx.conf").write_text("events {}\nhttp { include lua.conf; }\n")
    (conf / "lua.conf").write_text("lua_socket_read_timeout 2s;\n")
    for path in (conf / "nginx.conf", conf / "lua.conf"):
        os.chmod(str(path), 0o644)
    base = {"binary": str(binary), "conf_dir": str(conf), "backup_root": str(tmp_path / "backups")}
    return base, conf


def read(path):
    with open(str(path)) as handle:
        return handle.read()


def backups_made(base):
    """Backup directories under backup_root (the run's lock file is not one)."""
    root = base["backup_root"]
    return [n for n in os.listdir(root) if not n.startswith(".")] if os.path.isdir(root) else []


def test_changes_are_tested_installed_and_can_be_restored(setup, run_module, install_as):
    base, conf = setup
    files = [{"path": "lua.conf", "content": "lua_socket_read_timeout 3s;\n", "mode": "0640"},
             {"path": str(conf / "new.conf"), "content": "# new\n"}]
    result = run_module(nginx_config, dict(base, files=files), diff=True)
    assert not result["failed"], result["msg"]
    assert result["changed"] is True
    assert result["changed_files"] == [str(conf / "lua.conf"), str(conf / "new.conf")]
    assert "test is successful" in result["nginx_test_output"]
    assert str(conf) + "/nginx.conf" in result["nginx_test_output"], "staging paths are shown as live paths"
    assert result["diff"][0]["before"] == "lua_socket_read_timeout 2s;\n"
    assert read(conf / "lua.conf") == "lua_socket_read_timeout 3s;\n"
    st = os.stat(str(conf / "lua.conf"))
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o640,) + install_as
    assert {b["path"]: b["backup"] is None for b in result["backups"]} == {
        str(conf / "lua.conf"): False, str(conf / "new.conf"): True}

    again = run_module(nginx_config, dict(base, files=files))
    assert again["changed"] is False and again["backup_dir"] is None

    restored = run_module(nginx_config, {"binary": base["binary"], "restore_from": result["backup_dir"],
                                         "backup_root": base["backup_root"]})
    assert not restored["failed"], restored["msg"]
    assert restored["changed"] is True
    assert read(conf / "lua.conf") == "lua_socket_read_timeout 2s;\n"
    assert not os.path.exists(str(conf / "new.conf"))


def test_rejected_config_leaves_the_live_directory_untouched(setup, run_module):
    base, conf = setup
    result = run_module(nginx_config, dict(base, files=[{"path": "lua.conf", "content": "BROKEN;\n"}]))
    assert result["failed"]
    assert 'unknown directive "BROKEN" in %s:1' % (conf / "lua.conf") in result["msg"]
    assert read(conf / "lua.conf") == "lua_socket_read_timeout 2s;\n"
    assert result["backup_dir"] is None


def test_check_mode_reports_but_writes_nothing(setup, run_module):
    base, conf = setup
    ok = run_module(nginx_config, dict(base, files=[{"path": "lua.conf", "content": "x;\n"}]), check_mode=True)
    assert ok["changed"] is True and "not run in check mode" in ok["nginx_test_output"]
    bad = run_module(nginx_config, dict(base, files=[{"path": "lua.conf", "content": "x {\n"}]), check_mode=True)
    assert bad["failed"] and "%s" % (conf / "lua.conf") in bad["msg"], "what the parser sees is still checked"
    assert read(conf / "lua.conf") == "lua_socket_read_timeout 2s;\n"
    assert backups_made(base) == []


@pytest.mark.parametrize("spec,message", [
    ({"path": "lua.conf", "content": "x", "mode": "rw-r--r--"}, "not an octal mode"),
    ({"path": "lua.conf"}, "no content"),
    ({"path": "../escape.conf", "content": "x"}, "'..'"),
])
def test_bad_file_specs_are_refused(setup, run_module, spec, message):
    base, conf = setup
    result = run_module(nginx_config, dict(base, files=[spec]))
    assert result["failed"] and message in result["msg"]


def test_integer_mode_is_taken_as_is(setup, run_module):
    base, conf = setup
    result = run_module(nginx_config, dict(base, files=[{"path": "lua.conf", "content": "x;\n", "mode": 0o600}]))
    assert not result["failed"], result["msg"]
    assert stat.S_IMODE(os.stat(str(conf / "lua.conf")).st_mode) == 0o600


HARDENED = ('lua_package_path "/opt/lua/?.lua";\nlua_package_cpath "/opt/lib/?.so";\n'
            "lua_code_cache on;\nlua_socket_connect_timeout 2s;\nlua_socket_send_timeout 2s;\n"
            "lua_socket_read_timeout 2s;\nlua_socket_keepalive_timeout 60s;\n"
            "lua_regex_match_limit 10000;\nlua_regex_cache_max_entries 512;\n")


def test_lua_policy_passes_a_hardened_tree_and_installs(setup, run_module):
    base, conf = setup
    result = run_module(nginx_config, dict(base, lua_fail_on="high",
                                           files=[{"path": "lua.conf", "content": HARDENED}]))
    assert not result["failed"], result["msg"]
    assert result["changed"] is True and result["lua_findings"] == []
    assert read(conf / "lua.conf") == HARDENED


def test_lua_policy_refuses_a_weakened_change_and_changes_nothing(setup, run_module):
    base, conf = setup
    weak = HARDENED.replace('"/opt/lua/?.lua"', '"/opt/lua/?.lua;;"')
    result = run_module(nginx_config, dict(base, lua_fail_on="high", files=[{"path": "lua.conf", "content": weak}]))
    assert result["failed"]
    assert "lua-package-path-default-fallback [high] %s:1" % (conf / "lua.conf") in result["msg"]
    assert "nothing was changed" in result["msg"]
    assert [f["file"] for f in result["lua_findings"]] == [str(conf / "lua.conf")], "live paths, not staged ones"
    assert read(conf / "lua.conf") == "lua_socket_read_timeout 2s;\n"
    assert backups_made(base) == []


def test_lua_policy_refuses_an_unmanaged_file_even_when_nothing_changes(setup, run_module):
    base, conf = setup
    (conf / "nginx.conf").write_text("events {}\nhttp { include lua.conf; include conf.d/*.conf; }\n")
    (conf / "conf.d").mkdir()
    (conf / "conf.d" / "debug.conf").write_text("server {\n  listen 81;\n  lua_code_cache off;\n}\n")
    files = [{"path": "lua.conf", "content": HARDENED}]
    first = run_module(nginx_config, dict(base, lua_fail_on="high", files=files))
    assert first["failed"] and "lua-code-cache-off [high] %s:3" % (conf / "conf.d" / "debug.conf") in first["msg"]
    assert read(conf / "lua.conf") == "lua_socket_read_timeout 2s;\n"
    without_policy = run_module(nginx_config, dict(base, files=files))
    assert not without_policy["failed"] and without_policy["changed"]
    again = run_module(nginx_config, dict(base, lua_fail_on="high", files=files))
    assert again["failed"] and again["changed"] is False
    assert "lua-code-cache-off" in again["msg"]


def test_lua_policy_threshold_and_overrides(setup, run_module):
    base, conf = setup
    slow = HARDENED.replace("lua_socket_read_timeout 2s", "lua_socket_read_timeout 8s")
    files = [{"path": "lua.conf", "content": slow}]
    strict = run_module(nginx_config, dict(base, lua_fail_on="low", lua_policy={"socket_read_timeout_max": "5s"},
                                           files=files), check_mode=True)
    assert strict["failed"] and "lua-socket-timeout-too-long" in strict["msg"]
    bad = run_module(nginx_config, dict(base, lua_fail_on="low", lua_policy={"socket_read_timeout_max": "abc"},
                                        files=files), check_mode=True)
    assert bad["failed"] and bad["msg"].startswith("lua_policy:")


# --- an untrusted snippet cannot run code during the test ----------------

MARKER_SO = r"""
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>
__attribute__((constructor)) static void loaded(void) {
    const char *path = getenv("MARKER_PATH");
    if (path) { int fd = open(path, O_CREAT | O_WRONLY, 0644); if (fd >= 0) close(fd); }
}
"""


@pytest.fixture
def marker_module(tmp_path, monkeypatch):
    """(path of a shared object that creates a marker file when loaded, marker path)."""
    if not shutil.which("gcc"):
        pytest.skip("gcc is needed to build the shared object")
    source = tmp_path / "marker.c"
    source.write_text(MARKER_SO)
    module = tmp_path / "modules" / "ngx_marker_module.so"
    module.parent.mkdir()
    subprocess.check_call(["gcc", "-shared", "-fPIC", "-o", str(module), str(source)])
    marker = tmp_path / "marker"
    monkeypatch.setenv("MARKER_PATH", str(marker))
    return str(module), marker


def calls(tmp_path, monkeypatch):
    log = tmp_path / "calls.log"
    monkeypatch.setenv("FAKE_NGINX_CALLS", str(log))
    return lambda: read(log).splitlines() if log.exists() else []


def test_control_the_marker_module_runs_code_when_loaded(marker_module):
    module, marker = marker_module
    subprocess.check_call([sys.executable, "-c", "import ctypes, sys; ctypes.CDLL(sys.argv[1])", module])
    assert marker.exists()


def test_a_snippet_that_loads_a_module_is_refused_before_nginx_runs(setup, run_module, marker_module, tmp_path,
                                                                    monkeypatch):
    base, conf = setup
    module, marker = marker_module
    (conf / "nginx.conf").write_text("include conf.d/*.conf;\nevents {}\nhttp { include lua.conf; }\n")
    (conf / "conf.d").mkdir()
    (conf / "conf.d" / "ingress.conf").write_text("# an operator's snippet\nload_module %s;\n" % module)
    ran = calls(tmp_path, monkeypatch)
    result = run_module(nginx_config, dict(base, files=[{"path": "lua.conf", "content": "x;\n"}]))
    assert result["failed"]
    assert "load_module in %s:2" % (conf / "conf.d" / "ingress.conf") in result["msg"]
    assert not marker.exists(), "the module's code ran"
    assert [c for c in ran() if c.startswith("-t")] == [], "nginx -t ran on the snippet"
    assert read(conf / "lua.conf") == "lua_socket_read_timeout 2s;\n"


def test_the_same_module_in_a_file_this_task_manages_is_tested(setup, run_module, marker_module, tmp_path,
                                                               monkeypatch):
    base, conf = setup
    module, marker = marker_module
    main = "load_module %s;\nevents {}\nhttp { include lua.conf; }\n" % module
    ran = calls(tmp_path, monkeypatch)
    result = run_module(nginx_config, dict(base, files=[{"path": "nginx.conf", "content": main}]))
    assert not result["failed"], result["msg"]
    assert [c for c in ran() if c.startswith("-t")], "nginx -t ran"
    assert marker.exists(), "the control: the stand-in loads modules as nginx -t does"


# --- a failed restore does not claim success ------------------------------

def test_a_restore_that_fails_says_which_file_is_in_which_state_and_keeps_the_backup(
        setup, run_module, monkeypatch):
    base, conf = setup
    real_write = staged_config.write_atomic

    def disk_full(path, data, mode, owner=None):
        if data in (b"y;\n", b"lua_socket_read_timeout 2s;\n"):  # the second file, then the restore
            raise OSError(28, "No space left on device")
        return real_write(path, data, mode, owner)

    monkeypatch.setattr(staged_config, "write_atomic", disk_full)
    result = run_module(nginx_config, dict(base, files=[{"path": "lua.conf", "content": "x;\n"},
                                                        {"path": "new.conf", "content": "y;\n"}]))
    assert result["failed"]
    assert "were restored" not in result["msg"]
    assert "No space left on device" in result["msg"]
    assert "%s: new version" % (conf / "lua.conf") in result["msg"]
    assert result["backup_dir"] and result["backup_dir"] in result["msg"]
    assert read(os.path.join(result["backup_dir"], "files", "lua.conf")) == "lua_socket_read_timeout 2s;\n"


# --- an install killed half way is rolled back by the next run ---------------

KILLED_INSTALL = r"""
import os, signal, sys
from ansible_collections.hardened.openresty.plugins.module_utils import staged_config
conf, backups = sys.argv[1:3]
owner = tuple(int(n) for n in sys.argv[3].split(":"))
real_write = staged_config.write_atomic
def write_then_die(path, data, mode, owner=None):
    real_write(path, data, mode, owner)
    if not path.endswith("manifest.json") and not path.endswith("journal.json"):
        os.kill(os.getpid(), signal.SIGKILL)  # killed after the first file, like an async timeout
staged_config.write_atomic = write_then_die
changes = staged_config.plan(conf, [{"path": "lua.conf", "content": "new 1;\n"},
                                    {"path": "nginx.conf", "content": "events {}\nhttp { include lua.conf; }\n# new 2\n"}],
                             owner=owner)
staged_config.install(conf, changes, staged_config.new_backup_dir(backups), owner=owner)
"""


def kill_an_install(conf, backups, owner):
    proc = subprocess.Popen([sys.executable, "-c", KILLED_INSTALL, str(conf), backups, "%d:%d" % owner], env=dict(
        os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
    assert proc.wait() == -9
    assert read(conf / "lua.conf") == "new 1;\n" and "# new 2" not in read(conf / "nginx.conf"), "half installed"


def test_the_next_run_rolls_back_an_install_killed_half_way_before_it_tests(setup, run_module, install_as):
    base, conf = setup
    before = {name: read(conf / name) for name in ("nginx.conf", "lua.conf")}
    kill_an_install(conf, base["backup_root"], install_as)
    result = run_module(nginx_config, dict(base, files=[{"path": "lua.conf", "content": "BROKEN;\n"}]))
    assert result["failed"] and "BROKEN" in result["msg"]
    assert {name: read(conf / name) for name in ("nginx.conf", "lua.conf")} == before, "the tree is mixed"
    assert len(result["recovered"]) == 1 and result["recovered"][0]["restored"]
    again = run_module(nginx_config, dict(base, files=[{"path": "lua.conf", "content": "y;\n"}]))
    assert not again["failed"], again["msg"]
    assert again["recovered"] == []


# --- check mode changes nothing on the host ----------------------------

def test_check_mode_leaves_conf_log_and_pid_byte_identical(setup, run_module, tmp_path, monkeypatch):
    base, conf = setup
    (tmp_path / "log").mkdir()
    (tmp_path / "run").mkdir()
    (conf / "nginx.conf").write_text("pid %s/run/nginx.pid;\nerror_log %s/log/error.log;\nevents {}\n"
                                     "http { include lua.conf; }\n" % (tmp_path, tmp_path))
    ran = calls(tmp_path, monkeypatch)

    def snapshot():
        return {str(p): (p.read_bytes() if p.is_file() else None, os.lstat(str(p)).st_mode)
                for p in sorted(tmp_path.rglob("*")) if p.name != "calls.log"}

    before = snapshot()
    result = run_module(nginx_config, dict(base, files=[{"path": "lua.conf", "content": "x;\n"}]), check_mode=True)
    assert not result["failed"], result["msg"]
    assert result["changed"] is True and result["changed_files"] == [str(conf / "lua.conf")]
    assert snapshot() == before
    assert "not run in check mode" in result["nginx_test_output"]
    assert [c for c in ran() if c.startswith("-t")] == []


@pytest.fixture
def sites(setup):
    """A directory the task owns, with one managed site, a stray file, a stray link and a subdirectory."""
    base, conf = setup
    (conf / "nginx.conf").write_text("events {}\nhttp { include lua.conf; include sites/*.conf; }\n")
    sites = conf / "sites"
    sites.mkdir()
    (sites / "app.conf").write_text("# app\n")
    (sites / "stray.conf").write_text("BROKEN;\n")
    target = conf.parent / "elsewhere.conf"
    target.write_text("# not ours to remove\n")
    os.symlink(str(target), str(sites / "link.conf"))
    (sites / "keep.d").mkdir()
    (sites / "keep.d" / "inner.conf").write_text("# a subdirectory is left alone\n")
    files = [{"path": "sites/app.conf", "content": "# app\n"}]
    return base, conf, files, target


def test_files_nobody_manages_are_reported_and_left_without_purge(sites, run_module):
    base, conf, files, target = sites
    result = run_module(nginx_config, dict(base, files=files, owned_dirs=[{"path": "sites"}]))
    assert not result["failed"], result["msg"]
    assert result["changed"] is False
    assert result["unmanaged"] == [str(conf / "sites" / "link.conf"), str(conf / "sites" / "stray.conf")]
    assert (conf / "sites" / "stray.conf").exists() and os.path.islink(str(conf / "sites" / "link.conf"))


def test_purge_removes_them_in_the_tested_change_and_restore_puts_them_back(sites, run_module):
    base, conf, files, target = sites
    args = dict(base, files=files, owned_dirs=[{"path": "sites", "purge": True}])
    check = run_module(nginx_config, args, check_mode=True)
    assert check["changed"] is True and (conf / "sites" / "stray.conf").exists(), "check mode removes nothing"
    result = run_module(nginx_config, args)
    assert not result["failed"], result["msg"]
    # nginx -t passed only because the broken stray file was gone from the tested copy too.
    assert "test is successful" in result["nginx_test_output"]
    assert sorted(result["changed_files"]) == result["unmanaged"] == [
        str(conf / "sites" / "link.conf"), str(conf / "sites" / "stray.conf")]
    assert sorted(os.listdir(str(conf / "sites"))) == ["app.conf", "keep.d"]
    assert read(target) == "# not ours to remove\n", "the link is removed, not what it points to"
    again = run_module(nginx_config, args)
    assert again["changed"] is False and again["unmanaged"] == []
    restored = run_module(nginx_config, dict(base, restore_from=result["backup_dir"]))
    # The restored tree holds the broken file again, which the fake nginx -t rejects: what matters
    # here is that the files came back.
    assert restored["changed_files"] and read(conf / "sites" / "stray.conf") == "BROKEN;\n"
    assert os.readlink(str(conf / "sites" / "link.conf")) == str(target)


def test_a_change_nginx_rejects_purges_nothing(sites, run_module):
    base, conf, files, target = sites
    os.unlink(str(conf / "sites" / "stray.conf"))
    files = [{"path": "sites/app.conf", "content": "BROKEN;\n"}]
    result = run_module(nginx_config, dict(base, files=files, owned_dirs=[{"path": "sites", "purge": True}]))
    assert result["failed"] and "nothing was changed" in result["msg"]
    assert os.path.islink(str(conf / "sites" / "link.conf")) and read(conf / "sites" / "app.conf") == "# app\n"


def test_files_another_task_manages_are_kept(sites, run_module):
    base, conf, files, target = sites
    (conf / "sites" / "stray.conf").write_text("# the other task's file\n")
    owned = [{"path": "sites", "purge": True, "keep": ["stray.*"]}]
    result = run_module(nginx_config, dict(base, files=files, owned_dirs=owned))
    assert result["unmanaged"] == [str(conf / "sites" / "link.conf")]
    assert (conf / "sites" / "stray.conf").exists() and not os.path.lexists(str(conf / "sites" / "link.conf"))


def test_an_owned_directory_that_is_a_symlink_is_refused(setup, run_module, tmp_path):
    base, conf = setup
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious").write_text("x")
    os.symlink(str(outside), str(conf / "sites"))
    result = run_module(nginx_config, dict(base, files=[], owned_dirs=[{"path": "sites", "purge": True}]))
    assert result["failed"] and "sites is a symlink" in result["msg"]
    assert (outside / "precious").exists()


def test_check_mode_before_nginx_is_installed_previews_the_files_and_writes_nothing(tmp_path, run_module):
    conf = tmp_path / "etc" / "nginx"
    args = {"binary": str(tmp_path / "not-installed" / "nginx"), "conf_dir": str(conf),
            "backup_root": str(tmp_path / "backups"),
            "files": [{"path": "nginx.conf", "content": "events {}\n"}, {"path": "hardened/sites/a.conf", "content": "#\n"}],
            "owned_dirs": [{"path": "hardened/sites", "purge": True}], "lua_fail_on": "high"}
    result = run_module(nginx_config, args, check_mode=True, diff=True)
    assert not result["failed"], result["msg"]
    assert result["changed"] is True
    assert result["changed_files"] == [str(conf / "nginx.conf"), str(conf / "hardened" / "sites" / "a.conf")]
    assert "is not installed yet" in result["nginx_test_output"]
    assert [d["after"] for d in result["diff"]] == ["events {}\n", "#\n"]
    assert not (tmp_path / "etc").exists() and not (tmp_path / "backups").exists()
    real = run_module(nginx_config, args)
    assert real["failed"], "without check mode a missing binary is an error"


def test_a_changed_ipv6only_is_reported_as_needing_a_new_master(setup, run_module):
    base, conf = setup
    (conf / "nginx.conf").write_text("events {}\nhttp { include lua.conf; include site.conf; }\n")
    (conf / "site.conf").write_text("server { listen [::]:8443 ipv6only=on; }\n")
    same = run_module(nginx_config, dict(base, files=[{"path": "lua.conf", "content": "lua_socket_read_timeout 3s;\n"}]))
    assert not same["failed"], same["msg"]
    assert same["changed_requires"] == [], "a change a reload applies needs no restart"
    site = [{"path": "site.conf", "content": "server { listen [::]:8443 ipv6only=off; }\n"}]
    check = run_module(nginx_config, dict(base, files=site), check_mode=True)
    changed = run_module(nginx_config, dict(base, files=site))
    expected = ["listen [::]:8443: ipv6only on -> off (a reload keeps the socket the master holds)"]
    assert check["changed_requires"] == expected and changed["changed_requires"] == expected
