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


# The reload is signalled at SIGNALLED (the fake clock's start); workers 11-19 are the old
# generation (started long before), workers from 20 on were forked after the signal.
SIGNALLED = 1000.0


def proc(pid, ppid, title, start_time=None):
    if start_time is None:
        start_time = SIGNALLED + 0.05 if pid >= 20 and pid != MASTER else 0.0
    return {"pid": pid, "ppid": ppid, "uid": 0, "title": title, "start_time": start_time}


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

def write_proc(root, pid, ppid, title, uid=0, cgroup="0::/system.slice/nginx.service\n"):
    base = root / str(pid)
    base.mkdir()
    fields = ["S", str(ppid)] + ["0"] * 17 + ["250"]
    (base / "stat").write_text("%d (nginx) %s\n" % (pid, " ".join(fields)))
    (base / "status").write_text("Name:\tnginx\nUid:\t{0}\t{0}\t{0}\t{0}\n".format(uid))
    (base / "cgroup").write_text(cgroup)
    (base / "cmdline").write_text(title.replace(" ", "\x00") + "\x00")


def test_a_worker_user_process_titled_master_behind_a_stale_pid_file_is_not_accepted(tmp_path):
    # A www-data process renamed itself "nginx: master process" and the stale pid file
    # names its pid; it even sits in the service's cgroup (a worker's child does).
    (tmp_path / "stat").write_text("cpu 0\nbtime 1700000000\n")
    write_proc(tmp_path, 300, 1, "nginx: master process /usr/sbin/nginx", uid=33)
    write_proc(tmp_path, 400, 1, "nginx: master process /usr/sbin/nginx", cgroup="0::/user.slice/session-1.scope\n")
    write_proc(tmp_path, MASTER, 1, "nginx: master process /usr/sbin/nginx")
    (tmp_path / "nginx.pid").write_text("300\n")

    def read(pid):
        return nginx_runtime.read_process(pid, str(tmp_path), clock_ticks=100)

    pid_file = nginx_runtime.read_pid_file(str(tmp_path / "nginx.pid"))
    assert find_master([pid_file], read, unit="nginx") is None
    assert find_master([pid_file], read) is None, "the owner alone already refuses it"
    assert find_master([400], read, unit="nginx") is None, "a root master outside the unit is not the service's"
    assert find_master([400], read) == 400, "without systemd there is no unit to check"
    assert find_master([pid_file, MASTER], read, unit="nginx.service") == MASTER


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
    verdict = wait_for_reload(MASTER, [11, 12], processes, log, timeout, signalled_at=SIGNALLED,
                              clock=clock.time, sleep=clock.sleep)
    return verdict, clock.now - 1000.0


def test_reload_succeeds_once_the_new_generation_runs_and_the_old_one_was_told_to_quit():
    verdict, waited = run_wait(scripted(
        [master(), worker(11), worker(12)],
        [master(), worker(11), worker(12), worker(21), worker(22)],
        [master(), worker(11, True), worker(21), worker(22)],
        [master(), worker(21), worker(22)],
    ))
    assert verdict["outcome"] == "reloaded"
    assert verdict["new_worker_pids"] == [21, 22]
    assert verdict["old_workers_draining"] == [11], "success does not wait for old workers to exit"
    assert waited < 1


def test_reload_with_old_workers_gone_reports_nothing_draining():
    verdict, dummy = run_wait(scripted([master(), worker(21), worker(22)]))
    assert verdict["outcome"] == "reloaded"
    assert verdict["old_workers_draining"] == []


def test_reload_with_a_worker_still_draining_succeeds_at_once_and_reports_it():
    verdict, waited = run_wait(scripted([master(), worker(11, True), worker(21), worker(22)]), timeout=3)
    assert verdict["outcome"] == "reloaded"
    assert verdict["old_workers_draining"] == [11]
    assert waited < 1


def test_no_new_generation_at_the_timeout_is_a_failure():
    verdict, waited = run_wait(scripted([master(), worker(11), worker(12)]), timeout=3)
    assert verdict["outcome"] == "timeout"
    assert verdict["old_workers_active"] == [11, 12]
    assert verdict["new_worker_pids"] == []
    assert waited >= 3


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


EMERG = ('2024/05/01 12:00:00 [emerg] 100#100: unknown directive "bogus" in /etc/nginx/conf.d/x.conf:1')


def killed(pid):
    return "2024/05/01 12:00:00 [alert] 100#100: worker process %d exited on signal 9" % pid


def test_rejected_reload_whose_killed_workers_respawn_reads_as_rejected():
    # The master refused the new configuration; meanwhile both old workers were killed (the
    # worker user can kill them) and the master respawned them with the OLD configuration.
    # The respawns are new pids started after the signal, yet no new generation exists.
    verdict, waited = run_wait(scripted(
        [master(), worker(11), worker(12)],
        [master(), worker(21), worker(22)],
    ), [EMERG, killed(11), killed(12)], timeout=30)
    assert verdict["outcome"] == "rejected"
    assert verdict["new_worker_pids"] == []
    assert waited < 10


def test_rejected_reload_with_one_respawn_is_rejected_not_a_timeout():
    verdict, dummy = run_wait(scripted(
        [master(), worker(11), worker(12)],
        [master(), worker(12), worker(21)],
    ), [EMERG, killed(11)], timeout=30)
    assert verdict["outcome"] == "rejected"
    assert verdict["old_workers_active"] == [12]


def test_a_worker_respawned_before_the_signal_is_not_a_new_generation():
    # 13 replaced a crashed worker between the listing of the old workers and the signal.
    respawned_before = proc(13, MASTER, "nginx: worker process", start_time=SIGNALLED - 0.2)
    verdict, dummy = run_wait(scripted([master(), worker(12), respawned_before]), [EMERG], timeout=30)
    assert verdict["outcome"] == "rejected"


def test_a_respawn_during_an_accepted_reload_still_counts_the_new_generation():
    verdict, dummy = run_wait(scripted(
        [master(), worker(11), worker(12)],
        [master(), worker(21), worker(22), worker(23)],
    ), [killed(11)], timeout=30)
    assert verdict["outcome"] == "reloaded"


def test_accepted_reload_with_an_old_worker_stuck_in_lua_is_a_success_that_says_so():
    # Worker 11 spins in a Lua loop: it never reads the QUIT the master sent, so its title
    # stays "worker process". The new generation serves: that is the success.
    verdict, waited = run_wait(scripted(
        [master(), worker(11), worker(12)],
        [master(), worker(11), worker(12, True), worker(21), worker(22)],
        [master(), worker(11), worker(21), worker(22)],
    ), timeout=30)
    assert verdict["outcome"] == "reloaded"
    assert verdict["new_worker_pids"] == [21, 22]
    assert verdict["old_workers_draining"] == [11]
    assert waited < 5, "a stuck old worker must not hold the verdict until the timeout"


def test_a_new_generation_that_appears_just_before_the_timeout_is_a_success_not_a_timeout():
    # The old workers have not been seen shutting down when the time is up: the new
    # generation serves all the same, and a restore now would undo a live configuration.
    before = [master(), worker(11), worker(12)]
    verdict, waited = run_wait(scripted(*([before] * 95 + [before + [worker(21), worker(22)]])), timeout=1)
    assert verdict["outcome"] == "reloaded"
    assert verdict["new_worker_pids"] == [21, 22]
    assert verdict["old_workers_draining"] == [11, 12] and verdict["old_workers_active"] == []
    assert 0.95 <= waited < 1.1


INIT_ERROR = [
    # What Debian 12's nginx 1.22.1 + lua-nginx-module 0.10.23 log on a HUP whose new
    # configuration has an init_by_lua error: [error] only, from the master.
    "2026/12/01 06:15:23 [error] 100#100: init_by_lua error: init_by_lua(conf.d/initerr.conf:1):1: boom",
    "stack traceback:",
    "\t[C]: in function 'error'",
]


def test_an_init_by_lua_error_from_the_master_is_a_rejection_not_a_timeout():
    verdict, waited = run_wait(scripted([master(), worker(11), worker(12)]), INIT_ERROR, timeout=30)
    assert verdict["outcome"] == "rejected"
    assert waited < 10


def test_a_workers_error_line_alone_is_not_a_rejection():
    noise = ["2024/05/01 12:00:00 [error] 11#11: *1 open() \"/x\" failed (2: No such file or directory)"]
    verdict, dummy = run_wait(scripted([master(), worker(11), worker(12)]), noise, timeout=3)
    assert verdict["outcome"] == "timeout"


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


# --- who holds the listening sockets ---------------------------------------------------------

TCP_HEADER = ("  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n")


def tcp_line(slot, address, port, inode, state="0A"):
    return ("%4d: %s:%04X 00000000:0000 %s 00000000:00000000 00:00000000 00000000     0        0 %d 1 "
            "0000000000000000 100 0 0 10 0\n" % (slot, address, port, state, inode))


def test_a_port_answered_by_a_socket_the_master_does_not_hold_is_named(tmp_path):
    # nginx's master holds the listener of 8081; the worker user bound 8080 itself (nginx
    # was not listening there) and would answer the release proof and the health check.
    (tmp_path / "net").mkdir()
    (tmp_path / "net" / "tcp").write_text(TCP_HEADER + tcp_line(0, "0100007F", 8081, 111)
                                          + tcp_line(1, "0100007F", 8080, 222)
                                          + tcp_line(2, "0100007F", 8080, 333, state="01"))
    (tmp_path / "net" / "tcp6").write_text(TCP_HEADER)
    for pid, inode in ((MASTER, 111), (300, 222)):
        fds = tmp_path / str(pid) / "fd"
        fds.mkdir(parents=True)
        os.symlink("socket:[%d]" % inode, str(fds / "6"))
        os.symlink("/dev/null", str(fds / "0"))
    assert nginx_runtime.foreign_listeners(MASTER, [8081], str(tmp_path)) == {}
    assert nginx_runtime.foreign_listeners(MASTER, [8080, 8081, 9000], str(tmp_path)) == {
        8080: "listened on by a socket the master does not hold",
        9000: "nothing listens there",
    }
