# -*- coding: utf-8 -*-
"""The oracle for find_dangerous: LuaJIT runs every case and says what it reaches.

Each case runs in its own LuaJIT process, with every function of the default
dangerous_calls list replaced by a stub that records its call, and require wrapped to
record a require of a library that holds one. What LuaJIT reports is compared with
find_dangerous on the same code. `make unit` installs LuaJIT when it can
(scripts/ensure-luajit.sh); without it these tests are skipped, saying so.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import shutil
import subprocess

import pytest

from ansible_collections.hardened.openresty.plugins.module_utils.lua_tokens import find_dangerous
from ansible_collections.hardened.openresty.tests.unit.plugins.module_utils.lua_alias_cases import (
    DANGEROUS,
    MISSES,
    OVER_APPROXIMATIONS,
    SAFE,
)

LUAJIT = shutil.which("luajit")
pytestmark = pytest.mark.skipif(
    LUAJIT is None, reason="LuaJIT is not installed (as root on Debian/Ubuntu, "
                           "scripts/ensure-luajit.sh installs it; or apt-get install luajit)")

# Loads the case first (loadstring is stubbed afterwards), then stubs and runs it.
HARNESS = r"""
local handle = assert(io.open(arg[1], "rb"))
local chunk = assert(loadstring(handle:read("*a"), "=case"))
handle:close()
local write, ipairs, pairs, tostring = io.write, ipairs, pairs, tostring
local reached, order = {}, {}
local function mark(label)
  if not reached[label] then reached[label] = true; order[#order + 1] = label end
end
local function stub(label) return function() mark(label) end end
for library, names in pairs({os = {"execute", "remove", "rename", "exit"}, io = {"popen"},
                             package = {"loadlib"}, string = {"dump"}}) do
  for _, name in ipairs(names) do _G[library][name] = stub(library .. "." .. name) end
end
for _, name in ipairs({"loadstring", "load", "dofile", "loadfile", "setfenv"}) do
  _G[name] = stub(name)
end
for name in pairs(debug) do debug[name] = stub("debug.*") end
local real_require = require
local libraries = {os = true, io = true, package = true, string = true, debug = true}
require = function(name, ...)
  if libraries[name] then mark('require("' .. name .. '")') end
  return real_require(name, ...)
end
local ok, err = pcall(chunk)
write(ok and "ok\n" or ("error " .. tostring(err) .. "\n"))
for _, label in ipairs(order) do write(label, "\n") end
"""


@pytest.fixture(scope="module")
def run_luajit(tmp_path_factory):
    directory = tmp_path_factory.mktemp("lua-oracle")
    harness = directory / "harness.lua"
    harness.write_text(HARNESS)

    def run(case_id, code):
        path = directory / (case_id + ".lua")
        path.write_text(code)
        result = subprocess.run([LUAJIT, str(harness), str(path)], capture_output=True, text=True,
                                timeout=30, check=False, env=dict(os.environ, LUA_PATH="", LUA_CPATH=""))
        lines = result.stdout.splitlines()
        assert result.returncode == 0 and lines and lines[0] == "ok", \
            "case %s did not run to its end: %r %r" % (case_id, result.stdout, result.stderr)
        return set(lines[1:])
    return run


def found_labels(code):
    return set(reference if reference.startswith("require(") else entry
               for entry, reference, _line in find_dangerous(code))


@pytest.mark.parametrize("case_id,code,expected", DANGEROUS + [(c[0], c[1], set()) for c in SAFE],
                         ids=[c[0] for c in DANGEROUS + SAFE])
def test_luajit_reaches_what_the_finder_finds(run_luajit, case_id, code, expected):
    reached = run_luajit(case_id, code)
    assert reached == expected, "the case itself is wrong: LuaJIT reaches %s" % sorted(reached)
    assert found_labels(code) == reached


@pytest.mark.parametrize("case_id,code,flagged,why", OVER_APPROXIMATIONS,
                         ids=[c[0] for c in OVER_APPROXIMATIONS])
def test_over_approximations_flag_more_than_luajit_reaches(run_luajit, case_id, code, flagged, why):
    reached = run_luajit(case_id, code)
    assert reached < found_labels(code) == flagged, why


@pytest.mark.parametrize("case_id,code,reached", MISSES, ids=[c[0] for c in MISSES])
def test_known_misses_are_still_misses(run_luajit, case_id, code, reached):
    """A static reading does not follow these; when it learns to, move the case to DANGEROUS."""
    assert run_luajit(case_id, code) == reached
    assert found_labels(code) == set()
