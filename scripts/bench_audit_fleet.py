#!/usr/bin/env python
# -*- coding: utf-8 -*-
# Copyright: hardened.openresty contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fleet simulator for the controller side of the audit: playbooks/audit_reports.yml on N hosts.

Usage: python scripts/bench_audit_fleet.py [--hosts 1000 10000] [--runs 3] [--inject inventory add_host delegate register]
                                           [--keep DIR] [--output FILE]

For each N, a generated inventory of N hosts in group `openresty` and a generated verifier
result per host (what lua_sandbox_verify returns: 7 findings, summary, versions, passed) are
fed through the real controller play, `hardened.openresty.audit_reports`, as imported by
playbooks/audit.yml; no container, no connection to any host. Ways to inject the results:

- inventory (default): `audit_result` is a host variable of the generated inventory; no
  per-host task runs, so the controller play reads N hosts' results through hostvars exactly
  as after the real audit's verifier task, and the run adds only the inventory's loading;
- add_host, delegate: one task on the controller loops over the results and gives each host
  its `audit_result` with add_host, or with set_fact delegated to the host (delegate_facts:
  the fact cache, where `register` puts it); both cost Ansible a loop item per host;
- register: a first play on the N hosts sets `audit_result` with set_fact from a host
  variable, where the real audit's `register` puts it; this adds Ansible's own cost of one
  task on N hosts, the floor of any per-host play (the real audit's verifier task included).

Findings (a realistic mix): 90% of hosts share one configuration and its 7 findings (high,
medium and low rules, a filesystem finding without a line); the rest are spread over 9
variants of it (other lines, another file); 2% run an older nginx (version drift on top);
0.5% could not be audited (a bare `msg`). The reports written are then parsed and checked:
every host in audit.json, SARIF with one result per distinct finding, JUnit with one test case
per host and rule.

Per N: the whole ansible-playbook run (wall seconds, peak RSS of its largest process), and
per task of the controller play (from a timing callback), medians of --runs with min-max.
Needs the Makefile's environment (PATH with .venv/bin, ANSIBLE_COLLECTIONS_PATH): `make bench`.
"""

from __future__ import absolute_import, division, print_function

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from xml.etree import ElementTree

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FINDINGS_PER_HOST = 7
# (rule, severity, file, line, message) of the shared configuration.
BASE_FINDINGS = [
    ("lua-socket-timeout-missing", "medium", "/etc/nginx/nginx.conf", 31,
     "lua_socket_read_timeout is not set; the default 60s lets a slow peer hold a worker's socket"),
    ("lua-regex-match-limit-missing", "medium", "/etc/nginx/nginx.conf", 30,
     "lua_regex_match_limit is not set; PCRE's default allows catastrophic backtracking"),
    ("lua-socket-keepalive-timeout-too-long", "low", "/etc/nginx/conf.d/app.conf", 12,
     "lua_socket_keepalive_timeout 600s is longer than 60s"),
    ("lua-regex-cache-too-large", "low", "/etc/nginx/nginx.conf", 33,
     "lua_regex_cache_max_entries 100000 is above 10000"),
    ("lua-dangerous-call", "medium", "/srv/lua/app/current/handler.lua", 57,
     "os.execute is called; a request must not start processes"),
    ("lua-file-outside-module-roots", "medium", "/etc/nginx/conf.d/app.conf", 21,
     "access_by_lua_file /srv/legacy/access.lua is outside the sealed module roots"),
    ("lua-module-dir-not-sealed", "medium", "/srv/lua/vendor", None,
     "directory /srv/lua/vendor is not owned by root"),
]
VERSIONS = {"name": "openresty", "version": "1.27.1.2", "openresty": True, "lua_nginx_module": "0.10.28",
            "luajit": "2.1.1723681758", "pcre": 2, "prefix": "/usr/local/openresty/nginx",
            "conf_path": "/usr/local/openresty/nginx/conf/nginx.conf", "pid_path": "/run/openresty.pid"}
OLD_VERSIONS = dict(VERSIONS, version="1.25.3.2", lua_nginx_module="0.10.26")

TIMER_CALLBACK = '''
from __future__ import absolute_import, division, print_function
__metaclass__ = type
import json, os, time
from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: bench_timer
type: aggregate
short_description: task start times for scripts/bench_audit_fleet.py
description: [Writes the start time of every task and the end of the run to BENCH_TIMER_OUT.]
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "bench_timer"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super(CallbackModule, self).__init__()
        self.events = [["start", time.time()]]

    def v2_playbook_on_play_start(self, play):
        self.events.append(["play: " + play.get_name(), time.time()])

    def v2_playbook_on_task_start(self, task, is_conditional):
        self.events.append([task.get_name(), time.time()])

    def v2_playbook_on_stats(self, stats):
        self.events.append(["end", time.time()])
        with open(os.environ["BENCH_TIMER_OUT"], "w") as handle:
            json.dump(self.events, handle)
'''


def host_name(n):
    return "web%05d" % n


def verifier_result(n, count):
    """What lua_sandbox_verify returns for host n of count (deterministic)."""
    if n % 200 == 199:
        return None  # not audited: the controller play fills in the error
    variant = 0 if n < count * 9 // 10 else 1 + n % 9
    findings = []
    for position, (rule, severity, path, line, message) in enumerate(BASE_FINDINGS):
        if variant and position == variant % len(BASE_FINDINGS) and line is not None:
            line += variant  # the same rule on another line in this variant
        if variant == 9 and position == 0:
            path = "/etc/nginx/conf.d/legacy.conf"
        findings.append({"rule": rule, "severity": severity, "file": path, "line": line, "message": message})
    summary = {"high": 0, "medium": 0, "low": 0}
    for finding in findings:
        summary[finding["severity"]] += 1
    return {"changed": False, "findings": findings, "summary": summary, "passed": False,
            "versions": OLD_VERSIONS if n % 50 == 7 else VERSIONS,
            "config_files": ["/usr/local/openresty/nginx/conf/nginx.conf"], "prefix": VERSIONS["prefix"]}


def write_fleet(directory, count, inject):
    hosts = {}
    results = {}
    for n in range(count):
        result = verifier_result(n, count)
        if result and inject in ("inventory", "register"):
            hosts[host_name(n)] = {"audit_result" if inject == "inventory" else "bench_verifier_result": result}
        else:
            hosts[host_name(n)] = None
        if result:
            results[host_name(n)] = result
    # JSON is YAML: the yaml inventory plugin reads it.
    with open(os.path.join(directory, "inventory.yml"), "w") as handle:
        json.dump({"all": {"children": {"openresty": {"hosts": hosts}},
                           "hosts": {"localhost": {"ansible_connection": "local",
                                                   "ansible_python_interpreter": sys.executable}}}}, handle)
    plays = []
    if inject in ("delegate", "add_host"):
        # Read in the loop expression, not as a play variable: every loop item would copy a
        # play variable of N results, which makes the injection quadratic.
        with open(os.path.join(directory, "fleet_results.json"), "w") as handle:
            json.dump(results, handle)
        loop = {"loop": "{{ lookup('ansible.builtin.file', 'fleet_results.json') | from_json | dict2items }}",
                "loop_control": {"label": "{{ item.key }}"}}
        if inject == "delegate":
            task = dict({"name": "Set audit_result of each host", "ansible.builtin.set_fact": {
                "audit_result": "{{ item.value }}"}, "delegate_to": "{{ item.key }}", "delegate_facts": True}, **loop)
        else:
            task = dict({"name": "Set audit_result of each host", "ansible.builtin.add_host": {
                "name": "{{ item.key }}", "audit_result": "{{ item.value }}"}}, **loop)
        plays.append({
            "name": "Put every host's simulated verifier result in its host variables",
            "hosts": "localhost",
            "gather_facts": False,
            "tasks": [task],
        })
    if inject == "register":
        plays.append({
            "name": "Put each host's simulated verifier result where the audit's register puts it",
            "hosts": "openresty",
            "gather_facts": False,
            "tasks": [{"name": "Set audit_result", "ansible.builtin.set_fact": {
                "audit_result": "{{ bench_verifier_result }}"}, "when": "bench_verifier_result is defined"}],
        })
    plays.append({"name": "The audit's controller play",
                  "ansible.builtin.import_playbook": "hardened.openresty.audit_reports"})
    with open(os.path.join(directory, "simulate.yml"), "w") as handle:
        json.dump(plays, handle, indent=1)
    callbacks = os.path.join(directory, "callback_plugins")
    os.mkdir(callbacks)
    with open(os.path.join(callbacks, "bench_timer.py"), "w") as handle:
        handle.write(TIMER_CALLBACK)
    return results


def run_once(directory, forks):
    reports = os.path.join(directory, "reports")
    shutil.rmtree(reports, ignore_errors=True)
    env = dict(os.environ, ANSIBLE_CALLBACK_PLUGINS=os.path.join(directory, "callback_plugins"),
               ANSIBLE_CALLBACKS_ENABLED="bench_timer", BENCH_TIMER_OUT=os.path.join(directory, "timer.json"),
               ANSIBLE_FORKS=str(forks), ANSIBLE_HOST_KEY_CHECKING="False", ANSIBLE_NOCOLOR="1",
               ANSIBLE_RETRY_FILES_ENABLED="False", ANSIBLE_LOCALHOST_WARNING="False")
    argv = ["ansible-playbook", "-i", os.path.join(directory, "inventory.yml"), os.path.join(directory, "simulate.yml"),
            "-e", "audit_report_dir=" + reports, "-e", "audit_fail_on=none"]
    with open(os.path.join(directory, "ansible.log"), "w") as log:
        started = time.time()
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=directory)
        # wait4: the child's rusage, whose maxrss is the largest of it and its descendants.
        status, usage = os.wait4(process.pid, 0)[1:]
        wall = time.time() - started
    if os.waitstatus_to_exitcode(status) != 0:
        with open(os.path.join(directory, "ansible.log")) as log:
            sys.exit("ansible-playbook failed:\n" + log.read()[-3000:])
    with open(os.path.join(directory, "timer.json")) as handle:
        events = json.load(handle)
    tasks = {}
    for (name, start), (_next, end) in zip(events, events[1:]):
        if not name.startswith("play: ") and name != "start":
            tasks[name] = tasks.get(name, 0.0) + end - start
    controller = [name for name, _when in events if name.startswith("play: ")][-1]
    controller_start = [when for name, when in events if name == controller][0]
    tasks["controller play, all tasks"] = events[-1][1] - controller_start
    tasks["start of ansible-playbook to the first play"] = events[1][1] - started
    return wall, usage.ru_maxrss / 1024.0, tasks, reports


def check_reports(reports, results, count):
    """The written reports are complete: a check, not a timing."""
    with open(os.path.join(reports, "audit.json")) as handle:
        report = json.load(handle)
    assert len(report["hosts"]) == count, len(report["hosts"])
    assert sum(len(h["findings"]) for name, h in report["hosts"].items() if name in results) >= \
        FINDINGS_PER_HOST * len(results)
    with open(os.path.join(reports, "audit.sarif")) as handle:
        sarif = json.load(handle)["runs"][0]
    distinct = set()
    for data in report["hosts"].values():
        for f in data["findings"]:
            distinct.add((f["rule"], f["severity"], f["file"] or "", f["line"] or 0, f["message"]))
    assert len(sarif["results"]) == len(distinct) < 25000, (len(sarif["results"]), len(distinct))
    assert sum(r["properties"]["host_count"] for r in sarif["results"]) == \
        sum(len(h["findings"]) for h in report["hosts"].values())
    junit = ElementTree.parse(os.path.join(reports, "audit.junit.xml")).getroot()
    assert len(junit.findall("testsuite")) == count
    sizes = dict((name, os.path.getsize(os.path.join(reports, name)))
                 for name in ("audit.json", "audit.sarif", "audit.junit.xml"))
    return len(sarif["results"]), sizes


def median_spread(values, fmt="%.2f"):
    return fmt % statistics.median(values), (fmt + "-" + fmt) % (min(values), max(values))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--hosts", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--inject", nargs="+", choices=["inventory", "add_host", "delegate", "register"], default=["inventory"])
    parser.add_argument("--forks", type=int, default=5)
    parser.add_argument("--keep", help="keep the generated fleets under this directory")
    parser.add_argument("--output", help="also write the markdown to this file")
    args = parser.parse_args()

    lines = ["Controller play `hardened.openresty.audit_reports` on simulated fleets; %d runs each, "
             "median (min-max); ansible-core %s, Python %s, %d CPUs, forks %d."
             % (args.runs, subprocess.run(["ansible", "--version"], capture_output=True, text=True,
                                          check=True).stdout.split("[core ")[1].split("]")[0],
                platform.python_version(), os.cpu_count(), args.forks), ""]
    task_rows = []
    lines += ["| injection | hosts | whole run (s) | spread | controller play (s) | spread | controller s per 1k hosts | "
              "peak RSS (MB) | SARIF results | audit.json / .sarif / .junit.xml (MB) |",
              "|---|---:|---:|---|---:|---|---:|---:|---:|---|"]
    for inject in args.inject:
        for count in args.hosts:
            base = args.keep or tempfile.gettempdir()
            os.makedirs(base, exist_ok=True)
            directory = tempfile.mkdtemp(prefix="audit-fleet-%s-%d-" % (inject, count), dir=base)
            try:
                results = write_fleet(directory, count, inject)
                walls, rss, controller, per_task = [], [], [], {}
                for _run in range(args.runs):
                    wall, peak, tasks, reports = run_once(directory, args.forks)
                    walls.append(wall)
                    rss.append(peak)
                    controller.append(tasks["controller play, all tasks"])
                    for name, seconds in tasks.items():
                        per_task.setdefault(name, []).append(seconds)
                sarif_results, sizes = check_reports(reports, results, count)
            finally:
                if not args.keep:
                    shutil.rmtree(directory, ignore_errors=True)
            wall_m, wall_s = median_spread(walls)
            ctl_m, ctl_s = median_spread(controller)
            lines.append("| %s | %d | %s | %s | %s | %s | %.2f | %.0f | %d | %s |" % (
                inject, count, wall_m, wall_s, ctl_m, ctl_s, statistics.median(controller) / count * 1000,
                statistics.median(rss), sarif_results,
                " / ".join("%.1f" % (sizes[name] / 1e6) for name in ("audit.json", "audit.sarif", "audit.junit.xml"))))
            for name, values in per_task.items():
                task_rows.append("| %s | %d | %s | %s | %s |" % ((inject, count, name) + median_spread(values)))
            print(lines[-1], file=sys.stderr)
    lines += ["", "Where the time goes (per task, seconds, median and spread):", "",
              "| injection | hosts | task | median | spread |", "|---|---:|---|---:|---|"] + task_rows
    text = "\n".join(lines) + "\n"
    print(text)
    if args.output:
        with open(args.output, "w") as handle:
            handle.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
