# -*- coding: utf-8 -*-
# Copyright: hardened.openresty contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Input checks for the collection's roles, as plain functions.

Each check returns a list of messages, each naming the variable and quoting its value, so
that a role can refuse bad input in one assert before it changes anything on a host.
meta/argument_specs.yml checks types first; these functions check meaning.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import posixpath

from ansible_collections.hardened.openresty.plugins.module_utils.nginx_values import (
    format_seconds,
    parse_duration,
)

FLAVORS = ("debian", "openresty", "none")

# Hard maxima for the lua_socket_* timeouts (the verifier's default policy uses the same
# numbers for connect; send/read/keepalive match the role's documented limits).
SOCKET_TIMEOUT_MAX = {
    "server_lua_socket_connect_timeout": 5,
    "server_lua_socket_send_timeout": 10,
    "server_lua_socket_read_timeout": 10,
    "server_lua_socket_keepalive_timeout": 120,
}
REGEX_MATCH_LIMIT_MAX = 100000
REGEX_CACHE_MAX_ENTRIES_MAX = 1024

# World-writable scratch space: code loaded from there can be swapped by any local user.
FORBIDDEN_ROOT_PREFIXES = ("/tmp", "/var/tmp", "/dev/shm", "/run/shm", "/dev", "/proc", "/sys")

POSITIVE_INTEGERS = (
    "server_lua_socket_pool_size",
    "server_lua_max_pending_timers",
    "server_lua_max_running_timers",
    "server_lua_ssl_verify_depth",
    "server_worker_rlimit_nofile",
    "server_worker_connections",
)


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def absolute_dir_errors(name, value):
    """Messages (at most one) for a directory that must be an absolute, normalised, safe path."""
    if not isinstance(value, str) or not value:
        return ["%s: %r is not a path" % (name, value)]
    if not value.startswith("/"):
        return ["%s: %r is not an absolute path" % (name, value)]
    if any(ch in value for ch in ";?$ \t\n\"'{}"):
        return ["%s: %r contains a character that is not allowed in a Lua search path root "
                "(';', '?', '$', quotes, braces or whitespace)" % (name, value)]
    if value == "/":
        return ["%s: %r is the filesystem root; a module root must be a dedicated directory" % (name, value)]
    if posixpath.normpath(value) != value.rstrip("/") or "//" in value:
        return ["%s: %r is not a normalised path (no '.', '..' or '//')" % (name, value)]
    for prefix in FORBIDDEN_ROOT_PREFIXES:
        if value == prefix or value.startswith(prefix + "/"):
            return ["%s: %r is under %s, which other users can write to" % (name, value, prefix)]
    return []


def _duration_errors(name, value, maximum):
    try:
        seconds = parse_duration(value)
    except ValueError:
        return ["%s: %r is not an nginx duration (examples: 500ms, 2s, 1m30s)" % (name, value)]
    if seconds <= 0:
        return ["%s: %r must be longer than 0" % (name, value)]
    if seconds > maximum:
        return ["%s: %r is longer than the maximum %s" % (name, value, format_seconds(maximum))]
    return []


def server_input_errors(values):
    """Check the `server` role's variables (a dict of name -> value). Return messages."""
    errors = []
    flavor = values.get("server_flavor")
    if flavor not in FLAVORS:
        errors.append("server_flavor: %r is not one of %s" % (flavor, ", ".join(FLAVORS)))

    for list_name in ("server_lua_module_roots", "server_lua_app_roots", "server_lua_library_roots"):
        roots = values.get(list_name) or []
        if not isinstance(roots, list):
            errors.append("%s: %r is not a list of directories" % (list_name, roots))
            continue
        for index, root in enumerate(roots):
            errors.extend(absolute_dir_errors("%s[%d]" % (list_name, index), root))
    all_roots = list(values.get("server_lua_module_roots") or []) + list(values.get("server_lua_app_roots") or [])
    if len(set(all_roots)) != len(all_roots):
        errors.append("server_lua_module_roots/server_lua_app_roots: %r lists a directory twice" % (all_roots,))

    for name, maximum in sorted(SOCKET_TIMEOUT_MAX.items()):
        if name in values:
            errors.extend(_duration_errors(name, values[name], maximum))

    limit = values.get("server_lua_regex_match_limit")
    if not _is_int(limit) or limit <= 0:
        errors.append("server_lua_regex_match_limit: %r must be a positive integer "
                      "(0 means PCRE's default of 10,000,000 steps, which does not stop ReDoS)" % (limit,))
    elif limit > REGEX_MATCH_LIMIT_MAX:
        errors.append("server_lua_regex_match_limit: %r is above the maximum %d" % (limit, REGEX_MATCH_LIMIT_MAX))

    entries = values.get("server_lua_regex_cache_max_entries")
    if not _is_int(entries) or entries <= 0:
        errors.append("server_lua_regex_cache_max_entries: %r must be a positive integer" % (entries,))
    elif entries > REGEX_CACHE_MAX_ENTRIES_MAX:
        errors.append("server_lua_regex_cache_max_entries: %r is above the maximum %d"
                      % (entries, REGEX_CACHE_MAX_ENTRIES_MAX))

    for name in POSITIVE_INTEGERS:
        if name in values and (not _is_int(values[name]) or values[name] <= 0):
            errors.append("%s: %r must be a positive integer" % (name, values[name]))

    user = values.get("server_user")
    if user in ("root", "0", 0):
        errors.append("server_user: %r: workers must not run as root" % (user,))

    cert = values.get("server_lua_ssl_trusted_certificate")
    if cert and (not isinstance(cert, str) or not cert.startswith("/")):
        errors.append("server_lua_ssl_trusted_certificate: %r is not an absolute path" % (cert,))

    listen = values.get("server_listen")
    if listen is not None and not (_is_int(listen) and 0 < listen < 65536):
        errors.append("server_listen: %r is not a TCP port (1-65535)" % (listen,))

    memory = values.get("server_systemd_memory_max")
    if memory and not (isinstance(memory, str) and (memory[:-1].isdigit() and memory[-1] in "KMGT" or memory.isdigit()
                                                    or memory.endswith("%") and memory[:-1].isdigit())):
        errors.append("server_systemd_memory_max: %r is not a systemd size (e.g. 512M, 2G, 80%%)" % (memory,))
    return errors
