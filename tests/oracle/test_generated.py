# -*- coding: utf-8 -*-
# Copyright: hardened.openresty contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Generated configurations, read by real nginx and by us; block boundaries and values must agree.

A seeded, bounded hypothesis run writes valid-looking configurations: `return 200 VALUE;`
locations whose VALUE is a word or a quoted string with escapes, `;`, braces, `#` and
newlines; `content_by_lua_block` locations that print Lua short and long strings full of
braces, quotes and brackets, with `--` and `--[==[ ]==]` comments around them; comments
with the same characters between statements; locations moved into included files; and a
`lua_code_cache off;` that is either a real directive or hidden in a comment. Real nginx
(both distros, same containers as the cases) says whether it accepts the text, logs the
alert or not, and answers each location: the status tells where its blocks ended, the body
what a value (or the Lua string) really was. The verifier's reading (parse_dump of the
`nginx -T` output, load_tree of the files) must agree on all of it. A disagreement is
shrunk (for at most SHRINK_SECONDS) and written to cases/generated_<digest>/ as a new case.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import json
import os
import threading
import time

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, seed, settings, strategies as st  # noqa: E402

from ansible_collections.hardened.openresty.tests.oracle import harness  # noqa: E402
from ansible_collections.hardened.openresty.tests.oracle.values import compare_values  # noqa: E402

# The examples follow from the seed and from the modules loaded in the run (hypothesis also
# draws string constants from the test modules it sees): `make oracle` always runs the same
# 40, a run of this file alone another fixed 40.
SEED = 20261201
EXAMPLES = int(os.environ.get("ORACLE_EXAMPLES", "40"))
# Shrinking asks the binaries for every candidate; once this long has passed since the
# first failure, a candidate counts as passing, so that hypothesis stops with the smallest
# failure found so far. Generation itself is bounded by EXAMPLES, not by time, so that a
# slow machine runs the same examples.
SHRINK_SECONDS = float(os.environ.get("ORACLE_SHRINK_SECONDS", "20"))
HEAD = ("load_module /usr/lib/nginx/modules/ndk_http_module.so;\n"
        "load_module /usr/lib/nginx/modules/ngx_http_lua_module.so;\n"
        "events {}\n")
BASE = ('    include oracle-probe.conf;\n'
        '    lua_package_path "/srv/lua/?.lua;/usr/share/lua/5.1/?.lua";\n'
        '    lua_package_cpath "/srv/lib/?.so";\n')

WORD_CHARS = "abcXYZ019_./:@%+=,-"
QUOTED_CHARS = "abc xyz;{}#()'`~!,|"
LUA_CHARS = "ab {}()[]=-#;,'\"\\"
COMMENT_CHARS = "ab {};\"'#[]=-"


def _escaped(quote):
    return st.sampled_from(["\\" + quote, "\\\\", "\\t", "\\n", "\\r", "\\q", "\\;", "\\{"])


@st.composite
def nginx_value(draw):
    """A `return 200` text: an unquoted word or a quoted string."""
    kind = draw(st.sampled_from(["word", '"', "'"]))
    if kind == "word":
        parts = draw(st.lists(st.one_of(st.text(WORD_CHARS, min_size=1, max_size=4),
                                        st.sampled_from(["\\;", "\\{", "\\ ", "\\t", "\\\\"])),
                              min_size=1, max_size=4))
        text = "".join(parts)
        return text if not text.startswith("#") else "x" + text
    other = "'" if kind == '"' else '"'
    parts = draw(st.lists(st.one_of(st.text(QUOTED_CHARS + other, min_size=1, max_size=4),
                                    _escaped(kind), st.just("\n")), max_size=5))
    return kind + "".join(parts) + kind


@st.composite
def lua_string(draw):
    """A Lua string literal: short (either quote, with escapes) or long (any level)."""
    kind = draw(st.sampled_from(['"', "'", "long"]))
    if kind == "long":
        level = "=" * draw(st.integers(0, 2))
        body = draw(st.text(LUA_CHARS + "\n", max_size=10))
        close = "]" + level + "]"
        body = body.replace(close, "]" + level + "=]") if close in body else body
        while close in body:
            body = body.replace(close, "")
        if (body + "]").endswith(close):
            body += " "
        return "[" + level + "[" + body + close
    other = "'" if kind == '"' else '"'
    parts = draw(st.lists(st.one_of(st.text("ab {}()[]=-#;," + other, min_size=1, max_size=4),
                                    st.sampled_from(["\\" + kind, "\\\\", "\\n", "\\t"])),
                          max_size=4))
    return kind + "".join(parts) + kind


@st.composite
def lua_comment(draw):
    if draw(st.booleans()):
        level = "=" * draw(st.integers(0, 2))
        body = draw(st.text(COMMENT_CHARS + "\n", max_size=8)).replace("]" + level + "]", "")
        if (body + "]").endswith("]" + level + "]"):
            body += " "
        return "--[" + level + "[" + body + "]" + level + "]"
    return "-- " + draw(st.text(COMMENT_CHARS, max_size=8))


@st.composite
def comment(draw):
    return "# " + draw(st.text(COMMENT_CHARS, max_size=10))


@st.composite
def location(draw, index):
    if draw(st.booleans()):
        return ("value", "/v%d" % index, "location = /v%d {\n    return 200 %s;\n}\n" % (index, draw(nginx_value())))
    strings = draw(st.lists(lua_string(), min_size=1, max_size=3))
    notes = draw(st.lists(lua_comment(), max_size=2))
    lines = ["    content_by_lua_block {"]
    for note in notes[:1]:
        lines.append("        " + note)
    lines.append("        ngx.say(%s)" % ", ".join(strings))
    for note in notes[1:]:
        lines.append("        " + note)
    lines.append("    }")
    return ("lua", "/l%d" % index, "location = /l%d {\n%s\n}\n" % (index, "\n".join(lines)))


@st.composite
def configuration(draw):
    count = draw(st.integers(1, 3))
    files = {}
    server = []
    urls = []
    for index in range(count):
        if draw(st.booleans()):
            server.append(draw(comment()))
        kind, url, text = draw(location(index))
        urls.append(url)
        if draw(st.integers(0, 3)) == 0:
            name = "gen/loc%d.conf" % index
            files[name] = text
            server.append("include %s;" % name)
        else:
            server.append(text)
    cache = draw(st.sampled_from(["", "lua_code_cache off;", "# lua_code_cache off;",
                                  "lua_code_cache off; # }", "#lua_code_cache off;\nlua_code_cache on;"]))
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    body = (HEAD + "http {\n" + BASE + "    " + cache + "\n    server {\n        listen unix:/run/oracle-case.sock;\n"
            + "\n".join(server) + "\n    }\n}\n")
    files["nginx.conf"] = body.replace("\n", newline)
    return files, urls


def _save_case(files, urls, problems, distro):
    digest = hashlib.sha256(repr(sorted(files.items())).encode("utf-8")).hexdigest()[:10]
    target = os.path.join(harness.CASES, "generated_%s" % digest)
    if os.path.exists(target):
        return target
    os.makedirs(target)
    meta = {"requests": urls}
    if any("\r" in text for text in files.values()):
        # The repository holds LF files only: CR goes back in at run time (case.json replace).
        files = dict((rel, text.replace("\r", "<CR>")) for rel, text in files.items())
        meta["replace"] = {"<CR>": "\r"}
    for rel, text in files.items():
        path = os.path.join(target, rel)
        if not os.path.isdir(os.path.dirname(path)):
            os.makedirs(os.path.dirname(path))
        if rel == "nginx.conf":
            summary = "; ".join(problems)[:300].replace("\n", " ").replace("\r", " ")
            text = "# Found by test_generated.py (seed %d) on %s: %s\n%s" % (SEED, distro, summary, text)
        with open(path, "wb") as handle:
            handle.write(text.encode("utf-8"))
    with open(os.path.join(target, "case.json"), "w") as handle:
        json.dump(meta, handle, sort_keys=True)
        handle.write("\n")
    return target


def test_generated_configurations_read_as_nginx_reads_them(oracles):
    state = {"count": 0, "last_failure": None, "first_failure": None, "log": []}

    @seed(SEED)
    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=False,
              suppress_health_check=list(HealthCheck), print_blob=False,
              report_multiple_bugs=False)
    @given(configuration())
    def check(example):
        files, urls = example[0], example[1]
        if state["first_failure"] is not None and time.time() - state["first_failure"] > SHRINK_SECONDS:
            return
        state["count"] += 1
        name = "gen%d" % state["count"]
        answers = {}

        errors = []

        def ask(distro, oracle):
            try:
                answers[distro] = oracle.files(name, files, run=True, urls=urls)
            except Exception as exc:  # re-raised below: an oracle error never passes quietly
                errors.append(exc)

        threads = [threading.Thread(target=ask, args=item) for item in sorted(oracles.items())]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors or len(answers) != len(oracles):
            raise harness.OracleError("the oracle did not answer: %s" % errors)
        state["log"].append(dict((distro, {"accepted": answer["accepted"],
                                           "started": (answer.get("runtime") or {}).get("started"),
                                           "errors": [e["message"] for e in answer["test_log"]][:2]})
                                 for distro, answer in answers.items()))
        for distro in sorted(answers):
            problems = compare_values(files, urls, answers[distro])
            if problems:
                state["last_failure"] = (files, urls, problems, distro)
                state["first_failure"] = state["first_failure"] or time.time()
                raise AssertionError("%s: %s" % (distro, "\n".join(problems)))

    try:
        try:
            check()
        finally:
            # A log of what nginx said for each example, next to the cases' answers.
            with open(os.path.join(harness.HERE, "..", "output", "oracle", "generator.json"), "w") as handle:
                json.dump(state["log"], handle, indent=1)
    except Exception:
        if state["last_failure"] is not None:
            failure = state["last_failure"]
            problems = failure[2]
            target = _save_case(failure[0], failure[1], failure[2], failure[3])
            raise AssertionError("generated configuration disagrees (kept as %s):\n%s"
                                 % (os.path.basename(target), "\n".join(problems)))
        raise
    assert state["count"] > 0
