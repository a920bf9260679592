# -*- coding: utf-8 -*-
# Copyright: hardened.openresty contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters that turn lua_sandbox_verify results from a fleet into reports."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleFilterError

from ansible_collections.hardened.openresty.plugins.module_utils import audit_report

FORMATS = {
    "json": lambda report, threshold: audit_report.to_json(report),
    "sarif": lambda report, threshold: audit_report.to_sarif(report),
    "junit": audit_report.to_junit,
    "table": lambda report, threshold: audit_report.summary_table(report),
}


def audit_report_filter(results, report_format="json", threshold="high"):
    if report_format not in FORMATS:
        raise AnsibleFilterError("audit_report: format %r is not one of %s" % (report_format, ", ".join(sorted(FORMATS))))
    if threshold not in audit_report.SEVERITY_RANK:
        raise AnsibleFilterError("audit_report: threshold %r is not one of none, low, medium, high" % (threshold,))
    return FORMATS[report_format](audit_report.build(dict(results)), threshold)


def audit_failing_hosts(results, threshold="high"):
    if threshold not in audit_report.SEVERITY_RANK:
        raise AnsibleFilterError("audit_failing_hosts: threshold %r is not one of none, low, medium, high" % (threshold,))
    return audit_report.failing_hosts(audit_report.build(dict(results)), threshold)


class FilterModule(object):
    def filters(self):
        return {"audit_report": audit_report_filter, "audit_failing_hosts": audit_failing_hosts}
