from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.hardened.openresty.plugins.module_utils.role_input import lua_app_input_errors, server_input_errors

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
    "server_lua_ssl_protocols": "TLSv1.2 TLSv1.3",
    "server_user": "www-data",
    "server_worker_connections": 1024,
    "server_worker_rlimit_nofile": 8192,
    "server_worker_shutdown_timeout": "30s",
    "server_listen": 80,
    "server_systemd_memory_max": "",
    "server_worker_processes": "auto",
    "server_lua_init_worker_modules": [],
    "server_limit_key": "$binary_remote_addr",
    "server_limit_req_rate": "10r/s",
    "server_limit_req_burst": 20,
    "server_limit_req_zone_size": "10m",
    "server_limit_conn": 20,
    "server_limit_conn_zone_size": "10m",
    "server_limit_status": 429,
    "server_metrics_port": 9145,
    "server_metrics_path": "/metrics",
    "server_metrics_interval": 5,
    "server_systemd_memory_high": "",
    "server_systemd_tasks_max": "4096",
    "server_systemd_cpu_quota": "",
    "server_sites": [{"name": "shop", "template": "sites/shop.conf.j2"},
                     {"name": "api.example.test", "content": "server { listen 8080; }", "enabled": False},
                     {"name": "old", "state": "absent"}],
    "server_http_snippets": ["log_format main '$remote_addr $status';"],
    "server_purge_unmanaged": False,
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
        ("server_lua_fail_on", "critical", "not one of none, low, medium, high"),
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
        ("server_lua_ssl_protocols", "TLSv1.1 TLSv1.2", "allows TLSv1.1, which is older than TLSv1.2"),
        ("server_lua_ssl_protocols", "SSLv3", "allows SSLv3, which is older than TLSv1.2"),
        ("server_lua_ssl_protocols", "TLSv1.2 TLSv1.4", "'TLSv1.4' is not a protocol"),
        ("server_lua_ssl_protocols", "", "must be protocol names"),
        ("server_lua_ssl_protocols", ["TLSv1.2"], "must be protocol names"),
        ("server_listen", 70000, "not a TCP port"),
        ("server_systemd_memory_max", "lots", "not a systemd size"),
        ("server_worker_connections", 10000, "above server_worker_rlimit_nofile 8192"),
        ("server_worker_shutdown_timeout", "1h", "longer than the maximum 600s"),
        ("server_worker_shutdown_timeout", "0s", "must be longer than 0"),
        ("server_worker_shutdown_timeout", "soon", "not an nginx duration"),
        ("server_lua_init_worker_modules", ["my-app"], "not a Lua module name"),
        ("server_lua_init_worker_modules", ["app; os.exit()"], "not a Lua module name"),
        ("server_lua_init_worker_modules", "app.worker", "not a list"),
        ("server_limit_key", "binary_remote_addr", "not one or more nginx variables"),
        ("server_limit_key", "$remote_addr; deny all", "not one or more nginx variables"),
        ("server_limit_req_rate", "10", "not an nginx rate"),
        ("server_limit_req_rate", "0r/s", "not an nginx rate"),
        ("server_limit_req_rate", "10r/h", "not an nginx rate"),
        ("server_limit_req_burst", -1, "at least 0"),
        ("server_limit_conn", 0, "must be a positive integer"),
        ("server_limit_req_zone_size", "lots", "not an nginx size"),
        ("server_limit_conn_zone_size", "16k", "below 32k"),
        ("server_limit_status", 200, "not an HTTP error status"),
        ("server_limit_status", 600, "not an HTTP error status"),
        ("server_metrics_port", 0, "not a TCP port"),
        ("server_metrics_port", 80, "also server_listen"),
        ("server_metrics_path", "metrics", "not an absolute URI path"),
        ("server_metrics_path", "/metrics; allow all", "not an absolute URI path"),
        ("server_metrics_path", "/hardened-openresty/stub_status", "internal location"),
        ("server_metrics_interval", 0, "from 1 to 60"),
        ("server_metrics_interval", 61, "from 1 to 60"),
        ("server_systemd_memory_max", "512K", "below the minimum 32M"),
        ("server_systemd_memory_max", "120%", "not a systemd size"),
        ("server_systemd_memory_max", "512MB", "not a systemd size"),
        ("server_systemd_memory_high", "huge", "not a systemd size"),
        ("server_systemd_tasks_max", "2", "below 3"),
        ("server_systemd_tasks_max", "many", "not a number of tasks"),
        ("server_systemd_tasks_max", "0%", "not a number of tasks"),
        ("server_systemd_cpu_quota", "1.5", "not a CPU quota"),
        ("server_systemd_cpu_quota", "0%", "not a CPU quota"),
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
        ("server_systemd_memory_max", "32M"),
        ("server_systemd_memory_max", "infinity"),
        ("server_systemd_memory_max", "100%"),
        ("server_systemd_memory_high", "1G"),
        ("server_systemd_tasks_max", 512),
        ("server_systemd_tasks_max", "infinity"),
        ("server_systemd_tasks_max", "15%"),
        ("server_systemd_tasks_max", ""),
        ("server_systemd_cpu_quota", "250%"),
        ("server_limit_key", "$binary_remote_addr$server_name"),
        ("server_limit_req_rate", "600r/m"),
        ("server_limit_req_burst", 0),
        ("server_limit_conn_zone_size", "32k"),
        ("server_limit_status", 503),
        ("server_lua_init_worker_modules", ["app", "myapp.worker"]),
        ("server_metrics_path", "/internal/metrics"),
        ("server_metrics_interval", 60),
        ("server_worker_connections", 8192),
        ("server_lua_ssl_protocols", "TLSv1.3"),
        ("server_lua_ssl_protocols", "TLSv1.2"),
    ],
)
def test_limits_are_inclusive_and_good_values_pass(name, value):
    assert errors_for(**{name: value}) == []


def test_duplicate_roots_are_refused():
    errors = errors_for(server_lua_app_roots=["/opt/hardened-openresty/lua"])
    assert errors and "twice" in errors[0]


def test_an_empty_module_root_list_is_refused():
    # The role installs its Lua helpers (init_worker hook, metrics) into the first root.
    errors = errors_for(server_lua_module_roots=[])
    assert errors == ["server_lua_module_roots: [] is empty; the role installs its Lua helpers in the first root"]


def test_memory_high_above_memory_max_is_refused_naming_both():
    errors = errors_for(server_systemd_memory_max="512M", server_systemd_memory_high="1G")
    assert len(errors) == 1, errors
    assert errors[0].startswith("server_systemd_memory_high: '1G'")
    assert "server_systemd_memory_max '512M'" in errors[0]
    assert errors_for(server_systemd_memory_max="1G", server_systemd_memory_high="512M") == []
    # Percentages and sizes cannot be compared without the host's RAM: left to systemd.
    assert errors_for(server_systemd_memory_max="80%", server_systemd_memory_high="8G") == []


def test_tasks_max_must_leave_room_for_every_worker():
    errors = errors_for(server_worker_processes="8", server_systemd_tasks_max="9")
    assert len(errors) == 1 and errors[0].startswith("server_systemd_tasks_max: '9' is below 10"), errors
    assert errors_for(server_worker_processes="8", server_systemd_tasks_max="10") == []


def test_every_legacy_protocol_is_refused_by_name():
    errors = errors_for(server_lua_ssl_protocols="SSLv2 SSLv3 TLSv1 TLSv1.1 TLSv1.2")
    assert [e.split("allows ", 1)[1].split(",")[0] for e in errors] == ["SSLv2", "SSLv3", "TLSv1", "TLSv1.1"]
    assert all(e.startswith("server_lua_ssl_protocols: 'SSLv2 SSLv3 TLSv1 TLSv1.1 TLSv1.2'") for e in errors)


@pytest.mark.parametrize("name,root,writable", [
    ("server_lua_library_roots", "/var/lib/nginx", "/var/lib/nginx"),
    ("server_lua_library_roots", "/var/lib/nginx/lua", "/var/lib/nginx"),
    # A root above a writable path searches it too: require("nginx.x") finds /var/lib/nginx/x.lua.
    ("server_lua_library_roots", "/var/lib", "/var/lib/nginx"),
    ("server_lua_module_roots", "/var/log/nginx/lua", "/var/log/nginx"),
])
def test_search_paths_the_service_can_write_are_refused_by_name(name, root, writable):
    """a library root the service writes is refused before any change."""
    values = dict(GOOD, **{name: [root], "server_writable_paths": ["/var/log/nginx", "/var/lib/nginx"]})
    errors = server_input_errors(values)
    assert any(e.startswith("%s[0]: %r is writable by the nginx service" % (name, root)) and writable in e
               for e in errors), errors


def test_search_paths_apart_from_the_service_paths_pass():
    values = dict(GOOD, server_lua_library_roots=["/var/lib/nginx-lua", "/usr/local/share/lua/5.1"],
                  server_writable_paths=["/var/log/nginx", "/var/lib/nginx"])
    assert server_input_errors(values) == []


def test_the_filters_documented_examples_return_what_their_docs_say(tmp_path):
    """Each filter's EXAMPLES input: only the problem the example shows, nothing spurious."""
    assert server_input_errors({"server_flavor": "debian", "server_lua_module_roots": ["lua"]}) == [
        "server_lua_module_roots[0]: 'lua' is not an absolute path"]
    app = tmp_path / "app"
    app.mkdir()
    (app / "app.lua").write_text("return {}\n")
    assert lua_app_input_errors({"lua_app_src": str(app), "lua_app_keep_releases": 1}) == [
        "lua_app_keep_releases: 1 must be an integer of at least 2 "
        "(the live release and the previous one are always kept)"]


@pytest.mark.parametrize("site,expected", [
    ({"name": "../etc/passwd", "content": "x"}, "server_sites[0].name: '../etc/passwd' is not a site name"),
    ({"name": "a/b", "content": "x"}, "server_sites[0].name: 'a/b' is not a site name"),
    ({"name": "a..b", "content": "x"}, "no '..'"),
    ({"name": "tab\there", "content": "x"}, "server_sites[0].name: 'tab\\there' is not a site name"),
    ({"name": ".hidden", "content": "x"}, "starting with a letter or digit"),
    ({"name": "x" * 65, "content": "x"}, "at most 64 characters"),
    ({"name": 7, "content": "x"}, "server_sites[0].name: 7 is not a site name"),
    ({"name": "shop"}, "server_sites[0]: give exactly one of template and content (given: neither)"),
    ({"name": "shop", "content": "x", "template": "t.j2"}, "(given: template, content)"),
    ({"name": "shop", "content": "x", "state": "gone"}, "server_sites[0].state: 'gone' is not present or absent"),
    ({"name": "shop", "content": "x", "enabled": "no"}, "server_sites[0].enabled: 'no' is not a boolean"),
    ({"name": "shop", "content": "x", "templat": "t.j2"}, "server_sites[0]: unknown key 'templat'"),
    ({"name": "shop", "content": "a\x00b"}, "server_sites[0].content: 'a\\x00b' is not text"),
    ("shop", "server_sites[0]: 'shop' is not a dict"),
])
def test_bad_sites_are_refused_by_name(site, expected):
    errors = errors_for(server_sites=[site])
    assert len(errors) == 1 and expected in errors[0], errors


def test_a_site_name_used_twice_is_refused_naming_both():
    errors = errors_for(server_sites=[{"name": "a", "content": "x"}, {"name": "a", "template": "t"}])
    assert errors == ["server_sites[1].name: 'a' is used by server_sites[0] too"]


def test_an_absent_site_needs_no_content():
    assert errors_for(server_sites=[{"name": "gone", "state": "absent"}]) == []


@pytest.mark.parametrize("name,value,expected", [
    ("server_sites", {"name": "a"}, "server_sites: {'name': 'a'} is not a list of sites"),
    ("server_http_snippets", "gzip on;", "server_http_snippets: 'gzip on;' is not a list of directives"),
    ("server_http_snippets", ["  "], "server_http_snippets[0]: '  ' is not a directive"),
    ("server_purge_unmanaged", "yes", "server_purge_unmanaged: 'yes' is not a boolean"),
])
def test_bad_site_variables_are_refused_by_name(name, value, expected):
    assert errors_for(**{name: value}) == [expected]
