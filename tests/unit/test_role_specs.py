# -*- coding: utf-8 -*-
"""Each role's public API: meta/argument_specs.yml documents exactly its defaults, with the same values."""

from __future__ import annotations

import os
import re

import pytest
import yaml

from ansible_collections.inference.deepseek_v4.plugins.module_utils.plan_profiles import SETTINGS

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ROLES = sorted(r for r in os.listdir(os.path.join(ROOT, "roles"))
               if os.path.isfile(os.path.join(ROOT, "roles", r, "meta", "argument_specs.yml")))
INVENTORIES = ["h200_pd", "h200_pd_nixl", "single_node", "gb200_pd_cluster", "lmcache_tp8"]


def load(*parts):
    with open(os.path.join(ROOT, *parts), encoding="utf-8") as f:
        return yaml.safe_load(f) or {}


def test_every_role_has_argument_specs():
    all_roles = sorted(r for r in os.listdir(os.path.join(ROOT, "roles")) if not r.startswith("."))
    assert all_roles == ROLES


@pytest.mark.parametrize("role", ROLES)
def test_argument_specs_match_defaults(role):
    defaults = load("roles", role, "defaults", "main.yml") if os.path.exists(
        os.path.join(ROOT, "roles", role, "defaults", "main.yml")) else {}
    options = load("roles", role, "meta", "argument_specs.yml")["argument_specs"]["main"].get("options", {})
    assert sorted(defaults) == sorted(k for k, v in options.items() if "default" in v or not v.get("required"))
    for name, value in defaults.items():
        assert name.startswith(role + "_"), "%s is not prefixed with the role name" % name
        assert options[name].get("default") == value, name
        assert options[name].get("description"), name


def test_plan_role_defaults_are_the_engine_settings():
    defaults = load("roles", "plan", "defaults", "main.yml")
    for key, value in SETTINGS.items():
        assert defaults["plan_" + key] == value, key


@pytest.mark.parametrize("inventory", INVENTORIES)
def test_example_inventories_document_every_setting(inventory):
    with open(os.path.join(ROOT, "inventories", inventory, "group_vars", "all.yml"), encoding="utf-8") as f:
        text = f.read()
    documented = set(re.findall(r"^#?\s?plan_(\w+):", text, re.M))
    assert set(SETTINGS) <= documented, sorted(set(SETTINGS) - documented)
