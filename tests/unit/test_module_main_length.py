"""Every module's main() reads as a list of named steps: shorter than MAX_MAIN_LINES lines.

The steps live beside main() or, as plain functions tests call, in plugins/module_utils.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ast
import glob
import os

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODULE_FILES = sorted(path for path in glob.glob(os.path.join(REPO, "plugins", "modules", "*.py"))
                      if not os.path.basename(path).startswith("_"))
MAX_MAIN_LINES = 60


def main_lines(source):
    """Lines of the module-level main() in source (decorators and docstring included), or None."""
    for node in ast.parse(source).body:
        if isinstance(node, ast.FunctionDef) and node.name == "main":
            first = min([node.lineno] + [item.lineno for item in node.decorator_list])
            last = max(getattr(item, "end_lineno", None) or item.lineno for item in ast.walk(node)
                       if hasattr(item, "lineno"))
            return last - first + 1
    return None


def test_main_lines_counts_the_whole_function():
    source = "import x\n\n\ndef main():\n    a = 1\n    if a:\n        b = (1,\n             2)\n\n\nmain()\n"
    assert main_lines(source) == 5
    assert main_lines("def other():\n    pass\n") is None


def test_every_module_is_checked():
    names = set(os.path.basename(path) for path in MODULE_FILES)
    assert names >= {"lua_release.py", "lua_sandbox_verify.py", "nginx_config.py", "nginx_reload.py",
                     "sealed_tree.py"}


@pytest.mark.parametrize("path", MODULE_FILES, ids=[os.path.basename(p)[:-3] for p in MODULE_FILES])
def test_main_is_shorter_than_the_limit(path):
    with open(path) as handle:
        lines = main_lines(handle.read())
    assert lines is not None, "%s has no main()" % path
    assert lines < MAX_MAIN_LINES, "main() of %s has %d lines: split it into named steps (under %d)" % (
        os.path.basename(path), lines, MAX_MAIN_LINES)
