"""Read the audit playbook's three reports in DIR and print what they say, as JSON.

  python3 check_reports.py DIR

Each report is parsed with a real parser (json, xml.etree), so a malformed file fails here.
Printed: per host the (rule, severity) of every finding from audit.json; the SARIF version,
result count, results whose rule is missing from the rule metadata, (host, rule) for every
host a result lists, the driver version, and whether results repeat a fingerprint or a host; the JUnit totals and the (host, rule) of every failing test case.
"""

import json
import os
import sys
from xml.etree import ElementTree


def main(directory):
    with open(os.path.join(directory, "audit.json")) as handle:
        report = json.load(handle)
    with open(os.path.join(directory, "audit.sarif")) as handle:
        sarif = json.load(handle)
    junit = ElementTree.parse(os.path.join(directory, "audit.junit.xml")).getroot()

    run = sarif["runs"][0]
    rule_ids = [rule["id"] for rule in run["tool"]["driver"]["rules"]]
    cases = junit.findall("./testsuite/testcase")
    print(json.dumps({
        "json": dict((host, {"error": data["error"],
                             "findings": sorted([f["rule"], f["severity"]] for f in data["findings"])})
                     for host, data in report["hosts"].items()),
        "sarif": {
            "version": sarif["version"],
            "results": len(run["results"]),
            "unknown_rules": [r["ruleId"] for r in run["results"]
                              if r["ruleId"] not in rule_ids or rule_ids[r["ruleIndex"]] != r["ruleId"]],
            "hits": sorted([host, r["ruleId"]] for r in run["results"] for host in r["properties"]["hosts"]),
            "driver_version": run["tool"]["driver"]["version"],
            # One result per distinct finding: no two results share a fingerprint, and none
            # lists a host twice.
            "duplicate_fingerprints": len(run["results"]) - len(set(
                json.dumps(r["partialFingerprints"], sort_keys=True) for r in run["results"])),
            "hosts_listed_twice": [r["ruleId"] for r in run["results"]
                                   if len(set(r["properties"]["hosts"])) != len(r["properties"]["hosts"])],
        },
        "junit": {
            "suites": sorted(suite.get("name") for suite in junit.findall("./testsuite")),
            "tests": int(junit.get("tests")),
            "cases": len(cases),
            "rules_per_host": len(rule_ids),
            "failures": int(junit.get("failures")),
            "errors": int(junit.get("errors")),
            "failing": sorted([case.get("classname"), case.get("name")]
                              for case in cases if case.find("failure") is not None),
        },
    }, sort_keys=True))


if __name__ == "__main__":
    main(sys.argv[1])
