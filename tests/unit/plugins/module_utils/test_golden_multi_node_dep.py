# -*- coding: utf-8 -*-
"""Golden tests of multi_node_dep: the recipe's multi-node DEP commands, flag for flag, for 2 H200 nodes and 2 GB200
trays. The expected commands are written out from the serving facts ("Multi-node DEP (2 nodes of 8): head
--data-parallel-hybrid-lb --data-parallel-size 16 --data-parallel-size-local 8 --data-parallel-address $HEAD_IP,
worker adds --data-parallel-start-rank 8; GB200: 8 / 4 / start-rank 4; GLOO_SOCKET_IFNAME, NCCL_SOCKET_IFNAME"; the
recipe's strategy: --enable-expert-parallel --data-parallel-hybrid-lb, every node serves HTTP) and the flags of every
strategy (--trust-remote-code --kv-cache-dtype fp8 --block-size 256, --tokenizer-mode and --reasoning-parser
deepseek_v4, VLLM_ENGINE_READY_TIMEOUT_S=3600; Blackwell adds its FP4 indexer cache flag)."""

from __future__ import annotations

import os
import re
import shlex

import pytest

from ansible_collections.inference.deepseek_v4.plugins.module_utils._plan import build_plan
from ansible_collections.inference.deepseek_v4.plugins.module_utils._plan.profiles import (
    HARDENING,
    HARDENING_ENV,
    HARDENING_RUN_TIME,
    PERFORMANCE,
)
from ansible_collections.inference.deepseek_v4.tests.unit.plugins.module_utils.test_golden_seeds import (
    with_recipe_privileges,
    without_cache,
)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))

COMMON = ["deepseek-ai/DeepSeek-V4-Flash", "--trust-remote-code", "--kv-cache-dtype", "fp8", "--block-size", "256",
          "--tokenizer-mode", "deepseek_v4", "--reasoning-parser", "deepseek_v4"]
HEAD_IP = "10.0.2.11"
NODES = [{"name": "node-1", "groups": ["serving"], "address": HEAD_IP},
         {"name": "node-2", "groups": ["serving"], "address": "10.0.2.12"}]
ENV = {"VLLM_ENGINE_READY_TIMEOUT_S": "3600", "GLOO_SOCKET_IFNAME": "eth0", "NCCL_SOCKET_IFNAME": "eth0"}
FP4_INDEXER = "--attention_config.use_fp4_indexer_cache=True"

EXPECTED = {
    "h200": {
        "node-1": COMMON + ["--enable-expert-parallel", "--data-parallel-hybrid-lb", "--data-parallel-size", "16",
                            "--data-parallel-size-local", "8", "--data-parallel-address", HEAD_IP],
        "node-2": COMMON + ["--enable-expert-parallel", "--data-parallel-hybrid-lb", "--data-parallel-size", "16",
                            "--data-parallel-size-local", "8", "--data-parallel-address", HEAD_IP,
                            "--data-parallel-start-rank", "8"],
    },
    "gb200": {
        "node-1": COMMON + ["--enable-expert-parallel", "--data-parallel-hybrid-lb", "--data-parallel-size", "8",
                            "--data-parallel-size-local", "4", "--data-parallel-address", HEAD_IP, FP4_INDEXER],
        "node-2": COMMON + ["--enable-expert-parallel", "--data-parallel-hybrid-lb", "--data-parallel-size", "8",
                            "--data-parallel-size-local", "4", "--data-parallel-address", HEAD_IP,
                            "--data-parallel-start-rank", "4", FP4_INDEXER],
    },
}


def without_hardening(tokens, command=False):
    """The tokens without the plan's hardening additions to an engine (profiles.HARDENING), each there once; in the
    printed command also the run-time flags (HARDENING_RUN_TIME) and environment (HARDENING_ENV)."""
    tokens = list(tokens)
    flags = list(HARDENING["engine"]) + list(PERFORMANCE["engine"]) + (
        list(HARDENING_RUN_TIME["engine"]) if command else [])
    env = ["%s=1" % key for key in HARDENING_ENV["engine"]] if command else []
    for flag in flags + env:
        assert tokens.count(flag) == 1, flag
        at = tokens.index(flag)
        del tokens[at - (flag in env):at + 2 - (flag in env)]
    return with_recipe_privileges("engine", without_cache("engine", tokens)) if command else tokens


def inventory_settings():
    """The plan_* settings of inventories/multi_node_dep (its live lines)."""
    settings = {}
    with open(os.path.join(ROOT, "inventories", "multi_node_dep", "group_vars", "all.yml"), encoding="utf-8") as f:
        for line in f:
            m = re.match(r"^plan_(\w+):\s*(.+)$", line)
            if m:
                settings[m.group(1)] = m.group(2).strip().strip('"')
    return settings


def engines(hardware, **extra):
    settings = dict(inventory_settings(), hardware=hardware, **extra)
    return {s["host"]: s for s in build_plan(settings, NODES)["services"]}


def test_the_example_inventory_is_the_two_node_h200_case():
    assert inventory_settings() == {"topology": "multi_node_dep", "hardware": "h200", "socket_ifname": "eth0"}


@pytest.mark.parametrize("hardware", sorted(EXPECTED))
@pytest.mark.parametrize("host", ["node-1", "node-2"])
def test_multi_node_dep_argv_and_env_are_the_recipe(hardware, host):
    svc = engines(hardware)[host]
    assert svc["kind"] == "engine" and svc["image"] == "vllm/vllm-openai:deepseekv4-cu130"
    assert svc["entrypoint"] is None and svc["argv"] == svc["args"]
    assert without_hardening(svc["argv"]) == EXPECTED[hardware][host]
    address = {n["name"]: n["address"] for n in NODES}[host]
    assert svc["argv"][svc["argv"].index("--host") + 1] == address, "every node serves its API on its address"
    assert not set(HARDENING_RUN_TIME["engine"]) & set(svc["argv"]), "vllm_engine adds the revision at run time"
    assert svc["env"] == dict(ENV, HF_HUB_OFFLINE="1"), "the whole node: no CUDA_VISIBLE_DEVICES; offline"


@pytest.mark.parametrize("hardware", sorted(EXPECTED))
def test_multi_node_dep_command_is_the_recipe_docker_run(hardware):
    per_node = {"h200": 8, "gb200": 4}[hardware]
    for host, svc in engines(hardware).items():
        rendered = shlex.split(svc["command"].replace("\\\n", " "))
        imex = ["--device", "/dev/nvidia-caps-imex-channels:/dev/nvidia-caps-imex-channels"] if hardware == "gb200" \
            else []
        env = [tok for kv in ENV.items() for tok in ("-e", "%s=%s" % kv)]
        expected = (["docker", "run", "--gpus", "all", "--privileged", "--ipc=host", "-p", "8000:8000",
                     "--network", "host"] + imex + ["-v", "~/.cache/huggingface:/root/.cache/huggingface"]
                    + env + ["vllm/vllm-openai:deepseekv4-cu130"] + EXPECTED[hardware][host])
        assert without_hardening(rendered, command=True) == expected
        assert svc["gpus"] == list(range(per_node))


def test_the_current_recipe_keeps_the_dep_flags_and_adds_its_features():
    """2026-08: the same DEP flags; the profile's checkpoint, reasoning config, tool calling, Blackwell MoE backend."""
    worker = engines("gb200", recipe="2026-08")["node-2"]["argv"]
    assert worker[0] == "deepseek-ai/DeepSeek-V4-Flash-0731"
    dep = EXPECTED["gb200"]["node-2"][len(COMMON):-1]
    at = worker.index("--enable-expert-parallel")
    assert worker[at:at + len(dep)] == dep
    for flag in ("--reasoning-config", "--moe-backend", "--tool-call-parser", "--enable-auto-tool-choice",
                 FP4_INDEXER):
        assert flag in worker
