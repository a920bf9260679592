# -*- coding: utf-8 -*-
# Copyright: hardened.openresty contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What "sealed" means for a Lua module root, checked and enforced in one place.

A sealed tree is owned by root:root throughout, its directories are 0555 and its regular
files 0444. Symlinks are allowed (release layouts use them) but never followed while
walking, and must be owned by root. Anything else (devices, fifos, sockets) is a deviation
that sealing does not fix. Plain functions, standard library only.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import stat

SEALED_DIR_MODE = 0o555
SEALED_FILE_MODE = 0o444


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


def _entry_deviation(path, st):
    kind = _kind(st)
    mode = stat.S_IMODE(st.st_mode)
    reasons = []
    if st.st_uid != 0 or st.st_gid != 0:
        reasons.append("owned by %d:%d, not root:root" % (st.st_uid, st.st_gid))
    wanted = _wanted_mode(kind)
    if kind == "special":
        reasons.append("not a regular file, directory or symlink")
    elif wanted is not None and mode != wanted:
        reasons.append("mode %04o, not %04o" % (mode, wanted))
    if not reasons:
        return None
    return {
        "path": path,
        "kind": kind,
        "mode": "%04o" % mode,
        "uid": st.st_uid,
        "gid": st.st_gid,
        "reason": "; ".join(reasons),
    }


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


def find_deviations(root):
    """Return a list of deviation dicts (path, kind, mode, uid, gid, reason) under root.

    Raises OSError when root does not exist.
    """
    found = []
    for path, st in walk(root):
        deviation = _entry_deviation(path, st)
        if deviation:
            found.append(deviation)
    return found


def seal(root, check_mode=False):
    """Bring root to the sealed state. Return the deviations that were (or would be) fixed.

    Special files are reported but left alone: removing them is the operator's decision.
    """
    fixed = []
    for deviation in find_deviations(root):
        if deviation["kind"] == "special":
            fixed.append(deviation)
            continue
        if not check_mode:
            path = deviation["path"]
            if deviation["uid"] != 0 or deviation["gid"] != 0:
                # The root is followed when it is a symlink (see walk()); entries below are not.
                (os.chown if path == root else os.lchown)(path, 0, 0)
            wanted = _wanted_mode(deviation["kind"])
            if wanted is not None:
                os.chmod(path, wanted)
        fixed.append(deviation)
    return fixed


def writable_ancestors(path):
    """Return the ancestors of path (root included) writable by non-root or owned by non-root.

    Each entry: dict(path, mode, uid, reason). A sealed tree under a writable parent can be
    swapped out by renaming, so its ancestors matter as much as the tree itself.
    """
    found = []
    current = os.path.dirname(os.path.abspath(path))
    while True:
        st = os.stat(current)
        mode = stat.S_IMODE(st.st_mode)
        reasons = []
        if st.st_uid != 0:
            reasons.append("owned by uid %d" % st.st_uid)
        # A sticky, world-writable directory (like /tmp) still lets its users create entries.
        if mode & 0o022:
            reasons.append("writable by group or others (mode %04o)" % mode)
        if reasons:
            found.append({"path": current, "mode": "%04o" % mode, "uid": st.st_uid, "reason": "; ".join(reasons)})
        parent = os.path.dirname(current)
        if parent == current:
            break
        current = parent
    return found
