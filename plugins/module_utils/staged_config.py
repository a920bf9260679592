# -*- coding: utf-8 -*-
# Copyright: hardened.openresty contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Change nginx configuration files as one unit: plan, test a staged copy, install, restore.

Testing a single rendered file (`validate: nginx -t -c %s`) breaks as soon as the file
includes others by relative path, and tests nothing when the main file includes the changed
file. Here the whole configuration directory is copied to a private directory, the new
contents are written into the copy, and `nginx -t -c <copy>/<main>` tests exactly the tree
that would go live. nginx resolves relative paths against the directory of the -c file;
absolute references to the live directory (Debian's `include /etc/nginx/conf.d/*.conf;`,
absolute symlinks) are pointed at the copy as well. Only when that test passes are the
changed files replaced, each atomically, with a backup that restore() puts back.

Plain functions, standard library only.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import binascii
import contextlib
import fcntl
import fnmatch
import json
import os
import re
import shutil
import stat
import tempfile
import time

from ansible_collections.hardened.openresty.plugins.module_utils import lua_rules
from ansible_collections.hardened.openresty.plugins.module_utils import nginx_parser
from ansible_collections.hardened.openresty.plugins.module_utils import reload_unsafe

MANIFEST = "manifest.json"
# Present in a backup directory from before the first file is replaced until after the last.
JOURNAL = "journal.json"
# Files larger than this are copied into the staging tree without path rewriting.
_REWRITE_LIMIT = 8 * 1024 * 1024
_BACKUP_NAME = re.compile(r"^\d{8}T\d{6}Z-\d{6}$")


class ConfigError(Exception):
    """A request that cannot be carried out safely; the message names the path."""


def relative_path(conf_dir, path):
    """Return path (relative to conf_dir, or absolute under it) as a clean relative path."""
    if not path or "\x00" in path:
        raise ConfigError("invalid path %r" % (path,))
    if ".." in path.split("/"):
        raise ConfigError("path %s must not contain '..'" % path)
    if os.path.isabs(path):
        base = os.path.normpath(conf_dir)
        full = os.path.normpath(path)
        if not full.startswith(base.rstrip("/") + "/"):
            raise ConfigError("path %s is not under %s" % (path, conf_dir))
        path = full[len(base.rstrip("/")) + 1:]
    rel = os.path.normpath(path)
    if rel in (".", ""):
        raise ConfigError("path %s names the configuration directory itself" % path)
    return rel


def _inside(path, root):
    path = os.path.realpath(path)
    root = os.path.realpath(root)
    return path == root or path.startswith(root.rstrip("/") + "/")


def _read(path):
    with open(path, "rb") as handle:
        return handle.read()


def unmanaged_files(conf_dir, dirs, managed):
    """Entries directly in each of dirs that no path of managed names, as sorted relative paths.

    dirs: dicts with path (relative to conf_dir, or absolute under it) and keep (fnmatch
    patterns of names another task manages, left out). managed: paths. Subdirectories are left
    out; a symlink is an entry of its own and is never followed. A directory that does not
    exist has no entries; one that is a symlink, or leads out of conf_dir, is refused, because
    whoever controls where it points would choose what gets removed.
    """
    managed = set(relative_path(conf_dir, path) for path in managed)
    found = []
    for owned in dirs:
        rel = relative_path(conf_dir, owned["path"])
        keep = owned.get("keep") or ()
        live = os.path.join(conf_dir, rel)
        try:
            st = os.lstat(live)
        except OSError:
            continue
        if stat.S_ISLNK(st.st_mode) or not _inside(live, conf_dir):
            raise ConfigError("directory %s is a symlink or leads out of %s; its files cannot be managed"
                              % (rel, conf_dir))
        if not stat.S_ISDIR(st.st_mode):
            raise ConfigError("path %s is not a directory" % rel)
        for name in os.listdir(live):
            path = os.path.join(rel, name)
            if path in managed or stat.S_ISDIR(os.lstat(os.path.join(live, name)).st_mode):
                continue
            if not any(fnmatch.fnmatchcase(name, pattern) for pattern in keep):
                found.append(path)
    return sorted(set(found))


def plan(conf_dir, files, main_config="nginx.conf", owner=(0, 0)):
    """Compare the wanted files with the live ones and return the changes needed.

    files: dicts with path, content (str or bytes), mode (int, default 0o644) and state
    (present|absent). owner: (uid, gid) the files must have, or None to ignore ownership.
    Each change: dict(path (relative), state, before, after (bytes or None), before_link
    (symlink target or None), mode, before_mode, reasons (list of str)).
    """
    changes = []
    seen = set()
    for spec in files:
        rel = relative_path(conf_dir, spec["path"])
        if rel in seen:
            raise ConfigError("path %s is listed twice" % rel)
        seen.add(rel)
        state = spec.get("state") or "present"
        live = os.path.join(conf_dir, rel)
        if not _inside(os.path.dirname(live), conf_dir):
            raise ConfigError("path %s leads out of %s through a symlink" % (rel, conf_dir))
        try:
            st = os.lstat(live)
        except OSError:
            st = None
        change = {
            "path": rel,
            "state": state,
            "before": None,
            "after": None,
            "before_link": None,
            "mode": None,
            "before_mode": None,
            "reasons": [],
        }
        if st is not None:
            change["before_mode"] = stat.S_IMODE(st.st_mode)
            if stat.S_ISLNK(st.st_mode):
                change["before_link"] = os.readlink(live)
            elif stat.S_ISREG(st.st_mode):
                change["before"] = _read(live)
            else:
                raise ConfigError("path %s exists and is not a regular file" % rel)
        if state == "absent":
            if rel == os.path.normpath(main_config):
                raise ConfigError("the main configuration %s cannot be removed" % rel)
            if st is not None:
                change["reasons"].append("removed")
                changes.append(change)
            continue
        if st is not None and stat.S_ISLNK(st.st_mode):
            raise ConfigError("path %s is a symlink (to %s): manage the file it points to"
                              % (rel, change["before_link"]))
        content = spec.get("content")
        if content is None:
            raise ConfigError("path %s has state present but no content" % rel)
        after = content if isinstance(content, bytes) else content.encode("utf-8")
        mode = spec.get("mode")
        mode = 0o644 if mode is None else mode
        change.update(after=after, mode=mode)
        if st is None:
            change["reasons"].append("created")
        else:
            if change["before"] != after:
                change["reasons"].append("content")
            before_mode = stat.S_IMODE(st.st_mode)
            if before_mode != mode:
                change["reasons"].append("mode %04o -> %04o" % (before_mode, mode))
            if owner is not None and (st.st_uid, st.st_gid) != tuple(owner):
                change["reasons"].append("owner %d:%d -> %d:%d" % (st.st_uid, st.st_gid, owner[0], owner[1]))
        if change["reasons"]:
            changes.append(change)
    return changes


def diff(conf_dir, changes):
    """Ansible diff entries (before/after text per file) for the planned changes."""
    entries = []
    for change in changes:
        live = os.path.join(conf_dir, change["path"])
        if change["before_link"] is not None:
            before = "symlink to %s\n" % change["before_link"]
        else:
            before = (change["before"] or b"").decode("utf-8", "replace")
        after = (change["after"] or b"").decode("utf-8", "replace")
        before_header = live if change["before_mode"] is None else "%s (mode %04o)" % (live, change["before_mode"])
        after_header = live if change["mode"] is None else "%s (mode %04o)" % (live, change["mode"])
        if change["state"] == "absent":
            after_header = "%s (absent)" % live
        elif change["before_mode"] is None and change["before_link"] is None:
            before_header = "%s (absent)" % live
        entries.append({"before_header": before_header, "after_header": after_header,
                        "before": before, "after": after})
    return entries


def _path_pattern(aliases):
    names = sorted(set(a.rstrip("/") for a in aliases if a and a.rstrip("/")), key=len, reverse=True)
    # An alias counts only as a whole path component: /etc/nginx, not /etc/nginx2. A path
    # that goes on with a ".." component is left alone: replacing its start would change
    # where ".." leads; redirect_includes() resolves such includes on the filesystem.
    return re.compile(b"(" + b"|".join(re.escape(n.encode("utf-8")) for n in names)
                      + b")(?=[/\\s;\"'}]|$)(?![^\\s;\"'{}]*/\\.\\.(?:[/\\s;\"'{}]|$))")


def _rewrite(data, pattern, root):
    return pattern.sub(root.encode("utf-8").replace(b"\\", b"\\\\"), data)


def _under(path, root):
    return path == root or path.startswith(root.rstrip("/") + "/")


def _staged_link(src, real_source, root):
    """Where the copy of the symlink src must point: where the kernel resolves src today
    (every hop, ``..`` after a link included), moved into the copy when that lies in the
    live directory, so that no spelling of the target reaches a live file."""
    real = os.path.realpath(src)
    if _under(real, real_source):
        return root + real[len(real_source.rstrip("/")):]
    return real


def _copy_tree(source, dest, pattern, root):
    os.mkdir(dest, 0o700)
    for dirpath, dirnames, filenames in os.walk(source):
        target_dir = os.path.join(dest, os.path.relpath(dirpath, source))
        for name in sorted(dirnames) + sorted(filenames):
            src = os.path.join(dirpath, name)
            dst = os.path.join(target_dir, name)
            st = os.lstat(src)
            if stat.S_ISLNK(st.st_mode):
                os.symlink(_staged_link(src, source, root), dst)
            elif stat.S_ISDIR(st.st_mode):
                os.mkdir(dst, 0o700)
            elif stat.S_ISREG(st.st_mode):
                if st.st_size <= _REWRITE_LIMIT:
                    with open(dst, "wb") as handle:
                        handle.write(_rewrite(_read(src), pattern, root))
                else:
                    shutil.copyfile(src, dst)
            # Sockets, fifos and devices have no place in a configuration and are not copied.


def stage(conf_dir, changes, workdir, main_config="nginx.conf"):
    """Copy conf_dir to <workdir>/conf with the changes applied; return that path.

    Everything `nginx -t -c <copy>/<main_config>` reads must come from the copy: references
    to conf_dir (also through its real path) in file contents are rewritten to the copy,
    symlinks that resolve into conf_dir point into the copy, and every include is resolved
    the way nginx and the kernel resolve it (see redirect_includes). Raises ConfigError
    when an include would read a live file of conf_dir that cannot be pointed at the copy.
    """
    root = os.path.join(workdir, "conf")
    real_conf = os.path.realpath(conf_dir)
    if _under(os.path.realpath(workdir), real_conf):
        raise ConfigError("the staging directory %s lies in %s" % (workdir, conf_dir))
    aliases = sorted({conf_dir.rstrip("/") or "/", real_conf}, key=len, reverse=True)
    pattern = _path_pattern(aliases)
    _copy_tree(real_conf, root, pattern, root)
    for change in changes:
        target = os.path.join(root, change["path"])
        parent = os.path.dirname(target)
        if not os.path.isdir(parent):
            os.makedirs(parent, 0o700)
        if not _inside(parent, root):
            raise ConfigError("path %s leads out of the staging copy through a symlink" % change["path"])
        if os.path.lexists(target):
            os.unlink(target)
        if change["state"] == "present":
            with open(target, "wb") as handle:
                handle.write(_rewrite(change["after"], pattern, root))
    redirect_includes(root, conf_dir, main_config)
    return root


def load_staged(staged_root, main_config, conf_dir):
    """Parse the staged tree, includes resolved as nginx resolves them (the one include
    resolver of nginx_parser). Raises ConfigError naming live paths."""
    try:
        return nginx_parser.load_tree(os.path.join(staged_root, main_config))
    except nginx_parser.NginxParseError as exc:
        raise ConfigError("cannot read the new configuration: %s"
                          % _live_text(str(exc), staged_root, conf_dir))


def _live_text(text, staged_root, conf_dir):
    return text.replace(staged_root, conf_dir.rstrip("/"))


def _where(node, staged_root, conf_dir):
    return "%s:%s" % (_live_path(node.file, staged_root, conf_dir), node.line)


_GLOB_MAGIC = re.compile(r"[*?\[]")
# Passes of redirect_includes: each pass can reveal includes of the files it redirected.
_REDIRECT_PASSES = 16


def _include_target(pattern, real_conf, staged_root):
    """The staged spelling of an include pattern whose files lie in the live directory, or
    None when the pattern already reads the copy or lies outside the live directory."""
    parts = pattern.split("/")
    literal = 0
    while literal < len(parts) and not _GLOB_MAGIC.search(parts[literal]):
        literal += 1
    if literal == len(parts):
        literal -= 1  # a plain path: resolve its directory, keep the file name
    directory = os.path.realpath("/".join(parts[:literal]) or "/")
    rest = "/".join(parts[literal:])
    if _under(directory, os.path.realpath(staged_root)) or not _under(directory, real_conf):
        if literal == len(parts) - 1 and not _GLOB_MAGIC.search(rest):
            real = os.path.realpath(pattern)
            if _under(real, real_conf):
                return staged_root + real[len(real_conf.rstrip("/")):]
        return None
    return staged_root + directory[len(real_conf.rstrip("/")):] + "/" + rest


def _quote(arg):
    if re.search(r"[\s;{}#'\"\\]", arg):
        return '"%s"' % arg.replace("\\", "\\\\").replace('"', '\\"')
    return arg


def _rewrite_include(node, new_arg, staged_root, conf_dir):
    """Replace the argument of one include directive, on its own line of its staged file."""
    where = _where(node, staged_root, conf_dir)
    if not _under(os.path.realpath(node.file), os.path.realpath(staged_root)):
        raise ConfigError("include %s in %s reads files of %s from a file outside it; the change cannot "
                          "stage that include" % (node.args[0], where, conf_dir))
    arg = node.args[0]
    spellings = [arg, '"%s"' % arg.replace("\\", "\\\\").replace('"', '\\"'),
                 "'%s'" % arg.replace("\\", "\\\\").replace("'", "\\'")]
    found = re.compile(r"((?:^|[\s;{}])include\s+)(?:%s)(?=\s*;)" % "|".join(re.escape(x) for x in spellings))
    with open(node.file, "rb") as handle:
        lines = handle.read().decode("utf-8", "surrogateescape").split("\n")
    line = lines[node.line - 1] if 0 < node.line <= len(lines) else ""
    changed, count = found.subn(lambda match: match.group(1) + _quote(new_arg), line)
    if not count:
        raise ConfigError("include %s in %s reads files of %s; write it on one line so that the change can "
                          "stage it" % (arg, where, conf_dir))
    lines[node.line - 1] = changed
    with open(node.file, "wb") as handle:
        handle.write("\n".join(lines).encode("utf-8", "surrogateescape"))


def redirect_includes(staged_root, conf_dir, main_config):
    """Point every include of the staged tree that reads files of the live conf_dir (under
    any spelling: ``//``, ``.``, ``..``, a symlink to the directory) at the copy, then check
    that no include reads a live file of conf_dir, whatever path leads there.

    Raises ConfigError, naming the include, its file and line and the live file, when an
    include cannot be pointed at the copy (a glob outside conf_dir that matches links into
    it, or an include in a file outside conf_dir).
    """
    real_conf = os.path.realpath(conf_dir)
    for dummy in range(_REDIRECT_PASSES):
        config = load_staged(staged_root, main_config, conf_dir)
        pending = [(node, _include_target(config.include_pattern(node.args[0]), real_conf, staged_root))
                   for node, context in config.walk() if node.directive == "include"]
        pending = dict(((os.path.realpath(node.file), node.line, node.args[0]), (node, target))
                       for node, target in pending if target is not None)
        if not pending:
            break
        for node, target in pending.values():
            _rewrite_include(node, target, staged_root, conf_dir)
    else:
        raise ConfigError("the includes of %s keep leading back into %s" % (main_config, conf_dir))
    real_root = os.path.realpath(staged_root)
    for node, context in config.walk():
        for path in (node.includes or []) if node.directive == "include" else []:
            real = os.path.realpath(path)
            if _under(real, real_conf) and not _under(real, real_root):
                raise ConfigError("include %s in %s reads %s, which is the live %s; the change cannot stage an "
                                  "include outside %s that leads back into it: include the file by its path in %s"
                                  % (node.args[0], _where(node, staged_root, conf_dir), path, real, conf_dir,
                                     conf_dir))
    return config


# Directives with which nginx runs code from a file while it reads the configuration, so also
# during `nginx -t`: a shared object's constructors (load_module), an OpenSSL engine
# (ssl_engine), Perl (perl_modules, perl_require) and njs (js_import, js_path).
CODE_LOADING_DIRECTIVES = ("load_module", "ssl_engine", "perl_modules", "perl_require", "js_import", "js_path")
# Where the distribution installs its dynamic modules (nginx -V --modules-path on Debian).
DISTRIBUTION_MODULE_DIR = "/usr/lib/nginx/modules"


def _loads_code(node):
    if node.directive in CODE_LOADING_DIRECTIVES:
        return node.directive
    # ssl_certificate_key engine:NAME:ID (and the proxy_/grpc_/uwsgi_ variants) loads an engine.
    if node.directive.endswith("_certificate_key") and node.args and node.args[0].startswith("engine:"):
        return "%s engine:" % node.directive
    return None


def _distribution_module(live_file, node, conf_dir, prefix, module_dir):
    """A load_module in <conf_dir>/modules-enabled/*.conf of a module in the module dir."""
    enabled = os.path.join(conf_dir.rstrip("/"), "modules-enabled")
    if node.directive != "load_module" or os.path.dirname(live_file) != enabled or not live_file.endswith(".conf"):
        return False
    path = node.args[0] if node.args else ""
    if not os.path.isabs(path):
        path = os.path.join(prefix or "/", path)
    return _under(os.path.realpath(path), os.path.realpath(module_dir or DISTRIBUTION_MODULE_DIR))


def code_loading_refusals(config, staged_root, conf_dir, own=(), prefix=None, module_dir=None):
    """Directives of the staged tree that would run code during `nginx -t` from a file that
    is not the role's own, as "DIRECTIVE in FILE:LINE" (live paths).

    own: paths (relative to conf_dir) of the files the caller manages. The distribution's
    modules-enabled/*.conf may load modules from module_dir (default /usr/lib/nginx/modules);
    relative load_module paths resolve against prefix, as in nginx.
    """
    own_live = set(os.path.join(conf_dir.rstrip("/"), relative_path(conf_dir, path)) for path in own)
    found = []
    for node, dummy in config.walk():
        what = _loads_code(node)
        if what is None:
            continue
        live = _live_path(node.file, staged_root, conf_dir)
        if live in own_live or _distribution_module(live, node, conf_dir, prefix, module_dir):
            continue
        found.append("%s in %s:%s" % (what, live, node.line))
    return found


def refuse_code_loading(config, staged_root, conf_dir, own=(), prefix=None, module_dir=None):
    """Raise ConfigError, before anything runs nginx on the tree, naming every directive
    that would run code from a file that is not the role's own."""
    found = code_loading_refusals(config, staged_root, conf_dir, own, prefix, module_dir)
    if found:
        raise ConfigError("the configuration loads code from a file this task does not manage, and nginx -t "
                          "would run that code; nothing was tested or changed: %s (only the managed files and "
                          "the distribution's modules-enabled/*.conf loading from %s may load code)"
                          % ("; ".join(found), module_dir or DISTRIBUTION_MODULE_DIR))


def run_staged_test(run, binary, staged_root, main_config, conf_dir):
    """Run `binary -t -c <staged>/<main_config>`; return (ok, output with live paths).

    run(argv) returns (rc, stdout, stderr).
    """
    rc, out, err = run([binary, "-t", "-c", os.path.join(staged_root, main_config)])
    text = (err or "") + (out or "")
    return rc == 0, text.replace(staged_root, conf_dir.rstrip("/")).strip()


def new_backup_dir(backup_root):
    """Create and return a fresh, root-only <backup_root>/<UTC timestamp> directory."""
    if not os.path.isdir(backup_root):
        os.makedirs(backup_root, 0o700)
    while True:
        now = time.time()
        name = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now)) + "-%06d" % int((now % 1) * 1000000)
        path = os.path.join(backup_root, name)
        try:
            os.mkdir(path, 0o700)
            return path
        except OSError:
            if not os.path.isdir(path):
                raise
            time.sleep(0.001)


def prune_backups(backup_root, keep, current=None):
    """Remove all but the newest `keep` backup directories (never `current`); return them."""
    if keep <= 0 or not os.path.isdir(backup_root):
        return []
    names = sorted(n for n in os.listdir(backup_root)
                   if _BACKUP_NAME.match(n) and os.path.isfile(os.path.join(backup_root, n, MANIFEST)))
    removed = []
    for name in names[:-keep] if len(names) > keep else []:
        path = os.path.join(backup_root, name)
        if current and os.path.realpath(path) == os.path.realpath(current):
            continue
        shutil.rmtree(path)
        removed.append(path)
    return removed


def write_atomic(path, data, mode, owner=None):
    """Replace path with data: temporary file in the same directory, fsync, rename."""
    directory = os.path.dirname(path)
    # A leading dot keeps the temporary file out of include globs such as conf.d/*.conf.
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if owner is not None:
            os.chown(tmp, owner[0], owner[1])
        os.chmod(tmp, mode)
        os.rename(tmp, path)
    except BaseException:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        raise


def _symlink_atomic(path, target):
    while True:
        tmp = os.path.join(os.path.dirname(path),
                           ".%s.%s" % (os.path.basename(path), binascii.hexlify(os.urandom(6)).decode("ascii")))
        try:
            os.symlink(target, tmp)
            break
        except OSError:
            if not os.path.lexists(tmp):
                raise
    os.rename(tmp, path)


def _missing_dirs(conf_dir, rel_dir):
    """The directories of rel_dir that do not exist under conf_dir, top first (relative)."""
    missing = []
    current = ""
    for part in [p for p in rel_dir.split("/") if p]:
        current = os.path.join(current, part) if current else part
        if not os.path.isdir(os.path.join(conf_dir, current)):
            missing.append(current)
    return missing


def _makedirs(conf_dir, rel_dir, owner):
    """Create the missing directories of rel_dir under conf_dir (0755); return them, top first."""
    created = _missing_dirs(conf_dir, rel_dir)
    for rel in created:
        current = os.path.join(conf_dir, rel)
        os.mkdir(current, 0o755)
        os.chmod(current, 0o755)
        if owner is not None:
            os.chown(current, owner[0], owner[1])
    return created


class RestoreError(ConfigError):
    """restore() could not put every file back; the message says which file is in which state."""


class InstallError(ConfigError):
    """An install failed and putting the previous files back failed too."""


def install(conf_dir, changes, backup_dir, owner=(0, 0)):
    """Back up the live files the changes touch, then apply the changes to conf_dir.

    Writes <backup_dir>/manifest.json, then the journal (<backup_dir>/journal.json) before
    the first file is replaced; the journal is removed after the last. A run killed in
    between leaves the journal, and recover_interrupted() puts the previous files back. If
    applying fails half way, what was already changed is restored before the error is
    raised; if that restore fails too, InstallError says which file is in which state.
    Returns a list of dict(path (live), backup (path of the saved copy, or None when the
    file is new)).
    """
    manifest = {"conf_dir": conf_dir, "files": [], "created_dirs": []}
    for change in changes:
        live = os.path.join(conf_dir, change["path"])
        entry = {"path": change["path"], "backup": None}
        if os.path.lexists(live):
            st = os.lstat(live)
            saved = os.path.join("files", change["path"])
            dest = os.path.join(backup_dir, saved)
            if not os.path.isdir(os.path.dirname(dest)):
                os.makedirs(os.path.dirname(dest), 0o700)
            if stat.S_ISLNK(st.st_mode):
                os.symlink(os.readlink(live), dest)
                entry["kind"] = "symlink"
            else:
                shutil.copyfile(live, dest)
                entry["kind"] = "file"
            entry.update(backup=saved, mode=stat.S_IMODE(st.st_mode), uid=st.st_uid, gid=st.st_gid)
        manifest["files"].append(entry)
        if change["state"] == "present":
            for rel in _missing_dirs(conf_dir, os.path.dirname(change["path"])):
                if rel not in manifest["created_dirs"]:
                    manifest["created_dirs"].append(rel)
    _write_manifest(backup_dir, manifest)
    _write_journal(backup_dir, manifest)
    try:
        for change in changes:
            live = os.path.join(conf_dir, change["path"])
            if change["state"] == "absent":
                os.unlink(live)
                continue
            _makedirs(conf_dir, os.path.dirname(change["path"]), owner)
            if not _inside(os.path.dirname(live), conf_dir):
                raise ConfigError("path %s leads out of %s through a symlink" % (change["path"], conf_dir))
            write_atomic(live, change["after"], change["mode"], owner)
    except BaseException as exc:
        try:
            restore(conf_dir, backup_dir, changes=changes)
        except RestoreError as failure:
            raise InstallError("installing the configuration failed (%s) and putting the previous files back "
                               "failed too: %s" % (exc, failure))
        _remove_journal(backup_dir)
        raise
    _remove_journal(backup_dir)
    return [{"path": os.path.join(conf_dir, e["path"]),
             "backup": os.path.join(backup_dir, e["backup"]) if e["backup"] else None}
            for e in manifest["files"]]


def _write_manifest(backup_dir, manifest):
    write_atomic(os.path.join(backup_dir, MANIFEST),
                 json.dumps(manifest, indent=2, sort_keys=True).encode("utf-8"), 0o600)


def _write_journal(backup_dir, manifest):
    write_atomic(os.path.join(backup_dir, JOURNAL),
                 json.dumps({"conf_dir": manifest["conf_dir"], "pid": os.getpid(),
                             "files": [e["path"] for e in manifest["files"]]}).encode("utf-8"), 0o600)
    _fsync_dir(backup_dir)


def _remove_journal(backup_dir):
    os.unlink(os.path.join(backup_dir, JOURNAL))
    _fsync_dir(backup_dir)


def _fsync_dir(path):
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_manifest(backup_dir):
    try:
        with open(os.path.join(backup_dir, MANIFEST), "rb") as handle:
            return json.loads(handle.read().decode("utf-8"))
    except (IOError, OSError, ValueError) as exc:
        raise ConfigError("%s is not a configuration backup: %s" % (backup_dir, exc))


def _same_file(live, data, mode=None, owner=None):
    try:
        st = os.lstat(live)
        return (stat.S_ISREG(st.st_mode) and _read(live) == data
                and (mode is None or stat.S_IMODE(st.st_mode) == mode)
                and (owner is None or (st.st_uid, st.st_gid) == tuple(owner)))
    except (IOError, OSError):
        return False


def file_states(conf_dir, backup_dir, changes=None):
    """What each file of a backup is now: {live path: state}. state is "previous version"
    (what the backup holds), "new version" (what the change wrote), "absent" or
    "not the previous version"."""
    manifest = read_manifest(backup_dir)
    after = dict((c["path"], c) for c in changes or [])
    states = {}
    for entry in manifest["files"]:
        rel = relative_path(conf_dir, entry["path"])
        live = os.path.join(conf_dir, rel)
        change = after.get(rel)
        if not os.path.lexists(live):
            state = "absent" if entry["backup"] is not None else "previous version (absent)"
            if change is not None and change["state"] == "absent":
                state = "new version (absent)"
        elif entry["backup"] is not None and entry.get("kind") == "symlink":
            same = os.path.islink(live) and os.readlink(live) == os.readlink(os.path.join(backup_dir, entry["backup"]))
            state = "previous version" if same else "not the previous version"
        elif entry["backup"] is not None and _same_file(live, _read(os.path.join(backup_dir, entry["backup"]))):
            state = "previous version"
        else:
            state = "not the previous version"
        if state == "not the previous version" and change is not None and change["after"] is not None \
                and _same_file(live, change["after"]):
            state = "new version"
        states[live] = state
    return states


def restore(conf_dir, backup_dir, check_mode=False, changes=None):
    """Put the files saved in backup_dir back into conf_dir and remove the ones that were new.

    Returns the relative paths that were (or, in check mode, would be) changed. Files that
    already match the backup are left alone, so restoring twice changes nothing. A file
    that cannot be put back (a full disk) does not stop the others; afterwards RestoreError
    names every file with its state (changes, when given, tells the new versions apart) and
    keeps the backup.
    """
    manifest = read_manifest(backup_dir)
    changed = []
    failed = []
    for entry in manifest["files"]:
        rel = relative_path(conf_dir, entry["path"])
        try:
            if _restore_entry(conf_dir, backup_dir, entry, rel, check_mode):
                changed.append(rel)
        except (IOError, OSError) as exc:
            failed.append("%s: %s" % (rel, exc))
    for rel in reversed(manifest.get("created_dirs", [])):
        path = os.path.join(conf_dir, relative_path(conf_dir, rel))
        if os.path.isdir(path) and not os.path.islink(path) and not os.listdir(path):
            changed.append(rel)
            if not check_mode:
                os.rmdir(path)
    if failed:
        states = file_states(conf_dir, backup_dir, changes)
        raise RestoreError("restoring from %s failed for %s; the files are now: %s; the backup is kept in %s"
                           % (backup_dir, "; ".join(failed),
                              "; ".join("%s: %s" % item for item in sorted(states.items())), backup_dir))
    return changed


def _restore_entry(conf_dir, backup_dir, entry, rel, check_mode):
    """Put one file back; return whether it was (or would be) changed."""
    live = os.path.join(conf_dir, rel)
    if entry["backup"] is None:
        if not os.path.lexists(live):
            return False
        if not check_mode:
            os.unlink(live)
        return True
    saved = os.path.join(backup_dir, relative_path(backup_dir, entry["backup"]))
    if entry.get("kind") == "symlink":
        target = os.readlink(saved)
        if os.path.islink(live) and os.readlink(live) == target:
            return False
        if not check_mode:
            _makedirs(conf_dir, os.path.dirname(rel), (entry["uid"], entry["gid"]))
            _symlink_atomic(live, target)
        return True
    data = _read(saved)
    if _same_file(live, data, entry["mode"], (entry["uid"], entry["gid"])):
        return False
    if not check_mode:
        _makedirs(conf_dir, os.path.dirname(rel), (entry["uid"], entry["gid"]))
        if os.path.islink(live):
            os.unlink(live)
        write_atomic(live, data, entry["mode"], (entry["uid"], entry["gid"]))
    return True


def interrupted_installs(backup_root):
    """Backup directories whose install never finished (a journal is left), newest first."""
    if not os.path.isdir(backup_root):
        return []
    return sorted((os.path.join(backup_root, n) for n in os.listdir(backup_root)
                   if _BACKUP_NAME.match(n) and os.path.isfile(os.path.join(backup_root, n, JOURNAL))),
                  reverse=True)


def recover_interrupted(backup_root, check_mode=False):
    """Put back the previous files of every install that was killed half way (newest first,
    so that older ones unwind last). Returns [dict(backup_dir, conf_dir, restored)]; the
    journal is removed once its restore succeeded. Raises RestoreError when a restore fails
    (the journal stays, so the next run tries again)."""
    recovered = []
    for backup_dir in interrupted_installs(backup_root):
        conf_dir = read_manifest(backup_dir)["conf_dir"]
        restored = restore(conf_dir, backup_dir, check_mode=check_mode)
        if not check_mode:
            _remove_journal(backup_dir)
        recovered.append({"backup_dir": backup_dir, "conf_dir": conf_dir,
                          "restored": [os.path.join(conf_dir, rel) for rel in restored]})
    return recovered


@contextlib.contextmanager
def backup_lock(backup_root, timeout=300.0):
    """Hold an exclusive lock on backup_root for one run, so that a run never takes another
    live run's journal for a killed one. Raises ConfigError after timeout seconds."""
    if not os.path.isdir(backup_root):
        os.makedirs(backup_root, 0o700)
    fd = os.open(os.path.join(backup_root, ".lock"), os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o600)
    try:
        deadline = time.time() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except (IOError, OSError):
                if time.time() >= deadline:
                    raise ConfigError("another nginx_config run holds %s/.lock (waited %gs)" % (backup_root, timeout))
                time.sleep(0.1)
        yield
    finally:
        os.close(fd)


def _live_path(path, staged_root, conf_dir):
    if path and staged_root and (path == staged_root or path.startswith(staged_root + "/")):
        return conf_dir.rstrip("/") + path[len(staged_root):]
    return path


class LuaPolicyError(ConfigError):
    """The tree weakens the Lua hardening; findings lists what the verifier found."""

    def __init__(self, message, findings):
        super(LuaPolicyError, self).__init__(message)
        self.findings = findings


def _live_finding(finding, staged_root, conf_dir):
    """finding with the paths under staged_root shown as the live paths under conf_dir."""
    finding = dict(finding, file=_live_path(finding["file"], staged_root, conf_dir))
    if staged_root:
        finding["message"] = finding["message"].replace(staged_root, conf_dir.rstrip("/"))
    return finding


def refuse_weak_lua(main_path, fail_on, policy=None, prefix=None, staged_root=None, conf_dir=None):
    """Raise ConfigError (LuaPolicyError with the findings) when the verifier's configuration
    rules (lua_rules.verify_tree) find something at or above fail_on in the tree at
    main_path; nothing when fail_on is none. Findings are as lua_sandbox_verify returns them
    ({rule, severity, message, file, line}), with the paths under staged_root shown as the
    live paths under conf_dir."""
    if fail_on == "none":
        return
    try:
        # A bad policy is reported whether or not the tree parses.
        lua_rules.make_policy(policy)
    except ValueError as exc:
        raise ConfigError("lua_policy: %s" % exc)
    try:
        report = lua_rules.verify_tree(main_path, policy=policy, prefix=prefix)
    except nginx_parser.NginxParseError as exc:
        raise ConfigError("cannot parse the configuration for lua_fail_on: %s" % exc)
    found = [_live_finding(finding, staged_root, conf_dir)
             for finding in lua_rules.at_or_above(report["findings"], fail_on)]
    if found:
        raise LuaPolicyError("the configuration weakens the Lua hardening (lua_fail_on=%s); nothing was changed: %s"
                             % (fail_on, "; ".join(lua_rules.describe(f) for f in found)), found)


CHECK_MODE_TEST = ("not run in check mode: nginx -t creates the log files, pid file and temporary directories "
                   "the configuration names; the staged copy was read with the include, code-loading and Lua "
                   "checks only; would run: %s")


def validate_change(conf_dir, changes, workdir, run, binary, main_config="nginx.conf", own=(), prefix=None,
                    module_dir=None, lua_fail_on="none", lua_policy=None, run_test=True):
    """Stage the change and decide whether it may go live, changing nothing on the host.

    In this order: stage (every include reads the copy, or ConfigError), refuse code-loading
    directives outside the files in own (before anything runs nginx on the tree), the Lua
    gate, then `nginx -t` on the copy unless run_test is False (check mode: nginx -t would
    create files the configuration names). run(argv) returns (rc, stdout, stderr).
    Returns dict(staged_root, ran, ok, output, config); output shows live paths, config is
    the staged tree as read.
    """
    staged = stage(conf_dir, changes, workdir, main_config)
    config = load_staged(staged, main_config, conf_dir)
    refuse_code_loading(config, staged, conf_dir, own, prefix, module_dir)
    refuse_weak_lua(os.path.join(staged, main_config), lua_fail_on, lua_policy, prefix, staged, conf_dir)
    command = [binary, "-t", "-c", os.path.join(conf_dir, main_config)]
    if not run_test:
        return {"staged_root": staged, "ran": False, "ok": True, "output": CHECK_MODE_TEST % " ".join(command),
                "config": config}
    ok, output = run_staged_test(run, binary, staged, main_config, conf_dir)
    return {"staged_root": staged, "ran": True, "ok": ok, "output": output, "config": config}


def changed_requires(conf_dir, main_config, staged):
    """reload_unsafe.changed_requires() of the live tree against the staged one; empty when
    the live tree cannot be read (nothing to compare)."""
    try:
        live = nginx_parser.load_tree(os.path.join(conf_dir, main_config))
    except nginx_parser.NginxParseError:
        return []
    return reload_unsafe.changed_requires(live, staged)


def check_restored(run, binary, conf_dir, main_config, own=(), prefix=None, module_dir=None):
    """`nginx -t` on the live tree after a restore, with the code-loading gate first.
    Returns (ok, output)."""
    main = os.path.join(conf_dir, main_config)
    try:
        config = nginx_parser.load_tree(main)
    except nginx_parser.NginxParseError as exc:
        raise ConfigError("cannot read the restored configuration: %s" % exc)
    refuse_code_loading(config, None, conf_dir, own, prefix, module_dir)
    rc, out, err = run([binary, "-t", "-c", main])
    return rc == 0, ((err or "") + (out or "")).strip()


def conf_dir_of(conf_dir, restore_from, default_conf_path):
    """The live configuration directory: conf_dir as given, else the one recorded in the
    backup to restore, else the directory of default_conf_path() (the binary's --conf-path;
    called only then)."""
    if not conf_dir and restore_from:
        conf_dir = read_manifest(restore_from)["conf_dir"]
    if not conf_dir:
        conf_dir = os.path.dirname(default_conf_path())
    conf_dir = conf_dir.rstrip("/") or "/"
    if not os.path.isdir(conf_dir):
        raise ConfigError("conf_dir %s is not a directory" % conf_dir)
    return conf_dir
