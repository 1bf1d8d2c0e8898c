# -*- coding: utf-8 -*-
"""Flags by vLLM release: the plan refuses, before any host is contacted, an engine flag the profile's vLLM
(plan_vllm_version, the recipe profile's by default) lacks, naming the setting that gave it, the release that has it
and the fix; the same flag passes on a profile whose vLLM has it. The table (profiles.ENGINE_FLAGS_SINCE/UNTIL) is
the real parsers' difference (scripts/vllm-flag-diff.py; tests/conformance checks it against each profile's parser).
"""

from __future__ import annotations

import pytest

from ansible_collections.inference.deepseek_v4.plugins.module_utils._plan import PlanError, build_plan, profiles
from ansible_collections.inference.deepseek_v4.plugins.module_utils._plan.flags import option_name, release

PD_HOST = [{"name": "node1", "groups": ["prefill", "decode", "router"], "address": "10.0.0.11"}]
SERVING = [{"name": "node1", "groups": ["serving"], "address": "10.0.0.11"}]
# Added in vLLM 0.21.0 (the parsers of 0.20.2 and 0.21.0): the 2026-04 profile's 0.20.1 lacks it, 2026-08's 0.25.0
# has it.
NEWER = "--safetensors-prefetch-num-threads"


def refusal(settings, hosts=None):
    with pytest.raises(PlanError) as err:
        build_plan(settings, hosts or PD_HOST)
    return err.value


def test_the_example_row_is_what_the_parsers_said():
    assert profiles.ENGINE_FLAGS_SINCE[NEWER] == "0.21.0"
    assert profiles.RECIPES["2026-04"]["vllm_version"] == "0.20.1"
    assert release(profiles.RECIPES["2026-08"]["vllm_version"]) >= release("0.21.0")


def test_a_flag_added_after_the_profiles_vllm_is_refused_with_the_release_that_has_it():
    err = refusal({"recipe": "2026-04", "extra_engine_args": [NEWER, "8"]})
    found = [p for p in err.problems if p.found == NEWER]
    assert found and {p.variable for p in found} == {"plan_extra_engine_args"}
    text = str(found[0])
    assert "vLLM 0.20.1" in text and "2026-04" in text and "0.21.0 and later have it" in text, text
    assert "Fix: remove it from plan_extra_engine_args" in text and "2026-08 (vLLM 0.25.0)" in text, text
    assert "plan_image and plan_vllm_version" in text
    # Said once per host and setting (the prefill and decode engines of node1 both get it).
    assert len(found) == 1 and found[0].host == "node1"
    assert "no host was changed" in str(err)


def test_the_same_flag_passes_where_the_profiles_vllm_has_it():
    plan = build_plan({"recipe": "2026-08", "extra_engine_args": [NEWER, "8"]}, PD_HOST)
    engines = [s for s in plan["services"] if s["kind"] == "engine"]
    assert engines and all(NEWER in s["argv"] for s in engines)
    # A newer image on the old profile: plan_vllm_version says which parser it carries.
    plan = build_plan({"recipe": "2026-04", "image": "vllm/vllm-openai:v0.21.0", "vllm_version": "0.21.0",
                       "extra_engine_args": [NEWER, "8"]}, PD_HOST)
    assert all(NEWER in s["argv"] for s in plan["services"] if s["kind"] == "engine")


@pytest.mark.parametrize("settings, variable", [
    ({"extra_prefill_args": ["--safetensors_prefetch_num_threads=8"]}, "plan_extra_prefill_args"),
    ({"decode_flag_overrides": {NEWER: 8}}, "plan_decode_flag_overrides"),
    ({"engine_flag_overrides": {"--enable-cumem-allocator": True}}, "plan_engine_flag_overrides"),
    ({"extra_engine_args": ["--no-enable-cumem-allocator"]}, "plan_extra_engine_args"),
])
def test_every_spelling_and_setting_is_caught(settings, variable):
    err = refusal(dict(settings, recipe="2026-04"))
    assert any(p.variable == variable and "vLLM 0.20.1" in p.message for p in err.problems), \
        [str(p) for p in err.problems]


def test_a_managed_flag_older_than_the_diff_is_refused_when_given_to_an_image_without_it():
    """--shutdown-timeout (0.18.0): left out of an older image by the plan, refused when a user gives it."""
    settings = {"topology": "single_node", "vllm_version": "0.17.1", "engine_shutdown_timeout": 0}
    err = refusal(dict(settings, extra_engine_args=["--shutdown-timeout", "60"]), SERVING)
    assert any(p.variable == "plan_extra_engine_args" and "0.18.0 and later" in p.message for p in err.problems)
    plan = build_plan(dict(settings, engine_shutdown_timeout=600), SERVING)
    assert all("--shutdown-timeout" not in s["argv"] for s in plan["services"] if s["kind"] == "engine")


def test_a_removed_flag_is_refused_on_a_release_without_it():
    """--calculate-kv-scales: in 0.20.1 to 0.27.1, gone from 0.28.0 (the parsers of 0.27.1 and 0.28.0)."""
    assert profiles.ENGINE_FLAGS_UNTIL["--calculate-kv-scales"] == "0.28.0"
    settings = {"topology": "single_node", "vllm_version": "0.28.0", "image": "vllm/vllm-openai:v0.28.0"}
    err = refusal(dict(settings, extra_engine_args=["--calculate-kv-scales"]), SERVING)
    found = [p for p in err.problems if p.found == "--calculate-kv-scales"]
    assert found and "vLLM 0.28.0 removed it" in found[0].message, [str(p) for p in err.problems]
    assert "2026-04 (vLLM 0.20.1) / 2026-08 (vLLM 0.25.0)" in found[0].fix and "< 0.28.0" in found[0].fix
    build_plan(dict(settings, vllm_version="0.27.1", extra_engine_args=["--calculate-kv-scales"]), SERVING)


def test_every_recipe_profile_passes_its_own_table():
    """No recipe flag is one its own vLLM lacks (the conformance tests prove the same with the real parsers)."""
    for recipe in profiles.RECIPES:
        for topology in ("h200_pd", "single_node"):
            build_plan({"recipe": recipe, "topology": topology}, PD_HOST if topology == "h200_pd" else SERVING)


def test_the_table_is_well_formed():
    versions = [release(v) for v in profiles.ENGINE_FLAGS_VERSIONS]
    assert versions == sorted(versions) and len(set(versions)) == len(versions)
    for recipe in profiles.RECIPES.values():
        assert recipe["vllm_version"] in profiles.ENGINE_FLAGS_VERSIONS, "diff every recipe profile's release"
    for table in (profiles.ENGINE_FLAGS_SINCE, profiles.ENGINE_FLAGS_UNTIL):
        for option, version in table.items():
            assert option == option_name(option) and release(version), (option, version)
    for option, since in profiles.ENGINE_FLAGS_SINCE.items():
        until = profiles.ENGINE_FLAGS_UNTIL.get(option)
        assert not until or release(since) < release(until), option


@pytest.mark.parametrize("flag, option", [
    ("--attention_config.use_fp4_indexer_cache=True", "--attention-config"),
    ("--speculative_config", "--speculative-config"),
    ("--max-num-seqs=8", "--max-num-seqs"),
    ("-dpm", "-dpm"),
])
def test_option_name(flag, option):
    assert option_name(flag) == option
