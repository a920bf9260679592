# -*- coding: utf-8 -*-
# Copyright: hardened.openresty contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What "sealed" means for a Lua module root, checked and enforced in one place.

A sealed tree is owned by root:root throughout, its directories are 0555 and its regular
files 0444. Symlinks are allowed (release layouts use them) when every hop of their
resolution stays inside the tree; they are never followed while walking or repairing and
must be owned by root. Anything else (devices, fifos, sockets, regular files with more than
one name) is a deviation that sealing refuses to fix. Plain functions, standard library only.

The worker user may have had write access to a drifted tree, and may race the repair.
Repairs therefore go through file descriptors: every directory is opened with
O_DIRECTORY|O_NOFOLLOW relative to its parent's descriptor, compared (st_dev, st_ino) with
what was checked, and sealed (fchown, fchmod) before its entries are read, so that nothing
in it can be renamed or swapped any more. A file that someone other than root could write
is replaced by a fresh copy (a new inode) instead of chmodded: a write handle opened while
the tree had drifted keeps pointing at the old, unlinked inode.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import os
import stat

SEALED_DIR_MODE = 0o555
SEALED_FILE_MODE = 0o444
# Root-owned files outside the sealed trees (a systemd drop-in, a local fact) and their directories.
ROOT_DIR_MODE = 0o755
ROOT_FILE_MODE = 0o644
# Larger existing files are not read back: they are replaced (root files are small).
_READ_LIMIT = 1024 * 1024
# Same bound as the kernel's for nested symlinks in one lookup (MAXSYMLINKS).
MAX_SYMLINK_HOPS = 40
_COPY_CHUNK = 1024 * 1024

# (uid, gid) a sealed tree belongs to. Every function that checks or sets ownership takes an
# owner argument with this default; tests that do not run as root pass their own.
ROOT = (0, 0)

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)


class SealError(Exception):
    """The tree changed under the repair in a way that sealing cannot have caused."""


def _kind(st):
    if stat.S_ISDIR(st.st_mode):
        return "directory"
    if stat.S_ISREG(st.st_mode):
        return "file"
    if stat.S_ISLNK(st.st_mode):
        return "symlink"
    return "special"


def _wanted_mode(kind):
    return {"directory": SEALED_DIR_MODE, "file": SEALED_FILE_MODE}.get(kind)


def _owned_by(st, owner):
    return (st.st_uid, st.st_gid) == tuple(owner)


def _writable_by_others(st, owner=ROOT):
    """Someone other than the owner (root) can change this inode (its owner, or a group/other bit)."""
    return st.st_uid != owner[0] or bool(stat.S_IMODE(st.st_mode) & 0o022)


def _entry_deviation(path, st, leaves=None, owner=ROOT):
    kind = _kind(st)
    mode = stat.S_IMODE(st.st_mode)
    reasons = []
    action = "repair"
    if not _owned_by(st, owner):
        wanted_owner = "root:root" if tuple(owner) == ROOT else "%d:%d" % tuple(owner)
        reasons.append("owned by %d:%d, not %s" % (st.st_uid, st.st_gid, wanted_owner))
    wanted = _wanted_mode(kind)
    if kind == "special":
        reasons.append("not a regular file, directory or symlink")
        action = "refuse"
    elif wanted is not None and mode != wanted:
        reasons.append("mode %04o, not %04o" % (mode, wanted))
    if leaves:
        reasons.append("symlink leaves the tree (%s)" % leaves)
        action = "remove"
    if not reasons:
        return None
    if kind == "file" and st.st_nlink > 1:
        # chmod would change the other names too, and a copy would publish their content.
        reasons.append("has %d hard links" % st.st_nlink)
        kind, action = "special", "refuse"
    elif kind == "file" and _writable_by_others(st, owner):
        action = "replace"
    return {
        "path": path,
        "kind": kind,
        "mode": "%04o" % mode,
        "uid": st.st_uid,
        "gid": st.st_gid,
        "reason": "; ".join(reasons),
        "action": action,
    }


# -- path resolution, hop by hop -----------------------------------------------------------

def resolution(path):
    """Follow a lookup of path the way the kernel does, one component at a time.

    Returns dict(dirs, links, resolved, missing): every directory the lookup passes through
    (the final one included, in order, once each), every symlink it follows (the hops,
    however deep: a link reached through another link's target is a hop too), the path it
    resolves to, and the part that does not exist (empty when it all exists). Raises OSError
    (ELOOP) after MAX_SYMLINK_HOPS links.
    """
    pending = [part for part in reversed(os.path.abspath(path).split("/")) if part]
    current = "/"
    dirs, links = ["/"], []
    while pending:
        name = pending.pop()
        if name == ".":
            continue
        if name == "..":
            current = os.path.dirname(current)
            continue
        candidate = os.path.join(current, name)
        try:
            st = os.lstat(candidate)
        except OSError as exc:
            if exc.errno not in (errno.ENOENT, errno.ENOTDIR):
                raise
            missing = "/".join([name] + list(reversed(pending)))
            return {"dirs": dirs, "links": links, "resolved": os.path.join(current, missing), "missing": missing}
        if stat.S_ISLNK(st.st_mode):
            links.append(candidate)
            if len(links) > MAX_SYMLINK_HOPS:
                raise OSError(errno.ELOOP, "too many levels of symbolic links", path)
            target = os.readlink(candidate)
            if target.startswith("/"):
                current = "/"
            pending.extend(part for part in reversed(target.split("/")) if part)
            continue
        current = candidate
        if stat.S_ISDIR(st.st_mode) and current not in dirs:
            dirs.append(current)
    return {"dirs": dirs, "links": links, "resolved": current, "missing": ""}


def _inside(path, top):
    return path == top or path.startswith(top.rstrip("/") + "/")


def link_escape(link, top):
    """Why the symlink `link` inside the tree `top` leads out of it, or None.

    top is the tree's resolved path. Every hop must lie inside the tree and the lookup may
    only pass through the tree and its ancestors (which the ancestor check covers).
    """
    try:
        found = resolution(link)
    except OSError as exc:
        return "lookup fails: %s" % exc.strerror
    for hop in found["links"]:
        if not _inside(hop, top):
            return "through %s, outside %s" % (hop, top)
    for directory in found["dirs"]:
        if not (_inside(directory, top) or _inside(top, directory)):
            return "through %s, outside %s" % (directory, top)
    if not _inside(found["resolved"], top):
        return "-> %s, outside %s" % (found["resolved"], top)
    return None


# -- reading -------------------------------------------------------------------------------

def walk(root):
    """Yield (path, lstat) for root and everything under it, never following symlinks.

    The root itself is followed if it is a symlink, as nginx would follow it.
    """
    st = os.stat(root)
    yield root, st
    if not stat.S_ISDIR(st.st_mode):
        return
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in sorted(dirnames) + sorted(filenames):
            path = os.path.join(dirpath, name)
            yield path, os.lstat(path)
        dirnames.sort()


def find_deviations(root, owner=ROOT):
    """Return a list of deviation dicts (path, kind, mode, uid, gid, reason, action): what is
    not owned by owner (uid, gid), not 0555/0444, or a link out of the tree.

    action says what seal() does: repair (chown/chmod), replace (a fresh copy of a file
    someone else could write), remove (a symlink that leaves the tree) or refuse (special
    files and hard-linked files, left for the operator). Raises OSError when root does not
    exist.
    """
    top = os.path.realpath(root)
    found = []
    for path, st in walk(root):
        leaves = None
        if stat.S_ISLNK(st.st_mode):
            leaves = link_escape(os.path.join(top, os.path.relpath(path, root)), top)
        deviation = _entry_deviation(path, st, leaves, owner)
        if deviation:
            found.append(deviation)
    return found


# -- repairing -----------------------------------------------------------------------------

def _same(a, b):
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _open_checked(name, dir_fd, flags, expected):
    fd = os.open(name, flags, dir_fd=dir_fd)
    st = os.fstat(fd)
    if not _same(st, expected):
        os.close(fd)
        raise SealError("%s changed between the check and the repair" % name)
    return fd, st


def _fix_fd(fd, st, kind, owner):
    if not _owned_by(st, owner):
        os.fchown(fd, owner[0], owner[1])
    os.fchmod(fd, _wanted_mode(kind))


def _chunks_of(src_fd):
    os.lseek(src_fd, 0, os.SEEK_SET)
    while True:
        block = os.read(src_fd, _COPY_CHUNK)
        if not block:
            return
        yield block


def _replace_file(dir_fd, name, src_fd, owner):
    """Write a fresh 0444 copy of src_fd, owned by owner, next to name and rename it over name."""
    _write_fresh(dir_fd, name, _chunks_of(src_fd), owner)


def _write_fresh(dir_fd, name, chunks, owner, mode=SEALED_FILE_MODE):
    """Write chunks into a new file (mode 0444) owned by owner next to name, then rename it over name."""
    tmp = ".sealed-%s-%s" % (os.getpid(), os.urandom(6).hex())
    out = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0),
                  0o600, dir_fd=dir_fd)
    try:
        for block in chunks:
            while block:
                block = block[os.write(out, block):]
        os.fchown(out, owner[0], owner[1])
        os.fchmod(out, mode)
        os.fsync(out)
    except BaseException:
        os.close(out)
        os.unlink(tmp, dir_fd=dir_fd)
        raise
    os.close(out)
    os.rename(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)


def _seal_dir(fd, st, path, fixed, owner):
    """Seal the open directory fd (lstat st), then everything in it."""
    deviation = _entry_deviation(path, st, owner=owner)
    if deviation:
        # Sealed first: from here on nobody but root can add, rename or remove its entries.
        _fix_fd(fd, st, "directory", owner)
        fixed.append(deviation)
    for name in sorted(os.listdir(fd)):
        entry = os.path.join(path, name)
        est = os.stat(name, dir_fd=fd, follow_symlinks=False)
        kind = _kind(est)
        if kind == "directory":
            child, cst = _open_checked(name, fd, _DIR_FLAGS, est)
            try:
                _seal_dir(child, cst, entry, fixed, owner)
            finally:
                os.close(child)
            continue
        deviation = _entry_deviation(entry, est, owner=owner)
        if not deviation:
            continue
        fixed.append(deviation)
        if deviation["action"] == "refuse":
            continue
        if kind == "symlink":
            os.chown(name, owner[0], owner[1], dir_fd=fd, follow_symlinks=False)
            continue
        src, sst = _open_checked(name, fd, _FILE_FLAGS, est)
        try:
            if deviation["action"] == "replace":
                _replace_file(fd, name, src, owner)
            elif sst.st_nlink > 1:
                # Linked from elsewhere since the check: chmod would reach the other name too.
                deviation.update(kind="special", action="refuse",
                                 reason=deviation["reason"] + "; has %d hard links" % sst.st_nlink)
            else:
                _fix_fd(src, sst, "file", owner)
        finally:
            os.close(src)


def _remove_links(fd, path, doomed, removed):
    """Unlink, through descriptors, the symlinks in doomed (path -> deviation)."""
    for name in sorted(os.listdir(fd)):
        entry = os.path.join(path, name)
        est = os.stat(name, dir_fd=fd, follow_symlinks=False)
        if stat.S_ISDIR(est.st_mode):
            child, dummy = _open_checked(name, fd, _DIR_FLAGS, est)
            try:
                _remove_links(child, entry, doomed, removed)
            finally:
                os.close(child)
        elif stat.S_ISLNK(est.st_mode) and entry in doomed:
            os.unlink(name, dir_fd=fd)
            removed.append(doomed[entry])


def seal(root, check_mode=False, owner=ROOT):
    """Bring root to the sealed state, owned by owner (uid, gid). Return the deviations that
    were (or would be) fixed.

    Special and hard-linked files are reported but left alone (action "refuse"): removing
    them is the operator's decision. Raises SealError if the tree changes in a way the
    repair cannot explain (it stops there; what was fixed stays fixed).
    """
    if check_mode:
        return find_deviations(root, owner)
    top = os.path.realpath(root)
    # The root is followed when it is a symlink (as nginx follows it); its ancestors and
    # every hop to it are the ancestor check's business (writable_ancestors).
    fd = os.open(top, _DIR_FLAGS)
    fixed = []
    try:
        st = os.fstat(fd)
        _seal_dir(fd, st, root, fixed, owner)
        # Once every directory is sealed nothing but root can change a hop: only now is a
        # link's resolution final. All are judged before any is removed, so that a link
        # whose next hop leaves is not mistaken for a dangling one inside.
        doomed = {}
        for path, lst in walk(top):
            if stat.S_ISLNK(lst.st_mode):
                leaves = link_escape(path, top)
                if leaves:
                    doomed[path] = _entry_deviation(path, lst, leaves, owner)
        removed = []
        _remove_links(fd, top, doomed, removed)
    finally:
        os.close(fd)
    shown = {item["path"]: item for item in fixed}
    for item in removed:
        path = os.path.join(root, os.path.relpath(item["path"], top))
        item["path"] = path
        if path in shown:
            shown[path].update(reason=item["reason"], action="remove")
        else:
            fixed.append(item)
    return fixed


def _file_bytes(dir_fd, name, owner, mode=SEALED_FILE_MODE):
    """The content of the regular file name (mode 0444) in dir_fd owned by owner, or None."""
    try:
        fd = os.open(name, _FILE_FLAGS, dir_fd=dir_fd)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if (not stat.S_ISREG(st.st_mode) or not _owned_by(st, owner)
                or stat.S_IMODE(st.st_mode) != mode or st.st_nlink != 1):
            return None
        return b"".join(_chunks_of(fd))
    finally:
        os.close(fd)


def _check_name(name):
    if not name or "/" in name or name in (".", "..") or "\0" in name:
        raise SealError("%r is not a plain file name" % name)


def install_files(root, files, check_mode=False, owner=ROOT):
    """Give the sealed directory root exactly these files (name -> bytes), 0444 and owned by
    owner (root:root).

    A file whose content, owner, mode or link count differs is replaced by a fresh copy
    written through the directory's descriptor and renamed over it (a new inode), never
    written in place. Returns the names that were (or would be) installed.
    """
    for name in files:
        _check_name(name)
    fd = os.open(os.path.realpath(root), _DIR_FLAGS)
    installed = []
    try:
        for name in sorted(files):
            data = files[name]
            if _file_bytes(fd, name, owner) == data:
                continue
            installed.append(name)
            if not check_mode:
                existing = os.stat(name, dir_fd=fd, follow_symlinks=False) if name in os.listdir(fd) else None
                if existing is not None and stat.S_ISDIR(existing.st_mode):
                    raise SealError("%s/%s is a directory" % (root, name))
                _write_fresh(fd, name, [data], owner)
    finally:
        os.close(fd)
    return installed


def ensure_link(directory, name, target, owner=ROOT):
    """Create the symlink directory/name -> target and the sealed directory it names, both
    relative to directory and owned by owner (root:root), unless name exists (whatever it
    is). Returns True if created.

    target is a relative path of plain names (for example releases/initial); every directory
    on the way is opened without following links, so nothing is created outside directory.
    """
    _check_name(name)
    parts = target.split("/")
    for part in parts:
        _check_name(part)
    fd = os.open(os.path.realpath(directory), _DIR_FLAGS)
    try:
        try:
            os.stat(name, dir_fd=fd, follow_symlinks=False)
            return False
        except FileNotFoundError:
            pass
        at = os.dup(fd)
        try:
            for index, part in enumerate(parts):
                try:
                    os.mkdir(part, 0o700, dir_fd=at)
                    created = True
                except FileExistsError:
                    created = False
                child = os.open(part, _DIR_FLAGS, dir_fd=at)
                os.close(at)
                at = child
                if created:
                    os.fchown(at, owner[0], owner[1])
                    os.fchmod(at, SEALED_DIR_MODE if index == len(parts) - 1 else 0o755)
        finally:
            os.close(at)
        os.symlink(target, name, dir_fd=fd)
        os.chown(name, owner[0], owner[1], dir_fd=fd, follow_symlinks=False)
        return True
    finally:
        os.close(fd)


# -- root-owned files outside the sealed trees ---------------------------------------------

def _open_subdir(parent_fd, name, path):
    """The directory name in parent_fd, opened without following a link; None when missing."""
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return None
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise SealError("%s is not a directory (links are never followed)" % path)
        raise


def _mkdir_at(parent_fd, name, owner):
    """Create the directory name in parent_fd, owned by owner, 0755; return its descriptor."""
    os.mkdir(name, 0o700, dir_fd=parent_fd)
    fd = os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
    os.fchown(fd, owner[0], owner[1])
    os.fchmod(fd, ROOT_DIR_MODE)
    return fd


def _refuse_changeable(fd, path, owner):
    reasons = unsafe_reasons(os.fstat(fd), owner)
    if reasons:
        raise SealError("%s, a directory on the way, can be changed by someone other than root (%s)"
                        % (path, "; ".join(reasons)))


def _read_entry(dir_fd, name):
    """(lstat, content) of name in dir_fd, never following a link: (None, None) when missing;
    content is None unless it is a regular file of at most _READ_LIMIT bytes."""
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None, None
    if not stat.S_ISREG(st.st_mode) or st.st_size > _READ_LIMIT:
        return st, None
    try:
        fd = os.open(name, _FILE_FLAGS, dir_fd=dir_fd)
    except OSError:
        return st, None
    try:
        fst = os.fstat(fd)
        if not _same(fst, st):
            return fst, None
        return fst, b"".join(_chunks_of(fd))
    finally:
        os.close(fd)


def _is_root_file(st, content, data, owner):
    return (content == data and _owned_by(st, owner) and stat.S_IMODE(st.st_mode) == ROOT_FILE_MODE
            and st.st_nlink == 1)


def _open_file_dir(path, present, check_mode, owner, top, result):
    """Open the directory of path from top, one directory at a time through descriptors.

    Every directory above the file's own must be changeable by owner only (SealError
    otherwise); a missing one is created (present) or ends the walk (None returned, as in
    check mode where the rest would be created). The file's own directory is repaired to
    owner and 0755 before its entries are read (present)."""
    directory = os.path.dirname(path)
    parts = [part for part in os.path.relpath(directory, top).split("/") if part not in ("", ".")]
    if parts[:1] == [".."] or not os.path.isabs(path):
        raise SealError("%s is not below %s" % (path, top))
    fd = os.open(top, _DIR_FLAGS)
    at = top
    try:
        for index, part in enumerate(parts):
            _refuse_changeable(fd, at, owner)
            at = os.path.join(at, part)
            child = _open_subdir(fd, part, at)
            if child is None:
                if not present:
                    return None
                result["created"].append(at)
                if check_mode:
                    for rest in parts[index + 1:]:
                        at = os.path.join(at, rest)
                        result["created"].append(at)
                    result["changed"] = True
                    return None
                child = _mkdir_at(fd, part, owner)
            os.close(fd)
            fd = child
        st = os.fstat(fd)
        if present and (not _owned_by(st, owner) or stat.S_IMODE(st.st_mode) != ROOT_DIR_MODE):
            result["repaired"] = {"path": at, "mode": "%04o" % stat.S_IMODE(st.st_mode),
                                  "uid": st.st_uid, "gid": st.st_gid}
            if not check_mode:
                # From here on nobody but root can add, rename or remove a name in it.
                os.fchown(fd, owner[0], owner[1])
                os.fchmod(fd, ROOT_DIR_MODE)
        opened, fd = fd, None
        return opened
    finally:
        if fd is not None:
            os.close(fd)


def place_root_file(path, data, present=True, check_mode=False, owner=ROOT, top="/"):
    """Make path a regular file holding exactly data (bytes), owned by owner (root:root),
    mode 0644, in a directory owned by owner, mode 0755 (present), or remove it.

    The walk starts at top (the module's is /) and opens one directory at a time through
    its parent's descriptor, never following a link. Every directory from top down to the
    one above the file's must be changeable by owner only, else SealError before anything
    changes; missing ones are created 0755, owned by owner. The file's own directory is
    created, or its owner and mode repaired through its descriptor, before its entries are
    read. A file that differs in content, owner, mode or link count is replaced by a fresh
    copy written in that directory and renamed over the name (a new inode); a link at the
    name is replaced, never followed. Not present: the name is unlinked through the
    directory's descriptor, and nothing is created or repaired.

    Returns dict(changed (the file itself), created (directories, parents first), repaired
    (path, mode, uid, gid of the file's directory before its repair, or None), existed,
    before (the old content, None when absent or not a readable regular file)).
    """
    path = os.path.normpath(path)
    _check_name(os.path.basename(path))
    result = {"changed": False, "created": [], "repaired": None, "existed": False, "before": None}
    fd = _open_file_dir(path, present, check_mode, owner, os.path.normpath(top), result)
    if fd is None:
        return result
    name = os.path.basename(path)
    try:
        st, content = _read_entry(fd, name)
        if st is None:
            result["changed"] = present
        elif stat.S_ISDIR(st.st_mode):
            raise SealError("%s is a directory" % path)
        else:
            result.update(existed=True, before=content,
                          changed=not (present and _is_root_file(st, content, data, owner)))
        if result["changed"] and not check_mode:
            if present:
                _write_fresh(fd, name, [data], owner, ROOT_FILE_MODE)
            else:
                os.unlink(name, dir_fd=fd)
    finally:
        os.close(fd)
    return result


# -- ancestors -----------------------------------------------------------------------------

def unsafe_reasons(st, owner=ROOT):
    """Why someone other than owner (uid, gid) can change this inode: [] when no one can."""
    mode = stat.S_IMODE(st.st_mode)
    reasons = []
    if st.st_uid != owner[0]:
        reasons.append("owned by uid %d" % st.st_uid)
    # A sticky, world-writable directory (like /tmp) still lets its users create entries.
    if mode & 0o022:
        reasons.append("writable by group or others (mode %04o)" % mode)
    return reasons


def writable_ancestors(path, owner=ROOT):
    """Return the directories a lookup of path passes through that someone other than owner can change.

    That is every ancestor of path as written, of every symlink hop on the way and of the
    resolved path (for a missing path: the nearest existing ancestor, resolved, and
    everything above it), not the resolved path itself. Each entry: dict(path, mode, uid,
    reason). A sealed tree under a writable parent can be swapped out by renaming, and a
    link in a writable directory can be pointed elsewhere, so they matter as much as the
    tree itself.
    """
    found = resolution(path)
    dirs = found["dirs"]
    if not found["missing"]:
        dirs = [d for d in dirs if d != found["resolved"]]
    result = []
    for directory in dirs:
        st = os.stat(directory)
        reasons = unsafe_reasons(st, owner)
        if reasons:
            result.append({"path": directory, "mode": "%04o" % stat.S_IMODE(st.st_mode), "uid": st.st_uid,
                           "reason": "; ".join(reasons)})
    return result


def changeable_by_others(root, limit=50000, owner=ROOT):
    """What under root (root included) someone other than owner (root) can change.

    For directories that are searched but not sealed here (library roots): directories and
    regular files owned by non-root or writable by group or others, and symlinks whose
    lookup passes through such a directory or ends at such a file. Each entry: dict(path,
    reason). Stops after `limit` entries with a last entry saying so.
    """
    found = []
    for count, (path, st) in enumerate(walk(root)):
        if count >= limit:
            found.append({"path": root, "reason": "more than %d entries; not checked further" % limit})
            break
        if stat.S_ISLNK(st.st_mode):
            hops = writable_ancestors(path, owner) if path != root else []
            for item in hops:
                found.append({"path": path, "reason": "symlink through %s (%s)" % (item["path"], item["reason"])})
            try:
                st = os.stat(path)
            except OSError:
                continue
        reasons = unsafe_reasons(st, owner) if (stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode)) else []
        if reasons:
            found.append({"path": path, "reason": "; ".join(reasons)})
    return found
