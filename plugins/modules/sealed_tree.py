#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: hardened.openresty contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: sealed_tree
short_description: Seal Lua module roots so that only root can change the code nginx loads
description:
  - Makes each directory tree owned by root:root, its directories mode C(0555) and its
    regular files C(0444). Symlinks whose every hop stays inside the tree are kept (and made
    root-owned), never followed.
  - Repairs drift, such as a C(0777) directory or a file owned by C(www-data), on every run,
    through file descriptors (each directory opened without following links and sealed
    before its entries are read), so a worker racing the repair cannot redirect it.
  - A file that anyone but root could write is replaced by a fresh root-owned copy (a new
    inode), so a write handle opened while the tree had drifted cannot write into it.
  - A symlink that leads out of the tree, directly or through a later hop, is removed.
  - Refuses a tree whose ancestors, or the directories of any symlink on the way to it, can
    be written by anyone but root (a writable parent lets its owner rename the whole tree
    away and put another in its place), and a tree that contains devices, fifos, sockets or
    hard-linked files. Nothing is changed in either case.
  - With O(state=checked), changes nothing and fails unless each path (itself, everything
    under it and every directory on the way to it) can be changed by root only, for
    directories that are searched but not sealed by this collection, such as extra Lua
    library roots.
  - With O(root_files), also keeps small root-owned files outside the sealed trees (a
    systemd drop-in, a local fact), each through descriptors and never through a link, and
    says for each one whether it changed.
version_added: 0.1.0
author:
  - hardened.openresty contributors (!UNKNOWN)
options:
  path:
    description:
      - Absolute path of each root to seal (a single path or a list).
      - Required unless O(checks) is given; with only O(checks), nothing is sealed.
    type: list
    elements: path
  checks:
    description:
      - Checks made first, in order, before any O(path) is checked or changed; each fails
        naming its own O(checks[].label). They never change anything, in or out of check mode.
      - Lets one task refuse the roots of several variables, each by its name.
    type: list
    elements: dict
    suboptions:
      path:
        description:
          - Absolute path of each root of this check.
        type: list
        elements: path
        required: true
      label:
        description:
          - Name of the variable the paths come from, at the start of every error message.
        type: str
        required: true
      state:
        description:
          - C(checked) as O(state=checked). C(sealed) refuses what sealing the paths would
            refuse (a directory on the way that non-root can change, devices, fifos, sockets,
            hard-linked files, a path that is not a directory), as O(state=sealed) does
            before it changes anything.
        type: str
        choices: [sealed, checked]
        default: checked
  state:
    description:
      - C(sealed) seals the trees; C(checked) only checks that nobody but root can change
        them, and fails naming O(label) otherwise.
    type: str
    choices: [sealed, checked]
    default: sealed
  label:
    description:
      - Name of the variable the paths come from, used at the start of every error message.
    type: str
    default: path
  create:
    description:
      - Create a missing root (mode C(0555)) and its missing parents (mode C(0755)), owned
        by root:root. When false, a missing root is an error.
    type: bool
    default: true
  files:
    description:
      - Files to keep in the first O(path), file name to content, root:root C(0444).
      - A file whose content, owner or mode differs is replaced by a fresh copy written
        through the sealed directory's descriptor and renamed over it (a new inode).
      - Lets one task seal the roots and ship small files into them, instead of a copy per file.
    type: dict
    default: {}
  links:
    description:
      - Symlinks to create where nothing exists yet, absolute link path to relative target
        (plain names inside the link's directory, such as C(releases/initial)); the sealed
        directory the target names is created too. An existing path is never touched.
      - The directory of each link must be one of O(path).
      - Used for the C(current) link of a release root that has no release yet.
    type: dict
    default: {}
  root_files:
    description:
      - Files outside the sealed trees, each root:root C(0644) in a root:root C(0755)
        directory. They are placed after the trees are sealed, and all of them are checked
        before anything changes.
      - The directories are opened one at a time from C(/), each through its parent's
        descriptor, never following a link. Every directory above the file's own must be
        changeable by root only, else the task fails before anything changes; missing
        directories are created C(0755). The file's own directory gets root:root C(0755)
        (a repair goes through its descriptor) before its entries are read.
      - A file whose content, owner, mode or link count differs, or a link in its place, is
        replaced by a fresh file written in its directory and renamed over the name.
      - Lets one task keep several such files, instead of a directory and a file task each.
    type: list
    elements: dict
    suboptions:
      path:
        description:
          - Absolute path of the file.
        type: path
        required: true
      content:
        description:
          - The whole content of the file (UTF-8). Required when O(root_files[].state=present).
        type: str
      state:
        description:
          - C(absent) removes the file (a link in its place too) through its directory's
            descriptor, and creates or repairs nothing.
        type: str
        choices: [present, absent]
        default: present
extends_documentation_fragment:
  - hardened.openresty.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details: Lists each fixed path with its old and new mode and owner, and the old and new
      content of each changed O(root_files) entry.
notes:
  - Needs root (C(become)) to change ownership.
"""

EXAMPLES = r"""
- name: Seal the Lua module roots
  hardened.openresty.sealed_tree:
    path:
      - /srv/lua/lib
      - /srv/lua/app
  become: true

- name: Refuse extra library roots that the worker user could change
  hardened.openresty.sealed_tree:
    path: /usr/local/share/lua/5.1
    state: checked
    label: server_lua_library_roots
  become: true

- name: Seal a module root, ship a helper into it and give a release root its first release
  hardened.openresty.sealed_tree:
    path: [/srv/lua/lib, /srv/lua/app, /srv/lua/app/releases]
    files:
      helper.lua: "{{ lookup('ansible.builtin.file', 'helper.lua') }}"
    links:
      /srv/lua/app/current: releases/initial
  become: true

- name: Refuse, each by its variable's name, roots that anyone but root can change
  hardened.openresty.sealed_tree:
    checks:
      - path: /usr/local/share/lua/5.1
        label: server_lua_library_roots
      - path: [/srv/lua/lib]
        label: server_lua_module_roots
        state: sealed
  become: true

- name: Keep a systemd drop-in and a local fact, root:root 0644, and see which one changed
  hardened.openresty.sealed_tree:
    root_files:
      - path: /etc/systemd/system/nginx.service.d/hardened-openresty.conf
        content: "{{ lookup('ansible.builtin.template', 'sandbox.conf.j2') }}"
      - path: /etc/ansible/facts.d/hardened_openresty.fact
        content: "{{ layout | to_nice_json }}\n"
  register: host_files
  become: true

- name: Report drift without fixing it
  hardened.openresty.sealed_tree:
    path: /srv/lua/lib
    create: false
  check_mode: true
  register: lua_roots_drift
"""

RETURN = r"""
fixed:
  description: Deviations that were (in check mode, would be) fixed.
  returned: always
  type: list
  elements: dict
  contains:
    path:
      description: The path that deviated.
      type: str
    kind:
      description: C(directory), C(file) or C(symlink).
      type: str
    mode:
      description: Mode before the fix, in octal.
      type: str
    uid:
      description: Owner before the fix.
      type: int
    gid:
      description: Group before the fix.
      type: int
    reason:
      description: What deviated.
      type: str
    action:
      description: C(repair) (chown/chmod), C(replace) (a fresh copy of a file someone else could
        write), C(remove) (a symlink leading out of the tree) or C(refuse) (left alone).
      type: str
  sample: [{path: /srv/lua/lib/app.lua, kind: file, mode: "0664", uid: 33, gid: 33,
            reason: "owned by 33:33, not root:root; mode 0664, not 0444", action: replace}]
created:
  description: Directories that were (would be) created, parents first.
  returned: always
  type: list
  elements: str
  sample: [/srv/lua, /srv/lua/lib]
installed:
  description: Paths of O(files) that were (would be) written.
  returned: always
  type: list
  elements: str
  sample: [/srv/lua/lib/hardened_guard.lua]
linked:
  description: Links of O(links) that were (would be) created.
  returned: always
  type: list
  elements: str
  sample: [/srv/lua/app/current]
root_files:
  description: Each entry of O(root_files), in the order given.
  returned: always
  type: list
  elements: dict
  contains:
    path:
      description: The file.
      type: str
    state:
      description: C(present) or C(absent), as asked.
      type: str
    changed:
      description: Whether the file itself was (would be) written or removed; a repair of its
        directory alone leaves this false.
      type: bool
    created:
      description: Directories that were (would be) created for it, parents first.
      type: list
      elements: str
    repaired:
      description: The file's directory before its owner and mode were (would be) repaired
        to root:root C(0755) (C(path), C(mode), C(uid), C(gid)), or null.
      type: dict
  sample: [{path: /etc/ansible/facts.d/hardened_openresty.fact, state: present, changed: true,
            created: [/etc/ansible, /etc/ansible/facts.d], repaired: null}]
missing:
  description: With O(state=checked), and for O(checks) of state C(checked), the paths that do not
    exist (their ancestors were checked).
  returned: always
  type: list
  elements: str
  sample: []
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.hardened.openresty.plugins.module_utils.sealed_tree import (
    ROOT,
    SEALED_DIR_MODE,
    SEALED_FILE_MODE,
    SealError,
    changeable_by_others,
    ensure_link,
    find_deviations,
    install_files,
    place_root_file,
    seal,
    writable_ancestors,
)

_WANTED = {"directory": SEALED_DIR_MODE, "file": SEALED_FILE_MODE}
ARGUMENT_SPEC = dict(
    path=dict(type="list", elements="path"),
    checks=dict(type="list", elements="dict", options=dict(
        path=dict(type="list", elements="path", required=True),
        label=dict(type="str", required=True),
        state=dict(type="str", choices=["sealed", "checked"], default="checked"),
    )),
    state=dict(type="str", choices=["sealed", "checked"], default="sealed"),
    create=dict(type="bool", default=True),
    label=dict(type="str", default="path"),
    files=dict(type="dict", default={}),
    links=dict(type="dict", default={}),
    root_files=dict(type="list", elements="dict", options=dict(
        path=dict(type="path", required=True),
        content=dict(type="str"),
        state=dict(type="str", choices=["present", "absent"], default="present"),
    ), required_if=[("state", "present", ("content",))]),
)
# Where the walk to each of O(root_files) starts, and the (uid, gid) every tree, file and
# trusted directory belongs to: root:root. The unit tests set their own directory and user.
_TOP = "/"
_OWNER = ROOT


def _missing_dirs(path):
    missing = []
    while not os.path.lexists(path):
        missing.insert(0, path)
        path = os.path.dirname(path)
    return missing, path


def _refuse_writable_ancestors(module, path, label):
    writable = writable_ancestors(path, _OWNER)
    if writable:
        module.fail_json(
            msg="%s: %r is not sealed while a directory on the way to it can be changed by non-root: %s"
            % (label, path, "; ".join("%s (%s)" % (w["path"], w["reason"]) for w in writable)),
            writable_ancestors=writable)


def _check_root(module, path, label):
    """Refuse what sealing cannot fix; return the directories that must be created."""
    if not os.path.isabs(path) or os.path.normpath(path) == "/":
        module.fail_json(msg="%s: %r: an absolute path below / is required" % (label, path))
    missing, existing = _missing_dirs(path)
    if missing and not module.params["create"]:
        module.fail_json(msg="%s: %r does not exist (create is false)" % (label, path))
    if missing and not os.path.isdir(existing):
        module.fail_json(msg="%s: %r: %s exists and is not a directory" % (label, path, existing))
    if not missing and not os.path.isdir(path):
        module.fail_json(msg="%s: %r is not a directory" % (label, path))
    # Every directory a lookup passes through, symlink hops included; for a missing root,
    # the nearest existing ancestor where it resolves to and everything above it.
    _refuse_writable_ancestors(module, path, label)
    if not missing:
        refused = [d for d in find_deviations(path, _OWNER) if d["action"] == "refuse"]
        if refused:
            module.fail_json(msg="%s: %r contains entries that sealing does not fix: %s"
                             % (label, path, "; ".join("%s (%s)" % (d["path"], d["reason"]) for d in refused)),
                             special=refused)
    return missing


def _check_only(module, path, label):
    """state=checked: nothing on the way to path or under it may be changeable by non-root."""
    if not os.path.isabs(path) or os.path.normpath(path) == "/":
        module.fail_json(msg="%s: %r: an absolute path below / is required" % (label, path))
    _refuse_writable_ancestors(module, path, label)
    if not os.path.lexists(path):
        return True
    problems = changeable_by_others(path, owner=_OWNER)
    if problems:
        module.fail_json(msg="%s: %r is writable by someone other than root: %s"
                         % (label, path, "; ".join("%s (%s)" % (p["path"], p["reason"]) for p in problems)),
                         writable=problems)
    return False


def _run_checks(module):
    """O(checks), in order: fail naming the check's label; return the missing paths."""
    missing = []
    for check in module.params["checks"] or []:
        for path in (os.path.normpath(p) for p in check["path"]):
            if check["state"] == "checked":
                if _check_only(module, path, check["label"]):
                    missing.append(path)
            else:
                # What state=sealed refuses before it changes anything (create as given).
                _check_root(module, path, check["label"])
    return missing


def _create(path, is_root):
    """mkdir through the parent's descriptor, then fchown/fchmod the new directory."""
    parent = os.open(os.path.dirname(path), os.O_RDONLY | os.O_DIRECTORY)
    try:
        name = os.path.basename(path)
        os.mkdir(name, 0o700, dir_fd=parent)
        fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=parent)
        try:
            os.fchown(fd, _OWNER[0], _OWNER[1])
            os.fchmod(fd, SEALED_DIR_MODE if is_root else 0o755)
        finally:
            os.close(fd)
    finally:
        os.close(parent)


def _ship(module, roots, created):
    """Install O(files) into the first root and create the missing O(links)."""
    label = module.params["label"]
    files = dict((name, content.encode("utf-8") if not isinstance(content, bytes) else content)
                 for name, content in module.params["files"].items())
    links = sorted((os.path.normpath(path), str(target)) for path, target in module.params["links"].items())
    for path, dummy in links:
        if not os.path.isabs(path) or os.path.dirname(path) not in roots:
            module.fail_json(msg="%s: link %r is not directly inside one of the paths" % (label, path))
    installed, linked = [], []
    try:
        if files:
            if module.check_mode and roots[0] in created:
                names = sorted(files)
            else:
                names = install_files(roots[0], files, check_mode=module.check_mode, owner=_OWNER)
            installed = [os.path.join(roots[0], name) for name in names]
        for path, target in links:
            if module.check_mode:
                if not os.path.lexists(path):
                    linked.append(path)
            elif ensure_link(os.path.dirname(path), os.path.basename(path), target, _OWNER):
                linked.append(path)
    except (SealError, OSError) as exc:
        module.fail_json(msg="%s: %s" % (label, exc), installed=installed, linked=linked, created=created)
    return installed, linked


def _diff(roots, created, fixed):
    """Before and after of each created directory and each fixed path (owner 0:0 after)."""
    owner = "%d:%d" % _OWNER
    before = ["%s absent" % d for d in created]
    after = ["%s %04o %s" % (d, SEALED_DIR_MODE if d in roots else 0o755, owner) for d in created]
    for item in fixed:
        before.append("%s %s %d:%d" % (item["path"], item["mode"], item["uid"], item["gid"]))
        wanted = _WANTED.get(item["kind"])
        if item["action"] == "remove":
            after.append("%s absent" % item["path"])
        elif item["action"] == "refuse":
            after.append(before[-1])
        else:
            after.append("%s %s %s" % (item["path"], item["mode"] if wanted is None else "%04o" % wanted, owner))
    return {"before": "\n".join(before) + "\n", "after": "\n".join(after) + "\n"}


def _refuse_mismatches(module):
    """Options that cannot go together, refused before anything is checked or changed."""
    params = module.params
    if params["state"] == "checked" and params["root_files"]:
        module.fail_json(msg="root_files: state=checked changes nothing; place them with state=sealed")
    if not params["path"] and (params["files"] or params["links"]):
        module.fail_json(msg="%s: files and links go into the paths, and no path is given" % params["label"])
    paths = [os.path.normpath(entry["path"]) for entry in params["root_files"] or []]
    for path in paths:
        if not os.path.isabs(path) or paths.count(path) > 1:
            module.fail_json(msg="root_files: %r must be an absolute path, given once" % path)


def _place(module, entry, check_mode):
    """Place one of O(root_files) (or preview it): its result entry, with its diff."""
    content = entry["content"] or ""
    try:
        placed = place_root_file(entry["path"], content.encode("utf-8"), entry["state"] == "present",
                                 check_mode=check_mode, owner=_OWNER, top=_TOP)
    except (SealError, OSError) as exc:
        module.fail_json(msg="root_files: %s: %s" % (entry["path"], exc))
    path = os.path.normpath(entry["path"])
    diffs = []
    if placed["repaired"]:
        old = placed["repaired"]
        diffs.append({"before_header": old["path"], "after_header": old["path"],
                      "before": "%s %s %d:%d\n" % (old["path"], old["mode"], old["uid"], old["gid"]),
                      "after": "%s 0755 %d:%d\n" % ((old["path"],) + tuple(_OWNER))})
    if placed["changed"]:
        before = placed["before"]
        diffs.append({"before_header": path, "after_header": path,
                      "before": "" if not placed["existed"] else
                      "(not a regular file to show)\n" if before is None else before.decode("utf-8", "replace"),
                      "after": content if entry["state"] == "present" else ""})
    return dict(path=path, state=entry["state"], changed=placed["changed"], created=placed["created"],
                repaired=placed["repaired"], diffs=diffs)


def _seal_roots(module, plans):
    """Create the missing directories of each root and seal it: (created, fixed)."""
    label = module.params["label"]
    created = []
    fixed = []
    for root, absent in plans:
        for directory in absent:
            # Roots may share missing ancestors (a root and a directory inside it).
            if directory in created:
                continue
            if not module.check_mode:
                _create(directory, directory == root)
            created.append(directory)
        if absent and module.check_mode:
            continue
        try:
            fixed.extend(seal(root, check_mode=module.check_mode, owner=_OWNER))
        except (SealError, OSError) as exc:
            module.fail_json(msg="%s: %r: sealing stopped: %s" % (label, root, exc),
                             fixed=fixed, created=created)
    return created, fixed


def _result(module, roots, created, fixed, installed, linked, placed, missing):
    diffs = [_diff(roots, created, fixed)] if created or fixed else []
    for entry in placed:
        diffs.extend(entry.pop("diffs"))
    changed = any(entry["changed"] or entry["repaired"] for entry in placed)
    result = dict(changed=bool(changed or created or fixed or installed or linked), fixed=fixed, created=created,
                  installed=installed, linked=linked, root_files=placed, missing=missing)
    if module._diff and diffs:
        result["diff"] = diffs[0] if len(diffs) == 1 else diffs
    return result


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, required_one_of=[["path", "checks", "root_files"]],
                           supports_check_mode=True)
    _refuse_mismatches(module)
    label = module.params["label"]
    # The checks of other variables' roots come first: they change nothing.
    missing = _run_checks(module)
    roots = [os.path.normpath(p) for p in module.params["path"] or []]
    if module.params["state"] == "checked":
        missing += [root for root in roots if _check_only(module, root, label)]
        module.exit_json(changed=False, fixed=[], created=[], installed=[], linked=[], root_files=[],
                         missing=missing)
    # Every root and every root file is checked before any is changed.
    plans = [(root, _check_root(module, root, label)) for root in roots]
    entries = module.params["root_files"] or []
    placed = [_place(module, entry, True) for entry in entries]
    created, fixed = _seal_roots(module, plans)
    installed, linked = _ship(module, roots, created) if roots else ([], [])
    if not module.check_mode:
        placed = [_place(module, entry, False) for entry in entries]
    module.exit_json(**_result(module, roots, created, fixed, installed, linked, placed, missing))


if __name__ == "__main__":
    main()
