from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import xml.etree.ElementTree as ET

from ansible_collections.hardened.openresty.plugins.module_utils import audit_report, lua_rules


def finding(rule, severity, file="/etc/nginx/nginx.conf", line=3, message="bad"):
    return {"rule": rule, "severity": severity, "file": file, "line": line, "message": message}


RESULTS = {
    "web1": {"findings": [], "versions": {"version": "1.26.3", "luajit": None, "pcre": None}},
    "web2": {
        "findings": [
            finding("lua-code-cache-off", "high"),
            finding("lua-regex-cache-too-large", "low", line=9),
            finding("lua-module-dir-writable", "high", file="/opt/lua", line=None),
        ],
        "versions": {"version": "1.22.1"},
    },
    "web3": {"msg": "nginx -T failed"},
}
RULE_COUNT = len(lua_rules.RULES) + 1  # the catalogue plus nginx-version-drift


def test_build_adds_version_drift_for_older_hosts_only():
    report = audit_report.build(RESULTS)
    drift = [f for f in report["hosts"]["web2"]["findings"] if f["rule"] == "nginx-version-drift"]
    assert len(drift) == 1 and "1.22.1 (fleet newest 1.26.3)" in drift[0]["message"]
    assert report["hosts"]["web1"]["findings"] == []
    assert report["hosts"]["web3"]["error"] == "nginx -T failed"
    assert report["hosts"]["web2"]["summary"] == {"high": 2, "medium": 0, "low": 2}


def test_versions_compare_numerically():
    results = {"a": {"findings": [], "versions": {"version": "1.9.0"}},
               "b": {"findings": [], "versions": {"version": "1.10.0"}}}
    assert list(audit_report.version_drift_findings(results)) == ["a"]


def test_failing_hosts_by_threshold():
    report = audit_report.build(RESULTS)
    assert audit_report.failing_hosts(report, "high") == ["web2", "web3"]
    assert audit_report.failing_hosts(report, "none") == []
    clean = audit_report.build({"web1": RESULTS["web1"]})
    assert audit_report.failing_hosts(clean, "low") == []


def test_sarif_has_one_result_per_finding_and_the_catalogue():
    sarif = json.loads(audit_report.to_sarif(audit_report.build(RESULTS)))
    assert sarif["version"] == "2.1.0"
    run = sarif["runs"][0]
    rules = run["tool"]["driver"]["rules"]
    assert len(rules) == RULE_COUNT
    assert len(run["results"]) == 4  # three findings on web2 plus its version drift
    for result in run["results"]:
        assert rules[result["ruleIndex"]]["id"] == result["ruleId"]
        assert result["message"]["text"].startswith("web2: ")
    levels = sorted(r["level"] for r in run["results"])
    assert levels == ["error", "error", "note", "note"]
    by_rule = dict((r["ruleId"], r) for r in run["results"])
    region = by_rule["lua-regex-cache-too-large"]["locations"][0]["physicalLocation"]["region"]
    assert region == {"startLine": 9}
    assert "region" not in by_rule["lua-module-dir-writable"]["locations"][0]["physicalLocation"]


def test_junit_has_a_case_per_host_and_rule():
    root = ET.fromstring(audit_report.to_junit(audit_report.build(RESULTS), "high"))
    suites = dict((s.get("name"), s) for s in root.findall("testsuite"))
    assert sorted(suites) == ["web1", "web2", "web3"]
    assert len(suites["web1"].findall("testcase")) == RULE_COUNT
    assert suites["web1"].get("failures") == "0"
    failed = sorted(c.get("name") for c in suites["web2"].findall("testcase") if c.find("failure") is not None)
    assert failed == ["lua-code-cache-off", "lua-module-dir-writable"]
    assert suites["web3"].get("errors") == "1"
    low = ET.fromstring(audit_report.to_junit(audit_report.build(RESULTS), "low"))
    web2 = [s for s in low.findall("testsuite") if s.get("name") == "web2"][0]
    assert web2.get("failures") == "4"


def test_summary_table_lists_every_host():
    table = audit_report.summary_table(audit_report.build(RESULTS)).splitlines()
    assert table[0].split() == ["host", "high", "medium", "low", "nginx", "luajit", "pcre", "status"]
    assert table[2].split()[:4] == ["web2", "2", "0", "2"]
    assert "error: nginx -T failed" in table[3]
