# -*- coding: utf-8 -*-
# Copyright: hardened.openresty contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read nginx configuration the way nginx and lua-nginx-module read it.

The lexer follows ngx_conf_read_token(): words end at whitespace, ";" or "{" (but "${" does
not open a block), "#" starts a comment only at the start of a word, a quoted string must be
followed by whitespace, ";", "{" or ")", and backslash escapes are resolved as nginx
resolves them; a token (or comment) that does not fit nginx's 4096-byte buffer is an error.
The body of a ``*_by_lua_block`` ends where lua-nginx-module's lexer (ngx_http_lua_lex)
ends it: braces inside its short strings, long brackets and line comments do not count.
The body becomes the directive's last argument, verbatim. Lines of data blocks (map, geo,
types, split_clients, charset_map) are kept in the tree but are not directives: walk()
skips them.

Most statements and Lua block bodies are read through fast paths (a statement, or a run of
Lua up to the next brace, per regex match), taken only where they read exactly what the
token lexers read, nginx's buffer included; everything else goes through the lexers.
exact=True turns the fast paths off (the tests read every input both ways).

The result is a tree of Directive objects shaped like crossplane's payload (directive,
args, line, file, block). Includes resolve with one resolver shaped like glob(3) (against
the filesystem, or against the files of an ``nginx -T`` dump, which is split only where
its include graph allows); NginxConfig.walk() then yields every directive with the
context it has in nginx (an included file takes the context of its include site).

Standard library only: this runs on targets.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import functools
import gc
import io
import itertools
import os
import re

DEFAULT_MAIN = "nginx.conf"

_TOKEN = re.compile(
    r"""
    [ \t\r\n]*
    (?:
    (?P<comment>\#[^\n]*)
  | (?P<special>[;{}])
  | (?P<quoted>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
  | (?P<word>(?:\\.|\$\{|[^ \t\r\n;{\\"'])(?:\\.|\$\{|[^ \t\r\n;{\\])*)
    )
    """,
    re.VERBOSE | re.DOTALL,
)
_COMMENT, _QUOTED, _WORD = (_TOKEN.groupindex[name] for name in ("comment", "quoted", "word"))
# The fast path for the statements most files are made of: "}" alone, or words that need
# no unescaping, on one line, then ";" or "{". A word is plain or quoted. A plain one does
# not start with "#" and holds no quote, backslash, "{", "}" or space (any character
# str.split splits at: nginx splits only at its own four), and a "{" right after a "$"
# does not end the statement (nginx reads "${" as part of the word); a quoted one holds no
# backslash and no newline, and a space, ";" or "{" follows it. _TOKEN reads such a
# statement as exactly these words; anything else is read token by token with _TOKEN.
_FAST_WORD = r"""(?:[^\s;{}\\"'#][^\s;{}\\"']*|"[^"\\\n]*"|'[^'\\\n]*')"""
_FAST_STATEMENT = re.compile(
    r"[ \t\r\n]*(?:(\})|(%s(?:[ \t\r]+%s)*)[ \t\r]*(;|(?<!\$)\{))" % (_FAST_WORD, _FAST_WORD))
# The words of such a statement that has quoted ones (each one group).
_FAST_SPLIT = re.compile(r""""([^"]*)"|'([^']*)'|([^ \t\r]+)""")
# What nginx's copy loop turns an escape into; any other backslash is kept as is.
_ESCAPE = re.compile(r"\\(.)", re.DOTALL)
_ESCAPES = {'"': '"', "'": "'", "\\": "\\", "t": "\t", "r": "\r", "n": "\n"}
# lua-nginx-module's block lexer (util/gen-lexer-c in lua-nginx-module: the regexes of
# ngx_http_lua_lex, tried at the leftmost position, the first listed winning): "{", "}",
# an opening long bracket, an opening long comment, a closing long bracket, a line comment
# (to LF only) and short strings that do not continue over a newline. A quote with no
# match (an unfinished string) is skipped like any other character.
_LUA_LEX = re.compile(
    r"""(?P<open>\{)|(?P<close>\})|(?P<long>\[=*\[)|(?P<longcomment>--\[=*\[)|\]=*\]"""
    r"""|--[^\n]*|"(?:\\[^\n]|[^"\n\\])*"|'(?:\\[^\n]|[^'\n\\])*'""")
# The fast path of read_lua_block: one match runs over everything _LUA_LEX would read up to
# the next "{" or "}" (or up to where it would fail): the characters it skips, line
# comments, long comments and long strings with their closing bracket, short strings, and
# the single "-", "[" or quote that starts none of these. The alternatives are tried in
# _LUA_LEX's order at each character that can start a token; a long bracket or comment
# without its closing bracket matches nothing, so the run stops there.
_LUA_SKIP = re.compile(
    r"""(?:[^-\["'{}]+|--\[(?P<comment_level>=*)\[.*?\](?P=comment_level)\]|--(?!\[=*\[)[^\n]*"""
    r"""|-(?!-)|\[(?P<string_level>=*)\[.*?\](?P=string_level)\]|\[(?!=*\[)"""
    r"""|"(?:\\[^\n]|[^"\n\\])*"|'(?:\\[^\n]|[^'\n\\])*'|["'])*""",
    re.DOTALL)
# Where a token that matters can start (a closing long bracket changes nothing: skipped).
_LUA_INTERESTING = re.compile(r"""[-\["'{}]""")
_LUA_OPEN, _LUA_CLOSE, _LUA_LONG, _LUA_LONG_COMMENT = (
    _LUA_LEX.groupindex[name] for name in ("open", "close", "long", "longcomment"))
# ngx_conf_read_token's buffer (NGX_CONF_BUFFER): a word must end before 4096 bytes, and a
# quoted one (whose closing quote must fit too) before 4095.
CONF_BUFFER = 4096
# Blocks whose lines nginx hands to the module's own handler (cf->handler): data, never
# directives (ngx_http_map, ngx_http_geo, ngx_http_split_clients, ngx_http_charset_map,
# ngx_http_core_type and their stream twins). A "{" inside them is an error; an "include"
# inside them includes more data.
DATA_BLOCKS = frozenset(("map", "geo", "split_clients", "charset_map", "types"))
_LONG_CHARS = (CONF_BUFFER - 1) // 4  # below this many characters no token can be too long
_GLOB_MAGIC = re.compile(r"[*?\[]")
_DUMP_MARKER = re.compile(r"^# configuration file (.+):$")
# A whole line that _DUMP_MARKER matches, read from the text of a dump (_split_text).
_MARKER_START = "# configuration file "
_MARKER_LINE = re.compile(re.escape(_MARKER_START) + r"(.+):\n")
_BANNER = "nginx: "
LUA_BLOCK_SUFFIX = "_by_lua_block"


class NginxParseError(Exception):
    """A configuration nginx would reject (or we cannot read), with file and line."""

    def __init__(self, message, file=None, line=None):
        super(NginxParseError, self).__init__(message, file, line)
        self.message = message
        self.file = file
        self.line = line

    def __str__(self):
        where = self.file or "<config>"
        if self.line is not None:
            where = "%s:%d" % (where, self.line)
        return "%s: %s" % (where, self.message)


class Directive(object):
    """One statement. block is None for simple directives, a list for blocks.

    arg_lines gives the line each argument starts on (for a Lua block body: the line of its
    opening brace); includes is set on include directives once includes are resolved.
    """

    __slots__ = ("directive", "args", "line", "file", "block", "arg_lines", "includes")

    def __init__(self, directive, args, line, file, block=None, arg_lines=None):
        self.directive = directive
        self.args = args
        self.line = line
        self.file = file
        self.block = block
        self.arg_lines = arg_lines if arg_lines is not None else [line] * len(args)
        self.includes = None

    def as_dict(self):
        """The crossplane-shaped dict (directive, line, args, block) of this subtree."""
        item = {"directive": self.directive, "line": self.line, "args": list(self.args)}
        if self.block is not None:
            item["block"] = [child.as_dict() for child in self.block]
        return item

    def __repr__(self):
        return "Directive(%r, %r, %s:%s)" % (self.directive, self.args, self.file, self.line)


def _unescape(text):
    return _ESCAPE.sub(lambda m: _ESCAPES.get(m.group(1), m.group(0)), text)


def _line_at(text, pos):
    return text.count("\n", 0, pos) + 1


def read_lua_block(text, pos, filename=None, buffer=None):
    """Read a Lua block body starting just after its "{"; return (body, end_pos).

    The block ends where lua-nginx-module's lexer (ngx_http_lua_conf_lua_block_parse,
    ngx_http_lua_conf_read_lua_token) ends it. end_pos is just after the closing "}".
    Raises NginxParseError on an unterminated long bracket or block.

    buffer, when given, is [last, size]: the file offset where nginx's 4096-byte
    configuration buffer ends and the file's size (in bytes, which are the characters of
    an ASCII file). The lexer then sees what lua-nginx-module sees: it matches only inside
    the buffer (a string or comment cut by the buffer's end is not one), refills it as
    lua-nginx-module does, and updates buffer[0].
    """
    depth = 1
    begin = pos
    search = _LUA_INTERESTING.search
    lex = _LUA_LEX.match
    limit = len(text)
    while True:
        start = pos  # one ngx_http_lua_conf_read_lua_token call
        while True:
            if buffer is not None:
                last, size = buffer
                if pos >= last or (last - pos < CONF_BUFFER // 2 and last < size):
                    if last >= size:
                        raise NginxParseError(
                            "unexpected end of file, expecting terminating characters for lua "
                            "code block", filename, _line_at(text, begin))
                    if last - start >= CONF_BUFFER:
                        raise NginxParseError("too long lua code block, probably missing "
                                              "terminating characters", filename,
                                              _line_at(text, start))
                    last = buffer[0] = min(size, start + CONF_BUFFER)
                limit = last
            match = None
            scan = pos
            while True:
                candidate = search(text, scan, limit)
                if candidate is None:
                    break
                match = lex(text, candidate.start(), limit)
                if match is not None:
                    break
                scan = candidate.start() + 1
            if match is not None:
                break
            if buffer is None or buffer[0] >= buffer[1]:
                raise NginxParseError(
                    "unexpected end of file, expecting terminating characters for lua code block",
                    filename, _line_at(text, begin))
            last, size = buffer
            if last - pos >= CONF_BUFFER:
                raise NginxParseError("too long lua code block, probably missing terminating "
                                      "characters", filename, _line_at(text, start))
            # no token in the buffer: lua-nginx-module keeps it but goes on after it
            start, pos = pos, last
            buffer[0] = min(size, start + CONF_BUFFER)
        kind = match.lastindex
        pos = match.end()
        if kind == _LUA_OPEN:
            depth += 1
        elif kind == _LUA_CLOSE:
            depth -= 1
            if depth == 0:
                return text[begin:pos - 1], pos
        elif kind == _LUA_LONG or kind == _LUA_LONG_COMMENT:
            opening = match.group(kind)
            close = "]" + opening[opening.index("[") + 1:-1] + "]"
            what = "string" if kind == _LUA_LONG else "comment"
            end = text.find(close, pos, limit)
            if end < 0:
                if text.find(close, pos) < 0:
                    raise NginxParseError("unfinished Lua long %s" % what, filename,
                                          _line_at(text, match.start()))
                if buffer is not None:
                    raise NginxParseError("Lua code block missing the closing long bracket %r, "
                                          "the inlined Lua code may be too long" % close,
                                          filename, _line_at(text, match.start()))
                end = text.find(close, pos)
            pos = end + len(close)
            # Without the buffer's position: a long bracket longer than the buffer always
            # fails (shorter ones may too, depending on where the buffer starts).
            if (buffer is None and pos - match.start() > _LONG_CHARS
                    and len(text[match.start():pos].encode("utf-8", "replace")) > CONF_BUFFER):
                raise NginxParseError("Lua code block missing the closing long bracket %r, the "
                                      "inlined Lua code may be too long (Lua long %s of more "
                                      "than %d bytes)" % (close, what, CONF_BUFFER), filename,
                                      _line_at(text, match.start()))


def _read_lua_block_fast(text, pos, buffer):
    """read_lua_block's result when it can be read without following nginx's buffer, or None.

    The body is read with _LUA_SKIP from "{" to "}". That reading is read_lua_block's when
    the block ends inside the buffer lua-nginx-module has at its start (no token is cut by
    the buffer's end, and a refill then changes nothing but the buffer) and
    lua-nginx-module refills the buffer either never or at the block's first token; buffer
    is then updated as read_lua_block updates it. Without a buffer (a non-ASCII file) the
    block must be too short for a long bracket to be too long. Anything else (an error
    included) returns None: read_lua_block decides.
    """
    begin = pos
    depth = 1
    skip = _LUA_SKIP.match
    while True:
        pos = skip(text, pos).end()
        char = text[pos:pos + 1]
        if char == "}":
            depth -= 1
            if depth == 0:
                break
        elif char != "{":
            return None
        else:
            depth += 1
        pos += 1
    end = pos + 1
    if buffer is None:
        if end - begin > _LONG_CHARS:
            return None
    else:
        last, size = buffer
        if end > last:
            return None
        # lua-nginx-module refills when a token read starts less than half a buffer before
        # the buffer's end; the reads start at begin and at most at the closing brace.
        if last < size and end - 1 > last - CONF_BUFFER // 2:
            if begin <= last - CONF_BUFFER // 2:
                return None  # a refill inside the block: read_lua_block finds where
            # refilled at the first read; the next refill would come half a buffer after
            # begin, beyond end (end <= last < begin + CONF_BUFFER // 2)
            buffer[0] = min(size, begin + CONF_BUFFER)
    return text[begin:pos], end


def _refill_start(refill, before, token, kind, previous, previous_start):
    """Where ngx_conf_read_token's `start` is when it refills its buffer at offset refill.

    before is where the current match (leading spaces, then the token at `token`) begins;
    previous is the kind of the match before it and previous_start that token's start.
    Returns the file offset the refilled buffer begins at.
    """
    if refill > token:  # inside the token: it is being read
        return token + 1 if kind == _QUOTED else token
    if refill == before:  # nothing of this match read yet: the previous token's state
        if previous == _WORD or previous == _COMMENT:
            return previous_start
        if previous == _QUOTED:
            return previous_start + 1
        return refill  # after ";", "{", "}" or a Lua block: a new call starts here
    if refill == before + 1 and (previous == _WORD or previous == _QUOTED):
        # the space that ended the word (or followed the quote) keeps the token's start
        return previous_start + (1 if previous == _QUOTED else 0)
    return refill - 1


def _prepare_if_args(args):
    """Drop the parentheses of an "if" condition, as nginx (and crossplane) do."""
    if args and args[0].startswith("(") and args[-1].endswith(")"):
        args[0] = args[0][1:].lstrip()
        args[-1] = args[-1][:-1].rstrip()
        start = 0 if args[0] else 1
        end = len(args) - (0 if args[-1] else 1)
        args[:] = args[start:end]


def _is_ascii(text):
    try:
        text.encode("ascii")
    except UnicodeEncodeError:
        return False
    return True


def _check_length(value, limit, filename, line):
    """A token that does not fit in nginx's configuration buffer is an error, as in nginx."""
    if len(value.encode("utf-8", "replace")) >= limit:
        raise NginxParseError('too long parameter "%s..." started' % value[:10], filename, line)


def without_cyclic_gc(function):
    """Run function with Python's cyclic garbage collector paused, then restore it.

    Reading a large configuration makes millions of small objects and no reference cycles;
    the collector would scan them again at every generation threshold, which was 45% of a
    10,000-server verify and made its time grow faster than the input. Nested calls are fine:
    only the outermost one turns the collector back on, also when function raises.
    """
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        enabled = gc.isenabled()
        gc.disable()
        try:
            return function(*args, **kwargs)
        finally:
            if enabled:
                gc.enable()
    return wrapper


def parse_string(text, filename=DEFAULT_MAIN, data=False, includes=None, size=None, exact=False):
    """Parse one file's text into a list of Directive. Raises NginxParseError.

    data is true for a file included inside a data block (map, geo, types, ...): its lines
    are data for nginx, so a "{" is an error there and any line may end with ";".
    includes, a list, receives (include directive, inside a data block) in file order.
    size is the file's size when text holds more (a dump adds a newline to each file).

    For an ASCII file the position of nginx's 4096-byte buffer is followed, so that each
    Lua block is lexed with the buffer lua-nginx-module has (see read_lua_block).

    exact=True reads every token with the token lexers, without the fast paths for plain
    statements and Lua block bodies (the same result, slower: the tests compare the two).
    """
    root = []
    stack = []  # parent lists of the open blocks
    current = root
    words = []  # tokens of the statement being read
    lines = []
    # Lines are counted lazily: newlines between `counted` and a token's start are added
    # when the token is seen, one str.count per token.
    line = 1
    counted = 0
    pos = 0
    end = len(text)
    match_token = _TOKEN.match
    count = text.count
    # nginx's buffer: [last, file size]; None when offsets are not bytes (non-ASCII).
    buffer = None
    if _is_ascii(text):
        buffer = [0, end if size is None else min(size, end)]
        buffer[0] = min(buffer[1], CONF_BUFFER)
    previous, previous_start = None, 0
    match_fast = None if exact else _FAST_STATEMENT.match
    while pos < end:
        # The fast path: statement after statement, until one needs the token lexer. It
        # stops (changing nothing) where _TOKEN would read a token past nginx's buffer (a
        # refill to follow), where a word may be too long for the buffer, and before any
        # statement nginx rejects, so that the lexer reads it and reports the error.
        while match_fast is not None and not words:
            match = match_fast(text, pos)
            if match is None:
                break
            stop = match.end()
            if buffer is not None and stop > buffer[0] < buffer[1]:
                break
            close, statement, char = match.groups()
            if close is not None:
                if not stack:
                    break
                line += count("\n", counted, stop)
                counted = pos = stop
                previous = None  # for _refill_start, as after ";", "{" or "}"
                current, data = stack.pop()
                continue
            if len(statement) >= _LONG_CHARS:
                break
            if "'" in statement or '"' in statement:
                found = [a or b or c for a, b, c in _FAST_SPLIT.findall(statement)]
            else:
                found = statement.split()
            name = found[0]
            # no newline from the first word to the end: every word is on one line
            if char == ";":
                if (not data and name.endswith(LUA_BLOCK_SUFFIX)) or (
                        includes is not None and name == "include" and len(found) != 2):
                    break
                line += count("\n", counted, stop)
                counted = pos = stop
                previous = None
                if name == "if":
                    node = _statement(found, [line] * len(found), filename)
                else:
                    node = Directive(name, found[1:], line, filename, None, [line] * (len(found) - 1))
                current.append(node)
                if includes is not None and name == "include":
                    includes.append((node, data))
                continue
            if data:
                break
            line += count("\n", counted, stop)
            counted = pos = stop
            previous = None
            if name.endswith(LUA_BLOCK_SUFFIX):
                fast = _read_lua_block_fast(text, pos, buffer)
                body, pos = fast or read_lua_block(text, pos, filename, buffer)
                current.append(Directive(name, found[1:] + [body], line, filename, None, [line] * len(found)))
                continue
            if name == "if":
                node = _statement(found, [line] * len(found), filename, block=[])
            else:
                node = Directive(name, found[1:], line, filename, [], [line] * (len(found) - 1))
            current.append(node)
            stack.append((current, data))
            current = node.block
            data = name in DATA_BLOCKS
        if pos >= end:
            break
        match = match_token(text, pos)
        if match is None:
            rest = text[pos:]
            if not rest.strip(" \t\r\n"):
                break
            start = pos + len(rest) - len(rest.lstrip(" \t\r\n"))
            line += count("\n", counted, start)
            if text[start] in "\"'":
                raise NginxParseError("unterminated quoted string", filename, line)
            raise NginxParseError("unexpected %r" % text[start], filename, line)
        kind = match.lastindex
        start = match.start(kind)
        line += count("\n", counted, start)
        counted = start
        if buffer is not None and match.end() > buffer[0] < buffer[1]:
            before = pos
            while buffer[0] < match.end() and buffer[0] < buffer[1]:
                refill = buffer[0]
                new_last = min(buffer[1], _refill_start(refill, before, start, kind, previous,
                                                        previous_start) + CONF_BUFFER)
                if new_last <= refill:
                    break  # a token too long for the buffer: reported below
                buffer[0] = new_last
        previous, previous_start = kind, start
        pos = match.end()
        if kind == _WORD:
            value = match.group(kind)
            if len(value) >= _LONG_CHARS:
                _check_length(value, CONF_BUFFER, filename, line)
            words.append(_unescape(value) if "\\" in value else value)
            lines.append(line)
        elif kind == _QUOTED:
            if pos < end and text[pos] not in " \t\r\n;{)":
                raise NginxParseError("unexpected %r after quoted string" % text[pos], filename,
                                      line + count("\n", start, pos))
            value = text[start + 1:pos - 1]
            if len(value) >= _LONG_CHARS:
                _check_length(value, CONF_BUFFER - 1, filename, line)
            words.append(_unescape(value) if "\\" in value else value)
            lines.append(line)
        elif kind == _COMMENT:
            # nginx keeps a comment in its buffer like a token: 4096 bytes fail too
            if pos - start >= _LONG_CHARS:
                _check_length(match.group(kind), CONF_BUFFER + (pos == end), filename, line)
        else:
            char = text[start]
            if char == ";":
                if not words:
                    raise NginxParseError('unexpected ";"', filename, line)
                if words[0].endswith(LUA_BLOCK_SUFFIX) and not data:
                    raise NginxParseError('directive "%s" has no opening "{"' % words[0], filename,
                                          lines[0])
                node = _statement(words, lines, filename)
                current.append(node)
                if includes is not None and node.directive == "include":
                    if len(node.args) != 1:
                        raise NginxParseError('invalid number of arguments in "include" directive',
                                              filename, node.line)
                    includes.append((node, data))
                words, lines = [], []
            elif char == "{":
                if not words or data:
                    raise NginxParseError('unexpected "{"', filename, line)
                if words[0].endswith(LUA_BLOCK_SUFFIX):
                    fast = None if exact else _read_lua_block_fast(text, pos, buffer)
                    body, pos = fast or read_lua_block(text, pos, filename, buffer)
                    previous = None  # the next read_token call starts after the block
                    words.append(body)
                    lines.append(line)
                    current.append(_statement(words, lines, filename))
                else:
                    node = _statement(words, lines, filename, block=[])
                    current.append(node)
                    stack.append((current, data))
                    current = node.block
                    data = node.directive in DATA_BLOCKS
                words, lines = [], []
            else:  # "}"
                if words or not stack:
                    raise NginxParseError('unexpected "}"', filename, line)
                current, data = stack.pop()
    line += count("\n", counted, end)
    if words:
        raise NginxParseError('unexpected end of file, expecting ";" or "}"', filename, line)
    if stack:
        raise NginxParseError('unexpected end of file, expecting "}"', filename, line)
    return root


def _statement(words, lines, filename, block=None):
    name = words[0]
    args = words[1:]
    if name == "if":
        _prepare_if_args(args)
        return Directive(name, args, lines[0], filename, block)
    return Directive(name, args, lines[0], filename, block, lines[1:])


class NginxConfig(object):
    """Parsed files (path -> list of Directive) and the main file, includes resolved.

    roots are the files nginx parses at the top level, in order: the files a `-g` option
    includes (seen first in such a dump), then the main file. dump_issues lists
    (message, file, line) where an `nginx -T` dump could be split more than one way;
    alternatives holds the other readings that fit its include graph equally well.
    """

    def __init__(self, files, main, roots=None):
        self.files = files
        self.main = main
        self.roots = list(roots) if roots else [main]
        self.conf_dir = os.path.dirname(main)
        self.dump_issues = []
        self.alternatives = []
        self._walk_cache = None

    def include_pattern(self, pattern):
        """The pattern nginx uses for an include argument (ngx_conf_full_name: the conf prefix
        joined without normalising, so ".." is resolved by the filesystem)."""
        if pattern.startswith("/"):
            return pattern
        return os.path.join(self.conf_dir, pattern)

    def walk(self):
        """Return a list of (directive, context) for every directive, includes expanded.

        context is the tuple of enclosing block directive names, e.g. ("http", "server",
        "location", "if"); a directive from an included file gets its include site's context.
        Include directives themselves are listed too (before what they include). The lines
        of a data block (map, geo, types, split_clients, charset_map) are not directives and
        are not listed.
        """
        if self._walk_cache is None:
            found = []
            for root in self.roots:
                self._walk_into(self.files[root], (), found, [root])
            self._walk_cache = found
        return self._walk_cache

    def _walk_into(self, directives, context, found, file_stack):
        for node in directives:
            found.append((node, context))
            if node.block is not None:
                if node.directive not in DATA_BLOCKS:
                    self._walk_into(node.block, context + (node.directive,), found, file_stack)
            elif node.includes:
                for path in node.includes:
                    if path in file_stack:
                        raise NginxParseError("include cycle through %s" % path, node.file, node.line)
                    file_stack.append(path)
                    self._walk_into(self.files[path], context, found, file_stack)
                    file_stack.pop()


def _open_in_order(config, roots, read, expand, sizes=None, exact=False):
    """Parse roots and every file they include, in the order nginx opens them.

    read(path, node) returns a file's text (None: the file includes nothing); expand(node)
    returns the paths an include directive names. Sets config.files, node.includes and
    config.roots; returns the paths in the order nginx first opens them (its -T order).
    """
    opened = []
    data_files = set()
    stack = []
    includes = {}

    def visit(path, data, node):
        if path in stack:
            return  # a cycle: walk() reports it
        if path in config.files:
            if not data or path in data_files:
                return  # nginx parses it again, but it adds no file and no new include
            # first met as directives, now inside a data block: read it as data too
            includes[path] = []
            config.files[path] = parse_string(read(path, node), path, True, includes[path],
                                              (sizes or {}).get(path), exact)
        else:
            text = read(path, node)
            if text is None:
                config.files[path] = []
                return
            includes[path] = []
            config.files[path] = parse_string(text, path, data, includes[path],
                                              (sizes or {}).get(path), exact)
            opened.append(path)
        if data:
            data_files.add(path)
        stack.append(path)
        for include, in_data in includes[path]:
            include.includes = expand(include)
            for target in include.includes:
                visit(target, in_data, include)
        stack.pop()

    for root in roots:
        visit(root, False, None)
    config.roots = list(roots)
    return opened


# -- glob(3), as nginx's include uses it (glibc, C locale: nginx never calls setlocale) ------

_CLASSES = {
    b"alnum": b"0-9A-Za-z", b"alpha": b"A-Za-z", b"blank": b" \t", b"cntrl": b"\x00-\x1f\x7f",
    b"digit": b"0-9", b"graph": b"!-~", b"lower": b"a-z", b"print": b" -~",
    b"punct": b"!-/:-@\\[-`{-~", b"space": b" \t\n\x0b\x0c\r", b"upper": b"A-Z",
    b"xdigit": b"0-9A-Fa-f",
}
_NOTHING = object()


def _class_bytes(spec):
    """The set of byte values of a class body such as b"a-z0-9"."""
    found = set()
    i = 0
    while i < len(spec):
        if i + 2 < len(spec) and spec[i + 1:i + 2] == b"-":
            found.update(range(spec[i], spec[i + 2] + 1))
            i += 3
        else:
            found.add(spec[i])
            i += 1
    return found


def _bracket_item(component, j):
    """The "[:name:]", "[=c=]" or "[.c.]" that starts at component[j]: (kind, name, index
    after its closing "]"), kind being b":", b"=" or b".", or None when it is not closed."""
    kind = component[j + 1:j + 2]
    close = component.find(kind + b"]", j + 2)
    if close < 0:
        return None
    return kind, component[j + 2:close], close + 2


def _bracket(component, i):
    """Parse the bracket expression at component[i] ("["), like glibc's fnmatch.

    Returns (set of byte values, negated, index after "]"), (_NOTHING, ...) for an unknown
    class (glibc: no match), or None when there is no closing "]" (then "[" is literal).
    """
    j = i + 1
    size = len(component)
    negate = j < size and component[j:j + 1] in (b"!", b"^")
    if negate:
        j += 1
    members = set()
    first = True
    invalid = False
    while j < size:
        char = component[j:j + 1]
        if char == b"]" and not first:
            return (_NOTHING if invalid else members), negate, j + 1
        first = False
        if char == b"[" and component[j + 1:j + 2] in (b":", b"=", b"."):
            item = _bracket_item(component, j)
            if item is None:
                return None
            kind, name, j = item
            if kind == b":":
                if name in _CLASSES:
                    members.update(_class_bytes(_CLASSES[name]))
                else:
                    invalid = True
                continue
            if len(name) != 1:
                invalid = True
                continue
            low = name[0]
        else:
            if char == b"\\" and j + 1 < size:
                j += 1
            low = component[j]
            j += 1
        # a range: low "-" high, where "-" is not the last character before "]"
        if component[j:j + 1] == b"-" and j + 1 < size and component[j + 1:j + 2] != b"]":
            j += 1
            if component[j:j + 1] == b"[" and component[j + 1:j + 2] in (b"=", b"."):
                item = _bracket_item(component, j)
                if item is None:
                    return None
                dummy, name, j = item
                if len(name) != 1:
                    invalid = True
                    continue
                high = name[0]
            else:
                if component[j:j + 1] == b"\\" and j + 1 < size:
                    j += 1
                high = component[j]
                j += 1
            members.update(range(low, high + 1))
        else:
            members.add(low)
    return None


def _compile_component(component):
    """(regex or None, literal bytes) for one "/"-free part of a glob pattern (bytes).

    The regex is None when the part has no wildcard: it then names one entry literally
    (backslashes removed). A leading "." is matched only by a literal "." (FNM_PERIOD).
    """
    parts = []
    literal = []
    magic = False
    i = 0
    size = len(component)
    while i < size:
        char = component[i:i + 1]
        if char == b"\\" and i + 1 < size:
            parts.append(re.escape(component[i + 1:i + 2]))
            literal.append(component[i + 1:i + 2])
            i += 2
        elif char == b"*":
            parts.append(b".*")
            magic = True
            i += 1
        elif char == b"?":
            parts.append(b".")
            magic = True
            i += 1
        elif char == b"[" and _bracket(component, i) is not None:
            members, negate, i = _bracket(component, i)
            magic = True
            if members is _NOTHING:
                parts.append(b"(?!)")
            else:
                chosen = set(range(256)) - members if negate else members
                if not chosen:
                    parts.append(b"(?!)")
                else:
                    parts.append(b"[" + b"".join(re.escape(bytes([c])) for c in sorted(chosen)) + b"]")
        else:
            parts.append(re.escape(char))
            literal.append(char)
            i += 1
    if not magic:
        return None, b"".join(literal)
    leading_dot = parts[0] == re.escape(b".")
    return re.compile((b"" if leading_dot else b"(?!\\.)") + b"".join(parts) + b"\\Z", re.DOTALL), None


def _to_bytes(text):
    return text.encode("utf-8", "surrogateescape")


def _to_text(data):
    return data.decode("utf-8", "surrogateescape")


def glob_sorted(paths):
    """Paths in the order glob(3) returns them (strcmp on the bytes, LC_COLLATE=C)."""
    return sorted(paths, key=_to_bytes)


def has_magic(pattern):
    """nginx globs an include only when it contains "*", "?" or "[" (ngx_conf_include)."""
    return _GLOB_MAGIC.search(pattern) is not None


def glob_filesystem(pattern):
    """What glob(pattern, 0) returns (glibc, C locale), read from the filesystem.

    Directories in the pattern are opened as the kernel resolves them, so "link/.." is the
    link target's parent, not a lexical parent.
    """
    components = _to_bytes(pattern).split(b"/")
    candidates = [b""]
    last = len(components) - 1
    for index, component in enumerate(components):
        regex, literal = _compile_component(component)
        joined = []
        for base in candidates:
            prefix = base + b"/" if index else base
            if regex is None:
                path = prefix + literal
                if index == last:
                    if component == b"" or os.path.lexists(path):
                        joined.append(path)
                else:
                    joined.append(path)
                continue
            try:
                names = os.listdir(base or (b"/" if index else b"."))
            except OSError:
                continue
            for name in [b".", b".."] + names:
                if regex.match(name):
                    path = prefix + name
                    if index == last or os.path.isdir(path):
                        joined.append(path)
        candidates = joined
    return glob_sorted(_to_text(path) for path in candidates if path)


def glob_names(pattern, names):
    """The names (paths as `nginx -T` printed them) that pattern matches, in glob's order."""
    components = [_compile_component(part) for part in _to_bytes(pattern).split(b"/")]
    found = []
    for name in names:
        parts = _to_bytes(name).split(b"/")
        if len(parts) != len(components):
            continue
        for (regex, literal), part in zip(components, parts):
            if (regex.match(part) is None) if regex is not None else (literal != part):
                break
        else:
            found.append(name)
    return glob_sorted(found)


def resolve_include(pattern):
    """The files one include pattern (already joined to the conf prefix) names, for nginx.

    A pattern with "*", "?" or "[" goes through glob(3) and keeps regular files (in
    glob's order); any other pattern names one file, returned as is (nginx fails when it
    cannot be read, and so does the caller).
    """
    if not has_magic(pattern):
        return [pattern]
    return [path for path in glob_filesystem(pattern) if os.path.isfile(path)]


# -- nginx -T dumps -------------------------------------------------------------------------

def _dump_lines(text):
    """The dump's lines (split at LF only, as nginx writes them) after the banner."""
    lines = text.split("\n")
    lines = [line + "\n" for line in lines[:-1]] + ([lines[-1]] if lines[-1] else [])
    start = 0
    while start < len(lines) and (lines[start].startswith(_BANNER) or not lines[start].strip()):
        start += 1
    return lines[start:]


def _markers(lines):
    """Indexes of the lines that look like nginx's "# configuration file PATH:" line."""
    found = []
    for index, raw in enumerate(lines):
        if raw.startswith("# configuration file ") and raw.endswith(":\n"):
            marker = _DUMP_MARKER.match(raw[:-1])
            if marker:
                found.append(index)
    return found


def _parts(lines, boundaries, main):
    return [(path, body) for path, body, _line in _split_at(lines, boundaries, main)]


def _split_at(lines, boundaries, main):
    files = []
    if not boundaries or boundaries[0] != 0:
        head = "".join(lines[:boundaries[0]] if boundaries else lines)
        if head.strip() or not boundaries:
            files.append((main or DEFAULT_MAIN, head, 0))
    for position, index in enumerate(boundaries):
        end = boundaries[position + 1] if position + 1 < len(boundaries) else len(lines)
        path = _DUMP_MARKER.match(lines[index][:-1]).group(1)
        files.append((path, "".join(lines[index + 1:end]), index + 1))
    return files


def _split_text(text, main):
    """What _split_at(lines, _markers(lines), main) returns for text's lines, without the
    line numbers: the same files, cut from text at the offsets of its marker lines."""
    start = 0
    size = len(text)
    while start < size:  # the banner, as _dump_lines drops it
        newline = text.find("\n", start)
        stop = size if newline < 0 else newline + 1
        line = text[start:stop]
        if not (line.startswith(_BANNER) or not line.strip()):
            break
        start = stop
    marks = []
    line = start
    while 0 <= line < size:
        match = _MARKER_LINE.match(text, line)
        if match:
            marks.append((line, match.end(), match.group(1)))
        line = text.find("\n" + _MARKER_START, line)
        if line >= 0:
            line += 1
    files = []
    if not marks or marks[0][0] != start:
        head = text[start:marks[0][0]] if marks else text[start:]
        if head.strip() or not marks:
            files.append((main or DEFAULT_MAIN, head))
    for position, (_begin, end, path) in enumerate(marks):
        stop = marks[position + 1][0] if position + 1 < len(marks) else size
        files.append((path, text[end:stop]))
    return files


def split_dump(text, main=None, exact=False):
    """Split `nginx -T` output at every file marker into an ordered list of (path, text).

    Leading "nginx: ..." banner lines are dropped. Output without any
    "# configuration file PATH:" marker is one file named main (default nginx.conf).
    parse_dump() checks this split against the include graph before using it.
    exact=True splits the text into lines first (the same result, slower).
    """
    if not exact:
        return _split_text(text, main)
    lines = _dump_lines(text)
    return [(path, body) for path, body, _line in _split_at(lines, _markers(lines), main)]


# A dump whose markers do not fit its include graph is split again with some markers read
# as file content; this bounds the readings tried (and their parsing work).
MAX_DUMP_READINGS = 256
MAX_DUMP_WORK = 64 * 1024 * 1024


def _reading(parts, main, exact=False):
    """Parse one split of the dump, [(path, text)]; return (config, problem) where problem
    is None when nginx could have written the dump this way (files in the order nginx
    opens them, each once, every one reached from the roots)."""
    texts = {}
    order = []
    problem = None
    for path, body in parts:
        if path in texts:
            problem = "%s is printed twice" % path
        else:
            texts[path] = body
            order.append(path)
    if main is None or main not in texts:
        main = order[0]
    # nginx -T writes a newline after each file: the file itself is one byte shorter
    sizes = dict((path, len(body) - 1) for path, body in texts.items() if body.endswith("\n"))
    config = NginxConfig({}, main)
    names = list(texts)
    cache = {}

    def read(path, _node):
        return texts.get(path)

    def expand(node):
        pattern = config.include_pattern(node.args[0])
        if pattern not in cache:
            if has_magic(pattern):
                cache[pattern] = glob_names(pattern, names)
            else:
                cache[pattern] = [pattern] if pattern in texts else []
        return cache[pattern]

    roots = []
    opened = []
    for path in order:
        if path == main:
            break
        if path not in opened:
            roots.append(path)
            opened.extend(_open_in_order(config, [path], read, expand, sizes, exact))
    if main in opened:
        problem = problem or "%s is included by a file before it" % main
    roots.append(main)
    opened.extend(_open_in_order(config, [main], read, expand, sizes, exact))
    config.roots = roots
    if problem is None and opened != order:
        missing = [path for path in order if path not in opened]
        if missing:
            problem = "%s is not included by any file before it" % missing[0]
        else:
            problem = "the files are not in the order nginx includes them"
    return config, problem


@without_cyclic_gc
def parse_dump(text, main=None, exact=False):
    """Parse the text of `nginx -T` into an NginxConfig. Raises NginxParseError.

    The first file is the main one unless main names a later file (a dump taken with
    `-g 'include ...'` starts with the files -g includes). Include patterns are matched
    against the files of the dump like glob(3) (a pattern without a match, like an empty
    conf.d/*.conf, includes nothing).

    Any file can hold a line shaped like nginx's "# configuration file PATH:" (a comment,
    a line of a Lua long string). A split is used only when it fits the include graph:
    every file after the roots is reached by an include of an earlier file, in nginx's
    order, none twice. Otherwise the readings with the fewest markers taken as content
    that do fit are used (config.alternatives holds the others) and config.dump_issues
    says which marker lines are not file starts.

    exact=True turns the fast paths of the lexers off (see parse_string).
    """
    if not exact:
        # Most dumps fit their include graph as split at every marker: that reading needs
        # no lines (the others are read below, from the lines).
        try:
            config, problem = _reading(_split_text(text, main), main, exact)
            if problem is None:
                return config
        except NginxParseError:
            pass
    lines = _dump_lines(text)
    markers = _markers(lines)
    error = None
    try:
        config, problem = _reading(_parts(lines, markers, main), main, exact)
        if problem is None:
            return config
    except NginxParseError as exc:
        config, problem, error = None, str(exc), exc
    fits = _other_readings(lines, markers, main, len(text), exact)
    if main is None and len(markers) > 1:
        # Without the main file's name, a dump taken with -g (its files first) fits too.
        for index in markers[1:]:
            path = _DUMP_MARKER.match(lines[index][:-1]).group(1)
            try:
                reading, later_problem = _reading(_parts(lines, markers, path), path, exact)
            except NginxParseError:
                continue
            if later_problem is None:
                reading.dump_issues.append(
                    ("no include reaches the files before %s: read as a dump taken with "
                     "`nginx -T -g 'include ...'` (give the main file to decide)" % path,
                     reading.roots[0], None))
                fits.append((set(), reading))
    if not fits:
        if error is not None:
            raise error
        config.dump_issues.append(
            ("the file markers of this dump do not fit its include graph (%s): the rules read "
             "it split at every marker" % problem, config.main, None))
        return config
    chosen = fits[0][1]
    chosen.alternatives = [item[1] for item in fits[1:]]
    for dropped, reading in fits:
        where = _containing_file(lines, markers, dropped)
        for index in dropped:
            path, line = where[index]
            reading.dump_issues.append(
                ("%s looks like a file marker of nginx -T but is not where nginx started a "
                 "file (%s); it is read as line %d of %s"
                 % (lines[index].rstrip("\n"), problem, line, path), path, line))
    return chosen


def _containing_file(lines, markers, dropped):
    kept = [index for index in markers if index not in dropped]
    where = {}
    for index in dropped:
        before = [k for k in kept if k < index]
        if before:
            path = _DUMP_MARKER.match(lines[before[-1]][:-1]).group(1)
            where[index] = (path, index - before[-1])
        else:
            where[index] = (DEFAULT_MAIN, index + 1)
    return where


def _other_readings(lines, markers, main, size, exact=False):
    """[(dropped marker indexes, config)] of the readings that fit, fewest dropped first."""
    optional = markers[1:]
    budget = min(MAX_DUMP_READINGS, max(1, MAX_DUMP_WORK // max(size, 1)))
    tried = 0
    for count in range(1, len(optional) + 1):
        fits = []
        for dropped in itertools.combinations(optional, count):
            tried += 1
            if tried > budget:
                return fits
            keep = [index for index in markers if index not in dropped]
            try:
                config, problem = _reading(_parts(lines, keep, main), main, exact)
            except NginxParseError:
                continue
            if problem is None:
                fits.append((set(dropped), config))
        if fits:
            return fits
    return []


def read_file(path):
    with io.open(path, "r", encoding="utf-8", errors="replace", newline="") as handle:
        return handle.read()


PARAMS_FILE = "nginx -g"


@without_cyclic_gc
def load_tree(main, params=None, exact=False):
    """Read a live configuration from disk, starting at the main file. Raises NginxParseError.

    Includes resolve as nginx resolves them (resolve_include: glob(3) for patterns,
    relative ones against the main file's directory); a plain include that cannot be
    read is an error, as in nginx.
    params is the text of nginx's -g option: directives of the main context that nginx reads
    before the main file (ngx_conf_param); they come first, their file is PARAMS_FILE.
    exact=True turns the fast paths of the lexers off (see parse_string).
    """
    main = os.path.abspath(main)
    config = NginxConfig({}, main)

    def read(path, node):
        try:
            return read_file(path)
        except (IOError, OSError) as exc:
            raise NginxParseError("cannot read %s: %s" % (path, exc.strerror or exc),
                                  node.file if node else path, node.line if node else None)

    def expand(node):
        return resolve_include(config.include_pattern(node.args[0]))

    def read_or_params(path, node):
        return params if path == PARAMS_FILE else read(path, node)

    _open_in_order(config, ([PARAMS_FILE] if params else []) + [main], read_or_params, expand,
                   exact=exact)
    if params:
        config.files[main] = config.files.pop(PARAMS_FILE) + config.files[main]
        config.roots = [main]
    return config


def directive_tree(directives):
    """The crossplane-shaped list of dicts for a list of Directive."""
    return [node.as_dict() for node in directives]
