# -*- coding: utf-8 -*-
# Copyright: hardened.openresty contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a SIGHUP really applies, asked of the real nginx and lua-nginx-module of each distro.

nginx_reload restarts instead of reloading only when the master runs a replaced binary; it
reloads for a resized lua_shared_dict and a new worker user, because a reload applies both
(the dict gets its new size and loses its contents, as it would on a restart). These tests
fail when a binary stops doing so.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.hardened.openresty.tests.oracle import harness

CONF = """\
load_module /usr/lib/nginx/modules/ndk_http_module.so;
load_module /usr/lib/nginx/modules/ngx_http_lua_module.so;
user {user};
worker_processes 1;
error_log stderr notice;
events {{}}
http {{
    lua_package_path "/usr/share/lua/5.1/?.lua";
    lua_shared_dict oracle_dict {size};
    server {{
        listen unix:/run/oracle-case.sock;
        # The marker a previous generation left, then how many 1000-byte values fit.
        location = /dict {{
            content_by_lua_block {{
                local d = ngx.shared.oracle_dict
                local marker = d:get("marker")
                local value, n = string.rep("x", 1000), 0
                while n < 100000 and d:safe_set("k" .. n, value) do
                    n = n + 1
                end
                for i = 0, n - 1 do
                    d:delete("k" .. i)
                end
                d:set("marker", "set before the reload")
                ngx.say(tostring(marker), "|", n)
            }}
        }}
    }}
}}
"""


@pytest.mark.parametrize("distro", sorted(harness.DISTROS))
def test_a_reload_resizes_a_shared_dict_empties_it_and_changes_the_worker_user(oracles, distro):
    before = {"nginx.conf": CONF.format(user="www-data www-data", size="1m")}
    after = {"nginx.conf": CONF.format(user="nobody nogroup", size="2m")}
    answer = oracles[distro].reload("reload_applies", before, after, ["/dict"])
    assert "error" not in answer, answer
    first = answer["before"]["requests"]["/dict"]
    second = answer["after"]["requests"]["/dict"]
    assert first["status"] == 200 and second["status"] == 200, answer
    marker_before, fit_before = first["body"].split("|")
    marker_after, fit_after = second["body"].split("|")
    assert marker_before == "nil"
    assert marker_after == "nil", "the resized dict is a new zone: what the old one held is gone"
    assert int(fit_after) > 1.8 * int(fit_before) > 0, "the new size is in effect after the reload"
    assert answer["after"]["master_alive"], "the same master reloaded"
    assert [w["user"] for w in answer["before"]["workers"]] == ["www-data"]
    assert [w["user"] for w in answer["after"]["workers"]] == ["nobody"]
