from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

import pytest

from ansible_collections.hardened.openresty.plugins.module_utils import nginx_runtime
from ansible_collections.hardened.openresty.plugins.module_utils.nginx_service import (
    find_master,
    main_error_log,
    observe,
    read_new_lines,
    resolve_paths,
    serious_entries,
    wait_for_reload,
    wait_for_start,
)

MASTER = 100
ALERT = ("2024/05/01 12:00:00 [alert] 100#100: failed to load the 'resty.core' module "
         "(reason: module 'resty.core' not found:")
CONTINUATION = "\tno file '/nonexistent/resty/core.lua') in /etc/nginx/nginx.conf:62"


def proc(pid, ppid, title):
    return {"pid": pid, "ppid": ppid, "uid": 0, "title": title, "start_time": 0.0}


def master():
    return proc(MASTER, 1, "nginx: master process /usr/sbin/nginx")


def worker(pid, draining=False):
    return proc(pid, MASTER, "nginx: worker process" + (" is shutting down" if draining else ""))


class Clock(object):
    """A clock that advances only when the code under test sleeps."""

    def __init__(self):
        self.now = 1000.0

    def time(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def scripted(*steps):
    """list_processes() that returns each step in turn and then the last one forever."""
    steps = list(steps)

    def read():
        return steps.pop(0) if len(steps) > 1 else steps[0]
    return read


# --- paths -------------------------------------------------------------------------------

def test_resolve_paths_debian_keeps_absolute_paths_and_drops_stderr_log():
    facts = {"prefix": "/usr/share/nginx", "conf_path": "/etc/nginx/nginx.conf",
             "pid_path": "/run/nginx.pid", "error_log_path": "stderr"}
    assert resolve_paths(facts) == {"conf_path": "/etc/nginx/nginx.conf", "pid_path": "/run/nginx.pid",
                                    "error_log_path": None}


def test_resolve_paths_openresty_applies_compiled_defaults_under_prefix():
    facts = {"prefix": "/usr/local/openresty/nginx", "conf_path": None, "pid_path": None, "error_log_path": None}
    assert resolve_paths(facts) == {
        "conf_path": "/usr/local/openresty/nginx/conf/nginx.conf",
        "pid_path": "/usr/local/openresty/nginx/logs/nginx.pid",
        "error_log_path": "/usr/local/openresty/nginx/logs/error.log",
    }


def test_resolve_paths_relative_values_are_under_prefix():
    facts = {"prefix": "/opt/nginx/", "conf_path": "etc/main.conf", "pid_path": None, "error_log_path": "var/err.log"}
    paths = resolve_paths(facts)
    assert paths["conf_path"] == "/opt/nginx/etc/main.conf"
    assert paths["error_log_path"] == "/opt/nginx/var/err.log"


@pytest.mark.parametrize("text,expected", [
    ("user www-data;\nerror_log /var/log/nginx/error.log;\nhttp { }\n", "/var/log/nginx/error.log"),
    # Debian's older nginx.conf sets error_log only inside http: that is not the master's log.
    ("events {}\nhttp {\n  error_log /var/log/nginx/error.log;\n}\n", None),
    ("# error_log /commented.log;\nerror_log \"/var/log/q uoted.log\" warn;\n", "/var/log/q uoted.log"),
    ("error_log stderr;\nerror_log syslog:server=unix:/dev/log;\n", None),
    ("error_log stderr;\nerror_log logs/error.log;\n", "/usr/share/nginx/logs/error.log"),
    ("http { server { location / { content_by_lua_block { ngx.say('}') } } } }\nerror_log /after.log;\n",
     "/after.log"),
    # read by the one nginx parser: a Lua long string holding "}" does not end the block
    ("init_by_lua_block { local s = [[\n}\nerror_log /fake.log;\n]] }\nerror_log /real.log;\n",
     "/real.log"),
    # the path is a C string for nginx
    ('error_log "/var/log/a.log\x00x";\n', "/var/log/a.log"),
    ('error_log "stderr\x00x";\n', None),
    # a configuration nginx would reject names no log
    ("error_log /x.log\n", None),
])
def test_main_error_log_only_counts_the_main_context(text, expected):
    assert main_error_log(text, "/usr/share/nginx/") == expected


# --- error log ---------------------------------------------------------------------------

def test_read_new_lines_returns_only_what_was_appended(tmp_path):
    log = tmp_path / "error.log"
    log.write_text("old line\n")
    offset = os.path.getsize(str(log))
    with open(str(log), "a") as handle:
        handle.write(ALERT + "\n" + CONTINUATION + "\n\n")
    assert read_new_lines(str(log), offset) == [ALERT, CONTINUATION]


def test_read_new_lines_after_rotation_reads_from_the_start(tmp_path):
    log = tmp_path / "error.log"
    log.write_text("x" * 500 + "\n")
    offset = os.path.getsize(str(log))
    log.write_text("fresh\n")
    assert read_new_lines(str(log), offset) == ["fresh"]


def test_read_new_lines_limits_and_drops_the_partial_first_line(tmp_path):
    log = tmp_path / "error.log"
    log.write_text("".join("line %03d\n" % n for n in range(100)))
    assert read_new_lines(str(log), 0, limit=20) == ["line 098", "line 099"]


def test_read_new_lines_without_a_file_is_empty(tmp_path):
    assert read_new_lines(str(tmp_path / "missing.log"), 0) == []
    assert read_new_lines(None, None) == []


def test_serious_entries_keep_continuation_lines_and_filter_by_pid():
    lines = [
        "2024/05/01 12:00:00 [error] 100#100: not serious",
        ALERT,
        CONTINUATION,
        "2024/05/01 12:00:01 [crit] 205#205: SSL_do_handshake() failed",
        "2024/05/01 12:00:01 [notice] 100#100: signal process started",
    ]
    assert serious_entries(lines, MASTER) == [ALERT + "\n" + CONTINUATION]
    assert len(serious_entries(lines)) == 2


# --- processes ---------------------------------------------------------------------------

def write_proc(root, pid, ppid, title):
    base = root / str(pid)
    base.mkdir()
    fields = ["S", str(ppid)] + ["0"] * 17 + ["250"]
    (base / "stat").write_text("%d (nginx) %s\n" % (pid, " ".join(fields)))
    (base / "status").write_text("Name:\tnginx\nUid:\t0\t0\t0\t0\n")
    (base / "cmdline").write_text(title.replace(" ", "\x00") + "\x00")


def test_find_master_skips_a_stale_pid_that_belongs_to_another_process(tmp_path):
    (tmp_path / "stat").write_text("cpu 0\nbtime 1700000000\n")
    write_proc(tmp_path, 300, 1, "/usr/bin/python3 app.py")
    write_proc(tmp_path, MASTER, 1, "nginx: master process /usr/sbin/nginx")

    def read(pid):
        return nginx_runtime.read_process(pid, str(tmp_path), clock_ticks=100)

    assert find_master([300], read) is None
    assert find_master([None, 300, 999, MASTER], read) == MASTER


def test_observe_separates_new_old_and_draining_workers():
    procs = [master(), worker(11, draining=True), worker(12), worker(21), worker(22),
             proc(30, MASTER, "nginx: cache manager process"), proc(40, 1, "nginx: worker process")]
    state = observe(MASTER, [11, 12], procs)
    assert state == {"master_alive": True, "new": [21, 22], "old_active": [12], "old_draining": [11]}


# --- waiting for a reload ----------------------------------------------------------------

def run_wait(processes, lines=None, timeout=5):
    clock = Clock()
    log = lines if callable(lines) else (lambda: lines or [])
    verdict = wait_for_reload(MASTER, [11, 12], processes, log, timeout, clock=clock.time, sleep=clock.sleep)
    return verdict, clock.now - 1000.0


def test_reload_succeeds_once_new_workers_run_and_old_ones_exited():
    verdict, waited = run_wait(scripted(
        [master(), worker(11), worker(12)],
        [master(), worker(11), worker(12), worker(21), worker(22)],
        [master(), worker(11, True), worker(21), worker(22)],
        [master(), worker(21), worker(22)],
    ))
    assert verdict["outcome"] == "reloaded"
    assert verdict["new_worker_pids"] == [21, 22]
    assert verdict["old_workers_draining"] == []
    assert waited < 1


def test_reload_with_a_worker_still_draining_at_the_timeout_succeeds_and_reports_it():
    verdict, waited = run_wait(scripted([master(), worker(11, True), worker(21), worker(22)]), timeout=3)
    assert verdict["outcome"] == "reloaded"
    assert verdict["old_workers_draining"] == [11]
    assert waited >= 3


def test_old_workers_still_serving_at_the_timeout_is_a_failure():
    verdict, dummy = run_wait(scripted([master(), worker(11), worker(12), worker(21)]), timeout=3)
    assert verdict["outcome"] == "timeout"
    assert verdict["old_workers_active"] == [11, 12]


def test_rejected_reload_is_detected_from_the_masters_alert():
    verdict, waited = run_wait(scripted([master(), worker(11), worker(12)]), [ALERT, CONTINUATION], timeout=30)
    assert verdict["outcome"] == "rejected"
    assert verdict["old_workers_active"] == [11, 12]
    assert verdict["error_log_lines"] == [ALERT, CONTINUATION]
    assert waited < 10, "a rejection must not wait for the whole timeout"


def test_a_slow_fork_after_an_alert_within_the_grace_period_is_a_success():
    # The master alerted, then forked its new workers three seconds later.
    verdict, dummy = run_wait(scripted(
        *([[master(), worker(11), worker(12)]] * 30
          + [[master(), worker(11), worker(12), worker(21), worker(22)], [master(), worker(21), worker(22)]])
    ), [ALERT, CONTINUATION], timeout=30)
    assert verdict["outcome"] == "reloaded"


def test_the_code_cache_off_alert_is_not_serious():
    off = ("2024/05/01 12:00:00 [alert] 100#100: lua_code_cache is off; this will hurt "
           "performance in /etc/nginx/conf.d/extra.conf:3")
    assert serious_entries([off], MASTER) == []
    assert serious_entries([off, ALERT], MASTER) == [ALERT]


def test_a_workers_crit_line_alone_is_not_a_rejection():
    noise = ["2024/05/01 12:00:00 [crit] 11#11: SSL_do_handshake() failed"]
    verdict, waited = run_wait(scripted([master(), worker(11), worker(12)]), noise, timeout=4)
    assert verdict["outcome"] == "timeout"
    assert waited >= 4


def test_alert_followed_by_a_new_generation_is_a_success():
    verdict, dummy = run_wait(scripted(
        [master(), worker(11), worker(12)],
        [master(), worker(11), worker(12), worker(21)],
        [master(), worker(21)],
    ), [ALERT])
    assert verdict["outcome"] == "reloaded"


def test_master_exit_is_reported():
    verdict, dummy = run_wait(scripted([worker(11)]))
    assert verdict["outcome"] == "master_exited"


# --- waiting for a start -----------------------------------------------------------------

def test_wait_for_start_returns_master_and_workers():
    clock = Clock()
    finds = iter([None, None, MASTER])
    found = wait_for_start(lambda: next(finds, MASTER), scripted([master(), worker(21)]), 5,
                           clock=clock.time, sleep=clock.sleep)
    assert found == (MASTER, [21])


def test_wait_for_start_gives_up_after_the_timeout():
    clock = Clock()
    found = wait_for_start(lambda: MASTER, scripted([master()]), 2, clock=clock.time, sleep=clock.sleep)
    assert found == (MASTER, [])
    assert clock.now - 1000.0 >= 2
