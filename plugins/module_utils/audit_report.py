# -*- coding: utf-8 -*-
# Copyright: hardened.openresty contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fleet audit reports from lua_sandbox_verify results: JSON, SARIF 2.1.0 and JUnit XML.

Input everywhere is `results`: a dict host -> the module's return value (findings, summary,
versions, passed; or msg when the module itself failed on that host).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import json
from xml.sax.saxutils import quoteattr, escape

from ansible_collections.hardened.openresty.plugins.module_utils import lua_rules

TOOL_NAME = "hardened.openresty.lua_sandbox_verify"
SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
SARIF_LEVEL = {lua_rules.HIGH: "error", lua_rules.MEDIUM: "warning", lua_rules.LOW: "note"}
# GitHub code scanning reads this property to rank security results (0.0-10.0).
SECURITY_SEVERITY = {lua_rules.HIGH: "8.0", lua_rules.MEDIUM: "5.0", lua_rules.LOW: "2.0"}
VERSION_DRIFT = "nginx-version-drift"
VERSION_DRIFT_SUMMARY = "The host runs older nginx/Lua components than the fleet's newest"
VERSION_KEYS = ("version", "lua_nginx_module", "luajit", "pcre")
# fail_on levels in increasing order, from lua_rules; "none" ranks above every severity.
SEVERITY_RANK = dict((level, lua_rules.severity_rank(level)) for level in lua_rules.SEVERITIES)
SEVERITY_RANK["none"] = len(lua_rules.SEVERITIES)


def _version_key(text):
    parts = []
    for piece in str(text).replace("-", ".").split("."):
        parts.append((0, int(piece), "") if piece.isdigit() else (1, 0, piece))
    return parts


def version_drift_findings(results):
    """Low findings for hosts whose component versions are older than the fleet's newest."""
    newest = {}
    for result in results.values():
        for key in VERSION_KEYS:
            value = (result.get("versions") or {}).get(key)
            if value is not None and (key not in newest or _version_key(value) > _version_key(newest[key])):
                newest[key] = value
    drift = {}
    for host, result in results.items():
        versions = result.get("versions") or {}
        behind = ["%s %s (fleet newest %s)" % (key, versions[key], newest[key])
                  for key in VERSION_KEYS
                  if versions.get(key) is not None and _version_key(versions[key]) < _version_key(newest[key])]
        if behind:
            drift[host] = [{
                "rule": VERSION_DRIFT,
                "severity": lua_rules.LOW,
                "message": "older than the rest of the fleet: " + ", ".join(behind),
                "file": None,
                "line": None,
            }]
    return drift


def build(results):
    """The report: per host findings (version drift added), summary, versions and errors."""
    drift = version_drift_findings(results)
    hosts = {}
    for host in sorted(results):
        result = results[host]
        findings = list(result.get("findings") or []) + drift.get(host, [])
        hosts[host] = {
            "findings": findings,
            "summary": lua_rules.summarize(findings),
            "versions": result.get("versions") or {},
            "error": None if "findings" in result else result.get("msg", "no result"),
        }
    return {"tool": TOOL_NAME, "hosts": hosts}


def failing_hosts(report, threshold):
    """Hosts with a finding at or above threshold (none/low/medium/high), or an error."""
    if threshold == "none":
        return []
    return sorted(host for host, data in report["hosts"].items()
                  if data["error"] or lua_rules.at_or_above(data["findings"], threshold))


def to_json(report):
    """The report as JSON, one host per line: readable with a pager and grep, and written by
    json's C encoder (an indented dump of 10,000 hosts takes Python's slow encoder)."""
    lines = ['{"hosts": {']
    hosts = sorted(report["hosts"].items())
    for position, (host, data) in enumerate(hosts):
        lines.append("%s: %s%s" % (json.dumps(host), json.dumps(data, sort_keys=True),
                                   "," if position < len(hosts) - 1 else ""))
    lines.append('}, "tool": %s}' % json.dumps(report["tool"]))
    return "\n".join(lines) + "\n"


def _catalogue():
    rules = [(r.id, r.severity, r.summary, r.rationale) for r in lua_rules.RULES]
    rules.append((VERSION_DRIFT, lua_rules.LOW, VERSION_DRIFT_SUMMARY,
                  "Hosts left on old nginx, lua-nginx-module, LuaJIT or PCRE builds miss fixes the rest "
                  "of the fleet has. Update them."))
    return rules


SARIF_FINGERPRINT = "hardenedOpenrestyFinding/v1"
# A finding that belongs to a host, not to a configuration file (version drift, a module root
# on the host): SARIF wants a location, this one names no file of the repository.
SARIF_HOST_URI = "inventory"


def distinct_findings(report):
    """The fleet's findings grouped by what they are, not by where they were found: a list of
    (finding, hosts), one per distinct (rule, severity, file, line, message), in a stable order.
    Hosts that share their configuration share their findings, so a fleet of any size that runs
    one configuration has as many entries as one host has findings."""
    groups = {}
    for host, data in report["hosts"].items():
        for finding in data["findings"]:
            key = (finding["rule"], finding["severity"], finding.get("file") or "",
                   int(finding.get("line") or 0), finding["message"])
            entry = groups.get(key)
            if entry is None:
                groups[key] = (finding, [host])
            else:
                entry[1].append(host)
    return [(groups[key][0], sorted(groups[key][1])) for key in sorted(groups)]


def sarif_fingerprint(finding):
    """Stable across runs and host sets: the same finding keeps its fingerprint when hosts are
    added or removed, so code scanning updates one alert instead of opening a new one."""
    key = "\0".join((finding["rule"], finding.get("file") or "", str(finding.get("line") or ""),
                     finding["message"]))
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]


def _host_list(hosts, shown=5):
    if len(hosts) <= shown:
        return ", ".join(hosts)
    return "%s and %d more" % (", ".join(hosts[:shown]), len(hosts) - shown)


def _sarif_rules(catalogue):
    return [{
        "id": rule_id,
        "name": "".join(part.capitalize() for part in rule_id.split("-")),
        "shortDescription": {"text": summary},
        "fullDescription": {"text": rationale},
        "help": {"text": "%s See docs/rules.md#%s for the fix." % (rationale, rule_id),
                 "markdown": "%s\n\nSee [docs/rules.md](docs/rules.md#%s) for an example and the fix."
                             % (rationale, rule_id)},
        "defaultConfiguration": {"level": SARIF_LEVEL[severity]},
        "properties": {"tags": ["security", "nginx", "lua"], "security-severity": SECURITY_SEVERITY[severity]},
    } for rule_id, severity, summary, rationale in catalogue]


def to_sarif(report, version="0"):
    """SARIF 2.1.0: one run, the rule catalogue as rule metadata, one result per distinct
    finding (see distinct_findings) with the hosts it was found on in its properties."""
    catalogue = _catalogue()
    index = dict((entry[0], position) for position, entry in enumerate(catalogue))
    results = []
    for finding, hosts in distinct_findings(report):
        physical = {"artifactLocation": {"uri": finding.get("file") or SARIF_HOST_URI}}
        if finding.get("line"):
            physical["region"] = {"startLine": int(finding["line"])}
        results.append({
            "ruleId": finding["rule"],
            "ruleIndex": index.get(finding["rule"], -1),
            "level": SARIF_LEVEL.get(finding["severity"], "warning"),
            "message": {"text": "%s (on %d host%s: %s)" % (finding["message"], len(hosts),
                                                           "" if len(hosts) == 1 else "s", _host_list(hosts))},
            "locations": [{"physicalLocation": physical}],
            "partialFingerprints": {SARIF_FINGERPRINT: sarif_fingerprint(finding)},
            "properties": {"hosts": hosts, "host_count": len(hosts), "severity": finding["severity"]},
        })
    sarif = {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {"name": TOOL_NAME, "version": version, "rules": _sarif_rules(catalogue)}},
            "results": results,
        }],
    }
    return json.dumps(sarif, indent=2, sort_keys=True) + "\n"


def to_junit(report, threshold="high"):
    """JUnit XML: a suite per host, a test case per rule; a case fails when that host has a
    finding of that rule at or above threshold (none: never), and a host whose audit could not
    run gets one erroring case."""
    rule_ids = [entry[0] for entry in _catalogue()]
    rank = SEVERITY_RANK[threshold]
    lines = ['<?xml version="1.0" encoding="UTF-8"?>']
    suites = []
    total = failures = errors = 0
    for host, data in sorted(report["hosts"].items()):
        cases = []
        host_failures = host_errors = 0
        if data["error"]:
            host_errors = 1
            cases.append('    <testcase classname=%s name="audit"><error message=%s/></testcase>'
                         % (quoteattr(host), quoteattr(data["error"])))
        by_rule = {}
        for finding in data["findings"]:
            by_rule.setdefault(finding["rule"], []).append(finding)
        for rule_id in rule_ids:
            hits = by_rule.get(rule_id, [])
            failing = [f for f in hits if SEVERITY_RANK.get(f["severity"], 0) >= rank]
            body = ""
            if failing:
                host_failures += 1
                text = "\n".join("%s:%s %s" % (f.get("file") or "-", f.get("line") or "-", f["message"]) for f in failing)
                body = '<failure type=%s message=%s>%s</failure>' % (
                    quoteattr(failing[0]["severity"]), quoteattr("%d finding(s)" % len(failing)), escape(text))
            elif hits:
                body = "<system-out>%s</system-out>" % escape("\n".join(f["message"] for f in hits))
            cases.append('    <testcase classname=%s name=%s>%s</testcase>' % (quoteattr(host), quoteattr(rule_id), body))
        total += len(cases)
        failures += host_failures
        errors += host_errors
        suites.append('  <testsuite name=%s tests="%d" failures="%d" errors="%d">\n%s\n  </testsuite>'
                      % (quoteattr(host), len(cases), host_failures, host_errors, "\n".join(cases)))
    lines.append('<testsuites name=%s tests="%d" failures="%d" errors="%d">'
                 % (quoteattr(TOOL_NAME), total, failures, errors))
    lines.extend(suites)
    lines.append("</testsuites>")
    return "\n".join(lines) + "\n"


def summary_table(report):
    """A fixed-width table: host, finding counts, the version inventory, status."""
    rows = [("host", "high", "medium", "low", "nginx", "luajit", "pcre", "status")]
    for host, data in sorted(report["hosts"].items()):
        summary = data["summary"]
        status = "error: %s" % data["error"] if data["error"] else ("clean" if not data["findings"] else "findings")
        rows.append((host, str(summary.get("high", 0)), str(summary.get("medium", 0)), str(summary.get("low", 0)),
                     str(data["versions"].get("version") or "-"),
                     str(data["versions"].get("luajit") or data["versions"].get("luajit_library") or "-"),
                     str(data["versions"].get("pcre") or "-"), status))
    widths = [max(len(row[col]) for row in rows) for col in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows)


FORMATS = ("json", "sarif", "junit", "table")


def render_all(results, threshold="high", version="0"):
    """Every output of an audit from one build of the report: the JSON, SARIF and JUnit texts,
    the table, and the hosts failing at threshold."""
    report = build(results)
    return {
        "json": to_json(report),
        "sarif": to_sarif(report, version),
        "junit": to_junit(report, threshold),
        "table": summary_table(report),
        "failing_hosts": failing_hosts(report, threshold),
    }
