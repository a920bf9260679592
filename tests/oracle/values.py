# -*- coding: utf-8 -*-
# Copyright: hardened.openresty contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where blocks end and what values are: nginx's answers against our reading.

Used by the generator and by every case that lists `requests` to `location = /vN` (a
`return 200 VALUE;`) or `location = /lN` (a content_by_lua_block that prints Lua strings):
the status nginx answers says whether the location exists where we think it does, the body
what the value (or the Lua string) really was.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import shutil
import tempfile

from ansible_collections.hardened.openresty.plugins.module_utils import lua_tokens
from ansible_collections.hardened.openresty.plugins.module_utils import nginx_parser
from ansible_collections.hardened.openresty.tests.oracle import harness


def _our_reading(config):
    """{url: ("value", text) or ("lua", printed)} and whether lua_code_cache is off, from our parse."""
    found = {}
    cache_off = False
    for node, _context in config.walk():
        if node.directive == "lua_code_cache" and node.args and node.args[0].lower() == "off":
            cache_off = True
        if node.directive != "location" or len(node.args) != 2 or node.args[0] != "=":
            continue
        for child in node.block or ():
            if child.directive == "return" and len(child.args) == 2:
                found[node.args[1]] = child.args[1]
            elif child.directive == "content_by_lua_block":
                strings = [value for kind, value, _pos in lua_tokens.tokenize(child.args[-1]) if kind == lua_tokens.STRING]
                found[node.args[1]] = "".join(strings) + "\n"
    return found, cache_off


def compare_values(files, urls, oracle):
    """Disagreements on acceptance, the lua_code_cache alert and each location's answer."""
    problems = []
    readings = []
    if oracle["accepted"]:
        try:
            readings.append(("dump", nginx_parser.parse_dump(oracle["dump"])))
        except nginx_parser.NginxParseError as exc:
            problems.append("dump: nginx accepted it; we refuse the dump: %s" % exc)
    work = tempfile.mkdtemp(prefix="oracle-gen-")
    try:
        for rel, text in files.items():
            path = os.path.join(work, rel)
            if not os.path.isdir(os.path.dirname(path)):
                os.makedirs(os.path.dirname(path))
            with open(path, "wb") as handle:
                handle.write(text if isinstance(text, bytes) else text.encode("utf-8"))
        shutil.copy(os.path.join(harness.PROBE, "oracle-probe.conf"), work)
        try:
            readings.append(("files", nginx_parser.load_tree(os.path.join(work, "nginx.conf"))))
            if not oracle["accepted"]:
                message = " | ".join(e["message"] for e in oracle["test_log"])
                if "unexpected" in message or "too long" in message or "lua code block" in message:
                    problems.append("files: nginx refused the text (%s); we read it" % message)
        except nginx_parser.NginxParseError as exc:
            if oracle["accepted"]:
                problems.append("files: nginx accepted it; we refuse it: %s" % exc)
    finally:
        shutil.rmtree(work)
    if not oracle["accepted"]:
        return problems
    runtime = oracle.get("runtime") or {}
    if not runtime.get("started"):
        # Never a silent pass: nginx accepted the text, so it must serve the locations.
        return problems + ["oracle: nginx accepted the configuration but did not serve it: %s; %s"
                           % (runtime.get("error"), [e["message"] for e in runtime.get("log", ())][:3])]
    alert = any("lua_code_cache is off" in e["message"] for e in oracle["test_log"])
    for label, config in readings:
        ours, cache_off = _our_reading(config)
        if alert != cache_off:
            problems.append("%s: nginx %s 'lua_code_cache is off'; our reading has it %s"
                            % (label, "logged" if alert else "did not log", "off" if cache_off else "not off"))
        for url in urls:
            answer = (runtime.get("requests") or {}).get(url)
            if answer is None or answer["rc"] not in (0, 22):
                problems.append("oracle: no answer from nginx for %s: %s" % (url, answer))
                continue
            real = answer["body"] if answer["status"] == 200 else None
            mine = ours.get(url)
            if real != mine:
                problems.append("%s: %s: nginx answered %d %r; we read %r"
                                % (label, url, answer["status"], real, mine))
    return problems
