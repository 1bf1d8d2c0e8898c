# -*- coding: utf-8 -*-
"""The plan engine's shape: small functions, and topology/hardware/recipe, engine-role and connector behaviour as
data only."""

from __future__ import annotations

import ast
import os
import re

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


# ------------------------------------------------------------------------------------------------ roles, connectors
# Engine roles and connectors are data too: their rows in profiles (TOPOLOGIES' role rows, CONNECTORS) say what the
# code, the roles and the playbooks do with them. Service kinds (engine, router, lmcache) are a vocabulary of their
# own: "lmcache" is both the LMCache server's kind and its role, so it counts only where it stands for a role.
REPO = os.path.dirname(os.path.dirname(os.path.dirname(PACKAGE)))
KINDS = {"engine", "router", "lmcache"}
ROLES = {role for row in profiles.TOPOLOGIES.values() for role in row["roles"]} | {profiles.LMCACHE_ROLE}
CONNECTORS = (set(profiles.CONNECTORS) | set(profiles.KV_CONNECTORS)
              | {row["kv_connector"] for row in profiles.CONNECTORS.values()}
              | {row["router"] for row in profiles.CONNECTORS.values() if row["router"]})
ANYWHERE = (ROLES - KINDS) | CONNECTORS
AS_ROLE = ROLES & KINDS
# Literals left where another change is under way (file -> names, each with its reason); none at present.
PENDING = {}


def _files(*patterns):
    out = []
    for top, dirs, files in os.walk(REPO):
        rel = os.path.relpath(top, REPO)
        dirs[:] = [d for d in dirs if not d.startswith(".") and (rel, d) != (".", "build") and d != "tests"]
        out += [os.path.relpath(os.path.join(top, f), REPO) for f in files]
    return sorted(f for f in out if any(re.match(p, f) for p in patterns))


PYTHON = [f for f in _files(r"plugins/.*\.py$", r"roles/[^/]+/(files|templates)/.*\.py(\.j2)?$")
          if f != "plugins/module_utils/_plan/profiles.py" and not f.endswith(".j2")]
TEXT = _files(r"playbooks/.*\.ya?ml$", r"roles/[^/]+/(tasks|handlers|vars|templates)/.*")


def _is_role(node):
    """X["role"] or X.get("role")."""
    if isinstance(node, ast.Subscript):
        return isinstance(node.slice, ast.Constant) and node.slice.value == "role"
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get"
            and node.args and isinstance(node.args[0], ast.Constant) and node.args[0].value == "role")


def _role_constants(node):
    """Constants that stand for a role: compared with a role, the value of a "role" key or keyword, or the role
    argument of build.service()."""
    if isinstance(node, ast.Compare) and any(_is_role(x) for x in [node.left] + node.comparators):
        return [x for x in [node.left] + node.comparators if isinstance(x, ast.Constant)]
    if isinstance(node, ast.Dict):
        return [v for k, v in zip(node.keys, node.values) if isinstance(k, ast.Constant) and k.value == "role"
                and isinstance(v, ast.Constant)]
    if isinstance(node, ast.keyword) and node.arg == "role" and isinstance(node.value, ast.Constant):
        return [node.value]
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "service" and len(
            node.args) > 3 and isinstance(node.args[3], ast.Constant):
        return [node.args[3]]
    return []


def python_literals(text):
    found = []
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in ANYWHERE:
            found.append(node.value)
        found += [c.value for c in _role_constants(node) if c.value in AS_ROLE]
    return found


_QUOTED = re.compile(r"""(?<=['"\[])(%s)(?=['"\]])""" % "|".join(sorted(map(re.escape, ANYWHERE))))
_ITEM = re.compile(r"""^\s*(?:-|[\w.]+:)\s+(%s)\s*$""" % "|".join(sorted(map(re.escape, ANYWHERE))))
_AS_ROLE = re.compile(r"""role\W[^\n]{0,40}?['"](%s)['"]""" % "|".join(sorted(map(re.escape, AS_ROLE))))


def text_literals(text):
    """Quoted, bracketed or bare YAML-value role and connector names; names that are also kinds after "role"."""
    found = []
    for line in text.splitlines():
        if line.strip().startswith("#"):
            continue
        found += _QUOTED.findall(line) + _ITEM.findall(line) + _AS_ROLE.findall(line)
    return found


def test_the_scan_finds_what_it_looks_for():
    """The checks below can fail: each form of the literals they refuse is found."""
    assert python_literals('if role == "single": pass') == ["single"]
    assert python_literals('x = svc["role"] == "lmcache"') == ["lmcache"]
    assert python_literals('y = svc["kind"] == "lmcache"') == []
    assert python_literals('service(h, n, "lmcache", "lmcache")') == ["lmcache"]
    assert python_literals('c = conn == "MooncakeConnector"') == ["MooncakeConnector"]
    assert text_literals("      upgrade_service_roles: [decode]") == ["decode"]
    assert text_literals("  when: t.role == 'prefill' and bport") == ["prefill"]
    assert text_literals("      - nixl_split") == ["nixl_split"]
    assert text_literals("  x: \"{{ a == 'NixlConnector' }}\"") == ["NixlConnector"]
    assert text_literals("  y: \"{{ s | selectattr('role', 'equalto', 'lmcache') }}\"") == ["lmcache"]
    assert text_literals("  z: \"{{ s | selectattr('kind', 'in', ['engine', 'lmcache']) }}\"") == []
    assert text_literals("# the decode pool, the prefill pool") == []
    assert "plugins/module_utils/_plan/build.py" in PYTHON and "playbooks/upgrade.yml" in TEXT
    assert "roles/serving_guard/tasks/main.yml" in TEXT


@pytest.mark.parametrize("name", PYTHON)
def test_no_engine_role_or_connector_name_in_code(name):
    with open(os.path.join(REPO, name), encoding="utf-8") as f:
        found = set(python_literals(f.read())) - PENDING.get(name, set())
    assert not found, "%s names %s: put what it decides in a row of profiles.py" % (name, sorted(found))


@pytest.mark.parametrize("name", TEXT)
def test_no_engine_role_or_connector_name_in_roles_and_playbooks(name):
    with open(os.path.join(REPO, name), encoding="utf-8") as f:
        found = set(text_literals(f.read())) - PENDING.get(name, set())
    assert not found, "%s names %s: take it from the plan" % (name, sorted(found))
