# -*- coding: utf-8 -*-
# Copyright: hardened.openresty contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter that proves from the lua_app status server's answer that every worker runs a release."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.hardened.openresty.plugins.module_utils import release_proof


class FilterModule(object):
    def filters(self):
        return {"release_proof": release_proof.release_proof}
