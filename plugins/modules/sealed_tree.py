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
    regular files C(0444). Symlinks are kept (and made root-owned), never followed inside
    the tree.
  - Repairs drift, such as a C(0777) directory or a file owned by C(www-data), on every run.
  - Refuses a tree whose ancestors can be written by anyone but root (a writable parent
    lets its owner rename the whole tree away and put another in its place), and a tree
    that contains devices, fifos or sockets. Nothing is changed in either case.
version_added: 0.1.0
author:
  - hardened.openresty contributors (!UNKNOWN)
options:
  path:
    description:
      - Absolute path of each root to seal (a single path or a list).
    type: list
    elements: path
    required: true
  state:
    description:
      - C(sealed) is the only state.
    type: str
    choices: [sealed]
    default: sealed
  create:
    description:
      - Create a missing root (mode C(0555)) and its missing parents (mode C(0755)), owned
        by root:root. When false, a missing root is an error.
    type: bool
    default: true
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: full
    details: Lists each fixed path with its old and new mode and owner.
  platform:
    description: Target OS/families that can be operated against.
    support: N/A
    platforms: posix
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
  sample: [{path: /srv/lua/lib/app.lua, kind: file, mode: "0664", uid: 33, gid: 33,
            reason: "owned by 33:33, not root:root; mode 0664, not 0444"}]
created:
  description: Directories that were (would be) created, parents first.
  returned: always
  type: list
  elements: str
  sample: [/srv/lua, /srv/lua/lib]
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.hardened.openresty.plugins.module_utils.sealed_tree import (
    SEALED_DIR_MODE,
    SEALED_FILE_MODE,
    find_deviations,
    seal,
    writable_ancestors,
)

_WANTED = {"directory": SEALED_DIR_MODE, "file": SEALED_FILE_MODE}


def _missing_dirs(path):
    missing = []
    while not os.path.lexists(path):
        missing.insert(0, path)
        path = os.path.dirname(path)
    return missing, path


def _check_root(module, path):
    """Refuse what sealing cannot fix; return the directories that must be created."""
    if not os.path.isabs(path) or os.path.normpath(path) == "/":
        module.fail_json(msg="path %s: an absolute path below / is required" % path)
    missing, existing = _missing_dirs(path)
    if missing and not module.params["create"]:
        module.fail_json(msg="path %s does not exist (create is false)" % path)
    if missing and not os.path.isdir(existing):
        module.fail_json(msg="path %s: %s exists and is not a directory" % (path, existing))
    if not missing and not os.path.isdir(path):
        module.fail_json(msg="path %s is not a directory" % path)
    # writable_ancestors() starts at the parent of what it is given: for a missing root,
    # check the nearest existing directory and everything above it.
    probes = [os.path.join(existing, "_")] if missing else [path]
    if not missing and os.path.realpath(path) != os.path.abspath(path):
        probes.append(os.path.realpath(path))
    for probe in probes:
        writable = writable_ancestors(probe)
        if writable:
            module.fail_json(
                msg="path %s is not sealed while an ancestor can be changed by non-root: %s"
                % (path, "; ".join("%s (%s)" % (w["path"], w["reason"]) for w in writable)),
                writable_ancestors=writable)
    if not missing:
        special = [d for d in find_deviations(path) if d["kind"] == "special"]
        if special:
            module.fail_json(msg="path %s contains entries that are not files, directories or symlinks: %s"
                             % (path, ", ".join(d["path"] for d in special)), special=special)
    return missing


def _create(path, is_root):
    os.mkdir(path)
    os.chown(path, 0, 0)
    os.chmod(path, SEALED_DIR_MODE if is_root else 0o755)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="list", elements="path", required=True),
            state=dict(type="str", choices=["sealed"], default="sealed"),
            create=dict(type="bool", default=True),
        ),
        supports_check_mode=True,
    )
    roots = [os.path.normpath(p) for p in module.params["path"]]
    # Every root is checked before any is changed.
    plans = [(root, _check_root(module, root)) for root in roots]
    created = []
    fixed = []
    for root, missing in plans:
        for directory in missing:
            # Roots may share missing ancestors (a root and a directory inside it).
            if directory in created:
                continue
            if not module.check_mode:
                _create(directory, directory == root)
            created.append(directory)
        if missing and module.check_mode:
            continue
        fixed.extend(seal(root, check_mode=module.check_mode))

    result = dict(changed=bool(created or fixed), fixed=fixed, created=created)
    if module._diff and result["changed"]:
        before = ["%s absent" % d for d in created]
        after = ["%s %04o 0:0" % (d, SEALED_DIR_MODE if d in roots else 0o755) for d in created]
        for item in fixed:
            before.append("%s %s %d:%d" % (item["path"], item["mode"], item["uid"], item["gid"]))
            wanted = _WANTED.get(item["kind"])
            after.append("%s %s 0:0" % (item["path"], item["mode"] if wanted is None else "%04o" % wanted))
        result["diff"] = {"before": "\n".join(before) + "\n", "after": "\n".join(after) + "\n"}
    module.exit_json(**result)


if __name__ == "__main__":
    main()
