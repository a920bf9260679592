# -*- coding: utf-8 -*-
# Copyright: hardened.openresty contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The attributes every module of the collection documents, written once.

A module names this fragment and states only its own support (and details) of check and
diff mode; the descriptions and the platform come from here. The modules that run the nginx
binary also name attributes.nginx_group, their action group.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):

    DOCUMENTATION = r"""
options: {}
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
  platform:
    description: Target OS/families that can be operated against.
    support: N/A
    platforms: posix
"""

    # The modules of the action group hardened.openresty.nginx (meta/runtime.yml).
    NGINX_GROUP = r"""
options: {}
attributes:
  action_group:
    description: >-
      Use C(group/hardened.openresty.nginx) in C(module_defaults) to set O(binary) once for
      every module of the group. A group's defaults go to each of its modules, so give the
      group only O(binary), which they all take, and other defaults per module.
    support: full
    membership:
      - hardened.openresty.nginx
"""

    # The option binary as nginx_config and nginx_reload take it (nginx_binary.find_binary).
    BINARY = r"""
options:
  binary:
    description:
      - Path of the nginx binary.
      - Default is C(openresty), else C(nginx), looked up on the path, in the sbin directories,
        C(/usr/local/openresty/bin) and C(/usr/local/openresty/nginx/sbin).
    type: path
"""
