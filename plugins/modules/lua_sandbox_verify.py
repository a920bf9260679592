#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: hardened.openresty contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: lua_sandbox_verify
short_description: Prove that the Lua layer of an nginx or OpenResty server is hardened
description:
  - Reads the complete configuration nginx uses, or a saved C(nginx -T) dump of it, with a
    Lua-aware parser and checks it against a catalogue of rules about lua-nginx-module
    (module search paths, code cache, cosocket timeouts and TLS, regex limits, C(*_by_lua_file)
    paths, dangerous calls in inline Lua, the user workers run as) and about the other
    directives that load code (C(load_module), C(ssl_engine), embedded Perl, njs).
  - On a live host it reads what nginx reads, the configuration files on disk, following
    includes as nginx does, from the main file and prefix the service really uses. Those
    come from the C(-c), C(-p) and C(-g) of the unit's C(ExecStart) (C(systemctl cat), so
    drop-ins count) or, when the running master (named in the pid file) was started with
    other flags, from its command line. The C(-g) directives are read first, in the main
    context, as nginx does (their findings name the file C(nginx -g)).
  - C(nginx -T), run with the same flags, only cross-checks that reading. When it does not
    print exactly those files, the finding C(nginx-dump-mismatch) (high) names the first
    file and line that differ, and the rules still run on the files.
  - On the live host it also checks the module directories (present, not writable by
    anyone but root, sealed), the running workers (not root, not running code or
    configuration older than what is on disk).
  - Works on any host with nginx and lua-nginx-module, also ones this collection did not
    configure. Needs nothing on the target but Python's standard library. Never changes
    anything.
  - Each finding names its rule, severity, the file and line (or the path on disk) and what
    is wrong. See C(docs/rules.md) in the collection for every rule's rationale, an example
    and the fix.
  - A configuration that cannot be parsed fails the task with the file and line of the
    error; no rule is evaluated on it.
version_added: 0.1.0
author:
  - hardened.openresty contributors (!UNKNOWN)
options:
  binary:
    description:
      - The nginx binary to run with C(-V) and, as a cross-check, C(-T).
      - By default C(openresty) is looked up first, then C(nginx) (in C(PATH), the sbin
        directories and C(/usr/local/openresty/bin)).
      - With O(dump), the binary is only used (for O(prefix) and RV(versions)) when this
        option is set.
      - When no binary is found and O(config) is set, the configuration is read from disk
        starting at O(config), with includes resolved against its directory.
    type: path
  config:
    description:
      - The main configuration file, passed to the binary as C(-c).
      - Default is the C(-c) of the service (see O(service)), else the binary's compiled-in
        path (relative to the prefix, as nginx resolves it).
      - With O(dump), names the main file of a dump that has no C(# configuration file)
        markers, and the main file of a dump taken with C(-g 'include ...') (which starts
        with the files C(-g) includes).
    type: path
  prefix:
    description:
      - The server prefix, used for C($prefix) in C(lua_package_path) and for relative
        C(*_by_lua_file) and C(pid) paths. When set it is also passed to the binary as C(-p).
      - Default is the C(-p) of the service (see O(service)), else the C(--prefix) reported by
        C(<binary> -V).
    type: path
  service:
    description:
      - The systemd unit whose C(ExecStart) gives the C(-c), C(-p) and C(-g) nginx runs with
        (read with C(systemctl cat), drop-ins included). A running master started with other
        flags wins over the unit, with a warning.
      - Default is C(openresty) when the binary is OpenResty, else C(nginx). An empty string
        skips the unit; the running master's flags are still used.
      - Not used with O(dump).
    type: str
  dump:
    description:
      - Analyse this saved output of C(nginx -T) instead of running the binary.
      - "Files are delimited by C(# configuration file PATH:) lines; leading C(nginx: ...)
        lines are ignored; output without markers is read as one main file."
      - Such a line splits the dump only where nginx's include order allows it (any file
        can hold a line of that shape); otherwise the dump is read as nginx wrote it and
        the line is reported by the rule C(nginx-dump-ambiguous).
      - Includes are matched against the files in the dump like glob(3); relative
        patterns resolve against the main file's directory; an include that matches
        nothing is not an error.
      - Host checks still run when enabled; turn off O(check_filesystem) and
        O(check_processes) to analyse a dump taken on another machine.
    type: path
  check_filesystem:
    description:
      - Run the rules that inspect module directories and files on this host
        (C(lua-module-dir-missing), C(lua-module-dir-writable), C(lua-module-file-writable),
        C(lua-module-dir-not-sealed), C(lua-module-tls-verify-off), C(nginx-load-module-writable),
        C(nginx-code-path-writable-by-worker), C(lua-path-in-service-environment), and with
        O(check_processes) C(lua-stale-code-cache)).
    type: bool
    default: true
  check_processes:
    description:
      - Run the rules that inspect running nginx workers and their master (C(nginx-worker-root),
        C(lua-path-in-master-environment), and with O(check_filesystem) C(lua-stale-code-cache)).
      - Workers are those of the master named in the pid file; when it cannot be read, all
        nginx worker processes on the host.
    type: bool
    default: true
  sealed_dirs:
    description:
      - Directories that must be sealed throughout (owned by root:root, directories
        C(0555), regular files C(0444)); any deviation is a C(lua-module-dir-not-sealed)
        finding.
    type: list
    elements: path
    default: []
  policy:
    description:
      - Overrides of the policy limits. Limits are inclusive (a value equal to the maximum
        passes). Durations use nginx syntax (C(500ms), C(2s), C(1m30s); a bare number is
        seconds).
      - C(socket_connect_timeout_max) (default C(5s)), C(socket_send_timeout_max) (C(10s)),
        C(socket_read_timeout_max) (C(10s)), C(socket_keepalive_timeout_max) (C(120s)).
      - C(regex_match_limit_max) (default C(100000)), C(regex_cache_max_entries_max)
        (C(1024)).
      - C(dangerous_calls), the Lua functions inline code must not use (replaces the
        default list C(os.execute), C(os.remove), C(os.rename), C(os.exit), C(io.popen),
        C(loadstring), C(load), C(dofile), C(loadfile), C(package.loadlib), C(string.dump),
        C(setfenv), C(debug.*)). An entry is a global name, a dotted name, or a table name
        followed by C(.*).
      - An unknown key or an invalid value fails the task.
    type: dict
    default: {}
  fail_on:
    description:
      - Fail the task when a finding of this severity or higher exists; the message lists
        those findings.
      - C(none) never fails on findings.
    type: str
    choices: [none, low, medium, high]
    default: high
extends_documentation_fragment:
  - hardened.openresty.attributes
  - hardened.openresty.attributes.nginx_group
attributes:
  check_mode:
    support: full
    details: The module never changes anything; it runs the same in check mode.
  diff_mode:
    support: none
notes:
  - Running C(nginx -T) and reading configuration files, module directories and C(/proc)
    usually needs root (C(become)).
  - The files (and C(nginx -T)) are the configuration as it is on disk now, not the
    configuration the running master loaded; C(lua-stale-code-cache) reports files changed
    after the oldest worker started.
  - nginx rewrites the master's command line into one line of text; a C(-g) value is read
    from it up to the next nginx flag. The unit's C(ExecStart) is exact, and is used when
    the master's line matches it.
  - The inline Lua check is static and best-effort; it is not a sandbox. Code can still
    reach these functions indirectly (for example through the C(ffi) library).
seealso:
  - name: lua-nginx-module directives
    description: The directives these rules check, with their defaults and contexts.
    link: https://github.com/openresty/lua-nginx-module#directives
  - module: hardened.openresty.sealed_tree
    description: Seals module roots, which fixes most filesystem findings.
"""

EXAMPLES = r"""
- name: Verify the Lua hardening of this host, failing on high findings
  hardened.openresty.lua_sandbox_verify:
  become: true

- name: Verify strictly, with sealed release directories and tighter timeouts
  hardened.openresty.lua_sandbox_verify:
    fail_on: low
    sealed_dirs:
      - /srv/lua/lib
      - /srv/lua/app/releases
    policy:
      socket_read_timeout_max: 5s
      regex_match_limit_max: 50000
  become: true

- name: Audit without failing, and keep the findings
  hardened.openresty.lua_sandbox_verify:
    fail_on: none
  become: true
  register: lua_audit

- name: Show what was found
  ansible.builtin.debug:
    msg: "{{ lua_audit.summary }}: {{ lua_audit.findings | map(attribute='rule') | list }}"

- name: Check a saved nginx -T dump offline (no host checks)
  hardened.openresty.lua_sandbox_verify:
    dump: /var/tmp/web1-nginx-T.txt
    prefix: /usr/share/nginx
    check_filesystem: false
    check_processes: false
  delegate_to: localhost

- name: Verify an OpenResty installation explicitly
  hardened.openresty.lua_sandbox_verify:
    binary: /usr/local/openresty/nginx/sbin/nginx
    config: /usr/local/openresty/nginx/conf/nginx.conf
  become: true
"""

RETURN = r"""
findings:
  description: What violates the rules, high severity first, then by file and line.
  returned: always
  type: list
  elements: dict
  contains:
    rule:
      description: The rule id, such as C(lua-code-cache-off).
      type: str
    severity:
      description: C(high), C(medium) or C(low).
      type: str
    message:
      description: What is wrong, with the offending value or path.
      type: str
    file:
      description:
        - The configuration file the finding is about; for filesystem findings the path
          on disk that is wrong. Null when no file applies.
      type: str
    line:
      description: The line in C(file), or null when the finding is not about a line.
      type: int
  sample:
    - rule: lua-package-path-default-fallback
      severity: high
      message: 'lua_package_path contains ";;", which inserts the default search path (starting with ./?.lua) at that spot'
      file: /etc/nginx/conf.d/lua.conf
      line: 3
    - rule: lua-module-dir-writable
      severity: high
      message: directory /srv/lua/lib/vendor is writable by group or others (mode 0777)
      file: /srv/lua/lib/vendor
      line: null
summary:
  description: The number of findings per severity.
  returned: always
  type: dict
  contains:
    high:
      description: Number of high findings.
      type: int
    medium:
      description: Number of medium findings.
      type: int
    low:
      description: Number of low findings.
      type: int
  sample: {high: 1, medium: 2, low: 0}
passed:
  description:
    - True when no finding is at or above O(fail_on). With O(fail_on=none), true when there
      is no finding at all (the task does not fail either way).
  returned: always
  type: bool
  sample: true
versions:
  description: What C(<binary> -V) reveals. Empty when no binary was run.
  returned: always
  type: dict
  contains:
    name:
      description: C(nginx) or C(openresty).
      type: str
    version:
      description: The nginx (or OpenResty) version.
      type: str
    openresty:
      description: Whether the binary is OpenResty.
      type: bool
    lua_nginx_module:
      description: The lua-nginx-module version when the build options name it (OpenResty does; Debian's dynamic module does not).
      type: str
    luajit:
      description: The LuaJIT version when revealed.
      type: str
    pcre:
      description:
        - 1 or 2 when the build options name the library (such as an OpenResty build's
          C(pcre2) include path); C(--with-pcre-jit) alone does not tell.
        - Otherwise, with O(check_processes), the flavour a running worker maps (1 when
          C(libpcre.so.3) is loaded, which is what C(ngx.re) uses on Debian 12); null
          when neither tells.
      type: int
    luajit_library:
      description:
        - With O(check_processes), the file name of the LuaJIT library a running worker
          maps (Debian's C(nginx -V) does not name LuaJIT); null without a worker or when
          LuaJIT is linked statically.
      type: str
    prefix:
      description: The compiled-in prefix.
      type: str
    conf_path:
      description: The compiled-in main configuration path.
      type: str
    pid_path:
      description: The compiled-in pid file path.
      type: str
  sample: {name: nginx, version: 1.22.1, openresty: false, lua_nginx_module: null, luajit: null,
           pcre: 1, prefix: /usr/share/nginx, conf_path: /etc/nginx/nginx.conf, pid_path: /run/nginx.pid}
config_files:
  description: The configuration files that were analysed, main file first.
  returned: always
  type: list
  elements: str
  sample: [/etc/nginx/nginx.conf, /etc/nginx/modules-enabled/50-mod-http-lua.conf]
prefix:
  description: The prefix used for C($prefix) and relative paths, or null when unknown.
  returned: always
  type: str
  sample: /usr/share/nginx
service_flags:
  description:
    - The nginx flags of the service that the live reading honoured, and where they came
      from. Null with O(dump) or without a binary.
  returned: always
  type: dict
  contains:
    conf:
      description: The C(-c) value, or null.
      type: str
    prefix:
      description: The C(-p) value, or null.
      type: str
    params:
      description: The C(-g) value (directives read first, in the main context), or null.
      type: str
    origin:
      description: C(unit NAME), C(the running master), or null when neither gave flags.
      type: str
  sample: {conf: null, prefix: null, params: "daemon on; master_process on;", origin: unit nginx}
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.hardened.openresty.plugins.module_utils import lua_rules
from ansible_collections.hardened.openresty.plugins.module_utils import nginx_binary
from ansible_collections.hardened.openresty.plugins.module_utils import nginx_command
from ansible_collections.hardened.openresty.plugins.module_utils import nginx_parser
from ansible_collections.hardened.openresty.plugins.module_utils import nginx_runtime

PROC = "/proc"

ARGUMENT_SPEC = dict(
    binary=dict(type="path"),
    config=dict(type="path"),
    prefix=dict(type="path"),
    dump=dict(type="path"),
    check_filesystem=dict(type="bool", default=True),
    check_processes=dict(type="bool", default=True),
    sealed_dirs=dict(type="list", elements="path", default=[]),
    policy=dict(type="dict", default={}),
    fail_on=dict(type="str", choices=list(lua_rules.FAIL_ON_CHOICES), default="high"),
    service=dict(type="str"),
)


def _find_binary(module):
    try:
        return nginx_binary.find_binary(module.params["binary"], module.get_bin_path)
    except nginx_binary.NginxBinaryError:
        return None


def _versions(module, binary):
    try:
        return lua_rules.describe_versions(nginx_binary.version_text(module.run_command, binary))
    except nginx_binary.NginxBinaryError as exc:
        module.fail_json(msg=str(exc))


def _with_runtime_libraries(versions):
    """Fill what `-V` does not tell (LuaJIT, PCRE flavour) from a running worker's maps."""
    libraries = nginx_runtime.worker_libraries()
    versions = dict(versions, luajit_library=None)
    if libraries:
        versions["luajit_library"] = libraries["luajit_library"]
        if versions.get("pcre") is None:
            versions["pcre"] = libraries["pcre"]
    return versions


def _unit_argv(module, service):
    """The argv of the service unit's ExecStart (unit file and drop-ins), or None."""
    systemctl = module.get_bin_path("systemctl") if service else None
    if not systemctl:
        return None
    rc, out, _err = module.run_command([systemctl, "cat", "--", service])
    if rc != 0:
        return None
    try:
        return nginx_command.exec_start_from_unit(out)
    except ValueError as exc:
        module.warn("cannot read the ExecStart of %s: %s" % (service, exc))
        return None


def _master_argv(config, prefix, versions):
    """The argv of the running master named in the pid file, or None."""
    pid_nodes = [node for node in config.files[config.main] if node.directive == "pid" and node.args]
    path = pid_nodes[-1].args[0] if pid_nodes else versions.get("pid_path")
    if not path:
        return None
    if not os.path.isabs(path) and prefix:
        path = os.path.join(prefix, path)
    pid = nginx_runtime.read_pid_file(path)
    if pid is None:
        return None
    try:
        with open(os.path.join(PROC, str(pid), "cmdline"), "rb") as handle:
            raw = handle.read()
    except (IOError, OSError):
        return None
    argv = nginx_command.argv_from_cmdline(raw)
    return argv if argv and "nginx" in raw.decode("utf-8", "replace") else None


def _flags(module, argv, origin):
    """nginx's flags in argv, or None (with a warning) when argv is not nginx's."""
    if not argv:
        return None
    try:
        return nginx_command.flags_from_argv(argv)
    except ValueError as exc:
        module.warn("ignoring the command line of %s: %s" % (origin, exc))
        return None


def _live(module, binary, versions):
    """Read the files nginx reads with the service's flags; nginx -T cross-checks them.

    Returns (NginxConfig, prefix, cross_check, service_flags).
    """
    params = module.params
    service = params["service"]
    if service is None:
        service = "openresty" if versions.get("openresty") else "nginx"
    empty = {"conf": None, "prefix": None, "params": None}
    unit_argv = _unit_argv(module, service)
    service_flags = _flags(module, unit_argv, "the ExecStart of %s" % service)
    if service_flags is None:
        unit_argv = None
        service_flags = dict(empty)
    origin = "unit %s" % service if unit_argv else None

    def read(flags):
        wanted = dict(flags)
        if params["config"]:
            wanted["conf"] = params["config"]
        if params["prefix"]:
            wanted["prefix"] = params["prefix"]
        argv = [binary, "-T"]
        for flag, key in (("-p", "prefix"), ("-c", "conf"), ("-g", "params")):
            if wanted[key]:
                argv += [flag, wanted[key]]
        rc, out, err = module.run_command(argv, encoding=None)
        out = out.decode("utf-8", "replace")
        if rc != 0:
            message = (err.decode("utf-8", "replace") or out).strip()
            module.fail_json(msg="%s failed (rc %d): %s" % (" ".join(argv), rc, message), versions=versions)
        # nginx's own default main file is conf/nginx.conf under the prefix.
        main, full_prefix = nginx_command.effective_paths(
            wanted, versions.get("prefix"), versions.get("conf_path") or "conf/nginx.conf")
        if not main or not os.path.isabs(main):
            module.fail_json(msg="the main configuration file is unknown: set config", versions=versions)
        return nginx_parser.load_tree(main, wanted["params"]), wanted, full_prefix, out

    config, wanted, prefix, dump = read(service_flags)
    # The running master may have been started otherwise (by hand, or before a unit change).
    master_argv = _master_argv(config, prefix, versions)
    master_flags = _flags(module, master_argv, "the running master")
    if master_flags is not None:
        same = unit_argv and " ".join(unit_argv[1:]) == " ".join(master_argv[1:])
        if not same and master_flags != service_flags:
            if unit_argv:
                module.warn("the running nginx master runs with other flags (%s) than the ExecStart "
                            "of %s (%s): checking what the master runs"
                            % (" ".join(master_argv[1:]), service, " ".join(unit_argv[1:])))
            service_flags = master_flags
            origin = "the running master"
            config, wanted, prefix, dump = read(service_flags)
    prefix = wanted["prefix"] or versions.get("prefix")  # as given (nginx adds the slash)
    cross_check = lua_rules.dump_mismatches(config, dump)
    return config, prefix, cross_check, dict(service_flags, origin=origin)


def _load(module):
    """Return (NginxConfig, versions, prefix, cross_check, service flags) for the options given."""
    params = module.params
    binary = _find_binary(module) if (not params["dump"] or params["binary"]) else None
    versions = _versions(module, binary) if binary else {}
    prefix = params["prefix"] or versions.get("prefix")
    main = params["config"] or versions.get("conf_path")
    if params["dump"]:
        try:
            text = nginx_parser.read_file(params["dump"])
        except (IOError, OSError) as exc:
            module.fail_json(msg="cannot read dump %s: %s" % (params["dump"], exc))
        return nginx_parser.parse_dump(text, main), versions, prefix, None, None
    if binary:
        config, prefix, cross_check, flags = _live(module, binary, versions)
        return config, versions, prefix, cross_check, flags
    if params["config"]:
        return nginx_parser.load_tree(params["config"]), versions, prefix, None, None
    module.fail_json(msg="no openresty or nginx binary found: set binary, config or dump")


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    params = module.params
    try:
        lua_rules.make_policy(params["policy"])
    except ValueError as exc:
        module.fail_json(msg="invalid policy: %s" % exc)
    try:
        config, versions, prefix, cross_check, service_flags = _load(module)
        if versions and params["check_processes"]:
            versions = _with_runtime_libraries(versions)
        report = lua_rules.evaluate(
            config,
            policy=params["policy"],
            prefix=prefix,
            versions=versions,
            check_filesystem=params["check_filesystem"],
            check_processes=params["check_processes"],
            sealed_dirs=params["sealed_dirs"],
            cross_check=cross_check,
        )
    except nginx_parser.NginxParseError as exc:
        module.fail_json(msg="cannot parse the nginx configuration: %s" % exc,
                         parse_error=dict(file=exc.file, line=exc.line, message=exc.message))
    for warning in report["warnings"]:
        module.warn(warning)
    findings = report["findings"]
    fail_on = params["fail_on"]
    threshold = lua_rules.LOW if fail_on == "none" else fail_on
    blocking = lua_rules.at_or_above(findings, threshold)
    result = dict(
        changed=False,
        findings=findings,
        summary=report["summary"],
        passed=not blocking,
        versions=versions,
        config_files=list(config.files),
        prefix=prefix,
        service_flags=service_flags,
    )
    if blocking and fail_on != "none":
        module.fail_json(
            msg="%d finding(s) at or above %s: %s" % (len(blocking), fail_on,
                                                      "; ".join(lua_rules.describe(f) for f in blocking)),
            **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
