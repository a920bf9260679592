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

from ansible_collections.hardened.openresty.plugins.module_utils import nginx_parser
from ansible_collections.hardened.openresty.plugins.module_utils.reload_unsafe import changed_requires
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


LISTEN_CONF = """\
worker_processes 1;
error_log stderr notice;
events {{}}
http {{
    server {{
        listen unix:/run/oracle-case.sock;
        location / {{ return 200 "up"; }}
    }}
    server {{
        listen [::]:18085 ipv6only={changed};
        location / {{ return 200 "18085"; }}
    }}
    server {{
        listen [::]:18086 ipv6only=off;
        location / {{ return 200 "18086"; }}
    }}
}}
"""


@pytest.mark.parametrize("distro", sorted(harness.DISTROS))
def test_a_reload_keeps_the_ipv6only_of_a_socket_it_already_holds(oracles, distro):
    # [::]:port with ipv6only=off also accepts IPv4 (18086 shows it from the start). Turned
    # off by a reload, the master keeps the socket it holds, with its old option: IPv4 is still
    # refused on 18085. Only a new master applies it, so nginx_config reports the change as
    # needing a restart (staged_config.changed_requires).
    before = {"nginx.conf": LISTEN_CONF.format(changed="on")}
    after = {"nginx.conf": LISTEN_CONF.format(changed="off")}
    urls = ["http://127.0.0.1:18085/", "http://127.0.0.1:18086/", "http://[::1]:18085/"]
    answer = oracles[distro].reload("reload_ipv6only", before, after, urls)
    assert "error" not in answer, answer
    ask_before, ask_after = answer["before"]["requests"], answer["after"]["requests"]
    assert ask_before["http://127.0.0.1:18086/"]["body"] == "18086", answer
    assert ask_before["http://[::1]:18085/"]["body"] == "18085", answer
    assert ask_before["http://127.0.0.1:18085/"]["status"] == 0, "ipv6only=on refuses IPv4"
    assert ask_after["http://[::1]:18085/"]["body"] == "18085", answer
    assert ask_after["http://127.0.0.1:18085/"]["status"] == 0, "the reload did not apply ipv6only=off"
    # Our reading asks for a restart for exactly that address.
    parsed = [nginx_parser.NginxConfig({"/c/nginx.conf": nginx_parser.parse_string(files["nginx.conf"])},
                                       "/c/nginx.conf") for files in (before, after)]
    assert changed_requires(*parsed) == ["listen [::]:18085: ipv6only on -> off (a reload keeps the socket the "
                                         "master holds)"]


MODULE_CONF = """\
{modules}
worker_processes 1;
error_log stderr notice;
events {{}}
http {{
    server {{
        listen unix:/run/oracle-case.sock;
        location = /which {{ {content} }}
    }}
}}
"""


@pytest.mark.parametrize("distro", sorted(harness.DISTROS))
def test_a_reload_loads_a_new_dynamic_module(oracles, distro):
    # A new load_module needs no new master: the reloaded configuration runs the module's code.
    before = {"nginx.conf": MODULE_CONF.format(modules="", content='return 200 "static";')}
    after = {"nginx.conf": MODULE_CONF.format(
        modules="load_module /usr/lib/nginx/modules/ndk_http_module.so;\n"
                "load_module /usr/lib/nginx/modules/ngx_http_lua_module.so;",
        content='content_by_lua_block { ngx.print("lua ", ngx.config.subsystem) }')}
    answer = oracles[distro].reload("reload_load_module", before, after, ["/which"])
    assert "error" not in answer, answer
    assert answer["before"]["requests"]["/which"]["body"] == "static", answer
    assert answer["after"]["requests"]["/which"]["body"] == "lua http", answer
    assert answer["after"]["master_alive"], "the same master reloaded"
