# -*- coding: utf-8 -*-
"""The router's workers as data: for every topology with a router, each engine it lists with its health URL and its
own tokens of the router's argv, and the argv around them (argv_head, argv_tail), from which the vllm_router role
builds the argv without a worker that does not answer (filter router_argv). Read back against the argv itself: each
worker holds exactly `--<role> <url> [<bootstrap port>]`, head + workers + tail is the argv (the standby's too), and
without every worker no worker flag is left."""

from __future__ import annotations

import pytest

from ansible_collections.inference.deepseek_v4.plugins.module_utils._plan import build_plan
from ansible_collections.inference.deepseek_v4.tests.unit.plugins.module_utils.test_plan_scrape_targets import HOSTS


def router_of(plan):
    routers = [s for s in plan["services"] if s["kind"] == "router"]
    return routers[0] if routers else None


@pytest.mark.parametrize("topology, settings", [(t, {}) for t in sorted(HOSTS)] + [
    ("h200_pd", {"prefill_bootstrap_port": 9000}),  # not the default: the router is told it
])
def test_worker_positions_hold_its_tokens(topology, settings):
    plan = build_plan(dict(settings, topology=topology), HOSTS[topology])
    router = router_of(plan)
    if router is None:
        pytest.skip(f"{topology} has no router")
    engines = {"%s/%s" % (s["host"], s["name"]): s for s in plan["services"] if s["kind"] == "engine"}
    assert [w["ref"] for w in router["workers"]] == [r for r in router["restart_with"] if r in engines]
    argv, tokens = router["argv"], []
    for worker in router["workers"]:
        engine = engines[worker["ref"]]
        assert worker["argv"][:2] == ["--" + engine["role"], engine["url"]], worker["argv"]
        assert worker["argv"][2:] in ([], [str(engine["ports"].get("mooncake_bootstrap"))]), worker["argv"]
        assert worker["health_url"] == engine["health_url"] and worker["role"] == engine["role"]
        tokens += worker["argv"]
    assert router["argv_head"] + tokens + router["argv_tail"] == argv
    standby = router["standby"]
    assert standby["argv_head"] + tokens + standby["argv_tail"] == standby["argv"]
    assert len(standby["argv_head"]) == len(router["argv_head"])
    if settings:
        assert any(len(w["argv"]) == 3 for w in router["workers"]), "the bootstrap port is not a worker token"
    rest = router["argv_head"] + router["argv_tail"]
    assert "--prefill" not in rest and "--decode" not in rest and rest[0] == "vllm-router", rest
    assert all(set(w) == {"ref", "role", "health_url", "argv"} for w in router["workers"])
