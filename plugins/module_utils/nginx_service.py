# -*- coding: utf-8 -*-
# Copyright: hardened.openresty contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""How a reload of a running nginx is proven: worker generations, the error log, waiting.

A reload is done when the master has started a new generation of workers (which load the
new configuration and fresh Lua VMs): nginx forks them only after the new configuration
loaded, then tells the old workers to quit. Old workers may take a while (open
connections, or a Lua loop that never yields): they are reported as draining. When the new
configuration fails to load, the master logs the failure and starts no worker: that is a
rejected reload, even though the signal was delivered without error, and even when a
killed old worker is respawned meanwhile (with the old configuration).

Plain functions, standard library only; the waiting loops take their clock, sleep and
process source as arguments so that tests can drive them.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re
import time

from ansible_collections.hardened.openresty.plugins.module_utils import nginx_parser
from ansible_collections.hardened.openresty.plugins.module_utils.nginx_values import c_string
from ansible_collections.hardened.openresty.plugins.module_utils.nginx_runtime import (
    in_unit,
    is_draining,
    is_master,
    serving_workers,
    workers_of,
)

SERIOUS_LEVELS = ("emerg", "alert", "crit")
# "2024/05/01 12:00:00 [emerg] 1234#1234: message"
_LOG_LINE = re.compile(r"^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d \[(?P<level>[a-z]+)\] (?P<pid>\d+)#\d+: ")
# What the master logs (at alert) when it reaps a worker killed by a signal; it then forks
# a replacement with the configuration it runs (ngx_process_get_status, ngx_reap_children).
_KILLED_WORKER = re.compile(r"\] \d+#\d+: worker process (?P<pid>\d+) exited on signal \d+")
# Start times on /proc's clock have a resolution of one tick (10 ms).
START_SLACK = 0.02
# nginx's compiled-in defaults, relative to the prefix, when configure did not set them.
_DEFAULT_PREFIX = "/usr/local/nginx/"
_DEFAULT_PATHS = {
    "conf_path": "conf/nginx.conf",
    "pid_path": "logs/nginx.pid",
    "error_log_path": "logs/error.log",
}


def resolve_paths(facts):
    """Absolute conf_path, pid_path and error_log_path from parse_version_output() facts.

    Relative values are relative to the prefix, as nginx treats them. error_log_path is
    None when the compiled default is not a file (e.g. "stderr").
    """
    prefix = facts.get("prefix") or _DEFAULT_PREFIX
    paths = {}
    for key, default in _DEFAULT_PATHS.items():
        value = facts.get(key) or default
        if key == "error_log_path" and (value == "stderr" or value.startswith("syslog:")):
            paths[key] = None
            continue
        paths[key] = value if os.path.isabs(value) else os.path.join(prefix, value)
    return paths


def log_size(path):
    """Size of the error log in bytes, or None when there is no such file."""
    if not path:
        return None
    try:
        return os.stat(path).st_size
    except OSError:
        return None


def read_new_lines(path, offset, limit=65536):
    """Lines appended to path since byte offset (at most the last `limit` bytes of them).

    A file smaller than offset was rotated or truncated: it is read from the start.
    """
    size = log_size(path)
    if size is None:
        return []
    if offset is None or size < offset:
        offset = 0
    start = max(offset, size - limit)
    with open(path, "rb") as handle:
        handle.seek(start)
        data = handle.read(size - start)
    lines = data.decode("utf-8", "replace").splitlines()
    if start > offset and lines:
        lines = lines[1:]  # began mid-line
    return [line for line in lines if line.strip()]


def parse_log_line(line):
    """Return (level, pid) of an nginx error log line, or (None, None)."""
    match = _LOG_LINE.match(line)
    if not match:
        return None, None
    return match.group("level"), int(match.group("pid"))


# Serious-level lines that nginx writes while it goes on to load the configuration.
HARMLESS_ALERTS = (
    "lua_code_cache is off",  # lua-nginx-module warns at [alert] and then loads normally
)


def serious_entries(lines, pid=None, levels=SERIOUS_LEVELS):
    """Entries at emerg, alert or crit level (or `levels`), only those logged by pid when it is given.

    An entry is a log line with its continuation lines (a Lua error message spans several
    lines, the later ones without the date prefix), joined with newlines. Lines that name
    one of HARMLESS_ALERTS are left out.
    """
    found = []
    current = None
    for line in lines:
        level, line_pid = parse_log_line(line)
        if level is None:
            if current is not None:
                current.append(line)
            continue
        current = None
        if (level in levels and (pid is None or line_pid == int(pid))
                and not any(alert in line for alert in HARMLESS_ALERTS)):
            current = [line]
            found.append(current)
    return ["\n".join(entry) for entry in found]


def main_error_log(text, prefix=None):
    """The first file named by an `error_log` directive in the main context of text.

    That log receives what the master writes while loading a configuration, including why
    it rejected a reload. Returns an absolute path (relative ones are relative to prefix,
    as nginx treats them), or None when the main context names no file (stderr, syslog,
    memory) or the text does not parse. A distro's compiled default log is often stderr,
    so the main configuration is the place to look. The text is read by nginx_parser, the
    collection's one reading of nginx configuration; the path is a C string for nginx.
    """
    try:
        nodes = nginx_parser.parse_string(text)
    except nginx_parser.NginxParseError:
        return None
    for node in nodes:
        if node.directive != "error_log" or node.block is not None or not node.args:
            continue
        path = c_string(node.args[0])
        if path != "stderr" and not path.startswith(("syslog:", "memory:")):
            return path if os.path.isabs(path) else os.path.join(prefix or _DEFAULT_PREFIX, path)
    return None


def is_service_master(info, unit=None):
    """True when info is the service's nginx master: titled so, owned by root, and (when
    unit is given) in the unit's cgroup. A title alone is not enough: any process can set
    it, the worker user's included, and a stale pid file can name such a process."""
    return bool(info) and is_master(info) and info.get("uid") == 0 and (unit is None or in_unit(info, unit))


def find_master(candidates, read, unit=None):
    """Return the first candidate pid that is the service's live nginx master, or None.

    candidates are the pid file's pid and systemd's MainPID; read(pid) returns
    nginx_runtime.read_process() data or None. unit is the systemd unit when systemd runs
    the host (None otherwise): see is_service_master().
    """
    for pid in candidates:
        if not pid:
            continue
        if is_service_master(read(pid), unit):
            return int(pid)
    return None


def observe(master_pid, old_pids, processes, signalled_at=None):
    """Classify the master's workers against the generation recorded before the reload.

    Returns dict(master_alive, new, old_active, old_draining) with sorted pid lists. new
    holds workers that are not old, not draining and (when signalled_at is given) started
    after the signal: a worker respawned before it belongs to the old generation.
    """
    old = set(old_pids)
    master_pid = int(master_pid)
    state = {
        "master_alive": any(p["pid"] == master_pid and is_master(p) for p in processes),
        "new": [],
        "old_active": [],
        "old_draining": [],
    }
    for worker in workers_of(master_pid, processes):
        if worker["pid"] not in old:
            fresh = signalled_at is None or worker["start_time"] >= signalled_at - START_SLACK
            if fresh and not is_draining(worker):
                state["new"].append(worker["pid"])
        elif is_draining(worker):
            state["old_draining"].append(worker["pid"])
        else:
            state["old_active"].append(worker["pid"])
    for key in ("new", "old_active", "old_draining"):
        state[key].sort()
    return state


def killed_workers(lines, master_pid):
    """Pids of workers the master reaped after a signal (and respawned, unless quitting)."""
    killed = []
    for line in lines:
        level, pid = parse_log_line(line)
        match = _KILLED_WORKER.search(line)
        if match and pid == int(master_pid):
            killed.append(int(match.group("pid")))
    return killed


def load_failures(lines, master_pid):
    """The master's entries at error level or above, other than reaped workers: why a
    configuration failed. The master serves no request, so what it logs at error during a
    reload comes from loading; an init_by_lua error is logged at [error] only."""
    return [entry for entry in serious_entries(lines, master_pid, SERIOUS_LEVELS + ("error",))
            if not _KILLED_WORKER.search(entry)]


def wait_for_reload(master_pid, old_pids, list_processes, new_log_lines, timeout, signalled_at=None,
                    clock=time.time, sleep=time.sleep, interval=0.01, grace=5.0, settle=1.0):
    """Wait until the reload signalled to master_pid at signalled_at has a verdict.

    list_processes() returns the current nginx processes; new_log_lines() the error log
    lines written since the reload began; signalled_at is when the signal was sent, on the
    clock of the processes' start_time (nginx_runtime.process_clock()). Returns
    dict(outcome, new_worker_pids, old_workers_active, old_workers_draining,
    error_log_lines) where outcome is:

    - "reloaded": a new generation serves. Workers started after the signal count as new,
      less one for each old worker the master logged as killed (its respawn runs the
      configuration the master holds, which is the old one after a rejected load). Old
      workers still running are listed in old_workers_draining: they were told to quit
      and finish their connections (or spin in Lua code that never yields). The verdict
      comes at once when no old worker still looks active, else `settle` seconds after the
      new generation appeared (nginx forks all new workers before it signals the old) or
      at the timeout, whichever comes first;
    - "rejected": the master logged why the configuration failed (load_failures()) and no
      new generation came for `grace` seconds after it: nginx serves with the old workers;
    - "timeout": no new generation within timeout seconds;
    - "master_exited": the master is gone.
    """
    start = clock()
    rejected_since = None
    generation_since = None
    while True:
        state = observe(master_pid, old_pids, list_processes(), signalled_at)
        lines = new_log_lines()
        now = clock()
        respawns = len([pid for pid in killed_workers(lines, master_pid) if pid in set(old_pids)])
        generation = len(state["new"]) - respawns
        outcome = None
        if not state["master_alive"]:
            outcome = "master_exited"
        elif generation > 0:
            if generation_since is None:
                generation_since = now
            # A new generation serving is the success: at the timeout too, even when the
            # old workers have not all been seen shutting down yet.
            if not state["old_active"] or now - generation_since >= settle or now - start >= timeout:
                outcome = "reloaded"
        elif load_failures(lines, master_pid):
            # Config load failures are logged before any worker would be forked; the grace
            # period covers a slow fork (a loaded host, many workers) after an alert from
            # the master that did not stop the load.
            if rejected_since is None:
                rejected_since = now
            elif now - rejected_since >= grace:
                outcome = "rejected"
        if outcome is None and now - start >= timeout:
            outcome = "timeout"
        if outcome:
            reloaded = outcome == "reloaded"
            return {
                "outcome": outcome,
                "new_worker_pids": state["new"] if generation > 0 else [],
                "old_workers_active": [] if reloaded else state["old_active"],
                "old_workers_draining": sorted(state["old_draining"] + (state["old_active"] if reloaded else [])),
                "error_log_lines": lines,
            }
        sleep(interval)


def wait_for_start(find, list_processes, timeout, clock=time.time, sleep=time.sleep, interval=0.1):
    """Wait for a started service: find() returns the master pid or None.

    Returns (master_pid, worker_pids) once the master has at least one serving worker, or
    (master_pid or None, []) after timeout seconds.
    """
    start = clock()
    while True:
        master = find()
        workers = []
        if master:
            workers = serving_workers(master, list_processes())
            if workers:
                return master, workers
        if clock() - start >= timeout:
            return master, workers
        sleep(interval)
