from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.hardened.openresty.plugins.module_utils import nginx_command, nginx_parser

DEBIAN_UNIT = """# /lib/systemd/system/nginx.service
[Unit]
Description=A high performance web server and a reverse proxy server

[Service]
Type=forking
PIDFile=/run/nginx.pid
ExecStartPre=/usr/sbin/nginx -t -q -g 'daemon on; master_process on;'
ExecStart=/usr/sbin/nginx -g 'daemon on; master_process on;'
ExecReload=/usr/sbin/nginx -g 'daemon on; master_process on;' -s reload

[Install]
WantedBy=multi-user.target
"""


@pytest.mark.parametrize("text,words", [
    ("/usr/sbin/nginx -g 'daemon on; master_process on;'",
     ["/usr/sbin/nginx", "-g", "daemon on; master_process on;"]),
    ('/usr/sbin/nginx -g "include \\"/etc/x y.conf\\";"', ["/usr/sbin/nginx", "-g", 'include "/etc/x y.conf";']),
    ("a  b\\tc \\x41\\101", ["a", "b\tc", "AA"]),
    ("a'b c'd", ["ab cd"]),
])
def test_exec_start_words_split_like_systemd(text, words):
    assert nginx_command.unquote_words(text) == words


def test_unfinished_quote_is_an_error():
    with pytest.raises(ValueError):
        nginx_command.unquote_words("/usr/sbin/nginx -g 'daemon on;")


def test_exec_start_of_debians_unit():
    assert nginx_command.exec_start_from_unit(DEBIAN_UNIT) == [
        "/usr/sbin/nginx", "-g", "daemon on; master_process on;"]


def test_a_drop_in_resets_and_replaces_exec_start():
    text = DEBIAN_UNIT + """
# /etc/systemd/system/nginx.service.d/extra.conf
[Service]
ExecStart=
ExecStart=-/usr/sbin/nginx -c /etc/nginx/main.conf \\
    -g 'include /etc/nginx/extra.conf; daemon on;'
[Unit]
ExecStart=/not/a/service/key
"""
    assert nginx_command.exec_start_from_unit(text) == [
        "/usr/sbin/nginx", "-c", "/etc/nginx/main.conf", "-g", "include /etc/nginx/extra.conf; daemon on;"]


def test_no_exec_start():
    assert nginx_command.exec_start_from_unit("[Service]\nExecStart=\n") is None
    assert nginx_command.exec_start_from_unit("# no unit\n") is None


@pytest.mark.parametrize("raw,argv", [
    (b"nginx: master process /usr/sbin/nginx -g daemon on; master_process on;\x00\x00\x00",
     ["/usr/sbin/nginx", "-g", "daemon on; master_process on;"]),
    (b"nginx: master process /usr/sbin/nginx -c /etc/nginx/other.conf -g include /etc/x.conf; -p /srv/",
     ["/usr/sbin/nginx", "-c", "/etc/nginx/other.conf", "-g", "include /etc/x.conf;", "-p", "/srv/"]),
    (b"nginx: master process nginx -gdaemon off;", ["nginx", "-g", "daemon off;"]),
    (b"/usr/sbin/nginx\x00-c\x00/etc/a b.conf\x00", ["/usr/sbin/nginx", "-c", "/etc/a b.conf"]),
    (b"", None),
])
def test_master_command_line(raw, argv):
    assert nginx_command.argv_from_cmdline(raw) == argv


@pytest.mark.parametrize("argv,flags", [
    (["nginx"], (None, None, None)),
    (["nginx", "-c", "/a.conf", "-p", "/srv", "-g", "x;"], ("/a.conf", "/srv", "x;")),
    (["nginx", "-c/a.conf", "-p/srv", "-gx;"], ("/a.conf", "/srv", "x;")),
    (["nginx", "-g", "a;", "-g", "b;"], (None, None, "b;")),  # the last -g wins
    (["nginx", "-tq", "-c", "/a.conf"], ("/a.conf", None, None)),
    (["nginx", "-e", "stderr", "-c", "/a.conf"], ("/a.conf", None, None)),
])
def test_flags_are_read_like_ngx_get_options(argv, flags):
    found = nginx_command.flags_from_argv(argv)
    assert (found["conf"], found["prefix"], found["params"]) == flags


@pytest.mark.parametrize("argv", [["nginx", "-c"], ["nginx", "conf"]])
def test_bad_flags(argv):
    with pytest.raises(ValueError):
        nginx_command.flags_from_argv(argv)


@pytest.mark.parametrize("flags,compiled,expected", [
    ({"conf": None, "prefix": None}, ("/usr/share/nginx", "/etc/nginx/nginx.conf"),
     ("/etc/nginx/nginx.conf", "/usr/share/nginx/")),
    ({"conf": "conf/app.conf", "prefix": "/srv/app"}, ("/usr/share/nginx", "/etc/nginx/nginx.conf"),
     ("/srv/app/conf/app.conf", "/srv/app/")),
    ({"conf": None, "prefix": "/srv/app/"}, ("/usr/local/nginx", "conf/nginx.conf"),
     ("/srv/app/conf/nginx.conf", "/srv/app/")),
])
def test_effective_paths(flags, compiled, expected):
    assert nginx_command.effective_paths(flags, *compiled) == expected


def test_dump_order_puts_the_g_includes_first(tmp_path):
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "b.conf").write_text("")
    (tmp_path / "conf.d" / "a.conf").write_text("include %s/shared.conf;\n" % tmp_path)
    (tmp_path / "shared.conf").write_text("")
    (tmp_path / "extra.conf").write_text("pid /run/x.pid;\n")
    main = tmp_path / "nginx.conf"
    main.write_text("events {}\nhttp {\n include conf.d/*.conf;\n include shared.conf;\n}\n")
    config = nginx_parser.load_tree(str(main), "include extra.conf; daemon on;")
    assert nginx_command.dump_order(config, nginx_parser.PARAMS_FILE) == [
        str(tmp_path / name) for name in ("extra.conf", "nginx.conf", "conf.d/a.conf", "shared.conf",
                                          "conf.d/b.conf")]
    first = config.walk()[:3]
    assert [(node.directive, node.file) for node, _context in first] == [
        ("include", nginx_parser.PARAMS_FILE), ("pid", str(tmp_path / "extra.conf")),
        ("daemon", nginx_parser.PARAMS_FILE)]


def test_first_difference():
    texts = [("/a.conf", "x 1;\ny 2;\n"), ("/b.conf", "z 3;")]
    dump = "# configuration file /a.conf:\nx 1;\ny 2;\n\n# configuration file /b.conf:\nz 3;\n"
    assert nginx_command.first_difference(texts, dump) is None
    path, line, message = nginx_command.first_difference(texts, dump.replace("y 2;", "y 9;"))
    assert (path, line) == ("/a.conf", 2) and "'y 9;'" in message and "'y 2;'" in message
    assert nginx_command.first_difference(texts, dump + "# configuration file /c.conf:\n")[2].startswith(
        "nginx -T prints more")
    assert nginx_command.first_difference(texts, dump[:40])[0] == "/a.conf"
