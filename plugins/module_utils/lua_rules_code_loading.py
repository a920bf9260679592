# -*- coding: utf-8 -*-
# Copyright: hardened.openresty contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Rules of the catalogue about the other ways nginx loads code or trusts a file.

Lua's search paths and *_by_lua_file have their own rules in lua_rules_config. nginx has more
doors: ``load_module`` and ``ssl_engine`` load native code into the master (while
``nginx -t`` runs, too), embedded Perl and njs run code the Lua checks never see,
``LUA_PATH``/``LUA_CPATH`` in the master's environment feed the Lua search path, and a
file that nginx includes or runs from a directory the worker user can write is code that
user chooses. These rules register in lua_catalogue.RULES; lua_rules imports this module
so that the catalogue is always complete.

On a live host every path is resolved one component at a time through its symlinks, and
each directory passed through (and the final file) is checked: a safe final directory
reached through a writable one is not safe.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import glob
import grp
import os
import pwd
import re
import stat

from ansible_collections.hardened.openresty.plugins.module_utils.lua_catalogue import (
    FILESYSTEM,
    HIGH,
    MEDIUM,
    PROCESSES,
    rule,
)

# Where distributions install dynamic modules: Debian's package directory and the
# prefix-relative "modules" it is reached through, and OpenResty's prefix.
MODULE_DIRS = ("/usr/lib/nginx/modules", "/usr/share/nginx/modules", "/usr/local/openresty/nginx/modules")
# Where systemd looks for units and drop-ins, most important first; tests replace it.
SYSTEMD_UNIT_DIRS = ("/etc/systemd/system", "/run/systemd/system", "/usr/local/lib/systemd/system",
                     "/lib/systemd/system", "/usr/lib/systemd/system")
SERVICE_NAMES = ("nginx.service", "openresty.service")
LUA_ENVIRONMENT = ("LUA_PATH", "LUA_CPATH", "LUA_PATH_5_1", "LUA_CPATH_5_1")
PERL_DIRECTIVES = ("perl_modules", "perl_require", "perl", "perl_set")
NJS_DIRECTIVES = ("js_path", "js_import", "js_include")
# Nginx's compiled-in worker user when no "user" directive is given.
DEFAULT_WORKER_USER = "nobody"
MAX_SYMLINKS = 40

_GLOB_MAGIC = re.compile(r"[*?\[]")
_ENV_ASSIGNMENT = re.compile(r'"([^"]*)"|\'([^\']*)\'|(\S+)')


# ---------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------

def load_module_path(facts, node):
    """The absolute path a load_module argument names (relative ones use the prefix), or None.

    Not normalised: ".." must be applied by whoever walks the path, after symlinks.
    """
    if not node.args:
        return None
    if os.path.isabs(node.args[0]):
        return node.args[0]
    return os.path.join(facts.prefix, node.args[0]) if facts.prefix else None


def approved_module_dirs(facts):
    dirs = list(MODULE_DIRS)
    if facts.prefix:
        dirs.append(os.path.normpath(os.path.join(facts.prefix, "modules")))
    return dirs


def resolve_hops(path):
    """Walk path one component at a time, following symlinks like the kernel does.

    Returns (hops, problem): hops is a list of (kind, path, lstat) with kind "dir",
    "symlink" or "file" for every directory passed through (starting at "/"), every
    symlink met and the final entry; problem is None or why the walk stopped (a missing
    component, a symlink loop). ".." is applied to the directory actually reached, as the
    kernel does after a symlink.
    """
    hops = [("dir", "/", os.lstat("/"))]
    pending = [part for part in path.split("/") if part]
    current = "/"
    links = 0
    while pending:
        name = pending.pop(0)
        if name == ".":
            continue
        if name == "..":
            current = os.path.dirname(current) or "/"
            continue
        candidate = os.path.join(current, name)
        try:
            st = os.lstat(candidate)
        except OSError as exc:
            return hops, "%s: %s" % (candidate, exc.strerror or exc)
        if stat.S_ISLNK(st.st_mode):
            links += 1
            if links > MAX_SYMLINKS:
                return hops, "%s: too many symlinks" % candidate
            hops.append(("symlink", candidate, st))
            target = os.readlink(candidate)
            if target.startswith("/"):
                current = "/"
            pending = [part for part in target.split("/") if part] + pending
            continue
        if stat.S_ISDIR(st.st_mode):
            hops.append(("dir", candidate, st))
            current = candidate
        else:
            hops.append(("file", candidate, st))
            if pending:
                return hops, "%s: not a directory" % candidate
            current = candidate
    return hops, None


def worker_identity(facts):
    """(name, uid, gids) of the worker user from the "user" directive, or None if unknown."""
    nodes = [node for node, context in facts.named("user") if context == () and node.args]
    name = nodes[0].args[0] if nodes else DEFAULT_WORKER_USER
    group = nodes[0].args[1] if nodes and len(nodes[0].args) > 1 else None
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        facts.warn("worker user %s does not exist on this host: directories were checked for any "
                   "non-root writer" % name)
        return None
    gids = set([entry.pw_gid])
    if group is not None:
        try:
            gids = set([grp.getgrnam(group).gr_gid])
        except KeyError:
            pass
    gids.update(g.gr_gid for g in grp.getgrall() if name in g.gr_mem)
    return name, entry.pw_uid, gids


def writable_by(st, identity, facts):
    """Why the worker identity (or, when None, anyone but the trusted owner) can write this entry, or None."""
    if identity is None:
        return facts.unsafe(st)
    name, uid, gids = identity
    mode = stat.S_IMODE(st.st_mode)
    if st.st_uid == uid and uid != 0:
        return "owned by the worker user %s (mode %04o)" % (name, mode)
    if st.st_gid in gids and mode & 0o020:
        return "writable by group %d of the worker user %s (mode %04o)" % (st.st_gid, name, mode)
    if mode & 0o002:
        return "writable by others (mode %04o)" % mode
    return None


def _hop_findings(path, check, what):
    """(message, path, None) for every hop of path that check() finds wrong."""
    try:
        hops, problem = resolve_hops(path)
    except OSError as exc:
        return [("%s %s cannot be resolved: %s" % (what, path, exc), path, None)]
    found = []
    for kind, hop, st in hops:
        if kind == "symlink":
            continue
        reason = check(st)
        if reason:
            via = "" if hop == path else " (on the way to %s %s)" % (what, path)
            found.append(("%s %s%s is %s" % ("directory" if kind == "dir" else what, hop, via, reason),
                          hop, None))
    if problem:
        found.append(("%s %s cannot be resolved: %s" % (what, path, problem), path, None))
    return found


# ---------------------------------------------------------------------------------------
# Config rules
# ---------------------------------------------------------------------------------------

@rule("nginx-load-module-outside-module-dir", HIGH,
      "load_module loads a file from outside the distribution's module directory",
      "A dynamic module is native code run by the master as root, already while nginx -t "
      "reads the configuration. Only the package manager's module directory is approved.")
def nginx_load_module_outside_module_dir(facts):
    approved = approved_module_dirs(facts)
    for node, _context in facts.named("load_module"):
        path = load_module_path(facts, node)
        if node.args and ".." in node.args[0].split("/"):
            yield ("load_module %s: the path contains \"..\", which nginx applies after "
                   "following symlinks" % node.args[0], node.file, node.line)
        elif path is None:
            if node.args:
                facts.warn("%s:%s: load_module %s is relative and the prefix is unknown"
                           % (node.file, node.line, node.args[0]))
        elif os.path.dirname(os.path.normpath(path)) not in approved:
            yield ("load_module %s is not in a distribution module directory (%s)"
                   % (node.args[0], ", ".join(approved)), node.file, node.line)


@rule("nginx-ssl-engine", HIGH, "ssl_engine loads an OpenSSL engine",
      "ssl_engine makes OpenSSL load an engine, a shared object, into the master as root "
      "while the configuration is read (nginx -t included).")
def nginx_ssl_engine(facts):
    for node, _context in facts.named("ssl_engine"):
        yield ("ssl_engine %s loads an OpenSSL engine (native code) into the master"
               % " ".join(node.args), node.file, node.line)


def _uses(facts, directives, what):
    """One finding per use of any of directives: code outside every Lua check."""
    for name in directives:
        for node, _context in facts.named(name):
            yield ("%s %s %s, which the Lua policy does not check" % (name, " ".join(node.args), what),
                   node.file, node.line)


@rule("nginx-perl-code", HIGH, "embedded Perl code is loaded",
      "perl_modules/perl_require load Perl modules into the master while the configuration "
      "is read, and perl/perl_set run Perl in workers: code outside every Lua check.")
def nginx_perl_code(facts):
    return _uses(facts, PERL_DIRECTIVES, "runs embedded Perl")


@rule("nginx-njs-code", MEDIUM, "njs (JavaScript) code is loaded",
      "js_import/js_path load JavaScript that runs in every worker, from files that none of "
      "the Lua module-root, sealing or release checks cover.")
def nginx_njs_code(facts):
    return _uses(facts, NJS_DIRECTIVES, "loads njs code")


# ---------------------------------------------------------------------------------------
# Host rules
# ---------------------------------------------------------------------------------------

@rule("nginx-load-module-writable", HIGH,
      "a load_module file, or a directory on its way, can be changed by non-root",
      "Whoever can write the module file or any directory its path passes through (symlinks "
      "followed, every hop) can replace the native code the master loads as root.",
      needs=(FILESYSTEM,))
def nginx_load_module_writable(facts):
    for node, _context in facts.named("load_module"):
        path = load_module_path(facts, node)
        if path is not None:
            yield from _hop_findings(path, facts.unsafe, "module file")


def _include_targets(facts):
    """(what, path) for every include pattern's fixed directory and every file it read."""
    targets = []
    for node, _context in facts.named("include"):
        if not node.args:
            continue
        pattern = facts.config.include_pattern(node.args[0])
        if _GLOB_MAGIC.search(pattern):
            fixed = pattern[:_GLOB_MAGIC.search(pattern).start()]
            targets.append(("include directory", os.path.dirname(fixed) or "/"))
        for path in node.includes or ():
            targets.append(("included file", path))
    return targets


@rule("nginx-code-path-writable-by-worker", HIGH,
      "an included file or a *_by_lua_file target can be changed by the worker user",
      "nginx runs as the worker user what it reads from include files and *_by_lua_file "
      "targets: if that user can write the file or any directory on its path (symlinks "
      "followed, every hop), a compromised worker rewrites the code and configuration it "
      "runs at the next reload.", needs=(FILESYSTEM,))
def nginx_code_path_writable_by_worker(facts):
    identity = worker_identity(facts)

    def check(st):
        return writable_by(st, identity, facts)

    targets = _include_targets(facts)
    for node, _context, path in facts.lua_files():
        if "$" not in path:
            resolved = facts.resolve(path)
            if resolved:
                targets.append(("%s target" % node.directive, resolved))
    seen = set()
    for what, path in targets:
        for message, where, line in _hop_findings(path, check, what):
            if where not in seen:
                seen.add(where)
                yield (message, where, line)


def parse_environment_line(value):
    """Assignments of one systemd Environment= value: {name: value}."""
    found = {}
    for match in _ENV_ASSIGNMENT.finditer(value):
        text = next(group for group in match.groups() if group is not None)
        if "=" in text:
            name, _sep, assigned = text.partition("=")
            found[name] = assigned
    return found


def _unit_files(name):
    """The unit file systemd uses for name and its drop-ins, in systemd's order."""
    files = []
    for directory in SYSTEMD_UNIT_DIRS:
        candidate = os.path.join(directory, name)
        if os.path.isfile(candidate):
            files.append(candidate)
            break
    drop_ins = {}
    for directory in SYSTEMD_UNIT_DIRS:
        for pattern in (os.path.join(directory, name + ".d", "*.conf"),
                        os.path.join(directory, "service.d", "*.conf")):
            for path in glob.glob(pattern):
                drop_ins.setdefault(os.path.basename(path), path)
    return files + [drop_ins[key] for key in sorted(drop_ins)] if files else []


def _read_lines(path):
    try:
        with open(path, "r", errors="replace") as handle:
            return handle.read().splitlines()
    except (IOError, OSError):
        return None


def service_lua_environment(name):
    """[(variable, file, line, how)] for LUA_PATH/LUA_CPATH a systemd service would get."""
    found = []
    for path in _unit_files(name):
        lines = _read_lines(path) or []
        for number, line in enumerate(lines, 1):
            key, sep, value = line.strip().partition("=")
            key = key.strip()
            if not sep:
                continue
            if key == "Environment":
                for variable in parse_environment_line(value):
                    if variable in LUA_ENVIRONMENT:
                        found.append((variable, path, number, "Environment="))
            elif key == "PassEnvironment":
                for variable in value.split():
                    if variable in LUA_ENVIRONMENT:
                        found.append((variable, path, number, "PassEnvironment="))
            elif key == "EnvironmentFile":
                env_file = value.strip().lstrip("-")
                for env_number, env_line in enumerate(_read_lines(env_file) or [], 1):
                    variable = env_line.strip().partition("=")[0].strip()
                    if variable.startswith("export "):
                        variable = variable[len("export "):].strip()
                    if variable in LUA_ENVIRONMENT:
                        found.append((variable, env_file, env_number,
                                      "EnvironmentFile= of %s line %d" % (path, number)))
    return found


def _environment_note(facts, variable):
    """Whether lua-nginx-module reads the variable with this configuration."""
    directive = "lua_package_cpath" if "CPATH" in variable else "lua_package_path"
    nodes = facts.at_http(directive)
    if not nodes:
        return "read now: there is no %s in http, so the default search path comes from it" % directive
    if any(node.args and (";;" in node.args[0] or "\x01" in node.args[0]) for node in nodes):
        return 'read now: ";;" in %s inserts it' % directive
    return "not read while %s is set without \";;\", but one edit away" % directive


@rule("lua-path-in-service-environment", HIGH,
      "the nginx service sets LUA_PATH or LUA_CPATH in its environment",
      "lua-nginx-module takes its default search path from LUA_PATH/LUA_CPATH in the "
      "master's environment: with no lua_package_path, or with \";;\" in it, a directory "
      "named there becomes a module root that no rule of this catalogue checks.",
      needs=(FILESYSTEM,))
def lua_path_in_service_environment(facts):
    for name in SERVICE_NAMES:
        for variable, path, line, how in service_lua_environment(name):
            yield ("%s sets %s through %s (%s)" % (name, variable, how, _environment_note(facts, variable)),
                   path, line)


def read_environ(pid, proc="/proc"):
    """{name: value} of /proc/<pid>/environ; None when the process is gone.

    Raises OSError when it exists but cannot be read (not root).
    """
    try:
        with open(os.path.join(proc, str(pid), "environ"), "rb") as handle:
            data = handle.read()
    except (IOError, OSError) as exc:
        if exc.errno in (errno.ENOENT, errno.ESRCH):
            return None
        raise
    found = {}
    for item in data.split(b"\0"):
        name, sep, value = item.partition(b"=")
        if sep:
            found[name.decode("latin-1")] = value.decode("latin-1")
    return found


@rule("lua-path-in-master-environment", HIGH,
      "the running nginx master has LUA_PATH or LUA_CPATH in its environment",
      "The same door as lua-path-in-service-environment, seen in /proc/<master>/environ: "
      "whatever started the master (a unit, a wrapper, a shell) passed the variable on.",
      needs=(PROCESSES,))
def lua_path_in_master_environment(facts):
    masters = set(worker["ppid"] for worker in facts.workers() if worker.get("ppid"))
    if facts.master_pid is not None:
        masters = set([facts.master_pid])
    for pid in sorted(masters):
        try:
            environ = read_environ(pid, facts.proc)
        except (IOError, OSError) as exc:
            facts.warn("cannot read %s/%d/environ (%s): lua-path-in-master-environment was not "
                       "checked" % (facts.proc, pid, exc.strerror or exc))
            continue
        if environ is None:
            continue
        for variable in LUA_ENVIRONMENT:
            if variable in environ:
                yield ("the nginx master (pid %d) has %s=%s in its environment (%s)"
                       % (pid, variable, environ[variable], _environment_note(facts, variable)),
                       "%s/%d/environ" % (facts.proc, pid), None)
