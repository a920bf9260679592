from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import shutil
import subprocess
import sys

import pytest

from ansible_collections.hardened.openresty.plugins.module_utils import nginx_upgrade
from ansible_collections.hardened.openresty.plugins.module_utils.nginx_runtime import children_of, runs_file

SIGNALLED = 1000.0


def proc(pid, ppid, title, start_time=SIGNALLED + 0.1, uid=0):
    return {"pid": pid, "ppid": ppid, "uid": uid, "title": title, "start_time": start_time, "cgroup": ""}


OLD = [proc(100, 1, "nginx: master process /usr/sbin/nginx", start_time=1.0),
       proc(101, 100, "nginx: worker process", uid=33, start_time=1.0),
       proc(102, 100, "nginx: cache manager process", uid=33, start_time=SIGNALLED + 0.5)]


class Steps(object):
    """Each poll of the upgrade sees the next state of the host: (processes, pid file, log)."""

    def __init__(self, *states):
        self.states = list(states)
        self.now = 0.0

    def state(self):
        return self.states[0] if len(self.states) == 1 else self.states.pop(0)

    def wait(self, timeout=10, proven=lambda info: info["title"].startswith("nginx: master")):
        current = {}

        def processes():
            return current["procs"]

        def children(ppid):
            current.update(zip(("procs", "pid", "log"), self.state()))
            return [p for p in current["procs"] if p["ppid"] == ppid]

        def sleep(seconds):
            self.now += seconds

        return nginx_upgrade.wait_for_upgrade(100, children, processes, lambda: current["pid"], proven,
                                              lambda: current["log"], timeout, SIGNALLED,
                                              clock=lambda: self.now, sleep=sleep, interval=0.5, grace=1.0)


NEW_BINARY = proc(300, 100, "/usr/sbin/nginx -g daemon on; master_process on;")
NEW_MASTER = proc(300, 100, "nginx: master process /usr/sbin/nginx -g daemon on; master_process on;")
NEW_WORKER = proc(301, 300, "nginx: worker process", uid=33)


def test_the_new_master_is_proven_once_it_has_workers_and_the_pid_file():
    verdict = Steps((OLD + [NEW_BINARY], 100, []),
                    (OLD + [NEW_MASTER], 300, []),          # no worker yet
                    (OLD + [NEW_MASTER, NEW_WORKER], 100, []),  # pid file not written yet
                    (OLD + [NEW_MASTER, NEW_WORKER], 300, [])).wait()
    assert verdict["outcome"] == "upgraded" and verdict["master"] == 300 and verdict["new_worker_pids"] == [301]


def test_a_new_master_that_does_not_run_the_new_binary_is_not_proven():
    verdict = Steps((OLD + [NEW_MASTER, NEW_WORKER], 300, [])).wait(timeout=2, proven=lambda info: False)
    assert verdict["outcome"] == "timeout" and verdict["candidates"] == [300]


def test_a_new_binary_that_exits_fails_at_once():
    verdict = Steps((OLD + [NEW_BINARY], 100, []), (OLD, 100, [])).wait()
    assert verdict["outcome"] == "failed" and verdict["candidates"] == []


def test_serious_lines_without_a_new_binary_fail_after_the_grace_period():
    line = "2024/05/01 12:00:01 [alert] 300#300: execve() failed while executing new binary process"
    steps = Steps((OLD, 100, [line]))
    verdict = steps.wait()
    assert verdict["outcome"] == "failed" and steps.now >= 1.0


def test_the_old_masters_own_children_are_never_the_new_binary():
    verdict = Steps((OLD, 100, [])).wait(timeout=2)
    assert verdict["outcome"] == "timeout" and verdict["candidates"] == []


def test_a_child_started_before_the_signal_is_not_the_new_binary():
    early = proc(300, 100, "/usr/sbin/nginx", start_time=SIGNALLED - 1.0)
    assert nginx_upgrade.new_binaries(OLD + [early], SIGNALLED) == []


def test_the_old_master_gone_ends_the_wait():
    verdict = Steps((OLD[1:], 100, [])).wait()
    assert verdict["outcome"] == "master_exited"


def test_children_of_lists_a_real_child_whatever_its_title(tmp_path):
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert child.pid in [info["pid"] for info in children_of(os.getpid())]
        assert child.pid not in [info["pid"] for info in children_of(child.pid)]
    finally:
        child.kill()
        child.wait()


def test_runs_file_compares_the_running_inode_with_the_file_on_disk(tmp_path):
    copy = tmp_path / "python"
    shutil.copy2(os.path.realpath(sys.executable), str(copy))
    child = subprocess.Popen([str(copy), "-c", "import time; time.sleep(30)"])
    try:
        assert runs_file(child.pid, str(copy))
        assert not runs_file(child.pid, os.path.realpath(sys.executable))
        # A package upgrade renames a new file over the old one: same path, another inode.
        os.rename(str(copy), str(tmp_path / "old"))
        shutil.copy2(os.path.realpath(sys.executable), str(copy))
        assert not runs_file(child.pid, str(copy))
    finally:
        child.kill()
        child.wait()
    assert not runs_file(child.pid, str(copy)), "a process that is gone runs nothing"


@pytest.mark.parametrize("old_pid_file_exists, outcome", [
    # The old master renames <pid file>.oldbin back when its new binary exits, however fast.
    (False, "failed"),
    # While .oldbin exists, the upgrade is still under way (a slow configuration load).
    (True, "timeout"),
])
def test_a_new_binary_never_seen_is_judged_by_the_old_pid_file(old_pid_file_exists, outcome):
    steps = Steps((OLD, 100, []))
    verdict = nginx_upgrade.wait_for_upgrade(
        100, lambda ppid: [p for p in OLD if p["ppid"] == ppid], lambda: OLD, lambda: 100, lambda info: True,
        lambda: [], 10, SIGNALLED, old_pid_file_exists=lambda: old_pid_file_exists, clock=lambda: steps.now,
        sleep=lambda seconds: setattr(steps, "now", steps.now + seconds), interval=0.5, settle=3.0)
    assert verdict["outcome"] == outcome
    assert steps.now >= (3.0 if outcome == "failed" else 10)
