# -*- coding: utf-8 -*-
# Copyright: inference.deepseek_v4 maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""The collection uses other collections through their public interfaces only: no plugin of it imports their Python
code or extends their documentation fragments (both private to them, and changed in their major releases), and
galaxy.yml admits the community.docker releases that current Ansible packages ship."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ast
import os
import re

import pytest
import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
OWN = "ansible_collections.inference.deepseek_v4"


def _plugin_files():
    for directory, dirnames, filenames in os.walk(os.path.join(ROOT, "plugins")):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        for name in sorted(filenames):
            if name.endswith(".py"):
                yield os.path.join(directory, name)


def _imports(path):
    with open(path, "rb") as handle:
        tree = ast.parse(handle.read(), filename=path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module


def _fragments(path):
    with open(path, "rb") as handle:
        tree = ast.parse(handle.read(), filename=path)
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "DOCUMENTATION" for t in node.targets):
            return yaml.safe_load(node.value.value).get("extends_documentation_fragment") or []
    return []


def test_no_plugin_imports_another_collection():
    foreign = ["%s: %s" % (os.path.relpath(path, ROOT), module) for path in _plugin_files()
               for module in _imports(path)
               if module.startswith("ansible_collections.") and not module.startswith(OWN)]
    assert not foreign, "imports of other collections' code: %s" % foreign


def test_modules_extend_only_the_collections_own_fragments():
    modules = os.path.join(ROOT, "plugins", "modules")
    foreign = ["%s: %s" % (name, fragment) for name in sorted(os.listdir(modules)) if name.endswith(".py")
               for fragment in _fragments(os.path.join(modules, name))
               if not fragment.startswith("inference.deepseek_v4.")]
    assert not foreign, "documentation fragments of other collections: %s" % foreign


def _admits(spec, version):
    def key(text):
        return tuple(int(part) for part in text.split("."))
    checks = {">=": lambda a, b: a >= b, ">": lambda a, b: a > b, "<": lambda a, b: a < b, "<=": lambda a, b: a <= b,
              "==": lambda a, b: a == b, "!=": lambda a, b: a != b}
    for clause in spec.split(","):
        operator, bound = re.match(r"\s*(>=|<=|==|!=|>|<)\s*([0-9.]+)\s*$", clause).groups()
        if not checks[operator](key(version), key(bound)):
            return False
    return True


@pytest.mark.parametrize("version", ["4.8.0", "4.8.5", "5.0.0", "5.2.1"])
def test_galaxy_admits_community_docker_4_and_5(version):
    # 4.8.5: what ansible 12 ships (requirements/base.txt); 5.2.1: what ansible 13 ships (`make docker5` tests it).
    with open(os.path.join(ROOT, "galaxy.yml")) as handle:
        spec = yaml.safe_load(handle)["dependencies"]["community.docker"]
    assert _admits(spec, version), "galaxy.yml's community.docker %s does not admit %s" % (spec, version)
