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
    contents are written into the copy and C(nginx -t) tests the copy. Relative includes
    resolve inside the copy, and absolute references to the configuration directory (such
    as Debian's C(include /etc/nginx/conf.d/*.conf;)) are pointed at the copy too. This is
    what a template's C(validate) with C(nginx -t -c %s) cannot do.
  - Only when the test passes is each changed file replaced atomically (owner root:root),
    after a copy of its previous version was saved in a backup directory.
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
  binary:
    description:
      - Path of the nginx binary.
      - Default is C(openresty) if it is on the path, else C(nginx).
    type: path
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
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details: The staged test still runs; it touches nothing outside a private temporary directory.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: full
  platform:
    description: Target OS/families that can be operated against.
    support: N/A
    platforms: posix
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
    nothing changed and no test ran.
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
from ansible_collections.hardened.openresty.plugins.module_utils.lua_rules import describe as describe_finding
from ansible_collections.hardened.openresty.plugins.module_utils.nginx_parser import NginxParseError
from ansible_collections.hardened.openresty.plugins.module_utils.nginx_runtime import parse_version_output
from ansible_collections.hardened.openresty.plugins.module_utils.nginx_service import resolve_paths
from ansible_collections.hardened.openresty.plugins.module_utils.staged_config import (
    ConfigError,
    diff,
    install,
    lua_policy_findings,
    new_backup_dir,
    plan,
    prune_backups,
    read_manifest,
    restore,
    run_staged_test,
    stage,
)

_OCTAL = re.compile(r"^0?[0-7]{3,4}$")


def _mode(module, spec):
    value = spec["mode"]
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and _OCTAL.match(value):
        return int(value, 8)
    module.fail_json(msg="files: mode %r of %s is not an octal mode such as '0644'" % (value, spec["path"]))


def main():
    module = AnsibleModule(
        argument_spec=dict(
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
            backup_root=dict(type="path", default="/var/lib/hardened-openresty/config-backups"),
            backup_keep=dict(type="int", default=10),
            restore_from=dict(type="path"),
            lua_fail_on=dict(type="str", choices=list(FAIL_ON_CHOICES), default="none"),
            lua_policy=dict(type="dict", default={}),
        ),
        mutually_exclusive=[["files", "restore_from"]],
        required_one_of=[["files", "restore_from"]],
        supports_check_mode=True,
    )
    params = module.params
    binary = params["binary"] or module.get_bin_path("openresty") or module.get_bin_path("nginx", required=True)
    result = dict(changed=False, changed_files=[], backup_dir=None, backups=[], nginx_test_output="",
                  pruned_backups=[], lua_findings=[])

    conf_dir = params["conf_dir"]
    if params["restore_from"] and not conf_dir:
        try:
            conf_dir = read_manifest(params["restore_from"])["conf_dir"]
        except ConfigError as exc:
            module.fail_json(msg=str(exc), **result)
    facts = {}
    if not conf_dir or params["lua_fail_on"] != "none":
        rc, out, err = module.run_command([binary, "-V"])
        if rc != 0:
            module.fail_json(msg="%s -V failed: %s" % (binary, (err or out).strip()), **result)
        facts = parse_version_output(err + out)
    if not conf_dir:
        conf_dir = os.path.dirname(resolve_paths(facts)["conf_path"])
    conf_dir = conf_dir.rstrip("/") or "/"
    if not os.path.isdir(conf_dir):
        module.fail_json(msg="conf_dir %s is not a directory" % conf_dir, **result)
    main_config = params["main_config"]

    def run(argv):
        return module.run_command(argv)

    def check_lua_policy(root, staged_root=None):
        """Fail, changing nothing, when the tree at root weakens the Lua hardening."""
        if params["lua_fail_on"] == "none":
            return
        try:
            found = lua_policy_findings(os.path.join(root, main_config), params["lua_fail_on"],
                                        policy=params["lua_policy"], prefix=facts.get("prefix"),
                                        staged_root=staged_root, conf_dir=conf_dir)
        except ValueError as exc:
            module.fail_json(msg="lua_policy: %s" % exc, **result)
        except NginxParseError as exc:
            module.fail_json(msg="cannot parse the configuration for lua_fail_on: %s" % exc, **result)
        if found:
            result["lua_findings"] = found
            module.fail_json(msg="the configuration weakens the Lua hardening (lua_fail_on=%s); nothing was "
                                 "changed: %s" % (params["lua_fail_on"], "; ".join(describe_finding(f) for f in found)),
                             **result)

    if params["restore_from"]:
        try:
            restored = restore(conf_dir, params["restore_from"], check_mode=module.check_mode)
        except ConfigError as exc:
            module.fail_json(msg=str(exc), **result)
        result.update(changed=bool(restored), changed_files=[os.path.join(conf_dir, p) for p in restored],
                      backup_dir=params["restore_from"])
        if restored and not module.check_mode:
            rc, out, err = run([binary, "-t", "-c", os.path.join(conf_dir, main_config)])
            result["nginx_test_output"] = (err + out).strip()
            if rc != 0:
                module.fail_json(msg="the restored configuration fails nginx -t: %s" % result["nginx_test_output"],
                                 **result)
        module.exit_json(**result)

    files = []
    for spec in params["files"]:
        if spec["state"] == "present" and spec["content"] is None:
            module.fail_json(msg="files: %s has state present but no content" % spec["path"], **result)
        files.append(dict(spec, mode=_mode(module, spec)))
    try:
        changes = plan(conf_dir, files, main_config=main_config)
    except ConfigError as exc:
        module.fail_json(msg=str(exc), **result)
    if not changes:
        check_lua_policy(conf_dir)
        module.exit_json(**result)

    result["changed_files"] = [os.path.join(conf_dir, c["path"]) for c in changes]
    if module._diff:
        result["diff"] = diff(conf_dir, changes)
    workdir = tempfile.mkdtemp(prefix="nginx-config-")
    try:
        staged = stage(conf_dir, changes, workdir, main_config)
        ok, output = run_staged_test(run, binary, staged, main_config, conf_dir)
        result["nginx_test_output"] = output
        if not ok:
            module.fail_json(msg="nginx -t rejected the new configuration; nothing was changed: %s" % output,
                             **result)
        check_lua_policy(staged, staged_root=staged)
    except ConfigError as exc:
        module.fail_json(msg=str(exc), **result)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    result["changed"] = True
    if module.check_mode:
        module.exit_json(**result)

    backup_dir = new_backup_dir(params["backup_root"])
    try:
        result["backups"] = install(conf_dir, changes, backup_dir)
    except (ConfigError, OSError) as exc:
        module.fail_json(msg="installing the configuration failed and the previous files were restored: %s" % exc,
                         **result)
    result["backup_dir"] = backup_dir
    result["pruned_backups"] = prune_backups(params["backup_root"], params["backup_keep"], current=backup_dir)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
