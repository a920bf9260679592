"""Checks on a host converged by hardened.openresty.server (run by molecule's testinfra).

Traffic stays on loopback inside the host: every request is a curl run on the host itself.
"""

import re

import pytest

ROOT = "/opt/hardened-openresty/lua"
APP_ROOT = "/opt/hardened-openresty/app"
EXPECTED = {
    "lua_code_cache": "on",
    "lua_socket_connect_timeout": "3s",
    "lua_socket_send_timeout": "2s",
    "lua_socket_read_timeout": "2s",
    "lua_socket_keepalive_timeout": "60s",
    "lua_socket_pool_size": "30",
    "lua_socket_log_errors": "on",
    "lua_regex_match_limit": "10000",
    "lua_regex_cache_max_entries": "100",
    "lua_max_pending_timers": "1024",
    "lua_max_running_timers": "256",
    "lua_ssl_trusted_certificate": "/etc/ssl/certs/ca-certificates.crt",
    "lua_ssl_verify_depth": "3",
    "server_tokens": "off",
    "user": "www-data",
    "worker_rlimit_nofile": "8192",
}


def get(host, url):
    return host.check_output("curl -s --max-time 10 %s", url)


@pytest.fixture(scope="module")
def effective(host):
    return host.check_output("nginx -T 2>/dev/null")


def directive_values(config, name):
    return re.findall(r'^\s*%s\s+("[^"]*"|[^;]*);' % re.escape(name), config, re.M)


def test_service_runs_and_is_enabled(host):
    service = host.service("nginx")
    assert service.is_running
    assert service.is_enabled


def test_workers_run_unprivileged(host):
    workers = host.process.filter(comm="nginx", user="www-data")
    masters = host.process.filter(comm="nginx", user="root")
    assert workers and all("worker process" in p.args for p in workers)
    assert len(masters) == 1 and "master process" in masters[0].args


@pytest.mark.parametrize("name,value", sorted(EXPECTED.items()))
def test_effective_config_has_the_configured_value(effective, name, value):
    assert directive_values(effective, name) == [value]


def test_search_paths_are_absolute_and_never_fall_back(effective):
    for name in ("lua_package_path", "lua_package_cpath"):
        (value,) = directive_values(effective, name)
        entries = value.strip('"').split(";")
        assert ";;" not in value
        assert all(entry.startswith("/") for entry in entries), entries
    (path,) = directive_values(effective, "lua_package_path")
    assert path.strip('"').split(";")[:2] == [ROOT + "/?.lua", ROOT + "/?/init.lua"]
    assert APP_ROOT + "/current/?.lua" in path
    # Debian's build loads resty.core from here at VM start.
    assert "/usr/share/lua/5.1/?.lua" in path


@pytest.mark.parametrize("path", [ROOT, APP_ROOT, APP_ROOT + "/releases"])
def test_module_roots_are_sealed_directories(host, path):
    root = host.file(path)
    assert root.is_directory
    assert (root.user, root.group, root.mode) == ("root", "root", 0o555)


def test_module_files_are_sealed(host):
    probe = host.file(ROOT + "/molecule_probe.lua")
    assert (probe.user, probe.group, probe.mode) == ("root", "root", 0o444)


def test_default_site_serves_lua(host):
    assert get(host, "http://127.0.0.1/").startswith("hardened.openresty: Lua served by worker ")
    assert get(host, "http://127.0.0.1/hardened-openresty/health").strip() == "ok"


def test_module_in_a_root_is_served(host):
    assert get(host, "http://127.0.0.1:8081/probe/approved").strip() == "approved module loaded"


@pytest.mark.parametrize(
    "path",
    [
        # LuaJIT's compiled-in default path, which ';;' would add.
        "/usr/local/share/lua/5.1/molecule_outside.lua",
        # The worker's current directory: what './?.lua' would find.
        "/molecule_outside.lua",
    ],
)
def test_module_outside_the_roots_cannot_be_required(host, path):
    host.run_expect([0], "mkdir -p %s && printf 'return {}' > %s", path.rsplit("/", 1)[0] or "/", path)
    try:
        answer = get(host, "http://127.0.0.1:8081/probe/require?name=molecule_outside")
    finally:
        host.run("rm -f %s", path)
    assert answer.startswith("BLOCKED module 'molecule_outside' not found"), answer
    assert path not in answer.split("no file", 1)[0]


def test_systemd_sandbox_is_active(host):
    show = host.check_output(
        "systemctl show nginx -p NoNewPrivileges -p ProtectSystem -p ProtectHome -p PrivateTmp -p ReadOnlyPaths"
    )
    props = dict(line.split("=", 1) for line in show.splitlines())
    assert props["NoNewPrivileges"] == "yes"
    assert props["ProtectSystem"] == "strict"
    assert props["ProtectHome"] == "yes"
    assert props["PrivateTmp"] == "yes"
    assert ROOT in props["ReadOnlyPaths"] and APP_ROOT in props["ReadOnlyPaths"]


@pytest.mark.parametrize("path", [ROOT, APP_ROOT + "/releases"])
def test_module_roots_are_read_only_inside_the_service_even_for_root(host, path):
    # ProtectSystem=strict and ReadOnlyPaths: whatever the file modes, nothing running in
    # the service's mount namespace (the master as root included) can write Lua code.
    master = host.check_output("cat /run/nginx.pid")
    result = host.run("nsenter --target %s --mount -- touch %s/.write-probe", master, path)
    host.run("rm -f %s/.write-probe", path)
    assert result.rc != 0
    assert "Read-only file system" in result.stderr
