from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.hardened.openresty.plugins.module_utils import lua_tokens
from ansible_collections.hardened.openresty.plugins.module_utils.lua_tokens import (
    DEFAULT_DANGEROUS_CALLS,
    NAME,
    STRING,
    LuaSyntaxError,
    find_dangerous,
    tokenize,
    validate_entries,
)
from ansible_collections.hardened.openresty.tests.unit.plugins.module_utils.lua_alias_cases import (
    DANGEROUS,
    MISSES,
    OVER_APPROXIMATIONS,
    SAFE,
)


def kinds_values(code):
    return [(kind, value) for kind, value, _pos in tokenize(code)]


@pytest.mark.parametrize("code,value", [
    ('"os.execute"', "os.execute"),
    ("'os.execute'", "os.execute"),
    (r'"a\"b"', 'a"b'),
    (r"'a\'b'", "a'b"),
    (r'"\111\115"', "os"),
    (r'"\x6fs"', "os"),
    ("[[os.execute]]", "os.execute"),
    ("[[\nfirst newline dropped]]", "first newline dropped"),
    ("[==[ ]] ]=] ]==]", " ]] ]=] "),
])
def test_strings_are_single_decoded_tokens(code, value):
    assert kinds_values(code) == [(STRING, value)]


@pytest.mark.parametrize("code", [
    "-- os.execute()",
    "--[[ os.execute() ]]",
    "--[==[ ]] os.execute() ]==]",
    "--[[\nos.execute()\n]]",
])
def test_comments_are_dropped(code):
    assert tokenize(code) == []


def test_names_operators_and_positions():
    tokens = tokenize("local x = a..b -- c\nreturn x:y(1.5e3, ...)")
    assert [(k, v) for k, v, _pos in tokens] == [
        ("op", "local"), (NAME, "x"), ("op", "="), (NAME, "a"), ("op", ".."), (NAME, "b"),
        ("op", "return"), (NAME, "x"), ("op", ":"), (NAME, "y"), ("op", "("), ("number", "1.5e3"),
        ("op", ","), ("op", "..."), ("op", ")")]
    assert tokens[6][2] == len("local x = a..b -- c\n")


@pytest.mark.parametrize("code", ['x = "open', "x = [[ open", "x = --[==[ open", "x = 'a\nb'"])
def test_unfinished_strings_and_comments(code):
    with pytest.raises(LuaSyntaxError):
        tokenize(code, strict=True)
    tokenize(code)  # lenient mode stops quietly


def uses(code, entries=None):
    return list(find_dangerous(code) if entries is None else find_dangerous(code, entries))


@pytest.mark.parametrize("code,expected", [
    ('os.execute("id")', [("os.execute", "os.execute", 1)]),
    ('os.execute "id"', [("os.execute", "os.execute", 1)]),
    ("local run = os.execute", [("os.execute", "os.execute", 1)]),
    ('os["execute"]("id")', [("os.execute", "os.execute", 1)]),
    (r'os["\101xecute"]("id")', [("os.execute", "os.execute", 1)]),
    ('_G.os.execute("id")', [("os.execute", "os.execute", 1)]),
    ('_G["io"].popen("ls")', [("io.popen", "io.popen", 1)]),
    ("x = 1\n\nlocal f = loadstring(s)", [("loadstring", "loadstring", 3)]),
    ("local f = load(s)", [("load", "load", 1)]),
    ("local load = load", [("load", "load", 1)]),
    ("dofile('/x.lua') loadfile('/y.lua')", [("dofile", "dofile", 1), ("loadfile", "loadfile", 1)]),
    ("package.loadlib('/x.so', 'f')", [("package.loadlib", "package.loadlib", 1)]),
    ("string.dump(f)", [("string.dump", "string.dump", 1)]),
    ("setfenv(1, {})", [("setfenv", "setfenv", 1)]),
    ("debug.sethook()", [("debug.*", "debug.sethook", 1)]),
    ("debug['getinfo'](1)", [("debug.*", "debug.getinfo", 1)]),
    ("os.exit(1) os.remove('/a') os.rename('/a', '/b')",
     [("os.exit", "os.exit", 1), ("os.remove", "os.remove", 1), ("os.rename", "os.rename", 1)]),
    ('local o = require("os")', [("os.execute", 'require("os")', 1)]),
    ("local d = require 'debug'", [("debug.*", 'require("debug")', 1)]),
])
def test_dangerous_uses_are_found(code, expected):
    assert uses(code) == expected


@pytest.mark.parametrize("code", [
    "-- os.execute('id')",
    "local s = 'os.execute(1)'",
    "local s = [[ io.popen() ]]",
    "t.load(x) obj:load(y) M.dofile = 1",
    "function M.load() end",
    "local function load() end",
    "local t = { load = 1, setfenv = 2 }",
    "os.execute = nil io.popen = nil _G.loadstring = nil",
    "local debug = ngx.var.arg_debug if debug then ngx.log(ngx.ERR, 1) end",
    "os.time() os.date() io.write('x') string.format('%d', 1)",
    "local r = require('resty.core')",
    "local loader = loadstring_safe(x)",
    "ngx.say(payload)",
])
def test_harmless_code_is_not_flagged(code):
    assert uses(code) == []


def test_custom_entries():
    code = 'ngx.exit(403) os.execute("id") ffi.C.system("id")'
    assert uses(code, ["ngx.exit", "ffi.*"]) == [("ngx.exit", "ngx.exit", 1), ("ffi.*", "ffi.C", 1)]


@pytest.mark.parametrize("entries", ["os.execute", ["os.execute()"], ["*"], ["a..b"], [1]])
def test_invalid_entries(entries):
    with pytest.raises(ValueError):
        validate_entries(entries)


def test_a_line_comment_ends_at_carriage_return_as_in_luajit():
    # LuaJIT ends a "--" comment at CR as well as LF: the call after the CR runs.
    assert [use[0] for use in find_dangerous('-- note\ros.execute("id")\n')] == ["os.execute"]
    assert [use[0] for use in find_dangerous('-- note\r\nos.execute("id")\n')] == ["os.execute"]
    # the same call inside the comment's line is a comment
    assert find_dangerous('-- note os.execute("id")\n') == []


@pytest.mark.parametrize("code", [
    '-- note\ros.execute("id")\n',
    '-- note\r\nos.execute("id")\n',
    '-- note os.execute("id")\n',
    '--[[ \r ]] os.execute("id")\n',
    '--[[ \r os.execute("id") ]]\n',
])
def test_comment_ends_agree_with_luajit(code):
    """The real LuaJIT (when installed) decides whether the call is code or comment."""
    import shutil
    import subprocess
    luajit = shutil.which("luajit")
    if luajit is None:
        pytest.skip("luajit is not installed")
    probe = ('os.execute = function() io.write("REACHED") end\n'
             'local f = assert(loadstring(io.read("*a"))) f()\n')
    out = subprocess.run([luajit, "-e", probe], input=code.encode(), stdout=subprocess.PIPE,
                         check=True).stdout
    assert bool(find_dangerous(code)) == (out == b"REACHED")


def labels(code):
    return set(reference if reference.startswith("require(") else entry
               for entry, reference, _line in find_dangerous(code))


@pytest.mark.parametrize("code,expected", [c[1:] for c in DANGEROUS], ids=[c[0] for c in DANGEROUS])
def test_dangerous_functions_through_other_names(code, expected):
    assert labels(code) == expected


@pytest.mark.parametrize("code", [c[1] for c in SAFE], ids=[c[0] for c in SAFE])
def test_look_alikes_are_not_the_globals(code):
    assert labels(code) == set()


@pytest.mark.parametrize("code,expected", [c[1:3] for c in OVER_APPROXIMATIONS],
                         ids=[c[0] for c in OVER_APPROXIMATIONS])
def test_documented_over_approximations(code, expected):
    assert labels(code) == expected


@pytest.mark.parametrize("code", [c[1] for c in MISSES], ids=[c[0] for c in MISSES])
def test_documented_misses(code):
    assert labels(code) == set()


@pytest.mark.parametrize("code,expected", [
    ("local o = os\n\no.execute('x')", [("os.execute", "os.execute", 3)]),
    ("local e = os.execute\ne('x')", [("os.execute", "os.execute", 1), ("os.execute", "os.execute", 2)]),
    ("local o = {}\nfor i = 1, 2 do\n  o.execute('x')\n  o = os\nend",
     [("os.execute", "os.execute", 3)]),
    ('local i = require "io"\ni.popen("x")', [("io.popen", 'require("io")', 1), ("io.popen", "io.popen", 2)]),
    ("getfenv(0)\n.debug\n.sethook()", [("debug.*", "debug.sethook", 1)]),
])
def test_alias_uses_are_reported_where_they_are(code, expected):
    assert uses(code) == expected


@pytest.mark.parametrize("code,expected", [
    ("local x = os.execute(", [("os.execute", "os.execute", 1)]),  # unfinished call
    ("local load = load(s) end end", [("load", "load", 1)]),  # stray end
    ("local o = os o.execute( '", [("os.execute", "os.execute", 1)]),  # unfinished string
    ("(" * 400 + "os.execute" + ")" * 400 + "()", [("os.execute", "os.execute", 1)]),  # too deep
])
def test_code_the_reader_cannot_follow_is_scanned_name_by_name(code, expected):
    assert uses(code) == expected


def _all_case_codes():
    return [c[1] for c in DANGEROUS + SAFE + OVER_APPROXIMATIONS + MISSES]


@pytest.mark.parametrize("code", _all_case_codes())
def test_fast_path_only_answers_when_it_agrees_with_the_reader(code):
    compiled = lua_tokens._compile(DEFAULT_DANGEROUS_CALLS)
    tokens = tokenize(code)
    flat, exact = lua_tokens._flat_scan(tokens, compiled)
    reader = lua_tokens._Reader(tokens, compiled[0], compiled[1]).run()
    if exact:
        assert set(use[:2] for use in flat) == set(use[:2] for use in reader)


def test_fast_path_is_taken_for_plain_code():
    compiled = lua_tokens._compile(DEFAULT_DANGEROUS_CALLS)
    code = 'local cjson = require "cjson.safe" ngx.say(os.time(), string.format("%d", 1))'
    assert lua_tokens._flat_scan(tokenize(code), compiled) == ([], True)
