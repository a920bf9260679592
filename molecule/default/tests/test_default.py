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


def test_release_root_has_a_current_release_before_any_deploy(host):
    current = host.file(APP_ROOT + "/current")
    assert current.is_symlink and current.linked_to == APP_ROOT + "/releases/initial"
    assert host.file(APP_ROOT + "/releases/initial").mode == 0o555


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


# The verifier on the converged host. These run last: they drift the host and repair it.
SEALED = "%s,%s/releases" % (ROOT, APP_ROOT)


def verify(host, fail_on):
    result = host.ansible(
        "hardened.openresty.lua_sandbox_verify", "fail_on=%s sealed_dirs=%s" % (fail_on, SEALED), check=False
    )
    assert "findings" in result, result
    return result


def test_verifier_finds_nothing_on_the_converged_host(host):
    result = verify(host, "low")
    assert result["findings"] == [] and result["passed"] is True, result["findings"]
    assert result["changed"] is False


def test_verifier_reports_exactly_the_drift_and_clears_after_repair(host):
    drift_conf = "/etc/nginx/conf.d/zz-molecule-drift.conf"
    probe = ROOT + "/molecule_probe.lua"
    host.run_expect([0], "cp -p %s /root/molecule_probe.lua.orig", probe)
    host.run_expect([0], "chmod 0777 %s", ROOT)
    host.run_expect(
        [0], "printf 'server {\\n listen 127.0.0.1:8099;\\n location / {\\n  lua_code_cache off;\\n }\\n}\\n' > %s", drift_conf
    )
    host.run_expect([0], "sh -c 'sleep 1.1; printf -- \"-- edited without reload\\n\" >> %s'", probe)
    try:
        result = verify(host, "none")
    finally:
        host.run_expect([0], "rm -f %s", drift_conf)
        host.run_expect([0], "chmod 0555 %s", ROOT)
    rules = sorted({finding["rule"] for finding in result["findings"]})
    assert rules == [
        "lua-code-cache-off",
        "lua-module-dir-not-sealed",
        "lua-module-dir-writable",
        "lua-stale-code-cache",
    ], result["findings"]
    stale = [f["file"] for f in result["findings"] if f["rule"] == "lua-stale-code-cache"]
    assert probe in stale and drift_conf in stale
    assert result["passed"] is False

    # Put the file back as it was, then reload: the workers now run what is on disk.
    host.run_expect([0], "cp -p /root/molecule_probe.lua.orig %s", probe)
    host.run_expect([0], "systemctl reload nginx")
    host.run_expect([0], "sleep 2")
    assert verify(host, "low")["findings"] == []
