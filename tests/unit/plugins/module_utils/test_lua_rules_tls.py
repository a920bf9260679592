"""Cosocket TLS rules (lua_rules_tls) and the Lua finder behind lua-tls-verify-off."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import collections
import os

import pytest

from ansible_collections.hardened.openresty.plugins.module_utils import lua_rules
from ansible_collections.hardened.openresty.plugins.module_utils import lua_rules_tls
from ansible_collections.hardened.openresty.plugins.module_utils import nginx_parser
from ansible_collections.hardened.openresty.plugins.module_utils.lua_tokens import find_tls_verify_off
from ansible_collections.hardened.openresty.tests.unit.plugins.module_utils.verify_cases import conf


@pytest.mark.parametrize("code,found", [
    ('sock:sslhandshake(nil, "h", false)', [("sslhandshake(..., false)", 1)]),
    ('sock:sslhandshake(nil, "h", nil)', [("sslhandshake(..., nil)", 1)]),
    ('sock:sslhandshake(nil, "h")', [("sslhandshake() without the verify argument", 1)]),
    ('sock:sslhandshake()', [("sslhandshake() without the verify argument", 1)]),
    ('sock.sslhandshake(sock, nil, "h", false)', [("sslhandshake(..., false)", 1)]),
    ('local a = 1\nlocal ok = sock:sslhandshake(s, f("a", {1, 2}), false, true)',
     [("sslhandshake(..., false)", 2)]),
    ('httpc:request_uri(u, { ssl_verify = false })', [("ssl_verify = false", 1)]),
    ('httpc:request_uri(u, {\n  method = "GET",\n  ssl_verify = false,\n})', [("ssl_verify = false", 3)]),
    ('opts["ssl_verify"] = false', [("ssl_verify = false", 1)]),
    ('opts.ssl_verify = false\nhttpc:connect(opts)', [("ssl_verify = false", 1)]),
    ('local ssl_verify = false', [("ssl_verify = false", 1)]),
    # Safe look-alikes.
    ('sock:sslhandshake(nil, "h", true)', []),
    ('sock:sslhandshake(nil, "h", conf.verify)', []),
    ('sock:sslhandshake(nil, "h", false or true)', []),
    ('sock:sslhandshake(nil, "h", verify ~= false)', []),
    ('sslhandshake(nil, "h", false)', []),  # a local function of that name, not the method
    ('local function sslhandshake(sock, s, h, v) end', []),
    ('{ ssl_verify = true }', []),
    ('if opts.ssl_verify == false then end', []),
    ('local v = { ssl_verify = false or default }', []),
    ('-- sock:sslhandshake(nil, "h", false)\n--[[ ssl_verify = false ]]', []),
    ('ngx.say("ssl_verify = false", [[sock:sslhandshake(nil, h, false)]])', []),
    ('obj:ssl_verify = false', []),
])
def test_find_tls_verify_off(code, found):
    assert find_tls_verify_off(code) == found


@pytest.mark.parametrize("version,default", [
    (None, None),
    ("0.10.23", "SSLv3 TLSv1 TLSv1.1 TLSv1.2"),
    ("0.10.24rc1", "SSLv3 TLSv1 TLSv1.1 TLSv1.2"),
    ("0.10.25", "TLSv1 TLSv1.1 TLSv1.2 TLSv1.3"),
    ("0.10.28", "TLSv1 TLSv1.1 TLSv1.2 TLSv1.3"),
])
def test_default_ssl_protocols_follow_the_module_version(version, default):
    assert lua_rules_tls.default_ssl_protocols(version) == default


@pytest.mark.parametrize("version,legacy", [
    ("0.10.23", "the default SSLv3 TLSv1 TLSv1.1 TLSv1.2 allows SSLv3 and TLSv1 and TLSv1.1"),
    ("0.10.27", "the default TLSv1 TLSv1.1 TLSv1.2 TLSv1.3 allows TLSv1 and TLSv1.1"),
])
def test_missing_protocols_name_the_default_of_the_running_module(version, legacy):
    config = nginx_parser.parse_dump(conf(drop=("lua_ssl_protocols",)))
    report = lua_rules.evaluate(config, versions={"lua_nginx_module": version})
    messages = [f["message"] for f in report["findings"] if f["rule"] == "lua-ssl-protocols-legacy"]
    assert messages == ["no lua_ssl_protocols in http: " + legacy]


def test_inline_finding_points_at_the_line_of_the_call():
    text = conf(location="content_by_lua_block {\n    local s = ngx.socket.tcp()\n"
                         "    s:sslhandshake(nil, \"h\", false)\n}")
    findings = lua_rules.verify_dump_text(text)["findings"]
    lines = text.split("\n")
    expected = [i for i, line in enumerate(lines, 1) if "sslhandshake" in line][0]
    assert [(f["rule"], f["line"]) for f in findings] == [("lua-tls-verify-off", expected)]


def _module_findings(config):
    report = lua_rules.evaluate(config, check_filesystem=True)
    return [(f["file"], f["line"]) for f in report["findings"] if f["rule"] == "lua-module-tls-verify-off"]


def test_module_files_that_turn_verification_off(tmp_path):
    lib = tmp_path / "lib"
    (lib / "resty").mkdir(parents=True)
    (lib / "client.lua").write_text(u"local M = {}\nfunction M.go(s)\n  return s:sslhandshake(nil, 'h', false)\nend\n")
    (lib / "resty" / "fetch.lua").write_text(u"return { ssl_verify = false }\n")
    (lib / "good.lua").write_text(u"return function(s) return s:sslhandshake(nil, 'h', true) end\n")
    (lib / "notes.txt").write_text(u"s:sslhandshake(nil, 'h', false)\n")
    handler = tmp_path / "handler.lua"
    handler.write_text(u"local ok = require('x'):sslhandshake()\n")
    os.symlink(str(lib / "client.lua"), str(lib / "link.lua"))  # read once, not through the link
    text = conf(replace={"lua_package_path": '"%s/?.lua"' % lib, "lua_package_cpath": '"%s/?.so"' % lib},
                location="content_by_lua_file %s;" % handler)
    found = sorted(_module_findings(nginx_parser.parse_dump(text)))
    assert found == sorted([(str(lib / "client.lua"), 3), (str(lib / "resty" / "fetch.lua"), 1),
                            (str(handler), 1)])
    report = lua_rules.evaluate(nginx_parser.parse_dump(text))
    assert "lua-module-tls-verify-off" not in set(f["rule"] for f in report["findings"]), "filesystem check off"


def test_the_role_rendering_of_lua_ssl_is_clean():
    """The directives the server role renders (lua.conf.j2 defaults) raise no TLS finding."""
    text = conf(replace={"lua_ssl_verify_depth": "3", "lua_ssl_protocols": "TLSv1.2 TLSv1.3"})
    counts = collections.Counter(f["rule"] for f in lua_rules.verify_dump_text(text)["findings"])
    assert counts == collections.Counter()
