# -*- coding: utf-8 -*-
"""The router's workers as data: for every topology with a router, each engine it lists with its health URL and the
positions of its tokens in the router's argv, which the vllm_router role removes for a worker that does not answer.
Read back from the argv itself: the positions must hold exactly `--<role> <url> [<bootstrap port>]`, and removing
every worker must leave no worker flag."""

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
    argv, taken = router["argv"], []
    for worker in router["workers"]:
        engine = engines[worker["ref"]]
        tokens = [argv[i] for i in worker["argv_indexes"]]
        assert tokens[:2] == ["--" + engine["role"], engine["url"]], tokens
        assert tokens[2:] in ([], [str(engine["ports"].get("mooncake_bootstrap"))]), tokens
        assert worker["health_url"] == engine["health_url"] and worker["role"] == engine["role"]
        taken += worker["argv_indexes"]
    assert len(taken) == len(set(taken))
    if settings:
        assert any(len(w["argv_indexes"]) == 3 for w in router["workers"]), "the bootstrap port is not a worker token"
    rest = [a for i, a in enumerate(argv) if i not in taken]
    assert "--prefill" not in rest and "--decode" not in rest and rest[0] == "vllm-router", rest
