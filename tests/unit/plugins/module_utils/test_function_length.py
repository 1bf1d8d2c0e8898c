# -*- coding: utf-8 -*-
# Copyright: inference.deepseek_v4 contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""No function or method under plugins/ is longer than MAX_LINES lines (decorators and docstring included)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ast
import os

MAX_LINES = 60
ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", ".."))
PLUGINS = os.path.join(ROOT, "plugins")


def python_files(top):
    for directory, dirnames, filenames in os.walk(top):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        for name in sorted(filenames):
            if name.endswith(".py"):
                yield os.path.join(directory, name)


def function_lengths(path):
    """``(lines, "path:line name")`` of every function and method the file defines, nested ones included."""
    with open(path, "rb") as handle:
        tree = ast.parse(handle.read(), filename=path)
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            first = min([node.lineno] + [d.lineno for d in node.decorator_list])
            where = "%s:%d %s" % (os.path.relpath(path, ROOT), node.lineno, node.name)
            yield node.end_lineno - first + 1, where


def test_plugins_are_found():
    assert any(path.endswith(os.path.join("modules", "gpu_info.py")) for path in python_files(PLUGINS))


def test_no_function_longer_than_the_limit():
    too_long = sorted((found for path in python_files(PLUGINS) for found in function_lengths(path)
                       if found[0] > MAX_LINES), reverse=True)
    for lines, where in too_long:
        print("%s: %d lines (limit %d)" % (where, lines, MAX_LINES))
    assert not too_long, "functions over %d lines: %s" % (
        MAX_LINES, ", ".join("%s (%d)" % (where, lines) for lines, where in too_long))
