#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: hardened.openresty contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: nginx_reload
short_description: Reload or restart nginx or OpenResty and prove that a new worker generation serves
description:
  - Tests the configuration with C(nginx -t) once and fails with nginx's own message when it
    is invalid, changing nothing.
  - Finds the service's master by the pid file (or systemd's C(MainPID)) and accepts it only
    when its title is that of an nginx master, it is owned by root and, under systemd, in the
    unit's own cgroup. A process the worker user renamed, behind a stale pid file, is never
    signalled. A root master outside the unit (started by hand) is reported, not signalled.
  - Starts the service when it is not running.
  - Otherwise records the master's workers, sends C(SIGHUP) to the verified master directly
    (through a pidfd, so the pid cannot be reused in between; C(systemctl reload) would run
    C(nginx -s reload), which parses the whole configuration a second time) and waits for a
    new generation of workers. Success is a new generation serving; old workers still
    finishing their connections, or stuck in Lua code that never yields, are told to quit by
    nginx and reported in RV(old_workers_draining).
  - With O(restart=true) (a changed systemd drop-in) it runs C(systemctl daemon-reload) and
    C(systemctl restart) after the test, and proves that a new master runs with workers. A
    configuration that passes C(-t) and fails at start (a Lua error in C(init_by_lua*), as
    C(nginx -t) does not create a Lua VM) fails with nginx's words; the caller restores the
    previous files and starts again (the server role's handler does).
  - Detects a rejected reload. C(nginx -t) does not create a Lua VM, so a broken
    C(lua_package_path) or a missing Lua module passes the test; on reload the master
    fails to load the new configuration, logs an C([emerg]) or C([alert]) line and keeps
    the old workers serving (an C(init_by_lua) error is logged at C([error]) only). The
    module fails with those error log lines, also when an old
    worker was killed meanwhile and respawned (the master logs C(exited on signal); its
    replacement runs the old configuration and is not counted as a new generation).
  - A rejected reload fails with C(changed=false) because the server still runs as before.
  - Reloading is what flushes C(lua_code_cache), so every run that is not in check mode
    reloads (or starts) and reports C(changed).
version_added: 0.1.0
author:
  - hardened.openresty contributors (!UNKNOWN)
options:
  binary:
    description:
      - Path of the nginx binary.
      - Default is C(openresty) if it is on the path, else C(nginx).
    type: path
  config:
    description:
      - Main configuration file to test.
      - Default is the C(--conf-path) the binary was built with (C(nginx -V)).
    type: path
  service:
    description:
      - Name of the systemd unit.
      - Default is C(openresty) for an OpenResty binary and C(nginx) otherwise.
    type: str
  pid_file:
    description:
      - Pid file of the master, used to find it when systemd does not know it.
      - Default is the C(--pid-path) the binary was built with.
    type: path
  error_log:
    description:
      - Error log file read for the lines a reload or start wrote. It must be the log of
        the main context, where the master reports why it rejected a configuration.
      - Default is the first file named by an C(error_log) directive in the main context
        of O(config), else the C(--error-log-path) the binary was built with.
      - When neither is a file (for example C(stderr)), the unit's journal is read instead.
    type: path
  timeout:
    description:
      - Seconds to wait for the new generation of workers (or for the started service).
      - Old workers still running when the new generation serves are reported in
        RV(old_workers_draining); that is not a failure.
    type: int
    default: 30
  ports:
    description:
      - TCP ports whose listening sockets must belong to the proven master (its workers
        inherit them). Checked after the new generation is proven; a port on which nothing
        listens, or on which a socket the master does not hold listens (a process of the
        worker user bound it), fails the module. Use the ports a release proof or health
        check asks next, so that only the service's own workers can answer it.
    type: list
    elements: int
    default: []
  restart:
    description:
      - Restart the service through systemd instead of reloading it, after C(systemctl
        daemon-reload). Needed when the unit or a drop-in changed. Needs systemd.
    type: bool
    default: false
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details: >-
      Runs nothing that writes (not even C(nginx -t), which creates log files, temp
      directories and a pid file); reports the master, its workers and the action it
      would take.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: none
  platform:
    description: Target OS/families that can be operated against.
    support: N/A
    platforms: posix
notes:
  - Reads C(/proc), so it runs on Linux only.
  - Use it in a handler. A role's handler that listens on a topic lets any task notify it.
seealso:
  - module: hardened.openresty.nginx_config
"""

EXAMPLES = r"""
- name: Reload nginx and prove the new workers run
  hardened.openresty.nginx_reload:

- name: Reload OpenResty, reading the error log the configuration names
  hardened.openresty.nginx_reload:
    binary: /usr/local/openresty/nginx/sbin/nginx
    service: openresty
    error_log: /var/log/openresty/error.log
    timeout: 60

- name: Restart after the systemd drop-in changed, tested first and proven
  hardened.openresty.nginx_reload:
    restart: true

- name: Handler that any task can notify
  listen: hardened_openresty_reload
  hardened.openresty.nginx_reload:
  register: server_reload
"""

RETURN = r"""
action:
  description: C(reloaded), C(restarted) or C(started) (in check mode, the action it would take).
  returned: always
  type: str
  sample: reloaded
master_pid:
  description: Pid of the master process (null in check mode when the service is not running).
  returned: always
  type: int
  sample: 4711
old_worker_pids:
  description: Worker pids before the reload (empty when the service was started).
  returned: always
  type: list
  elements: int
  sample: [4712, 4713]
new_worker_pids:
  description: Worker pids of the new generation (empty in check mode).
  returned: always
  type: list
  elements: int
  sample: [4790, 4791]
old_workers_draining:
  description: >-
    Old workers still running when the new generation was proven. nginx has told them to
    quit; they finish their connections (or are stuck in Lua code that never yields).
  returned: always
  type: list
  elements: int
  sample: []
elapsed:
  description: Seconds from the start of the module until the new generation was proven.
  returned: always
  type: float
  sample: 0.31
error_log_lines:
  description: Lines the error log received during the reload or start.
  returned: always
  type: list
  elements: str
  sample: []
binary:
  description: The nginx binary used.
  returned: always
  type: str
  sample: /usr/sbin/nginx
config:
  description: The configuration file tested.
  returned: always
  type: str
  sample: /etc/nginx/nginx.conf
service:
  description: The systemd unit reloaded or started.
  returned: always
  type: str
  sample: nginx
outcome:
  description: >-
    How it ended: C(reloaded), C(restarted) or C(started) (proven); C(rejected) (nginx kept
    the old configuration and workers), C(timeout), C(master_exited), C(start_failed) (nginx
    is not running); null when it stopped before (check mode, a failed C(nginx -t)).
  returned: always
  type: str
  sample: reloaded
nginx_test_output:
  description: What C(nginx -t) printed.
  returned: always
  type: str
  sample: "nginx: configuration file /etc/nginx/nginx.conf test is successful"
"""

import os
import signal
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.hardened.openresty.plugins.module_utils.nginx_runtime import (
    foreign_listeners,
    list_processes,
    parse_version_output,
    process_clock,
    read_pid_file,
    read_process,
    unit_name,
    workers_of,
)
from ansible_collections.hardened.openresty.plugins.module_utils.nginx_service import (
    find_master,
    is_service_master,
    killed_workers,
    load_failures,
    log_size,
    main_error_log,
    read_new_lines,
    resolve_paths,
    serious_entries,
    wait_for_reload,
    wait_for_start,
)

# A pidfd pins the process: once it is open, the pid cannot name another process.
_pidfd_open = getattr(os, "pidfd_open", None)


def _hup(pid, still_master):
    """Send SIGHUP to pid after still_master() confirmed, with the process pinned, that it is
    the master that was identified. Raises LookupError when it no longer is."""
    send = getattr(signal, "pidfd_send_signal", None)
    if _pidfd_open is None or send is None:
        if not still_master():
            raise LookupError(pid)
        os.kill(pid, signal.SIGHUP)
        return
    try:
        fd = _pidfd_open(pid)
    except OSError:
        raise LookupError(pid)
    try:
        if not still_master():
            raise LookupError(pid)
        send(fd, signal.SIGHUP)
    finally:
        os.close(fd)


def _systemctl(module):
    # systemctl can be installed in a container where systemd is not PID 1.
    if not os.path.isdir("/run/systemd/system"):
        return None
    return module.get_bin_path("systemctl")


def _systemd_main_pid(module, systemctl, service):
    if not systemctl:
        return None
    rc, out, dummy = module.run_command([systemctl, "show", "--property", "MainPID", "--value", service])
    out = out.strip()
    return int(out) if rc == 0 and out.isdigit() and int(out) > 0 else None


def _main_error_log(config, facts):
    try:
        with open(config, "rb") as handle:
            text = handle.read().decode("utf-8", "replace")
    except (IOError, OSError):
        return None
    return main_error_log(text, facts["prefix"])


def _journal_reader(module, service):
    """Read the unit's journal from now on: where the master logs when its log is stderr."""
    journalctl = module.get_bin_path("journalctl")
    if not journalctl:
        return None
    rc, out, dummy = module.run_command([journalctl, "-u", service, "-n", "0", "--show-cursor", "-q", "--no-pager"])
    cursor = [line[len("-- cursor: "):] for line in out.splitlines() if line.startswith("-- cursor: ")]
    if rc != 0 or not cursor:
        return None

    def read():
        rc, out, dummy = module.run_command([journalctl, "-u", service, "--after-cursor", cursor[0],
                                             "-o", "cat", "-q", "--no-pager"])
        return [line for line in out.splitlines() if line.strip()] if rc == 0 else []
    return read


def _failure_lines(lines, master):
    entries = load_failures(lines, master) or serious_entries(lines) or lines
    return " | ".join(entries[-5:])


def _start_failure(lines, err_out):
    """nginx's words for a failed start: its error log and journal lines, else systemctl's."""
    words = [line for line in lines if "[emerg]" in line or "[alert]" in line or "[crit]" in line
             or "[error]" in line or "nginx: " in line]
    return " | ".join((words or lines)[-5:]) or err_out.strip()


def _exit_proven(module, master, result, **kwargs):
    """Exit with success once the ports asked for are the master's own, else fail."""
    problems = foreign_listeners(master, module.params["ports"]) if module.params["ports"] else {}
    if problems:
        module.fail_json(msg="the new generation runs, but not every port is the service's own: %s"
                         % "; ".join("port %d: %s" % item for item in sorted(problems.items())), **result)
    module.exit_json(**dict(result, **kwargs))


def main():
    began = time.time()
    module = AnsibleModule(
        argument_spec=dict(
            binary=dict(type="path"),
            config=dict(type="path"),
            service=dict(type="str"),
            pid_file=dict(type="path"),
            error_log=dict(type="path"),
            timeout=dict(type="int", default=30),
            restart=dict(type="bool", default=False),
            ports=dict(type="list", elements="int", default=[]),
        ),
        supports_check_mode=True,
    )
    params = module.params
    binary = params["binary"] or module.get_bin_path("openresty") or module.get_bin_path("nginx", required=True)
    if all(params[key] for key in ("config", "pid_file", "error_log", "service")):
        # Every default `nginx -V` would give is set (the roles set them all): skip it.
        config, pid_file, error_log, service = (params[key] for key in ("config", "pid_file", "error_log", "service"))
    else:
        rc, out, err = module.run_command([binary, "-V"])
        if rc != 0:
            module.fail_json(msg="%s -V failed: %s" % (binary, (err or out).strip()))
        facts = parse_version_output(err + out)
        defaults = resolve_paths(facts)
        config = params["config"] or defaults["conf_path"]
        pid_file = params["pid_file"] or defaults["pid_path"]
        error_log = params["error_log"] or _main_error_log(config, facts) or defaults["error_log_path"]
        service = params["service"] or ("openresty" if facts["openresty"] else "nginx")
    result = dict(
        changed=False,
        binary=binary,
        config=config,
        service=service,
        master_pid=None,
        old_worker_pids=[],
        new_worker_pids=[],
        old_workers_draining=[],
        elapsed=0.0,
        error_log_lines=[],
        nginx_test_output="",
        outcome=None,
    )

    systemctl = _systemctl(module)
    # Under systemd the master must sit in the unit's cgroup: only the service's processes do.
    unit = service if systemctl else None
    if params["restart"] and not systemctl:
        module.fail_json(msg="restart=true needs systemd (PID 1) to restart %s" % service, **result)

    def current_master():
        # The pid file is what nginx itself wrote; MainPID only when it names nothing usable.
        return (find_master([read_pid_file(pid_file)], read_process, unit)
                or find_master([_systemd_main_pid(module, systemctl, service)], read_process, unit))

    master = current_master()
    if master is None and unit:
        stray = find_master([read_pid_file(pid_file)], read_process, None)
        if stray is not None:
            module.fail_json(msg="the nginx master %d named by %s runs outside %s: it is not the service's, "
                                 "and it is neither signalled nor started beside; stop it or run it through systemd"
                                 % (stray, pid_file, unit_name(service)), **result)
    result["action"] = ("restarted" if params["restart"] else "reloaded") if master else "started"
    result["master_pid"] = master
    if master:
        result["old_worker_pids"] = sorted(w["pid"] for w in workers_of(master, list_processes()))
    if module.check_mode:
        # nginx -t writes (log files, temp dirs, a pid file): check mode only reports.
        result["changed"] = True
        plan = {"reloaded": "send SIGHUP to master %s" % master,
                "restarted": "restart %s (master %s)" % (unit_name(service), master),
                "started": "start %s" % service}[result["action"]]
        module.exit_json(msg="check mode: would test %s with %s -t, then %s and prove a new worker generation"
                         % (config, binary, plan), **result)

    rc, out, err = module.run_command([binary, "-t", "-c", config])
    result["nginx_test_output"] = (err + out).strip()
    if rc != 0:
        module.fail_json(msg="nginx -t failed, nothing was reloaded: %s" % result["nginx_test_output"], **result)

    offset = log_size(error_log)

    if not master or params["restart"]:
        # A unit that fails to start logs to the journal before its error log is open.
        journal = _journal_reader(module, service) if systemctl else None
        if not master:
            argv = [systemctl, "start", service] if systemctl else [binary, "-c", config]
            rc, out, err = module.run_command(argv)
        else:
            rc, out, err = module.run_command([systemctl, "daemon-reload"])
            if rc == 0:
                rc, out, err = module.run_command([systemctl, "restart", service])
        if rc != 0:
            result["changed"] = master is not None
            result["master_pid"] = None
            result["outcome"] = "start_failed"
            result["error_log_lines"] = read_new_lines(error_log, offset) + (journal() if journal else [])
            reason = _start_failure(result["error_log_lines"], err or out)
            module.fail_json(msg="%s %s failed: %s" % ("restarting" if master else "starting", service, reason),
                             **result)
        new_master, workers = wait_for_start(current_master, list_processes, params["timeout"])
        result.update(changed=True, master_pid=new_master, new_worker_pids=workers, outcome=result["action"],
                      elapsed=round(time.time() - began, 3), error_log_lines=read_new_lines(error_log, offset))
        if not workers or (master and new_master == master):
            module.fail_json(msg="%s was %s but no new nginx master with workers was running after %ss"
                             % (service, result["action"], params["timeout"]), **result)
        _exit_proven(module, new_master, result)

    # Only a configuration without a file error log needs the journal (stderr goes there).
    journal = _journal_reader(module, service) if systemctl and not error_log else None

    def new_lines():
        if error_log or not journal:
            return read_new_lines(error_log, offset)
        return journal()

    old = result["old_worker_pids"]
    signalled_at = process_clock()
    try:
        _hup(master, lambda: is_service_master(read_process(master), unit))
    except LookupError:
        module.fail_json(msg="the nginx master %d exited before it could be signalled; nothing was reloaded"
                         % master, **result)
    verdict = wait_for_reload(master, old, list_processes, new_lines, params["timeout"], signalled_at)
    result.update(
        changed=True,
        elapsed=round(time.time() - began, 3),
        new_worker_pids=verdict["new_worker_pids"],
        old_workers_draining=verdict["old_workers_draining"],
        error_log_lines=verdict["error_log_lines"],
    )
    outcome = result["outcome"] = verdict["outcome"]
    if outcome == "reloaded":
        draining = len(verdict["old_workers_draining"])
        _exit_proven(module, master, result, msg="new generation serving (workers %s), %d old worker%s draining"
                     % (verdict["new_worker_pids"], draining, "" if draining == 1 else "s"))
    if outcome == "rejected":
        # The master kept the old configuration and workers: nothing changed.
        result["changed"] = False
        respawned = killed_workers(result["error_log_lines"], master)
        msg = ("nginx rejected the reload and keeps serving with the old configuration (old workers %s%s): %s"
               % (verdict["old_workers_active"],
                  "; killed and respawned with it: %s" % respawned if respawned else "",
                  _failure_lines(result["error_log_lines"], master)))
    elif outcome == "master_exited":
        msg = "the nginx master %d exited during the reload" % master
    else:
        msg = ("no new worker generation within %ss (old workers still serving %s)"
               % (params["timeout"], verdict["old_workers_active"]))
        if result["error_log_lines"]:
            msg += ": " + _failure_lines(result["error_log_lines"], master)
    module.fail_json(msg=msg, **result)


if __name__ == "__main__":
    main()
