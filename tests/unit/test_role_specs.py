# -*- coding: utf-8 -*-
"""Each role's public API: meta/argument_specs.yml documents exactly its defaults, with the same values."""

from __future__ import annotations

import importlib.util
import os
import re

import pytest
import yaml

from ansible_collections.inference.deepseek_v4.plugins.module_utils._plan.profiles import HOST_SETTINGS, SETTINGS

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ROLES = sorted(r for r in os.listdir(os.path.join(ROOT, "roles"))
               if os.path.isfile(os.path.join(ROOT, "roles", r, "meta", "argument_specs.yml")))
INVENTORIES = ["h200_pd", "h200_pd_nixl", "single_node", "gb200_pd_cluster", "lmcache_tp8", "multi_node_dep"]


def load(*parts):
    with open(os.path.join(ROOT, *parts), encoding="utf-8") as f:
        return yaml.safe_load(f) or {}


def test_every_role_has_argument_specs():
    all_roles = sorted(r for r in os.listdir(os.path.join(ROOT, "roles")) if not r.startswith("."))
    assert all_roles == ROLES


def role_options(role):
    """Options of every entry point of a role (main, and tasks_from entry points such as _common's home);
    an option documented by several entry points is documented the same way in each."""
    specs = load("roles", role, "meta", "argument_specs.yml")["argument_specs"]
    # Public roles are used as roles: they have a main entry point. Internal roles (_name) may have only
    # tasks_from entry points.
    assert role.startswith("_") or "main" in specs, role
    options = {}
    for entry, spec in specs.items():
        assert spec.get("short_description"), (role, entry)
        for name, option in (spec.get("options") or {}).items():
            assert options.setdefault(name, option) == option, (role, entry, name)
    return options


@pytest.mark.parametrize("role", ROLES)
def test_argument_specs_match_defaults(role):
    defaults = load("roles", role, "defaults", "main.yml") if os.path.exists(
        os.path.join(ROOT, "roles", role, "defaults", "main.yml")) else {}
    options = role_options(role)
    assert sorted(defaults) == sorted(k for k, v in options.items() if "default" in v or not v.get("required"))
    for name, value in defaults.items():
        assert name.startswith(role + "_"), "%s is not prefixed with the role name" % name
        assert options[name].get("default") == value, name
        assert options[name].get("description"), name


def test_plan_role_defaults_are_the_engine_settings():
    defaults = load("roles", "plan", "defaults", "main.yml")
    assert sorted(defaults) == sorted("plan_" + key for key in SETTINGS)
    for key, row in SETTINGS.items():
        assert defaults["plan_" + key] == row["default"], key


def test_generated_settings_files_match_the_table():
    """roles/plan defaults, argument specs and the sample inventory are generated from the settings table."""
    spec = importlib.util.spec_from_file_location("gen_settings", os.path.join(ROOT, "scripts", "gen_settings.py"))
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    assert gen.drift(ROOT) == []


def test_sample_inventory_documents_every_setting():
    with open(os.path.join(ROOT, "inventories", "sample", "group_vars", "all.yml"), encoding="utf-8") as f:
        text = f.read()
    documented = set(re.findall(r"^#\s+plan_(\w+):", text, re.M))
    assert set(SETTINGS) | set(HOST_SETTINGS) <= documented, sorted(set(SETTINGS) - documented)


@pytest.mark.parametrize("inventory", INVENTORIES)
def test_example_inventories_set_only_known_settings(inventory):
    """Example inventories keep only what they set, and everything they set is a setting of the plan."""
    live = load("inventories", inventory, "group_vars", "all.yml")
    assert live and all(k.startswith("plan_") and k[len("plan_"):] in SETTINGS for k in live), sorted(live)
    with open(os.path.join(ROOT, "inventories", inventory, "group_vars", "all.yml"), encoding="utf-8") as f:
        assert not re.findall(r"^#\s?plan_\w+:", f.read(), re.M), "commented settings belong to the sample"
