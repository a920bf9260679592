from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

import pytest
import yaml

from ansible_collections.hardened.openresty.plugins.module_utils.role_input import lua_app_input_errors

DEFAULTS = os.path.join(os.path.dirname(__file__), "..", "..", "..", "..", "roles", "lua_app", "defaults", "main.yml")


@pytest.fixture
def good(tmp_path):
    src = tmp_path / "app"
    src.mkdir()
    (src / "app.lua").write_text("return {}\n")
    (src / "hooks").mkdir()
    (src / "hooks" / "init.lua").write_text("return {}\n")
    # The role's defaults, with a source.
    with open(DEFAULTS) as handle:
        return dict(yaml.safe_load(handle), lua_app_src=str(src))


def errors_for(values, **changes):
    values = dict(values)
    values.update(changes)
    return lua_app_input_errors(values)


def test_defaults_are_accepted(good):
    assert lua_app_input_errors(good) == []
    assert errors_for(good, lua_app_version="2.4.1", lua_app_entry_module="hooks",
                      lua_app_address="127.0.0.1") == []


@pytest.mark.parametrize("name,value,expected", [
    ("lua_app_src", "", "lua_app_src: '': is not set"),
    ("lua_app_src", "app", "lua_app_src: 'app': is not an absolute path on the controller"),
    ("lua_app_src", "/nonexistent/app", "lua_app_src: '/nonexistent/app': does not exist"),
    ("lua_app_version", "../x", "lua_app_version: '../x' is not a release id"),
    ("lua_app_version", "a/b", "lua_app_version: 'a/b' is not a release id"),
    ("lua_app_version", "a..b", "lua_app_version: 'a..b' contains '..'"),
    ("lua_app_keep_releases", 1, "lua_app_keep_releases: 1 must be an integer of at least 2"),
    ("lua_app_keep_releases", "five", "lua_app_keep_releases: 'five' must be an integer"),
    ("lua_app_inline_source_max", -1, "lua_app_inline_source_max: -1 must be a number of bytes from 0 to 16777216"),
    ("lua_app_inline_source_max", 16777217, "lua_app_inline_source_max: 16777217 must be a number of bytes"),
    ("lua_app_inline_source_max", "lots", "lua_app_inline_source_max: 'lots' must be a number of bytes"),
    ("lua_app_root", "relative", "lua_app_root: 'relative' is not an absolute path"),
    ("lua_app_root", "/tmp/app", "lua_app_root: '/tmp/app' is under /tmp"),
    ("lua_app_staging_dir", "/opt/hardened-openresty/app/up", "is inside lua_app_root"),
    ("lua_app_entry_module", "app-main", "lua_app_entry_module: 'app-main' is not a Lua module name"),
    ("lua_app_entry_module", "main", "lua_app_entry_module: 'main' is not in lua_app_src (expected main.lua or "
                                     "main/init.lua)"),
    ("lua_app_health_path", "health", "lua_app_health_path: 'health' is not an absolute URL path"),
    ("lua_app_port", 0, "lua_app_port: 0 is not a TCP port"),
    ("lua_app_status_port", 8080, "lua_app_status_port: 8080 is also lua_app_port"),
    ("lua_app_address", "localhost;", "lua_app_address: 'localhost;' is not an IPv4 address"),
    ("lua_app_proof_timeout", 0, "lua_app_proof_timeout: 0 must be a positive integer"),
    ("lua_app_luacheck_config", "/nonexistent/luacheckrc", "lua_app_luacheck_config: '/nonexistent/luacheckrc' is not"),
])
def test_bad_values_are_refused_naming_the_variable(good, name, value, expected):
    errors = errors_for(good, **{name: value})
    assert any(expected in e for e in errors), errors


def test_digit_strings_from_extra_vars_count_as_integers(good):
    assert errors_for(good, lua_app_keep_releases="3", lua_app_health_timeout="2") == []
    assert errors_for(good, lua_app_keep_releases="1") == [
        "lua_app_keep_releases: 1 must be an integer of at least 2 "
        "(the live release and the previous one are always kept)"]


def test_empty_source_is_refused(good, tmp_path):
    (tmp_path / "empty").mkdir()
    errors = errors_for(good, lua_app_src=str(tmp_path / "empty"))
    assert errors == ["lua_app_src: %r: contains no files" % str(tmp_path / "empty")]


def test_symlink_out_of_the_source_is_refused(good, tmp_path):
    os.symlink("/etc/passwd", os.path.join(good["lua_app_src"], "passwd.lua"))
    errors = lua_app_input_errors(good)
    assert len(errors) == 1
    assert errors[0].startswith("lua_app_src: %r: 'passwd.lua' is a symlink that points outside the tree"
                                % good["lua_app_src"])
