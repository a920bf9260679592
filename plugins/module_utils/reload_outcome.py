# -*- coding: utf-8 -*-
# Copyright: hardened.openresty contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What nginx_reload tells the user: each way a reload, restart or start ends, in words.

Plain functions, standard library only: they take what the module observed (pids, log
lines, nginx_service.wait_for_reload()'s verdict) and return the message and whether the
run failed or changed anything, so that tests can check every outcome without a host.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.hardened.openresty.plugins.module_utils.nginx_runtime import unit_name
from ansible_collections.hardened.openresty.plugins.module_utils.nginx_service import (
    killed_workers,
    load_failures,
    serious_entries,
)

# How many log lines a message quotes at the most (the last ones).
QUOTED_LINES = 5
_START_WORDS = ("[emerg]", "[alert]", "[crit]", "[error]", "nginx: ")


def failure_lines(lines, master_pid):
    """Why the master failed, from the log lines of a reload: its load failures, else the
    serious entries, else every line; the last QUOTED_LINES joined with " | "."""
    entries = load_failures(lines, master_pid) or serious_entries(lines) or lines
    return " | ".join(entries[-QUOTED_LINES:])


def start_failure(lines, command_output):
    """nginx's words for a failed start or restart: its error log and journal lines (errors
    and nginx's own messages, else all), else what systemctl or nginx printed."""
    words = [line for line in lines if any(word in line for word in _START_WORDS)]
    return " | ".join((words or lines)[-QUOTED_LINES:]) or command_output.strip()


def check_mode_message(action, master_pid, service, config, binary):
    """What a run would do: action is reloaded, restarted or started."""
    plan = {"reloaded": "send SIGHUP to master %s" % master_pid,
            "restarted": "restart %s (master %s)" % (unit_name(service), master_pid),
            "upgraded": ("send USR2 to master %s to run the new binary beside it, and QUIT to it once "
                         "the new master serves" % master_pid),
            "started": "start %s" % service}[action]
    return ("check mode: would test %s with %s -t, then %s and prove a new worker generation"
            % (config, binary, plan))


def stray_master_message(pid, pid_file, service):
    """A root nginx master named by the pid file runs outside the service's unit."""
    return ("the nginx master %d named by %s runs outside %s: it is not the service's, and it is "
            "neither signalled nor started beside; stop it or run it through systemd"
            % (pid, pid_file, unit_name(service)))


def foreign_ports_message(problems):
    """None when problems (nginx_runtime.foreign_listeners()) is empty, else why it fails."""
    if not problems:
        return None
    return ("the new generation runs, but not every port is the service's own: %s"
            % "; ".join("port %d: %s" % item for item in sorted(problems.items())))


def start_failed_message(service, restarting, lines, command_output):
    """systemctl start/restart (or nginx) returned an error."""
    return "%s %s failed: %s" % ("restarting" if restarting else "starting", service,
                                 start_failure(lines, command_output))


def start_unproven_message(service, action, timeout, old_master, new_master, workers):
    """None when a start or restart is proven: a master with serving workers, and after a
    restart not the master that ran before. Else why it is not."""
    if workers and not (old_master and new_master == old_master):
        return None
    return ("%s was %s but no new nginx master with workers was running after %ss"
            % (service, action, timeout))


def reload_verdict(verdict, master_pid, timeout):
    """(failed, changed, msg) for nginx_service.wait_for_reload()'s verdict on a reload
    signalled to master_pid. Only "reloaded" succeeds; "rejected" changed nothing (the
    master keeps the old configuration and workers)."""
    outcome = verdict["outcome"]
    lines = verdict["error_log_lines"]
    if outcome == "reloaded":
        draining = len(verdict["old_workers_draining"])
        return False, True, ("new generation serving (workers %s), %d old worker%s draining"
                             % (verdict["new_worker_pids"], draining, "" if draining == 1 else "s"))
    if outcome == "rejected":
        respawned = killed_workers(lines, master_pid)
        return True, False, ("nginx rejected the reload and keeps serving with the old configuration "
                             "(old workers %s%s): %s"
                             % (verdict["old_workers_active"],
                                "; killed and respawned with it: %s" % respawned if respawned else "",
                                failure_lines(lines, master_pid)))
    if outcome == "master_exited":
        return True, True, "the nginx master %d exited during the reload" % master_pid
    msg = ("no new worker generation within %ss (old workers still serving %s)"
           % (timeout, verdict["old_workers_active"]))
    if lines:
        msg += ": " + failure_lines(lines, master_pid)
    return True, True, msg


def upgrade_failed_message(verdict, old_master, timeout, left):
    """An in-place binary upgrade (nginx_upgrade.wait_for_upgrade()'s verdict) did not end
    with a new master serving; left are new binaries still running after they were told to
    quit."""
    outcome = verdict["outcome"]
    lines = verdict["error_log_lines"]
    if outcome == "master_exited":
        return "the nginx master %d exited during the binary upgrade" % old_master
    why = ("the new binary exited before it served" if outcome == "failed"
           else "no new master with serving workers within %ss" % timeout)
    msg = ("binary upgrade failed, %s; the old master %d keeps serving with the binary it runs" % (why, old_master))
    if left:
        msg += "; new binary processes %s did not quit" % left
    if lines:
        msg += ": " + failure_lines(lines, old_master)
    return msg


def upgrade_message(old_master, new_master, workers, old_exited, systemd_follows, service):
    """What an in-place binary upgrade that served did; systemd_follows is None without
    systemd, else whether the unit's main pid is the new master (known only once the old
    master exited)."""
    msg = "binary upgraded in place: new master %d serving (workers %s)" % (new_master, workers)
    if not old_exited:
        return msg + ", old master %d draining its connections" % old_master
    msg += ", old master %d exited" % old_master
    if systemd_follows is False:
        return (msg + ", but %s does not follow the new master: its main pid is not %d"
                % (unit_name(service), new_master))
    return msg + (", %s follows the new master" % unit_name(service) if systemd_follows else "")
