from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.hardened.openresty.plugins.module_utils import nginx_parser
from ansible_collections.hardened.openresty.plugins.module_utils.reload_unsafe import changed_requires, ipv6only_of


def tree(text):
    return nginx_parser.NginxConfig({"/etc/nginx/nginx.conf": nginx_parser.parse_string(text)},
                                    "/etc/nginx/nginx.conf")


def http(*listens):
    return "events {}\nhttp {\n%s}\n" % "".join("server { listen %s; }\n" % listen for listen in listens)


def test_ipv6only_defaults_to_on_and_a_stated_value_wins_whichever_server_states_it():
    assert ipv6only_of(tree(http("[::]:80", "[::]:80 ipv6only=off", "80", "unix:/run/a.sock"))) == {"[::]:80": "off"}
    assert ipv6only_of(tree(http("[::1]:8080"))) == {"[::1]:8080": "on"}


@pytest.mark.parametrize("before, after, expected", [
    (http("[::]:443 ssl ipv6only=on"), http("[::]:443 ssl ipv6only=off"),
     ["listen [::]:443: ipv6only on -> off (a reload keeps the socket the master holds)"]),
    (http("[::]:443"), http("[::]:443 ipv6only=off"),
     ["listen [::]:443: ipv6only on -> off (a reload keeps the socket the master holds)"]),
    (http("[::]:443 ipv6only=off"), http("[::]:443"),
     ["listen [::]:443: ipv6only off -> on (a reload keeps the socket the master holds)"]),
])
def test_a_changed_ipv6only_of_an_address_that_stays_needs_a_new_master(before, after, expected):
    assert changed_requires(tree(before), tree(after)) == expected


@pytest.mark.parametrize("before, after", [
    (http("[::]:443 ipv6only=on"), http("[::]:443 ipv6only=on backlog=1024")),  # backlog: re-applied
    (http("[::]:443"), http("[::]:8443 ipv6only=off")),  # a new address gets a new socket
    (http("80"), http("80 reuseport")),  # an added reuseport is applied on reload
    (http("[::]:443 ipv6only=off"), http()),  # a socket closed
])
def test_what_a_reload_applies_needs_no_restart(before, after):
    assert changed_requires(tree(before), tree(after)) == []


def test_stream_servers_count_and_other_contexts_do_not():
    stream = "events {}\nstream { server { listen [::]:53 ipv6only=%s; } }\n"
    assert changed_requires(tree(stream % "on"), tree(stream % "off"))
    # Not a socket: "listen" as the name of a map's entry is data.
    data = "events {}\nhttp { map $a $b { listen [::]:1; } server { listen [::]:80 ipv6only=%s; } }\n"
    assert changed_requires(tree(data % "on"), tree(data % "on")) == []
