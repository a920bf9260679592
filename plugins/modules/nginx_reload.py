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
    new generation of workers.
  - Success is a new generation serving, not the old workers gone. The new generation is the
    master's workers started after the signal and not shutting down, less one for each old
    worker the master logged as killed and respawned. Once it serves, the module returns as
    soon as every old worker still running is shutting down (its title says so), else one
    second after the new generation appeared or at O(timeout), whichever comes first. It
    does not wait for old workers to exit; those still running (finishing their
    connections, or stuck in Lua code that never yields) have been told to quit by nginx
    and are reported in RV(old_workers_draining).
  - With O(restart=true) (a changed systemd drop-in) it runs C(systemctl daemon-reload) and
    C(systemctl restart) after the test, and proves that a new master (not the one that ran
    before) runs with at least one worker that is not shutting down (for a started service,
    a master with such a worker). A configuration that passes C(-t) and fails at start (a Lua
    error in C(init_by_lua*), as C(nginx -t) does not create a Lua VM) fails with nginx's
    words; the caller restores the previous files and starts again (the server role's
    handler does).
  - When the running master does not run the file now at O(binary) (a package upgrade
    replaced it, so C(/proc/<pid>/exe) names a deleted file or another inode), a SIGHUP would
    start the new workers from the old binary again. With O(binary_change=upgrade) (the
    default) the binary is upgraded in place, as nginx documents it, with C(USR2) to the verified
    master, which runs the new binary as its child on the same listening sockets; once that
    new master (root, in the unit's cgroup, running the file at O(binary), named by the pid
    file) has workers that serve, the old master gets C(QUIT) and its workers finish their
    connections. No connection is refused in between. A new binary that exits or does not
    serve within O(timeout) is told to quit and the old master, never stopped, keeps serving;
    the module fails with the error log's lines. The module waits (up to O(timeout)) for the
    old master to exit and, under systemd, proves that the unit's main pid is now the new
    master (systemd reads the pid file again when a forking service's main process exits).
    With O(binary_change=restart) it restarts instead (needs systemd).
    RV(restart_reasons) says why the master was not just reloaded.
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
  binary_change:
    description:
      - What to do when the running master does not run the file now at O(binary).
      - C(upgrade) upgrades the binary in place (C(USR2), then C(QUIT) to the old master once
        the new one serves); it works with and without systemd.
      - C(restart) restarts the service through systemd (needs systemd).
      - O(restart=true) restarts in either case.
    type: str
    choices: [upgrade, restart]
    default: upgrade
extends_documentation_fragment:
  - hardened.openresty.attributes
  - hardened.openresty.attributes.binary
  - hardened.openresty.attributes.nginx_group
attributes:
  check_mode:
    support: full
    details: >-
      Runs nothing that writes (not even C(nginx -t), which creates log files, temp
      directories and a pid file); reports the master, its workers and the action it
      would take.
  diff_mode:
    support: none
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

- name: After a package upgrade, restart instead of upgrading the binary in place
  hardened.openresty.nginx_reload:
    binary_change: restart

- name: Restart after the systemd drop-in changed, tested first and proven
  hardened.openresty.nginx_reload:
    restart: true

- name: Handler that any task can notify
  listen: hardened_openresty_reload
  hardened.openresty.nginx_reload:
  register: server_reload
"""

RETURN = r"""
restart_reasons:
  description:
    - Why a running master was restarted or upgraded in place instead of reloaded (in check
      mode, would be); empty for a reload or a start.
  returned: always
  type: list
  elements: str
  sample: ["master 812 runs /usr/sbin/nginx (deleted), not the file now at /usr/sbin/nginx: a reload would keep the old binary"]
action:
  description: >-
    C(reloaded), C(restarted), C(upgraded) (the binary, in place) or C(started) (in check mode,
    the action it would take).
  returned: always
  type: str
  sample: reloaded
master_pid:
  description: >-
    Pid of the master process (null in check mode when the service is not running); after an
    upgrade, the new master.
  returned: always
  type: int
  sample: 4711
previous_master_pid:
  description: After an in-place binary upgrade, the old master (told to quit); else null.
  returned: always
  type: int
  sample: null
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
    How it ended: C(reloaded), C(restarted), C(upgraded) or C(started) (proven); C(rejected)
    (nginx kept the old configuration and workers), C(failed) (the new binary of an upgrade
    exited before it served; the old master serves), C(timeout), C(master_exited),
    C(start_failed) (nginx is not running); null when it stopped before (check mode, a failed
    C(nginx -t)).
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

from ansible_collections.hardened.openresty.plugins.module_utils import nginx_binary
from ansible_collections.hardened.openresty.plugins.module_utils import nginx_upgrade
from ansible_collections.hardened.openresty.plugins.module_utils import reload_outcome
from ansible_collections.hardened.openresty.plugins.module_utils.nginx_runtime import (
    children_of,
    foreign_listeners,
    list_processes,
    process_clock,
    read_pid_file,
    read_process,
    runs_file,
    stale_binary,
    workers_of,
)
from ansible_collections.hardened.openresty.plugins.module_utils.nginx_service import (
    find_master,
    is_service_master,
    log_size,
    main_error_log,
    read_new_lines,
    resolve_paths,
    wait_for_reload,
    wait_for_start,
)

ARGUMENT_SPEC = dict(
    binary=dict(type="path"),
    config=dict(type="path"),
    service=dict(type="str"),
    pid_file=dict(type="path"),
    error_log=dict(type="path"),
    timeout=dict(type="int", default=30),
    restart=dict(type="bool", default=False),
    binary_change=dict(type="str", default="upgrade", choices=["upgrade", "restart"]),
    ports=dict(type="list", elements="int", default=[]),
)
# The paths and names that `nginx -V` gives defaults for.
_FROM_VERSION = ("config", "pid_file", "error_log", "service")

# A pidfd pins the process: once it is open, the pid cannot name another process.
_pidfd_open = getattr(os, "pidfd_open", None)


def _signal(pid, still_master, signum=signal.SIGHUP):
    """Send signum to pid after still_master() confirmed, with the process pinned, that it is
    the master that was identified. Raises LookupError when it no longer is."""
    send = getattr(signal, "pidfd_send_signal", None)
    if _pidfd_open is None or send is None:
        if not still_master():
            raise LookupError(pid)
        os.kill(pid, signum)
        return
    try:
        fd = _pidfd_open(pid)
    except OSError:
        raise LookupError(pid)
    try:
        if not still_master():
            raise LookupError(pid)
        send(fd, signum)
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


def _target(module):
    """binary, config, pid_file, error_log and service: as given, else from `nginx -V`."""
    params = module.params
    try:
        binary = nginx_binary.find_binary(params["binary"], module.get_bin_path)
        if all(params[key] for key in _FROM_VERSION):
            # Every default `nginx -V` would give is set (the roles set them all): skip it.
            return dict(((key, params[key]) for key in _FROM_VERSION), binary=binary)
        facts = nginx_binary.version_facts(module.run_command, binary)
    except nginx_binary.NginxBinaryError as exc:
        module.fail_json(msg=str(exc))
    defaults = resolve_paths(facts)
    config = params["config"] or defaults["conf_path"]
    return dict(binary=binary, config=config, pid_file=params["pid_file"] or defaults["pid_path"],
                error_log=params["error_log"] or _main_error_log(config, facts) or defaults["error_log_path"],
                service=params["service"] or ("openresty" if facts["openresty"] else "nginx"))


class _Service(object):
    """The service on this host: its paths, its unit (under systemd) and its master."""

    def __init__(self, module, target):
        self.module = module
        self.target = target
        self.name = target["service"]
        self.systemctl = _systemctl(module)
        # Under systemd the master must sit in the unit's cgroup: only the service's processes do.
        self.unit = self.name if self.systemctl else None

    def master(self):
        # The pid file is what nginx itself wrote; MainPID only when it names nothing usable.
        return (find_master([read_pid_file(self.target["pid_file"])], read_process, self.unit)
                or find_master([_systemd_main_pid(self.module, self.systemctl, self.name)], read_process, self.unit))

    def stray_master(self):
        """A root nginx master the pid file names outside the unit (started by hand), or None."""
        if not self.unit:
            return None
        return find_master([read_pid_file(self.target["pid_file"])], read_process, None)

    def journal(self):
        """A reader of the unit's journal from now on, or None (no systemd or journal)."""
        return _journal_reader(self.module, self.name) if self.systemctl else None


def _result(target):
    return dict(changed=False, binary=target["binary"], config=target["config"], service=target["service"],
                master_pid=None, old_worker_pids=[], new_worker_pids=[], old_workers_draining=[], elapsed=0.0,
                error_log_lines=[], nginx_test_output="", outcome=None, restart_reasons=[],
                previous_master_pid=None)


def _find_running(module, service, result):
    """The service's master (None when it is not running), recorded in result with the action
    to take and the workers before it. Fails on a master that is not the service's."""
    master = service.master()
    stray = service.stray_master() if master is None else None
    if stray is not None:
        module.fail_json(msg=reload_outcome.stray_master_message(stray, service.target["pid_file"], service.name),
                         **result)
    stale = stale_binary(master, service.target["binary"]) if master else None
    result["restart_reasons"] = ([stale] if stale else []) + (["restart=true"] if module.params["restart"] else [])
    result["action"] = _action(module.params, master, stale)
    result["master_pid"] = master
    if master:
        result["old_worker_pids"] = sorted(w["pid"] for w in workers_of(master, list_processes()))
    return master


def _action(params, master, stale):
    """started, restarted, upgraded (a replaced binary, upgraded in place) or reloaded."""
    if not master:
        return "started"
    if params["restart"] or (stale and params["binary_change"] == "restart"):
        return "restarted"
    return "upgraded" if stale else "reloaded"


def _test_config(module, target, result):
    """nginx -t, once: a configuration that fails it changes nothing."""
    rc, out, err = module.run_command([target["binary"], "-t", "-c", target["config"]])
    result["nginx_test_output"] = (err + out).strip()
    if rc != 0:
        module.fail_json(msg="nginx -t failed, nothing was reloaded: %s" % result["nginx_test_output"], **result)


def _exit_proven(module, master, result, **kwargs):
    """Exit with success once the ports asked for are the master's own, else fail."""
    problems = foreign_listeners(master, module.params["ports"]) if module.params["ports"] else {}
    if problems:
        module.fail_json(msg=reload_outcome.foreign_ports_message(problems), **result)
    module.exit_json(**dict(result, **kwargs))


def _run_start(module, service, master):
    """Start the service (master is None) or restart it through systemd: (rc, out, err)."""
    systemctl, target = service.systemctl, service.target
    if not master:
        argv = [systemctl, "start", service.name] if systemctl else [target["binary"], "-c", target["config"]]
        return module.run_command(argv)
    rc, out, err = module.run_command([systemctl, "daemon-reload"])
    if rc == 0:
        rc, out, err = module.run_command([systemctl, "restart", service.name])
    return rc, out, err


def _start(module, service, master, offset, began, result):
    """Start or restart the service and prove a new master with workers; exits."""
    error_log, timeout = service.target["error_log"], module.params["timeout"]
    # A unit that fails to start logs to the journal before its error log is open.
    journal = service.journal()
    rc, out, err = _run_start(module, service, master)
    if rc != 0:
        lines = read_new_lines(error_log, offset) + (journal() if journal else [])
        result.update(changed=master is not None, master_pid=None, outcome="start_failed", error_log_lines=lines)
        module.fail_json(msg=reload_outcome.start_failed_message(service.name, master is not None, lines, err or out),
                         **result)
    new_master, workers = wait_for_start(service.master, list_processes, timeout)
    result.update(changed=True, master_pid=new_master, new_worker_pids=workers, outcome=result["action"],
                  elapsed=round(time.time() - began, 3), error_log_lines=read_new_lines(error_log, offset))
    msg = reload_outcome.start_unproven_message(service.name, result["action"], timeout, master, new_master, workers)
    if msg:
        module.fail_json(msg=msg, **result)
    _exit_proven(module, new_master, result)


def _log_reader(service, offset):
    """A function returning the lines the error log received since offset; the unit's
    journal when the configuration has no file error log (stderr goes there)."""
    error_log = service.target["error_log"]
    journal = service.journal() if not error_log else None
    if journal:
        return journal
    return lambda: read_new_lines(error_log, offset)


def _reload(module, service, master, offset, began, result):
    """SIGHUP to the verified master, then wait for wait_for_reload()'s verdict; exits."""
    new_lines = _log_reader(service, offset)
    signalled_at = process_clock()
    try:
        _signal(master, lambda: is_service_master(read_process(master), service.unit))
    except LookupError:
        module.fail_json(msg="the nginx master %d exited before it could be signalled; nothing was reloaded"
                         % master, **result)
    verdict = wait_for_reload(master, result["old_worker_pids"], list_processes, new_lines,
                              module.params["timeout"], signalled_at)
    failed, changed, msg = reload_outcome.reload_verdict(verdict, master, module.params["timeout"])
    result.update(changed=changed, elapsed=round(time.time() - began, 3), outcome=verdict["outcome"],
                  new_worker_pids=verdict["new_worker_pids"], old_workers_draining=verdict["old_workers_draining"],
                  error_log_lines=verdict["error_log_lines"])
    if failed:
        module.fail_json(msg=msg, **result)
    _exit_proven(module, master, result, msg=msg)


def _upgrade(module, service, master, offset, began, result):
    """USR2 to the verified master, prove the new master, then QUIT the old one; exits.

    A new binary that fails, or never serves, is told to quit: the old master, never
    stopped, keeps serving. See nginx_upgrade for nginx's procedure.
    """
    target, timeout = service.target, module.params["timeout"]
    new_lines = _log_reader(service, offset)

    def is_ours(pid):
        return lambda: is_service_master(read_process(pid), service.unit)

    def proven(info):
        return is_service_master(info, service.unit) and runs_file(info["pid"], target["binary"])

    signalled_at = process_clock()
    try:
        _signal(master, is_ours(master), signal.SIGUSR2)
    except LookupError:
        module.fail_json(msg="the nginx master %d exited before it could be signalled; nothing was upgraded"
                         % master, **result)
    verdict = nginx_upgrade.wait_for_upgrade(
        master, children_of, list_processes, lambda: read_pid_file(target["pid_file"]), proven, new_lines,
        timeout, signalled_at, lambda: os.path.lexists(target["pid_file"] + ".oldbin"))
    result.update(outcome=verdict["outcome"], error_log_lines=verdict["error_log_lines"])
    if verdict["outcome"] != "upgraded":
        left = _quit_new_binaries(master, verdict["candidates"])
        result.update(changed=bool(verdict["candidates"]), elapsed=round(time.time() - began, 3))
        module.fail_json(msg=reload_outcome.upgrade_failed_message(verdict, master, timeout, left), **result)
    new_master = verdict["master"]
    try:
        _signal(master, is_ours(master), signal.SIGQUIT)
    except LookupError:
        pass  # the old master is gone already: nothing left to stop
    # The old master exits once its workers have finished (worker_shutdown_timeout).
    remaining = max(1.0, timeout - (time.time() - began))
    exited = nginx_upgrade.wait_until(lambda: not is_ours(master)(), remaining)
    followed = exited and bool(service.systemctl) and nginx_upgrade.wait_until(
        lambda: _systemd_main_pid(module, service.systemctl, service.name) == new_master, 5.0)
    result.update(changed=True, master_pid=new_master, previous_master_pid=master,
                  new_worker_pids=verdict["new_worker_pids"], elapsed=round(time.time() - began, 3),
                  old_workers_draining=[] if exited else nginx_upgrade.old_generation(master, list_processes()))
    msg = reload_outcome.upgrade_message(master, new_master, verdict["new_worker_pids"], exited,
                                         followed if service.systemctl else None, service.name)
    if exited and service.systemctl and not followed:
        module.fail_json(msg=msg, **result)
    _exit_proven(module, new_master, result, msg=msg)


def _quit_new_binaries(old_master, candidates):
    """Tell each new binary still running (a child of the old master) to quit; returns the
    pids still running five seconds later."""
    def alive():
        return [pid for pid in candidates if (read_process(pid) or {}).get("ppid") == old_master]

    for pid in alive():
        try:
            _signal(pid, lambda: pid in alive(), signal.SIGQUIT)
        except LookupError:
            pass  # exited meanwhile
    nginx_upgrade.wait_until(lambda: not alive(), 5.0)
    return alive()


def main():
    began = time.time()
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    target = _target(module)
    service = _Service(module, target)
    result = _result(target)
    if module.params["restart"] and not service.systemctl:
        module.fail_json(msg="restart=true needs systemd (PID 1) to restart %s" % service.name, **result)
    master = _find_running(module, service, result)
    if result["action"] == "restarted" and not service.systemctl:
        module.fail_json(msg="%s; without systemd (PID 1) restart %s by hand" % (result["restart_reasons"][0], service.name),
                         **result)
    if module.check_mode:
        # nginx -t writes (log files, temp dirs, a pid file): check mode only reports.
        result["changed"] = True
        module.exit_json(msg=reload_outcome.check_mode_message(result["action"], master, service.name,
                                                               target["config"], target["binary"]), **result)
    _test_config(module, target, result)
    offset = log_size(target["error_log"])
    if result["action"] in ("started", "restarted"):
        _start(module, service, master, offset, began, result)
    if result["action"] == "upgraded":
        _upgrade(module, service, master, offset, began, result)
    _reload(module, service, master, offset, began, result)


if __name__ == "__main__":
    main()
