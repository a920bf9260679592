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

import os
import posixpath
import re

from ansible_collections.hardened.openresty.plugins.module_utils.lua_names import LUA_NAMES
from ansible_collections.hardened.openresty.plugins.module_utils.lua_release import (
    MODULE_NAME,
    module_path_candidates,
    release_id_errors,
    scan_source,
)
from ansible_collections.hardened.openresty.plugins.module_utils.lua_rules import DEFAULT_POLICY, FAIL_ON_CHOICES
from ansible_collections.hardened.openresty.plugins.module_utils.lua_rules_tls import (
    LEGACY_SSL_PROTOCOLS,
    MODERN_SSL_PROTOCOLS,
)
from ansible_collections.hardened.openresty.plugins.module_utils.nginx_values import (
    format_seconds,
    parse_duration,
    parse_size,
)

FLAVORS = ("debian", "openresty", "none")

# The role refuses what the verifier's default policy would report: one table of limits,
# lua_rules.DEFAULT_POLICY, for the input check, the verifier and the pre-install gate.
SOCKET_TIMEOUT_MAX = dict(
    ("server_lua_socket_%s_timeout" % kind, parse_duration(DEFAULT_POLICY["socket_%s_timeout_max" % kind]))
    for kind in ("connect", "send", "read", "keepalive"))
# How long old workers may drain after a reload: long enough for a slow request, short
# enough that an old generation (and the code it cached) does not live on for hours.
WORKER_SHUTDOWN_TIMEOUT_MAX = 600
REGEX_MATCH_LIMIT_MAX = DEFAULT_POLICY["regex_match_limit_max"]
REGEX_CACHE_MAX_ENTRIES_MAX = DEFAULT_POLICY["regex_cache_max_entries_max"]

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


# nginx refuses a limit_req_zone/limit_conn_zone smaller than 8 pages.
LIMIT_ZONE_SIZE_MIN = 32 * 1024
# Below this a MemoryMax is a typo (512K for 512M) rather than a limit nginx can live with.
SYSTEMD_MEMORY_MIN = 32 * 1024 ** 2
METRICS_INTERVAL_MAX = 60

_LIMIT_KEY = re.compile(r"^(\$[A-Za-z_][A-Za-z0-9_]*)+$")
_LIMIT_RATE = re.compile(r"^([1-9][0-9]*)r/[sm]$")
_METRICS_PATH = re.compile(r"^/[A-Za-z0-9._~/-]*$")
_LUA_MODULE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_SYSTEMD_SIZE = re.compile(r"^([0-9]+)([KMGT]?)$")
_SYSTEMD_SIZE_FACTORS = {"": 1, "K": 1024, "M": 1024 ** 2, "G": 1024 ** 3, "T": 1024 ** 4}
_PERCENT = re.compile(r"^([0-9]+)%$")
# Location the metrics endpoint reads connection numbers from (see the metrics template).
STUB_STATUS_PATH = LUA_NAMES["stub_status_path"]


def ssl_protocols_errors(name, value):
    """Messages for a lua_ssl_protocols value: known names only, nothing older than TLSv1.2.

    None (the variable not given) is not an error; an empty value is, because nginx would
    refuse the directive without arguments.
    """
    if value is None:
        return []
    if not isinstance(value, str) or not value.split():
        return ["%s: %r must be protocol names separated by spaces, such as 'TLSv1.2 TLSv1.3'"
                % (name, value)]
    errors = []
    for protocol in value.split():
        if protocol in LEGACY_SSL_PROTOCOLS:
            errors.append("%s: %r allows %s, which is older than TLSv1.2; use TLSv1.2 and/or TLSv1.3"
                          % (name, value, protocol))
        elif protocol not in MODERN_SSL_PROTOCOLS:
            errors.append("%s: %r: %r is not a protocol lua_ssl_protocols knows (%s)"
                          % (name, value, protocol, " ".join(LEGACY_SSL_PROTOCOLS + MODERN_SSL_PROTOCOLS)))
    return errors


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


def _systemd_memory(name, value):
    """(errors, comparable) for a MemoryMax/MemoryHigh value; comparable is
    ("bytes", n) or ("percent", n), or None for infinity or an error."""
    text = str(value) if _is_int(value) else value
    if not isinstance(text, str):
        text = ""
    if text == "infinity":
        return [], None
    size, percent = _SYSTEMD_SIZE.match(text), _PERCENT.match(text)
    if size:
        amount = int(size.group(1)) * _SYSTEMD_SIZE_FACTORS[size.group(2)]
        if amount < SYSTEMD_MEMORY_MIN:
            return ["%s: %r is below the minimum 32M (a typo such as 512K for 512M?)" % (name, value)], None
        return [], ("bytes", amount)
    if percent and 0 < int(percent.group(1)) <= 100:
        return [], ("percent", int(percent.group(1)))
    return ["%s: %r is not a systemd size (e.g. 512M, 2G, 80%%, infinity)" % (name, value)], None


def _systemd_errors(values):
    errors = []
    limits = {}
    for name in ("server_systemd_memory_max", "server_systemd_memory_high"):
        value = values.get(name)
        if value not in (None, ""):
            problems, limits[name] = _systemd_memory(name, value)
            errors.extend(problems)
    high, top = limits.get("server_systemd_memory_high"), limits.get("server_systemd_memory_max")
    if high and top and high[0] == top[0] and high[1] > top[1]:
        errors.append("server_systemd_memory_high: %r is above server_systemd_memory_max %r; "
                      "reclaim would never start before the hard limit"
                      % (values["server_systemd_memory_high"], values["server_systemd_memory_max"]))

    tasks = values.get("server_systemd_tasks_max")
    if tasks not in (None, ""):
        text = str(tasks) if _is_int(tasks) else tasks
        percent = _PERCENT.match(text) if isinstance(text, str) else None
        workers = values.get("server_worker_processes")
        workers = int(workers) if isinstance(workers, (int, str)) and str(workers).isdigit() else None
        if isinstance(text, str) and text.isdigit():
            # The master and one cache or helper process on top of the workers.
            needed = max(workers or 0, 1) + 2
            if int(text) < needed:
                errors.append("server_systemd_tasks_max: %r is below %d, the processes nginx needs "
                              "(master, workers, a helper)" % (tasks, needed))
        elif not (text == "infinity" or percent and 0 < int(percent.group(1)) <= 100):
            errors.append("server_systemd_tasks_max: %r is not a number of tasks, a percentage "
                          "or infinity" % (tasks,))

    quota = values.get("server_systemd_cpu_quota")
    if quota not in (None, ""):
        match = _PERCENT.match(quota) if isinstance(quota, str) else None
        if not match or int(match.group(1)) == 0:
            errors.append("server_systemd_cpu_quota: %r is not a CPU quota such as 50%% or 200%% "
                          "(100%% is one core)" % (quota,))
    return errors


def _limit_errors(values):
    errors = []
    key = values.get("server_limit_key")
    if "server_limit_key" in values and not (isinstance(key, str) and _LIMIT_KEY.match(key)):
        errors.append("server_limit_key: %r is not one or more nginx variables such as "
                      "$binary_remote_addr" % (key,))
    rate = values.get("server_limit_req_rate")
    if "server_limit_req_rate" in values and not (isinstance(rate, str) and _LIMIT_RATE.match(rate)):
        errors.append("server_limit_req_rate: %r is not an nginx rate such as 10r/s or 600r/m" % (rate,))
    burst = values.get("server_limit_req_burst")
    if "server_limit_req_burst" in values and not (_is_int(burst) and burst >= 0):
        errors.append("server_limit_req_burst: %r must be an integer of at least 0" % (burst,))
    conn = values.get("server_limit_conn")
    if "server_limit_conn" in values and not (_is_int(conn) and conn > 0):
        errors.append("server_limit_conn: %r must be a positive integer" % (conn,))
    for name in ("server_limit_req_zone_size", "server_limit_conn_zone_size"):
        if name not in values:
            continue
        try:
            size = parse_size(values[name])
        except ValueError:
            errors.append("%s: %r is not an nginx size (examples: 1m, 512k)" % (name, values[name]))
            continue
        if size < LIMIT_ZONE_SIZE_MIN:
            errors.append("%s: %r is below 32k, which nginx refuses as too small" % (name, values[name]))
    status = values.get("server_limit_status")
    if "server_limit_status" in values and not (_is_int(status) and 400 <= status <= 599):
        errors.append("server_limit_status: %r is not an HTTP error status (400-599)" % (status,))
    return errors


def _metrics_errors(values):
    errors = []
    port = values.get("server_metrics_port")
    if "server_metrics_port" in values:
        if not (_is_int(port) and 0 < port < 65536):
            errors.append("server_metrics_port: %r is not a TCP port (1-65535)" % (port,))
        elif port == values.get("server_listen"):
            errors.append("server_metrics_port: %r is also server_listen; the metrics server "
                          "needs a port of its own" % (port,))
    path = values.get("server_metrics_path")
    if "server_metrics_path" in values:
        if not (isinstance(path, str) and _METRICS_PATH.match(path)) or "//" in path:
            errors.append("server_metrics_path: %r is not an absolute URI path of letters, digits "
                          "and ._~/-" % (path,))
        elif path == STUB_STATUS_PATH:
            errors.append("server_metrics_path: %r is the internal location the endpoint reads "
                          "connection numbers from" % (path,))
    interval = values.get("server_metrics_interval")
    if "server_metrics_interval" in values and not (_is_int(interval) and 0 < interval <= METRICS_INTERVAL_MAX):
        errors.append("server_metrics_interval: %r must be a whole number of seconds from 1 to %d"
                      % (interval, METRICS_INTERVAL_MAX))
    return errors


def _overlaps(a, b):
    """One of the two directories is the other or lies below it."""
    a, b = a.rstrip("/"), b.rstrip("/")
    return a == b or a.startswith(b + "/") or b.startswith(a + "/")


def _service_writable_root_errors(values):
    """Search-path roots that overlap a path the service may write (ReadWritePaths).

    server_writable_paths is the flavour's writable_paths (known once its layout is loaded).
    A root below such a path can be written by the workers; a root above one searches it
    (require("nginx.x") would load <root>/nginx/x.lua). Ownership on the host is checked by
    sealed_tree (state=checked) before anything changes.
    """
    writable = values.get("server_writable_paths") or []
    if not isinstance(writable, list):
        return []
    errors = []
    for list_name in ("server_lua_module_roots", "server_lua_app_roots", "server_lua_library_roots"):
        roots = values.get(list_name) or []
        if not isinstance(roots, list):
            continue
        for index, root in enumerate(roots):
            if not isinstance(root, str):
                continue
            hits = [w for w in writable if isinstance(w, str) and w.startswith("/") and _overlaps(root, w)]
            if hits:
                errors.append("%s[%d]: %r is writable by the nginx service (ReadWritePaths %s); a Lua "
                              "search path must be writable by root only"
                              % (list_name, index, root, " ".join(hits)))
    return errors


_SITE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
SITE_KEYS = ("name", "template", "content", "state", "enabled")


def _site_errors(index, site, seen):
    name = "server_sites[%d]" % index
    if not isinstance(site, dict):
        return ["%s: %r is not a dict with name and template or content" % (name, site)]
    errors = ["%s: unknown key %r (known: %s)" % (name, key, ", ".join(SITE_KEYS))
              for key in sorted(site, key=str) if key not in SITE_KEYS]
    site_name = site.get("name")
    if not (isinstance(site_name, str) and _SITE_NAME.match(site_name) and ".." not in site_name):
        errors.append("%s.name: %r is not a site name: letters, digits, '.', '_' and '-', starting with a "
                      "letter or digit, at most 64 characters, no '..'" % (name, site_name))
    elif site_name in seen:
        errors.append("%s.name: %r is used by server_sites[%d] too" % (name, site_name, seen[site_name]))
    else:
        seen[site_name] = index
    state = site.get("state", "present")
    if state not in ("present", "absent"):
        errors.append("%s.state: %r is not present or absent" % (name, state))
    if not isinstance(site.get("enabled", True), bool):
        errors.append("%s.enabled: %r is not a boolean" % (name, site.get("enabled")))
    given = [key for key in ("template", "content") if site.get(key) is not None]
    if state == "present" and len(given) != 1:
        errors.append("%s: give exactly one of template and content (given: %s)"
                      % (name, ", ".join(given) or "neither"))
    for key in given:
        if not isinstance(site[key], str) or "\x00" in site[key]:
            errors.append("%s.%s: %r is not text" % (name, key, site[key]))
    return errors


def _sites_errors(values):
    """server_sites, server_http_snippets, server_purge_unmanaged: shapes and names only; what the
    files say is for nginx -t and the Lua gate."""
    errors = []
    sites = values.get("server_sites")
    if sites is not None and not isinstance(sites, list):
        errors.append("server_sites: %r is not a list of sites" % (sites,))
    elif sites:
        seen = {}
        for index, site in enumerate(sites):
            errors.extend(_site_errors(index, site, seen))
    snippets = values.get("server_http_snippets")
    if snippets is not None and not isinstance(snippets, list):
        errors.append("server_http_snippets: %r is not a list of directives" % (snippets,))
    elif snippets:
        for index, snippet in enumerate(snippets):
            if not isinstance(snippet, str) or not snippet.strip() or "\x00" in snippet:
                errors.append("server_http_snippets[%d]: %r is not a directive" % (index, snippet))
    purge = values.get("server_purge_unmanaged", False)
    if not isinstance(purge, bool):
        errors.append("server_purge_unmanaged: %r is not a boolean" % (purge,))
    return errors


def server_input_errors(values):
    """Check the `server` role's variables (a dict of name -> value). Return messages."""
    errors = []
    flavor = values.get("server_flavor")
    if flavor not in FLAVORS:
        errors.append("server_flavor: %r is not one of %s" % (flavor, ", ".join(FLAVORS)))
    if "server_lua_fail_on" in values and values["server_lua_fail_on"] not in FAIL_ON_CHOICES:
        errors.append("server_lua_fail_on: %r is not one of %s"
                      % (values["server_lua_fail_on"], ", ".join(FAIL_ON_CHOICES)))

    for list_name in ("server_lua_module_roots", "server_lua_app_roots", "server_lua_library_roots"):
        roots = values.get(list_name) or []
        if not isinstance(roots, list):
            errors.append("%s: %r is not a list of directories" % (list_name, roots))
            continue
        for index, root in enumerate(roots):
            errors.extend(absolute_dir_errors("%s[%d]" % (list_name, index), root))
    errors.extend(_service_writable_root_errors(values))
    if "server_lua_module_roots" in values and not values["server_lua_module_roots"]:
        errors.append("server_lua_module_roots: %r is empty; the role installs its Lua helpers "
                      "in the first root" % (values["server_lua_module_roots"],))
    all_roots = list(values.get("server_lua_module_roots") or []) + list(values.get("server_lua_app_roots") or [])
    if len(set(all_roots)) != len(all_roots):
        errors.append("server_lua_module_roots/server_lua_app_roots: %r lists a directory twice" % (all_roots,))

    for name, maximum in sorted(SOCKET_TIMEOUT_MAX.items()):
        if name in values:
            errors.extend(_duration_errors(name, values[name], maximum))
    if "server_worker_shutdown_timeout" in values:
        errors.extend(_duration_errors("server_worker_shutdown_timeout", values["server_worker_shutdown_timeout"],
                                       WORKER_SHUTDOWN_TIMEOUT_MAX))

    # Only what is given is checked: a partial dict (a filter's user, a test) gets no error
    # for a variable it did not pass; the role always passes all of them.
    limit = values.get("server_lua_regex_match_limit")
    if "server_lua_regex_match_limit" not in values:
        pass
    elif not _is_int(limit) or limit <= 0:
        errors.append("server_lua_regex_match_limit: %r must be a positive integer "
                      "(0 means PCRE's default of 10,000,000 steps, which does not stop ReDoS)" % (limit,))
    elif limit > REGEX_MATCH_LIMIT_MAX:
        errors.append("server_lua_regex_match_limit: %r is above the maximum %d" % (limit, REGEX_MATCH_LIMIT_MAX))

    entries = values.get("server_lua_regex_cache_max_entries")
    if "server_lua_regex_cache_max_entries" not in values:
        pass
    elif not _is_int(entries) or entries <= 0:
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

    errors.extend(ssl_protocols_errors("server_lua_ssl_protocols", values.get("server_lua_ssl_protocols")))

    listen = values.get("server_listen")
    if listen is not None and not (_is_int(listen) and 0 < listen < 65536):
        errors.append("server_listen: %r is not a TCP port (1-65535)" % (listen,))

    connections, nofile = values.get("server_worker_connections"), values.get("server_worker_rlimit_nofile")
    if _is_int(connections) and _is_int(nofile) and 0 < nofile < connections:
        errors.append("server_worker_connections: %r is above server_worker_rlimit_nofile %r "
                      "(also the service's LimitNOFILE): every connection needs a file descriptor"
                      % (connections, nofile))

    modules = values.get("server_lua_init_worker_modules")
    if modules is not None:
        if not isinstance(modules, list):
            errors.append("server_lua_init_worker_modules: %r is not a list of module names" % (modules,))
        else:
            for index, name in enumerate(modules):
                if not (isinstance(name, str) and _LUA_MODULE_NAME.match(name)):
                    errors.append("server_lua_init_worker_modules[%d]: %r is not a Lua module name "
                                  "such as myapp.worker" % (index, name))

    errors.extend(_limit_errors(values))
    errors.extend(_metrics_errors(values))
    errors.extend(_systemd_errors(values))
    errors.extend(_sites_errors(values))
    return errors


LUA_APP_POSITIVE_INTEGERS = ("lua_app_health_timeout", "lua_app_proof_timeout", "lua_app_reload_timeout")
LUA_APP_INTEGERS = ("lua_app_keep_releases", "lua_app_port", "lua_app_status_port",
                    "lua_app_inline_source_max") + LUA_APP_POSITIVE_INTEGERS
# The largest source sent with the build call: module arguments travel in one message.
INLINE_SOURCE_MAX = 16 * 1024 * 1024


def _digits_as_int(value):
    # -e name=value passes strings; the argument spec has already accepted them as int.
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return value


def _port_errors(name, value):
    if not (_is_int(value) and 0 < value < 65536):
        return ["%s: %r is not a TCP port (1-65535)" % (name, value)]
    return []


def lua_app_input_errors(values):
    """Check the `lua_app` role's variables (a dict of name -> value). Return messages.

    Runs on the controller: lua_app_src is read here, so a missing or empty source, a
    symlink that leaves the tree or a device is refused before any host changes.
    """
    errors = []
    values = dict(values)
    for name in LUA_APP_INTEGERS:
        if name in values:
            values[name] = _digits_as_int(values[name])
    src = values.get("lua_app_src")
    source = scan_source(src)
    errors.extend("lua_app_src: %r: %s" % (src, problem) for problem in source["problems"])

    version = values.get("lua_app_version")
    if version not in (None, ""):
        errors.extend(release_id_errors(version if isinstance(version, str) else str(version), "lua_app_version"))

    # Only what is given is checked (lua_app_src always): the role passes every variable, a
    # filter user or a test may pass a few.
    keep = values.get("lua_app_keep_releases")
    if "lua_app_keep_releases" in values and (not _is_int(keep) or keep < 2):
        errors.append("lua_app_keep_releases: %r must be an integer of at least 2 "
                      "(the live release and the previous one are always kept)" % (keep,))

    inline = values.get("lua_app_inline_source_max")
    if "lua_app_inline_source_max" in values and (not _is_int(inline) or not 0 <= inline <= INLINE_SOURCE_MAX):
        errors.append("lua_app_inline_source_max: %r must be a number of bytes from 0 to %d"
                      % (inline, INLINE_SOURCE_MAX))

    for name in ("lua_app_root", "lua_app_staging_dir"):
        if name in values:
            errors.extend(absolute_dir_errors(name, values[name]))
    staging = values.get("lua_app_staging_dir")
    root = values.get("lua_app_root")
    if isinstance(root, str) and isinstance(staging, str) and root and staging and (
            staging == root or staging.startswith(root.rstrip("/") + "/")):
        errors.append("lua_app_staging_dir: %r is inside lua_app_root %r; uploads must stay out of the "
                      "sealed tree" % (staging, root))

    shipped = set(f["path"] for f in source["files"])
    module = values.get("lua_app_entry_module")
    if "lua_app_entry_module" not in values:
        pass
    elif not isinstance(module, str) or not MODULE_NAME.match(module):
        errors.append("lua_app_entry_module: %r is not a Lua module name (for example app or app.main)" % (module,))
    elif source["files"] and not shipped.intersection(module_path_candidates(module)):
        errors.append("lua_app_entry_module: %r is not in lua_app_src (expected %s)"
                      % (module, " or ".join(module_path_candidates(module))))

    health = values.get("lua_app_health_path")
    if "lua_app_health_path" in values and (not isinstance(health, str) or not health.startswith("/") or any(
            ch.isspace() or ch in "\"'<>#" for ch in health)):
        errors.append("lua_app_health_path: %r is not an absolute URL path such as /health" % (health,))

    port = values.get("lua_app_port")
    status_port = values.get("lua_app_status_port")
    for name in ("lua_app_port", "lua_app_status_port"):
        if name in values:
            errors.extend(_port_errors(name, values[name]))
    if port == status_port and _is_int(port):
        errors.append("lua_app_status_port: %r is also lua_app_port" % (status_port,))

    address = values.get("lua_app_address")
    if address and not (isinstance(address, str) and re.match(r"^(\d{1,3}(\.\d{1,3}){3}|\[[0-9A-Fa-f:.]+\])$", address)):
        errors.append("lua_app_address: %r is not an IPv4 address or a bracketed IPv6 address "
                      "(empty means every address)" % (address,))

    for name in LUA_APP_POSITIVE_INTEGERS:
        if name in values and (not _is_int(values[name]) or values[name] <= 0):
            errors.append("%s: %r must be a positive integer (seconds)" % (name, values[name]))

    config = values.get("lua_app_luacheck_config")
    if config and not (isinstance(config, str) and os.path.isabs(config) and os.path.isfile(config)):
        errors.append("lua_app_luacheck_config: %r is not an absolute path of a file on the controller "
                      "(empty uses the role's config)" % (config,))
    return errors
