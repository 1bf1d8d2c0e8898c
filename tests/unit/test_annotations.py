# -*- coding: utf-8 -*-
# Copyright: inference.deepseek_v4 maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Every function and method under plugins/ (nested ones included, lambdas not) is fully annotated: a return
annotation, and an annotation on every parameter (positional-only, keyword-only, *args and **kwargs included)
except a method's leading self or cls. A file that annotates also imports ``annotations`` from ``__future__``, so
that its annotations are never evaluated on the Python >= 3.8 target hosts that run modules and module_utils."""

from __future__ import annotations

import ast
import os
from typing import Iterator, List

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PLUGINS = os.path.join(ROOT, "plugins")
FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef)


def python_files(top: str) -> Iterator[str]:
    for directory, dirnames, filenames in os.walk(top):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        for name in sorted(filenames):
            if name.endswith(".py"):
                yield os.path.join(directory, name)


def _parse(path: str) -> ast.Module:
    with open(path, "rb") as handle:
        return ast.parse(handle.read(), filename=path)


def _methods(tree: ast.AST) -> set[int]:
    """``id()`` of every function defined directly in a class body: those may leave a leading self or cls bare."""
    return {id(item) for node in ast.walk(tree) if isinstance(node, ast.ClassDef)
            for item in node.body if isinstance(item, FUNCTIONS)}


def _bare_parameters(node: ast.FunctionDef | ast.AsyncFunctionDef, method: bool) -> List[str]:
    args = node.args
    positional = list(args.posonlyargs) + list(args.args)
    if method and positional and positional[0].arg in ("self", "cls"):
        positional = positional[1:]
    every = positional + list(args.kwonlyargs) + [arg for arg in (args.vararg, args.kwarg) if arg is not None]
    return [arg.arg for arg in every if arg.annotation is None]


def unannotated(path: str, tree: ast.Module | None = None) -> Iterator[str]:
    """``"path:line function (what is missing)"`` for every function or method of the file that lacks an annotation."""
    tree = _parse(path) if tree is None else tree
    methods = _methods(tree)
    for node in ast.walk(tree):
        if not isinstance(node, FUNCTIONS):
            continue
        missing = _bare_parameters(node, id(node) in methods)
        if node.returns is None:
            missing.append("return")
        if missing:
            yield "%s:%d %s (%s)" % (os.path.relpath(path, ROOT), node.lineno, node.name, ", ".join(missing))


def _has_future_annotations(tree: ast.Module) -> bool:
    return any(isinstance(node, ast.ImportFrom) and node.module == "__future__"
               and any(alias.name == "annotations" for alias in node.names) for node in tree.body)


def test_plugins_are_found() -> None:
    assert any(path.endswith(os.path.join("modules", "gpu_info.py")) for path in python_files(PLUGINS))


def test_every_function_is_annotated() -> None:
    bare = [found for path in python_files(PLUGINS) for found in unannotated(path)]
    assert not bare, "%d functions lack annotations:\n%s" % (len(bare), "\n".join(bare))


def test_annotated_files_postpone_evaluation() -> None:
    eager = []
    for path in python_files(PLUGINS):
        tree = _parse(path)
        annotates = any(isinstance(node, FUNCTIONS) for node in ast.walk(tree))
        if annotates and not _has_future_annotations(tree):
            eager.append(os.path.relpath(path, ROOT))
    assert not eager, "files without `from __future__ import annotations`: %s" % ", ".join(eager)


@pytest.mark.parametrize("source, expected", [
    ("def f(a, b: int) -> None:\n    pass\n", ["f (a)"]),
    ("def f(a: int):\n    pass\n", ["f (return)"]),
    ("def f(*args, **kwargs) -> None:\n    pass\n", ["f (args, kwargs)"]),
    ("def f(a: int, /, b: int, *, c) -> None:\n    pass\n", ["f (c)"]),
    ("def f(self) -> None:\n    pass\n", ["f (self)"]),
    ("class C:\n    def m(self, x: int) -> None:\n        pass\n", []),
    ("class C:\n    @classmethod\n    def m(cls) -> None:\n        pass\n", []),
    ("class C:\n    def m(self, other) -> None:\n        pass\n", ["m (other)"]),
    ("def f() -> None:\n    def g(x):\n        return lambda y: y\n", ["g (x, return)"]),
    ("async def f(x: int):\n    pass\n", ["f (return)"]),
])
def test_the_check_finds_what_is_missing(source: str, expected: List[str]) -> None:
    found = [where.split(" ", 1)[1] for where in unannotated(os.path.join(ROOT, "x.py"), ast.parse(source))]
    assert found == expected
