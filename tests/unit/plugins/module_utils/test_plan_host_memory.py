# -*- coding: utf-8 -*-
"""The host memory the plan asks of a host that runs LMCache servers: their L1 caches plus a headroom."""

from __future__ import annotations

import pytest

from ansible_collections.inference.deepseek_v4.plugins.module_utils._plan import PlanError, build_plan

GIB = 2 ** 30
SERVING_HOSTS = [{"name": "node1", "groups": ["serving"], "address": "10.0.0.11"},
                 {"name": "node2", "groups": ["serving"], "address": "10.0.0.12"}]
H200_HOST = [{"name": "node1", "groups": ["prefill", "decode", "router"], "address": "10.0.0.11"}]


def plan(settings, hosts=None):
    return build_plan(dict({"topology": "lmcache_tp8"}, **settings), hosts or SERVING_HOSTS)


def refused(settings, hosts=None):
    with pytest.raises(PlanError) as err:
        plan(settings, hosts)
    return err.value.problems


def test_each_lmcache_host_needs_its_l1_cache_and_the_headroom():
    result = plan({})
    for host in ("node1", "node2"):
        assert result["hosts"][host]["host_memory"] == {
            "required_bytes": (100 + 32) * GIB, "lmcache_l1_bytes": 100 * GIB, "headroom_bytes": 32 * GIB,
            "lmcache_servers": 1, "variable": "plan_lmcache_l1_size_gb", "headroom_variable": "plan_lmcache_memory_headroom_gb"}


def test_replicas_on_one_host_add_their_l1_caches():
    result = plan({"replicas_per_host": 2, "lmcache_l1_size_gb": 40, "lmcache_memory_headroom_gb": 16},
                  SERVING_HOSTS[:1])
    servers = [s for s in result["services"] if s["kind"] == "lmcache"]
    assert len(servers) == 2 and all("40" in s["args"] for s in servers)
    memory = result["hosts"]["node1"]["host_memory"]
    assert memory["lmcache_l1_bytes"] == 80 * GIB and memory["required_bytes"] == 96 * GIB
    assert memory["lmcache_servers"] == 2


def test_hosts_without_lmcache_need_nothing_of_it():
    result = build_plan({}, H200_HOST)
    assert result["hosts"]["node1"]["host_memory"] is None


def test_a_zero_headroom_is_allowed():
    assert plan({"lmcache_memory_headroom_gb": 0})["hosts"]["node1"]["host_memory"]["required_bytes"] == 100 * GIB


@pytest.mark.parametrize("settings,variable", [
    ({"lmcache_l1_size_gb": 0}, "plan_lmcache_l1_size_gb"),
    ({"lmcache_memory_headroom_gb": -1}, "plan_lmcache_memory_headroom_gb"),
])
def test_sizes_out_of_range_are_refused_naming_their_variable(settings, variable):
    problems = [p for p in refused(settings) if p.variable == variable]
    assert problems and problems[0].fix and variable in problems[0].fix


def test_headroom_is_a_whole_plan_setting():
    hosts = [dict(SERVING_HOSTS[0], lmcache_memory_headroom_gb=8)]
    assert any(p.variable == "plan_lmcache_memory_headroom_gb" and p.host == "node1" for p in refused({}, hosts))


def test_a_negative_headroom_is_refused_even_where_no_lmcache_runs():
    """A value no topology can use is a typo wherever it is set (a group_vars file shared by topologies)."""
    with pytest.raises(PlanError) as err:
        build_plan({"lmcache_memory_headroom_gb": -1}, H200_HOST)
    assert [p.variable for p in err.value.problems] == ["plan_lmcache_memory_headroom_gb"]
