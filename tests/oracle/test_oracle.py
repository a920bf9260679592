# -*- coding: utf-8 -*-
# Copyright: hardened.openresty contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The verifier against the real binaries, case by case and distro by distro.

For every case under cases/ the oracle (real nginx, lua-nginx-module and LuaJIT in a
container, see harness.py and probe/) says what nginx accepted, which alerts it logged,
what the worker's package.path/cpath and user really were, what a regex and a cosocket
did under the configured limits, and which dangerous functions the inline Lua reached.
The verifier's public entry points read the same configuration, from the `nginx -T` dump
(verify_dump_text) and from the files (verify_tree), and every fact must agree. Nothing
here states an expected answer: a case is only a configuration.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import inspect
import json
import os
import re
import shutil

import pytest

from ansible_collections.hardened.openresty.plugins.module_utils import lua_rules
from ansible_collections.hardened.openresty.plugins.module_utils import nginx_parser
from ansible_collections.hardened.openresty.plugins.module_utils.nginx_values import parse_duration
from ansible_collections.hardened.openresty.tests.oracle import harness
from ansible_collections.hardened.openresty.tests.oracle.values import compare_values

NAMES = harness.case_names()
# nginx messages that come from reading the text (ngx_conf_read_token and
# lua-nginx-module's block scanner), not from a directive's handler.
LEXER_ERRORS = re.compile(r'unexpected "|unexpected end of file|too long parameter|has no opening "\{"'
                          r"|long bracket|lua code block|unbalanced|is not terminated")
INLINE_CHUNK = re.compile(r"^=\w+_by_lua(?:_block)?\((.*):(\d+)\)$")
PATH_RULES = {
    "package_path": ("lua-package-path-missing", "lua-package-path-relative",
                     "lua-package-path-default-fallback"),
    "package_cpath": ("lua-package-cpath-missing", "lua-package-cpath-relative",
                      "lua-package-cpath-default-fallback"),
}
REGEX_RULES = ("lua-regex-match-limit-missing", "lua-regex-match-limit-too-high")
ENTRY = re.compile(r"\(policy dangerous_calls: ([^)]+)\)$")
TOLERANCE = 0.3  # seconds, for a measured cosocket read timeout


def test_there_are_enough_cases():
    assert len(NAMES) >= 60


def _rules(report):
    return set(finding["rule"] for finding in report["findings"])


def _dangerous(report):
    found = set()
    for finding in report["findings"]:
        if finding["rule"] == "lua-dangerous-call":
            match = ENTRY.search(finding["message"])
            found.add((match.group(1) if match else finding["message"], finding["line"]))
    return found


def _oracle_calls(runtime):
    """(policy entry, line in the configuration file) of each dangerous call inline code made."""
    found = set()
    for call in runtime.get("calls") or ():
        match = INLINE_CHUNK.match(call["chunk"])
        if not match and call["chunk"] != "(tail)":
            continue  # a module file, resty.core or C: not inline code
        entry = "debug.*" if call["call"].startswith("debug.") else call["call"]
        line = int(match.group(2)) + call["line"] - 1 if match else None
        found.add((entry, line))
    return found


def _http_value(config, name):
    values = [node.args[0] for node, context in config.walk()
              if node.directive == name and context == ("http",) and node.args]
    return values[-1] if values else None


def _seconds(value):
    try:
        return parse_duration(value), None
    except ValueError as exc:
        return None, str(exc)


def _tree_copy(name, tmp_path):
    """The case's files as they sit on a host (probe server included), for verify_tree."""
    target = str(tmp_path / name)
    shutil.copytree(os.path.join(harness.CASES, name), target, symlinks=True)
    harness.apply_replacements(target, harness.case_meta(name).get("replace"))
    shutil.copy(os.path.join(harness.PROBE, "oracle-probe.conf"), os.path.join(target, "oracle-probe.conf"))
    return target


def _case_files(name):
    root = os.path.join(harness.CASES, name)
    files = {}
    for directory, _dirs, names in os.walk(root):
        for filename in names:
            path = os.path.join(directory, filename)
            if filename != "case.json" and os.path.isfile(path) and not os.path.islink(path):
                with open(path, "rb") as handle:
                    files[os.path.relpath(path, root)] = harness.replaced(
                        handle.read(), harness.case_meta(name).get("replace"))
    return files


def _compare_reading(label, report, config, oracle):
    """Disagreements between one reading of ours and the oracle's facts."""
    problems = []
    rules = _rules(report)
    alerts = " | ".join(entry["message"] for entry in oracle.get("test_log", ()))
    real = "lua_code_cache is off" in alerts
    ours = "lua-code-cache-off" in rules
    if real != ours:
        problems.append("%s: nginx %s 'lua_code_cache is off' (alerts: %s); we %s lua-code-cache-off"
                        % (label, "logged" if real else "did not log", alerts or "none",
                           "report" if ours else "do not report"))
    runtime = oracle.get("runtime") or {}
    if "oracle timeout" in (runtime.get("error") or ""):
        raise harness.OracleError("%s: %s" % (label, runtime["error"]))
    if not runtime.get("started"):
        return problems  # nginx itself refused to start (its log is in answers.json)
    workers = runtime.get("workers") or []
    real = any(worker["uid"] == 0 for worker in workers)
    ours = "nginx-user-root" in rules
    if workers and real != ours:
        problems.append("%s: workers ran as %s; we %s nginx-user-root"
                        % (label, ", ".join(sorted(set(w["user"] for w in workers))),
                           "report" if ours else "do not report"))
    for key, names in PATH_RULES.items():
        if key not in runtime:
            continue
        relative = [entry for entry in runtime[key].split(";") if entry and not entry.startswith("/")]
        ours = sorted(rules.intersection(names))
        if bool(relative) != bool(ours):
            problems.append("%s: the worker's %s is %r (relative entries: %s); we report %s"
                            % (label, key.replace("_", "."), runtime[key], relative or "none",
                               ours or "none of %s" % ", ".join(names)))
    if "regex_big" in runtime:
        real = runtime["regex_big"] == "no-error"
        ours = sorted(rules.intersection(REGEX_RULES))
        if real != bool(ours):
            what = "ran" if real else "hit the limit (%s)" % runtime["regex_big"]
            problems.append("%s: a ~200k-step regex %s under the effective lua_regex_match_limit; we report %s"
                            % (label, what, ours or "neither %s" % " nor ".join(REGEX_RULES)))
    if config is not None and runtime.get("read_timeout"):
        problems.extend(_compare_read_timeout(label, config, runtime["read_timeout"]))
    if config is not None and runtime.get("keepalive"):
        problems.extend(_compare_keepalive(label, config, runtime["keepalive"], rules))
    # Entries are compared, lines only shown: LuaJIT reports where a call happens, the
    # verifier where the function is referenced (local run = os.execute ... run()).
    real = _oracle_calls(runtime)
    ours = _dangerous(report)
    if set(e for e, _l in real) != set(e for e, _l in ours):
        problems.append("%s: inline Lua reached %s; we report lua-dangerous-call for %s"
                        % (label, sorted(real, key=str) or "nothing", sorted(ours, key=str) or "nothing"))
    return problems


def _compare_read_timeout(label, config, measured):
    value = _http_value(config, "lua_socket_read_timeout")
    if value is None:
        return []
    seconds, error = _seconds(value)
    elapsed = measured.get("elapsed")
    elapsed = float(elapsed) if elapsed not in (None, "") else None
    if error:
        return ["%s: nginx accepted lua_socket_read_timeout %r (a read waited %s); we read it as invalid: %s"
                % (label, value, "%.3fs" % elapsed if elapsed is not None else "over 2.5s", error)]
    if elapsed is None:
        return [] if seconds > 2.2 else [
            "%s: lua_socket_read_timeout %r: a read waited over 2.5s; we read %gs" % (label, value, seconds)]
    if abs(elapsed - seconds) > TOLERANCE:
        return ["%s: lua_socket_read_timeout %r: a read timed out after %.3fs; we read %gs"
                % (label, value, elapsed, seconds)]
    return []


def _compare_keepalive(label, config, measured, rules):
    value = _http_value(config, "lua_socket_keepalive_timeout")
    if value is None:
        return []
    seconds, error = _seconds(value)
    survived = measured.get("reused") not in (None, "0", "nil")
    if error:
        return ["%s: nginx accepted lua_socket_keepalive_timeout %r; we read it as invalid: %s"
                % (label, value, error)]
    # What the rules read must predict whether an idle pooled connection outlives 0.4s. A
    # value read as (nearly) zero that nginx keeps is only read right as "never closed",
    # which no policy maximum allows.
    if survived and seconds < 0.3 and "lua-socket-keepalive-timeout-too-long" not in rules:
        return ["%s: lua_socket_keepalive_timeout %r: a pooled connection survived 0.4s idle (nginx never "
                "closes it); we read %gs and report no lua-socket-keepalive-timeout-too-long"
                % (label, value, seconds)]
    if not survived and seconds > 0.6:
        return ["%s: lua_socket_keepalive_timeout %r: a pooled connection was closed within 0.4s; we read %gs"
                % (label, value, seconds)]
    return []


def _accepts(function, name):
    try:
        return name in inspect.signature(function).parameters
    except (TypeError, ValueError):
        return False


def _files_reading(name, meta, oracle, tmp_path):
    """verify_tree on the case's files, as on a live host (with the service's -g, if any)."""
    main = os.path.join(_tree_copy(name, tmp_path), "nginx.conf")
    options = {"prefix": os.path.dirname(main) + "/"}
    load = {}
    if meta.get("g"):
        if not (_accepts(lua_rules.verify_tree, "params") and _accepts(nginx_parser.load_tree, "params")):
            return ["files: the service runs with -g %r; verify_tree cannot be given it" % meta["g"]]
        options["params"] = load["params"] = meta["g"]
    # No dump cross-check here: the dump names the container's paths, not this copy's.
    error = None
    try:
        config = nginx_parser.load_tree(main, **load)
        report = lua_rules.verify_tree(main, **options)
    except nginx_parser.NginxParseError as exc:
        error = exc
    if oracle["accepted"] and error is not None:
        return ["files: nginx accepted the configuration; we refuse it: %s" % error]
    if not oracle["accepted"]:
        message = " | ".join(e["message"] for e in oracle["test_log"] if e["level"] == "emerg")
        if LEXER_ERRORS.search(message) and error is None:
            return ["files: nginx refused the text (%s); we read it without error" % message]
        return []
    problems = _compare_reading("files", report, config, oracle)
    return problems


@pytest.mark.parametrize("distro", sorted(harness.DISTROS))
@pytest.mark.parametrize("name", NAMES)
def test_verifier_agrees_with_the_binaries(answers, name, distro, tmp_path):
    oracle = answers[distro][name]
    meta = harness.case_meta(name)
    prefix = "/oracle/run/%s/" % name
    problems = []
    if oracle["accepted"]:
        try:
            # main is the documented way to name the main file of a dump taken with -g.
            config = nginx_parser.parse_dump(oracle["dump"], prefix + "nginx.conf")
            options = {"prefix": prefix}
            if meta.get("g") and _accepts(lua_rules.verify_dump_text, "params"):
                options["params"] = meta["g"]  # nginx -T does not print the -g directives
            report = lua_rules.verify_dump_text(oracle["dump"], prefix + "nginx.conf", **options)
        except nginx_parser.NginxParseError as exc:
            problems.append("dump: nginx accepted the configuration; we refuse its dump: %s" % exc)
        else:
            problems.extend(_compare_reading("dump", report, config, oracle))
    problems.extend(_files_reading(name, meta, oracle, tmp_path))
    value_urls = [url for url in meta.get("requests", ()) if re.match(r"^/[vl]\d+$", url)]
    if value_urls and oracle["accepted"]:
        problems.extend(compare_values(_case_files(name), value_urls, oracle))
    if problems:
        with open(os.path.join(harness.HERE, "..", "output", "oracle", "divergences.jsonl"), "a") as handle:
            handle.write(json.dumps({"case": name, "distro": distro, "problems": problems}) + "\n")
    assert not problems, "%s on %s disagrees with the binaries:\n  %s" % (name, distro, "\n  ".join(problems))
