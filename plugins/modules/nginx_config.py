#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: hardened.openresty contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: nginx_config
short_description: Validate and install nginx configuration files as one unit
description:
  - Installs a set of nginx configuration files so that a change never replaces a working
    configuration with one nginx rejects.
  - The whole configuration directory is copied to a private temporary directory, the new
    contents are written into the copy and C(nginx -t) tests the copy. This is what a
    template's C(validate) with C(nginx -t -c %s) cannot do.
  - Nothing C(nginx -t) reads comes from the live files of O(conf_dir). Relative includes
    resolve inside the copy; every other include is resolved on the filesystem as nginx
    and the kernel resolve it (C(//), C(.), C(..), a symlink to the directory) and pointed
    at the copy when it reads O(conf_dir); symlinks that resolve into O(conf_dir) point into
    the copy. An include outside O(conf_dir) that leads back into it (a link to one of its
    files) cannot be staged; the change is refused, naming the include, file and line.
  - Before anything runs nginx on the copy, the files are read with the collection's parser
    and the change is refused, naming file and line, when a file that this task does not
    manage uses a directive that runs code while nginx reads the configuration
    (C(load_module), C(ssl_engine), C(engine:) keys, C(perl_modules), C(perl_require),
    C(js_import), C(js_path)), because C(nginx -t) would run that code. The distribution's
    C(modules-enabled/*.conf) may load modules from the binary's C(--modules-path)
    (C(/usr/lib/nginx/modules) on Debian).
  - Only when the test passes is each changed file replaced atomically (owner root:root),
    after a copy of its previous version was saved in a backup directory. A journal in
    that directory lives from before the first replacement until after the last; a run
    killed in between (SIGKILL, an async timeout) leaves it, and the next run of this
    module puts the previous files back first and reports it in RV(recovered). Runs that
    share O(backup_root) wait for each other (a lock file in it).
  - When installing fails and putting the previous files back fails too (a full disk), the
    task fails naming each file with its state (previous version, new version, absent)
    and keeps the backup.
  - With O(restore_from), puts the files of such a backup back and removes the files that
    were new, for example after M(hardened.openresty.nginx_reload) reports that nginx
    rejected the reload.
  - With O(lua_fail_on), also applies the configuration rules of
    M(hardened.openresty.lua_sandbox_verify) to the tested tree (the staged copy, or the live
    tree when no file changes) and refuses, changing nothing, when a finding reaches that
    severity. A C(lua_code_cache off) or a C(;;) in a file this task does not manage then
    stops the run, naming the file and line.
  - Does not reload nginx. Notify a handler that uses M(hardened.openresty.nginx_reload).
version_added: 0.1.0
author:
  - hardened.openresty contributors (!UNKNOWN)
options:
  conf_dir:
    description:
      - The live configuration directory.
      - Default is the directory of the C(--conf-path) the binary was built with, or with
        O(restore_from) the directory recorded in the backup.
    type: path
  main_config:
    description:
      - The main configuration file, relative to O(conf_dir), that C(nginx -t) tests.
    type: str
    default: nginx.conf
  files:
    description:
      - The files to manage. Files of O(conf_dir) not listed are left as they are (and are
        part of the test).
    type: list
    elements: dict
    suboptions:
      path:
        description:
          - Path relative to O(conf_dir), or absolute under it. C(..) is refused.
        type: str
        required: true
      content:
        description:
          - The file's content. Required when O(files[].state=present).
        type: str
      mode:
        description:
          - Permissions of the file, as an octal string such as C('0644').
        type: raw
        default: '0644'
      state:
        description:
          - C(absent) removes the file (the main configuration cannot be removed).
        type: str
        choices: [present, absent]
        default: present
  owned_dirs:
    description:
      - Directories (relative to O(conf_dir)) whose files this task answers for. A file
        directly in one of them that no entry of O(files) names is reported in
        RV(unmanaged); with O(owned_dirs[].purge=true) it is removed in the same change as
        O(files) (tested with them, backed up with them, restored with them).
      - Subdirectories are left alone; a symlink in the directory is removed as a link, never
        followed. A directory that is itself a symlink is refused.
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description:
          - Directory relative to O(conf_dir), or absolute under it.
        type: str
        required: true
      purge:
        description:
          - Remove the files of this directory that O(files) does not name.
        type: bool
        default: false
      keep:
        description:
          - Shell patterns (as C(fnmatch) reads them) of file names in this directory that
            another task manages; they are neither reported nor removed.
        type: list
        elements: str
        default: []
  backup_root:
    description:
      - Directory under which each run that changes files creates a backup directory named
        after the current UTC time.
    type: path
    default: /var/lib/hardened-openresty/config-backups
  backup_keep:
    description:
      - How many backup directories to keep in O(backup_root); older ones are removed.
        C(0) keeps all.
    type: int
    default: 10
  restore_from:
    description:
      - A backup directory returned as RV(backup_dir) by an earlier run. Its files are put
        back and files that run created are removed; the restored configuration is then
        tested with C(nginx -t).
      - Mutually exclusive with O(files).
    type: path
  lua_fail_on:
    description:
      - Refuse the configuration when the verifier's configuration rules (see
        M(hardened.openresty.lua_sandbox_verify) and C(docs/rules.md)) find anything at or
        above this severity. C(none) skips them.
      - Only the rules that read the configuration run; filesystem and process checks are
        left to M(hardened.openresty.lua_sandbox_verify).
    type: str
    choices: [none, low, medium, high]
    default: none
  lua_policy:
    description:
      - Overrides of the verifier's policy (the same keys as the O(hardened.openresty.lua_sandbox_verify#module:policy)
        option of M(hardened.openresty.lua_sandbox_verify)), used with O(lua_fail_on).
    type: dict
    default: {}
extends_documentation_fragment:
  - hardened.openresty.attributes
  - hardened.openresty.attributes.binary
  - hardened.openresty.attributes.nginx_group
attributes:
  check_mode:
    support: full
    details: >-
      Changes nothing on the host: the staged copy is read with the include, code-loading and
      Lua checks, but C(nginx -t) does not run, because it creates the log files, pid file and
      temporary directories the configuration names; RV(nginx_test_output) says what would be
      tested. An interrupted install is reported in RV(recovered) but not rolled back.
      On a host where the binary is not installed yet (a first run in check mode), the files
      are compared with O(conf_dir) and reported (with their diff) without any test.
  diff_mode:
    support: full
notes:
  - Runs C(nginx -t) as the connecting user; use C(become) so that nginx can read the
    certificates and open the log files that the configuration names.
seealso:
  - module: hardened.openresty.nginx_reload
"""

EXAMPLES = r"""
- name: Install the site and the Lua hardening include, tested together
  hardened.openresty.nginx_config:
    conf_dir: /etc/nginx
    files:
      - path: conf.d/lua-hardening.conf
        content: "{{ lookup('ansible.builtin.template', 'lua-hardening.conf.j2') }}"
      - path: sites-enabled/default
        state: absent
  register: server_config
  notify: hardened_openresty_reload

- name: Install a site, refusing any configuration that weakens the Lua hardening
  hardened.openresty.nginx_config:
    conf_dir: /etc/nginx
    files:
      - path: sites-enabled/app
        content: "{{ lookup('ansible.builtin.template', 'app.conf.j2') }}"
    lua_fail_on: high
    lua_policy:
      socket_read_timeout_max: 5s

- name: Put the previous configuration back
  hardened.openresty.nginx_config:
    restore_from: "{{ server_config.backup_dir }}"
  when: server_config.backup_dir is not none
"""

RETURN = r"""
changed_requires:
  description:
    - Why the change needs a new master (a restart) instead of a reload, one sentence per
      reason; empty when a reload applies all of it. Today that is a changed C(ipv6only) of
      an IPv6 C(listen) address that stays, because on a reload the master keeps the socket it
      holds, bound with the old value. A resized C(lua_shared_dict), a new C(user) or
      C(load_module) take effect on a reload and are not listed.
    - The server role's handler restarts when this is not empty.
  returned: always
  type: list
  elements: str
  sample: ["listen [::]:443: ipv6only on -> off (a reload keeps the socket the master holds)"]
changed_files:
  description: Live paths that were (or in check mode would be) written, removed or restored.
  returned: always
  type: list
  elements: str
  sample: [/etc/nginx/conf.d/lua-hardening.conf]
backup_dir:
  description: Backup directory of this run, to pass to O(restore_from); null when nothing changed.
  returned: always
  type: str
  sample: /var/lib/hardened-openresty/config-backups/20250101T120000Z-123456
backups:
  description: For each changed file, where its previous version was saved (null when it was new).
  returned: always
  type: list
  elements: dict
  contains:
    path:
      description: Live path.
      type: str
    backup:
      description: Saved copy, or null.
      type: str
  sample: [{path: /etc/nginx/conf.d/lua-hardening.conf, backup: null}]
nginx_test_output:
  description: What C(nginx -t) printed, with staging paths shown as live paths. Empty when
    nothing changed and no test ran. In check mode, the command that would have run and
    why it did not.
  returned: always
  type: str
  sample: "nginx: configuration file /etc/nginx/nginx.conf test is successful"
pruned_backups:
  description: Old backup directories removed because of O(backup_keep).
  returned: always
  type: list
  elements: str
  sample: []
lua_findings:
  description:
    - The verifier's findings at or above O(lua_fail_on) in the tested tree (a non-empty
      list fails the task). Empty when O(lua_fail_on=none).
  returned: always
  type: list
  elements: dict
  sample: [{rule: lua-code-cache-off, severity: high, message: lua_code_cache is off,
            file: /etc/nginx/conf.d/debug.conf, line: 3}]
recovered:
  description:
    - Installs of earlier runs that were killed half way and whose previous files this run
      put back (in check mode, would put back) before doing anything else.
  returned: always
  type: list
  elements: dict
  contains:
    backup_dir:
      description: Backup directory of the interrupted install.
      type: str
    conf_dir:
      description: Configuration directory it was installing into.
      type: str
    restored:
      description: Live paths that were put back or removed.
      type: list
      elements: str
  sample: []
unmanaged:
  description:
    - Live paths of files in O(owned_dirs) that no entry of O(files) names. Those of a
      directory with O(owned_dirs[].purge=true) are removed by this change and are also in
      RV(changed_files).
  returned: always
  type: list
  elements: str
  sample: [/etc/nginx/conf.d/old-app.conf]
diff:
  description: Before and after text of each changed file (shown with C(--diff)).
  returned: when diff mode is on and files change
  type: list
  elements: dict
"""

import os
import re
import shutil
import tempfile

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.hardened.openresty.plugins.module_utils.lua_rules import FAIL_ON_CHOICES
from ansible_collections.hardened.openresty.plugins.module_utils import nginx_binary
from ansible_collections.hardened.openresty.plugins.module_utils.nginx_service import resolve_paths
from ansible_collections.hardened.openresty.plugins.module_utils import staged_config
from ansible_collections.hardened.openresty.plugins.module_utils.staged_config import ConfigError

_OCTAL = re.compile(r"^0?[0-7]{3,4}$")
NOT_INSTALLED = ("not run in check mode: %s is not installed yet; once it is, the files are tested with "
                 "nginx -t and the Lua rules before they are installed")
# (uid, gid) of every file installed: root:root. Tests that do not run as root set their own.
OWNER = (0, 0)

ARGUMENT_SPEC = dict(
    conf_dir=dict(type="path"),
    main_config=dict(type="str", default="nginx.conf"),
    binary=dict(type="path"),
    files=dict(
        type="list",
        elements="dict",
        options=dict(
            path=dict(type="str", required=True),
            content=dict(type="str"),
            mode=dict(type="raw", default="0644"),
            state=dict(type="str", choices=["present", "absent"], default="present"),
        ),
    ),
    owned_dirs=dict(
        type="list",
        elements="dict",
        default=[],
        options=dict(path=dict(type="str", required=True), purge=dict(type="bool", default=False),
                     keep=dict(type="list", elements="str", default=[])),
    ),
    backup_root=dict(type="path", default="/var/lib/hardened-openresty/config-backups"),
    backup_keep=dict(type="int", default=10),
    restore_from=dict(type="path"),
    lua_fail_on=dict(type="str", choices=list(FAIL_ON_CHOICES), default="none"),
    lua_policy=dict(type="dict", default={}),
)


def _mode(spec):
    value = spec["mode"]
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and _OCTAL.match(value):
        return int(value, 8)
    raise ConfigError("files: mode %r of %s is not an octal mode such as '0644'" % (value, spec["path"]))


def _files(params, conf_dir, result):
    """The files to install, with the unmanaged files of purged owned_dirs to remove."""
    files = []
    for spec in params["files"]:
        if spec["state"] == "present" and spec["content"] is None:
            raise ConfigError("files: %s has state present but no content" % spec["path"])
        files.append(dict(spec, mode=_mode(spec)))
    managed = [spec["path"] for spec in files]
    owned = params["owned_dirs"]
    unmanaged = staged_config.unmanaged_files(conf_dir, owned, managed)
    result["unmanaged"] = [os.path.join(conf_dir, path) for path in unmanaged]
    purged = staged_config.unmanaged_files(conf_dir, [d for d in owned if d["purge"]], managed)
    return files + [dict(path=path, state="absent", content=None, mode=0o644) for path in purged]


class _Binary(object):
    """The nginx binary: runs commands, reads `-V` once when something needs it."""

    def __init__(self, module, path):
        self.module = module
        self.path = path
        self._facts = None

    def run(self, argv):
        return self.module.run_command(argv)

    def facts(self):
        if self._facts is None:
            try:
                self._facts = nginx_binary.version_facts(self.run, self.path)
            except nginx_binary.NginxBinaryError as exc:
                raise ConfigError(str(exc))
        return self._facts

    def gate_args(self):
        facts = self.facts()
        return dict(prefix=facts.get("prefix"), module_dir=facts.get("modules_path"))


def _restore(module, binary, conf_dir, result):
    params = module.params
    restored = staged_config.restore(conf_dir, params["restore_from"], check_mode=module.check_mode)
    result.update(changed=bool(restored), changed_files=[os.path.join(conf_dir, p) for p in restored],
                  backup_dir=params["restore_from"])
    if restored and not module.check_mode:
        own = [e["path"] for e in staged_config.read_manifest(params["restore_from"])["files"]]
        ok, result["nginx_test_output"] = staged_config.check_restored(
            binary.run, binary.path, conf_dir, params["main_config"], own, **binary.gate_args())
        if not ok:
            raise ConfigError("the restored configuration fails nginx -t: %s" % result["nginx_test_output"])


def _change(module, binary, conf_dir, result):
    params = module.params
    main_config = params["main_config"]
    files = _files(params, conf_dir, result)
    changes = staged_config.plan(conf_dir, files, main_config=main_config, owner=OWNER)
    if not changes:
        lua_prefix = binary.facts().get("prefix") if params["lua_fail_on"] != "none" else None
        staged_config.refuse_weak_lua(os.path.join(conf_dir, main_config), params["lua_fail_on"],
                                      params["lua_policy"], lua_prefix, conf_dir=conf_dir)
        return
    result["changed_files"] = [os.path.join(conf_dir, c["path"]) for c in changes]
    if module._diff:
        result["diff"] = staged_config.diff(conf_dir, changes)
    workdir = tempfile.mkdtemp(prefix="nginx-config-")
    try:
        test = staged_config.validate_change(
            conf_dir, changes, workdir, binary.run, binary.path, main_config, own=[f["path"] for f in files],
            lua_fail_on=params["lua_fail_on"], lua_policy=params["lua_policy"], run_test=not module.check_mode,
            **binary.gate_args())
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    result["nginx_test_output"] = test["output"]
    if not test["ok"]:
        raise ConfigError("nginx -t rejected the new configuration; nothing was changed: %s" % test["output"])
    result["changed"] = True
    result["changed_requires"] = staged_config.changed_requires(conf_dir, main_config, test["config"])
    if module.check_mode:
        return
    result["backup_dir"] = staged_config.new_backup_dir(params["backup_root"])
    try:
        result["backups"] = staged_config.install(conf_dir, changes, result["backup_dir"], owner=OWNER)
    except staged_config.InstallError:
        raise
    except (ConfigError, OSError) as exc:
        raise ConfigError("installing the configuration failed and the previous files were restored from %s: %s"
                          % (result["backup_dir"], exc))
    result["pruned_backups"] = staged_config.prune_backups(params["backup_root"], params["backup_keep"],
                                                           current=result["backup_dir"])


def _preview_before_install(module, binary_path, result):
    """Check mode on a host where nginx is not installed yet: what would be written, untested."""
    params = module.params
    if params["restore_from"] or not params["conf_dir"]:
        raise ConfigError("%s is not installed: check mode can only preview files with conf_dir set" % binary_path)
    conf_dir = params["conf_dir"]
    changes = staged_config.plan(conf_dir, _files(params, conf_dir, result), main_config=params["main_config"],
                                 owner=OWNER)
    result.update(changed=bool(changes), changed_files=[os.path.join(conf_dir, c["path"]) for c in changes],
                  nginx_test_output=NOT_INSTALLED % binary_path)
    if module._diff:
        result["diff"] = staged_config.diff(conf_dir, changes)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, mutually_exclusive=[["files", "restore_from"]],
                           required_one_of=[["files", "restore_from"]], supports_check_mode=True)
    params = module.params
    result = dict(changed=False, changed_files=[], backup_dir=None, backups=[], nginx_test_output="",
                  pruned_backups=[], lua_findings=[], recovered=[], unmanaged=[], changed_requires=[])
    try:
        binary = _Binary(module, nginx_binary.find_binary(params["binary"], module.get_bin_path))
    except nginx_binary.NginxBinaryError as exc:
        if not module.check_mode:
            module.fail_json(msg=str(exc))
        binary = _Binary(module, params["binary"] or "nginx")
    try:
        if module.check_mode and not os.path.isfile(binary.path):
            _preview_before_install(module, binary.path, result)
            module.exit_json(**result)
        conf_dir = staged_config.conf_dir_of(params["conf_dir"], params["restore_from"],
                                             lambda: resolve_paths(binary.facts())["conf_path"])
        if module.check_mode:
            result["recovered"] = staged_config.recover_interrupted(params["backup_root"], check_mode=True)
            (_restore if params["restore_from"] else _change)(module, binary, conf_dir, result)
        else:
            with staged_config.backup_lock(params["backup_root"]):
                result["recovered"] = staged_config.recover_interrupted(params["backup_root"])
                (_restore if params["restore_from"] else _change)(module, binary, conf_dir, result)
    except staged_config.LuaPolicyError as exc:
        result["lua_findings"] = exc.findings
        module.fail_json(msg=str(exc), **result)
    except ConfigError as exc:
        module.fail_json(msg=str(exc), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
