# -*- coding: utf-8 -*-
"""Inline Lua cases for the dangerous-call finder, shared by its unit test and its oracle.

Each case is (id, code, reached): reached is the set of what running the code reaches, as
labels: a dangerous_calls entry ("os.execute", "debug.*") for a call of that function, and
'require("os")' for a require of a library that holds one. The unit test checks
find_dangerous against these labels; the oracle test runs every case with LuaJIT (the
dangerous functions stubbed to record their calls) and checks it reaches exactly these.
Every case runs to its end without an error, so a safe look-alike really calls its own
function where the name suggests a dangerous one.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

NOOP = "function() end"

DANGEROUS = [
    # aliases of a library, chains of them, and of a function
    ("local-alias", 'local o = os; o.execute("true")', {"os.execute"}),
    ("alias-chain", 'local o = os local p = o local q = p q.remove("/nonexistent")', {"os.remove"}),
    ("function-alias", 'local e = os.execute; e("true")', {"os.execute"}),
    ("function-alias-chain", 'local e = os.execute local f = e f("true")', {"os.execute"}),
    ("multi-line-alias", 'local o =\n  os\no.execute("true")', {"os.execute"}),
    ("alias-string-key", 'local o = os o["execute"]("true")', {"os.execute"}),
    ("alias-method-call", 'local o = os o:execute()', {"os.execute"}),
    ("two-aliases", 'local a, b = io, os b.execute("x") a.popen("y")', {"os.execute", "io.popen"}),
    ("parenthesised", 'local o = (os) o.remove("/nonexistent")', {"os.remove"}),
    ("alias-in-do", 'do local o = os o.rename("/a", "/b") end', {"os.rename"}),
    ("alias-through-and", 'local t = true and os t.exit(0)', {"os.exit"}),
    ("alias-of-load", 'local run = load run("return 1")', {"load"}),
    ("alias-of-loadstring", 'local l = loadstring l("return 1")', {"loadstring"}),
    ("alias-of-setfenv", 'local f = setfenv f(1, {})', {"setfenv"}),
    ("local-load-is-load", 'local load = load load("return 1")', {"load"}),
    ("alias-of-debug", 'local dbg = debug local h = dbg.sethook h()', {"debug.*"}),
    ("alias-of-string", 'local s = string s.dump(print)', {"string.dump"}),
    ("string-method", '("").dump(print)', {"string.dump"}),
    ("string-value-method", 'local s = "abc" s:dump()', {"string.dump"}),
    ("global-alias", 'x = os x.execute("true")', {"os.execute"}),
    ("global-alias-through-G", '_G.y = io y.popen("true")', {"io.popen"}),
    ("field-holds-function", 'local t = {} t.f = os.execute t.f("true")', {"os.execute"}),
    # the globals table
    ("G-field", '_G.os.execute("true")', {"os.execute"}),
    ("G-string-key", '_G["os"].execute("true")', {"os.execute"}),
    ("G-of-G", '_G._G.os.execute("true")', {"os.execute"}),
    ("G-alias", 'local g = _G local o = g.os o.exit(0)', {"os.exit"}),
    ("G-constant-key", 'local s = "os" _G[s].rename("/a", "/b")', {"os.rename"}),
    ("rawget", 'rawget(_G, "os").execute("true")', {"os.execute"}),
    ("rawget-twice", 'rawget(rawget(_G, "os"), "execute")("true")', {"os.execute"}),
    ("rawget-alias", 'local rg = rawget local o = rg(_G, "os") o.execute("true")', {"os.execute"}),
    ("getfenv-0", 'getfenv(0).os.execute("true")', {"os.execute"}),
    ("getfenv-no-argument", 'getfenv().os.execute("true")', {"os.execute"}),
    ("getfenv-1", 'getfenv(1).io.popen("true")', {"io.popen"}),
    ("getfenv-alias", 'local g = getfenv(0) g.debug.traceback()', {"debug.*"}),
    ("getfenv-function-alias", 'local gf = getfenv gf(0).io.popen("true")', {"io.popen"}),
    # package.loaded and require
    ("package-loaded", 'package.loaded.io.popen("true")', {"io.popen"}),
    ("package-loaded-string-key", 'package.loaded["io"].popen("true")', {"io.popen"}),
    ("package-loaded-alias", 'local l = package.loaded local i = l.io i.popen("true")', {"io.popen"}),
    ("package-alias", 'local p = package p.loaded.os.execute("true")', {"os.execute"}),
    ("package-loaded-G", 'package.loaded._G.loadfile("/nonexistent")', {"loadfile"}),
    ("require-call", 'require("os").execute("true")', {'require("os")', "os.execute"}),
    ("require-string-call", 'local i = require "io" i.popen("true")', {'require("io")', "io.popen"}),
    ("require-debug", 'local d = require("debug") d.getinfo(1)', {'require("debug")', "debug.*"}),
    ("require-alias", 'local req = require req("os").exit(0)', {'require("os")', "os.exit"}),
    # scopes: a shadowing local ends with its block
    ("closure-alias", 'local function go(cmd) local o = os return o.execute(cmd) end go("true")',
     {"os.execute"}),
    ("upvalue-alias", 'local o = os local function go() o.execute("true") end go()', {"os.execute"}),
    ("shadow-ends-with-do", 'do local load = print end load("return 1")', {"load"}),
    ("shadow-ends-with-function",
     'local function f(load) return load end f(tostring) load("return 1")', {"load"}),
    ("shadow-ends-with-for", 'for _, debug in ipairs({1}) do end debug.getinfo(1)', {"debug.*"}),
    ("shadow-ends-with-if", 'if true then local os = {} end os.execute("true")', {"os.execute"}),
    ("shadow-ends-with-repeat",
     'repeat local dofile = %s until dofile() == nil dofile("/nonexistent")' % NOOP, {"dofile"}),
    ("shadow-in-else-only",
     'if false then local load = tostring else load("return 1") end', {"load"}),
    ("reassigned-alias", 'local o = print if true then o = os end o.execute("true")', {"os.execute"}),
    ("alias-assigned-in-loop",
     'local o = {execute = %s} for i = 1, 2 do o.execute("true") o = os end' % NOOP, {"os.execute"}),
    ("alias-chain-in-loop",
     'local a = {execute = %s} for i = 1, 2 do local b = a b.execute("true") a = os end' % NOOP,
     {"os.execute"}),
    ("direct-calls", 'os.exit(1) os.remove("/a") os.rename("/a", "/b") dofile("/nonexistent")',
     {"os.exit", "os.remove", "os.rename", "dofile"}),
]

SAFE = [
    ("local-function-load", 'local function load() return 1 end load("x")'),
    ("parameters", 'local function f(load, os, debug) load() os.execute() debug.getinfo() end '
                   'f(%s, {execute = %s}, {getinfo = %s})' % (NOOP, NOOP, NOOP)),
    ("for-in-variable", 'for _, os in ipairs({{execute = %s}}) do os.execute("true") end' % NOOP),
    ("numeric-for-variable", "for debug = 1, 1 do local x = debug + 1 end"),
    ("local-table-named-os", 'local os = {execute = %s} os.execute("true")' % NOOP),
    ("local-in-do", 'do local io = {popen = %s} io.popen("true") end' % NOOP),
    ("field-named-os", 'local t = {os = {execute = %s}} t.os.execute("true")' % NOOP),
    ("method-named-load", "local obj = {load = %s} obj:load() obj.load()" % NOOP),
    ("strings-and-comments", "local s = \"os.execute('x')\" -- os.execute(\"x\")"),
    ("long-strings-and-comments", '--[[ os.execute("x") ]] local x = [==[ io.popen("x") ]==]'),
    ("local-setfenv", "local setfenv = %s setfenv(1, {})" % NOOP),
    ("local-in-if", "if true then local loadstring = tostring loadstring(1) end"),
    ("local-in-while", "while true do local dofile = tostring dofile(1) break end"),
    ("local-in-repeat-condition", "repeat local loadfile = tostring until loadfile(1)"),
    ("table-keys", "local t = {load = 1, setfenv = 2, os = 3, [\"debug\"] = 4}"),
    ("harmless-library-calls", 'os.time() os.date() io.write("") string.format("%d", 1)'),
    ("alias-of-harmless-function", "local o = os.time local n = o()"),
    ("G-harmless", "local g = _G local t = g.tostring(1)"),
    ("rawget-harmless", 'rawget(_G, "tostring")(1)'),
    ("field-debug-alias", "local t = {debug = {getinfo = %s}} local d = t.debug d.getinfo()" % NOOP),
    ("method-self", "local M = {} function M:load() return self end M:load()"),
    ("parameter-os", "local function run(os) return os.execute end run({execute = 1})"),
    ("prelude-removes-globals", "os.execute = nil io.popen = nil _G.loadstring = nil"),
    ("name-with-prefix", "local load_config = %s load_config()" % NOOP),
    ("local-package", 'local package = {loaded = {io = {popen = %s}}} package.loaded.io.popen("true")'
                      % NOOP),
    ("local-G", 'local _G = {os = {execute = %s}} _G.os.execute("true")' % NOOP),
    ("local-getfenv", 'local function getfenv() return {os = {execute = %s}} end '
                      'getfenv(0).os.execute("true")' % NOOP),
    ("local-rawget", 'local rawget = function() return {execute = %s} end '
                     'rawget(_G, "os").execute("true")' % NOOP),
    ("local-require", 'local require = function() return {execute = %s} end '
                      'require("os").execute("true")' % NOOP),
    ("nested-closure", "local function f() local os = {exit = %s} return function() os.exit(0) end end "
                       "f()()" % NOOP),
    ("goto-and-label", "local load = tostring goto l ::l:: load(1)"),
    ("string-methods", 'local s = "" local n = s:len() local m = ("load(%s)"):format("x")'),
    ("require-other-module", 'local t = require("table") t.insert({}, 1)'),
]

# A static reading flags more than one run reaches here; each says why.
OVER_APPROXIMATIONS = [
    ("unreached-code", 'if false then os.execute("true") end', {"os.execute"},
     "a branch that never runs is still read"),
    ("global-redefined", 'function load() end load("x")', {"load"},
     "a global the chunk replaces is still taken for the library's"),
    ("alias-reassigned", 'local o = os o = {execute = %s} o.execute("true")' % NOOP, {"os.execute"},
     "a variable stands for every value ever assigned to it"),
    ("read-not-called", "local run = os.execute", {"os.execute"},
     "reading a dangerous function is a use, called or not"),
]

# Beyond a static reading: the value travels through something this reader does not follow.
MISSES = [
    ("function-return", 'local function lib() return os end lib().execute("true")', {"os.execute"}),
    ("table-field", 'local t = {o = os} t.o.execute("true")', {"os.execute"}),
    ("computed-key", '_G["o" .. "s"].execute("true")', {"os.execute"}),
    ("function-argument", 'local function run(l) l.execute("true") end run(os)', {"os.execute"}),
]
