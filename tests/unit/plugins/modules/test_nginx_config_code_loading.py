"""nginx_config's Lua gate refuses directives that load code, before any file is installed."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import sys

import pytest

from ansible_collections.hardened.openresty.plugins.modules import nginx_config


@pytest.fixture(autouse=True)
def install_as(owner, monkeypatch):
    """The module installs root:root; run by another user, these tests install as that user."""
    monkeypatch.setattr(nginx_config, "OWNER", owner)
    return owner


# `nginx -V` and `nginx -t` stand-in that accepts every tree (the real binary would load the
# module: the rules, not nginx, must refuse it).
FAKE_NGINX = r'''
import sys
if sys.argv[1] == "-V":
    sys.stderr.write("nginx version: nginx/1.22.1\nconfigure arguments: --prefix=/usr/share/nginx\n")
sys.exit(0)
'''
MAIN = "events {}\nhttp { include lua.conf; }\n"
# What the server role renders, in short: a load_module of the Lua module makes Lua in use.
HARDENED = ('lua_package_path "/opt/lua/?.lua";\nlua_package_cpath "/opt/lib/?.so";\n'
            "lua_socket_connect_timeout 2s;\nlua_socket_send_timeout 2s;\nlua_socket_read_timeout 2s;\n"
            "lua_regex_match_limit 10000;\n")


@pytest.fixture
def setup(tmp_path):
    binary = tmp_path / "nginx"
    binary.write_text("#!%s\n%s" % (sys.executable, FAKE_NGINX))
    os.chmod(str(binary), 0o755)
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "nginx.conf").write_text(MAIN)
    (conf / "lua.conf").write_text(HARDENED)
    base = {"binary": str(binary), "conf_dir": str(conf), "backup_root": str(tmp_path / "backups"),
            "lua_fail_on": "high"}
    return base, conf


@pytest.mark.parametrize("directive,rule_id", [
    ("load_module /tmp/ngx_http_marker_module.so;", "nginx-load-module-outside-module-dir"),
    ("load_module modules/../../../../tmp/ngx_http_marker_module.so;", "nginx-load-module-outside-module-dir"),
    ("ssl_engine marker;", "nginx-ssl-engine"),
])
def test_code_loading_directive_is_refused_and_nothing_changes(setup, run_module, directive, rule_id):
    base, conf = setup
    content = directive + "\n" + MAIN
    result = run_module(nginx_config, dict(base, files=[{"path": "nginx.conf", "content": content}]))
    assert result["failed"] and "nothing was changed" in result["msg"]
    assert [(f["rule"], f["file"], f["line"]) for f in result["lua_findings"]] == [
        (rule_id, str(conf / "nginx.conf"), 1)]
    with open(str(conf / "nginx.conf")) as handle:
        assert handle.read() == MAIN
    # No backup was made (the backup root holds at most the runs' lock file).
    root = base["backup_root"]
    assert not [n for n in (os.listdir(root) if os.path.isdir(root) else []) if not n.startswith(".")]


def test_perl_in_an_included_file_is_refused(setup, run_module):
    base, conf = setup
    result = run_module(nginx_config, dict(base, files=[{"path": "lua.conf", "content": "perl_require Marker.pm;\n"}]))
    assert result["failed"]
    assert [f["rule"] for f in result["lua_findings"]] == ["nginx-perl-code"]


def test_the_distribution_module_directory_passes(setup, run_module):
    base, conf = setup
    content = "load_module modules/ngx_http_lua_module.so;\n" + MAIN
    result = run_module(nginx_config, dict(base, files=[{"path": "nginx.conf", "content": content}]))
    assert not result["failed"], result["msg"]
    assert result["changed"] is True
