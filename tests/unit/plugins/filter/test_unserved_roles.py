# -*- coding: utf-8 -*-
"""unserved_roles: the roles an upgrade batch would leave without a serving engine, on real plans."""

from __future__ import annotations

import pytest

from ansible_collections.inference.deepseek_v4.plugins.filter.unserved_roles import FilterModule, unserved_roles
from ansible_collections.inference.deepseek_v4.plugins.module_utils._plan import build_plan
from ansible_collections.inference.deepseek_v4.tests.unit.plugins.module_utils.test_plan_scrape_targets import HOSTS


def services(topology):
    return build_plan({"topology": topology}, HOSTS[topology])["services"]


def of(svcs, role, hosts=None):
    return [s for s in svcs if s["role"] == role and (hosts is None or s["host"] in hosts)]


def test_the_only_decode_of_h200_pd_leaves_decode_unserved():
    svcs = services("h200_pd")
    assert unserved_roles(svcs, of(svcs, "decode")) == ["decode"]
    assert unserved_roles(svcs, of(svcs, "prefill") + of(svcs, "decode")) == ["prefill", "decode"]


def test_one_tray_of_a_pool_leaves_the_other_serving():
    svcs = services("gb200_pd_cluster")
    decodes = of(svcs, "decode")
    assert len(decodes) >= 2
    assert unserved_roles(svcs, decodes[:1]) == []
    assert unserved_roles(svcs, decodes) == ["decode"]


def test_same_name_on_another_host_is_another_engine():
    svcs = services("gb200_pd_cluster")
    first = dict(of(svcs, "decode")[0])
    stranger = dict(first, host="not-in-the-plan")
    assert unserved_roles(svcs, [stranger]) == []


@pytest.mark.parametrize("changing", [[], None])
def test_nothing_changing_leaves_every_role_served(changing):
    assert unserved_roles(services("h200_pd"), changing) == []


def test_routers_are_not_engines_and_the_filter_is_registered():
    svcs = services("h200_pd")
    assert unserved_roles(svcs, [s for s in svcs if s["kind"] == "router"]) == []
    assert FilterModule().filters()["unserved_roles"] is unserved_roles
