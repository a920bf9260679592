from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

import pytest

try:
    import crossplane
except ImportError:
    crossplane = None

from ansible_collections.hardened.openresty.plugins.module_utils import nginx_parser
from ansible_collections.hardened.openresty.plugins.module_utils.nginx_parser import (
    NginxParseError,
    load_tree,
    parse_dump,
    parse_string,
    split_dump,
)
from ansible_collections.hardened.openresty.tests.unit.plugins.module_utils.verify_cases import (
    PARSER_CONFIGS,
    RULE_CASES,
)


def args_of(text, name):
    return [node.args for node, _ctx in parse_dump(text).walk() if node.directive == name]


def lua_body(code):
    """The body our parser reads from a content_by_lua_block holding code."""
    text = "location / {\n    content_by_lua_block {%s}\n    return 204;\n}\n" % code
    location = parse_string(text)[0]
    assert [n.directive for n in location.block] == ["content_by_lua_block", "return"]
    return location.block[0].args[0]


# -- nginx tokens ---------------------------------------------------------------------------

@pytest.mark.parametrize("source,args", [
    ('set $a "x y";', ["$a", "x y"]),
    ("set $a 'x y';", ["$a", "x y"]),
    (r'set $a "say \"hi\"";', ["$a", 'say "hi"']),
    (r"set $a 'it\'s';", ["$a", "it's"]),
    (r'set $a "tab\there";', ["$a", "tab\there"]),
    (r'set $a "back\\slash";', ["$a", "back\\slash"]),
    (r'set $a "keep\d";', ["$a", "keep\\d"]),
    (r"set $a semi\;colon;", ["$a", "semi\\;colon"]),
    ("set $a ${host}x;", ["$a", "${host}x"]),
    ("set $a a#b;", ["$a", "a#b"]),
    ('set $a "multi\nline";', ["$a", "multi\nline"]),
    ("set $a x\"y;", ["$a", 'x"y']),
])
def test_nginx_quoting_and_escapes(source, args):
    assert args_of(source, "set") == [args]


def test_comments_are_dropped_anywhere():
    text = "# top\nhttp { # after brace\n    listen 80 # inside the statement\n    ;\n}  # end\n"
    http = parse_string(text)[0]
    assert [(n.directive, n.args, n.line) for n in http.block] == [("listen", ["80"], 3)]


def test_if_parentheses_are_removed_like_crossplane():
    assert args_of("if ($request_method = POST) { return 405; }", "if") == [["$request_method", "=", "POST"]]
    assert args_of('if ( $x ~ "^a" ) { }', "if") == [["$x", "~", "^a"]]


def test_lines_and_files_are_recorded():
    nodes = parse_string("events {}\n\nhttp {\n  server {\n    listen\n      80;\n  }\n}\n", "/x/n.conf")
    server = nodes[1].block[0]
    assert (nodes[1].line, server.line, server.block[0].line) == (3, 4, 5)
    assert server.block[0].arg_lines == [6]
    assert server.file == "/x/n.conf"


@pytest.mark.parametrize("source,message,line", [
    ("http {\n  server {\n", 'unexpected end of file, expecting "}"', 3),
    ("events {}\n}\n", 'unexpected "}"', 2),
    ("user nobody\n", 'unexpected end of file, expecting ";" or "}"', 2),
    ("\n;\n", 'unexpected ";"', 2),
    ("{ }", 'unexpected "{"', 1),
    ('set $a "open;\n', "unterminated quoted string", 1),
    ('set $a "x"y;', "unexpected 'y' after quoted string", 1),
    ("http { listen 80 }", 'unexpected "}"', 1),
    ("content_by_lua_block;", 'directive "content_by_lua_block" has no opening "{"', 1),
    ("content_by_lua_block {\n  local s = [[\n  }\n", "unfinished Lua long string", 2),
    ("content_by_lua_block {\n\n  --[==[ }\n ]]\n}\n", "unfinished Lua long comment", 3),
    # lua-nginx-module skips a quote its lexer cannot finish: the "}" ends the block
    ('content_by_lua_block {\n  local s = "}\n}\n', 'unexpected "}"', 3),
    ("content_by_lua_block {\n  local t = {}\n", "terminating characters for lua code block", 1),
])
def test_errors_carry_file_and_line(source, message, line):
    with pytest.raises(NginxParseError) as err:
        parse_string(source, "/etc/nginx/bad.conf")
    assert message in err.value.message
    assert (err.value.file, err.value.line) == ("/etc/nginx/bad.conf", line)
    assert str(err.value).startswith("/etc/nginx/bad.conf:%d: " % line)


# -- Lua blocks -----------------------------------------------------------------------------

@pytest.mark.parametrize("code", [
    ' local s = "}" ',
    " local s = '{' ",
    r' local s = "\"}" ',
    r" local s = '\'{' ",
    r' local s = "\\" local t = {} ',
    " local s = [[ } ]] ",
    " local s = [==[ ]] } ]=] ]==] ",
    " local s = [=[\n}\n]=] ",
    " -- a } in a line comment\n ",
    " --[[ } in a long comment ]] ",
    " --[==[ ]] } ]==] ",
    " --[[\n } \n]] ",
    " local t = { a = { b = {} } } ",
    " local n = #t - -1 ",
    " local x = a[b[1]] ",
    ' ngx.say("#", "not an nginx comment }") ',
])
def test_lua_block_bodies_are_read_as_lua(code):
    assert lua_body(code) == code


def test_set_by_lua_block_has_a_variable_then_the_body():
    text = "set_by_lua_block $res { return \"}\" }\nreturn 200 $res;\n"
    nodes = parse_string(text)
    assert [(n.directive, n.args) for n in nodes] == [
        ("set_by_lua_block", ["$res", ' return "}" ']), ("return", ["200", "$res"])]


def test_lua_block_body_line_is_the_brace_line():
    nodes = parse_string("\ninit_by_lua_block\n# comment\n{\n  x()\n}\n")
    assert nodes[0].line == 2 and nodes[0].arg_lines == [4]


# -- dumps and includes -----------------------------------------------------------------------

DUMP = """\
nginx: the configuration file /etc/nginx/nginx.conf syntax is ok
nginx: configuration file /etc/nginx/nginx.conf test is successful
# configuration file /etc/nginx/nginx.conf:
include /etc/nginx/modules-enabled/*.conf;
http {
    include mime.types;
    include conf.d/*.conf;
    include sites-enabled/*;
    server {
        listen 80;
        include snippets/lua.conf;
        location / { include snippets/lua.conf; }
    }
}

# configuration file /etc/nginx/modules-enabled/50-mod-http-lua.conf:
load_module modules/ngx_http_lua_module.so;

# configuration file /etc/nginx/mime.types:
types { text/html html; }

# configuration file /etc/nginx/sites-enabled/default:
server { listen 8080; }

# configuration file /etc/nginx/snippets/lua.conf:
lua_code_cache off;

"""


def test_split_dump_drops_the_banner_and_keeps_order():
    parts = split_dump(DUMP)
    assert [path for path, _text in parts] == [
        "/etc/nginx/nginx.conf", "/etc/nginx/modules-enabled/50-mod-http-lua.conf",
        "/etc/nginx/mime.types", "/etc/nginx/sites-enabled/default", "/etc/nginx/snippets/lua.conf"]
    assert parts[0][1].startswith("include /etc/nginx/modules-enabled/*.conf;\n")


def test_dump_without_markers_is_one_main_file():
    assert split_dump("nginx: warning\nuser nobody;\n") == [("nginx.conf", "user nobody;\n")]
    assert split_dump("user nobody;\n", "/opt/n.conf") == [("/opt/n.conf", "user nobody;\n")]
    config = parse_dump("user nobody;\nhttp { include conf.d/*.conf; }\n", "/opt/n.conf")
    assert config.main == "/opt/n.conf" and list(config.files) == ["/opt/n.conf"]


def test_includes_take_the_context_of_their_site():
    config = parse_dump(DUMP)
    found = [(n.directive, n.file.rsplit("/", 1)[1], ctx) for n, ctx in config.walk() if n.directive != "include"]
    assert found == [
        ("load_module", "50-mod-http-lua.conf", ()),
        ("http", "nginx.conf", ()),
        ("types", "mime.types", ("http",)),  # its lines are data, not directives
        ("server", "default", ("http",)),
        ("listen", "default", ("http", "server")),
        ("server", "nginx.conf", ("http",)),
        ("listen", "nginx.conf", ("http", "server")),
        ("lua_code_cache", "lua.conf", ("http", "server")),
        ("location", "nginx.conf", ("http", "server")),
        ("lua_code_cache", "lua.conf", ("http", "server", "location")),
    ]


def test_include_resolution_in_a_dump():
    config = parse_dump(DUMP)
    includes = dict((n.args[0], n.includes) for n, _ctx in config.walk() if n.directive == "include")
    assert includes == {
        "/etc/nginx/modules-enabled/*.conf": ["/etc/nginx/modules-enabled/50-mod-http-lua.conf"],
        "mime.types": ["/etc/nginx/mime.types"],
        "conf.d/*.conf": [],  # no match: not an error
        "sites-enabled/*": ["/etc/nginx/sites-enabled/default"],  # "*" skips dot files, like glob
        "snippets/lua.conf": ["/etc/nginx/snippets/lua.conf"],
    }


def test_glob_star_does_not_cross_directories_nor_match_dot_files():
    names = ["/c/conf/a.conf", "/c/conf/sub/b.conf", "/c/conf/.hidden.conf"]
    assert nginx_parser.glob_names("/c/conf/*.conf", names) == ["/c/conf/a.conf"]
    assert nginx_parser.glob_names("/c/conf/.*.conf", names) == ["/c/conf/.hidden.conf"]


def test_a_file_no_include_reaches_is_content_of_the_file_before_it():
    # nginx -T never prints a file it did not include: the marker is a line of a.conf.
    dump = ("# configuration file /c/nginx.conf:\ninclude /c/conf/*.conf;\n"
            "# configuration file /c/conf/a.conf:\nuser a;\n"
            "# configuration file /c/conf/sub/b.conf:\nuser b;\n")
    config = parse_dump(dump)
    assert [n.args for n, _c in config.walk() if n.directive == "user"] == [["a"], ["b"]]
    assert [(f, l) for _m, f, l in config.dump_issues] == [("/c/conf/a.conf", 2)]


def test_include_cycle_is_an_error():
    dump = ("# configuration file /c/nginx.conf:\ninclude a.conf;\n"
            "# configuration file /c/a.conf:\ninclude b.conf;\n"
            "# configuration file /c/b.conf:\ninclude a.conf;\n")
    with pytest.raises(NginxParseError) as err:
        parse_dump(dump).walk()
    assert err.value.file == "/c/b.conf" and err.value.line == 1


def test_parse_error_in_an_included_file_names_that_file():
    dump = DUMP.replace("server { listen 8080; }", "server { listen 8080 }")
    with pytest.raises(NginxParseError) as err:
        parse_dump(dump)
    assert (err.value.file, err.value.line) == ("/etc/nginx/sites-enabled/default", 1)


def write_tree(root, files):
    for name, text in files.items():
        path = os.path.join(str(root), name)
        if not os.path.isdir(os.path.dirname(path)):
            os.makedirs(os.path.dirname(path))
        with open(path, "w") as handle:
            handle.write(text)
    return os.path.join(str(root), "nginx.conf")


def test_load_tree_from_disk(tmp_path):
    main = write_tree(tmp_path, {
        "nginx.conf": "http {\n  include conf.d/*.conf;\n  include /abs/missing/*.conf;\n  server { include s.conf; }\n}\n",
        "conf.d/b.conf": "lua_code_cache on;\n",
        "conf.d/a.conf": "lua_code_cache off;\n",
        "conf.d/skip.txt": "not included;\n",
        "s.conf": "listen 80;\n",
    })
    config = load_tree(main)
    found = [(n.directive, n.args, ctx) for n, ctx in config.walk() if n.directive != "include"]
    assert found == [
        ("http", [], ()),
        ("lua_code_cache", ["off"], ("http",)),  # glob results are sorted, like nginx's
        ("lua_code_cache", ["on"], ("http",)),
        ("server", [], ("http",)),
        ("listen", ["80"], ("http", "server")),
    ]
    assert list(config.files)[0] == main


def test_load_tree_missing_plain_include_is_an_error(tmp_path):
    main = write_tree(tmp_path, {"nginx.conf": "events {}\n\ninclude nope.conf;\n"})
    with pytest.raises(NginxParseError) as err:
        load_tree(main)
    assert (err.value.file, err.value.line) == (main, 3)
    assert "nope.conf" in err.value.message


# -- differential test against crossplane ------------------------------------------------------

# Only these tests compare with crossplane; the rest of this file runs without it.
needs_crossplane = pytest.mark.skipif(crossplane is None, reason="crossplane is not installed")

ALL_CONFIGS = [(c["id"], c["files"]) for c in RULE_CASES] + sorted(
    (name, {"nginx.conf": text}) for name, text in PARSER_CONFIGS.items())
# Where nginx and crossplane knowingly differ; the test asserts that they still do.
KNOWN_DIFFERENCES = {
    # nginx resolves the escapes \\ \t \n \r in every argument; crossplane keeps them.
    "quotes-and-escapes": "escapes",
    # crossplane appends the whitespace that follows "${name}" to the argument.
    "variables-in-braces": "space after ${name}",
}


def _normalise(nodes):
    """crossplane's tree without "includes" keys and the comment entries it adds for a
    comment inside a statement (even when asked not to list comments)."""
    kept = []
    for node in nodes:
        if node["directive"] == "#":
            continue
        node.pop("includes", None)
        if "block" in node:
            node["block"] = _normalise(node["block"])
        kept.append(node)
    return kept


def _crossplane_trees(main):
    payload = crossplane.parse(main, check_ctx=False, check_args=False)
    if payload["status"] != "ok":
        return None
    return dict((c["file"], _normalise(c["parsed"])) for c in payload["config"])


@needs_crossplane
@pytest.mark.parametrize("name,files", ALL_CONFIGS, ids=[c[0] for c in ALL_CONFIGS])
def test_directive_tree_matches_crossplane(tmp_path, name, files):
    main = write_tree(tmp_path, files)
    theirs = _crossplane_trees(main)
    if theirs is None:
        pytest.skip("crossplane cannot parse this configuration")
    config = load_tree(main)
    ours = dict((path, nginx_parser.directive_tree(nodes)) for path, nodes in config.files.items())
    assert sorted(ours) == sorted(theirs)
    if name in KNOWN_DIFFERENCES:
        assert ours != theirs, "crossplane no longer differs in: %s" % KNOWN_DIFFERENCES[name]
        return
    assert ours == theirs


@needs_crossplane
def test_crossplane_skips_only_what_it_cannot_parse(tmp_path):
    skipped = []
    for name, files in ALL_CONFIGS:
        directory = tmp_path / name
        directory.mkdir()
        if _crossplane_trees(write_tree(directory, files)) is None:
            skipped.append(name)
    # A Lua long string or multi-line long comment holding a brace ends crossplane's Lua
    # block early; these are the reason this parser exists.
    assert skipped == ["long-string-with-braces-and-dangerous-call", "long-comment-with-brace"]


@needs_crossplane
def test_escape_difference_is_what_we_think(tmp_path):
    main = write_tree(tmp_path, {"nginx.conf": r'set $a "x\\y";' + "\n"})
    theirs = _crossplane_trees(main)[main]
    assert theirs[0]["args"] == ["$a", "x\\\\y"]
    assert load_tree(main).files[main][0].args == ["$a", "x\\y"]


# -- values as nginx reads them ---------------------------------------------------------------

@pytest.mark.parametrize("size,quoted,fails", [
    (4095, False, False), (4096, False, True),
    (4094, True, False), (4095, True, True),
])
def test_a_token_must_fit_nginx_s_buffer(size, quoted, fails):
    # ngx_conf_read_token: NGX_CONF_BUFFER is 4096 bytes, the closing quote included
    # (nginx 1.22.1 -t agrees on all four)
    token = "x" * size
    text = "set $a %s;\n" % ('"%s"' % token if quoted else token)
    if fails:
        with pytest.raises(NginxParseError) as err:
            parse_string(text, "/c/n.conf")
        assert "too long parameter" in err.value.message and err.value.line == 1
    else:
        assert parse_string(text)[0].args == ["$a", token]


@pytest.mark.parametrize("size,fails", [(4095, False), (4096, True)])
def test_a_comment_must_fit_nginx_s_buffer_too(size, fails):
    # nginx 1.22.1: "#" + 4094 bytes passes nginx -t, "#" + 4095 is "too long parameter"
    text = "#%s\nevents {}\n" % ("x" * (size - 1))
    if fails:
        with pytest.raises(NginxParseError) as err:
            parse_string(text)
        assert "too long parameter" in err.value.message
    else:
        assert [n.directive for n in parse_string(text)] == ["events"]


def test_token_length_counts_bytes():
    with pytest.raises(NginxParseError):
        parse_string("set $a %s;\n" % ("\u00e9" * 2048))
    assert parse_string("set $a %s;\n" % ("\u00e9" * 2047))[0].args[1] == "\u00e9" * 2047


def test_only_nginx_escapes_are_resolved_and_nul_is_kept_for_the_consumer():
    assert args_of(r'set $a "\a\b\0\x41";', "set") == [["$a", r"\a\b\0\x41"]]
    assert args_of('user "root\x00x";', "user") == [["root\x00x"]]


# -- data blocks --------------------------------------------------------------------------------

@pytest.mark.parametrize("block", ["map $a $b", "geo $c", "types", "split_clients $d $e",
                                   "charset_map koi8-r utf-8"])
def test_lines_of_data_blocks_are_not_directives(block):
    config = parse_dump("http {\n    %s {\n        lua_code_cache off;\n    }\n}\n" % block)
    assert [n.directive for n, _c in config.walk()] == ["http", block.split()[0]]


def test_a_data_line_may_look_like_a_lua_block_directive():
    config = parse_dump("http { map $a $b { content_by_lua_block 1; } }\n")
    assert [n.directive for n, _c in config.walk()] == ["http", "map"]


def test_a_brace_inside_a_data_block_is_an_error():
    with pytest.raises(NginxParseError) as err:
        parse_string("http {\n map $a $b {\n  content_by_lua_block { os.exit() }\n }\n}\n")
    assert err.value.message == 'unexpected "{"' and err.value.line == 3


def test_files_included_inside_a_data_block_are_data():
    dump = ("# configuration file /c/nginx.conf:\nhttp {\n map $a $b { include /c/m.conf; }\n"
            " include /c/d.conf;\n}\n"
            "# configuration file /c/m.conf:\nlua_code_cache off;\ncontent_by_lua_block x;\n"
            "# configuration file /c/d.conf:\nlua_code_cache on;\n")
    config = parse_dump(dump)
    assert [(n.directive, n.args) for n, _c in config.walk() if n.directive == "lua_code_cache"] == [
        ("lua_code_cache", ["on"])]
    assert config.dump_issues == []


# -- where a Lua block ends: lua-nginx-module's lexer ------------------------------------------------

def test_a_short_string_does_not_continue_over_backslash_newline():
    text = ('location / {\n    content_by_lua_block {\n        local s = "\\\n}\n'
            'lua_code_cache off;\n#"\n}\n')
    location = parse_string(text)[0]
    assert [n.directive for n in location.block] == ["content_by_lua_block", "lua_code_cache"]
    assert location.block[0].args == ['\n        local s = "\\\n']


@pytest.mark.parametrize("code,body_end", [
    (" local s = 'it\\'s' } x", " local s = 'it\\'s' "),   # an escaped quote stays in the string
    (" x = \"} ", " x = \""),                            # a quote never closed on its line is skipped
    (" -- } \n y() } x", " -- } \n y() "),                   # a line comment ends at LF
    (" -- \r } x", " -- \r } x"),                            # ... not at CR (LuaJIT's CR is not lua-nginx-module's)
    (" --[==[ } ]] ]==] } x", " --[==[ } ]] ]==] "),
    (" f(--[[ } ]] 1) } x", " f(--[[ } ]] 1) "),
])
def test_lua_block_ends_where_lua_nginx_module_ends_it(code, body_end):
    text = "content_by_lua_block {%s" % code
    if body_end.endswith(" x"):
        with pytest.raises(NginxParseError):
            parse_string(text + "\n")
        return
    body, _end = nginx_parser.read_lua_block(text, len("content_by_lua_block {"))
    assert body == body_end


# -- nginx -T dumps --------------------------------------------------------------------------------

def _dump(*files):
    return "".join("# configuration file %s:\n%s\n" % item for item in files)


def test_a_consistent_dump_has_no_issue():
    config = parse_dump(DUMP)
    assert config.dump_issues == [] and config.alternatives == []


def test_a_marker_inside_a_lua_long_string_is_content():
    dump = _dump(("/c/nginx.conf", "http {\n init_by_lua_block { local s = [[\n"
                  "# configuration file /c/x.conf:\n]] }\n lua_code_cache off;\n}"))
    config = parse_dump(dump)
    assert [(f, l) for _m, f, l in config.dump_issues] == [("/c/nginx.conf", 3)]
    assert [n.directive for n, _c in config.walk()] == ["http", "init_by_lua_block", "lua_code_cache"]


def test_a_file_printed_twice_is_not_a_second_file():
    dump = _dump(("/c/nginx.conf", "include /c/a.conf;"), ("/c/a.conf", "user a;"),
                 ("/c/a.conf", "user root;"))
    config = parse_dump(dump)
    readings = [config] + config.alternatives
    # either marker of a.conf can be the comment: both readings are checked
    assert sorted([n.args[0] for n, _c in r.walk() if n.directive == "user"] for r in readings) == [
        ["a", "root"], ["root", "a"]]
    assert all(len(r.dump_issues) == 1 for r in readings)


def test_files_out_of_include_order_are_flagged():
    dump = _dump(("/c/nginx.conf", "include /c/a.conf;\ninclude /c/b.conf;"),
                 ("/c/b.conf", "user b;"), ("/c/a.conf", "user a;"))
    config = parse_dump(dump)
    assert config.dump_issues


def test_a_dump_taken_with_g_starts_with_the_g_include():
    dump = _dump(("/etc/nginx/g.conf", "user root;"),
                 ("/etc/nginx/nginx.conf", "http { include /etc/nginx/h.conf; }"),
                 ("/etc/nginx/h.conf", "lua_code_cache off;"))
    config = parse_dump(dump, "/etc/nginx/nginx.conf")
    assert config.dump_issues == []
    assert config.roots == ["/etc/nginx/g.conf", "/etc/nginx/nginx.conf"]
    assert [(n.directive, c) for n, c in config.walk() if n.directive != "include"] == [
        ("user", ()), ("http", ()), ("lua_code_cache", ("http",))]


def test_an_unparseable_dump_still_fails_with_file_and_line():
    with pytest.raises(NginxParseError) as err:
        parse_dump(_dump(("/c/nginx.conf", "http {\n  server {\n")))
    assert (err.value.file, err.value.line) == ("/c/nginx.conf", 4)


def test_ambiguous_dump_is_a_high_finding_and_every_reading_is_checked():
    from ansible_collections.hardened.openresty.plugins.module_utils import lua_rules
    dump = _dump(("/etc/nginx/nginx.conf", "user www-data;\nhttp {\n"
                  "# configuration file /etc/nginx/hidden.conf:\n lua_code_cache off;\n}"))
    findings = lua_rules.verify_dump_text(dump)["findings"]
    assert [(f["rule"], f["file"], f["line"]) for f in findings
            if f["rule"] in ("nginx-dump-ambiguous", "lua-code-cache-off")] == [
        ("nginx-dump-ambiguous", "/etc/nginx/nginx.conf", 3),
        ("lua-code-cache-off", "/etc/nginx/nginx.conf", 4)]


def test_a_lua_long_string_longer_than_nginx_s_buffer_fails():
    # the closing bracket must be inside lua-nginx-module's 4096-byte buffer
    for size, fails in ((4000, False), (4100, True)):
        text = "content_by_lua_block {\n local s = [[%s]]\n}\n" % ("x" * size)
        if fails:
            with pytest.raises(NginxParseError) as err:
                parse_string(text)
            assert "may be too long" in err.value.message and err.value.line == 2
        else:
            assert parse_string(text)[0].args[0].count("x") == size


def test_a_g_dump_without_the_main_file_name_is_read_both_ways_and_flagged():
    dump = _dump(("/etc/nginx/g.conf", "worker_processes 1;"),
                 ("/etc/nginx/nginx.conf", "http { include /etc/nginx/h.conf; }"),
                 ("/etc/nginx/h.conf", "lua_code_cache off;"))
    config = parse_dump(dump)
    readings = [config] + config.alternatives
    assert any(r.roots == ["/etc/nginx/g.conf", "/etc/nginx/nginx.conf"] for r in readings)
    assert all(r.dump_issues for r in readings)
    for reading in readings:
        assert [c for n, c in reading.walk() if n.directive == "lua_code_cache"] == [("http",)]


# -- lua-nginx-module's 4096-byte buffer ------------------------------------------------------------
# The files below were given to nginx 1.22.1 with lua-nginx-module 0.10.23 (Debian 12); the
# verdicts in the comments are its own (a sweep of 501 such files agreed with this parser).

_LUA_LOAD = ("load_module /usr/lib/nginx/modules/ndk_http_module.so;\n"
             "load_module /usr/lib/nginx/modules/ngx_http_lua_module.so;\nevents {}\nhttp {\n")
_LUA_HEAD = _LUA_LOAD + "    init_by_lua_block {\n        -- "
_LUA_TAIL = " } lua_code_cache off; server { #\n    }\n}\n"


def test_a_lua_comment_cut_by_the_buffer_hides_a_directive():
    # The comment runs past byte 4096, where lua-nginx-module's buffer ends: its lexer
    # takes the comment up to there and reads the rest of the line as code, so "}" ends
    # the block and lua_code_cache off is a directive of http (nginx -t accepts the file
    # and logs "lua_code_cache is off").
    text = _LUA_HEAD + "c" * (4096 - len(_LUA_HEAD) + 20) + _LUA_TAIL
    http = parse_string(text)[-1]
    assert [(n.directive, n.args[-1:]) for n in http.block[1:]] == [
        ("lua_code_cache", ["off"]), ("server", [])]
    assert http.block[0].args[0].endswith("c ")


def test_the_same_comment_inside_the_buffer_is_a_comment():
    text = _LUA_HEAD + "c" * 2000 + _LUA_TAIL
    assert [n.directive for n in parse_string(text)[-1].block] == ["init_by_lua_block"]


@pytest.mark.parametrize("length,accepted", [(1700, True), (4070, True), (4079, False)])
def test_a_token_free_stretch_longer_than_the_buffer_fails(length, accepted):
    # lua-nginx-module needs a token within its buffer ("too long lua code block")
    text = (_LUA_LOAD + "    init_by_lua_block {\n        local a = 1" + " +1" * ((length - 20) // 3)
            + ' local s = "}" }\n}\n')
    if accepted:
        assert parse_string(text)[-1].directive == "http"
    else:
        with pytest.raises(NginxParseError):
            parse_string(text)


@pytest.mark.parametrize("length,accepted", [(2197, True), (3922, True), (3933, False)])
def test_a_long_comment_line_at_the_start_of_the_file_buffer(length, accepted):
    text = _LUA_HEAD + "c" * length + " }\n    }\n}\n"
    if accepted:
        assert parse_string(text)[-1].directive == "http"
    else:
        with pytest.raises(NginxParseError):
            parse_string(text)


def test_the_garbage_collector_is_paused_while_reading_and_restored_after(tmp_path):
    import gc
    seen = []

    @nginx_parser.without_cyclic_gc
    def inner():
        seen.append(gc.isenabled())
        raise ValueError("boom")

    assert gc.isenabled()
    with pytest.raises(ValueError):
        inner()
    assert seen == [False] and gc.isenabled()
    gc.disable()
    try:
        inner_ok = nginx_parser.without_cyclic_gc(gc.isenabled)
        assert inner_ok() is False and not gc.isenabled()  # a caller's choice is kept
    finally:
        gc.enable()
