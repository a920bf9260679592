# -*- coding: utf-8 -*-
# Copyright: hardened.openresty contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""How an in-place binary upgrade of a running nginx is proven, step by step.

nginx's own procedure (the `USR2` signal): the old master renames its pid file to
`<pid file>.oldbin` and executes the binary now on disk as its child, handing it the
listening sockets; the new master (it does not daemonize again) loads the configuration,
writes the pid file and starts its workers, and from then on both generations accept on the
same sockets. Only when the new master serves is the old one told to quit (`QUIT`): its
workers finish their connections and it exits. If the new binary fails before that, the old
master renames the pid file back and keeps serving as if nothing had happened; a new master
that runs but never serves is told to quit, with the same effect.

Under systemd, a forking service may move its main process: when the old master exits,
systemd reads the pid file again and follows the new master. The module proves that too.

Plain functions, standard library only; the waiting loops take their clock, sleep and
process sources as arguments so that tests can drive them.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

from ansible_collections.hardened.openresty.plugins.module_utils.nginx_runtime import serving_workers, workers_of
from ansible_collections.hardened.openresty.plugins.module_utils.nginx_service import START_SLACK, serious_entries

# Children of a master that are part of its own generation, never a new binary.
_OWN_CHILDREN = ("nginx: worker process", "nginx: cache ", "nginx: privileged agent")


def new_binaries(children, signalled_at):
    """The children of the old master that can be the new binary: started after the signal
    and not one of the old master's own workers or helper processes."""
    return [c for c in children
            if c["start_time"] >= signalled_at - START_SLACK and not c["title"].startswith(_OWN_CHILDREN)]


def observe_upgrade(candidates, processes, is_proven_master, pid_file_pid):
    """(master, workers): the candidate that is a proven new master (is_proven_master(info):
    the service's, running the new binary), named by the pid file and with at least one
    worker that is not shutting down; (None, []) while there is none."""
    for candidate in candidates:
        if candidate["pid"] != pid_file_pid or not is_proven_master(candidate):
            continue
        workers = serving_workers(candidate["pid"], processes)
        if workers:
            return candidate["pid"], workers
    return None, []


def wait_for_upgrade(old_master, list_children, list_processes, read_pid, is_proven_master, new_log_lines,
                     timeout, signalled_at, old_pid_file_exists=lambda: True, clock=time.time, sleep=time.sleep,
                     interval=0.02, grace=1.0, settle=3.0):
    """Wait for the verdict on a USR2 sent to old_master at signalled_at (on /proc's clock).

    list_children(pid) lists a process's children whatever their title; list_processes() the
    nginx processes; read_pid() the pid in the pid file; old_pid_file_exists() whether
    `<pid file>.oldbin` exists; new_log_lines() the error log lines since the upgrade began.
    Returns dict(outcome, master, new_worker_pids, candidates,
    error_log_lines) where outcome is:

    - "upgraded": a child of old_master that is_proven_master() accepts, named by the pid file,
      has workers that serve (master, new_worker_pids);
    - "failed": a new binary was seen and exited before it served; or nothing but the old
      generation runs `grace` seconds after the log received a serious line (execve failed,
      the new binary could not load the configuration); or, `settle` seconds after the
      signal, no new binary runs and the pid file is the old master's again with no
      `.oldbin` beside it (the old master renames it back when its new binary exits, however
      fast that was);
    - "timeout": no proven new master within timeout seconds (candidates lists any new binary
      still running: it has to be told to quit);
    - "master_exited": the old master is gone.
    """
    start = clock()
    seen = set()
    failing_since = None
    while True:
        children = list_children(old_master)
        candidates = new_binaries(children, signalled_at)
        alive = set(c["pid"] for c in candidates)
        seen |= alive
        lines = new_log_lines()
        now = clock()
        master, workers = observe_upgrade(candidates, list_processes(), is_proven_master, read_pid())
        outcome = None
        if master:
            outcome = "upgraded"
        elif not any(p["pid"] == old_master for p in list_processes()):
            outcome = "master_exited"
        elif seen - alive:
            outcome = "failed"
        elif not alive and serious_entries(lines):
            if failing_since is None:
                failing_since = now
            elif now - failing_since >= grace:
                outcome = "failed"
        elif not alive and now - start >= settle and read_pid() == old_master and not old_pid_file_exists():
            outcome = "failed"
        if outcome is None and now - start >= timeout:
            outcome = "timeout"
        if outcome:
            return {"outcome": outcome, "master": master, "new_worker_pids": workers,
                    "candidates": sorted(alive), "error_log_lines": lines}
        sleep(interval)


def wait_until(done, timeout, clock=time.time, sleep=time.sleep, interval=0.05):
    """Poll done() until it returns true or timeout seconds passed; returns its last value."""
    start = clock()
    while True:
        value = done()
        if value or clock() - start >= timeout:
            return value
        sleep(interval)


def old_generation(old_master, processes):
    """The old master's workers still running (they drain after the old master's QUIT)."""
    return sorted(w["pid"] for w in workers_of(old_master, processes))
