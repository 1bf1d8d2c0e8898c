# -*- coding: utf-8 -*-
"""router_argv: the router's (and its standby's) argv built from the plan's data, without the workers left out."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.inference.deepseek_v4.plugins.filter.router_argv import FilterModule, router_argv
from ansible_collections.inference.deepseek_v4.plugins.module_utils._plan import build_plan
from ansible_collections.inference.deepseek_v4.tests.unit.plugins.module_utils.test_plan_scrape_targets import HOSTS

CLUSTER = [{"name": "p%d" % i, "groups": ["prefill"], "address": "10.0.1.%d" % i} for i in (1, 2)] + [
    {"name": "d%d" % i, "groups": ["decode"], "address": "10.0.2.%d" % i} for i in (1, 2)] + [
    {"name": "r1", "groups": ["router"], "address": "10.0.3.1"}]


def router(topology, hosts=None, **settings):
    plan = build_plan(dict(settings, topology=topology), hosts or HOSTS[topology])
    return next(s for s in plan["services"] if s["kind"] == "router")


@pytest.mark.parametrize("topology", ["h200_pd", "h200_pd_nixl", "gb200_pd_cluster"])
def test_nothing_left_out_is_the_plan_argv(topology):
    svc = router(topology, CLUSTER if topology == "gb200_pd_cluster" else None)
    assert router_argv(svc) == svc["argv"]
    assert router_argv(svc, [], standby=True) == svc["standby"]["argv"]
    assert FilterModule().filters()["router_argv"] is router_argv


def test_a_lost_worker_is_left_out_of_both_argvs():
    svc = router("gb200_pd_cluster", CLUSTER)
    lost = next(w for w in svc["workers"] if w["ref"].startswith("d2/"))
    for standby in (False, True):
        argv = router_argv(svc, [lost["ref"]], standby=standby)
        full = svc["standby"]["argv"] if standby else svc["argv"]
        assert len(argv) == len(full) - len(lost["argv"])
        assert lost["argv"][1] not in argv
        assert all(w["argv"][1] in argv for w in svc["workers"] if w is not lost)
        assert argv[argv.index("--port") + 1] == ("30001" if standby else "30000")


def test_the_bootstrap_port_goes_with_its_prefill():
    svc = router("h200_pd", prefill_bootstrap_port=9000)
    prefill = next(w for w in svc["workers"] if w["role"] == "prefill")
    assert prefill["argv"][2:] == ["9000"]
    argv = router_argv(svc, [prefill["ref"]])
    assert "--prefill" not in argv and "9000" not in argv and "--decode" in argv


def test_no_standby_no_argv_and_bad_input_refused():
    svc = router("h200_pd")
    assert router_argv(dict(svc, standby=None), standby=True) == []
    with pytest.raises(AnsibleFilterError, match="re-run the plan play"):
        router_argv({k: v for k, v in svc.items() if k != "argv_head"})
    with pytest.raises(AnsibleFilterError, match="router service"):
        router_argv(["vllm-router"])
