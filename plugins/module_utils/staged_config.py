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
import json
import os
import re
import shutil
import stat
import tempfile
import time

from ansible_collections.hardened.openresty.plugins.module_utils import lua_rules
from ansible_collections.hardened.openresty.plugins.module_utils import nginx_parser

MANIFEST = "manifest.json"
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


def _makedirs(conf_dir, rel_dir, owner):
    """Create the missing directories of rel_dir under conf_dir (0755); return them, top first."""
    created = []
    parts = [p for p in rel_dir.split("/") if p]
    current = conf_dir
    for part in parts:
        current = os.path.join(current, part)
        if not os.path.isdir(current):
            os.mkdir(current, 0o755)
            os.chmod(current, 0o755)
            if owner is not None:
                os.chown(current, owner[0], owner[1])
            created.append(os.path.relpath(current, conf_dir))
    return created


def install(conf_dir, changes, backup_dir, owner=(0, 0)):
    """Back up the live files the changes touch, then apply the changes to conf_dir.

    Writes <backup_dir>/manifest.json first; if applying fails half way, what was already
    changed is restored before the error is raised. Returns a list of dict(path (live),
    backup (path of the saved copy, or None when the file is new)).
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
    _write_manifest(backup_dir, manifest)
    try:
        for change in changes:
            live = os.path.join(conf_dir, change["path"])
            if change["state"] == "absent":
                os.unlink(live)
                continue
            created = _makedirs(conf_dir, os.path.dirname(change["path"]), owner)
            if created:
                manifest["created_dirs"].extend(created)
                _write_manifest(backup_dir, manifest)
            if not _inside(os.path.dirname(live), conf_dir):
                raise ConfigError("path %s leads out of %s through a symlink" % (change["path"], conf_dir))
            write_atomic(live, change["after"], change["mode"], owner)
    except BaseException:
        restore(conf_dir, backup_dir)
        raise
    return [{"path": os.path.join(conf_dir, e["path"]),
             "backup": os.path.join(backup_dir, e["backup"]) if e["backup"] else None}
            for e in manifest["files"]]


def _write_manifest(backup_dir, manifest):
    write_atomic(os.path.join(backup_dir, MANIFEST),
                 json.dumps(manifest, indent=2, sort_keys=True).encode("utf-8"), 0o600)


def read_manifest(backup_dir):
    try:
        with open(os.path.join(backup_dir, MANIFEST), "rb") as handle:
            return json.loads(handle.read().decode("utf-8"))
    except (IOError, OSError, ValueError) as exc:
        raise ConfigError("%s is not a configuration backup: %s" % (backup_dir, exc))


def restore(conf_dir, backup_dir, check_mode=False):
    """Put the files saved in backup_dir back into conf_dir and remove the ones that were new.

    Returns the relative paths that were (or, in check mode, would be) changed. Files that
    already match the backup are left alone, so restoring twice changes nothing.
    """
    manifest = read_manifest(backup_dir)
    changed = []
    for entry in manifest["files"]:
        rel = relative_path(conf_dir, entry["path"])
        live = os.path.join(conf_dir, rel)
        if entry["backup"] is None:
            if os.path.lexists(live):
                changed.append(rel)
                if not check_mode:
                    os.unlink(live)
            continue
        saved = os.path.join(backup_dir, relative_path(backup_dir, entry["backup"]))
        if entry.get("kind") == "symlink":
            target = os.readlink(saved)
            if os.path.islink(live) and os.readlink(live) == target:
                continue
            changed.append(rel)
            if not check_mode:
                _makedirs(conf_dir, os.path.dirname(rel), (entry["uid"], entry["gid"]))
                _symlink_atomic(live, target)
            continue
        data = _read(saved)
        try:
            st = os.lstat(live)
            same = (stat.S_ISREG(st.st_mode) and _read(live) == data and stat.S_IMODE(st.st_mode) == entry["mode"]
                    and (st.st_uid, st.st_gid) == (entry["uid"], entry["gid"]))
        except OSError:
            same = False
        if same:
            continue
        changed.append(rel)
        if not check_mode:
            _makedirs(conf_dir, os.path.dirname(rel), (entry["uid"], entry["gid"]))
            if os.path.islink(live):
                os.unlink(live)
            write_atomic(live, data, entry["mode"], (entry["uid"], entry["gid"]))
    for rel in reversed(manifest.get("created_dirs", [])):
        path = os.path.join(conf_dir, relative_path(conf_dir, rel))
        if os.path.isdir(path) and not os.path.islink(path) and not os.listdir(path):
            changed.append(rel)
            if not check_mode:
                os.rmdir(path)
    return changed


def _live_path(path, staged_root, conf_dir):
    if path and staged_root and (path == staged_root or path.startswith(staged_root + "/")):
        return conf_dir.rstrip("/") + path[len(staged_root):]
    return path


def lua_policy_findings(main_path, threshold, policy=None, prefix=None, staged_root=None, conf_dir=None):
    """The verifier's configuration rules on the tree at main_path, at or above threshold.

    Returns findings as lua_sandbox_verify does ({rule, severity, message, file, line});
    paths under staged_root are shown as the live paths under conf_dir. Raises
    nginx_parser.NginxParseError when the tree cannot be read or parsed, ValueError for a
    bad policy.
    """
    lua_rules.make_policy(policy)
    config = nginx_parser.load_tree(main_path)
    report = lua_rules.evaluate(config, policy=policy, prefix=prefix)
    found = []
    for finding in lua_rules.at_or_above(report["findings"], threshold):
        finding = dict(finding, file=_live_path(finding["file"], staged_root, conf_dir))
        if staged_root:
            finding["message"] = finding["message"].replace(staged_root, conf_dir.rstrip("/"))
        found.append(finding)
    return found
