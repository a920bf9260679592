# -*- coding: utf-8 -*-
# Copyright: hardened.openresty contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The names the Lua helpers, the roles' templates and the modules share: defined here only.

Shared dicts, their keys and internal locations are written in Lua code (the server role's
helpers, the release module lua_release generates), in nginx configuration (the roles'
templates) and in Python (the input check). Each is written once, in LUA_NAMES:

- Ansible reads the table through the lookup ``hardened.openresty.lua_names``: the server
  role keeps it as ``__server_lua_names`` and renders it into the Lua module
  ``hardened_names`` (templates/hardened_names.lua.j2), which it installs with its other Lua
  helpers into the first module root; the lua_app role reads the same lookup.
- Lua code never spells a name: it ``require("hardened_names")`` and uses the field.
- Python imports LUA_NAMES.

Renaming is a change of this table alone; tests/unit/test_lua_names.py renders and runs the
helpers with other names and fails if a name is written anywhere else under roles/ or
plugins/.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

LUA_NAMES = {
    # lua_shared_dict of the metrics endpoint: per-worker numbers and hardened_guard counters.
    "metrics_dict": "hardened_openresty_metrics",
    # Key prefix of each worker's published numbers in metrics_dict ("<prefix><worker id>").
    "metrics_worker_key": "worker:",
    # Key prefix in metrics_dict, followed by the pid: a worker of an earlier generation that is
    # finishing its connections after a reload (hardened_metrics counts those still running).
    "metrics_draining_key": "draining:",
    # lua_shared_dict the lua_app role declares: which release each worker loaded.
    "release_dict": "hardened_openresty_release",
    # Key prefixes in release_dict, each followed by the worker id: the release id the
    # worker loaded ("" when none), the worker's pid, and its init error ("" when none).
    "release_worker_key": "worker:",
    "release_pid_key": "pid:",
    "release_error_key": "error:",
    # Internal location with stub_status that the metrics endpoint reads by a subrequest.
    "stub_status_path": "/hardened-openresty/stub_status",
}

# What a name may hold: it is written into Lua strings and nginx directives unquoted.
NAME_VALUE = re.compile(r"^[A-Za-z0-9_:/.-]+$")
# What a field of the table may be called: a Lua identifier.
NAME_FIELD = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
