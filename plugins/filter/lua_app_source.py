# -*- coding: utf-8 -*-
# Copyright: hardened.openresty contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read a Lua application source on the controller: its files and content digest, and the
files themselves when the source is small enough to travel with the build call."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleFilterError

from ansible_collections.hardened.openresty.plugins.module_utils.lua_release import scan_source, source_content


def lua_app_source_manifest(path):
    source = scan_source(path)
    if source["problems"]:
        raise AnsibleFilterError("lua_app_src: %r: %s" % (path, "; ".join(source["problems"])))
    return {"kind": source["kind"], "files": source["files"], "digest": source["digest"]}


def lua_app_source_content(path, limit):
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
        raise AnsibleFilterError("lua_app_source_content: the limit %r is not a number of bytes" % (limit,))
    return source_content(path, limit)


class FilterModule(object):
    def filters(self):
        return {"lua_app_source_manifest": lua_app_source_manifest,
                "lua_app_source_content": lua_app_source_content}
