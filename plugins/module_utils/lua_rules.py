# -*- coding: utf-8 -*-
# Copyright: hardened.openresty contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""lua_sandbox_verify's rule catalogue, and evaluate() that runs it.

The catalogue is laid out one place per rule:

- lua_catalogue: severities, what a rule needs, the policy, Rule and the @rule decorator;
- lua_facts: Facts, what rules read (the configuration, module roots, the host);
- lua_rules_config, lua_rules_host, lua_rules_code_loading, lua_rules_tls: the rules
  (configuration rules, host rules, other code nginx loads, cosocket TLS).

Each rule is one function decorated with @rule (id, severity, summary, rationale, what it
needs). It receives a Facts object and yields (message, file, line). Rules never call each
other; what several need (the directive index, module roots, a walk of a root, the running
workers) is computed once by Facts. docs/rules.md explains every rule with an example and
the fix. This module imports every rule module (so RULES is complete), runs them, and
gives the names of the modules above as before, for its callers.

Plain functions, standard library only: the module runs this on targets and pytest calls
it directly, e.g.::

    report = verify_dump_file("/var/tmp/nginx-T.txt", prefix="/usr/share/nginx/")
    report["findings"]   # [{"rule", "severity", "message", "file", "line"}, ...]
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.hardened.openresty.plugins.module_utils import nginx_command
from ansible_collections.hardened.openresty.plugins.module_utils import nginx_parser
# The rule modules register their rules in RULES when imported, in RULE_MODULES order.
from ansible_collections.hardened.openresty.plugins.module_utils import lua_rules_code_loading  # noqa: F401 pylint: disable=unused-import
from ansible_collections.hardened.openresty.plugins.module_utils import lua_rules_config  # noqa: F401 pylint: disable=unused-import
from ansible_collections.hardened.openresty.plugins.module_utils import lua_rules_host  # noqa: F401 pylint: disable=unused-import
from ansible_collections.hardened.openresty.plugins.module_utils import lua_rules_tls  # noqa: F401 pylint: disable=unused-import
from ansible_collections.hardened.openresty.plugins.module_utils.lua_catalogue import (  # noqa: F401 pylint: disable=unused-import
    CONFIG,
    DEFAULT_POLICY,
    FAIL_ON_CHOICES,
    FILESYSTEM,
    HIGH,
    LIVE,
    LOW,
    MEDIUM,
    PROCESSES,
    RULE_MODULES,
    RULES,
    Rule,
    SEVERITIES,
    make_policy,
    rule,
    severity_rank,
)
from ansible_collections.hardened.openresty.plugins.module_utils.lua_facts import (  # noqa: F401 pylint: disable=unused-import
    DEFAULT_MARK,
    MAX_WALK_ENTRIES,
    Facts,
    ModuleRoot,
    describe_versions,
    expand_package_path,
    is_absolute_entry,
    module_prefix_of,
    module_root_of,
    split_package_path,
    uses_default_path,
)
from ansible_collections.hardened.openresty.plugins.module_utils.lua_rules_config import (  # noqa: F401 pylint: disable=unused-import
    lua_code_cache_off,
    lua_dangerous_call,
    lua_file_outside_module_roots,
    lua_file_relative_path,
    lua_file_variable_path,
    lua_package_cpath_default_fallback,
    lua_package_cpath_missing,
    lua_package_cpath_relative,
    lua_package_path_default_fallback,
    lua_package_path_missing,
    lua_package_path_relative,
    lua_regex_cache_too_large,
    lua_regex_match_limit_missing,
    lua_regex_match_limit_too_high,
    lua_socket_keepalive_timeout_too_long,
    lua_socket_timeout_missing,
    lua_socket_timeout_too_long,
    nginx_dump_ambiguous,
    nginx_dump_mismatch,
    nginx_user_root,
)
from ansible_collections.hardened.openresty.plugins.module_utils.lua_rules_host import (  # noqa: F401 pylint: disable=unused-import
    CLOCK_SLACK,
    lua_module_dir_missing,
    lua_module_dir_not_sealed,
    lua_module_dir_writable,
    lua_module_file_writable,
    lua_stale_code_cache,
    nginx_worker_root,
)
from ansible_collections.hardened.openresty.plugins.module_utils.sealed_tree import ROOT


# ---------------------------------------------------------------------------------------
# Running the catalogue
# ---------------------------------------------------------------------------------------

@nginx_parser.without_cyclic_gc
def evaluate(config, policy=None, prefix=None, versions=None, check_filesystem=False,
             check_processes=False, sealed_dirs=(), processes=None, master_pid=None,
             proc="/proc", rules=None, cross_check=None, owner=ROOT):
    """Run the rules on a parsed NginxConfig; return dict(findings, summary, warnings).

    policy is the user's overrides (see make_policy). Host rules run only when their
    check_* switch is on. processes (a list of nginx_runtime.read_process() dicts) and
    master_pid replace reading /proc, for tests. cross_check, for a live reading, lists
    (file, line, message) where `nginx -T` disagreed with the files read from disk (see
    verify_tree); None (an offline reading) skips rule nginx-dump-mismatch. owner is the
    (uid, gid) that code and sealed trees must belong to: root:root (tests that do not run
    as root give their own). Findings are sorted by severity (high first), then file and
    line, and never repeated (an included file is checked once).
    """
    policy = make_policy(policy)
    findings = []
    seen = set()
    warnings = []
    # A dump that can be read more than one way is checked in every reading that fits.
    for reading in [config] + list(getattr(config, "alternatives", ())):
        facts = Facts(reading, policy, prefix, versions, check_filesystem,
                      check_processes, sealed_dirs, processes, master_pid, proc, cross_check, owner)
        for item in rules if rules is not None else RULES:
            if not item.needs <= facts.enabled:
                continue
            for message, path, line in item.check(facts) or ():
                key = (item.id, message, path, line)
                if key in seen:
                    continue
                seen.add(key)
                findings.append({"rule": item.id, "severity": item.severity, "message": message,
                                 "file": path, "line": line})
        warnings.extend(w for w in facts.warnings if w not in warnings)
    findings.sort(key=lambda f: (-severity_rank(f["severity"]), f["file"] or "", f["line"] or 0,
                                 f["rule"]))
    return {"findings": findings, "summary": summarize(findings), "warnings": warnings}


def summarize(findings):
    summary = dict((severity, 0) for severity in SEVERITIES)
    for finding in findings:
        summary[finding["severity"]] += 1
    return summary


def describe(finding):
    """One line for a finding: rule [severity] file:line: message."""
    where = finding.get("file") or "-"
    if finding.get("line") is not None:
        where = "%s:%d" % (where, finding["line"])
    return "%s [%s] %s: %s" % (finding["rule"], finding["severity"], where, finding["message"])


def at_or_above(findings, threshold):
    """The findings whose severity is at least threshold (one of FAIL_ON_CHOICES; none: [])."""
    if threshold == "none":
        return []
    rank = severity_rank(threshold)
    return [f for f in findings if severity_rank(f["severity"]) >= rank]


def verify_dump_text(text, main=None, params=None, **options):
    """Parse `nginx -T` output and evaluate it; options as for evaluate().

    params is the text of the -g option the dump was taken with: nginx -T prints the files
    a -g include names but never the -g directives themselves (`-g 'user root;'`), so they
    are read here, first in the main context, as nginx reads them (file PARAMS_FILE).
    """
    config = nginx_parser.parse_dump(text, main)
    if params:
        # Includes of -g are in the dump already (its first files); the rest is added.
        given = [node for node in nginx_parser.parse_string(params, nginx_parser.PARAMS_FILE)
                 if node.directive != "include"]
        for reading in [config] + list(getattr(config, "alternatives", ())):
            reading.files[reading.main] = given + reading.files[reading.main]
    return evaluate(config, **options)


def verify_dump_file(path, main=None, **options):
    """Read a saved `nginx -T` output file and evaluate it; options as for evaluate()."""
    return verify_dump_text(nginx_parser.read_file(path), main, **options)


def verify_tree(main, params=None, dump=None, **options):
    """Read the configuration from disk as nginx does and evaluate it.

    main is the main file, params the text of the service's -g option (directives read
    first, in the main context). dump, when given, is the output of `nginx -T` run with the
    same flags: a cross-check only; where it differs from the files, the finding is
    nginx-dump-mismatch and the rules still run on the files. Options as for evaluate().
    """
    config = nginx_parser.load_tree(main, params)
    if dump is not None:
        options["cross_check"] = list(options.get("cross_check") or ()) + dump_mismatches(config, dump)
    return evaluate(config, **options)


def dump_mismatches(config, dump):
    """[(file, line, message)] where `nginx -T` output differs from the files config read."""
    order = nginx_command.dump_order(config, nginx_parser.PARAMS_FILE)
    texts = []
    for path in order:
        try:
            texts.append((path, nginx_parser.read_file(path)))
        except (IOError, OSError) as exc:
            return [(path, None, "cannot read %s again to compare it with nginx -T: %s"
                     % (path, exc.strerror or exc))]
    difference = nginx_command.first_difference(texts, dump)
    return [difference] if difference else []
