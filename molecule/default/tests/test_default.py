"""Checks on a host converged by hardened.openresty.server (run by molecule's testinfra).

Traffic stays on loopback inside the host: every request is a curl run on the host itself.
"""

import json
import os
import re
import subprocess
import time

import pytest

ROOT = "/opt/hardened-openresty/lua"
# gixy-ng as published, from .venv-gixy (see requirements-gixy.txt).
GIXY = os.environ.get("HARDENED_GIXY") or os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))), ".venv-gixy", "bin", "gixy")
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
    "worker_shutdown_timeout": "30s",
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


# Guardrails and metrics. The limits tests come last in this group: they fill the request
# zone of 127.0.0.1 and wait until it has drained again.
METRICS_URL = "http://127.0.0.1:9145/metrics"
RELEASE_DOUBLE = "molecule-probe"  # files/hardened_release.lua
# The server role's local fact: it records the shared dict names its Lua helpers use.
FACT = "/etc/ansible/facts.d/hardened_openresty.fact"


def lua_names(host):
    return json.loads(host.file(FACT).content_string)["lua_names"]


def scrape(host):
    """{(sample name, frozenset(labels)): value} and the families, parsed by prometheus_client."""
    from prometheus_client.parser import text_string_to_metric_families

    families = list(text_string_to_metric_families(get(host, METRICS_URL)))
    samples = {}
    for family in families:
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples, families


def per_worker(samples, name):
    return {dict(labels)["worker"]: value for (sample, labels), value in samples.items() if sample == name}


def wait_for(host, predicate, timeout=15):
    """Scrape until predicate(samples) holds: workers publish every 5 seconds."""
    deadline = time.time() + timeout
    while True:
        samples = scrape(host)[0]
        if predicate(samples) or time.time() > deadline:
            return samples
        time.sleep(0.5)


def worker_pids(host):
    # Not pgrep -f: the shell that runs it has the pattern in its own command line.
    return {
        str(p.pid) for p in host.process.filter(comm="nginx")
        if "worker process" in p.args and "shutting down" not in p.args
    }


def worker_ids(host):
    return {str(worker) for worker in range(len(worker_pids(host)))}


def test_metrics_parse_with_help_type_and_prometheus_names(host):
    samples, families = scrape(host)
    kinds = {family.name: family.type for family in families}
    assert kinds == {
        "openresty_lua_vm_bytes": "gauge",
        "openresty_lua_timers_pending": "gauge",
        "openresty_lua_timers_running": "gauge",
        "openresty_lua_worker_published_timestamp_seconds": "gauge",
        "openresty_workers_draining": "gauge",
        "openresty_lua_regex_match_limit_hits": "counter",
        "openresty_lua_cosocket_timeouts": "counter",
        "openresty_lua_app_release_info": "gauge",
        "openresty_lua_shared_dict_capacity_bytes": "gauge",
        "openresty_lua_shared_dict_free_bytes": "gauge",
        "openresty_connections_active": "gauge",
        "openresty_connections_reading": "gauge",
        "openresty_connections_writing": "gauge",
        "openresty_connections_waiting": "gauge",
        "openresty_connections_accepted": "counter",
        "openresty_connections_handled": "counter",
        "openresty_http_requests": "counter",
    }
    assert all(family.documentation for family in families)
    assert samples[("openresty_workers_draining", frozenset())] == 0, "no reload is draining now"
    workers = worker_ids(host)
    assert set(per_worker(samples, "openresty_lua_vm_bytes")) == workers
    assert all(value > 100000 for value in per_worker(samples, "openresty_lua_vm_bytes").values())
    # The hook loaded the release module in every worker (lua_app's contract).
    releases = {
        dict(labels)["worker"]: dict(labels)["release"]
        for (name, labels), _value in samples.items() if name == "openresty_lua_app_release_info"
    }
    assert releases == {worker: RELEASE_DOUBLE for worker in workers}
    metrics_dict = lua_names(host)["metrics_dict"]
    capacity = samples[("openresty_lua_shared_dict_capacity_bytes", frozenset({("dict", metrics_dict)}))]
    free = samples[("openresty_lua_shared_dict_free_bytes", frozenset({("dict", metrics_dict)}))]
    assert capacity == 1024 * 1024 and 0 < free < capacity
    assert ("openresty_lua_shared_dict_capacity_bytes", frozenset({("dict", "molecule_probe")})) in samples
    assert samples[("openresty_connections_active", frozenset())] >= 1
    assert samples[("openresty_http_requests_total", frozenset())] >= 1


def test_init_worker_hook_ran_the_listed_module_in_every_worker(host):
    lines = get(host, "http://127.0.0.1:8081/probe/init-worker").split("\n")
    pids = worker_pids(host)
    recorded = dict(line.split(" ", 1) for line in lines if line)
    current = {key.split(":")[1] for key, pid in recorded.items() if pid in pids}
    assert current == worker_ids(host)


def test_metrics_vm_memory_grows_after_an_allocating_request(host):
    before = scrape(host)[0]
    worker = get(host, "http://127.0.0.1:8081/probe/allocate?mib=16").strip()
    baseline = per_worker(before, "openresty_lua_vm_bytes")[worker]
    after = wait_for(host, lambda s: per_worker(s, "openresty_lua_vm_bytes")[worker] > baseline + 12 * 2 ** 20)
    assert per_worker(after, "openresty_lua_vm_bytes")[worker] > baseline + 12 * 2 ** 20


def test_metrics_count_a_pending_timer(host):
    before = scrape(host)[0]
    worker = get(host, "http://127.0.0.1:8081/probe/timer").strip()
    baseline = per_worker(before, "openresty_lua_timers_pending")[worker]
    after = wait_for(host, lambda s: per_worker(s, "openresty_lua_timers_pending")[worker] > baseline)
    assert per_worker(after, "openresty_lua_timers_pending")[worker] == baseline + 1


def test_a_regex_match_limit_hit_through_the_helper_increments_its_counter(host):
    name = ("openresty_lua_regex_match_limit_hits_total", frozenset())
    before = scrape(host)[0][name]
    answer = get(host, "http://127.0.0.1:8081/probe/redos").strip()
    # PCRE1 (Debian 12) reports -8, PCRE2 (Debian 13) -47.
    assert answer in ("nil pcre_exec() failed: -8", "nil pcre_exec() failed: -47"), answer
    assert scrape(host)[0][name] == before + 1


def test_a_cosocket_timeout_through_the_helper_increments_its_counter(host):
    name = ("openresty_lua_cosocket_timeouts_total", frozenset({("operation", "receive")}))
    before = scrape(host)[0][name]
    assert get(host, "http://127.0.0.1:8081/probe/timeout").strip() == "nil timeout"
    assert scrape(host)[0][name] == before + 1


def test_metrics_are_bound_to_loopback_and_absent_from_the_public_site(host):
    listeners = host.check_output("ss -Hltn").split("\n")
    metrics = [line.split()[3] for line in listeners if line.split()[3].endswith(":9145")]
    assert metrics == ["127.0.0.1:9145"]
    # The default site listens on every address: the metrics path does not exist there.
    body, status = host.check_output("curl -s -w '\\n%{http_code}' http://127.0.0.1/metrics").rsplit("\n", 1)
    assert status == "404"
    assert "openresty_" not in body


def test_service_runs_under_the_resource_limits(host):
    show = host.check_output(
        "systemctl show nginx -p MemoryMax -p MemoryHigh -p TasksMax -p CPUQuotaPerSecUSec -p LimitNOFILE"
    )
    props = dict(line.split("=", 1) for line in show.splitlines())
    assert props == {
        "MemoryMax": str(512 * 2 ** 20),
        "MemoryHigh": str(384 * 2 ** 20),
        "TasksMax": "4096",
        "CPUQuotaPerSecUSec": "1.500000s",
        "LimitNOFILE": "8192",
    }
    # What the kernel enforces, read from the master's cgroups (v1 or v2).
    master = host.check_output("cat /run/nginx.pid")
    cgroups = {}
    for line in host.file("/proc/%s/cgroup" % master).content_string.splitlines():
        controllers, path = line.split(":", 2)[1:]
        for controller in controllers.split(",") if controllers else ["unified"]:
            cgroups[controller] = (controllers, path)

    def read(controller, v1_file, v2_file):
        if controller in cgroups and cgroups[controller][0]:
            mount, path = cgroups[controller]
            return host.file("/sys/fs/cgroup/%s%s/%s" % (mount, path, v1_file)).content_string.split()
        return host.file("/sys/fs/cgroup%s/%s" % (cgroups["unified"][1], v2_file)).content_string.split()

    assert read("memory", "memory.limit_in_bytes", "memory.max") == [str(512 * 2 ** 20)]
    assert read("pids", "pids.max", "pids.max") == ["4096"]
    assert read("cpu", "cpu.cfs_quota_us", "cpu.max")[0] == "150000"
    for pid in [master] + sorted(worker_pids(host)):
        limits = host.file("/proc/%s/limits" % pid).content_string
        assert re.search(r"^Max open files\s+8192\s+8192\s", limits, re.M), limits


def test_limits_reject_a_burst_with_429_but_not_the_health_check(host):
    codes = host.check_output(
        "curl -s -o /dev/null -w '%{http_code}\\n' 'http://127.0.0.1/?[1-60]'"
    ).split()
    health = host.check_output("curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1/hardened-openresty/health")
    host.run("sleep 3")  # the zone drains at 10r/s
    assert len(codes) == 60
    served, refused = codes.count("200"), codes.count("429")
    # The rate plus a burst of 20 are served, and what 10r/s refills while curl runs
    # (well under a second here); everything else is refused at once.
    assert served + refused == 60 and served >= 20 and refused >= 20, codes
    assert codes[:20] == ["200"] * 20 and codes[-1] == "429"
    assert health == "200"


def test_connection_limit_rejects_concurrent_requests_with_429(host):
    log = "/var/log/nginx/error.log"
    start = int(host.check_output("stat -c %%s %s", log))
    codes = host.check_output(
        "curl -s -o /dev/null -w '%{http_code}\\n' --parallel --parallel-immediate --parallel-max 40 "
        "'http://127.0.0.1:8081/probe/limited-slow?[1-40]'"
    ).split()
    host.run("sleep 3")
    new_log = host.check_output("tail -c +%s %s", str(start + 1), log)
    assert len(codes) == 40 and codes.count("429") >= 19, codes
    assert 'limiting connections by zone "hardened_openresty_conn"' in new_log
    assert 'by zone "hardened_openresty_req"' in new_log


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


def test_verifier_version_inventory_matches_the_host(host):
    versions = verify(host, "none")["versions"]
    printed = host.run("nginx -v").stderr.strip()
    assert printed == "nginx version: nginx/%s" % versions["version"]
    assert versions["openresty"] is False
    # What ngx.re really uses: Debian 12's lua module links PCRE1, Debian 13's PCRE2.
    codename = host.system_info.codename
    assert versions["pcre"] == {"bookworm": 1, "trixie": 2}[codename]
    assert versions["luajit_library"].startswith("libluajit")


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


def test_the_effective_config_passes_gixy_ng_without_findings(host, effective, tmp_path):
    # gixy-ng (the controller's test tooling, in its own environment: the Makefile's
    # HARDENED_GIXY) reads the `nginx -T` dump of this host.
    dump = tmp_path / "nginx-T.conf"
    dump.write_text(effective)
    run = subprocess.run([GIXY, "-f", "json", str(dump)], capture_output=True, text=True, check=False)
    findings = json.loads(run.stdout or "null")
    assert findings == [], [(f["plugin"], f["file"], f["summary"]) for f in findings or ()] or run.stderr
    assert run.returncode == 0, run.stderr
    assert "Switched to parse nginx configuration dump" in run.stderr, "gixy must have read every file of the dump"


def test_verifier_reads_the_g_include_the_service_runs_with(host):
    # A drop-in gives nginx a -g that includes one more file; after a restart the master
    # runs with it. The verifier must read that file from disk, first, and real nginx -T
    # (run with the same flags) must print exactly the files it read: no
    # nginx-dump-mismatch.
    dropin = "/etc/systemd/system/nginx.service.d/zz-molecule-g.conf"
    extra = "/etc/nginx/molecule-g.conf"
    params = "include %s; daemon on; master_process on;" % extra
    host.run_expect([0], "printf 'worker_priority 0;\\n' > %s", extra)
    exec_start = 'ExecStart=/usr/sbin/nginx -g "%s"' % params
    host.run_expect([0], "printf '%%s\\n' %s %s %s > %s", "[Service]", "ExecStart=", exec_start, dropin)
    try:
        host.run_expect([0], "systemctl daemon-reload")
        host.run_expect([0], "systemctl restart nginx")
        assert params in host.check_output("cat /proc/$(cat /run/nginx.pid)/cmdline | tr '\\0' ' '")
        result = verify(host, "low")
    finally:
        host.run_expect([0], "rm -f %s %s", dropin, extra)
        host.run_expect([0], "systemctl daemon-reload")
        host.run_expect([0], "systemctl restart nginx")
    assert result["service_flags"] == {"conf": None, "prefix": None, "params": params, "origin": "unit nginx"}
    assert extra in result["config_files"]
    assert result["findings"] == [], result["findings"]


@pytest.mark.parametrize("name", ["alpha", "beta"])
def test_each_site_of_server_sites_answers_by_name(host, name):
    answer = host.check_output("curl -s --max-time 10 -H 'Host: %s.test' http://127.0.0.1:8090/", name)
    assert answer == "site %s" % name


def test_sites_live_in_the_role_directory_and_the_absent_one_does_not(host):
    sites = host.file("/etc/nginx/hardened/sites")
    assert sites.user == "root" and sites.group == "root"
    names = sorted(host.check_output("ls /etc/nginx/hardened/sites").split())
    assert names == ["alpha.conf", "beta.conf", "molecule-probe.conf"]
    for name in names:
        site = host.file("/etc/nginx/hardened/sites/" + name)
        assert (site.user, site.group, site.mode) == ("root", "root", 0o644)


def test_the_http_snippet_is_live(host, effective):
    assert "log_format molecule_sites '$host $status';" in effective
    host.check_output("curl -s --max-time 10 -H 'Host: alpha.test' http://127.0.0.1:8090/")
    assert host.check_output("tail -n 1 /var/log/nginx/sites.log") == "alpha.test 200"
