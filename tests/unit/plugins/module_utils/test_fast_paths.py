# -*- coding: utf-8 -*-
"""The fast paths of the verifier's readers against their exact paths, input by input.

nginx_parser and lua_tokens read most input through shortcuts (a statement at a time, a
Lua block body in one regex run, Lua code without any watched name in one match) and fall
back to the token-by-token readers when a shortcut cannot be sure. A shortcut that read a
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
    fast = outcome(nginx_parser.parse_dump, text, main)
    exact = outcome(nginx_parser.parse_dump, text, main, exact=True)
    assert fast[0] == exact[0]
    if fast[0] == "error":
        assert fast == exact
        return None
    assert config_reading(fast[1]) == config_reading(exact[1])
    assert findings(fast[1], False) == findings(exact[1], True)
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
            for child in _all(node.block):
                yield child


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

LUA_PIECES = [
    " ", "\t", "\r", "\n", "\r\n", "\x0b", "\x0c", "\x1c", "\xa0", "\u00e9", "\x00", "--", "--[[",
    "]]", "[[", "[=[", "]=]", "[", "]", "=", "-", "\"", "'", "\\", "\\\"", "\\\n", "{", "}", "(",
    ")", ".", ":", ",", ";", "..", "...", "~=", "#", "0x1p4", "1e5", "1los", "0xos", ".5", "3",
    "os", "io", "_G", "load", "loadstring", "string", "dump", "debug", "package", "require",
    "rawget", "getfenv", "local", "function", "end", "for", "in", "do", "x", "osx", "_os", "ngx",
    "execute", "popen", "loaded", "= os", ".execute(", "os.execute(\"a\")", "local o = os ",
    "(\"\").dump", "return",
]


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
