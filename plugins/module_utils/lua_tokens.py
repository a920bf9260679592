# -*- coding: utf-8 -*-
# Copyright: hardened.openresty contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A Lua 5.1 / LuaJIT tokenizer and a finder for references to dangerous functions.

Comments and strings become single tokens (comments are dropped), so a name that only
appears inside a comment or a string never looks like code. The finder is a static,
best-effort check of inline code; it is not a sandbox (a determined author can always reach
these functions indirectly, for example through ``require("ffi")``).

Standard library only: this runs on targets.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

NAME = "name"
STRING = "string"
NUMBER = "number"
OP = "op"

KEYWORDS = frozenset((
    "and", "break", "do", "else", "elseif", "end", "false", "for", "function", "goto", "if",
    "in", "local", "nil", "not", "or", "repeat", "return", "then", "true", "until", "while",
))

# One match per token; spaces before a token are part of its match. A line comment ends
# at CR or LF, as in LuaJIT's lexer (lj_lex.c: lex_iseol). Long brackets are
# matched with a back-reference to their level; an opening bracket without its closing
# one falls through to "unfinished".
_TOKEN = re.compile(
    r"""
    [ \t\r\n\f\v]*
    (?:
      (?P<comment>--(?:\[(?P<comment_level>=*)\[.*?\](?P=comment_level)\]|(?!\[=*\[)[^\r\n]*))
    | (?P<long_string>\[(?P<string_level>=*)\[.*?\](?P=string_level)\])
    | (?P<string>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')
    | (?P<unfinished>--\[=*\[|\[=*\[|["'])
    | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
    | (?P<number>0[xX][0-9a-fA-F.]*(?:[pP][+-]?\d+)?[uUlLi]*|\.?\d[\d.]*(?:[eE][+-]?\d+)?[uUlLi]*)
    | (?P<op>\.\.\.|\.\.|==|~=|<=|>=|::|[-+*/%^\#<>=(){}\[\];:,.])
    | (?P<stray>\S)
    )
    """,
    re.VERBOSE | re.DOTALL,
)
_STRING_ESCAPE = re.compile(r"\\(?:(\d{1,3})|x([0-9a-fA-F]{2})|z\s*|u\{([0-9a-fA-F]+)\}|(.))", re.DOTALL)
_SIMPLE_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v",
                   "\n": "\n"}

DEFAULT_DANGEROUS_CALLS = (
    "os.execute", "os.remove", "os.rename", "os.exit", "io.popen", "loadstring", "load",
    "dofile", "loadfile", "package.loadlib", "string.dump", "setfenv", "debug.*",
)
_ENTRY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.(?:[A-Za-z_][A-Za-z0-9_]*|\*))*$")


class LuaSyntaxError(ValueError):
    def __init__(self, message, line):
        super(LuaSyntaxError, self).__init__("%s at line %d" % (message, line))
        self.line = line


def line_of(code, pos):
    """The 1-based line of a position in code (tokens carry positions, not lines)."""
    return code.count("\n", 0, pos) + 1


def _decode_string(body):
    def replace(match):
        decimal, hexa, utf8, other = match.group(1), match.group(2), match.group(3), match.group(4)
        if decimal is not None:
            return chr(int(decimal) % 256)
        if hexa is not None:
            return chr(int(hexa, 16))
        if utf8 is not None:
            return chr(int(utf8, 16))
        if other is None:  # \z skips the following whitespace
            return ""
        return _SIMPLE_ESCAPES.get(other, other)

    return _STRING_ESCAPE.sub(replace, body) if "\\" in body else body


def tokenize(code, strict=False):
    """Return the tokens of Lua code as (kind, value, position) tuples; comments are dropped.

    kind is NAME, STRING (value decoded), NUMBER or OP (operators and keywords). With
    strict=False an unfinished string or long bracket ends the token list quietly (inline
    code in a quoted nginx argument may be anything); with strict=True it raises
    LuaSyntaxError, as does a character that is not Lua.
    """
    tokens = []
    append = tokens.append
    for match in _TOKEN.finditer(code):
        kind = match.lastgroup
        if kind is None:  # only trailing whitespace
            break
        value = match.group(kind)
        if kind == "name":
            append((OP if value in KEYWORDS else NAME, value, match.start(kind)))
        elif kind == "op":
            append((OP, value, match.start(kind)))
        elif kind == "string":
            append((STRING, _decode_string(value[1:-1]), match.start(kind)))
        elif kind == "long_string":
            body = value[len(match.group("string_level")) + 2:-len(match.group("string_level")) - 2]
            # A newline right after the opening bracket is not part of the string.
            if body.startswith("\r\n"):
                body = body[2:]
            elif body.startswith("\n"):
                body = body[1:]
            append((STRING, body, match.start(kind)))
        elif kind == "number":
            append((NUMBER, value, match.start(kind)))
        elif kind == "unfinished":
            if strict:
                raise LuaSyntaxError("unfinished %s" % ("string" if value in "\"'" else "long bracket"),
                                     line_of(code, match.start(kind)))
            break
        elif kind == "stray" and strict:
            raise LuaSyntaxError("unexpected %r" % value, line_of(code, match.start(kind)))
    return tokens


def validate_entries(entries):
    """Check dangerous-call entries ("os.execute", "load", "debug.*"); return them as a tuple."""
    if isinstance(entries, str) or not isinstance(entries, (list, tuple)):
        raise ValueError("dangerous_calls must be a list of names such as os.execute or debug.*")
    for entry in entries:
        if not isinstance(entry, str) or not _ENTRY.match(entry) or entry.startswith("*"):
            raise ValueError("dangerous_calls entry %r is not a Lua name, a dotted name or "
                             "a table name followed by .*" % (entry,))
    return tuple(entries)


def _read_chain(tokens, index):
    """Read NAME ( .NAME | :NAME | ["str"] )* from index; return (parts, next_index)."""
    parts = [tokens[index][1]]
    index += 1
    count = len(tokens)
    while index + 1 < count:
        kind, value, _pos = tokens[index]
        following = tokens[index + 1]
        if kind == OP and (value == "." or value == ":") and following[0] == NAME:
            parts.append(following[1])
            index += 2
        elif (kind == OP and value == "[" and following[0] == STRING and index + 2 < count
              and tokens[index + 2][1] == "]" and tokens[index + 2][0] == OP):
            parts.append(following[1])
            index += 3
        else:
            break
    return parts, index


def _matches(entry_parts, chain):
    if len(chain) < len(entry_parts):
        return False
    for want, have in zip(entry_parts, chain):
        if want != "*" and want != have:
            return False
    return True


_COMPILED = {}


def _compile(entries):
    """(entries by first name, library -> first entry, prefilter regex), cached per list."""
    key = tuple(entries)
    if key not in _COMPILED:
        by_first = {}
        libraries = {}
        for entry in key:
            parts = entry.split(".")
            by_first.setdefault(parts[0], []).append((entry, parts))
            if len(parts) > 1:
                libraries.setdefault(parts[0], entry)
        names = sorted(set(by_first) | set(["_G", "require"]))
        prefilter = re.compile(r"\b(?:%s)\b" % "|".join(re.escape(n) for n in names))
        _COMPILED[key] = (by_first, libraries, prefilter)
    return _COMPILED[key]


def find_dangerous(code, entries=DEFAULT_DANGEROUS_CALLS):
    """Return [(entry, reference, line)] for every use of a dangerous function in code.

    A use is a global access such as ``os.execute(...)``, ``local run = os.execute``,
    ``os["execute"]``, ``_G.os.execute``, ``load(...)``, or ``require("os")`` when an entry
    lives in that library. Not uses: names in comments or strings, fields of other tables
    (``t.load``, ``obj:load()``), declarations (``local function load``), assignments
    (``os.execute = nil``, as a prelude that removes globals does) and table keys.
    """
    by_first, libraries, prefilter = _compile(entries)
    # Every use starts with one of these names: code without them needs no tokenizing.
    if not prefilter.search(code):
        return []
    tokens = tokenize(code)
    found = []
    index = 0
    count = len(tokens)
    skip_after = (".", ":", "local", "function", "::", "goto")
    while index < count:
        kind, value, pos = tokens[index]
        if kind != NAME:
            index += 1
            continue
        if index and tokens[index - 1][0] == OP and tokens[index - 1][1] in skip_after:
            index += 1
            continue
        chain, after = _read_chain(tokens, index)
        following = tokens[after] if after < count else None
        if following is not None and following[0] == OP and following[1] == "=":
            index = after
            continue
        while len(chain) > 1 and chain[0] == "_G":
            chain = chain[1:]
        if chain == ["require"] and following is not None:
            argument = following
            if following[0] == OP and following[1] == "(" and after + 1 < count:
                argument = tokens[after + 1]
            if argument[0] == STRING and argument[1] in libraries:
                found.append((libraries[argument[1]], 'require("%s")' % argument[1],
                              line_of(code, pos)))
        for entry, parts in by_first.get(chain[0], ()):
            if _matches(parts, chain):
                found.append((entry, ".".join(chain[:len(parts)]), line_of(code, pos)))
                break
        index = after
    return found


def _call_arguments(tokens, index):
    """Arguments of the call whose "(" is tokens[index]: a list of token lists, or None.

    Commas inside nested brackets do not split; an unclosed call returns None.
    """
    arguments = [[]]
    depth = 0
    for position in range(index + 1, len(tokens)):
        kind, value, _pos = tokens[position]
        if kind == OP and value in ("(", "{", "["):
            depth += 1
        elif kind == OP and value in (")", "}", "]"):
            if depth == 0:
                return [] if arguments == [[]] else arguments
            depth -= 1
        elif kind == OP and value == "," and depth == 0:
            arguments.append([])
            continue
        arguments[-1].append(tokens[position])
    return None


def _ends_expression(token):
    """True when token cannot continue the expression before it (so that value stands alone)."""
    if token is None:
        return True
    kind, value, _pos = token
    if kind != OP:
        return True  # a name or string starts the next statement
    return value in (",", ";", "}", ")", "end", "local", "return", "if", "else", "elseif",
                     "for", "while", "repeat", "until", "do", "function", "break", "goto")


def find_tls_verify_off(code):
    """Return [(reference, line)] for Lua code that turns TLS certificate verification off.

    Found: ``sock:sslhandshake(session, name, false)`` (or ``nil``, or with the verify
    argument left out, since lua-nginx-module then does not verify), the same through
    ``sock.sslhandshake(sock, ...)``, and a literal ``ssl_verify = false`` (lua-resty-http's
    option, whose own default is true) as a field, table key or variable. Not found: a
    verify argument that is ``true`` or any expression, ``ssl_verify = true``,
    ``ssl_verify == false``, ``ssl_verify = false or x``, anything in comments or strings.
    A static check of literals: a value computed at run time is not followed.
    """
    if "sslhandshake" not in code and "ssl_verify" not in code:
        return []
    tokens = tokenize(code)
    count = len(tokens)
    found = []
    for index, (kind, value, pos) in enumerate(tokens):
        previous = tokens[index - 1] if index else None
        following = tokens[index + 1] if index + 1 < count else None
        if (kind == NAME and value == "sslhandshake" and previous is not None and previous[0] == OP
                and previous[1] in (":", ".") and following is not None and following[:2] == (OP, "(")):
            arguments = _call_arguments(tokens, index + 1)
            if arguments is None:
                continue
            verify_at = 2 if previous[1] == ":" else 3
            if len(arguments) <= verify_at:
                found.append(("sslhandshake() without the verify argument", line_of(code, pos)))
            else:
                verify = arguments[verify_at]
                if len(verify) == 1 and verify[0][:2] in ((OP, "false"), (OP, "nil")):
                    found.append(("sslhandshake(..., %s)" % verify[0][1], line_of(code, pos)))
            continue
        is_key = kind == NAME and value == "ssl_verify"
        after = index + 1
        if (kind == STRING and value == "ssl_verify" and previous is not None and previous[:2] == (OP, "[")
                and following is not None and following[:2] == (OP, "]")):
            is_key = True
            after = index + 2
        if not is_key or (kind == NAME and previous is not None and previous[:2] == (OP, ":")):
            continue
        if (after + 1 < count and tokens[after][:2] == (OP, "=") and tokens[after + 1][:2] == (OP, "false")
                and _ends_expression(tokens[after + 2] if after + 2 < count else None)):
            found.append(("ssl_verify = false", line_of(code, tokens[index][2])))
    return found
