# -*- coding: utf-8 -*-
"""The plan engine's shape: small functions, and topology/hardware/recipe behaviour as data only."""

from __future__ import annotations

import ast
import os

import pytest

from ansible_collections.inference.deepseek_v4.plugins.module_utils._plan import profiles

PACKAGE = os.path.join(os.path.dirname(profiles.__file__))
CODE = sorted(f for f in os.listdir(PACKAGE) if f.endswith(".py") and f != "profiles.py")
NAMES = set(profiles.TOPOLOGIES) | set(profiles.HARDWARE) | set(profiles.RECIPES) | set(profiles.RECIPE_ALIASES)


def tree(name):
    with open(os.path.join(PACKAGE, name), encoding="utf-8") as f:
        return ast.parse(f.read())


@pytest.mark.parametrize("name", CODE + ["profiles.py"])
def test_no_function_over_60_lines(name):
    long = [(node.name, node.end_lineno - node.lineno + 1) for node in ast.walk(tree(name))
            if isinstance(node, ast.FunctionDef) and node.end_lineno - node.lineno + 1 > 60]
    assert not long, long


@pytest.mark.parametrize("name", CODE)
def test_no_topology_hardware_or_recipe_name_outside_the_data(name):
    literals = [node.value for node in ast.walk(tree(name)) if isinstance(node, ast.Constant)
                and isinstance(node.value, str) and node.value in NAMES]
    assert not literals, literals
