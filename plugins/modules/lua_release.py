#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: hardened.openresty contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: lua_release
short_description: Build, switch and prune sealed releases of a Lua application
description:
  - Manages the releases of one Lua application under O(root), laid out as
    C(releases/<id>/) directories and a C(current) symlink that C(lua_package_path) goes
    through, plus a C(previous) symlink that a rollback returns to.
  - With O(state=present), builds the release O(release) from a source directory that was
    uploaded to O(src), or from the files sent with the call in O(content). The source must
    have the content digest O(digest). The files are
    copied into a hidden directory under C(releases/), a C(hardened_release.lua) module
    that returns the id is added, the tree is sealed (root:root, directories C(0555),
    files C(0444)), every C(.lua) file is compiled with O(luajit) and linted with
    luacheck; only then is the directory renamed to C(releases/<id>). A failed check
    removes it and reports each file, line and message; nothing live changes.
  - A release that already exists with the same digest is left alone. One that exists
    with another digest is refused, because releases are immutable.
  - With O(state=current), points C(current) at the release atomically (a new symlink is
    renamed over the old one). The old current release becomes C(previous), unless
    O(previous) says what it must be (to restore a recorded state after a failed deploy).
  - With O(state=pruned), removes all but the O(keep) most recent releases (built or made
    current most recently), never the current or previous one, and leftovers of
    interrupted builds.
  - Builds, switches and prunes of one root never overlap; each takes the root's deploy lock
    (flock on C(<root>/.deploy.lock), waiting at most O(lock_timeout) seconds). A prune never
    removes the hidden directory of a build that is still running, and a build checks the
    digest of the built tree again right before it publishes it. Check mode takes no lock.
  - Does not reload nginx. Reload with M(hardened.openresty.nginx_reload) after a switch;
    that is what makes every worker load the new code.
version_added: 0.1.0
author:
  - hardened.openresty contributors (!UNKNOWN)
options:
  root:
    description:
      - The application root, which must contain a C(releases) directory.
    type: path
    required: true
  state:
    description:
      - C(present) builds the release, C(current) makes it live on disk, C(pruned) removes
        old releases.
    type: str
    choices: [present, current, pruned]
    default: present
  release:
    description:
      - The release id, 1-64 characters of C(A-Z a-z 0-9 . _ -), not starting with C(.).
      - Required with O(state=present) and O(state=current).
    type: str
  digest:
    description:
      - SHA-256 of the source tree, as computed by the
        P(hardened.openresty.lua_app_source_manifest#filter) filter.
      - Required with O(state=present).
    type: str
  src:
    description:
      - Directory on the target holding the uploaded source. Needed with O(state=present)
        when the release is not on the host yet (not in check mode), unless O(content) is
        given.
    type: path
  content:
    description:
      - The source's files sent with the call, relative path to the file's bytes in base64,
        as the P(hardened.openresty.lua_app_source_content#filter) filter returns them for a
        small source. They are written into a fresh directory only root can enter, checked
        against O(digest) like an upload, built from, and removed.
      - Paths must be relative, without empty, C(.) or C(..) parts, control characters or
        backslashes. Mutually exclusive with O(src).
      - Not logged (the values are the application's code).
    type: dict
  files:
    description:
      - The source's files as listed by the controller. With O(state=present) they name
        the files that differ when an existing release does not match; with
        O(state=current) they show the new release in the diff when it is not built yet
        (check mode).
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: Path relative to the source.
        type: str
        required: true
      sha256:
        description: SHA-256 of the file.
        type: str
        required: true
      size:
        description: Size in bytes (ignored).
        type: int
  luajit:
    description:
      - The LuaJIT that nginx links, used to compile every C(.lua) file.
      - Default is C(luajit) on the path.
    type: path
  lint:
    description:
      - Run luacheck after compiling. A warning that the configuration does not ignore
        refuses the release.
    type: bool
    default: true
  luacheck:
    description:
      - Path of luacheck. Default is C(luacheck) on the path.
    type: path
  luacheck_config:
    description:
      - Content of the luacheck configuration (Lua). Default is C(std = "ngx_lua").
      - A C(.luacheckrc) in the source is never used.
    type: str
  previous:
    description:
      - With O(state=current), the release C(previous) must point at afterwards; an empty
        string removes C(previous). Default is the old current release when current
        changes.
    type: str
  keep:
    description:
      - With O(state=pruned), how many releases to keep (at least 2).
    type: int
    default: 5
  lock_timeout:
    description:
      - Deploys of one root are serialised by a lock (C(<root>/.deploy.lock), flock). How many
        seconds a second deploy waits for it before it fails, naming the holder.
    type: int
    default: 300
extends_documentation_fragment:
  - hardened.openresty.attributes
attributes:
  check_mode:
    support: full
    details: With O(state=present), reports whether the release would have to be built.
  diff_mode:
    support: full
    details: With O(state=current), shows the live release id and its files before and after.
notes:
  - Needs root (C(become)) to seal the release.
seealso:
  - module: hardened.openresty.nginx_reload
  - module: hardened.openresty.sealed_tree
"""

EXAMPLES = r"""
- name: Build release 2.4.1 from an uploaded source
  hardened.openresty.lua_release:
    root: /opt/hardened-openresty/app
    release: "2.4.1"
    digest: "{{ source.digest }}"
    src: /var/lib/hardened-openresty/lua-app-staging/2.4.1
    luajit: /usr/bin/luajit
    luacheck_config: "{{ lookup('ansible.builtin.file', 'luacheckrc') }}"
  register: build

- name: Build release 2.4.2 from a small source sent with the call (no upload)
  hardened.openresty.lua_release:
    root: /opt/hardened-openresty/app
    release: "2.4.2"
    digest: "{{ source.digest }}"
    content: "{{ '/srv/src/app' | hardened.openresty.lua_app_source_content(1048576) }}"
    luajit: /usr/bin/luajit

- name: Make it current
  hardened.openresty.lua_release:
    root: /opt/hardened-openresty/app
    state: current
    release: "2.4.1"
  register: switch

- name: Put back what was live before
  hardened.openresty.lua_release:
    root: /opt/hardened-openresty/app
    state: current
    release: "{{ switch.before.current }}"
    previous: "{{ switch.before.previous | default('', true) }}"

- name: Keep the five most recent releases
  hardened.openresty.lua_release:
    root: /opt/hardened-openresty/app
    state: pruned
    keep: 5
"""

RETURN = r"""
release:
  description: The release the module worked on (null with O(state=pruned)).
  returned: always
  type: str
  sample: "2.4.1"
built:
  description: Whether the release was (in check mode, would be) built by this run.
  returned: always
  type: bool
  sample: true
problems:
  description: What the pre-flight checks found; the release was refused when not empty.
  returned: always
  type: list
  elements: dict
  contains:
    file:
      description: File relative to the release.
      type: str
    line:
      description: Line number.
      type: int
    column:
      description: Column (luacheck only).
      type: int
    code:
      description: luacheck's warning or error code.
      type: str
    message:
      description: The tool's message.
      type: str
    tool:
      description: C(luajit) or C(luacheck).
      type: str
  sample: [{file: app.lua, line: 3, column: null, code: null, tool: luajit,
            message: "unexpected symbol near 'end'"}]
before:
  description: Where C(current) and C(previous) pointed before (release ids or null).
  returned: always
  type: dict
  sample: {current: "2.4.0", previous: "2.3.9"}
after:
  description: Where they point afterwards (in check mode, would point).
  returned: always
  type: dict
  sample: {current: "2.4.1", previous: "2.4.0"}
releases:
  description: Release ids on the host after the run, most recent first.
  returned: always
  type: list
  elements: str
  sample: ["2.4.1", "2.4.0"]
check_mode:
  description:
    - Whether the module ran in check mode. Unlike C(ansible_check_mode), which reflects
      C(--check) only, this includes C(check_mode) set on a task, a block or C(apply).
  returned: always
  type: bool
  sample: false
removed:
  description: Releases (and leftover partial builds) that were (would be) removed.
  returned: always
  type: list
  elements: str
  sample: ["2.3.8"]
"""

import contextlib
import os
import tempfile

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.hardened.openresty.plugins.module_utils.lua_release import (
    CURRENT,
    DEFAULT_LUACHECK_CONFIG,
    PREVIOUS,
    RELEASE_MODULE,
    RELEASES,
    ReleaseError,
    build,
    deploy_lock,
    describe,
    format_problem,
    inspect,
    list_releases,
    prune,
    read_link,
    release_dir,
    release_id_errors,
    remove_tree,
    switch,
    tree_files,
    write_source,
)
from ansible_collections.hardened.openresty.plugins.module_utils.sealed_tree import ROOT, seal

# (uid, gid) a built release is sealed to: root:root. Tests that do not run as root set their own.
OWNER = ROOT


def _differences(found, wanted):
    have = dict((f["path"], f["sha256"]) for f in found)
    want = dict((f["path"], f["sha256"]) for f in wanted)
    out = []
    for path in sorted(set(have) | set(want)):
        if path not in have:
            out.append("%s missing" % path)
        elif path not in want:
            out.append("%s added" % path)
        elif have[path] != want[path]:
            out.append("%s changed" % path)
    return out


def _present(module, root, result):
    params = module.params
    release = params["release"]
    found = inspect(root, release, params["digest"])
    if found["exists"]:
        if not found["matches"]:
            detail = _differences(found["files"], params["files"]) if params["files"] else []
            module.fail_json(msg="release %s is on this host with other content than the source (%s): either "
                                 "its sealed files were changed in place, or other code was deployed under this "
                                 "id before. Releases are immutable: give changed code a new release id; remove "
                                 "%s only when it is not current" % (release, ", ".join(detail) or "digest differs",
                                                                     release_dir(root, release)), **result)
        module.exit_json(**result)
    result.update(changed=True, built=True)
    if module.check_mode:
        module.exit_json(**result)
    if not params["src"] and params["content"] is None:
        module.fail_json(msg="release %s is not on this host and neither src nor content was given to build it "
                             "from" % release, **result)
    luajit = params["luajit"] or module.get_bin_path("luajit", required=True)
    if not os.access(luajit, os.X_OK):
        module.fail_json(msg="luajit %s is not an executable; install the LuaJIT that nginx links" % luajit,
                         **result)
    luacheck = None
    config_path = None
    if params["lint"]:
        luacheck = params["luacheck"] or module.get_bin_path("luacheck", required=True)
        fd, config_path = tempfile.mkstemp(prefix="luacheckrc-", suffix=".lua")
        with os.fdopen(fd, "w") as handle:
            handle.write(params["luacheck_config"] or DEFAULT_LUACHECK_CONFIG)

    def run(argv, data=None, cwd=None):
        return module.run_command(argv, data=data, cwd=cwd)

    # Sent with the call: written into a directory only root can enter, then built as an upload.
    sent = tempfile.mkdtemp(prefix="hardened-lua-app-source-") if params["content"] is not None else None
    try:
        if sent:
            write_source(params["content"], sent)
        outcome = build(root, release, params["digest"], sent or params["src"], run, luajit, luacheck, config_path,
                        seal=lambda path: seal(path, owner=OWNER))
    finally:
        if config_path:
            os.unlink(config_path)
        if sent:
            remove_tree(sent)
    result["problems"] = outcome["problems"]
    if outcome["problems"]:
        result.update(changed=False, built=False)
        module.fail_json(msg="release %s refused in pre-flight, nothing live changed: %s"
                             % (release, "; ".join(format_problem(p) for p in outcome["problems"])), **result)
    result["releases"] = list_releases(root)
    module.exit_json(**result)


def _current(module, root, result):
    params = module.params
    release = params["release"]
    previous = params["previous"]
    if previous:
        errors = release_id_errors(previous, "previous")
        if errors:
            module.fail_json(msg=errors[0], **result)
    outcome = switch(root, release, previous=previous, check_mode=module.check_mode)
    result.update(changed=outcome["changed"], before=outcome["before"], after=outcome["after"])
    if module._diff and outcome["changed"]:
        def files_of(rid):
            path = release_dir(root, rid) if rid else None
            if path and os.path.isdir(path):
                return tree_files(path, exclude=(RELEASE_MODULE,))
            return params["files"] if rid == release else []
        old, new = outcome["before"]["current"], outcome["after"]["current"]
        result["diff"] = {
            "before_header": os.path.join(root, CURRENT),
            "after_header": os.path.join(root, CURRENT),
            "before": describe(old, files_of(old)) + "previous: %s\n" % outcome["before"]["previous"],
            "after": describe(new, files_of(new)) + "previous: %s\n" % outcome["after"]["previous"],
        }
    result["releases"] = list_releases(root)
    module.exit_json(**result)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            root=dict(type="path", required=True),
            state=dict(type="str", choices=["present", "current", "pruned"], default="present"),
            release=dict(type="str"),
            digest=dict(type="str"),
            src=dict(type="path"),
            content=dict(type="dict", no_log=True),
            files=dict(type="list", elements="dict", default=[], options=dict(
                path=dict(type="str", required=True),
                sha256=dict(type="str", required=True),
                size=dict(type="int"),
            )),
            luajit=dict(type="path"),
            lint=dict(type="bool", default=True),
            luacheck=dict(type="path"),
            luacheck_config=dict(type="str"),
            previous=dict(type="str"),
            keep=dict(type="int", default=5),
            lock_timeout=dict(type="int", default=300),
        ),
        required_if=[
            ["state", "present", ["release", "digest"]],
            ["state", "current", ["release"]],
        ],
        mutually_exclusive=[["src", "content"]],
        supports_check_mode=True,
    )
    params = module.params
    root = params["root"].rstrip("/") or "/"
    result = dict(changed=False, release=params["release"], built=False, problems=[], before={}, after={},
                  releases=[], removed=[], check_mode=module.check_mode)
    if params["release"] is not None:
        errors = release_id_errors(params["release"])
        if errors:
            module.fail_json(msg=errors[0], **result)
    if not os.path.isdir(os.path.join(root, RELEASES)):
        module.fail_json(msg="%s/%s is not a directory: apply hardened.openresty.server with %s in "
                             "server_lua_app_roots first" % (root, RELEASES, root), **result)
    try:
        # Check mode changes nothing, the lock file included.
        with (_no_lock() if module.check_mode else deploy_lock(root, params["lock_timeout"])):
            result["before"] = {"current": read_link(root, CURRENT), "previous": read_link(root, PREVIOUS)}
            result["after"] = dict(result["before"])
            result["releases"] = list_releases(root)
            if params["state"] == "present":
                _present(module, root, result)
            elif params["state"] == "current":
                _current(module, root, result)
            else:
                removed = prune(root, params["keep"], check_mode=module.check_mode)
                result.update(changed=bool(removed), removed=removed,
                              releases=[r for r in list_releases(root) if r not in removed])
    except (ReleaseError, OSError) as exc:
        module.fail_json(msg=str(exc), **result)
    module.exit_json(**result)


@contextlib.contextmanager
def _no_lock():
    yield


if __name__ == "__main__":
    main()
