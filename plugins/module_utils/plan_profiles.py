# -*- coding: utf-8 -*-
# Copyright: inference.deepseek_v4 contributors
# Apache License 2.0 (see LICENSE)
"""Data the serving plan is built from: hardware profiles, recipe profiles, topologies, settings.

Pure Python, no Ansible imports: the plan engine and its unit tests import it directly.
"""

from __future__ import annotations

# Settings of the plan, with their defaults. The role ``inference.deepseek_v4.plan`` exposes each one as
# ``plan_<name>``; a unit test keeps roles/plan/defaults/main.yml and meta/argument_specs.yml equal to this table.
# ``None`` means "the recipe, topology or hardware profile decides".
SETTINGS = {
    "topology": "h200_pd",
    "hardware": None,
    "recipe": "seed",
    "model": None,
    "image": None,
    "vllm_version": None,
    "router_version": None,
    "allow_untagged_image": False,
    "name_prefix": "deepseek-v4",
    "max_model_len": None,
    "reasoning_modes": ["non_think", "think_high", "think_max"],
    "enable_tool_calling": None,
    "enable_mtp": False,
    "hf_cache_dir": "~/.cache/huggingface",
    "shared_dir": "/mnt/shared",
    "hf_offline": False,
    "weights_revision": None,
    "engine_port": 8000,
    "prefill_port": None,
    "decode_port": None,
    "prefill_bootstrap_port": 8998,
    "decode_bootstrap_port": 9889,
    "prefill_side_channel_port": 5557,
    "decode_side_channel_port": None,
    "prefill_dp_rpc_port": 29550,
    "decode_dp_rpc_port": 29650,
    "replicas_per_host": 1,
    "socket_ifname": None,
    "mooncake_protocol": "rdma",
    "mooncake_device_name": None,
    "router_host": "127.0.0.1",
    "router_port": 30000,
    "router_metrics_port": 29000,
    "router_policy": "round_robin",
    "router_extra_args": [],
    "lmcache_image": None,
    "lmcache_l1_size_gb": 100,
    "lmcache_eviction_policy": "LRU",
    "lmcache_port": 5555,
    "lmcache_http_port": 8080,
    "lmcache_extra_args": [],
    "extra_engine_args": [],
    "extra_prefill_args": [],
    "extra_decode_args": [],
    "engine_flag_overrides": {},
    "prefill_flag_overrides": {},
    "decode_flag_overrides": {},
    "extra_env": {},
    "extra_prefill_env": {},
    "extra_decode_env": {},
    "prefill_group": "prefill",
    "decode_group": "decode",
    "router_group": "router",
    "serving_group": "serving",
}

# Per-host inventory variables the plan reads from each host (hostvars), not from the plan role.
HOST_SETTINGS = ("address", "gpu_count", "prefill_gpus", "decode_gpus", "engine_gpus")

HARDWARE_PROFILES = {
    "h200": {
        "name": "h200",
        "family": "hopper",
        "arch": "x86_64",
        "gpus_per_node": 8,
        "gpu_names": ["NVIDIA H200"],
        "min_gpu_memory_mib": 140000,
        "compute_capability": "9.0",
        "nvswitch": True,
        "imex": False,
        "min_driver": "580",
        "mtp_tokens": 1,
    },
    "b200": {
        "name": "b200",
        "family": "blackwell",
        "arch": "x86_64",
        "gpus_per_node": 8,
        "gpu_names": ["NVIDIA B200"],
        "min_gpu_memory_mib": 178000,
        "compute_capability": "10.0",
        "nvswitch": True,
        "imex": False,
        "min_driver": "580",
        "mtp_tokens": 2,
    },
    "b300": {
        "name": "b300",
        "family": "blackwell",
        "arch": "x86_64",
        "gpus_per_node": 8,
        "gpu_names": ["NVIDIA B300", "NVIDIA B300 SXM6 AC"],
        "min_gpu_memory_mib": 260000,
        "compute_capability": "10.3",
        "nvswitch": True,
        "imex": False,
        "min_driver": "580",
        "mtp_tokens": 2,
    },
    "gb200": {
        "name": "gb200",
        "family": "blackwell",
        "arch": "aarch64",
        "gpus_per_node": 4,
        "gpu_names": ["NVIDIA GB200"],
        "min_gpu_memory_mib": 180000,
        "compute_capability": "10.0",
        "nvswitch": False,
        "imex": True,
        "min_driver": "580",
        "mtp_tokens": 2,
    },
}

# Flags that only Blackwell GPUs (SM100+) can run, in their normalised spelling (see plan_engine.flag_key).
BLACKWELL_ONLY_FLAGS = {
    "attention-config.use-fp4-indexer-cache": "the FP4 indexer cache needs Blackwell (SM100+) tensor cores",
}
BLACKWELL_FLAG = "--attention_config.use_fp4_indexer_cache=True"

# Recipe profiles: what the recipe page pinned at a given time. ``seed`` is the page this collection reproduces.
RECIPES = {
    "seed": {
        "image": "vllm/vllm-openai:deepseekv4-cu130",
        "vllm_version": "0.20.1",
        "router_version": "0.1.17",
        "model": "deepseek-ai/DeepSeek-V4-Flash",
        "enable_tool_calling": False,
    },
    "v0.25.0": {
        "image": "vllm/vllm-openai:v0.25.0",
        "vllm_version": "0.25.0",
        "router_version": "0.1.17",
        "model": "deepseek-ai/DeepSeek-V4-Flash-0731",
        "enable_tool_calling": True,
    },
}

MODEL_SIZE_BYTES = 160 * 10**9
THINK_MAX_MIN_LEN = 393216
MODEL_MAX_LEN = 1048576

# Topologies: which inventory groups they read, their connector, and their defaults.
TOPOLOGIES = {
    "single_node": {
        "description": "one DP4 + expert-parallel engine per host (no disaggregation)",
        "groups": ("serving",),
        "connector": None,
        "hardware": "h200",
        "disaggregated": False,
        "mount_shared": False,
    },
    "h200_pd": {
        "description": "prefill and decode engines on one 8-GPU host, KV over Mooncake, vllm-router in front",
        "groups": ("prefill", "decode", "router"),
        "connector": "MooncakeConnector",
        "hardware": "h200",
        "disaggregated": True,
        "mount_shared": True,
        "prefill_port": 8000,
        "decode_port": 8001,
    },
    "h200_pd_nixl": {
        "description": "the H200 single-host prefill/decode split with the NIXL connector",
        "groups": ("prefill", "decode", "router"),
        "connector": "NixlConnector",
        "hardware": "h200",
        "disaggregated": True,
        "mount_shared": True,
        "prefill_port": 8000,
        "decode_port": 8001,
        # vLLM opens one side channel per DP rank (base port + data_parallel_index): prefill takes 5557-5560 on a
        # DP4 engine, so the decode engine on the same host starts above that range.
        "decode_side_channel_port": 5567,
    },
    "gb200_pd_cluster": {
        "description": "prefill and decode pools of GB200 trays, data parallel across nodes, KV over NIXL",
        "groups": ("prefill", "decode", "router"),
        "connector": "NixlConnector",
        "hardware": "gb200",
        "disaggregated": True,
        "mount_shared": False,
        "multi_node": True,
        "prefill_port": 8001,
        "decode_port": 8002,
        "decode_side_channel_port": 5558,
    },
    "lmcache_tp8": {
        "description": "LMCache MP server beside a tensor-parallel + expert-parallel engine on each host",
        "groups": ("serving",),
        "connector": "LMCacheMPConnector",
        "hardware": "h200",
        "disaggregated": False,
        "mount_shared": False,
    },
}

ROUTER_CONNECTOR = {"MooncakeConnector": "mooncake", "NixlConnector": "nixl"}
ROUTER_DEFAULT_CONNECTOR = "nixl"
ROUTER_POLICIES = ("random", "round_robin", "cache_aware", "kv_aware", "power_of_two", "consistent_hash",
                   "sticky_least_loaded")
MOONCAKE_DEFAULT_BOOTSTRAP_PORT = 8998
ROUTER_DEFAULT_METRICS_PORT = 29000

KV_CONNECTORS = ("MooncakeConnector", "NixlConnector", "LMCacheMPConnector", "LMCacheConnectorV1",
                 "P2pNcclConnector", "OffloadingConnector", "MultiConnector", "ExampleConnector")
KV_TRANSFER_KEYS = ("kv_connector", "kv_role", "kv_load_failure_policy", "kv_buffer_device", "kv_buffer_size",
                    "kv_connector_extra_config", "kv_connector_module_path", "kv_rank", "kv_parallel_size",
                    "kv_ip", "kv_port", "engine_id", "enable_permute_local_kv")
KV_ROLES = ("kv_both", "kv_producer", "kv_consumer")
KV_ROLE_ALLOWED = {"prefill": ("kv_producer", "kv_both"), "decode": ("kv_consumer", "kv_both"),
                   "single": ("kv_both",)}
KV_LOAD_FAILURE_POLICIES = ("fail", "recompute")
MOONCAKE_EXTRA_KEYS = ("num_workers", "mooncake_protocol", "device_name", "bootstrap_server_address",
                       "enforce_handshake_compat")
MOONCAKE_PROTOCOLS = ("rdma", "tcp")
CUDAGRAPH_MODES = ("NONE", "PIECEWISE", "FULL", "FULL_DECODE_ONLY", "FULL_AND_PIECEWISE")
TOKENIZER_MODE = "deepseek_v4"
REASONING_PARSERS = ("deepseek_v4", "deepseek_v3", "deepseek_r1")
REASONING_MODES = ("non_think", "think_high", "think_max")
LMCACHE_KV_CACHE_DTYPE = "fp8_ds_mla"
REFUSED_IMAGE_TAGS = ("latest", "main", "nightly", "dev", "master", "edge")

# Environment variables the plan derives; extra_env may not set them (the variable in the value says what to set).
MANAGED_ENV = {
    "CUDA_VISIBLE_DEVICES": "the host's plan_prefill_gpus / plan_decode_gpus / plan_engine_gpus",
    "VLLM_MOONCAKE_BOOTSTRAP_PORT": "plan_prefill_bootstrap_port / plan_decode_bootstrap_port",
    "VLLM_NIXL_SIDE_CHANNEL_PORT": "plan_prefill_side_channel_port / plan_decode_side_channel_port",
    "VLLM_NIXL_SIDE_CHANNEL_HOST": "the host's plan_address",
}

# Environment on every engine of the seed recipe.
SEED_PD_ENV = (
    ("TILELANG_CLEANUP_TEMP_FILES", "1"),
    ("VLLM_DISABLE_COMPILE_CACHE", "1"),
    ("VLLM_ENGINE_READY_TIMEOUT_S", "3600"),
    ("VLLM_RPC_TIMEOUT", "600000"),
    ("VLLM_LOG_STATS_INTERVAL", "1"),
)
GB200_CLUSTER_ENV = (
    ("VLLM_ENGINE_READY_TIMEOUT_S", "3600"),
    ("VLLM_USE_NCCL_SYMM_MEM", "1"),
    ("NCCL_CUMEM_ENABLE", "1"),
    ("NCCL_MNNVL_ENABLE", "1"),
    ("NCCL_NVLS_ENABLE", "1"),
    ("UCX_NET_DEVICES", "all"),
)
IMEX_DEVICE = "/dev/nvidia-caps-imex-channels"
