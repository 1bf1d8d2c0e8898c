# -*- coding: utf-8 -*-
"""The weights every engine serves: the plan gives every engine of every topology its repository, the revision it pins
and the offline setting (HF_HUB_OFFLINE=1 by default, plan_hf_offline: false opts out); vllm_engine adds the commit
hf_cache verified with the flag the plan names. A user's own --revision is refused."""

from __future__ import annotations

import shlex

import pytest

from ansible_collections.inference.deepseek_v4.plugins.module_utils._plan import PlanError, build_plan, profiles

COMMIT = "0123456789abcdef0123456789abcdef01234567"
ONE_HOST_PD = [{"name": "node1", "groups": ["prefill", "decode", "router"], "address": "10.0.0.11"}]
ONE_SERVING = [{"name": "node1", "groups": ["serving"], "address": "10.0.0.11"}]
TWO_SERVING = ONE_SERVING + [{"name": "node2", "groups": ["serving"], "address": "10.0.0.12"}]
CLUSTER = [{"name": "p1", "groups": ["prefill"], "address": "10.1.0.1"},
           {"name": "p2", "groups": ["prefill"], "address": "10.1.0.2"},
           {"name": "d1", "groups": ["decode"], "address": "10.1.0.3"},
           {"name": "d2", "groups": ["decode"], "address": "10.1.0.4"},
           {"name": "r1", "groups": ["router"], "address": "10.1.0.5", "gpu_count": 0}]
HOSTS = {"h200_pd": ONE_HOST_PD, "h200_pd_nixl": ONE_HOST_PD, "gb200_pd_cluster": CLUSTER,
         "multi_node_dep": TWO_SERVING}


def hosts_of(topology):
    return HOSTS.get(topology, ONE_SERVING)


def engines(topology, **settings):
    plan = build_plan(dict(settings, topology=topology), hosts_of(topology))
    found = [s for s in plan["services"] if s["kind"] == "engine"]
    assert found, "every topology runs engines"
    return found


def command_tokens(svc):
    return shlex.split(svc["command"].replace("\\\n", " "))


def test_every_topology_is_covered():
    assert set(profiles.TOPOLOGIES) >= set(HOSTS)
    assert len(profiles.TOPOLOGIES) >= 8


@pytest.mark.parametrize("topology", sorted(profiles.TOPOLOGIES))
def test_every_engine_runs_offline_with_the_plan_revision_by_default(topology):
    for svc in engines(topology):
        assert svc["weights"] == {"repo_id": "deepseek-ai/DeepSeek-V4-Flash", "revision": None,
                                  "revision_flag": "--revision", "offline": True}, svc["name"]
        assert svc["env"]["HF_HUB_OFFLINE"] == "1", svc["name"]
        assert "--revision" not in svc["argv"], "the commit is added by vllm_engine once hf_cache resolved it"
        tokens = command_tokens(svc)
        # With HF_HUB_OFFLINE=1, `--revision main` resolves in the cache to the commit hf_cache pinned (refs/main).
        assert tokens[-2:] == ["--revision", "main"], svc["command"]


@pytest.mark.parametrize("topology", sorted(profiles.TOPOLOGIES))
def test_a_pinned_commit_reaches_every_engine(topology):
    plan = build_plan({"topology": topology, "weights_revision": COMMIT}, hosts_of(topology))
    assert plan["weights"]["revision"] == COMMIT
    for svc in [s for s in plan["services"] if s["kind"] == "engine"]:
        assert svc["weights"]["revision"] == COMMIT and svc["weights"]["offline"] is True
        assert command_tokens(svc)[-2:] == ["--revision", COMMIT]
    for svc in [s for s in plan["services"] if s["kind"] != "engine"]:
        assert "weights" not in svc, "%s loads no weights" % svc["name"]
        assert "HF_HUB_OFFLINE" not in svc["env"]


@pytest.mark.parametrize("topology", sorted(profiles.TOPOLOGIES))
def test_opt_out_lets_the_engines_ask_the_hub(topology):
    for svc in engines(topology, hf_offline=False):
        assert svc["weights"]["offline"] is False
        assert "HF_HUB_OFFLINE" not in svc["env"]
        assert "HF_HUB_OFFLINE=1" not in command_tokens(svc)


def test_opt_out_from_the_command_line_as_a_string():
    (prefill, _decode) = engines("h200_pd", hf_offline="false")
    assert prefill["weights"]["offline"] is False and "HF_HUB_OFFLINE" not in prefill["env"]


def test_the_revision_and_the_offline_setting_change_the_plan_hash():
    base = {s["name"]: s["plan_hash"] for s in engines("h200_pd")}
    pinned = {s["name"]: s["plan_hash"] for s in engines("h200_pd", weights_revision=COMMIT)}
    online = {s["name"]: s["plan_hash"] for s in engines("h200_pd", hf_offline=False)}
    assert all(base[n] != pinned[n] and base[n] != online[n] for n in base), "a changed revision recreates the engines"


@pytest.mark.parametrize("settings,variable", [
    ({"extra_engine_args": ["--revision", "main"]}, "plan_extra_engine_args"),
    ({"extra_decode_args": ["--revision=v2"]}, "plan_extra_decode_args"),
    ({"decode_flag_overrides": {"--revision": COMMIT}}, "plan_decode_flag_overrides"),
])
def test_a_revision_flag_of_the_user_is_refused(settings, variable):
    with pytest.raises(PlanError) as err:
        build_plan(settings, ONE_HOST_PD)
    found = [p for p in err.value.problems if p.variable == variable and "--revision" in p.message]
    assert found, [str(p) for p in err.value.problems]
    assert "plan_weights_revision" in found[0].fix
