# -*- coding: utf-8 -*-
# Copyright: hardened.openresty contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Configuration rules of the catalogue: what `nginx -T` (or the files) say, no host needed.

Lua's search paths, the code cache, *_by_lua_file paths, the worker user, how the dump
splits, cosocket timeouts, regex limits and dangerous calls in inline code. These rules
register in lua_catalogue.RULES; lua_rules imports this module so that the catalogue is
always complete.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible_collections.hardened.openresty.plugins.module_utils.lua_catalogue import (
    HIGH,
    LIVE,
    LOW,
    MEDIUM,
    rule,
)
from ansible_collections.hardened.openresty.plugins.module_utils.lua_facts import (
    is_absolute_entry,
    uses_default_path,
)
from ansible_collections.hardened.openresty.plugins.module_utils.nginx_values import (
    c_string,
    format_seconds,
    ngx_atoi,
    ngx_flag,
    parse_msec,
)


def _timeout_value(node):
    """Seconds of a lua_socket_*_timeout (ngx_conf_set_msec_slot: ngx_parse_time in ms)."""
    value = parse_msec(node.args[0]) if len(node.args) == 1 else None
    if value is None:
        return None, "%s %r is not a valid nginx duration" % (node.directive, " ".join(node.args))
    return value, None


def _counts_above(facts, name, limit):
    """Findings of every `name` whose count nginx would not read, or that is above limit."""
    for node, _context in facts.named(name):
        value, problem = _count_value(node)
        if problem:
            yield (problem, node.file, node.line)
        elif value > limit:
            yield ("%s %d is above the policy maximum %d" % (name, value, limit), node.file, node.line)


def _count_value(node):
    """A number read by ngx_conf_set_num_slot (ngx_atoi: "00" is 0)."""
    value = node.args[0] if node.args else ""
    number = ngx_atoi(value) if len(node.args) == 1 else None
    if number is None:
        return None, "%s %r is not a whole number" % (node.directive, value)
    return number, None


# ---------------------------------------------------------------------------------------
# Config rules: high
# ---------------------------------------------------------------------------------------

def _package_path_missing(facts, name, default):
    http = facts.http
    if http is None or not facts.lua_in_use or facts.package_path_set(name):
        return
    yield ("no %s in http: the default search path applies, and it starts with %s (the "
           "worker's current directory)" % (name, default), http.file, http.line)


@rule("lua-package-path-missing", HIGH, "lua_package_path is not set in http",
      "Without lua_package_path, require() searches LuaJIT's default path, which begins "
      "with ./?.lua: any file in the worker's current directory can be loaded as a module.")
def lua_package_path_missing(facts):
    return _package_path_missing(facts, "lua_package_path", "./?.lua")


@rule("lua-package-cpath-missing", HIGH, "lua_package_cpath is not set in http",
      "Without lua_package_cpath, require() searches the default C module path, which "
      "begins with ./?.so: native code from the current directory can be loaded.")
def lua_package_cpath_missing(facts):
    return _package_path_missing(facts, "lua_package_cpath", "./?.so")


def _relative_entries(facts, name):
    for node, _context, entries in facts.package_entries(name):
        relative = [entry for entry in entries if not is_absolute_entry(entry)]
        if relative:
            yield ("%s has relative entries %s: they resolve against the worker's current "
                   "directory" % (name, ", ".join(relative)), node.file, node.line)


@rule("lua-package-path-relative", HIGH, "lua_package_path has a relative entry",
      "A relative entry such as ./?.lua or lua/?.lua is looked up from the worker's current "
      "directory, which is not a directory the deployment controls.")
def lua_package_path_relative(facts):
    return _relative_entries(facts, "lua_package_path")


@rule("lua-package-cpath-relative", HIGH, "lua_package_cpath has a relative entry",
      "A relative entry such as ./?.so loads native code from the worker's current directory.")
def lua_package_cpath_relative(facts):
    return _relative_entries(facts, "lua_package_cpath")


def _default_fallback(facts, name, default):
    for node, _context in facts.named(name):
        if node.args and uses_default_path(node.args[0]):
            mark = '";;"' if ";;" in c_string(node.args[0]) else "a byte \\x01"
            yield ('%s contains %s, which inserts the default search path (starting with %s) '
                   "at that spot" % (name, mark, default), node.file, node.line)


@rule("lua-package-path-default-fallback", HIGH, 'lua_package_path contains ";;"',
      '";;" splices LuaJIT\'s default path, which starts with ./?.lua, into the search path: '
      "a module missing from the approved directories is then loaded from the current "
      "directory or system paths instead of failing.")
def lua_package_path_default_fallback(facts):
    return _default_fallback(facts, "lua_package_path", "./?.lua")


@rule("lua-package-cpath-default-fallback", HIGH, 'lua_package_cpath contains ";;"',
      '";;" splices the default C path, which starts with ./?.so, into the search path.')
def lua_package_cpath_default_fallback(facts):
    return _default_fallback(facts, "lua_package_cpath", "./?.so")


@rule("lua-code-cache-off", HIGH, "lua_code_cache is off",
      "With the code cache off every request re-reads and recompiles Lua files, so a file "
      "written on disk runs at once (no review, no reload), and performance collapses.")
def lua_code_cache_off(facts):
    for node, context in facts.named("lua_code_cache"):
        if node.args and ngx_flag(node.args[0]) is False:
            where = " in %s" % " > ".join(context) if context else ""
            yield ("lua_code_cache off%s: Lua files are recompiled on every request"
                   % where, node.file, node.line)


@rule("lua-file-variable-path", HIGH, "a *_by_lua_file path contains a variable",
      "nginx variables in a *_by_lua_file path are expanded per request; a variable a "
      "client influences (such as $uri or $arg_x) selects which file runs: code injection.")
def lua_file_variable_path(facts):
    for node, _context, path in facts.lua_files():
        if "$" in path:
            yield ("%s %s: the path contains a variable, so each request chooses the file "
                   "that runs" % (node.directive, path), node.file, node.line)


@rule("nginx-dump-ambiguous", HIGH, "an nginx -T dump does not split into files the way nginx wrote it",
      "Any file can hold a line shaped like the \"# configuration file PATH:\" line nginx -T "
      "prints before each file (a comment, a line of a Lua long string). Read as a file start, "
      "it can hide the lines after it from the context they really have; such a dump is read "
      "as nginx read it, and the line is reported.")
def nginx_dump_ambiguous(facts):
    for message, path, line in facts.config.dump_issues:
        yield (message, path, line)


@rule("nginx-user-root", HIGH, "worker processes are configured to run as root",
      "With user root every worker, and every line of Lua it runs, has full control of the "
      "host.")
def nginx_user_root(facts):
    for node, _context in facts.named("user"):
        if node.args and c_string(node.args[0]) == "root":
            yield ("user %s: workers run as root" % " ".join(node.args), node.file, node.line)


@rule("nginx-dump-mismatch", HIGH, "nginx -T does not print the files the verifier read",
      "On a live host the rules run on the configuration files read from disk as nginx reads "
      "them (with the service's -c, -p and -g); nginx -T only cross-checks that reading. When "
      "the two differ (a file changed in between, an include nginx resolves otherwise, a "
      "forged marker line), one reading is not what nginx runs, and the audit says so.",
      needs=(LIVE,))
def nginx_dump_mismatch(facts):
    for path, line, message in facts.cross_check:
        yield (message, path, line)


# ---------------------------------------------------------------------------------------
# Config rules: medium
# ---------------------------------------------------------------------------------------

_SOCKET_TIMEOUTS = (
    ("lua_socket_connect_timeout", "socket_connect_timeout_max"),
    ("lua_socket_send_timeout", "socket_send_timeout_max"),
    ("lua_socket_read_timeout", "socket_read_timeout_max"),
)


@rule("lua-socket-timeout-missing", MEDIUM, "a cosocket timeout is not set in http",
      "lua_socket_connect/send/read_timeout default to 60s: a slow or hung backend holds a "
      "request (and its cosocket) for a minute per operation, an easy denial of service.")
def lua_socket_timeout_missing(facts):
    http = facts.http
    if http is None or not facts.lua_in_use:
        return
    for name, _key in _SOCKET_TIMEOUTS:
        if not facts.at_http(name):
            yield ("%s is not set in http: the 60s default applies" % name, http.file, http.line)


@rule("lua-socket-timeout-too-long", MEDIUM, "a cosocket timeout exceeds the policy maximum",
      "Long connect/send/read timeouts let slow peers tie up workers' connections.")
def lua_socket_timeout_too_long(facts):
    for name, key in _SOCKET_TIMEOUTS:
        limit = facts.policy[key]
        for node, _context in facts.named(name):
            value, problem = _timeout_value(node)
            if problem:
                yield (problem, node.file, node.line)
            elif value > limit:
                yield ("%s %s is longer than the policy maximum %s (%s)"
                       % (name, node.args[0], format_seconds(limit), key), node.file, node.line)


@rule("lua-regex-match-limit-missing", MEDIUM, "lua_regex_match_limit is not set",
      "Without it (or with 0) ngx.re uses PCRE's built-in limit of 10,000,000 backtracking "
      "steps per match: one crafted input can keep a worker busy (ReDoS).")
def lua_regex_match_limit_missing(facts):
    http = facts.http
    if http is None or not facts.lua_in_use:
        return
    nodes = facts.at_http("lua_regex_match_limit")
    if not nodes:
        yield ("lua_regex_match_limit is not set in http: PCRE's default of 10,000,000 "
               "applies", http.file, http.line)
    for node in nodes:
        if node.args and ngx_atoi(node.args[0]) == 0:
            yield ("lua_regex_match_limit 0 means PCRE's default of 10,000,000",
                   node.file, node.line)


@rule("lua-regex-match-limit-too-high", MEDIUM, "lua_regex_match_limit exceeds the policy maximum",
      "A high match limit lets a pathological regex and input burn CPU for a long time "
      "before ngx.re gives up.")
def lua_regex_match_limit_too_high(facts):
    return _counts_above(facts, "lua_regex_match_limit", facts.policy["regex_match_limit_max"])


@rule("lua-file-relative-path", MEDIUM, "a *_by_lua_file path is relative",
      "A relative *_by_lua_file path resolves against the server prefix, which differs "
      "between packages and -p options: the file that runs depends on how nginx started.")
def lua_file_relative_path(facts):
    for node, _context, path in facts.lua_files():
        if "$" not in path and not os.path.isabs(path):
            yield ("%s %s is relative to the server prefix" % (node.directive, path),
                   node.file, node.line)


@rule("lua-file-outside-module-roots", MEDIUM,
      "a *_by_lua_file target is outside the lua_package_path directories",
      "Code should come only from the approved, sealed module roots; a file elsewhere "
      "escapes the permission and release checks applied to them.")
def lua_file_outside_module_roots(facts):
    roots = facts.module_roots()
    for node, context, path in facts.lua_files():
        if "$" in path or not os.path.isabs(path):
            continue
        top = context[0] if context else ""
        normal = os.path.normpath(path)
        if not any(root.top == top and root.holds(normal) for root in roots):
            yield ("%s %s is not under a lua_package_path directory" % (node.directive, path),
                   node.file, node.line)


@rule("lua-dangerous-call", MEDIUM, "inline Lua uses a dangerous function",
      "Inline code that runs shell commands, deletes files, compiles strings or uses the "
      "debug library turns any injection into code execution; such code belongs in "
      "reviewed module files, if anywhere.")
def lua_dangerous_call(facts):
    for node, code, first_line in facts.inline_code():
        for entry, reference, line in facts.dangerous_uses(code):
            if reference.startswith("require("):
                text = "%s %s gives access to %s" % (node.directive, reference, entry)
            else:
                text = "%s uses %s" % (node.directive, reference)
            yield (text + " (policy dangerous_calls: %s)" % entry, node.file, first_line + line - 1)


# ---------------------------------------------------------------------------------------
# Config rules: low
# ---------------------------------------------------------------------------------------

@rule("lua-socket-keepalive-timeout-too-long", LOW,
      "lua_socket_keepalive_timeout exceeds the policy maximum",
      "Idle pooled connections held for long keep file descriptors and backend slots busy.")
def lua_socket_keepalive_timeout_too_long(facts):
    limit = facts.policy["socket_keepalive_timeout_max"]
    for node, _context in facts.named("lua_socket_keepalive_timeout"):
        value, problem = _timeout_value(node)
        if problem:
            yield (problem, node.file, node.line)
        elif value == 0:
            yield ("lua_socket_keepalive_timeout %s: 0 means pooled connections are never closed"
                   % node.args[0], node.file, node.line)
        elif value > limit:
            yield ("lua_socket_keepalive_timeout %s is longer than the policy maximum %s"
                   % (node.args[0], format_seconds(limit)), node.file, node.line)


@rule("lua-regex-cache-too-large", LOW, "lua_regex_cache_max_entries exceeds the policy maximum",
      "Every cached compiled regex costs worker memory; a large cache fed by dynamic "
      "patterns grows without bound up to it.")
def lua_regex_cache_too_large(facts):
    return _counts_above(facts, "lua_regex_cache_max_entries", facts.policy["regex_cache_max_entries_max"])
