# -*- coding: utf-8 -*-
# Copyright: hardened.openresty contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read nginx configuration the way nginx and lua-nginx-module read it.

The lexer follows ngx_conf_read_token(): words end at whitespace, ";" or "{" (but "${" does
not open a block), "#" starts a comment only at the start of a word, a quoted string must be
followed by whitespace, ";", "{" or ")", and backslash escapes are resolved as nginx
resolves them. The body of a ``*_by_lua_block`` is read as Lua, like lua-nginx-module's own
lexer: braces inside Lua strings, long strings (``[==[ ... ]==]``) and comments
(``-- ...``, ``--[[ ... ]]``) never end the block. The body becomes the directive's last
argument, verbatim.

The result is a tree of Directive objects shaped like crossplane's payload (directive,
args, line, file, block). Includes are resolved against the files of an ``nginx -T`` dump or
against the filesystem; NginxConfig.walk() then yields every directive with the context it
has in nginx (an included file takes the context of its include site).

Standard library only: this runs on targets.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import fnmatch
import glob
import io
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
# What nginx's copy loop turns an escape into; any other backslash is kept as is.
_ESCAPE = re.compile(r"\\(.)", re.DOTALL)
_ESCAPES = {'"': '"', "'": "'", "\\": "\\", "t": "\t", "r": "\r", "n": "\n"}
# Characters that matter inside a Lua block; everything else is skipped by one search.
_LUA_INTERESTING = re.compile(r"""[-\["'{}]""")
_LUA_LONG_OPEN = re.compile(r"\[(=*)\[")
_LUA_SHORT_STRING = {
    '"': re.compile(r'"(?:[^"\\\n]|\\.)*"', re.DOTALL),
    "'": re.compile(r"'(?:[^'\\\n]|\\.)*'", re.DOTALL),
}
_GLOB_MAGIC = re.compile(r"[*?\[]")
_DUMP_MARKER = re.compile(r"^# configuration file (.+):$")
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


def _skip_long_bracket(text, pos, filename, what):
    """pos is at "[" of a long bracket; return the position after its closing bracket."""
    match = _LUA_LONG_OPEN.match(text, pos)
    close = "]" + match.group(1) + "]"
    end = text.find(close, match.end())
    if end < 0:
        raise NginxParseError("unfinished Lua long %s" % what, filename, _line_at(text, pos))
    return end + len(close)


def read_lua_block(text, pos, filename=None):
    """Read a Lua block body starting just after its "{"; return (body, end_pos).

    end_pos is just after the closing "}". Raises NginxParseError on an unterminated string,
    long string, long comment or block.
    """
    depth = 1
    start = pos
    search = _LUA_INTERESTING.search
    while True:
        match = search(text, pos)
        if match is None:
            raise NginxParseError(
                "unexpected end of file, expecting terminating characters for lua code block",
                filename, _line_at(text, start))
        pos = match.start()
        char = text[pos]
        if char == "{":
            depth += 1
            pos += 1
        elif char == "}":
            depth -= 1
            pos += 1
            if depth == 0:
                return text[start:pos - 1], pos
        elif char == "-":
            if text.startswith("--", pos):
                if _LUA_LONG_OPEN.match(text, pos + 2):
                    pos = _skip_long_bracket(text, pos + 2, filename, "comment")
                else:
                    end = text.find("\n", pos)
                    pos = len(text) if end < 0 else end
            else:
                pos += 1
        elif char == "[":
            if _LUA_LONG_OPEN.match(text, pos):
                pos = _skip_long_bracket(text, pos, filename, "string")
            else:
                pos += 1
        else:
            string = _LUA_SHORT_STRING[char].match(text, pos)
            if string is None:
                raise NginxParseError("unfinished Lua string", filename, _line_at(text, pos))
            pos = string.end()


def _prepare_if_args(args):
    """Drop the parentheses of an "if" condition, as nginx (and crossplane) do."""
    if args and args[0].startswith("(") and args[-1].endswith(")"):
        args[0] = args[0][1:].lstrip()
        args[-1] = args[-1][:-1].rstrip()
        start = 0 if args[0] else 1
        end = len(args) - (0 if args[-1] else 1)
        args[:] = args[start:end]


def parse_string(text, filename=DEFAULT_MAIN):
    """Parse one file's text into a list of Directive. Raises NginxParseError."""
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
    while pos < end:
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
        pos = match.end()
        if kind == _WORD:
            value = match.group(kind)
            words.append(_unescape(value) if "\\" in value else value)
            lines.append(line)
        elif kind == _QUOTED:
            if pos < end and text[pos] not in " \t\r\n;{)":
                raise NginxParseError("unexpected %r after quoted string" % text[pos], filename,
                                      line + count("\n", start, pos))
            value = text[start + 1:pos - 1]
            words.append(_unescape(value) if "\\" in value else value)
            lines.append(line)
        elif kind == _COMMENT:
            pass
        else:
            char = text[start]
            if char == ";":
                if not words:
                    raise NginxParseError('unexpected ";"', filename, line)
                if words[0].endswith(LUA_BLOCK_SUFFIX):
                    raise NginxParseError('directive "%s" has no opening "{"' % words[0], filename,
                                          lines[0])
                current.append(_statement(words, lines, filename))
                words, lines = [], []
            elif char == "{":
                if not words:
                    raise NginxParseError('unexpected "{"', filename, line)
                if words[0].endswith(LUA_BLOCK_SUFFIX):
                    body, pos = read_lua_block(text, pos, filename)
                    words.append(body)
                    lines.append(line)
                    current.append(_statement(words, lines, filename))
                else:
                    node = _statement(words, lines, filename, block=[])
                    current.append(node)
                    stack.append(current)
                    current = node.block
                words, lines = [], []
            else:  # "}"
                if words or not stack:
                    raise NginxParseError('unexpected "}"', filename, line)
                current = stack.pop()
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
    """Parsed files (path -> list of Directive) and the main file, includes resolved."""

    def __init__(self, files, main):
        self.files = files
        self.main = main
        self.conf_dir = os.path.dirname(main)
        self._walk_cache = None

    def include_pattern(self, pattern):
        """The absolute pattern nginx uses for an include argument."""
        if os.path.isabs(pattern):
            return pattern
        return os.path.join(self.conf_dir, pattern)

    def walk(self):
        """Return a list of (directive, context) for every directive, includes expanded.

        context is the tuple of enclosing block directive names, e.g. ("http", "server",
        "location", "if"); a directive from an included file gets its include site's context.
        Include directives themselves are listed too (before what they include).
        """
        if self._walk_cache is None:
            found = []
            self._walk_into(self.files[self.main], (), found, [self.main])
            self._walk_cache = found
        return self._walk_cache

    def _walk_into(self, directives, context, found, file_stack):
        for node in directives:
            found.append((node, context))
            if node.block is not None:
                self._walk_into(node.block, context + (node.directive,), found, file_stack)
            elif node.includes:
                for path in node.includes:
                    if path in file_stack:
                        raise NginxParseError("include cycle through %s" % path, node.file, node.line)
                    file_stack.append(path)
                    self._walk_into(self.files[path], context, found, file_stack)
                    file_stack.pop()


def _resolve_includes(files, order, resolve):
    """Set node.includes on every include directive in the given files using resolve()."""
    for path in order:
        pending = list(files[path])
        while pending:
            node = pending.pop()
            if node.block is not None:
                pending.extend(node.block)
            elif node.directive == "include":
                if len(node.args) != 1:
                    raise NginxParseError('invalid number of arguments in "include" directive',
                                          node.file, node.line)
                node.includes = resolve(node)


def _glob_match(pattern, path):
    """Match like glob(3): "*" does not cross "/" and does not match a leading dot."""
    pattern_parts = pattern.split("/")
    path_parts = path.split("/")
    if len(pattern_parts) != len(path_parts):
        return False
    for want, have in zip(pattern_parts, path_parts):
        if have.startswith(".") and not want.startswith("."):
            return False
        if not fnmatch.fnmatchcase(have, want):
            return False
    return True


def split_dump(text, main=None):
    """Split `nginx -T` output into an ordered list of (path, text).

    Leading "nginx: ..." banner lines are dropped. Output without any
    "# configuration file PATH:" marker is one file named main (default nginx.conf).
    """
    lines = text.splitlines(True)
    start = 0
    while start < len(lines) and (lines[start].startswith(_BANNER) or not lines[start].strip()):
        start += 1
    files = []
    current_path = None
    current_lines = []
    for raw in lines[start:]:
        marker = _DUMP_MARKER.match(raw.rstrip("\r\n"))
        if marker:
            if current_path is not None or "".join(current_lines).strip():
                files.append((current_path or main or DEFAULT_MAIN, "".join(current_lines)))
            current_path = marker.group(1)
            current_lines = []
        else:
            current_lines.append(raw)
    if current_path is not None or "".join(current_lines).strip() or not files:
        files.append((current_path or main or DEFAULT_MAIN, "".join(current_lines)))
    return files


def parse_dump(text, main=None):
    """Parse the text of `nginx -T` into an NginxConfig. Raises NginxParseError.

    The first file is the main one. Include patterns are matched against the files of the
    dump (a pattern without a match, like an empty conf.d/*.conf, includes nothing).
    """
    parts = split_dump(text, main)
    files = {}
    order = []
    for path, body in parts:
        if path in files:
            continue  # nginx dumps each file once; a repeated marker adds nothing
        files[path] = parse_string(body, path)
        order.append(path)
    config = NginxConfig(files, order[0])
    by_norm = {}
    for path in order:
        by_norm.setdefault(os.path.normpath(path), path)
    cache = {}

    def resolve(node):
        pattern = os.path.normpath(config.include_pattern(node.args[0]))
        if pattern not in cache:
            if _GLOB_MAGIC.search(pattern):
                cache[pattern] = sorted(by_norm[norm] for norm in by_norm if _glob_match(pattern, norm))
            else:
                cache[pattern] = [by_norm[pattern]] if pattern in by_norm else []
        return cache[pattern]

    _resolve_includes(files, order, resolve)
    return config


def read_file(path):
    with io.open(path, "r", encoding="utf-8", errors="replace", newline="") as handle:
        return handle.read()


PARAMS_FILE = "nginx -g"


def load_tree(main, params=None):
    """Read a live configuration from disk, starting at the main file. Raises NginxParseError.

    Includes resolve against the main file's directory; glob patterns use the filesystem
    (sorted, like nginx); a plain include that cannot be read is an error, as in nginx.
    params is the text of nginx's -g option: directives of the main context that nginx reads
    before the main file (ngx_conf_param); they come first, their file is PARAMS_FILE.
    """
    main = os.path.abspath(main)
    files = {}

    def load(path, node=None):
        if path not in files:
            try:
                text = read_file(path)
            except (IOError, OSError) as exc:
                raise NginxParseError("cannot read %s: %s" % (path, exc.strerror or exc),
                                      node.file if node else path, node.line if node else None)
            files[path] = parse_string(text, path)
            _resolve_includes(files, [path], resolve)

    config = NginxConfig(files, main)

    def resolve(node):
        pattern = config.include_pattern(node.args[0])
        if _GLOB_MAGIC.search(pattern):
            paths = sorted(p for p in glob.glob(pattern) if os.path.isfile(p))
        else:
            paths = [pattern]
        for path in paths:
            load(path, node)
        return paths

    if params:
        files[PARAMS_FILE] = parse_string(params, PARAMS_FILE)
        _resolve_includes(files, [PARAMS_FILE], resolve)
    load(main)
    if params:
        files[main] = files.pop(PARAMS_FILE) + files[main]
    return config


def directive_tree(directives):
    """The crossplane-shaped list of dicts for a list of Directive."""
    return [node.as_dict() for node in directives]
