"""The include resolver against the real glob(3) of the C library, as nginx calls it.

nginx resolves `include PATTERN` with glob(pattern, 0, NULL, &gl) and never calls
setlocale(), so glob runs in the C locale. These tests build a real tree (dot files,
symlinks, a broken link, names with brackets and bytes above 0x7f), then ask libc's glob
and nginx_parser.glob_filesystem the same patterns: the C library is the oracle.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ctypes
import ctypes.util
import locale
import os

import pytest

from ansible_collections.hardened.openresty.plugins.module_utils import nginx_parser


class _Glob(ctypes.Structure):
    # glibc's glob_t: gl_pathc, gl_pathv, gl_offs, then flags and callbacks (room kept)
    _fields_ = [("gl_pathc", ctypes.c_size_t), ("gl_pathv", ctypes.POINTER(ctypes.c_char_p)),
                ("gl_offs", ctypes.c_size_t), ("rest", ctypes.c_char * 256)]


def libc_glob(pattern):
    name = ctypes.util.find_library("c")
    if not name:
        pytest.skip("no C library to ask")
    libc = ctypes.CDLL(name)
    if not hasattr(libc, "glob"):
        pytest.skip("the C library has no glob")
    result = _Glob()
    saved = locale.setlocale(locale.LC_ALL)
    locale.setlocale(locale.LC_ALL, "C")
    try:
        rc = libc.glob(pattern.encode("utf-8", "surrogateescape"), 0, None, ctypes.byref(result))
        paths = [result.gl_pathv[i].decode("utf-8", "surrogateescape") for i in range(result.gl_pathc)]
        libc.globfree(ctypes.byref(result))
    finally:
        locale.setlocale(locale.LC_ALL, saved)
    return paths if rc == 0 else []


FILES = [
    "a.conf", "b.conf", "B.conf", "_u.conf", "1.conf", "ab.conf", "a-b.conf", "!x.conf",
    "^y.conf", "[a].conf", "]z.conf", ".hidden.conf", "\u00e9.conf", "x.conf.bak", "sp ace.conf",
    "star*.conf", "dir/c.conf", "dir/.d.conf", "dir/sub/e.conf", "other/f.conf",
    "inner/deep/g.conf", "inner/h.conf",
]
PATTERNS = [
    "*.conf", "*", ".*", "?.conf", "??.conf", "[ab].conf", "[!a]*.conf", "[^a]*.conf",
    "[!ab]*", "[[:alnum:]]*.conf", "[[:upper:]]*", "[[:lower:]].conf", "[[:digit:]]*",
    "[[:punct:]]*", "[[:alpha:][:digit:]]*.conf", "[[:space:]]*", "*[[:space:]]*",
    "[]a]*", "[!]a]*", "[a-c]*", "[z-a]*", "[a-]*", "[--a]*", "[[.a.]]*", "[[=b=]]*",
    "[[:nope:]]*", "[a", "*[", "\\[a\\].conf", "[[]a]*", "star\\*.conf", "\\a.conf",
    "*/c.conf", "*/*.conf", "*/.*", "*/sub/*.conf", "dir/*", "dir/*/*.conf",
    "link/*.conf", "link/../*.conf", "link/../h.conf", "dir/../*.conf", "*/../[ab].conf",
    "broken*", "*.conf.*", "\u00e9*", "?.conf*", "[\u00e9]*", "*/", "[.]*", "[!.]*",
    "a.conf", "nothere*", "dir/sub", "*/sub",
]


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("glob"))
    for name in FILES:
        path = os.path.join(root, name)
        if not os.path.isdir(os.path.dirname(path)):
            os.makedirs(os.path.dirname(path))
        with open(path, "w") as handle:
            handle.write("# %s\n" % name)
    os.symlink(os.path.join(root, "inner", "deep"), os.path.join(root, "link"))
    os.symlink(os.path.join(root, "missing"), os.path.join(root, "broken.conf"))
    return root


@pytest.mark.parametrize("pattern", PATTERNS)
def test_glob_matches_the_c_library(tree, pattern):
    full = os.path.join(tree, pattern)
    assert nginx_parser.glob_filesystem(full) == libc_glob(full)


@pytest.mark.parametrize("pattern", [p for p in PATTERNS if "/" not in p and ".." not in p])
def test_dump_names_match_like_the_filesystem(tree, pattern):
    """In a dump, includes are matched against the printed names with the same rules."""
    names = [os.path.join(tree, name) for name in os.listdir(tree)]
    full = os.path.join(tree, pattern)
    expected = [p for p in libc_glob(full) if os.path.basename(p) not in (".", "..")]
    assert nginx_parser.glob_names(full, names) == expected


def test_dot_dot_after_a_symlink_is_the_target_s_parent(tree):
    # link -> inner/deep, so link/.. is inner: h.conf is found, a lexical ".." would not
    found = nginx_parser.resolve_include(os.path.join(tree, "link/../*.conf"))
    assert [os.path.basename(p) for p in found] == ["h.conf"]


def test_include_keeps_regular_files_in_glob_order(tree):
    found = nginx_parser.resolve_include(os.path.join(tree, "*"))
    names = [os.path.basename(p) for p in found]
    assert names == sorted(names, key=lambda n: n.encode("utf-8"))
    assert "dir" not in names and "broken.conf" not in names and ".hidden.conf" not in names


def test_load_tree_uses_glob_semantics(tmp_path):
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "a.conf").write_text("lua_code_cache off;\n")
    (tmp_path / "conf.d" / "b.conf").write_text("lua_code_cache on;\n")
    main = tmp_path / "nginx.conf"
    main.write_text("http { include conf.d/[^a].conf; }\n")
    config = nginx_parser.load_tree(str(main))
    assert [n.args for n, _c in config.walk() if n.directive == "lua_code_cache"] == [["on"]]
