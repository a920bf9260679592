from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import stat
import sys

import pytest

from ansible_collections.hardened.openresty.plugins.modules import nginx_config

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the module installs files as root:root")

# `nginx -V` and `nginx -t -c FILE` stand-in: fails, naming the file, when any file in FILE's directory
# contains BROKEN; succeeds otherwise.
FAKE_NGINX = r'''
import os, sys
if sys.argv[1] == "-V":
    sys.stderr.write("nginx version: nginx/1.22.1\nconfigure arguments: --prefix=/usr/share/nginx\n")
    sys.exit(0)
main = sys.argv[3]
for dirpath, dirnames, filenames in os.walk(os.path.dirname(main)):
    for name in sorted(filenames):
        path = os.path.join(dirpath, name)
        if "BROKEN" in open(path).read():
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


def test_changes_are_tested_installed_and_can_be_restored(setup, run_module):
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
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o640, 0, 0)
    assert {b["path"]: b["backup"] is None for b in result["backups"]} == {
        str(conf / "lua.conf"): False, str(conf / "new.conf"): True}

    again = run_module(nginx_config, dict(base, files=files))
    assert again["changed"] is False and again["backup_dir"] is None

    restored = run_module(nginx_config, {"binary": base["binary"], "restore_from": result["backup_dir"]})
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


def test_check_mode_tests_and_reports_but_writes_nothing(setup, run_module):
    base, conf = setup
    ok = run_module(nginx_config, dict(base, files=[{"path": "lua.conf", "content": "x;\n"}]), check_mode=True)
    assert ok["changed"] is True and "test is successful" in ok["nginx_test_output"]
    bad = run_module(nginx_config, dict(base, files=[{"path": "lua.conf", "content": "BROKEN;\n"}]), check_mode=True)
    assert bad["failed"]
    assert read(conf / "lua.conf") == "lua_socket_read_timeout 2s;\n"
    assert not os.path.exists(base["backup_root"])


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
    assert not os.path.exists(base["backup_root"])


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
