# -*- coding: utf-8 -*-
"""Conformance: every engine argv of every topology x hardware profile of each recipe profile is accepted by the real
serve parser of that profile's own vLLM (its ``vllm_version``).

Each parser is that release's own, from its parser overlay (scripts/vllm-parser-overlay.sh: the release's Python
files on the vLLM CPU venv's Python; its argument parser and validation run, not its engine). The default recipe
profile's parser runs in `make test` (one ~240 MB wheel download, once); the other profiles' are marked slow
(`make e2e`). A deliberately wrong flag must be rejected, and the plan's table of flags by version
(profiles.ENGINE_FLAGS_SINCE/UNTIL) must agree with the parsers, so that these tests can fail.
"""

from __future__ import annotations

import itertools
import subprocess
import sys
from pathlib import Path

import pytest

from ansible_collections.inference.deepseek_v4.plugins.module_utils._plan import PlanError, build_plan
from ansible_collections.inference.deepseek_v4.plugins.module_utils._plan.flags import release
from ansible_collections.inference.deepseek_v4.plugins.module_utils._plan.profiles import (
    ENGINE_FLAGS_SINCE,
    ENGINE_FLAGS_UNTIL,
    ENGINE_FLAGS_VERSIONS,
    HARDWARE as HARDWARE_PROFILES,
    RECIPE_ALIASES,
    RECIPES,
    SETTINGS,
    TOPOLOGIES,
)

pytestmark = pytest.mark.vllm

ROOT = Path(__file__).resolve().parents[2]

DEFAULT_RECIPE = RECIPE_ALIASES.get(SETTINGS["recipe"]["default"], SETTINGS["recipe"]["default"])
# The default profile's parser in `make test`; every other profile's in `make e2e` (slow: a wheel download each).
RECIPE_PARAMS = [pytest.param(r, id=r, marks=() if r == DEFAULT_RECIPE else pytest.mark.slow) for r in sorted(RECIPES)]


def hosts_for(topology, hardware):
    per_node = HARDWARE_PROFILES[hardware]["gpus_per_node"]
    tdef = TOPOLOGIES[topology]
    if not tdef["router"]:
        # One host, or as many as an engine spanning nodes needs (the first is its data-parallel head).
        return [{"name": "n%d" % i, "groups": ["serving"], "address": "10.0.0.%d" % i}
                for i in range(1, tdef["min_hosts"] + 1)]
    if not tdef["multi_node"]:
        if per_node >= 8:
            return [{"name": "n1", "groups": ["prefill", "decode", "router"], "address": "10.0.0.1"}]
        return [{"name": "n1", "groups": ["prefill", "router"], "address": "10.0.0.1"},
                {"name": "n2", "groups": ["decode"], "address": "10.0.0.2"}]
    return [{"name": "p1", "groups": ["prefill"], "address": "10.0.1.1"},
            {"name": "p2", "groups": ["prefill"], "address": "10.0.1.2"},
            {"name": "d1", "groups": ["decode"], "address": "10.0.1.3"},
            {"name": "d2", "groups": ["decode"], "address": "10.0.1.4"},
            {"name": "r1", "groups": ["router"], "address": "10.0.1.5", "gpu_count": 0}]


# Each recipe's optional features: the source documents' MTP and tool calling, the current recipe's DSpark draft
# (its default checkpoint has no MTP head), both with a Think Max context.
VARIANTS = {
    "defaults": {},
    "features": {"2026-04": {"enable_mtp": True, "enable_tool_calling": True, "max_model_len": 393216},
                 "2026-08": {"enable_dspark": True, "max_model_len": 393216}},
}

CASES = []
_MATRIX = itertools.product(sorted(TOPOLOGIES), sorted(HARDWARE_PROFILES), sorted(VARIANTS), sorted(RECIPES))
for _topology, _hardware, _variant, _recipe in _MATRIX:
    _settings = dict(VARIANTS[_variant].get(_recipe, {}), topology=_topology, hardware=_hardware, recipe=_recipe)
    _plan = build_plan(_settings, hosts_for(_topology, _hardware))
    for _svc in _plan["services"]:
        if _svc["kind"] == "engine":
            CASES.append(("%s-%s-%s-%s-%s-%s" % (_topology, _hardware, _recipe, _variant, _svc["host"], _svc["role"]),
                          _svc["argv"], _recipe))


def cases_of(recipe):
    return [(case_id, argv) for case_id, argv, r in CASES if r == recipe]


def parser_of(vllm_parser_for, recipe):
    """The serve parser of RECIPE's own vLLM, checked to be that release."""
    version = RECIPES[recipe]["vllm_version"]
    parser = vllm_parser_for(version)
    assert parser.options()["version"] == version, "the overlay of %s loads another vLLM" % version
    return parser


def test_the_matrix_covers_every_topology_hardware_and_recipe():
    ids = [case_id for case_id, _argv, _recipe in CASES]
    for topology, hardware, recipe in itertools.product(TOPOLOGIES, HARDWARE_PROFILES, RECIPES):
        assert any(i.startswith("%s-%s-%s-" % (topology, hardware, recipe)) for i in ids), (topology, hardware, recipe)


def test_every_recipe_profile_names_its_vllm():
    for name, recipe in RECIPES.items():
        assert release(recipe["vllm_version"]) >= (0, 20), (name, recipe["vllm_version"])


@pytest.mark.parametrize("recipe", RECIPE_PARAMS)
def test_every_engine_argv_is_accepted_by_its_own_vllm(vllm_parser_for, recipe):
    cases = cases_of(recipe)
    results = parser_of(vllm_parser_for, recipe)([argv for _id, argv in cases])
    rejected = ["%s: %s" % (case_id, res["error"]) for (case_id, _argv), res in zip(cases, results) if not res["ok"]]
    assert not rejected, "vLLM %s refuses:\n%s" % (RECIPES[recipe]["vllm_version"], "\n".join(rejected))


@pytest.mark.parametrize("recipe", RECIPE_PARAMS)
@pytest.mark.parametrize("bad_tail", [
    ["--no-such-flag"],
    ["--kv-cache-dtype", "fp9"],
    ["--kv-transfer-config", "{not json"],
    ["--data-parallel-size", "four"],
])
def test_a_wrong_flag_is_rejected_by_vllm(vllm_parser_for, recipe, bad_tail):
    argv = cases_of(recipe)[0][1] + bad_tail
    (result,) = parser_of(vllm_parser_for, recipe)([argv])
    assert not result["ok"] and result["error"]


@pytest.mark.parametrize("recipe", RECIPE_PARAMS)
def test_the_flags_by_version_table_agrees_with_the_profiles_parser(vllm_parser_for, recipe):
    """Each row of ENGINE_FLAGS_SINCE/UNTIL says of the profile's release what its parser says (has it or not)."""
    version = RECIPES[recipe]["vllm_version"]
    options = set(parser_of(vllm_parser_for, recipe).options()["options"])
    wrong = []
    for option in sorted(set(ENGINE_FLAGS_SINCE) | set(ENGINE_FLAGS_UNTIL)):
        since, until = ENGINE_FLAGS_SINCE.get(option), ENGINE_FLAGS_UNTIL.get(option)
        expected = (not since or release(version) >= release(since)) and (not until or release(version) < release(until))
        if expected != (option in options):
            wrong.append("%s (since %s, until %s)" % (option, since, until))
    assert not wrong, "vLLM %s's parser disagrees with the table on: %s" % (version, ", ".join(wrong))


# A flag vLLM 0.21.0 added (ENGINE_FLAGS_SINCE): the default profile's 0.20.1 lacks it, the 2026-08 profile's 0.25.0
# has it.
NEWER_FLAG = "--safetensors-prefetch-num-threads"


def test_a_flag_the_default_profiles_vllm_lacks_is_refused_by_its_parser_and_by_the_plan(vllm_parser_for):
    """The old release's own parser refuses a flag that a later one added, and the plan refuses it first, before any
    host is contacted, naming the setting, the release that has it and the fix."""
    version, since = RECIPES[DEFAULT_RECIPE]["vllm_version"], ENGINE_FLAGS_SINCE[NEWER_FLAG]
    assert release(since) > release(version)
    (case_id, argv), = cases_of(DEFAULT_RECIPE)[:1]
    (result,) = parser_of(vllm_parser_for, DEFAULT_RECIPE)([argv + [NEWER_FLAG, "8"]])
    assert not result["ok"] and NEWER_FLAG in result["error"], (case_id, result)
    with pytest.raises(PlanError) as err:
        build_plan({"recipe": DEFAULT_RECIPE, "extra_engine_args": [NEWER_FLAG, "8"]}, hosts_for("h200_pd", "h200"))
    text = str(err.value)
    assert "plan_extra_engine_args" in text and since in text and version in text and "Fix: remove it" in text, text


@pytest.mark.slow
def test_the_flag_is_accepted_by_a_profile_whose_vllm_has_it(vllm_parser_for):
    """The same flag passes the parser of a profile whose release has it, and the plan gives it to every engine."""
    newer = [r for r in sorted(RECIPES) if release(RECIPES[r]["vllm_version"]) >= release(ENGINE_FLAGS_SINCE[NEWER_FLAG])]
    assert newer
    plan = build_plan({"recipe": newer[0], "extra_engine_args": [NEWER_FLAG, "8"]}, hosts_for("h200_pd", "h200"))
    argvs = [svc["argv"] for svc in plan["services"] if svc["kind"] == "engine"]
    assert argvs and all(NEWER_FLAG in argv for argv in argvs)
    results = parser_of(vllm_parser_for, newer[0])(argvs)
    assert all(res["ok"] for res in results), results


@pytest.mark.slow
def test_the_flags_by_version_table_is_the_parsers_difference():
    """scripts/vllm-flag-diff.py --check: every release of ENGINE_FLAGS_VERSIONS (0.20.1 to 0.32.0; a wheel download
    each the first time) says of every row what the table says, and every option that changes has a row."""
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "vllm-flag-diff.py"), "--check"],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    assert "tables agree with the parsers of %s" % ", ".join(ENGINE_FLAGS_VERSIONS) in done.stdout


def test_a_newer_parser_refuses_what_the_profiles_vllm_accepts(vllm_serve_parser, vllm_parser_for):
    """Why each profile needs its own parser: the venv's vLLM (0.32) drops the Blackwell FP4 indexer-cache field
    that the default profile's release plans and accepts."""
    blackwell = [argv for case_id, argv in cases_of(DEFAULT_RECIPE) if "-b200-" in case_id]
    assert blackwell and all("--attention_config.use_fp4_indexer_cache=True" in argv for argv in blackwell)
    (own,) = parser_of(vllm_parser_for, DEFAULT_RECIPE)(blackwell[:1])
    (newer,) = vllm_serve_parser(blackwell[:1])
    assert own["ok"] and not newer["ok"], (own, newer)


def test_every_node_of_an_engine_spanning_nodes_is_checked():
    """Multi-node DEP: the head's argv and a worker's (with its start rank) both reach the parser."""
    dep = [argv for case_id, argv, _recipe in CASES if case_id.startswith("multi_node_dep-")]
    assert any("--data-parallel-start-rank" not in argv for argv in dep)
    assert any("--data-parallel-start-rank" in argv for argv in dep)
    assert all("--data-parallel-hybrid-lb" in argv and "--data-parallel-address" in argv for argv in dep)
