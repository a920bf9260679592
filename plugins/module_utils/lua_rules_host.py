# -*- coding: utf-8 -*-
# Copyright: hardened.openresty contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Host rules of the catalogue: module roots and files on disk, running workers.

They run only when lua_sandbox_verify's check_filesystem / check_processes are on (the
`needs` of each rule). These rules register in lua_catalogue.RULES; lua_rules imports this
module so that the catalogue is always complete.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import stat
import time

from ansible_collections.hardened.openresty.plugins.module_utils import sealed_tree
from ansible_collections.hardened.openresty.plugins.module_utils.lua_catalogue import (
    FILESYSTEM,
    HIGH,
    MEDIUM,
    PROCESSES,
    rule,
)

# /proc gives a process's start time with about one second of error (btime is whole
# seconds), so a change within this slack of a worker's start is not called stale.
CLOCK_SLACK = 1.0


def _gmtime(seconds):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


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
        reason = facts.unsafe(st)
        if not reason:
            return None
        real = os.path.realpath(path)
        shown = path if real == os.path.abspath(path) else "%s (resolving to %s)" % (path, real)
        return ("%s %s is %s" % (what, shown, reason), path, None)

    def ancestors(path):
        for item in sealed_tree.writable_ancestors(path, facts.owner):
            if item["path"] not in seen:
                seen.add(item["path"])
                yield ("ancestor %s of %s is %s" % (item["path"], path, item["reason"]), item["path"], None)

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
            reason = facts.unsafe(st)
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
            deviations = sealed_tree.find_deviations(directory, facts.owner)
        except OSError:
            yield ("sealed directory %s does not exist" % directory, directory, None)
            continue
        for item in deviations:
            yield ("%s %s in sealed directory %s is %s"
                   % (item["kind"], item["path"], directory, item["reason"]), item["path"], None)
