# -*- coding: utf-8 -*-
# Copyright: inference.deepseek_v4 maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""The key of what a run deploys (roles/_deployment_state) leaves out every fact a role sets during a run: with a
fact cache such a fact would reach the next run's key and no re-run would ever only verify."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import glob
import os
import re

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULTS = os.path.join(ROOT, "roles", "_deployment_state", "defaults", "main.yml")


def _tasks(node):
    if isinstance(node, list):
        for item in node:
            yield from _tasks(item)
    elif isinstance(node, dict):
        yield node
        for key in ("block", "rescue", "always"):
            yield from _tasks(node.get(key) or [])


def facts_set_by_roles():
    """Names the roles' tasks set as facts (set_fact keys) or register."""
    names = set()
    for path in glob.glob(os.path.join(ROOT, "roles", "*", "tasks", "*.yml")):
        with open(path, encoding="utf-8") as handle:
            for task in _tasks(yaml.safe_load(handle) or []):
                facts = task.get("ansible.builtin.set_fact") or task.get("set_fact")
                if isinstance(facts, dict):
                    names.update(k for k in facts if k != "cacheable")
                if isinstance(task.get("register"), str):
                    names.add(task["register"])
    return names


def test_every_fact_the_roles_set_is_left_out_of_the_key():
    with open(DEFAULTS, encoding="utf-8") as handle:
        defaults = yaml.safe_load(handle)
    pattern = re.compile(defaults["_deployment_state_var_pattern"].strip())
    in_key = sorted(n for n in facts_set_by_roles() if pattern.match(n)
                    and n not in defaults["_deployment_state_ignored_vars"])
    assert in_key == [], "add these facts to _deployment_state_ignored_vars (roles/_deployment_state): %s" % in_key


def test_the_pattern_matches_the_collection_settings():
    with open(DEFAULTS, encoding="utf-8") as handle:
        pattern = re.compile(yaml.safe_load(handle)["_deployment_state_var_pattern"].strip())
    for name in ("deepseek_v4_api_key", "vllm_engine_image", "vllm_router_extra_env", "endpoint_proxy_enabled"):
        assert pattern.match(name), name
    for name in ("smoke_test_timeout", "benchmark_profile", "plan_topology", "ansible_host"):
        assert not pattern.match(name), name
