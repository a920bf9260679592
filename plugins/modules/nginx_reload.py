#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: hardened.openresty contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: nginx_reload
short_description: Reload nginx or OpenResty and prove that a new worker generation serves
description:
  - Tests the configuration with C(nginx -t) and fails with nginx's own message when it is
    invalid, changing nothing.
  - Starts the service when it is not running.
  - Otherwise records the master and worker pids, reloads the service (C(systemctl reload),
    or C(SIGHUP) to the master when systemd does not manage it) and waits until a new
    generation of workers runs and every old worker has exited or is draining its
    connections.
  - Detects a rejected reload. C(nginx -t) does not create a Lua VM, so a broken
    C(lua_package_path) or a missing Lua module passes the test; on reload the master
    fails to load the new configuration, logs an C([emerg]) or C([alert]) line and keeps
    the old workers serving. The module fails with those error log lines.
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
      - Old workers still draining connections when it ends are reported in
        RV(old_workers_draining); that is not a failure.
    type: int
    default: 30
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details: Runs C(nginx -t) only and reports the action it would take.
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

- name: Handler that any task can notify
  listen: hardened_openresty_reload
  hardened.openresty.nginx_reload:
  register: server_reload
"""

RETURN = r"""
action:
  description: C(reloaded) or C(started) (in check mode, the action it would take).
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
  description: Old workers still shutting down gracefully when the timeout ended.
  returned: always
  type: list
  elements: int
  sample: []
elapsed:
  description: Seconds from the reload (or start) until the new generation was proven.
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
    list_processes,
    parse_version_output,
    read_pid_file,
    read_process,
    workers_of,
)
from ansible_collections.hardened.openresty.plugins.module_utils.nginx_service import (
    find_master,
    log_size,
    main_error_log,
    read_new_lines,
    resolve_paths,
    serious_entries,
    wait_for_reload,
    wait_for_start,
)


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
    entries = serious_entries(lines, master) or serious_entries(lines) or lines
    return " | ".join(entries[-5:])


def main():
    module = AnsibleModule(
        argument_spec=dict(
            binary=dict(type="path"),
            config=dict(type="path"),
            service=dict(type="str"),
            pid_file=dict(type="path"),
            error_log=dict(type="path"),
            timeout=dict(type="int", default=30),
        ),
        supports_check_mode=True,
    )
    params = module.params
    binary = params["binary"] or module.get_bin_path("openresty") or module.get_bin_path("nginx", required=True)
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
    )

    rc, out, err = module.run_command([binary, "-t", "-c", config])
    result["nginx_test_output"] = (err + out).strip()
    if rc != 0:
        module.fail_json(msg="nginx -t failed, nothing was reloaded: %s" % result["nginx_test_output"], **result)

    systemctl = _systemctl(module)

    def current_master():
        return find_master([_systemd_main_pid(module, systemctl, service), read_pid_file(pid_file)], read_process)

    main_pid = _systemd_main_pid(module, systemctl, service)
    master = find_master([main_pid, read_pid_file(pid_file)], read_process)
    # A master that systemd does not track (started by hand) is reloaded with a signal:
    # `systemctl reload` would refuse an inactive unit.
    managed = master is not None and main_pid == master
    result["action"] = "reloaded" if master else "started"
    result["master_pid"] = master
    if master:
        result["old_worker_pids"] = sorted(w["pid"] for w in workers_of(master, list_processes()))
    if module.check_mode:
        result["changed"] = True
        module.exit_json(**result)

    offset = log_size(error_log)
    journal = _journal_reader(module, service) if systemctl else None

    def new_lines():
        if error_log or not journal:
            return read_new_lines(error_log, offset)
        return journal()

    began = time.time()
    if not master:
        if systemctl:
            rc, out, err = module.run_command([systemctl, "start", service])
        else:
            rc, out, err = module.run_command([binary, "-c", config])
        if rc != 0:
            # A unit that fails to start logs to the journal before its error log is open.
            result["error_log_lines"] = read_new_lines(error_log, offset) + (journal() if journal else [])
            reason = _failure_lines(result["error_log_lines"], None) or (err or out).strip()
            module.fail_json(msg="starting %s failed: %s" % (service, reason), **result)
        master, workers = wait_for_start(current_master, list_processes, params["timeout"])
        result.update(changed=True, master_pid=master, new_worker_pids=workers,
                      elapsed=round(time.time() - began, 3), error_log_lines=new_lines())
        if not workers:
            module.fail_json(msg="%s was started but no nginx worker was running after %ss"
                             % (service, params["timeout"]), **result)
        module.exit_json(**result)

    old = result["old_worker_pids"]
    if managed:
        rc, out, err = module.run_command([systemctl, "reload", service])
        if rc != 0:
            result["error_log_lines"] = new_lines()
            module.fail_json(msg="systemctl reload %s failed: %s" % (service, (err or out).strip()), **result)
    else:
        os.kill(master, signal.SIGHUP)
    verdict = wait_for_reload(master, old, list_processes, new_lines, params["timeout"])
    result.update(
        changed=True,
        elapsed=round(time.time() - began, 3),
        new_worker_pids=verdict["new_worker_pids"],
        old_workers_draining=verdict["old_workers_draining"],
        error_log_lines=verdict["error_log_lines"],
    )
    outcome = verdict["outcome"]
    if outcome == "reloaded":
        module.exit_json(**result)
    if outcome == "rejected":
        # The master kept the old configuration and workers: nothing changed.
        result["changed"] = False
        msg = ("nginx rejected the reload and keeps serving with the old workers %s: %s"
               % (verdict["old_workers_active"], _failure_lines(result["error_log_lines"], master)))
    elif outcome == "master_exited":
        msg = "the nginx master %d exited during the reload" % master
    else:
        msg = ("no complete new worker generation within %ss (new workers %s, old workers still serving %s)"
               % (params["timeout"], verdict["new_worker_pids"], verdict["old_workers_active"]))
        if result["error_log_lines"]:
            msg += ": " + _failure_lines(result["error_log_lines"], master)
    module.fail_json(msg=msg, **result)


if __name__ == "__main__":
    main()
