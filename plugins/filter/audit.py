# -*- coding: utf-8 -*-
# Copyright: hardened.openresty contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters that turn lua_sandbox_verify results from a fleet into reports."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os

from ansible.errors import AnsibleFilterError
from ansible.module_utils.six.moves.collections_abc import Mapping, Sequence

from ansible_collections.hardened.openresty.plugins.module_utils import audit_report

FORMATS = {
    "json": lambda report, threshold, version: audit_report.to_json(report),
    "sarif": lambda report, threshold, version: audit_report.to_sarif(report, version),
    "junit": lambda report, threshold, version: audit_report.to_junit(report, threshold),
    "table": lambda report, threshold, version: audit_report.summary_table(report),
}
# plugins/filter/audit.py -> the collection's root directory.
COLLECTION_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_VERSION = {}


def collection_version(root=COLLECTION_ROOT):
    """The version of the collection this filter belongs to: MANIFEST.json of an installed
    collection, else galaxy.yml of a source tree, else "unknown"."""
    if root not in _VERSION:
        version = None
        try:
            with open(os.path.join(root, "MANIFEST.json")) as handle:
                version = json.load(handle)["collection_info"]["version"]
        except (OSError, ValueError, KeyError, TypeError):
            try:
                import yaml
                with open(os.path.join(root, "galaxy.yml")) as handle:
                    version = yaml.safe_load(handle)["version"]
            except (OSError, ImportError, KeyError, TypeError, ValueError):
                version = None
        _VERSION[root] = str(version) if version else "unknown"
    return _VERSION[root]


def _plain(value):
    """A plain copy of the filter's input, read once. Ansible hands filters lazy containers whose
    every access goes through its templating layer; the report reads each finding several times
    (grouping, every format), which for a fleet of thousands of hosts costs more than the
    report itself."""
    if isinstance(value, Mapping):
        return dict((str(key), _plain(item)) for key, item in value.items())
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, str):
        return str(value)
    return value


def _results(results):
    if not isinstance(results, Mapping):
        raise AnsibleFilterError("the input must be a dictionary of host name to lua_sandbox_verify result, not %s"
                                 % type(results).__name__)
    return _plain(results)


def _check_threshold(name, threshold):
    if threshold not in audit_report.SEVERITY_RANK:
        raise AnsibleFilterError("%s: threshold %r is not one of none, low, medium, high" % (name, threshold))


def audit_report_filter(results, report_format="json", threshold="high"):
    if report_format not in FORMATS:
        raise AnsibleFilterError("audit_report: format %r is not one of %s" % (report_format, ", ".join(sorted(FORMATS))))
    _check_threshold("audit_report", threshold)
    return FORMATS[report_format](audit_report.build(_results(results)), threshold, collection_version())


NOT_AUDITED = {"msg": "the host was not audited (unreachable?)"}


def _results_from_hostvars(hosts, hostvars, variable):
    """Each host's result straight from its variables. HostVars.raw_get returns the stored
    values without passing them through the templating engine: a registered module result is
    data, never a template, and a fleet's worth of it through the engine costs more than the
    report. Falls back to the templated hostvars[host][variable]."""
    if isinstance(hosts, (str, Mapping)) or not isinstance(hosts, Sequence):
        raise AnsibleFilterError("audit_reports: with hostvars, the input must be a list of host names, not %s"
                                 % type(hosts).__name__)
    raw_get = getattr(hostvars, "raw_get", None)
    results = {}
    for host in hosts:
        host = str(host)
        variables = raw_get(host) if raw_get is not None else hostvars[host]
        try:
            result = variables[variable]
        except (KeyError, TypeError):
            result = None
        results[host] = _plain(result) if isinstance(result, Mapping) else dict(NOT_AUDITED)
    return results


def audit_reports(results, threshold="high", hostvars=None, variable="audit_result"):
    _check_threshold("audit_reports", threshold)
    if hostvars is not None:
        results = _results_from_hostvars(results, hostvars, variable)
    else:
        results = _results(results)
    return audit_report.render_all(results, threshold, collection_version())


def audit_failing_hosts(results, threshold="high"):
    _check_threshold("audit_failing_hosts", threshold)
    return audit_report.failing_hosts(audit_report.build(_results(results)), threshold)


class FilterModule(object):
    def filters(self):
        return {"audit_report": audit_report_filter, "audit_reports": audit_reports,
                "audit_failing_hosts": audit_failing_hosts}
