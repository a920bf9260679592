from __future__ import absolute_import, division, print_function

__metaclass__ = type

import signal
import subprocess
import sys

import pytest

from ansible.module_utils import basic

from ansible_collections.hardened.openresty.plugins.modules import nginx_reload
from ansible_collections.hardened.openresty.plugins.module_utils.nginx_runtime import is_master

VERSION_TEXT = (
    "nginx version: nginx/1.22.1\n"
    "configure arguments: --prefix=/usr/share/nginx --conf-path=%s --error-log-path=stderr --pid-path=%s\n"
)
ALERT = "2024/05/01 12:00:00 [alert] 100#100: failed to load the 'resty.core' module (reason: not found)"
# The module reads "now" on /proc's clock before it signals; workers of a reload start later.
SIGNALLED = 500.0
UNIT_CGROUP = "0::/system.slice/docker-1.scope/system.slice/nginx.service\n"


class World(object):
    """A host with one nginx: processes, a pid file, an error log and a service manager.

    reload_effect says what a reload does: "new" (a new worker generation replaces the
    old one), "reject" (the master logs an alert and keeps its workers).
    """

    def __init__(self, tmp_path, running=True, test_rc=0, reload_effect="new", systemd=True, tracked=True,
                 openresty=False, restart_effect="new", upgrade_effect="serve"):
        if openresty:
            # Official OpenResty packages set only the prefix; the rest are nginx's defaults.
            (tmp_path / "conf").mkdir()
            (tmp_path / "logs").mkdir()
            self.conf = tmp_path / "conf" / "nginx.conf"
            self.log = tmp_path / "logs" / "error.log"
            self.pid_file = tmp_path / "logs" / "nginx.pid"
            self.conf.write_text("events {}\n")
            self.version_text = ("nginx version: openresty/1.25.3.1\nconfigure arguments: --prefix=%s/ "
                                 "--with-cc-opt=-O2\n" % tmp_path)
            self.unit = "openresty.service"
        else:
            self.conf = tmp_path / "nginx.conf"
            self.log = tmp_path / "error.log"
            self.pid_file = tmp_path / "nginx.pid"
            self.conf.write_text("user www-data;\nerror_log %s;\nevents {}\n" % self.log)
            self.version_text = VERSION_TEXT % (self.conf, self.pid_file)
            self.unit = "nginx.service"
        self.log.write_text("2024/05/01 11:00:00 [alert] 100#100: an old alert before the reload\n")
        self.test_rc = test_rc
        self.reload_effect = reload_effect
        self.restart_effect = restart_effect
        # What USR2 does: "serve" (a new master with workers), "exit" (the new binary logs
        # why and exits), "hang" (the new binary runs and never serves), "untracked"
        # (serves, but systemd keeps the old main pid).
        self.upgrade_effect = upgrade_effect
        self.main_pid = 100
        self.systemd = systemd
        self.tracked = tracked
        self.calls = []
        self.signals = []
        self.procs = []
        if running:
            self.start()

    def start(self, master=100):
        cgroup = UNIT_CGROUP.replace("nginx.service", self.unit) if self.tracked else "0::/user.slice/session-3.scope\n"
        self.procs = [self.proc(master, 1, "nginx: master process /usr/sbin/nginx", cgroup=cgroup),
                      self.proc(master + 1, master, "nginx: worker process", uid=33, cgroup=cgroup),
                      self.proc(master + 2, master, "nginx: worker process", uid=33, cgroup=cgroup)]
        if master == 100:
            self.procs[1]["pid"], self.procs[2]["pid"] = 11, 12
        self.pid_file.write_text("%d\n" % master)

    @staticmethod
    def proc(pid, ppid, title, uid=0, cgroup=UNIT_CGROUP, start_time=0.0):
        return {"pid": pid, "ppid": ppid, "uid": uid, "title": title, "start_time": start_time, "cgroup": cgroup}

    def reload(self):
        if self.reload_effect == "new":
            self.procs = [p for p in self.procs if p["ppid"] != 100] + [
                self.proc(21, 100, "nginx: worker process", uid=33, start_time=SIGNALLED + 0.1),
                self.proc(22, 100, "nginx: worker process", uid=33, start_time=SIGNALLED + 0.1)]
        else:
            with open(str(self.log), "a") as handle:
                handle.write(ALERT + "\n\tno file '/nonexistent/resty/core.lua'\n")

    def run_command(self, argv):
        self.calls.append(argv)
        if argv[1:] == ["-V"]:
            return 0, "", self.version_text
        if argv[1:2] == ["-t"]:
            if self.test_rc:
                return 1, "", 'nginx: [emerg] unknown directive "bogus" in %s:3' % self.conf
            return 0, "", "nginx: configuration file %s test is successful" % self.conf
        if argv[1:3] == ["show", "--property"]:
            alive = any(p["pid"] == self.main_pid for p in self.procs)
            return 0, "%d\n" % self.main_pid if alive and self.tracked else "0\n", ""
        if argv[1] == "reload":
            self.reload()
            return 0, "", ""
        if argv[1] == "daemon-reload":
            return 0, "", ""
        if argv[1] == "restart":
            self.procs = []
            if self.restart_effect == "fail":
                with open(str(self.log), "a") as handle:
                    handle.write("2024/05/01 12:00:01 [error] 300#300: init_by_lua error: boom\n")
                return 1, "", "Job for nginx.service failed because the control process exited with error code."
            self.start(master=200)
            self.main_pid = 200
            return 0, "", ""
        if argv[0].endswith("journalctl"):
            return 0, "-- cursor: s=1\n", ""
        if argv[1] == "start" or argv[1:2] == ["-c"]:
            self.start()
            return 0, "", ""
        raise AssertionError("unexpected command %r" % argv)

    def kill(self, pid, sig):
        self.signals.append((pid, sig))
        if sig == signal.SIGHUP:
            self.reload()
        elif sig == signal.SIGUSR2:
            self.upgrade()
        elif sig == signal.SIGQUIT:
            # A master quits with its workers; a new binary that quits hands the pid file back.
            self.procs = [p for p in self.procs if pid != p["pid"] and (pid != p["ppid"] or is_master(p))]
            for orphan in self.procs:
                orphan["ppid"] = 1 if orphan["ppid"] == pid else orphan["ppid"]
            if pid == 100:
                self.main_pid = 300 if self.upgrade_effect != "untracked" else 100
            else:
                self.pid_file.write_text("100\n")

    def upgrade(self):
        started = SIGNALLED + 0.1
        if self.upgrade_effect == "exit":
            with open(str(self.log), "a") as handle:
                handle.write('2024/05/01 12:00:01 [emerg] 300#300: unknown directive "lua_new" in /etc/nginx/nginx.conf:9\n')
            return
        if self.upgrade_effect == "hang":
            self.procs.append(self.proc(300, 100, "/usr/sbin/nginx -g daemon on;", start_time=started))
            return
        self.pid_file.write_text("300\n")
        self.procs += [self.proc(300, 100, "nginx: master process /usr/sbin/nginx", start_time=started),
                       self.proc(301, 300, "nginx: worker process", uid=33, start_time=started),
                       self.proc(302, 300, "nginx: worker process", uid=33, start_time=started)]

    def read_process(self, pid, *args, **kwargs):
        return next((p for p in self.procs if p["pid"] == int(pid)), None)

    def commands(self):
        return [c[1] for c in self.calls if c[1] != "-V"]


@pytest.fixture
def world(monkeypatch, tmp_path):
    def make(**kwargs):
        w = World(tmp_path, **kwargs)
        bins = {"nginx": "/usr/sbin/nginx", "systemctl": "/bin/systemctl", "journalctl": "/bin/journalctl"}
        monkeypatch.setattr(basic.AnsibleModule, "get_bin_path",
                            lambda self, name, required=False, opt_dirs=None: bins.get(name))
        monkeypatch.setattr(basic.AnsibleModule, "run_command", lambda self, argv, **kw: w.run_command(argv))
        monkeypatch.setattr(nginx_reload, "_systemctl", lambda module: "/bin/systemctl" if w.systemd else None)
        monkeypatch.setattr(nginx_reload, "list_processes", lambda *a, **kw: list(w.procs))
        monkeypatch.setattr(nginx_reload, "read_process", w.read_process)
        monkeypatch.setattr(nginx_reload.os, "kill", w.kill)
        monkeypatch.setattr(nginx_reload, "_pidfd_open", None)
        monkeypatch.setattr(nginx_reload, "process_clock", lambda *a, **kw: SIGNALLED)
        w.stale = None
        monkeypatch.setattr(nginx_reload, "stale_binary", lambda pid, binary: w.stale)
        # Only a master the upgrade started runs the file now on disk.
        monkeypatch.setattr(nginx_reload, "runs_file", lambda pid, binary: pid >= 300)
        monkeypatch.setattr(nginx_reload, "children_of", lambda ppid: [p for p in w.procs if p["ppid"] == ppid])
        return w
    return make


def test_reload_tests_first_then_proves_the_new_generation(world, run_module):
    w = world()
    result = run_module(nginx_reload, {"timeout": 5})
    assert not result["failed"], result["msg"]
    assert result["changed"] is True
    assert result["action"] == "reloaded"
    assert result["master_pid"] == 100
    assert result["old_worker_pids"] == [11, 12]
    assert result["new_worker_pids"] == [21, 22]
    assert result["config"] == str(w.conf)
    # One nginx -t, then the HUP to the verified master: `systemctl reload` would run
    # `nginx -s reload`, which parses the whole configuration a second time.
    assert w.commands() == ["-t"]
    assert w.signals == [(100, signal.SIGHUP)]
    assert result["error_log_lines"] == [], "lines logged before the reload are not part of it"
    assert not any("journalctl" in c[0] for c in w.calls), "a file error log needs no journal cursor"


def test_failing_config_test_changes_nothing(world, run_module):
    w = world(test_rc=1)
    result = run_module(nginx_reload, {})
    assert result["failed"]
    assert 'unknown directive "bogus"' in result["msg"]
    assert "reload" not in w.commands() and "start" not in w.commands()
    assert [p["pid"] for p in w.procs] == [100, 11, 12]


def test_check_mode_runs_nothing_and_says_what_it_would_do(world, run_module):
    # nginx -t writes: it creates the configuration's log files and temp dirs and can
    # leave a pid file. Check mode changes nothing on the host.
    w = world()
    result = run_module(nginx_reload, {}, check_mode=True)
    assert result["changed"] is True and result["action"] == "reloaded"
    assert w.commands() == [], "check mode runs no nginx -t and signals nothing"
    assert w.signals == []
    assert result["master_pid"] == 100 and result["old_worker_pids"] == [11, 12]
    assert "would test" in result["msg"] and "SIGHUP" in result["msg"]


def test_check_mode_restart_says_it_would_restart(world, run_module):
    w = world()
    result = run_module(nginx_reload, {"restart": True}, check_mode=True)
    assert result["action"] == "restarted" and w.commands() == []


def test_stopped_service_is_started(world, run_module):
    w = world(running=False)
    result = run_module(nginx_reload, {"timeout": 5})
    assert not result["failed"], result["msg"]
    assert result["action"] == "started"
    assert result["master_pid"] == 100 and result["new_worker_pids"] == [11, 12]
    assert w.commands().index("-t") < w.commands().index("start"), "a start is tested first"
    assert "start" in w.commands() and "reload" not in w.commands()


def test_stale_pid_file_counts_as_not_running(world, run_module):
    w = world(running=False, systemd=False)
    w.pid_file.write_text("100\n")  # no process 100 exists
    result = run_module(nginx_reload, {"timeout": 5})
    assert result["action"] == "started"
    assert ["/usr/sbin/nginx", "-c", str(w.conf)] in w.calls


def test_rejected_reload_fails_with_the_masters_error_lines(world, run_module):
    w = world(reload_effect="reject")
    result = run_module(nginx_reload, {"timeout": 30})
    assert result["failed"]
    assert result["changed"] is False
    assert "rejected the reload" in result["msg"] and "resty.core" in result["msg"]
    assert result["outcome"] == "rejected"
    assert "an old alert" not in result["msg"]
    assert result["error_log_lines"][0] == ALERT
    assert result["new_worker_pids"] == []
    assert result["elapsed"] < 10, "a rejection is reported without waiting for the timeout"
    assert [p["pid"] for p in w.procs] == [100, 11, 12]


def test_without_systemd_the_master_gets_sighup(world, run_module):
    w = world(systemd=False)
    result = run_module(nginx_reload, {"timeout": 5})
    assert not result["failed"], result["msg"]
    assert w.signals == [(100, signal.SIGHUP)]
    assert result["new_worker_pids"] == [21, 22]


def test_a_master_outside_the_unit_is_not_the_services_and_is_not_signalled(world, run_module):
    w = world(tracked=False)
    result = run_module(nginx_reload, {"timeout": 5})
    assert result["failed"]
    assert "outside nginx.service" in result["msg"]
    assert w.signals == [] and "start" not in w.commands()


def test_a_worker_user_process_behind_a_stale_pid_file_is_never_signalled(world, run_module):
    w = world(running=False)
    w.procs = [w.proc(300, 1, "nginx: master process /usr/sbin/nginx", uid=33)]
    w.pid_file.write_text("300\n")
    result = run_module(nginx_reload, {"timeout": 5})
    assert w.signals == []
    assert result["action"] == "started" and "start" in w.commands()


def test_restart_tests_first_then_proves_the_new_master_and_workers(world, run_module):
    w = world()
    result = run_module(nginx_reload, {"restart": True, "timeout": 5})
    assert not result["failed"], result["msg"]
    assert result["action"] == "restarted"
    assert [c for c in w.commands() if c not in ("show", "-u")] == ["-t", "daemon-reload", "restart"]
    assert result["master_pid"] == 200 and result["new_worker_pids"] == [201, 202]


STALE = "master 100 runs /usr/sbin/nginx (deleted), not the file now at /usr/sbin/nginx"


def test_a_master_on_a_replaced_binary_is_upgraded_in_place(world, run_module):
    w = world()
    w.stale = STALE
    check = run_module(nginx_reload, {"timeout": 5}, check_mode=True)
    assert check["action"] == "upgraded" and check["restart_reasons"] == [STALE] and w.signals == []
    assert "USR2" in check["msg"]
    result = run_module(nginx_reload, {"timeout": 5})
    assert not result["failed"], result["msg"]
    assert result["action"] == "upgraded" and result["outcome"] == "upgraded"
    assert result["restart_reasons"] == [STALE]
    # USR2 first; QUIT to the old master only once the new one serves. No restart.
    assert w.signals == [(100, signal.SIGUSR2), (100, signal.SIGQUIT)]
    assert [c for c in w.commands() if c not in ("show", "-u")] == ["-t"]
    assert result["master_pid"] == 300 and result["previous_master_pid"] == 100
    assert result["new_worker_pids"] == [301, 302] and result["old_workers_draining"] == []
    assert "nginx.service follows the new master" in result["msg"]


def test_an_upgrade_whose_new_binary_exits_keeps_the_old_master_serving(world, run_module):
    w = world(upgrade_effect="exit")
    w.stale = STALE
    result = run_module(nginx_reload, {"timeout": 10})
    assert result["failed"] and result["outcome"] == "failed"
    assert "the old master 100 keeps serving" in result["msg"] and 'unknown directive "lua_new"' in result["msg"]
    assert w.signals == [(100, signal.SIGUSR2)], "the old master is never told to quit"
    assert [p["pid"] for p in w.procs] == [100, 11, 12]
    assert result["changed"] is False


def test_a_new_binary_that_never_serves_is_told_to_quit(world, run_module):
    w = world(upgrade_effect="hang")
    w.stale = STALE
    result = run_module(nginx_reload, {"timeout": 1})
    assert result["failed"] and result["outcome"] == "timeout"
    assert w.signals == [(100, signal.SIGUSR2), (300, signal.SIGQUIT)]
    assert [p["pid"] for p in w.procs] == [100, 11, 12] and w.pid_file.read_text() == "100\n"
    assert "did not quit" not in result["msg"]


def test_an_upgrade_systemd_does_not_follow_fails(world, run_module):
    w = world(upgrade_effect="untracked")
    w.stale = STALE
    result = run_module(nginx_reload, {"timeout": 5})
    assert result["failed"]
    assert "nginx.service does not follow the new master" in result["msg"]
    assert result["master_pid"] == 300


def test_without_systemd_a_master_on_a_replaced_binary_is_upgraded_too(world, run_module):
    w = world(systemd=False)
    w.stale = STALE
    result = run_module(nginx_reload, {"timeout": 5})
    assert not result["failed"], result["msg"]
    assert result["action"] == "upgraded" and w.signals == [(100, signal.SIGUSR2), (100, signal.SIGQUIT)]
    assert "follows" not in result["msg"]


def test_binary_change_restart_restarts_a_master_on_a_replaced_binary(world, run_module):
    w = world()
    w.stale = STALE
    check = run_module(nginx_reload, {"timeout": 5, "binary_change": "restart"}, check_mode=True)
    assert check["action"] == "restarted" and check["restart_reasons"] == [STALE] and w.signals == []
    result = run_module(nginx_reload, {"timeout": 5, "binary_change": "restart"})
    assert not result["failed"], result["msg"]
    assert result["action"] == "restarted" and result["restart_reasons"] == [STALE]
    assert [c for c in w.commands() if c not in ("show", "-u")] == ["-t", "daemon-reload", "restart"]
    assert w.signals == [] and result["master_pid"] == 200


def test_without_systemd_binary_change_restart_fails_untouched(world, run_module):
    w = world(systemd=False)
    w.stale = STALE
    result = run_module(nginx_reload, {"timeout": 5, "binary_change": "restart"})
    assert result["failed"] and "(deleted)" in result["msg"] and "by hand" in result["msg"]
    assert w.signals == [] and w.commands() == []


def test_restart_that_fails_at_start_fails_with_nginxs_words(world, run_module):
    # nginx -t does not create a Lua VM: an init_by_lua error only shows at start.
    w = world(restart_effect="fail")
    result = run_module(nginx_reload, {"restart": True, "timeout": 5})
    assert result["failed"]
    assert "init_by_lua error: boom" in result["msg"]
    assert result["outcome"] == "start_failed"
    assert result["action"] == "restarted" and result["master_pid"] is None
    assert w.procs == []


def test_sighup_goes_through_a_pidfd_to_the_process_that_was_checked():
    if not hasattr(nginx_reload.os, "pidfd_open"):
        pytest.skip("no pidfd on this Python or kernel")
    # A parent started with SIGHUP ignored (nohup, some CI runners) hands that on to its
    # children: the child gets the default action, so that the signal ends it.
    inherited = signal.signal(signal.SIGHUP, signal.SIG_DFL)
    try:
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    finally:
        signal.signal(signal.SIGHUP, inherited)
    try:
        checked = []
        nginx_reload._signal(child.pid, lambda: checked.append(child.pid) or True)
        assert child.wait(timeout=10) == -signal.SIGHUP
        assert checked == [child.pid]
        with pytest.raises(LookupError):
            nginx_reload._signal(child.pid, lambda: False)
    finally:
        if child.poll() is None:
            child.kill()


def test_openresty_binary_uses_its_service_and_prefix_paths(world, run_module):
    w = world(openresty=True, reload_effect="reject")
    result = run_module(nginx_reload, {"timeout": 30})
    assert result["service"] == "openresty"
    assert result["config"] == str(w.conf)
    assert "resty.core" in result["msg"], "the error log under the prefix was read"


def test_a_port_the_master_does_not_hold_fails_the_proof(world, run_module, monkeypatch):
    # lua_app's release proof and health check ask these ports: only nginx's own sockets
    # may answer them.
    w = world()
    asked = []

    def foreign(master, ports, *args):
        asked.append((master, list(ports)))
        return {8080: "listened on by a socket the master does not hold"}
    monkeypatch.setattr(nginx_reload, "foreign_listeners", foreign)
    result = run_module(nginx_reload, {"timeout": 5, "ports": [8081, 8080]})
    assert result["failed"]
    assert "8080" in result["msg"] and "does not hold" in result["msg"]
    assert asked == [(100, [8081, 8080])]
    assert result["new_worker_pids"] == [21, 22]


def test_ports_held_by_the_master_pass(world, run_module, monkeypatch):
    world()
    monkeypatch.setattr(nginx_reload, "foreign_listeners", lambda master, ports, *a: {})
    result = run_module(nginx_reload, {"timeout": 5, "ports": [8081]})
    assert not result["failed"], result["msg"]


def test_with_every_path_given_nginx_v_is_not_run(world, run_module):
    w = world()
    result = run_module(nginx_reload, {"timeout": 5, "config": str(w.conf), "pid_file": str(w.pid_file),
                                       "error_log": str(w.log), "service": "nginx"})
    assert not result["failed"], result["msg"]
    assert [c[1] for c in w.calls] == ["-t"]


def test_a_failing_nginx_v_fails_with_the_message_every_module_gives(world, run_module, monkeypatch):
    w = world()
    monkeypatch.setattr(basic.AnsibleModule, "run_command",
                        lambda self, argv, **kw: (1, "", "exec format error") if argv[1:] == ["-V"]
                        else w.run_command(argv))
    result = run_module(nginx_reload, {"timeout": 5})
    assert result["failed"]
    assert result["msg"] == "/usr/sbin/nginx -V failed (rc 1): exec format error"
    assert w.signals == [] and w.commands() == []


def test_the_binary_is_looked_up_in_openrestys_directories_too(world, run_module, monkeypatch):
    w = world(openresty=True)
    asked = []

    def get_bin_path(self, name, required=False, opt_dirs=None):
        asked.append((name, opt_dirs))
        return "/usr/local/openresty/bin/openresty" if name == "openresty" and opt_dirs else None
    monkeypatch.setattr(basic.AnsibleModule, "get_bin_path", get_bin_path)
    result = run_module(nginx_reload, {"timeout": 5})
    assert not result["failed"], result["msg"]
    assert result["binary"] == "/usr/local/openresty/bin/openresty"
    assert ("openresty", ["/usr/local/openresty/bin", "/usr/local/openresty/nginx/sbin"]) in asked
    assert w.calls[0] == ["/usr/local/openresty/bin/openresty", "-V"]


def test_without_a_binary_it_fails_before_anything_runs(world, run_module, monkeypatch):
    w = world()
    monkeypatch.setattr(basic.AnsibleModule, "get_bin_path", lambda self, name, required=False, opt_dirs=None: None)
    result = run_module(nginx_reload, {"timeout": 5})
    assert result["failed"] and result["msg"].startswith("no openresty or nginx binary found")
    assert w.calls == [] and w.signals == []
