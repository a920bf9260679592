from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import xml.etree.ElementTree as ET

import pytest
import yaml

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
        assert result["properties"]["hosts"] == ["web2"]
        assert result["message"]["text"].endswith(" (on 1 host: web2)")
    levels = sorted(r["level"] for r in run["results"])
    assert levels == ["error", "error", "note", "note"]
    by_rule = dict((r["ruleId"], r) for r in run["results"])
    region = by_rule["lua-regex-cache-too-large"]["locations"][0]["physicalLocation"]["region"]
    assert region == {"startLine": 9}
    assert "region" not in by_rule["lua-module-dir-writable"]["locations"][0]["physicalLocation"]


def _fleet(count, findings):
    return dict(("web%05d" % n, {"findings": [dict(f) for f in findings], "versions": {"version": "1.26.3"}})
                for n in range(count))


def _sarif_results(results, version="0"):
    return json.loads(audit_report.to_sarif(audit_report.build(results), version))["runs"][0]["results"]


def test_sarif_lists_the_hosts_of_a_finding_they_share_in_one_result():
    shared = [finding("lua-code-cache-off", "high", line=3), finding("lua-regex-cache-too-large", "low", line=9)]
    results = _fleet(1000, shared)
    sarif = _sarif_results(results)
    assert len(sarif) == 2
    for result in sarif:
        assert result["properties"]["hosts"] == sorted(results)
        assert result["properties"]["host_count"] == 1000
        assert "(on 1000 hosts: web00000, web00001, web00002, web00003, web00004 and 995 more)" in result["message"]["text"]
    # JSON keeps every host's findings; JUnit keeps a failing case per host.
    report = audit_report.build(results)
    assert sum(len(data["findings"]) for data in json.loads(audit_report.to_json(report))["hosts"].values()) == 2000
    junit = ET.fromstring(audit_report.to_junit(report, "high"))
    assert int(junit.get("failures")) == 1000
    assert len(junit.findall("testsuite/testcase")) == 1000 * RULE_COUNT


def test_sarif_keeps_findings_on_different_lines_or_files_apart():
    results = _fleet(3, [finding("lua-code-cache-off", "high", line=3)])
    results["web00001"]["findings"] = [finding("lua-code-cache-off", "high", line=4)]
    results["web00002"]["findings"] = [finding("lua-code-cache-off", "high", file="/etc/nginx/other.conf", line=3)]
    sarif = _sarif_results(results)
    assert sorted((r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
                   r["locations"][0]["physicalLocation"]["region"]["startLine"], r["properties"]["hosts"])
                  for r in sarif) == [("/etc/nginx/nginx.conf", 3, ["web00000"]),
                                      ("/etc/nginx/nginx.conf", 4, ["web00001"]),
                                      ("/etc/nginx/other.conf", 3, ["web00002"])]
    assert len(set(r["partialFingerprints"][audit_report.SARIF_FINGERPRINT] for r in sarif)) == 3


def test_sarif_fingerprints_do_not_depend_on_the_hosts():
    shared = [finding("lua-code-cache-off", "high")]
    few = _sarif_results(_fleet(2, shared))
    many = _sarif_results(_fleet(50, shared))
    assert few[0]["partialFingerprints"] == many[0]["partialFingerprints"]
    assert few[0]["properties"]["hosts"] != many[0]["properties"]["hosts"]


def test_sarif_stays_under_code_scannings_limit_for_ten_thousand_hosts():
    # 7 findings per host, one configuration; 1% of hosts run an older nginx (version drift).
    shared = [finding("lua-code-cache-off", "high", line=n) for n in range(3, 10)]
    results = _fleet(10000, shared)
    for n in range(0, 10000, 100):
        results["web%05d" % n]["versions"] = {"version": "1.22.1"}
    sarif = _sarif_results(results)
    assert len(sarif) == 8 < 25000
    drift = [r for r in sarif if r["ruleId"] == "nginx-version-drift"]
    assert drift[0]["properties"]["host_count"] == 100
    assert drift[0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == audit_report.SARIF_HOST_URI


def test_sarif_driver_version_is_the_collections():
    from ansible_collections.hardened.openresty.plugins.filter import audit
    with open(os.path.join(audit.COLLECTION_ROOT, "galaxy.yml")) as handle:
        galaxy = yaml.safe_load(handle)["version"]
    assert audit.collection_version() == galaxy
    sarif = json.loads(audit.audit_report_filter(RESULTS, "sarif"))
    assert sarif["runs"][0]["tool"]["driver"]["version"] == galaxy
    assert json.loads(audit.audit_reports(RESULTS)["sarif"])["runs"][0]["tool"]["driver"]["version"] == galaxy


def test_collection_version_prefers_the_installed_manifest(tmp_path):
    from ansible_collections.hardened.openresty.plugins.filter import audit
    (tmp_path / "galaxy.yml").write_text("version: 1.2.3\n")
    assert audit.collection_version(str(tmp_path)) == "1.2.3"
    installed = tmp_path / "installed"
    installed.mkdir()
    (installed / "MANIFEST.json").write_text(json.dumps({"collection_info": {"version": "2.0.1"}}))
    assert audit.collection_version(str(installed)) == "2.0.1"
    assert audit.collection_version(str(tmp_path / "missing")) == "unknown"


def test_audit_reports_renders_every_format_from_one_build(monkeypatch):
    from ansible_collections.hardened.openresty.plugins.filter import audit
    builds = []
    real_build = audit_report.build
    monkeypatch.setattr(audit_report, "build", lambda results: builds.append(1) or real_build(results))
    outputs = audit.audit_reports(RESULTS, "high")
    assert len(builds) == 1
    report = real_build(RESULTS)
    assert outputs["json"] == audit_report.to_json(report)
    assert json.loads(outputs["json"]) == report
    assert len(outputs["json"].splitlines()) == len(report["hosts"]) + 2  # one line per host
    assert outputs["sarif"] == audit_report.to_sarif(report, audit.collection_version())
    assert outputs["junit"] == audit_report.to_junit(report, "high")
    assert outputs["table"] == audit_report.summary_table(report)
    assert outputs["failing_hosts"] == ["web2", "web3"]


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


class _HostVars(object):
    """Stands in for Ansible's HostVars: raw_get returns a host's variables as stored."""

    def __init__(self, variables):
        self.variables = variables

    def raw_get(self, host):
        return self.variables[host]


def test_audit_reports_reads_each_hosts_result_from_hostvars():
    from ansible_collections.hardened.openresty.plugins.filter import audit
    variables = dict((host, {"audit_result": result, "other": 1}) for host, result in RESULTS.items() if host != "web3")
    variables["web3"] = {}  # never audited: unreachable
    outputs = audit.audit_reports(["web1", "web2", "web3"], "high", hostvars=_HostVars(variables))
    report = json.loads(outputs["json"])
    assert sorted(report["hosts"]) == ["web1", "web2", "web3"]
    assert report["hosts"]["web2"]["findings"] == audit_report.build(RESULTS)["hosts"]["web2"]["findings"]
    assert report["hosts"]["web3"]["error"] == "the host was not audited (unreachable?)"
    assert outputs["failing_hosts"] == ["web2", "web3"]
    # A plain mapping (no raw_get) works too, and so does another variable name.
    renamed = dict((host, {"verify": data.get("audit_result")}) for host, data in variables.items())
    assert audit.audit_reports(["web1", "web2", "web3"], "high", hostvars=renamed,
                               variable="verify")["json"] == outputs["json"]


def test_audit_reports_with_hostvars_wants_a_list_of_hosts():
    from ansible.errors import AnsibleFilterError
    from ansible_collections.hardened.openresty.plugins.filter import audit
    with pytest.raises(AnsibleFilterError, match="list of host names"):
        audit.audit_reports(RESULTS, "high", hostvars=_HostVars({}))
