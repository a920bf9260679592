# -*- coding: utf-8 -*-
# Copyright: hardened.openresty contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Changes of a configuration that a reload does not apply, found by comparing two trees.

On SIGHUP the master keeps every listening socket whose address the new configuration lists
again (ngx_init_cycle matches them by address only) and re-applies only some options to it
(backlog, buffers, keepalive, deferred, fastopen, an added reuseport). `ipv6only` is set
before bind(): a socket the master already holds keeps the value it was bound with, so a
reload silently leaves `[::]:port` refusing (or accepting) IPv4. tests/oracle asks the real
nginx of each distribution and fails when a binary starts applying it.

What a reload does apply, asked of the same binaries: a resized lua_shared_dict (a new zone,
emptied), a new worker user and a new load_module; those are not listed here, nor is a new
backlog, which ngx_init_cycle re-applies to the socket it keeps.

Plain functions over nginx_parser.NginxConfig trees, standard library only.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.hardened.openresty.plugins.module_utils.nginx_values import c_string

# Where a listen directive opens a socket: http and stream servers.
_SERVER_CONTEXTS = (("http", "server"), ("stream", "server"))


def _address(arg):
    """The address of a listen argument as nginx compares sockets, for IPv6 addresses only
    (ipv6only means nothing elsewhere); None for any other address."""
    text = c_string(arg).lower()
    return text if text.startswith("[") else None


def ipv6only_of(config):
    """{address: "on" or "off"} for every IPv6 listen address of the tree (nginx's default
    is on); the value a listen of the address states wins over the ones that state none."""
    found = {}
    for node, context in config.walk():
        if node.directive != "listen" or context[-2:] not in _SERVER_CONTEXTS or not node.args:
            continue
        address = _address(node.args[0])
        if address is None:
            continue
        stated = [c_string(arg)[len("ipv6only="):] for arg in node.args[1:] if c_string(arg).startswith("ipv6only=")]
        if stated:
            found[address] = stated[-1]
        else:
            found.setdefault(address, "on")
    return found


def changed_requires(live, staged):
    """Why the change from the live tree to the staged one needs a new master (a restart),
    one sentence per reason; empty when a reload applies all of it."""
    before, after = ipv6only_of(live), ipv6only_of(staged)
    return ["listen %s: ipv6only %s -> %s (a reload keeps the socket the master holds)"
            % (address, before[address], after[address])
            for address in sorted(set(before) & set(after)) if before[address] != after[address]]
