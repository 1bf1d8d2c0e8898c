# -*- coding: utf-8 -*-
"""The upgrade waves the plan publishes (upgrade_waves) and that playbooks/upgrade.yml walks: derived from the
services' restart relations, never from role names. The order is the one the playbook had by name: the roles that
restart with another (decode), the roles they restart with (prefill), the first roles again, then every other role."""

from __future__ import annotations

import os

import pytest
import yaml

from ansible_collections.inference.deepseek_v4.plugins.module_utils._plan import build_plan, profiles
from ansible_collections.inference.deepseek_v4.plugins.module_utils._plan.render import upgrade_waves
from ansible_collections.inference.deepseek_v4.tests.unit.plugins.module_utils.test_plan_scrape_targets import HOSTS

ROOT = os.path.dirname(profiles.__file__)
for _ in range(3):
    ROOT = os.path.dirname(ROOT)
TWO_HOST_PD = [{"name": "p1", "groups": ["prefill"], "address": "10.0.0.1"},
               {"name": "d1", "groups": ["decode"], "address": "10.0.0.2"},
               {"name": "d2", "groups": ["decode"], "address": "10.0.0.3"},
               {"name": "r1", "groups": ["router"], "address": "10.0.0.4"}]
CLUSTER = [{"name": "p%d" % i, "groups": ["prefill"], "address": "10.0.1.%d" % i} for i in (1, 2)] + [
    {"name": "d%d" % i, "groups": ["decode"], "address": "10.0.2.%d" % i} for i in (1, 2)] + [
    {"name": "r1", "groups": ["router"], "address": "10.0.3.1"}]
CASES = {
    "h200_pd": (HOSTS["h200_pd"], [(["decode"], ["node1"]), (["prefill"], ["node1"]), (["decode"], ["node1"])]),
    "h200_pd_nixl": (TWO_HOST_PD, [(["decode"], ["d1", "d2"]), (["prefill"], ["p1"]), (["decode"], ["d1", "d2"])]),
    "gb200_pd_cluster": (CLUSTER, [(["decode"], ["d1", "d2"]), (["prefill"], ["p1", "p2"]),
                                   (["decode"], ["d1", "d2"])]),
    "single_node": (HOSTS["single_node"], [(["single"], ["node1"])]),
    "multi_node_dep": (HOSTS["multi_node_dep"], [(["single"], ["node-1", "node-2"])]),
    "lmcache_tp8": (HOSTS["lmcache_tp8"], [(["lmcache", "single"], ["node1"])]),
}


def wave_plays():
    with open(os.path.join(ROOT, "playbooks", "upgrade.yml"), encoding="utf-8") as f:
        plays = yaml.safe_load(f)
    return [p for p in plays if str(p["hosts"]).startswith("deepseek_v4_upgrade_wave_")]


@pytest.mark.parametrize("topology", sorted(CASES))
def test_waves_follow_the_restart_relations(topology):
    hosts, want = CASES[topology]
    plan = build_plan({"topology": topology}, hosts)
    assert [(w["roles"], w["hosts"]) for w in plan["upgrade_waves"]] == want


@pytest.mark.parametrize("topology", sorted(profiles.TOPOLOGIES))
def test_no_topology_needs_more_waves_than_the_playbook_walks(topology):
    """Every topology of the table (with each replica count) fits the wave plays of playbooks/upgrade.yml, and every
    engine and LMCache service is in a wave on its own host."""
    plays = wave_plays()
    assert [p["hosts"] for p in plays] == ["deepseek_v4_upgrade_wave_%d" % n for n in range(1, len(plays) + 1)]
    for replicas in (1, 2):
        hosts = CASES.get(topology, (HOSTS[topology], None))[0]
        plan = build_plan({"topology": topology, "replicas_per_host": replicas}, hosts)
        waves = plan["upgrade_waves"]
        assert 0 < len(waves) <= len(plays), waves
        for svc in plan["services"]:
            if svc["kind"] in profiles.UPGRADE_KINDS:
                assert any(svc["role"] in w["roles"] and svc["host"] in w["hosts"] for w in waves), svc["name"]


def test_a_role_restarts_again_only_after_what_it_restarts_with():
    """Derived from restart_with, whatever the roles are called; no relation: one wave of every role."""
    services = [
        {"host": "a", "name": "x", "kind": "engine", "role": "alpha", "restart_with": ["b/y"]},
        {"host": "b", "name": "y", "kind": "engine", "role": "beta", "restart_with": []},
        {"host": "c", "name": "z", "kind": "lmcache", "role": "gamma", "restart_with": []},
        {"host": "r", "name": "router", "kind": "router", "role": "router", "restart_with": ["a/x", "b/y"]},
    ]
    assert upgrade_waves(services) == [{"roles": ["alpha"], "hosts": ["a"]}, {"roles": ["beta"], "hosts": ["b"]},
                                       {"roles": ["alpha"], "hosts": ["a"]}, {"roles": ["gamma"], "hosts": ["c"]}]
    for svc in services:
        svc["restart_with"] = []
    assert upgrade_waves(services) == [{"roles": ["alpha", "beta", "gamma"], "hosts": ["a", "b", "c"]}]


def test_the_wave_plays_keep_the_batches():
    """Each wave play: the upgrade role in serial batches stopped by max_fail_percentage, tag engines, the roles of
    its wave from the plan, and no engine-role name."""
    for n, play in enumerate(wave_plays()):
        assert play["serial"] == "{{ deepseek_v4_upgrade_serial | default(1) }}", play["name"]
        assert play["max_fail_percentage"] == "{{ deepseek_v4_upgrade_max_fail_percentage | default(0) }}"
        assert play["tags"] == ["engines"] and play["gather_facts"] is False
        (role,) = play["roles"]
        assert role["role"] == "inference.deepseek_v4.upgrade"
        assert "upgrade_waves[%d].roles" % n in role["upgrade_service_roles"]
