# -*- coding: utf-8 -*-
# Copyright: hardened.openresty contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the rules of lua_sandbox_verify read: the Facts of one configuration and host.

Facts indexes the configuration once (directives by name, module roots, *_by_lua_file
paths, inline code) and reads the host lazily (walks of module roots, running workers), so
that a rule costs one pass at most. The helpers below read lua_package_path values as
ngx_http_lua_set_path() does.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re

from ansible_collections.hardened.openresty.plugins.module_utils import nginx_runtime
from ansible_collections.hardened.openresty.plugins.module_utils import sealed_tree
from ansible_collections.hardened.openresty.plugins.module_utils.lua_catalogue import (
    CONFIG,
    FILESYSTEM,
    LIVE,
    PROCESSES,
    make_policy,
)
from ansible_collections.hardened.openresty.plugins.module_utils.lua_tokens import find_dangerous
from ansible_collections.hardened.openresty.plugins.module_utils.nginx_values import c_string

# A module root as wide as "/" would make a walk endless; stop and say so.
MAX_WALK_ENTRIES = 200000

_PREFIX_VARIABLE = re.compile(r"\$\{prefix\}|\$prefix")
_LUA_MODULE_VERSION = re.compile(r"(?:ngx_lua|lua-nginx-module)-(\d+\.\d+\.\d+\w*)")


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
                 proc="/proc", cross_check=None, owner=sealed_tree.ROOT):
        self.config = config
        # (uid, gid) that code, configuration and sealed trees must belong to: root:root.
        self.owner = tuple(owner)
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
        self._lua_files = None
        self._inline_code = None

    # -- configuration -----------------------------------------------------------------

    def _directive_index(self):
        if self._index is None:
            index = {}
            for pair in self.config.walk():  # (node, context)
                name = pair[0].directive
                found = index.get(name)
                if found is None:
                    index[name] = [pair]
                else:
                    found.append(pair)
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
        if self._lua_files is None:
            self._lua_files = self._find_lua_files()
        return list(self._lua_files)

    def _find_lua_files(self):
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
        if self._inline_code is None:
            self._inline_code = self._find_inline_code()
        return list(self._inline_code)

    def _find_inline_code(self):
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

    def unsafe(self, st):
        """Why someone other than the trusted owner can change this entry, or None."""
        return "; ".join(sealed_tree.unsafe_reasons(st, self.owner)) or None

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
