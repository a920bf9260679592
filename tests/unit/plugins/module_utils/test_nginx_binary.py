from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.hardened.openresty.plugins.module_utils import nginx_binary


def test_the_binary_given_wins_and_nothing_is_looked_up():
    looked = []
    assert nginx_binary.find_binary("/opt/nginx", lambda name, opt_dirs=None: looked.append(name)) == "/opt/nginx"
    assert looked == []


def test_openresty_before_nginx_also_in_openrestys_own_directories():
    seen = []

    def lookup(name, opt_dirs=None):
        seen.append((name, tuple(opt_dirs)))
        return "/usr/sbin/nginx" if name == "nginx" else None
    assert nginx_binary.find_binary(None, lookup) == "/usr/sbin/nginx"
    assert [name for name, dummy in seen] == ["openresty", "nginx"]
    assert all("/usr/local/openresty/bin" in dirs for dummy, dirs in seen)


def test_no_binary_is_an_error_naming_the_variable():
    with pytest.raises(nginx_binary.NginxBinaryError, match="set binary"):
        nginx_binary.find_binary(None, lambda name, opt_dirs=None: None)


def test_version_is_read_from_stderr_and_parsed():
    text = "nginx version: nginx/1.22.1\nconfigure arguments: --prefix=/usr/share/nginx --conf-path=/etc/nginx/nginx.conf\n"
    facts = nginx_binary.version_facts(lambda argv: (0, "", text), "/usr/sbin/nginx")
    assert facts["version"] == "1.22.1" and facts["conf_path"] == "/etc/nginx/nginx.conf"


def test_a_failing_v_has_one_message_with_rc_and_nginxs_words():
    with pytest.raises(nginx_binary.NginxBinaryError) as caught:
        nginx_binary.version_text(lambda argv: (2, "", "exec format error\n"), "/usr/sbin/nginx")
    assert str(caught.value) == "/usr/sbin/nginx -V failed (rc 2): exec format error"
