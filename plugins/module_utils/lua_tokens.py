# -*- coding: utf-8 -*-
# Copyright: hardened.openresty contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A Lua 5.1 / LuaJIT tokenizer and a finder for references to dangerous functions.

Comments and strings become single tokens (comments are dropped), so a name that only
appears inside a comment or a string never looks like code. The finder reads the tokens
with Lua's grammar and block scoping, and follows what names stand for (aliases, the
globals table, package.loaded, require). It is a static, best-effort check of inline code,
not a sandbox (a determined author can always reach these functions indirectly, for
example through ``require("ffi")``).

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
_GROUP = {
    "comment": r"--(?:\[(?P<comment_level>=*)\[.*?\](?P=comment_level)\]|(?!\[=*\[)[^\r\n]*)",
    "long_string": r"\[(?P<string_level>=*)\[.*?\](?P=string_level)\]",
    "string": r"\"(?:[^\"\\\r\n]|\\(?:\r\n|\n\r|.))*\"|'(?:[^'\\\r\n]|\\(?:\r\n|\n\r|.))*'",
    "unfinished": r"--\[=*\[|\[=*\[|[\"']",
    "name": r"[A-Za-z_][A-Za-z0-9_]*",
    "number": r"0[xX][0-9a-fA-F.]*(?:[pP][+-]?\d+)?[uUlLi]*|\.?\d[\d.]*(?:[eE][+-]?\d+)?[uUlLi]*",
    "op": r"\.\.\.|\.\.|==|~=|<=|>=|::|[-+*/%^\#<>=(){}\[\];:,.]",
    "stray": r"\S",
}
_TOKEN = re.compile(
    r"[ \t\r\n\f\v]*(?:" + "|".join(
        "(?P<%s>%s)" % (kind, _GROUP[kind]) for kind in (
            "comment", "long_string", "string", "unfinished", "name", "number", "op", "stray")) + ")",
    re.DOTALL,
)
# A backslash before a line break (LF, CR, CR LF or LF CR, one break as LuaJIT counts them)
# is one newline in the string.
_STRING_ESCAPE = re.compile(r"\\(?:(\d{1,3})|x([0-9a-fA-F]{2})|z\s*|u\{([0-9a-fA-F]+)\}|(\r\n|\n\r|.))", re.DOTALL)
_LINE_BREAK = re.compile(r"\r\n|\n\r|\r|\n")
_SIMPLE_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v",
                   "\n": "\n", "\r": "\n", "\r\n": "\n", "\n\r": "\n"}

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
            # As LuaJIT reads a long string (lj_lex.c, lex_longstring): a line break right
            # after the opening bracket is not part of it, and every line break (LF, CR,
            # CR LF, LF CR) is one LF.
            first = _LINE_BREAK.match(body)
            if first:
                body = body[first.end():]
            append((STRING, _LINE_BREAK.sub("\n", body), match.start(kind)))
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


def _matches(entry_parts, chain):
    if len(chain) < len(entry_parts):
        return False
    for want, have in zip(entry_parts, chain):
        if want != "*" and want != have:
            return False
    return True


# Global names through which code reaches a library other than by the library's own name.
_GATEWAYS = ("_G", "require", "package", "rawget", "getfenv")
_COMPILED = {}


def _compile(entries):
    """What find_dangerous needs for one list of entries, cached per list.

    (entries by first name, library -> first entry, the names a use starts with, the
    string methods among the entries, a prefilter regex of those names).
    """
    key = tuple(entries)
    if key not in _COMPILED:
        by_first = {}
        libraries = {}
        for entry in key:
            parts = entry.split(".")
            by_first.setdefault(parts[0], []).append((entry, tuple(parts)))
            if len(parts) > 1:
                libraries.setdefault(parts[0], entry)
        heads = frozenset(set(by_first) | set(_GATEWAYS))
        # ("").dump is string.dump: a string's methods are the string library.
        methods = frozenset(parts[1] for parts in (entry.split(".") for entry in key)
                            if parts[0] == "string" and len(parts) > 1 and parts[1] != "*")
        prefilter = re.compile(r"\b(?:%s)\b" % "|".join(re.escape(n) for n in sorted(heads | methods)))
        _COMPILED[key] = (by_first, libraries, heads, methods, prefilter, _clean_run(heads | methods))
    return _COMPILED[key]


def _alternation(words):
    """A regex alternation matching exactly words, grouped by common prefixes (faster)."""
    groups = {}
    for word in sorted(set(words)):
        groups.setdefault(word[:1], []).append(word[1:])
    parts = []
    for head, rests in sorted(groups.items()):
        longer = [rest for rest in rests if rest]
        if not longer:
            parts.append(re.escape(head))
        elif len(rests) == 1:
            parts.append(re.escape(head + longer[0]))
        else:
            parts.append(re.escape(head) + "(?:" + _alternation(longer) + ")"
                         + ("?" if len(longer) < len(rests) else ""))
    return "|".join(parts)


# Characters that only ever make whole tokens among themselves (spaces, and operators and
# stray characters that no other token starts with), so a run of them ends at a token
# boundary.
_PLAIN_RUN = r"[ \t\r\n\f\v(){};:,+*/%^#<>=~\]!@$&|?`\\]+"


def _clean_run(watched):
    """A regex whose match from 0 reads what tokenize() reads, up to the first token that
    is a name in watched (or where tokenize() stops or skips a character).

    The alternatives are _TOKEN's own: at any character the one _TOKEN would take is the
    only one that can match, except that a watched name matches nothing (a stray character
    never stands in for it), nor does the start of an unfinished string or long bracket.
    A greedy repetition with nothing after it never goes back on a token it has read.
    """
    name = r"(?!(?:" + _alternation(watched) + r")(?![A-Za-z0-9_]))" + _GROUP["name"]
    return re.compile(
        r"(?:" + _PLAIN_RUN + "|" + name + "|" + _GROUP["comment"] + "|" + _GROUP["long_string"]
        + "|" + _GROUP["string"] + r"|(?!--|\[=*\[|[\"'])(?:" + _GROUP["number"] + "|"
        + _GROUP["op"] + r"|(?![A-Za-z_])\S))*", re.DOTALL)


def find_dangerous(code, entries=DEFAULT_DANGEROUS_CALLS, exact=False):
    """Return [(entry, reference, line)] for every use of a dangerous function in code.

    A use is a read of the function wherever it leads: ``os.execute(...)``, ``local run =
    os.execute``, ``os["execute"]``, ``load(...)``, and the same reached through another
    name: a local or global alias (``local o = os; o.execute()``, ``local e = os.execute;
    e()``, chains of them), the globals table (``_G.os``, ``_G["os"]``, ``rawget(_G, "os")``,
    ``getfenv(0).os``, ``getfenv().os``), ``package.loaded.io`` and ``require("os")``. The
    reference is the canonical name (``os.execute``), or ``require("os")`` for a require of
    a library that holds an entry.

    Not uses: names in comments or strings, fields of other tables (``t.os``,
    ``obj:load()``), table keys, assignments (``os.execute = nil``, as a prelude that
    removes globals does), and locals that only share a global's name (``local function
    load() end``, parameters, ``for`` variables), within their scope as Lua's blocks define
    it. Aliases are tracked without regard to control flow: a variable stands for every
    value ever assigned to it, so a branch or a loop cannot hide one. Code this reader
    cannot follow (a syntax error; nginx would reject or never run it) is scanned name by
    name instead, without scopes or aliases.

    exact=True skips the shortcut that reads code without any watched name token in one
    regex match (the same answer, slower; the tests compare the two).
    """
    compiled = _compile(entries)
    if not exact and _has_no_watched_name(code, compiled[5]):
        return []
    # Every use starts with one of these names: code without them needs no tokenizing.
    if not compiled[4].search(code):
        return []
    tokens = tokenize(code)
    uses, exact = _flat_scan(tokens, compiled)
    if not exact:
        reader = _Reader(tokens, compiled[0], compiled[1])
        try:
            uses = reader.run()
        except (_Unparsable, IndexError, RuntimeError):  # RuntimeError: nesting too deep
            # Keep the name-by-name reading, and what the reader saw before it stopped.
            uses = sorted(set(uses) | set(reader.found), key=lambda use: use[2])
    return [(entry, reference, line_of(code, pos)) for entry, reference, pos in uses]


def _has_no_watched_name(code, clean_run):
    """True when no token tokenize() reads in code is a name a use can start with.

    Then find_dangerous finds nothing: only such names start a use or make the scan
    inexact. False means "not known": the tokens are read one by one.
    """
    end = clean_run.match(code).end()
    if end == len(code):
        return True
    # Where the clean run stops, tokenize() stops too when only spaces are left or an
    # unfinished string or long bracket starts (it reads nothing after those).
    rest = _TOKEN.match(code, end)
    return rest is None and not code[end:].strip(" \t\r\n\f\v") or (
        rest is not None and rest.lastgroup == "unfinished")


class _Unparsable(Exception):
    pass


_BLOCK_END = frozenset(("end", "else", "elseif", "until"))
_UNARY = frozenset(("not", "-", "#"))
_BINARY = frozenset(("+", "-", "*", "/", "%", "^", "..", "==", "~=", "<", "<=", ">", ">=",
                     "and", "or"))
_CONSTANTS = frozenset(("nil", "true", "false", "..."))
_GLOBALS = ("_G",)


def _normalize(path):
    """The canonical name of a global path: _G.x is x, package.loaded.x is x."""
    while True:
        if len(path) > 1 and path[0] == "_G":
            path = path[1:]
        elif len(path) > 2 and path[0] == "package" and path[1] == "loaded":
            path = path[2:]
        else:
            return path


def _add(values, new):
    """Add the values of new to the list values; return whether anything was added."""
    added = False
    for value in new:
        if value not in values:
            values.append(value)
            added = True
    return added


class _Reader(object):
    """A recursive-descent reader of Lua 5.1 that follows scopes and what names stand for.

    A value is a list of what an expression may be: a tuple naming a global path
    (("os",), ("os", "execute"), ("_G",) for the globals table) or a str for a string
    constant; an empty list is "not known to be anything dangerous". A variable is such a
    list too, shared by every use and widened by every assignment; when an assignment
    widens one after it may have been read, the whole chunk is read again (the lists
    persist per declaration), so a use before the assignment in a loop is seen as well.
    """

    def __init__(self, tokens, by_first, libraries):
        self.tokens = tokens
        self.count = len(tokens)
        # Each token's value when it is an operator or keyword, else None; one more None
        # stands for the end.
        self.ops = [token[1] if token[0] == OP else None for token in tokens] + [None]
        self.by_first = by_first
        self.libraries = libraries
        self.aliases = {}     # global name -> values the chunk assigned to it
        self.declared = {}    # token index of a local's name -> its values, across passes
        self.index = 0
        self.scopes = []
        self.found = []
        self.widened = False

    def run(self):
        for _pass in range(4):
            self.index = 0
            self.scopes = []
            self.found = []
            self.widened = False
            self.block()
            if self.index != self.count:
                raise _Unparsable()
            if not self.widened:
                break
        return self.found

    # -- tokens ----------------------------------------------------------------------

    def expect(self, value):
        if self.ops[self.index] != value:
            raise _Unparsable()
        self.index += 1

    def name(self):
        token = self.tokens[self.index]
        if token[0] != NAME:
            raise _Unparsable()
        self.index += 1
        return token[1]

    # -- names -----------------------------------------------------------------------

    def lookup(self, name):
        for scope in reversed(self.scopes):
            if name in scope:
                return scope[name]
        aliases = self.aliases.get(name)
        return [(name,)] + aliases if aliases else [(name,)]

    def declare(self, name, at, values=()):
        """A new local (its name token at index at) standing for values."""
        known = self.declared.get(at)
        if known is None:
            known = self.declared[at] = []
            _add(known, values)
        elif _add(known, values):  # on a later pass, what it stands for grew: read again
            self.widened = True
        self.scopes[-1][name] = known

    def assign(self, target, values):
        """Widen what an assignment target stands for (a variable or a global)."""
        simple, paths = target
        if not values:
            return
        if simple is not None:
            for scope in reversed(self.scopes):
                if simple in scope:
                    if _add(scope[simple], values):
                        self.widened = True
                    return
            names = [simple]
        else:  # _G.x = ..., _G["x"] = ...: the global x
            names = [path[0] for path in paths if isinstance(path, tuple) and len(path) == 1]
        for name in names:
            if _add(self.aliases.setdefault(name, []), values):
                self.widened = True

    # -- uses ------------------------------------------------------------------------

    def check(self, values, pos):
        """The uses (entry, reference, pos) a read of values makes."""
        uses = []
        for value in values:
            if isinstance(value, tuple):
                for entry, parts in self.by_first.get(value[0], ()):
                    if _matches(parts, value):
                        uses.append((entry, ".".join(value[:len(parts)]), pos))
                        break
        return uses

    def commit(self, uses, reported):
        for use in uses:
            if use[:2] not in reported:
                reported.add(use[:2])
                self.found.append(use)

    # -- statements ------------------------------------------------------------------

    def block(self, names=()):
        """Statements up to a block end (not consumed), in a new scope holding names."""
        self.scopes.append({})
        for name, at in names:
            self.declare(name, at)
        while self.index < self.count and self.ops[self.index] not in _BLOCK_END:
            self.statement()
        self.scopes.pop()

    def statement(self):
        keyword = self.ops[self.index]
        if keyword is None or keyword == "(":
            self.expression_statement()
        elif keyword == ";" or keyword == "break":
            self.index += 1
        elif keyword == "local":
            self.index += 1
            self.local()
        elif keyword == "if":
            self.index += 1
            self.expression()
            self.expect("then")
            self.block()
            while self.ops[self.index] == "elseif":
                self.index += 1
                self.expression()
                self.expect("then")
                self.block()
            if self.ops[self.index] == "else":
                self.index += 1
                self.block()
            self.expect("end")
        elif keyword == "while":
            self.index += 1
            self.expression()
            self.expect("do")
            self.block()
            self.expect("end")
        elif keyword == "do":
            self.index += 1
            self.block()
            self.expect("end")
        elif keyword == "for":
            self.index += 1
            names = self.names()
            if self.ops[self.index] not in ("=", "in"):
                raise _Unparsable()
            self.index += 1
            self.expressions()  # evaluated outside the loop's scope
            self.expect("do")
            self.block(names)
            self.expect("end")
        elif keyword == "repeat":
            self.index += 1
            self.scopes.append({})  # the condition sees the body's locals
            while self.index < self.count and self.ops[self.index] not in _BLOCK_END:
                self.statement()
            self.expect("until")
            self.expression()
            self.scopes.pop()
        elif keyword == "function":
            self.index += 1
            self.function_statement()
        elif keyword == "return":
            self.index += 1
            if self.index < self.count and self.ops[self.index] not in _BLOCK_END and self.ops[self.index] != ";":
                self.expressions()
        elif keyword == "::":
            self.index += 1
            self.name()
            self.expect("::")
        elif keyword == "goto":
            self.index += 1
            self.name()
        else:
            raise _Unparsable()

    def names(self):
        """NAME {, NAME} as (name, token index) pairs."""
        found = [(self.name(), self.index - 1)]
        while self.ops[self.index] == ",":
            self.index += 1
            found.append((self.name(), self.index - 1))
        return found

    def local(self):
        if self.ops[self.index] == "function":
            self.index += 1
            at = self.index
            self.declare(self.name(), at)  # visible in its own body
            self.function_body()
            return
        names = self.names()
        values = []
        if self.ops[self.index] == "=":
            self.index += 1
            values = self.expressions()  # evaluated before the new locals exist
        for number, (name, at) in enumerate(names):
            self.declare(name, at, values[number] if number < len(values) else ())

    def function_statement(self):
        # function a.b:c() assigns a field or a global: a declaration, not a read.
        self.name()
        method = False
        while self.ops[self.index] in (".", ":"):
            method = self.ops[self.index] == ":"
            self.index += 1
            self.name()
        self.function_body(method)

    def function_body(self, method=False):
        self.expect("(")
        params = [("self", self.index)] if method else []
        while self.ops[self.index] != ")":
            if self.ops[self.index] == "...":
                self.index += 1
            else:
                params.append((self.name(), self.index - 1))
            if self.ops[self.index] == ",":
                self.index += 1
            elif self.ops[self.index] != ")":
                raise _Unparsable()
        self.index += 1
        self.block(params)
        self.expect("end")

    def expression_statement(self):
        values, pending, simple, reported = self.suffixed(defer=True)
        if self.ops[self.index] not in ("=", ","):
            self.commit(pending, reported)  # a call statement reads what it calls
            return
        targets = [(simple, values)]  # assigned to, not read
        while self.ops[self.index] == ",":
            self.index += 1
            values, _pending, simple, _reported = self.suffixed(defer=True)
            targets.append((simple, values))
        self.expect("=")
        assigned = self.expressions()
        for number, target in enumerate(targets):
            if number < len(assigned):
                self.assign(target, assigned[number])

    # -- expressions -----------------------------------------------------------------

    def expressions(self):
        """exp {, exp}: one list of values per expression."""
        found = [self.expression()]
        while self.ops[self.index] == ",":
            self.index += 1
            found.append(self.expression())
        return found

    def expression(self):
        values = self.operand()
        while self.ops[self.index] in _BINARY:
            keyword = self.ops[self.index]
            self.index += 1
            other = self.operand()
            # x or os, x and os: either operand may be the result.
            values = values + other if keyword in ("and", "or") else []
        return values

    def operand(self):
        token = self.tokens[self.index]
        kind, value = token[0], token[1]
        if kind == NUMBER:
            self.index += 1
            return []
        if kind == STRING:
            self.index += 1
            return [value]
        if kind == OP:
            if value in _UNARY:
                self.index += 1
                self.operand()
                return []
            if value in _CONSTANTS:
                self.index += 1
                return []
            if value == "{":
                self.table()
                return []
            if value == "function":
                self.index += 1
                self.function_body()
                return []
        return self.suffixed()[0]

    def table(self):
        self.expect("{")
        while self.ops[self.index] != "}":
            token = self.tokens[self.index]
            if token[0] == NAME and self.index + 1 < self.count and self.tokens[self.index + 1][1] == "=" \
                    and self.tokens[self.index + 1][0] == OP:
                self.index += 2  # name = value: the name is a key, not a read
                self.expression()
            elif self.ops[self.index] == "[":
                self.index += 1
                self.expression()
                self.expect("]")
                self.expect("=")
                self.expression()
            else:
                self.expression()
            if self.ops[self.index] in (",", ";"):
                self.index += 1
            elif self.ops[self.index] != "}":
                raise _Unparsable()
        self.index += 1

    def suffixed(self, defer=False):
        """A prefix expression with its suffixes: (values, pending uses, simple name, reported).

        Each step's read is committed when the next suffix applies; the last one is
        returned as pending when defer is set (an assignment target is not a read).
        """
        token = self.tokens[self.index]
        pos = token[2]
        simple = None
        if token[0] == NAME:
            self.index += 1
            simple = token[1]
            values = self.lookup(simple)
        elif token[0] == OP and token[1] == "(":
            self.index += 1
            values = self.expression()
            self.expect(")")
        else:
            raise _Unparsable()
        reported = set()
        pending = self.check(values, pos)
        while self.index < self.count:
            token = self.tokens[self.index]
            kind, value = token[0], token[1]
            if kind == OP and value in (".", ":"):
                self.commit(pending, reported)
                self.index += 1
                values = self.field(values, [self.name()])
                pending = self.check(values, pos)
                if value == ":":
                    self.commit(pending, reported)
                    pending = []
                    self.arguments()
                    values = []
            elif kind == OP and value == "[":
                self.commit(pending, reported)
                self.index += 1
                values = self.field(values, self.expression())
                self.expect("]")
                pending = self.check(values, pos)
            elif kind == STRING or (kind == OP and value in ("(", "{")):
                self.commit(pending, reported)
                values = self.call(values, self.arguments(), pos, reported)
                pending = self.check(values, pos)
            else:
                break
            simple = None
        if not defer:
            self.commit(pending, reported)
            pending = []
        return values, pending, simple, reported

    @staticmethod
    def field(values, keys):
        """What values[key] may be, for each constant string key."""
        found = []
        for key in keys:
            if not isinstance(key, str):
                continue
            for value in values:
                if isinstance(value, tuple):
                    path = _normalize(value + (key,))
                else:  # a string's fields are the string library's
                    path = ("string", key)
                if path not in found:
                    found.append(path)
        return found

    def arguments(self):
        """Call arguments: a string, a table or (explist); one list of values per argument."""
        token = self.tokens[self.index]
        if token[0] == STRING:
            self.index += 1
            return [[token[1]]]
        if token[0] == OP and token[1] == "{":
            self.table()
            return [[]]
        self.expect("(")
        if self.ops[self.index] == ")":
            self.index += 1
            return []
        found = self.expressions()
        self.expect(")")
        return found

    def call(self, values, arguments, pos, reported):
        """What a call returns when it is require, rawget or getfenv of the real globals."""
        found = []
        for value in values:
            if value == ("require",) and arguments:
                for name in arguments[0]:
                    if isinstance(name, str):
                        _add(found, [_normalize((name,))])
                        if name in self.libraries:
                            self.commit([(self.libraries[name], 'require("%s")' % name, pos)],
                                        reported)
            elif value == ("rawget",) and len(arguments) > 1:
                _add(found, self.field([table for table in arguments[0] if isinstance(table, tuple)],
                                       arguments[1]))
            elif value == ("getfenv",):
                _add(found, [_GLOBALS])
        return found


_CALL_OPENERS = ("(", "{")
_DECLARES = ("local", "for", "function")


def _flat_scan(tokens, compiled):
    """Name by name: ([(entry, reference, pos)], exact).

    The direct uses (os.execute(...), _G.os.execute, package.loaded.io.popen, load(...)).
    exact is False when this reading may differ from Lua's: a name a use starts with is
    declared as a local somewhere (a scope decides what it means), or a library or the
    globals table goes anywhere but straight into a call or a dangerous field (an alias),
    or require, rawget or getfenv hand one out. Then _Reader decides; most code has
    none of that, and this scan is several times faster than reading the grammar.
    """
    by_first, libraries, heads, methods = compiled[:4]
    found = []
    exact = True
    index = 0
    count = len(tokens)
    while index < count:
        kind, value, pos = tokens[index]
        if kind != NAME:
            if kind == OP and value in _DECLARES and exact:
                exact = not _declares_head(tokens, index, heads)
            index += 1
            continue
        if index and tokens[index - 1][0] == OP and tokens[index - 1][1] in _SKIP_AFTER:
            if value in methods:
                exact = False
            index += 1
            continue
        if value not in heads:  # its fields are skipped one by one (they follow a ".")
            index += 1
            continue
        chain, after = _read_chain(tokens, index)
        following = tokens[after] if after < count else None
        if following is not None and following[0] == OP and following[1] == "=":
            index = after
            continue
        chain = _normalize(tuple(chain))
        matched = False
        for entry, parts in by_first.get(chain[0], ()):
            if _matches(parts, chain):
                found.append((entry, ".".join(chain[:len(parts)]), pos))
                matched = True
                break
        called = following is not None and (following[0] == STRING or (
            following[0] == OP and following[1] in _CALL_OPENERS))
        if matched:
            exact = exact and called  # a dangerous function kept under another name
        elif exact:
            if chain[0] in ("rawget", "getfenv", "_G") or chain[:2] == ("package", "loaded"):
                exact = called and len(chain) > 1 and chain[0] not in ("rawget", "getfenv")
            elif chain == ("require",):
                argument = following
                if called and following[0] == OP and following[1] == "(" and after + 1 < count:
                    argument = tokens[after + 1]
                exact = called and not (argument[0] == STRING and argument[1] in libraries)
            elif not called:
                # Kept or passed on: matters when a listed function lies below it (os, not
                # os.time or string.format).
                exact = not any(len(parts) > len(chain) and _matches(chain, parts)
                                for _entry, parts in by_first.get(chain[0], ()))
        index = after
    return found, exact


_SKIP_AFTER = (".", ":", "local", "function", "::", "goto")


def _declares_head(tokens, index, heads):
    """Whether the local, for or function at index declares one of heads as a local."""
    count = len(tokens)
    keyword = tokens[index][1]
    index += 1
    if keyword == "function":
        while index < count and tokens[index][1] != "(":
            index += 1
        index += 1
    elif index < count and tokens[index][1] == "function":  # local function NAME
        return index + 1 < count and tokens[index + 1][1] in heads
    while index < count:
        kind, value, _pos = tokens[index]
        if kind == NAME:
            if value in heads:
                return True
        elif value not in (",", "..."):
            return False
        index += 1
    return False


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
