from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.hardened.openresty.plugins.module_utils.role_input import server_input_errors

GOOD = {
    "server_flavor": "debian",
    "server_lua_module_roots": ["/opt/hardened-openresty/lua"],
    "server_lua_app_roots": ["/opt/hardened-openresty/app"],
    "server_lua_library_roots": [],
    "server_lua_socket_connect_timeout": "3s",
    "server_lua_socket_send_timeout": "2s",
    "server_lua_socket_read_timeout": "2s",
    "server_lua_socket_keepalive_timeout": "60s",
    "server_lua_socket_pool_size": 30,
    "server_lua_regex_match_limit": 10000,
    "server_lua_regex_cache_max_entries": 100,
    "server_lua_max_pending_timers": 1024,
    "server_lua_max_running_timers": 256,
    "server_lua_ssl_trusted_certificate": "/etc/ssl/certs/ca-certificates.crt",
    "server_lua_ssl_verify_depth": 3,
    "server_user": "www-data",
    "server_worker_connections": 1024,
    "server_worker_rlimit_nofile": 8192,
    "server_listen": 80,
    "server_systemd_memory_max": "",
}


def errors_for(**changes):
    values = dict(GOOD)
    values.update(changes)
    return server_input_errors(values)


def test_defaults_are_accepted():
    assert server_input_errors(GOOD) == []


@pytest.mark.parametrize(
    "name,value,expected",
    [
        ("server_flavor", "gentoo", "not one of debian, openresty, none"),
        ("server_lua_module_roots", ["lua"], "not an absolute path"),
        ("server_lua_module_roots", ["./?.lua"], "not an absolute path"),
        ("server_lua_module_roots", ["/opt/lua;;"], "character that is not allowed"),
        ("server_lua_module_roots", ["/opt/lua/?.lua"], "character that is not allowed"),
        ("server_lua_module_roots", ["/"], "filesystem root"),
        ("server_lua_module_roots", ["/tmp/lua"], "under /tmp"),
        ("server_lua_module_roots", ["/var/tmp"], "under /var/tmp"),
        ("server_lua_module_roots", ["/dev/shm/x"], "under /dev/shm"),
        ("server_lua_module_roots", ["/opt/../tmp/x"], "not a normalised path"),
        ("server_lua_app_roots", ["app"], "not an absolute path"),
        ("server_lua_library_roots", ["/opt/$prefix/lua"], "character that is not allowed"),
        ("server_lua_socket_read_timeout", "abc", "not an nginx duration"),
        ("server_lua_socket_read_timeout", "-1s", "not an nginx duration"),
        ("server_lua_socket_read_timeout", "10x", "not an nginx duration"),
        ("server_lua_socket_read_timeout", "11s", "longer than the maximum 10s"),
        ("server_lua_socket_send_timeout", "1m", "longer than the maximum 10s"),
        ("server_lua_socket_connect_timeout", "6s", "longer than the maximum 5s"),
        ("server_lua_socket_keepalive_timeout", "121s", "longer than the maximum 120s"),
        ("server_lua_socket_connect_timeout", "0s", "must be longer than 0"),
        ("server_lua_regex_match_limit", 0, "must be a positive integer"),
        ("server_lua_regex_match_limit", 100001, "above the maximum 100000"),
        ("server_lua_regex_cache_max_entries", 0, "must be a positive integer"),
        ("server_lua_regex_cache_max_entries", 2000, "above the maximum 1024"),
        ("server_lua_socket_pool_size", -1, "must be a positive integer"),
        ("server_lua_max_running_timers", 0, "must be a positive integer"),
        ("server_user", "root", "must not run as root"),
        ("server_lua_ssl_trusted_certificate", "certs/ca.pem", "not an absolute path"),
        ("server_listen", 70000, "not a TCP port"),
        ("server_systemd_memory_max", "lots", "not a systemd size"),
    ],
)
def test_bad_input_names_variable_and_value(name, value, expected):
    errors = errors_for(**{name: value})
    assert len(errors) == 1, errors
    assert errors[0].startswith(name)
    assert repr(value if not isinstance(value, list) else value[0]) in errors[0]
    assert expected in errors[0]


@pytest.mark.parametrize(
    "name,value",
    [
        ("server_lua_socket_connect_timeout", "5s"),
        ("server_lua_socket_read_timeout", "10s"),
        ("server_lua_socket_read_timeout", "500ms"),
        ("server_lua_socket_keepalive_timeout", "2m"),
        ("server_lua_regex_match_limit", 100000),
        ("server_lua_module_roots", ["/srv/lua", "/opt/lib/lua"]),
        ("server_systemd_memory_max", "512M"),
        ("server_flavor", "none"),
    ],
)
def test_limits_are_inclusive_and_good_values_pass(name, value):
    assert errors_for(**{name: value}) == []


def test_duplicate_roots_are_refused():
    errors = errors_for(server_lua_app_roots=["/opt/hardened-openresty/lua"])
    assert errors and "twice" in errors[0]
