from __future__ import absolute_import, division, print_function

__metaclass__ = type

import signal

import pytest

from ansible.module_utils import basic

from ansible_collections.hardened.openresty.plugins.modules import nginx_reload

VERSION_TEXT = (
    "nginx version: nginx/1.22.1\n"
    "configure arguments: --prefix=/usr/share/nginx --conf-path=%s --error-log-path=stderr --pid-path=%s\n"
)
ALERT = "2024/05/01 12:00:00 [alert] 100#100: failed to load the 'resty.core' module (reason: not found)"


class World(object):
    """A host with one nginx: processes, a pid file, an error log and a service manager.

    reload_effect says what a reload does: "new" (a new worker generation replaces the
    old one), "reject" (the master logs an alert and keeps its workers).
    """

    def __init__(self, tmp_path, running=True, test_rc=0, reload_effect="new", systemd=True, tracked=True,
                 openresty=False):
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
        else:
            self.conf = tmp_path / "nginx.conf"
            self.log = tmp_path / "error.log"
            self.pid_file = tmp_path / "nginx.pid"
            self.conf.write_text("user www-data;\nerror_log %s;\nevents {}\n" % self.log)
            self.version_text = VERSION_TEXT % (self.conf, self.pid_file)
        self.log.write_text("2024/05/01 11:00:00 [alert] 100#100: an old alert before the reload\n")
        self.test_rc = test_rc
        self.reload_effect = reload_effect
        self.systemd = systemd
        self.tracked = tracked
        self.calls = []
        self.signals = []
        self.procs = []
        if running:
            self.start()

    def start(self):
        self.procs = [self.proc(100, 1, "nginx: master process /usr/sbin/nginx"),
                      self.proc(11, 100, "nginx: worker process"), self.proc(12, 100, "nginx: worker process")]
        self.pid_file.write_text("100\n")

    @staticmethod
    def proc(pid, ppid, title):
        return {"pid": pid, "ppid": ppid, "uid": 0, "title": title, "start_time": 0.0}

    def reload(self):
        if self.reload_effect == "new":
            self.procs = [p for p in self.procs if p["ppid"] != 100] + [
                self.proc(21, 100, "nginx: worker process"), self.proc(22, 100, "nginx: worker process")]
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
            return 0, "100\n" if self.procs and self.tracked else "0\n", ""
        if argv[1] == "reload":
            self.reload()
            return 0, "", ""
        if argv[1] == "start" or argv[1:2] == ["-c"]:
            self.start()
            return 0, "", ""
        raise AssertionError("unexpected command %r" % argv)

    def kill(self, pid, sig):
        self.signals.append((pid, sig))
        if sig == signal.SIGHUP:
            self.reload()

    def read_process(self, pid, *args, **kwargs):
        return next((p for p in self.procs if p["pid"] == int(pid)), None)

    def commands(self):
        return [c[1] for c in self.calls if c[1] != "-V"]


@pytest.fixture
def world(monkeypatch, tmp_path):
    def make(**kwargs):
        w = World(tmp_path, **kwargs)
        bins = {"nginx": "/usr/sbin/nginx", "systemctl": "/bin/systemctl"}
        monkeypatch.setattr(basic.AnsibleModule, "get_bin_path",
                            lambda self, name, required=False, opt_dirs=None: bins.get(name))
        monkeypatch.setattr(basic.AnsibleModule, "run_command", lambda self, argv, **kw: w.run_command(argv))
        monkeypatch.setattr(nginx_reload, "_systemctl", lambda module: "/bin/systemctl" if w.systemd else None)
        monkeypatch.setattr(nginx_reload, "list_processes", lambda *a, **kw: list(w.procs))
        monkeypatch.setattr(nginx_reload, "read_process", w.read_process)
        monkeypatch.setattr(nginx_reload.os, "kill", w.kill)
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
    assert w.commands() == ["-t", "show", "reload"]
    assert result["error_log_lines"] == [], "lines logged before the reload are not part of it"


def test_failing_config_test_changes_nothing(world, run_module):
    w = world(test_rc=1)
    result = run_module(nginx_reload, {})
    assert result["failed"]
    assert 'unknown directive "bogus"' in result["msg"]
    assert "reload" not in w.commands() and "start" not in w.commands()
    assert [p["pid"] for p in w.procs] == [100, 11, 12]


def test_check_mode_only_tests(world, run_module):
    w = world()
    result = run_module(nginx_reload, {}, check_mode=True)
    assert result["changed"] is True and result["action"] == "reloaded"
    assert "reload" not in w.commands()


def test_stopped_service_is_started(world, run_module):
    w = world(running=False)
    result = run_module(nginx_reload, {"timeout": 5})
    assert not result["failed"], result["msg"]
    assert result["action"] == "started"
    assert result["master_pid"] == 100 and result["new_worker_pids"] == [11, 12]
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


def test_master_started_outside_systemd_gets_sighup(world, run_module):
    w = world(tracked=False)
    result = run_module(nginx_reload, {"timeout": 5})
    assert not result["failed"], result["msg"]
    assert w.signals == [(100, signal.SIGHUP)]
    assert "reload" not in w.commands()


def test_openresty_binary_uses_its_service_and_prefix_paths(world, run_module):
    w = world(openresty=True, reload_effect="reject")
    result = run_module(nginx_reload, {"timeout": 30})
    assert result["service"] == "openresty"
    assert result["config"] == str(w.conf)
    assert ["/bin/systemctl", "reload", "openresty"] in w.calls
    assert "resty.core" in result["msg"], "the error log under the prefix was read"
