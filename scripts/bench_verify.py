#!/usr/bin/env python
# -*- coding: utf-8 -*-
# Copyright: hardened.openresty contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark lua_sandbox_verify's parser and rules against gixy-ng and crossplane.

Generates an `nginx -T` dump with many server blocks (each with Lua directives, a
*_by_lua_block and a set_by_lua_block), then times, on that same input:

- ours: nginx_parser.parse_dump + lua_rules.evaluate (configuration rules only),
- gixy-ng: parse and audit with all its plugins, in its own environment (.venv-gixy, as
  published, with its ngxparse),
- crossplane: parse only (its own lexer and tree), crossplane 0.5.8 of this environment.

Prints a markdown table of the median of several runs and each ratio to ours. The
generated Lua uses no long strings, so that crossplane (and gixy-ng, built on it) can
parse it at all.

Run from a tree where this collection sits at ansible_collections/hardened/openresty:

    PYTHONPATH=<dir holding ansible_collections> python scripts/bench_verify.py --servers 10000
"""

from __future__ import absolute_import, division, print_function

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

SERVER = """\
    server {{
        listen {port};
        server_name app{n}.example.test;
        lua_socket_read_timeout 5s;
        lua_code_cache on;
        access_by_lua_file /srv/lua/app/current/access.lua;
        location / {{
            set_by_lua_block $backend {{ return "b{n}" }}
            content_by_lua_block {{
                -- a comment with a brace }} and a quote "
                local limits = {{ rate = {n}, burst = {{ 1, 2 }} }}
                local msg = "closing brace }} in a string"
                ngx.say(msg, " ", limits.rate, ngx.var.backend)
            }}
        }}
        location /health {{
            return 200 "ok";
        }}
    }}
"""

HEAD = """\
# configuration file /etc/nginx/nginx.conf:
user www-data;
worker_processes auto;
pid /run/nginx.pid;
events {
    worker_connections 1024;
}
http {
    lua_package_path "/srv/lua/lib/?.lua;/srv/lua/app/current/?.lua;/usr/share/lua/5.1/?.lua";
    lua_package_cpath "/srv/lua/lib/?.so";
    lua_socket_connect_timeout 2s;
    lua_socket_send_timeout 5s;
    lua_socket_read_timeout 5s;
    lua_regex_match_limit 100000;
    include /etc/nginx/conf.d/*.conf;
}

# configuration file /etc/nginx/conf.d/servers.conf:
"""


def generate_dump(servers):
    """Text of an nginx -T dump with the given number of server blocks."""
    parts = [HEAD]
    for n in range(servers):
        parts.append(SERVER.format(n=n, port=8000 + n % 1000))
    return "".join(parts)


def time_runs(function, runs):
    times = []
    for _run in range(runs):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_ours(text):
    from ansible_collections.hardened.openresty.plugins.module_utils import lua_rules, nginx_parser

    def run():
        config = nginx_parser.parse_dump(text)
        report = lua_rules.evaluate(config)
        assert report["findings"] is not None
    return run


GIXY_RUN = """
import json, logging, statistics, sys, time
from gixy.core.config import Config
from gixy.core.manager import Manager
logging.getLogger("gixy").setLevel(logging.ERROR)
path, runs = sys.argv[1], int(sys.argv[2])
times = []
for _run in range(runs):
    start = time.perf_counter()
    with Manager(config=Config()) as yoda:
        with open(path, "rb") as handle:
            yoda.audit(path, handle, is_stdin=False)
        list(yoda.results)
    times.append(time.perf_counter() - start)
print(json.dumps(statistics.median(times)))
"""


def gixy_python():
    """gixy-ng's own environment (.venv-gixy, created by the Makefile): its ngxparse installs
    the same `crossplane` package as the real crossplane of this environment."""
    gixy = os.environ.get("HARDENED_GIXY") or os.path.join(
        os.path.dirname(os.path.dirname(os.path.abspath(__file__))), ".venv-gixy", "bin", "gixy")
    return os.path.join(os.path.dirname(gixy), "python")


def bench_gixy(path, runs):
    """The same in-process timing of parse + audit, run by gixy-ng's own interpreter."""
    run = subprocess.run([gixy_python(), "-c", GIXY_RUN, path, str(runs)], capture_output=True, text=True,
                         check=False)
    if run.returncode != 0:
        raise RuntimeError(run.stderr.strip().splitlines()[-1] if run.stderr.strip() else "exit %d" % run.returncode)
    return json.loads(run.stdout)


def bench_crossplane(path):
    import crossplane

    def run():
        payload = crossplane.parse(path, single=True, check_ctx=False, check_args=False)
        assert payload["status"] == "ok", payload["errors"][:1]
    return run


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--servers", type=int, default=10000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    text = generate_dump(args.servers)
    handle, path = tempfile.mkstemp(suffix=".conf", prefix="bench-nginx-T-")
    with os.fdopen(handle, "w") as out:
        out.write(text)
    try:
        rows = [("ours: parse + verify (nginx_parser, lua_rules)", time_runs(bench_ours(text), args.runs))]
        for name, measure in (("gixy-ng: parse + audit", lambda: bench_gixy(path, args.runs)),
                              ("crossplane: parse only", lambda: time_runs(bench_crossplane(path), args.runs))):
            try:
                rows.append((name, measure()))
            except Exception as exc:  # a tool that cannot read the input is reported, not fatal
                rows.append((name, "failed: %s" % exc))
    finally:
        os.unlink(path)

    ours = rows[0][1]
    print("Input: %d server blocks, %d lines, %.1f MB; median of %d runs; Python %s on %s."
          % (args.servers, text.count("\n"), len(text) / 1e6, args.runs,
             platform.python_version(), platform.machine()))
    print()
    print("| tool | median seconds | ratio to ours |")
    print("|---|---:|---:|")
    for name, seconds in rows:
        if isinstance(seconds, float):
            print("| %s | %.2f | %.2fx |" % (name, seconds, seconds / ours))
        else:
            print("| %s | %s | - |" % (name, seconds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
