# -*- coding: utf-8 -*-
# Copyright: hardened.openresty contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: lua_names
author:
  - hardened.openresty contributors (!UNKNOWN)
version_added: 0.2.0
short_description: The shared dict, key and location names the collection's Lua helpers use
description:
  - Returns one dictionary of the names the Lua helpers of the C(server) role, the release
    module of the C(lua_app) role and both roles' nginx configuration share - the
    C(lua_shared_dict) names, the key prefixes in them and the internal stub_status location.
  - The roles render their configuration from it and the C(server) role installs it as the
    Lua module C(hardened_names), which every helper requires; so renaming is one change.
  - Takes no terms.
"""

EXAMPLES = r"""
- name: Fail when the metrics dict is missing from the effective configuration
  ansible.builtin.assert:
    that: ('lua_shared_dict ' ~ names.metrics_dict ~ ' ') in effective.stdout
  vars:
    names: "{{ lookup('hardened.openresty.lua_names') }}"
"""

RETURN = r"""
_raw:
  description: One dictionary, name to value.
  type: list
  elements: dict
  contains:
    metrics_dict:
      description: The metrics endpoint's C(lua_shared_dict).
      type: str
    metrics_worker_key:
      description: Key prefix of each worker's published numbers in C(metrics_dict).
      type: str
    release_dict:
      description: The C(lua_shared_dict) that records which release each worker loaded.
      type: str
    release_worker_key:
      description: Key prefix of a worker's release id in C(release_dict).
      type: str
    release_pid_key:
      description: Key prefix of a worker's pid in C(release_dict).
      type: str
    release_error_key:
      description: Key prefix of a worker's init error in C(release_dict).
      type: str
    stub_status_path:
      description: The internal location with C(stub_status) the metrics endpoint reads.
      type: str
"""

from ansible.errors import AnsibleError
from ansible.plugins.lookup import LookupBase

from ansible_collections.hardened.openresty.plugins.module_utils.lua_names import LUA_NAMES


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        if terms:
            raise AnsibleError("hardened.openresty.lua_names takes no terms, got %r" % (terms,))
        return [dict(LUA_NAMES)]
