# -*- coding: utf-8 -*-
# Copyright: hardened.openresty contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The catalogue of lua_sandbox_verify's rules: severities, what a rule needs, the policy.

Each rule is one function decorated with @rule (id, severity, summary, rationale, what it
needs) in one of the RULE_MODULES; it receives a lua_facts.Facts object and yields
(message, file, line). lua_rules imports every rule module and runs the catalogue.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.hardened.openresty.plugins.module_utils.lua_tokens import (
    DEFAULT_DANGEROUS_CALLS,
    validate_entries,
)
from ansible_collections.hardened.openresty.plugins.module_utils.nginx_values import (
    ngx_atoi,
    parse_duration,
)

LOW = "low"
MEDIUM = "medium"
HIGH = "high"
SEVERITIES = (LOW, MEDIUM, HIGH)  # in increasing order
FAIL_ON_CHOICES = ("none",) + SEVERITIES

CONFIG = "config"
FILESYSTEM = "filesystem"
PROCESSES = "processes"
LIVE = "live"  # a live reading, cross-checked with nginx -T

DEFAULT_POLICY = {
    "socket_connect_timeout_max": "5s",
    "socket_send_timeout_max": "10s",
    "socket_read_timeout_max": "10s",
    "socket_keepalive_timeout_max": "120s",
    "regex_match_limit_max": 100000,
    "regex_cache_max_entries_max": 1024,
    "dangerous_calls": list(DEFAULT_DANGEROUS_CALLS),
}
_DURATION_KEYS = ("socket_connect_timeout_max", "socket_send_timeout_max",
                  "socket_read_timeout_max", "socket_keepalive_timeout_max")
_COUNT_KEYS = ("regex_match_limit_max", "regex_cache_max_entries_max")

RULES = []


class Rule(object):
    """One check: id, severity, summary, rationale, needs (subset of filesystem/processes)."""

    def __init__(self, rule_id, severity, summary, rationale, needs, check):
        self.id = rule_id
        self.severity = severity
        self.summary = summary
        self.rationale = rationale
        self.needs = frozenset(needs)
        self.check = check

    def __repr__(self):
        return "Rule(%s, %s)" % (self.id, self.severity)


# Modules that add rules, in catalogue order (docs/rules.md follows it), whatever order
# they happen to be imported in.
RULE_MODULES = ("lua_rules_config", "lua_rules_host", "lua_rules_code_loading", "lua_rules_tls")


def _module_rank(check):
    name = check.__module__.rsplit(".", 1)[-1]
    return RULE_MODULES.index(name) if name in RULE_MODULES else len(RULE_MODULES)


def rule(rule_id, severity, summary, rationale, needs=()):
    """Register the decorated function as a rule (after the rules of its module's peers)."""
    def register(check):
        rank = _module_rank(check)
        position = len(RULES)
        while position and _module_rank(RULES[position - 1].check) > rank:
            position -= 1
        RULES.insert(position, Rule(rule_id, severity, summary, rationale, needs, check))
        return check
    return register


def severity_rank(severity):
    return SEVERITIES.index(severity)


def make_policy(overrides=None):
    """Merge overrides into DEFAULT_POLICY and parse it; raise ValueError naming the key.

    Durations become seconds (float), counts int, dangerous_calls a tuple.
    """
    merged = dict(DEFAULT_POLICY)
    for key, value in (overrides or {}).items():
        if key not in DEFAULT_POLICY:
            raise ValueError("unknown policy key %r; known keys: %s"
                             % (key, ", ".join(sorted(DEFAULT_POLICY))))
        merged[key] = value
    policy = {}
    for key in _DURATION_KEYS:
        try:
            policy[key] = parse_duration(merged[key])
        except ValueError as exc:
            raise ValueError("policy %s: %s" % (key, exc))
    for key in _COUNT_KEYS:
        value = merged[key]
        number = None if isinstance(value, bool) else ngx_atoi(str(value))
        if number is None:
            raise ValueError("policy %s: %r is not a whole number" % (key, value))
        policy[key] = number
    try:
        policy["dangerous_calls"] = validate_entries(merged["dangerous_calls"])
    except ValueError as exc:
        raise ValueError("policy %s" % exc)
    return policy
