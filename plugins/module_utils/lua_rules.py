# -*- coding: utf-8 -*-
# Copyright: hardened.openresty contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The rule catalogue of lua_sandbox_verify, and evaluate() that runs it.

Each rule is one function decorated with @rule (id, severity, summary, rationale, what it
needs). It receives a Facts object and yields (message, file, line). Rules never call each
other; what several need (the directive index, module roots, a walk of a root, the running
workers) is computed once by Facts. docs/rules.md explains every rule with an example and
the fix.

Plain functions, standard library only: the module runs this on targets and pytest calls
it directly, e.g.::

    report = verify_dump_file("/var/tmp/nginx-T.txt", prefix="/usr/share/nginx/")
    report["findings"]   # [{"rule", "severity", "message", "file", "line"}, ...]
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re
import stat
import time

from ansible_collections.hardened.openresty.plugins.module_utils import nginx_command
from ansible_collections.hardened.openresty.plugins.module_utils import nginx_parser
from ansible_collections.hardened.openresty.plugins.module_utils import nginx_runtime
from ansible_collections.hardened.openresty.plugins.module_utils import sealed_tree
from ansible_collections.hardened.openresty.plugins.module_utils.lua_tokens import (
    DEFAULT_DANGEROUS_CALLS,
    find_dangerous,
    validate_entries,
)
from ansible_collections.hardened.openresty.plugins.module_utils.nginx_values import (
    c_string,
    format_seconds,
    ngx_atoi,
    ngx_flag,
    parse_duration,
    parse_msec,
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

# /proc gives a process's start time with about one second of error (btime is whole
# seconds), so a change within this slack of a worker's start is not called stale.
CLOCK_SLACK = 1.0
# A module root as wide as "/" would make a walk endless; stop and say so.
MAX_WALK_ENTRIES = 200000

_PREFIX_VARIABLE = re.compile(r"\$\{prefix\}|\$prefix")
_LUA_MODULE_VERSION = re.compile(r"(?:ngx_lua|lua-nginx-module)-(\d+\.\d+\.\d+\w*)")

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
RULE_MODULES = ("lua_rules", "lua_rules_code_loading", "lua_rules_tls")


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


def describe_versions(version_text):
    """Facts from `nginx -V` for the report: nginx_runtime's fields plus lua_nginx_module."""
    facts = nginx_runtime.parse_version_output(version_text)
    match = _LUA_MODULE_VERSION.search(version_text)
    return {
        "name": facts["name"],
        "version": facts["version"],
        "openresty": facts["openresty"],
        "lua_nginx_module": match.group(1) if match else None,
        "luajit": facts["luajit_version"],
        "pcre": _pcre_flavour(version_text),
        "prefix": facts["prefix"],
        "conf_path": facts["conf_path"],
        "pid_path": facts["pid_path"],
    }


def _pcre_flavour(version_text):
    # Only an explicit library name tells: "--with-pcre-jit" alone is printed by builds
    # that link PCRE2 (Debian 13) as well as PCRE (older builds).
    lowered = version_text.lower()
    if "pcre2" in lowered:
        return 2
    if re.search(r"pcre-\d", lowered):
        return 1
    return None


def _gmtime(seconds):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def _unsafe(st):
    """Why a file or directory lets someone other than root change it, or None."""
    reasons = []
    if st.st_uid != 0:
        reasons.append("owned by uid %d" % st.st_uid)
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o022:
        reasons.append("writable by group or others (mode %04o)" % mode)
    return "; ".join(reasons) or None


class ModuleRoot(object):
    """A directory Lua looks in (path: the directory of an entry's part before its first
    "?"), with the exact prefixes of the entries found there (an entry without "?" names
    one file) and the directive they come from (lua_package_path or lua_package_cpath)."""

    __slots__ = ("path", "node", "entry", "extensions", "top", "prefixes", "kinds")

    def __init__(self, path, node, entry, extensions, top):
        self.path = path
        self.node = node
        self.entry = entry
        self.extensions = extensions
        self.top = top
        self.prefixes = set()
        self.kinds = set()

    def holds(self, path):
        """path is a file require() can load as Lua code from this root: it starts with the
        part of a lua_package_path entry before its first "?" (or is the file an entry
        without "?" names). lua_package_cpath entries hold C modules, not Lua code."""
        for (prefix, whole), kind in self.prefixes:
            if kind == "lua_package_path" and (path == prefix if whole else path.startswith(prefix)):
                return True
        return False

    def is_module(self, path):
        return not self.extensions or os.path.splitext(path)[1] in self.extensions


class Facts(object):
    """What rules look at: the configuration, policy, and (when enabled) the host.

    Everything is computed lazily and once, so that adding a rule costs one pass at most.
    """

    def __init__(self, config, policy=None, prefix=None, versions=None, check_filesystem=False,
                 check_processes=False, sealed_dirs=(), processes=None, master_pid=None,
                 proc="/proc", cross_check=None):
        self.config = config
        self.cross_check = list(cross_check or ())
        self.policy = policy if policy is not None else make_policy()
        self.prefix = prefix
        self.versions = versions or {}
        self.enabled = set([CONFIG])
        if check_filesystem:
            self.enabled.add(FILESYSTEM)
        if check_processes:
            self.enabled.add(PROCESSES)
        if cross_check is not None:
            self.enabled.add(LIVE)
        self.sealed_dirs = list(sealed_dirs or ())
        self.proc = proc
        self.master_pid = master_pid
        self.warnings = []
        self._processes = processes
        self._index = None
        self._roots = None
        self._trees = {}
        self._workers = None
        self._code_cache = {}

    # -- configuration -----------------------------------------------------------------

    def _directive_index(self):
        if self._index is None:
            index = {}
            for node, context in self.config.walk():
                index.setdefault(node.directive, []).append((node, context))
            self._index = index
        return self._index

    def named(self, name):
        """(directive, context) pairs of every directive called name, includes expanded."""
        return self._directive_index().get(name, [])

    def names(self):
        """Every directive name used in the configuration, sorted."""
        return sorted(self._directive_index())

    def at_http(self, name):
        return [node for node, context in self.named(name) if context == ("http",)]

    def package_path_set(self, name):
        """lua_package_path/cpath nodes in http that change the search path (not "")."""
        return [node for node in self.at_http(name) if node.args and node.args[0]]

    @property
    def http(self):
        blocks = [node for node, context in self.named("http") if context == ()]
        return blocks[0] if blocks else None

    @property
    def lua_in_use(self):
        """lua-nginx-module is loaded or used, so its defaults apply to this server."""
        if self.versions.get("openresty") or self.versions.get("lua_nginx_module"):
            return True
        for node, _context in self.named("load_module"):
            if node.args and "lua" in os.path.basename(node.args[0]):
                return True
        return any(name.startswith("lua_") or "_by_lua" in name for name in self.names())

    def warn(self, message):
        if message not in self.warnings:
            self.warnings.append(message)

    def with_prefix(self, value):
        """Replace $prefix / ${prefix} as lua-nginx-module does (the prefix ends in "/")."""
        if not _PREFIX_VARIABLE.search(value):
            return value
        if not self.prefix:
            return None
        prefix = self.prefix if self.prefix.endswith("/") else self.prefix + "/"
        return _PREFIX_VARIABLE.sub(lambda _m: prefix, value)

    def resolve(self, path):
        """An absolute path for a *_by_lua_file or pid path (relative ones use the prefix)."""
        if os.path.isabs(path):
            return os.path.normpath(path)
        if not self.prefix:
            return None
        return os.path.normpath(os.path.join(self.prefix, path))

    def package_entries(self, name):
        """(directive, context, [entries]) for lua_package_path or lua_package_cpath.

        An empty value is skipped, as lua-nginx-module skips it (the defaults apply)."""
        return [(node, context, split_package_path(node.args[0]))
                for node, context in self.named(name) if node.args and node.args[0]]

    def module_roots(self):
        """ModuleRoot for every absolute lua_package_path/cpath entry, first one per path."""
        if self._roots is None:
            roots = {}
            for name in ("lua_package_path", "lua_package_cpath"):
                for node, context, entries in self.package_entries(name):
                    for entry in entries:
                        if not is_absolute_entry(entry):
                            continue
                        resolved = self.with_prefix(entry)
                        if resolved is None:
                            self.warn("%s:%s: %s uses $prefix but the prefix is unknown; give "
                                      "the prefix option to check it" % (node.file, node.line, entry))
                            continue
                        path = module_root_of(resolved)
                        top = context[0] if context else ""
                        root = roots.get((top, path))
                        if root is None:
                            roots[(top, path)] = ModuleRoot(path, node, entry, set(), top)
                            root = roots[(top, path)]
                        root.prefixes.add((module_prefix_of(resolved), name))
                        root.kinds.add(name)
                        suffix = resolved[resolved.rfind("?") + 1:] if "?" in resolved else resolved
                        extension = os.path.splitext("module" + suffix)[1]
                        if extension:
                            root.extensions.add(extension)
            self._roots = list(roots.values())
        return self._roots

    def unique_roots(self):
        seen = {}
        for root in self.module_roots():
            seen.setdefault(root.path, root)
        return list(seen.values())

    def lua_files(self):
        """(directive, context, path argument) for every *_by_lua_file directive."""
        found = []
        for name in self.names():
            if name.endswith("_by_lua_file"):
                position = 1 if name.startswith("set_by_lua") else 0
                for node, context in self.named(name):
                    if len(node.args) > position:
                        # the path is opened as a C string: it ends at a NUL byte
                        found.append((node, context, c_string(node.args[position])))
        return found

    def inline_code(self):
        """(directive, code, first line) for *_by_lua_block bodies and *_by_lua strings."""
        found = []
        for name in self.names():
            if name.endswith("_by_lua_block"):
                position = -1
            elif name.endswith("_by_lua"):
                position = 1 if name.startswith("set_by_lua") else 0
            else:
                continue
            for node, _context in self.named(name):
                if len(node.args) > (position if position >= 0 else 0):
                    found.append((node, node.args[position], node.arg_lines[position]))
        return found

    def dangerous_uses(self, code):
        """find_dangerous() with the policy's list; identical snippets are tokenized once."""
        if code not in self._code_cache:
            self._code_cache[code] = find_dangerous(code, self.policy["dangerous_calls"])
        return self._code_cache[code]

    # -- host ----------------------------------------------------------------------------

    def tree(self, root_path):
        """[(path, lstat)] for a module root and everything under it (cached, capped)."""
        if root_path not in self._trees:
            entries = []
            try:
                for item in sealed_tree.walk(root_path):
                    entries.append(item)
                    if len(entries) >= MAX_WALK_ENTRIES:
                        self.warn("stopped after %d entries under %s" % (MAX_WALK_ENTRIES, root_path))
                        break
            except OSError:
                pass
            self._trees[root_path] = entries
        return self._trees[root_path]

    def processes(self):
        if self._processes is None:
            self._processes = nginx_runtime.list_processes(self.proc)
        return self._processes

    def workers(self):
        """Workers of this server's master (found through its pid file), draining ones too."""
        if self._workers is None:
            processes = self.processes()
            master = self.master_pid
            if master is None:
                master = self._master_from_pid_file(processes)
            if master is not None:
                self._workers = nginx_runtime.workers_of(master, processes)
            else:
                self._workers = [p for p in processes if nginx_runtime.is_worker(p)]
        return self._workers

    def _master_from_pid_file(self, processes):
        pid_nodes = [node for node, context in self.named("pid") if context == () and node.args]
        path = pid_nodes[0].args[0] if pid_nodes else (self.versions.get("pid_path") or "logs/nginx.pid")
        resolved = self.resolve(path)
        pid = nginx_runtime.read_pid_file(resolved) if resolved else None
        if pid is not None and any(p["pid"] == pid and nginx_runtime.is_master(p) for p in processes):
            return pid
        return None

    def oldest_current_worker(self):
        current = [w for w in self.workers() if not nginx_runtime.is_draining(w)]
        if not current:
            self.warn("no running nginx worker found: lua-stale-code-cache was not checked")
            return None
        return min(current, key=lambda w: w["start_time"])


DEFAULT_MARK = "\x01"


def expand_package_path(value, default, prefix=None):
    """package.path as ngx_http_lua_set_path() builds it from a directive value.

    The value is a C string for luaL_gsub (it ends at a NUL byte); ";;" becomes ";\\1;",
    $prefix and ${prefix} become prefix (when known), and every byte \\1 becomes the
    default path. An empty value is not set at all: the result is the default.
    """
    if not value:
        return default
    value = c_string(value).replace(";;", ";" + DEFAULT_MARK + ";")
    if prefix is not None:
        value = value.replace("$prefix", prefix).replace("${prefix}", prefix)
    return value.replace(DEFAULT_MARK, default)


def uses_default_path(value):
    """The value splices the default search path in (";;" or a raw byte \\1)."""
    value = c_string(value)
    return ";;" in value or DEFAULT_MARK in value


def split_package_path(value):
    """Entries of a lua_package_path value as given (before the default is spliced in):
    cut at a NUL byte; the empty entries of ";;" and the default marks are dropped."""
    return [entry for entry in c_string(value).replace(DEFAULT_MARK, ";").split(";") if entry]


def module_prefix_of(entry):
    """(text, whole) for what an entry holds: whole is false for its part before the first
    "?" (a prefix of every file it can load), true for the one file an entry without "?"
    names."""
    if "?" not in entry:
        return os.path.normpath(entry), True
    head = entry.split("?", 1)[0]
    if head.endswith("/"):
        return os.path.normpath(head).rstrip("/") + "/", False
    return (os.path.normpath(head) if head else "/"), False


def is_absolute_entry(entry):
    return entry.startswith("/") or entry.startswith("$prefix") or entry.startswith("${prefix}")


def module_root_of(entry):
    """The directory of an entry: its part before the first "?" (a partial name is cut)."""
    head = entry.split("?", 1)[0]
    if not head.endswith("/"):
        head = os.path.dirname(head)
    return os.path.normpath(head) if head else "/"


def _timeout_value(node):
    """Seconds of a lua_socket_*_timeout (ngx_conf_set_msec_slot: ngx_parse_time in ms)."""
    value = parse_msec(node.args[0]) if len(node.args) == 1 else None
    if value is None:
        return None, "%s %r is not a valid nginx duration" % (node.directive, " ".join(node.args))
    return value, None


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
    limit = facts.policy["regex_match_limit_max"]
    for node, _context in facts.named("lua_regex_match_limit"):
        value, problem = _count_value(node)
        if problem:
            yield (problem, node.file, node.line)
        elif value > limit:
            yield ("lua_regex_match_limit %d is above the policy maximum %d" % (value, limit),
                   node.file, node.line)


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
    limit = facts.policy["regex_cache_max_entries_max"]
    for node, _context in facts.named("lua_regex_cache_max_entries"):
        value, problem = _count_value(node)
        if problem:
            yield (problem, node.file, node.line)
        elif value > limit:
            yield ("lua_regex_cache_max_entries %d is above the policy maximum %d" % (value, limit),
                   node.file, node.line)


# ---------------------------------------------------------------------------------------
# Host rules
# ---------------------------------------------------------------------------------------

def _lua_file_targets(facts):
    """Absolute paths of *_by_lua_file targets that have no variable in them."""
    targets = []
    for node, _context, path in facts.lua_files():
        if "$" in path:
            continue
        resolved = facts.resolve(path)
        if resolved is None:
            facts.warn("%s:%s: %s is relative and the prefix is unknown" % (node.file, node.line, path))
            continue
        targets.append((node, resolved))
    return targets


@rule("lua-module-dir-missing", HIGH, "a module root does not exist",
      "A search directory that does not exist can be created later by whoever may write "
      "its parent, and its modules would then be loaded.", needs=(FILESYSTEM,))
def lua_module_dir_missing(facts):
    for root in facts.unique_roots():
        if not os.path.isdir(root.path):
            yield ("module root %s (from %s entry %s) does not exist"
                   % (root.path, root.node.directive, root.entry), root.node.file, root.node.line)


@rule("lua-module-dir-writable", HIGH, "a module directory or an ancestor is writable by non-root",
      "Whoever can write a module root, a directory below it or any of its ancestors can "
      "add or swap modules, which every worker then runs.", needs=(FILESYSTEM,))
def lua_module_dir_writable(facts):
    seen = set()

    def report(path, st, what):
        if path in seen:
            return None
        seen.add(path)
        reason = _unsafe(st)
        if not reason:
            return None
        real = os.path.realpath(path)
        shown = path if real == os.path.abspath(path) else "%s (resolving to %s)" % (path, real)
        return ("%s %s is %s" % (what, shown, reason), path, None)

    def ancestors(path):
        for item in sealed_tree.writable_ancestors(path):
            if item["path"] not in seen:
                seen.add(item["path"])
                yield ("ancestor %s of %s is %s" % (item["path"], path, item["reason"]),
                       item["path"], None)

    for root in facts.unique_roots():
        if not os.path.isdir(root.path):
            continue
        yield from ancestors(root.path)
        real = os.path.realpath(root.path)
        if real != os.path.abspath(root.path):
            yield from ancestors(real)
        for path, st in facts.tree(root.path):
            if stat.S_ISLNK(st.st_mode):
                # Every hop: a link whose next link lives in a writable directory can be
                # re-pointed by whoever writes there (the repair removes links that leave).
                if path != root.path:
                    try:
                        yield from ancestors(path)
                    except OSError:
                        pass
                try:
                    st = os.stat(path)
                except OSError:
                    continue
            if stat.S_ISDIR(st.st_mode):
                finding = report(path, st, "module root" if path == root.path else "directory")
                if finding:
                    yield finding
    for _node, target in _lua_file_targets(facts):
        directory = os.path.dirname(target)
        if os.path.isdir(directory):
            finding = report(directory, os.stat(directory), "directory of *_by_lua_file target")
            if finding:
                yield finding
            yield from ancestors(directory)


@rule("lua-module-file-writable", HIGH, "a Lua module or *_by_lua_file target is writable by non-root",
      "A module file that a non-root user can change is code that user can run in every "
      "worker.", needs=(FILESYSTEM,))
def lua_module_file_writable(facts):
    seen = set()
    candidates = []
    for root in facts.unique_roots():
        roots = [r for r in facts.module_roots() if r.path == root.path]
        for path, st in facts.tree(root.path):
            if path != root.path and any(r.is_module(path) for r in roots):
                candidates.append((path, st))
    for _node, target in _lua_file_targets(facts):
        try:
            candidates.append((target, os.lstat(target)))
        except OSError:
            continue
    for path, st in candidates:
        if path in seen:
            continue
        seen.add(path)
        if stat.S_ISLNK(st.st_mode):
            try:
                st = os.stat(path)
            except OSError:
                continue
        if stat.S_ISREG(st.st_mode):
            reason = _unsafe(st)
            if reason:
                yield ("module file %s is %s" % (path, reason), path, None)


@rule("nginx-worker-root", HIGH, "a worker process runs as root",
      "A worker running as uid 0 gives every request handler, and every Lua bug, root's "
      "power.", needs=(PROCESSES,))
def nginx_worker_root(facts):
    user = facts.named("user")
    where = (user[0][0].file, user[0][0].line) if user else (facts.config.main, None)
    for worker in facts.workers():
        if worker["uid"] == 0:
            yield ("worker process %d runs as root (uid 0)" % worker["pid"],) + where


def _symlinks_along(path):
    """Every symlink a lookup of path follows, however deep (a release switch changes one)."""
    try:
        return sealed_tree.resolution(path)["links"]
    except OSError:
        return []


@rule("lua-stale-code-cache", HIGH, "code or configuration changed after the workers started",
      "Workers cache compiled Lua (and nginx holds the parsed configuration) until a reload: "
      "a file changed after the oldest worker started is not what runs. A fixed "
      "vulnerability stays exploitable until nginx is reloaded.", needs=(FILESYSTEM, PROCESSES))
def lua_stale_code_cache(facts):
    worker = facts.oldest_current_worker()
    if worker is None:
        return
    since = worker["start_time"]
    candidates = []  # (path, stat, what)

    def add_symlinks(path):
        for link in _symlinks_along(path):
            try:
                candidates.append((link, os.lstat(link), "symlink"))
            except OSError:
                pass

    for root in facts.unique_roots():
        roots = [r for r in facts.module_roots() if r.path == root.path]
        add_symlinks(root.path)
        for path, st in facts.tree(root.path):
            if path == root.path:
                continue
            if stat.S_ISLNK(st.st_mode):
                add_symlinks(path)
                try:
                    st = os.stat(path)
                except OSError:
                    continue
            if stat.S_ISREG(st.st_mode) and any(r.is_module(path) for r in roots):
                candidates.append((path, st, "Lua module"))
    for _node, target in _lua_file_targets(facts):
        add_symlinks(target)
        try:
            candidates.append((target, os.stat(target), "*_by_lua_file target"))
        except OSError:
            pass
    for path in facts.config.files:
        try:
            candidates.append((path, os.stat(path), "configuration file"))
        except OSError:
            pass
    seen = set()
    for path, st, what in candidates:
        if path in seen or st.st_mtime <= since + CLOCK_SLACK:
            continue
        seen.add(path)
        yield ("%s %s changed at %s, after the oldest worker (pid %d) started at %s: workers "
               "still run the previous version until nginx is reloaded"
               % (what, path, _gmtime(st.st_mtime), worker["pid"], _gmtime(since)), path, None)


@rule("lua-module-dir-not-sealed", MEDIUM, "a sealed directory deviates from 0555/0444 root:root",
      "Sealed trees (root:root, directories 0555, files 0444) cannot be changed without "
      "root, and drift from that state is how a tampered or half-deployed release shows.",
      needs=(FILESYSTEM,))
def lua_module_dir_not_sealed(facts):
    for directory in facts.sealed_dirs:
        try:
            deviations = sealed_tree.find_deviations(directory)
        except OSError:
            yield ("sealed directory %s does not exist" % directory, directory, None)
            continue
        for item in deviations:
            yield ("%s %s in sealed directory %s is %s"
                   % (item["kind"], item["path"], directory, item["reason"]), item["path"], None)


# ---------------------------------------------------------------------------------------
# Running the catalogue
# ---------------------------------------------------------------------------------------

@nginx_parser.without_cyclic_gc
def evaluate(config, policy=None, prefix=None, versions=None, check_filesystem=False,
             check_processes=False, sealed_dirs=(), processes=None, master_pid=None,
             proc="/proc", rules=None, cross_check=None):
    """Run the rules on a parsed NginxConfig; return dict(findings, summary, warnings).

    policy is the user's overrides (see make_policy). Host rules run only when their
    check_* switch is on. processes (a list of nginx_runtime.read_process() dicts) and
    master_pid replace reading /proc, for tests. cross_check, for a live reading, lists
    (file, line, message) where `nginx -T` disagreed with the files read from disk (see
    verify_tree); None (an offline reading) skips rule nginx-dump-mismatch. Findings
    are sorted by severity (high first), then file and line, and never repeated (an
    included file is checked once).
    """
    policy = make_policy(policy)
    findings = []
    seen = set()
    warnings = []
    # A dump that can be read more than one way is checked in every reading that fits.
    for reading in [config] + list(getattr(config, "alternatives", ())):
        facts = Facts(reading, policy, prefix, versions, check_filesystem,
                      check_processes, sealed_dirs, processes, master_pid, proc, cross_check)
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


# The rules kept in their own modules register themselves in RULES when imported; they
# import this module's rule() decorator, so they come last.
from ansible_collections.hardened.openresty.plugins.module_utils import lua_rules_code_loading  # noqa: E402,F401 pylint: disable=wrong-import-position,unused-import
from ansible_collections.hardened.openresty.plugins.module_utils import lua_rules_tls  # noqa: E402,F401 pylint: disable=wrong-import-position,unused-import
