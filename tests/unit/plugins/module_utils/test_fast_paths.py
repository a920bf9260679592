# -*- coding: utf-8 -*-
"""The fast paths of the verifier's readers against their exact paths, input by input.

nginx_parser and lua_tokens read most input through shortcuts (a statement at a time, a
Lua block body in regex runs from brace to brace, a dump split at its marker lines without
splitting it into lines, Lua code without any watched name in one match) and fall back to
the token-by-token readers when a shortcut cannot be sure. A shortcut that read a
single input differently would be a hole in the verifier, so each test here reads inputs
both ways (exact=True turns the shortcuts off) and requires the same trees (directive,
args, lines, files, includes), the same errors, the same dangerous uses and the same
findings: on every configuration of the oracle cases, the fixture dumps, the benchmark's
generated dump (at several offsets of nginx's 4096-byte buffer) and generated inputs full
of quotes, escapes, comments, braces, long brackets, CR, LF and NUL bytes.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import functools
import glob
import importlib.util
import os

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from ansible_collections.hardened.openresty.plugins.module_utils import lua_facts
from ansible_collections.hardened.openresty.plugins.module_utils import lua_rules
from ansible_collections.hardened.openresty.plugins.module_utils import lua_tokens
from ansible_collections.hardened.openresty.plugins.module_utils import nginx_parser
from ansible_collections.hardened.openresty.plugins.module_utils.nginx_parser import NginxParseError
from ansible_collections.hardened.openresty.tests.unit.plugins.module_utils import lua_alias_cases

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", ".."))
CASES = sorted(glob.glob(os.path.join(ROOT, "tests", "oracle", "cases", "*", "")))
CASE_FILES = sorted(
    path for case in CASES for path in glob.glob(os.path.join(case, "**", "*"), recursive=True)
    if os.path.isfile(path) and not os.path.islink(path) and not path.endswith(".json"))
FIXTURES = sorted(glob.glob(os.path.join(ROOT, "tests", "unit", "fixtures", "verify", "*-nginx-T.txt")))
GENERATED = dict(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _bench_module():
    spec = importlib.util.spec_from_file_location("bench_verify", os.path.join(ROOT, "scripts", "bench_verify.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


BENCH = _bench_module()


# -- comparable readings -----------------------------------------------------------------

def tree(nodes):
    return [(node.directive, list(node.args), node.line, node.file, list(node.arg_lines),
             None if node.includes is None else list(node.includes),
             None if node.block is None else tree(node.block))
            for node in nodes]


def config_reading(config):
    return {
        "main": config.main,
        "roots": list(config.roots),
        "files": dict((path, tree(nodes)) for path, nodes in config.files.items()),
        "order": list(config.files),
        "dump_issues": list(config.dump_issues),
        "alternatives": [config_reading(other) for other in config.alternatives],
    }


def outcome(function, *args, **kwargs):
    """What a reader returns, or the error it raises, as comparable values."""
    try:
        return "ok", function(*args, **kwargs)
    except NginxParseError as exc:
        return "error", (exc.message, exc.file, exc.line)


def read_string(text, data=False, size=None, exact=False):
    """The tree, the includes and nginx's buffer where each Lua block starts."""
    includes = []
    buffers = {}
    readers = nginx_parser.read_lua_block, nginx_parser._read_lua_block_fast

    def logged(reader):
        def read(text, pos, *args):
            buffer = args[-1]
            buffers.setdefault(pos, None if buffer is None else list(buffer))
            return reader(text, pos, *args)
        return read

    nginx_parser.read_lua_block, nginx_parser._read_lua_block_fast = (logged(reader) for reader in readers)
    try:
        nodes = nginx_parser.parse_string(text, "t.conf", data, includes, size, exact=exact)
    finally:
        nginx_parser.read_lua_block, nginx_parser._read_lua_block_fast = readers
    return tree(nodes), [(tree([node]), in_data) for node, in_data in includes], sorted(buffers.items())


def assert_same_string(text, data=False, size=None):
    fast = outcome(read_string, text, data, size)
    exact = outcome(read_string, text, data, size, exact=True)
    assert fast == exact


def findings(config, exact):
    if not exact:
        return lua_rules.evaluate(config)
    original = lua_facts.find_dangerous
    lua_facts.find_dangerous = functools.partial(lua_tokens.find_dangerous, exact=True)
    try:
        return lua_rules.evaluate(config)
    finally:
        lua_facts.find_dangerous = original


def assert_same_dump(text, main=None):
    assert nginx_parser.split_dump(text, main) == nginx_parser.split_dump(text, main, exact=True)
    fast = outcome(nginx_parser.parse_dump, text, main)
    exact = outcome(nginx_parser.parse_dump, text, main, exact=True)
    assert fast[0] == exact[0]
    if fast[0] == "error":
        assert fast == exact
        return None
    assert config_reading(fast[1]) == config_reading(exact[1])
    assert outcome(findings, fast[1], False) == outcome(findings, exact[1], True)
    return fast[1]


def assert_same_uses(code, entries=lua_tokens.DEFAULT_DANGEROUS_CALLS):
    assert lua_tokens.find_dangerous(code, entries) == lua_tokens.find_dangerous(code, entries, exact=True)
    watched = lua_tokens._compile(entries)
    if lua_tokens._has_no_watched_name(code, watched[5]):
        names = set(watched[2]) | set(watched[3])
        assert not [value for kind, value, _pos in lua_tokens.tokenize(code)
                    if kind == lua_tokens.NAME and value in names]


def inline_code(config):
    return [node.args[-1] for nodes in config.files.values() for node in _all(nodes)
            if "_by_lua" in node.directive and node.args]


def _all(nodes):
    for node in nodes:
        yield node
        if node.block is not None:
            yield from _all(node.block)


# -- the corpus ----------------------------------------------------------------------------

def test_the_corpus_is_there():
    assert len(CASES) > 100 and len(CASE_FILES) > len(CASES) and len(FIXTURES) == 2


@pytest.mark.parametrize("path", CASE_FILES, ids=lambda path: os.path.relpath(path, ROOT))
def test_oracle_case_files_read_the_same(path):
    text = nginx_parser.read_file(path)
    for data in (False, True):
        assert_same_string(text, data)
    # nginx's buffer at other offsets of the same file
    for shift in (1, 2048, 4000, 4095):
        assert_same_string(" " * shift + text)
    dump = "# configuration file /etc/nginx/nginx.conf:\n" + text + "\n"
    config = assert_same_dump(dump)
    if config is not None:
        for code in inline_code(config):
            assert_same_uses(code)


@pytest.mark.parametrize("case", CASES, ids=lambda case: os.path.basename(os.path.dirname(case)))
def test_oracle_cases_load_the_same(case):
    main = os.path.join(case, "nginx.conf")
    fast = outcome(nginx_parser.load_tree, main)
    exact = outcome(nginx_parser.load_tree, main, exact=True)
    assert fast[0] == exact[0]
    if fast[0] == "error":
        assert fast == exact
        return
    assert config_reading(fast[1]) == config_reading(exact[1])
    assert outcome(findings, fast[1], False) == outcome(findings, exact[1], True)


@pytest.mark.parametrize("path", FIXTURES, ids=os.path.basename)
def test_fixture_dumps_read_the_same(path):
    config = assert_same_dump(nginx_parser.read_file(path))
    assert config is not None and config.files
    for code in inline_code(config):
        assert_same_uses(code)


STATEMENTS = [
    "listen 80;", "location / {", "}", "a;", "return 200 \"ok\";", "set $a ${b};", "x 'a b' c;",
    "# comment\n", "a #b\n;", "access_by_lua_file /x.lua;", "content_by_lua_block { return }",
    "if ($a) {", "a\\;b;", "w" * 1030 + ";", "a\r\n;", "\u00e9;", "if ($a = b);", "a \"x\ny\" b;",
    "a 'x\n' b;", "a \"\" '' \"'\" '\"';", "a b\"c\";", "a \"b\");", "\"a\" {",
    # rejected by nginx
    "map $a $b {", "include a b;", "include;", "content_by_lua_block x;", "a\"b\" {;", "a \"b\"c;",
    "a " + "\u20ac" * 1400 + ";", "a \"" + "\u20ac" * 1400 + "\";",  # more than 4096 bytes
]
REJECTED = STATEMENTS.index("map $a $b {")


@pytest.mark.parametrize("statement", STATEMENTS)
@pytest.mark.parametrize("margin", range(-3, 4))
@pytest.mark.parametrize("comment", ["", "#c\n"])
def test_statements_at_the_end_of_the_buffer_read_the_same(statement, margin, comment):
    # the statement ends at nginx's first buffer end, or a few characters before or after;
    # where the buffer is refilled depends on the token before it (a comment or not)
    pad = nginx_parser.CONF_BUFFER - len(statement) + margin
    after = " x;\n  content_by_lua_block { a = '}' }\n" + " " * 5000 + "set_by_lua_block $a { }\n"
    opened = "a {\nb {\n" + comment
    closed = "}" * (2 + statement.endswith("{") - (statement == "}"))
    text = opened[:-len(comment) or None] + " " * (pad - len(opened)) + comment + statement + after + closed
    assert text.index(statement) + len(statement) == nginx_parser.CONF_BUFFER + margin
    fast = outcome(read_string, text)
    assert fast == outcome(read_string, text, exact=True)
    assert fast[0] == ("ok" if STATEMENTS.index(statement) < REJECTED else "error")


@pytest.mark.parametrize("shift", list(range(0, 700, 11)) + [1000, 2047, 2048, 2049, 3000, 4095])
def test_the_benchmark_dump_reads_the_same_at_every_buffer_offset(shift):
    marker = "# configuration file /etc/nginx/conf.d/servers.conf:\n"
    text = BENCH.generate_dump(24).replace(marker, marker + " " * shift)
    config = assert_same_dump(text)
    assert len(config.files["/etc/nginx/conf.d/servers.conf"]) == 24
    for code in set(inline_code(config)):
        assert_same_uses(code)


LUA_TRICKY = [
    "-- [[\nos.execute()]]", "-- \"\\\nos\"", ".0x", ".0xos", "1los.exit()", "--[[ os ]] os.exit()",
    "--[==[ ]] os ]==] io.popen()", "[[ os ]] io.popen()", "'os' \"io\" os", "x = [=[\n]] os ]=]",
    "os\x1c", "\x1cos.exit()", "\xa0 os.exit()", "local os = 1", "a.os.execute()", "a:load()",
    "(\"\").dump(f)", "--[[ unfinished os", "[[ unfinished os", "\"unfinished os", "os --[[",
    "\u00e9os.exit()", "\u0663os.exit()", "osx os_ _os", "ngx.say(1) x.y = x1", "e1 1e e 1e+5e",
    "[[ \" ]] os.exit() \"", "[=[ ' ]=] os.exit() '", "\"[[\" os.exit() --]]", "'--' os.exit()",
]


@pytest.mark.parametrize("code", LUA_TRICKY)
def test_tricky_lua_finds_the_same(code):
    assert_same_uses(code)
    assert_same_uses(code, WATCHING)
    assert_same_uses(code + "\nos.execute()", WATCHING)


def test_the_alias_cases_find_the_same():
    cases = (lua_alias_cases.DANGEROUS + lua_alias_cases.SAFE + lua_alias_cases.OVER_APPROXIMATIONS
             + lua_alias_cases.MISSES)
    assert len(cases) > 50
    for case in cases:
        assert_same_uses(case[1])
        assert_same_uses(case[1], ("os.execute", "end", "string.*", "x"))


# -- generated inputs ------------------------------------------------------------------------

DUMP_PIECES = [
    "# configuration file /etc/nginx/nginx.conf:\n", "# configuration file /etc/nginx/conf.d/a.conf:\n",
    "# configuration file /etc/nginx/conf.d/b.conf:\n", "# configuration file conf.d/a.conf:\r\n",
    "# configuration file :\n", "# configuration file ::\n", "#  configuration file /a:\n",
    "# configuration file /etc/nginx/conf.d/a.conf:", "nginx: the configuration file is ok\n", "nginx: ",
    "\n", " \n", "\t\n", "\x0c\n", "\xa0\n", "\r", "include conf.d/*.conf;\n", "include /etc/nginx/conf.d/a.conf;\n",
    "include conf.d/b.conf;\n", "http {\n", "}\n", "a b;\n", "map $a $b {\n", "content_by_lua_block { os.exit() }\n",
    "lua_code_cache off;\n", "# a comment\n", "[[\n", "\"\n",
]


@settings(**GENERATED)
@given(st.lists(st.sampled_from(DUMP_PIECES), max_size=30).map("".join),
       st.sampled_from([None, "/etc/nginx/nginx.conf", "/etc/nginx/conf.d/a.conf", "x"]))
def test_generated_dumps_split_and_read_the_same(text, main):
    assert_same_dump(text, main)


NGINX_PIECES = [
    " ", "  ", "\t", "\r", "\n", "\r\n", ";", "{", "}", "#", "# c {\n", "\"", "'", "\\", "\\\"",
    "\\n", "\\;", "\\{", "$", "${", "$x", "a", "b1", "a\"b", "'a b'", "\"a;b{}\"", "(", ")",
    "\x00", "\x0b", "\x0c", "\x1c", "\x85", "\xa0", "\u00e9", "\u2028", "server", "location /",
    "if ($a)", "map $a $b", "types", "include x.conf", "return 200", "content_by_lua_block",
    "set_by_lua_block $v", "access_by_lua_block {", "lua_code_cache off", "http {", "events {}",
    "[[", "]]", "[==[", "]==]", "[=[", "--", "--[[", "--[==[", "-", "[", "]", "=",
    "os.execute(\"x\")", "string", "load", "return \"}\"", "'}'", "-- }\n", "\" \n",
    " " * 700, "#" + "x" * 1100 + "\n", "x" * 1030, "\n" * 40, "-- " + "y" * 2100 + "\n",
]
LUA_PIECES = [
    " ", "\t", "\r", "\n", "\r\n", "\x0b", "\x0c", "\x1c", "\xa0", "\u00e9", "\x00", "--", "--[[",
    "]]", "[[", "[=[", "]=]", "[", "]", "=", "-", "\"", "'", "\\", "\\\"", "\\\n", "{", "}", "(",
    ")", ".", ":", ",", ";", "..", "...", "~=", "#", "0x1p4", "1e5", "1los", "0xos", ".5", "3",
    "os", "io", "_G", "load", "loadstring", "string", "dump", "debug", "package", "require",
    "rawget", "getfenv", "local", "function", "end", "for", "in", "do", "x", "osx", "_os", "ngx",
    "execute", "popen", "loaded", "= os", ".execute(", "os.execute(\"a\")", "local o = os ",
    "(\"\").dump", "return",
]


@settings(**GENERATED)
@given(st.lists(st.sampled_from(NGINX_PIECES), max_size=60).map("".join), st.booleans(),
       st.integers(0, 3))
def test_generated_configurations_read_the_same(text, data, cut):
    assert_same_string(text, data)
    # the size of a dumped file (one byte shorter than its text) and shorter ones
    assert_same_string(text, data, max(0, len(text) - cut))


@settings(**GENERATED)
@given(st.lists(st.sampled_from(NGINX_PIECES + ["content_by_lua_block {", "}"] * 5), max_size=80)
       .map("".join), st.integers(0, 4100))
def test_generated_lua_blocks_read_the_same_wherever_the_buffer_ends(body, shift):
    text = "#" * min(shift, 1000) + "\n" + " " * shift + "content_by_lua_block {" + body + "}\n"
    assert_same_string(text)


LUA_BODIES = [
    "", "--[[\n}", "--[[ ]] }", "--[==[ ]] }\n]==] }", "[[ } ]]", "[==[ }", "[=[ ]] ]=]", "\"}\n",
    "\"}", "'\\'}'", "'\\\n}'", "- -}", "--}\n", "-- }\r}", "{ { } }", "[ [[ ]] [ }", "--[=x }",
    "\"a\" \"\\\"}\"", "x = [[\n{\n]] ", "-" * 5 + "\n", "\x00}\x00", "\u00e9 \"\u00e9}\"",
    # longer than half a buffer: lua-nginx-module refills inside them
    "-- " + "z" * 1500 + "\n" + "x = [[a]] { } " * 60, " " * 2045 + "'}' }", "{" * 1500 + "}" * 1500,
    "--[[" + "}" * 4090 + "]]", "s = \"" + "x" * 4100 + "\"",
]


def assert_same_block(text, last, size):
    fast_buffer, exact_buffer = [last, size], [last, size]
    fast = nginx_parser._read_lua_block_fast(text, 0, fast_buffer)
    exact = outcome(nginx_parser.read_lua_block, text, 0, "t.conf", exact_buffer)
    if fast is not None:
        assert exact == ("ok", fast)
        assert fast_buffer == exact_buffer
    return fast is not None


def buffer_ends(end):
    """Where nginx's buffer may end for a block ending at end: around the block's end and
    around half a buffer after each of its positions (where lua-nginx-module refills)."""
    half = nginx_parser.CONF_BUFFER // 2
    near = set(range(0, 9)) | set(range(max(0, end - 8), end + 9))
    near |= set(range(half - 8, half + 9)) | set(range(end + half - 8, end + half + 9))
    return sorted(near | set(range(0, end + half + 9, 37)))


@pytest.mark.parametrize("body", LUA_BODIES)
def test_lua_block_bodies_end_where_read_lua_block_ends_them(body):
    text = body + "}" + " " * 6000
    fast = 0
    for last in buffer_ends(len(body) + 1):
        for size in (last, len(text)):
            fast += assert_same_block(text, last, size)
    without = nginx_parser._read_lua_block_fast(text, 0, None)
    if without is not None:
        assert outcome(nginx_parser.read_lua_block, text, 0, "t.conf") == ("ok", without)
    assert fast or without is None


@settings(**GENERATED)
@given(st.lists(st.sampled_from(LUA_PIECES + ["{", "}"] * 4 + [" " * 1000, "-- " + "z" * 1500 + "\n"]),
                max_size=60).map("".join), st.data())
def test_generated_lua_block_bodies_end_where_read_lua_block_ends_them(body, data):
    text = body + "}" + " " * 6000
    end = len(body) + 1
    last = data.draw(st.one_of(st.integers(end - 3, end + 3), st.integers(2040, end + 2050),
                               st.integers(0, len(text))).filter(lambda n: 0 <= n <= len(text)))
    size = data.draw(st.sampled_from([last, len(text)]))
    assert_same_block(text, last, size)
    without = nginx_parser._read_lua_block_fast(text, 0, None)
    if without is not None:
        assert outcome(nginx_parser.read_lua_block, text, 0, "t.conf") == ("ok", without)


LUA_CHARACTERS = "osxl_0159eEpPuUiLX.-[]=\"'\\\n\r\t {}();:,~#\x00\x0b\x1c\xa0\u00e9\u0663"
WATCHING = ("os.execute", "end", "string.*", "x", "x1", "e", "ngx.say")


@settings(**GENERATED)
@given(st.lists(st.one_of(st.sampled_from(LUA_PIECES), st.text(LUA_CHARACTERS, max_size=4)), max_size=40)
       .map("".join))
def test_generated_lua_code_finds_the_same(code):
    assert_same_uses(code)
    assert_same_uses(code, WATCHING)


@settings(**GENERATED)
@given(st.text(LUA_CHARACTERS, max_size=30))
def test_generated_characters_find_the_same(code):
    assert_same_uses(code)
    assert_same_uses(code, WATCHING)
