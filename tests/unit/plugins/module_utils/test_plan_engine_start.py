# -*- coding: utf-8 -*-
"""Warm and fast starts as plan data: the recipe profile's safetensors load strategy on every engine (where its vLLM
has the flag), and the kernel cache folder every engine mounts (beside the Hugging Face cache by default)."""

from __future__ import annotations

import pytest

from ansible_collections.inference.deepseek_v4.plugins.module_utils._plan import PlanError, build_plan
from ansible_collections.inference.deepseek_v4.plugins.module_utils._plan import profiles as P
from ansible_collections.inference.deepseek_v4.tests.unit.plugins.module_utils.test_plan_scrape_targets import HOSTS


def engines(plan):
    return [s for s in plan["services"] if s["kind"] == "engine"]


def flag(argv, name):
    return argv[argv.index(name) + 1] if name in argv else None


@pytest.mark.parametrize("topology", sorted(HOSTS))
@pytest.mark.parametrize("recipe", sorted(P.RECIPES))
def test_every_engine_loads_with_the_profile_strategy(topology, recipe):
    plan = build_plan({"topology": topology, "recipe": recipe}, HOSTS[topology])
    for svc in engines(plan):
        assert flag(svc["argv"], "--safetensors-load-strategy") == P.RECIPES[recipe]["load_strategy"], svc["name"]


@pytest.mark.parametrize("setting, expected", [("lazy", "lazy"), ("eager", "eager"), ("default", None)])
def test_the_load_strategy_setting_wins(setting, expected):
    plan = build_plan({"topology": "h200_pd", "engine_load_strategy": setting}, HOSTS["h200_pd"])
    assert {flag(s["argv"], "--safetensors-load-strategy") for s in engines(plan)} == {expected}


def test_an_unknown_load_strategy_is_refused():
    with pytest.raises(PlanError) as err:
        build_plan({"topology": "h200_pd", "engine_load_strategy": "fast"}, HOSTS["h200_pd"])
    assert [p.variable for p in err.value.problems] == ["plan_engine_load_strategy"]


@pytest.mark.parametrize("topology", sorted(HOSTS))
def test_every_engine_mounts_the_kernel_cache_beside_the_weights(topology):
    plan = build_plan({"topology": topology, "hf_cache_dir": "/data/hf"}, HOSTS[topology])
    for svc in engines(plan):
        cache = svc["cache"]
        assert cache["dir"] == "/data/deepseek-v4-engine-cache" and cache["mount"] == P.ENGINE_CACHE_MOUNT
        assert cache["key"] == ["image", "gpu_arch", "driver"]
        assert cache["env"]["DG_JIT_CACHE_DIR"] == P.ENGINE_CACHE_MOUNT + "/deep_gemm"
        assert set(cache["env"]) == set(P.ENGINE_CACHE_ENV)
        # The recipe's environment and volumes are the recipe's: the cache is mounted by vllm_engine at run time.
        assert not set(cache["env"]) & set(svc["env"])
        assert "-v '/data/deepseek-v4-engine-cache/<image>-<gpu_arch>-<driver>:/root/.cache/deepseek-v4-engine'" \
            in svc["command"]


def test_the_cache_dir_setting_and_off():
    plan = build_plan({"topology": "h200_pd", "engine_cache_dir": "/nvme/kernels"}, HOSTS["h200_pd"])
    assert {s["cache"]["dir"] for s in engines(plan)} == {"/nvme/kernels"}
    plan = build_plan({"topology": "h200_pd", "engine_cache_dir": "off"}, HOSTS["h200_pd"])
    assert all(s["cache"] is None and "deepseek-v4-engine" not in s["command"] for s in engines(plan))
    default = build_plan({"topology": "h200_pd"}, HOSTS["h200_pd"])
    assert {s["cache"]["dir"] for s in engines(default)} == {"~/.cache/deepseek-v4-engine-cache"}
