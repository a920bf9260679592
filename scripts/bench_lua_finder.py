#!/usr/bin/env python
# -*- coding: utf-8 -*-
# Copyright: hardened.openresty contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark lua_tokens.find_dangerous (the lua-dangerous-call finder) on inline Lua blocks.

Times two inputs of distinct blocks (so no cache helps) that pass the finder's prefilter
(they use os, string and require): "plain" code, which the name-by-name scan answers
alone, and the same code with a library kept under another name (local o = os), which
makes the grammar reader run. Prints CPU seconds (process time, steadier than wall time on
a busy machine), median of several runs.

    PYTHONPATH=<dir holding ansible_collections> python scripts/bench_lua_finder.py --blocks 20000
"""

from __future__ import absolute_import, division, print_function

import argparse
import statistics
import time

BLOCK = """
local cjson = require "cjson.safe"
local limits = {{ rate = {n}, burst = {{ 1, 2 }} }}
local started = os.time()
local function handler(req, os_name)
    local t = ngx.now() - started
    for i, v in ipairs(req.args) do
        if v == "x" then ngx.log(ngx.ERR, "bad ", i) end
    end
    local msg = string.format("%d %s", limits.rate, os_name or os.date())
    return msg
end
ngx.say(handler({{args = {{}}}}, "n{n}"))
"""


def main():
    from ansible_collections.hardened.openresty.plugins.module_utils.lua_tokens import find_dangerous

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--blocks", type=int, default=20000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    plain = [BLOCK.format(n=n) for n in range(args.blocks)]
    inputs = (("plain (name-by-name scan)", plain),
              ("with local o = os (grammar reader)", ["local o = os\n" + block for block in plain]))
    print("%d distinct blocks of %d lines; CPU seconds, median of %d runs." % (
        args.blocks, BLOCK.count("\n"), args.runs))
    print()
    print("| input | median CPU seconds | per block |")
    print("|---|---:|---:|")
    for name, blocks in inputs:
        times = []
        for _run in range(args.runs):
            start = time.process_time()
            for block in blocks:
                find_dangerous(block)
            times.append(time.process_time() - start)
        median = statistics.median(times)
        print("| %s | %.2f | %.0f us |" % (name, median, median / len(blocks) * 1e6))


if __name__ == "__main__":
    main()
