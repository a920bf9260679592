# -*- coding: utf-8 -*-
# Copyright: hardened.openresty contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters that run the roles' input checks on the controller, before any host changes."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.hardened.openresty.plugins.module_utils import role_input


class FilterModule(object):
    def filters(self):
        return {
            "server_input_errors": role_input.server_input_errors,
            "lua_app_input_errors": role_input.lua_app_input_errors,
        }
