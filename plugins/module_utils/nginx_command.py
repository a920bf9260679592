# -*- coding: utf-8 -*-
# Copyright: hardened.openresty contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""How the nginx service really starts: the -c, -p and -g it runs with, and what nginx -T
must print for the files read from disk.

The flags come from the systemd unit's ExecStart (``systemctl cat``: the unit file and its
drop-ins, read with systemd's quoting) or from the running master's command line
(/proc/<pid>/cmdline, which nginx rewrites to ``nginx: master process ARGV...``). nginx
reads them like ngx_get_options(): a value may follow its flag or be attached to it
(``-c/etc/nginx/nginx.conf``), the last -g wins, -p gets a trailing slash, a relative -c
resolves against the prefix, and the configuration prefix (for relative includes) is the
main file's directory.

Standard library only: this runs on targets.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re

_VALUE_FLAGS = ("c", "p", "g", "e", "s")
_FLAG_WORD = re.compile(r"^-[?hvVtTqcpgse]")
_C_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v",
              "\\": "\\", '"': '"', "'": "'", "s": " "}
_MASTER_TITLE = "nginx: master process "


def unquote_words(text):
    """Split an ExecStart value into words the way systemd does (quotes, C escapes).

    Environment variables and specifiers are left as written ($VAR, %i): nginx's flags
    rarely use them, and a value that does is reported by its effect (nginx -T disagrees).
    """
    words = []
    index = 0
    length = len(text)
    while True:
        while index < length and text[index] in " \t\n":
            index += 1
        if index >= length:
            return words
        word = []
        quote = None
        while index < length:
            char = text[index]
            if quote is None and char in " \t\n":
                break
            if char == "\\" and index + 1 < length:
                following = text[index + 1]
                if following == "x" and re.match(r"[0-9a-fA-F]{2}", text[index + 2:index + 4]):
                    word.append(chr(int(text[index + 2:index + 4], 16)))
                    index += 4
                    continue
                if following in "01234567" and re.match(r"[0-7]{3}", text[index + 1:index + 4]):
                    word.append(chr(int(text[index + 1:index + 4], 8)))
                    index += 4
                    continue
                word.append(_C_ESCAPES.get(following, following))
                index += 2
                continue
            if quote is None and char in "\"'":
                quote = char
            elif char == quote:
                quote = None
            else:
                word.append(char)
            index += 1
        if quote is not None:
            raise ValueError("unfinished quote in ExecStart=%s" % text)
        words.append("".join(word))


def exec_start_from_unit(text):
    """The argv of the last effective ExecStart= in `systemctl cat UNIT` output, or None.

    Drop-ins follow the unit file in that output; an empty ExecStart= resets the list, as
    systemd does. Prefix characters (-, @, +, !, :) are removed (@ makes the second word
    argv[0]: nginx does not look at argv[0], so it is dropped here too).
    """
    lines = []
    pending = ""
    for raw in text.splitlines():
        if pending:
            raw = pending + raw
            pending = ""
        if raw.endswith("\\") and not raw.lstrip().startswith(("#", ";")):
            pending = raw[:-1] + " "
            continue
        lines.append(raw)
    section = None
    commands = []
    for line in lines:
        stripped = line.strip()
        if not stripped or stripped[0] in "#;":
            continue
        if stripped.startswith("[") and stripped.endswith("]"):
            section = stripped[1:-1]
            continue
        if section != "Service" or "=" not in stripped:
            continue
        key, value = stripped.split("=", 1)
        if key.strip() != "ExecStart":
            continue
        value = value.strip()
        if not value:
            commands = []
            continue
        at = False
        while value and value[0] in "-@+!:":
            at = at or value[0] == "@"
            value = value[1:]
        words = unquote_words(value)
        if at and len(words) > 1:
            words = [words[0]] + words[2:]
        commands.append(words)
    return commands[-1] if commands else None


def argv_from_cmdline(raw):
    """The argv of an nginx master from the bytes of /proc/<pid>/cmdline, or None.

    nginx replaces its command line with one title, ``nginx: master process`` followed by
    its arguments joined by spaces. A -g value is then taken up to the next word that is an
    nginx flag: a -g value that itself holds such a word, or a path with a space, cannot be
    told apart from the title (prefer the unit's ExecStart, which is exact).
    """
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", "replace")
    parts = [part for part in raw.split("\x00") if part]
    if not parts:
        return None
    if not parts[0].startswith(_MASTER_TITLE):
        return parts
    words = parts[0][len(_MASTER_TITLE):].split(" ")
    argv = [words[0]]
    index = 1
    while index < len(words):
        word = words[index]
        index += 1
        if word == "-g" or (word.startswith("-g") and len(word) > 2):
            value = [word[2:]] if len(word) > 2 else []
            while index < len(words) and not _FLAG_WORD.match(words[index]):
                value.append(words[index])
                index += 1
            argv += ["-g", " ".join(value)]
        elif word:
            argv.append(word)
    return argv


def flags_from_argv(argv):
    """dict(conf, prefix, params) from an nginx argv, as ngx_get_options() reads it.

    A value absent from the command line is None. Raises ValueError for a flag that misses
    its value.
    """
    flags = {"conf": None, "prefix": None, "params": None}
    names = {"c": "conf", "p": "prefix", "g": "params"}
    index = 1
    while index < len(argv):
        word = argv[index]
        index += 1
        if not word.startswith("-") or len(word) < 2:
            raise ValueError("invalid option %r in %s" % (word, " ".join(argv)))
        position = 1
        while position < len(word):
            flag = word[position]
            position += 1
            if flag not in _VALUE_FLAGS:
                continue  # -t, -q, -T, -v, -V...: no value
            if position < len(word):
                value = word[position:]
            elif index < len(argv):
                value = argv[index]
                index += 1
            else:
                raise ValueError('option "-%s" requires a value in %s' % (flag, " ".join(argv)))
            if flag in names:
                flags[names[flag]] = value
            break
    return flags


def effective_paths(flags, compiled_prefix=None, compiled_conf=None):
    """(main file, prefix) nginx uses with these flags and compiled-in defaults.

    The prefix gets a trailing slash; a relative main file resolves against the prefix.
    Either is None when nothing tells it.
    """
    prefix = flags.get("prefix") or compiled_prefix
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    main = flags.get("conf") or compiled_conf
    if main and not os.path.isabs(main) and prefix:
        main = os.path.join(prefix, main)
    return main, prefix


def dump_order(config, params_file):
    """The files in the order nginx opens them, which is the order nginx -T prints them:
    what the -g directives include first, then the main file, then depth first."""
    order = []
    seen = set()

    def add(path):
        seen.add(path)
        order.append(path)

    def visit(nodes):
        for node in nodes:
            if node.file != params_file and config.main not in seen:
                add(config.main)
            if node.block is not None:
                visit(node.block)
            for path in getattr(node, "includes", None) or ():
                if path not in seen:
                    add(path)
                    visit(config.files[path])

    visit(config.files[config.main])
    if config.main not in seen:
        add(config.main)
    return order


def expected_dump(texts):
    """What nginx -T prints for [(path, text)]: a marker line, the text and a newline each."""
    return "".join("# configuration file %s:\n%s\n" % (path, text) for path, text in texts)


def first_difference(texts, dump):
    """None when dump is what nginx prints for texts; else (file, line, message)."""
    expected = expected_dump(texts)
    if dump == expected:
        return None
    at = 0
    limit = min(len(expected), len(dump))
    while at < limit and expected[at] == dump[at]:
        at += 1
    offset = 0
    for path, text in texts:
        segment = len("# configuration file %s:\n" % path) + len(text) + 1
        if at < offset + segment:
            inside = at - offset - len("# configuration file %s:\n" % path)
            line = text.count("\n", 0, max(inside, 0)) + 1
            start = expected.rfind("\n", 0, at) + 1
            shown = dump[start:start + 80].split("\n", 1)[0]
            wanted = expected[start:start + 80].split("\n", 1)[0]
            return (path, line, "nginx -T prints %r where the file on disk holds %r"
                    % (shown, wanted))
        offset += segment
    return (texts[-1][0] if texts else None, None,
            "nginx -T prints more than the files on disk: %r" % dump[at:at + 60].split("\n", 1)[0])
