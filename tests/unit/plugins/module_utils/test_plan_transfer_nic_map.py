# -*- coding: utf-8 -*-
# Copyright: inference.deepseek_v4 maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""The plan's per-rank NIC map and transport floor: set where KV moves over RDMA, from the hardware profile."""

from __future__ import annotations

from ansible_collections.inference.deepseek_v4.plugins.module_utils._plan import build_plan

H200_HOST = [{"name": "node1", "groups": ["prefill", "decode", "router"], "address": "10.0.0.11"}]
SERVING_HOST = [{"name": "node1", "groups": ["serving"], "address": "10.0.0.11"}]
GB200_HOSTS = [
    {"name": "p1", "groups": ["prefill"], "address": "10.1.0.1"},
    {"name": "d1", "groups": ["decode"], "address": "10.1.0.3"},
    {"name": "r1", "groups": ["router"], "address": "10.1.0.5", "gpu_count": 0},
]


def transfer(settings, hosts=None):
    return build_plan(settings, hosts or H200_HOST)["transfer"]


def test_mooncake_over_rdma_on_h200_pins_ranks_by_pcie_switch():
    t = transfer({})
    assert t["rdma"] is True and t["connector"] == "MooncakeConnector"
    assert t["nic_map"] == {"env": "VLLM_GPU_NIC_PCIE_MAPPING", "selection_env": "VLLM_NIC_SELECTION_VARS",
                            "selection": "UCX_NET_DEVICES:1", "affinity": "pcie"}
    assert t["min_rate_gbytes_per_s"] == 5.0


def test_nixl_on_gb200_pins_ranks_by_numa_node():
    t = transfer({"topology": "gb200_pd_cluster"}, GB200_HOSTS)
    assert t["connector"] == "NixlConnector" and t["rdma"] is True
    assert t["nic_map"]["affinity"] == "numa" and t["min_rate_gbytes_per_s"] == 5.0


def test_no_map_where_kv_does_not_move_over_rdma():
    tcp = transfer({"mooncake_protocol": "tcp"})
    assert tcp["rdma"] is False and tcp["nic_map"] is None and tcp["min_rate_gbytes_per_s"] is None
    single = transfer({"topology": "single_node"}, SERVING_HOST)
    assert single["nic_map"] is None and single["min_rate_gbytes_per_s"] is None


def test_the_engines_argv_and_env_are_untouched():
    """The map's value is the host's (the rdma role derives it): the plan's engines carry no NIC variable."""
    result = build_plan({}, H200_HOST)
    for svc in result["services"]:
        assert "VLLM_GPU_NIC_PCIE_MAPPING" not in (svc.get("env") or {})
