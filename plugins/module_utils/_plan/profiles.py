# -*- coding: utf-8 -*-
# Copyright: inference.deepseek_v4 contributors
# Apache License 2.0 (see LICENSE)
"""Data the serving plan is built from, and nothing else: settings, hardware, checkpoints, recipes, topologies.

Adding a topology, a recipe or a hardware profile is adding a row here. The builder reads these tables; no code
outside this module compares a topology, hardware or recipe name.

Flag lines are tuples ``(flag, value, when)``: ``value`` None is a bare flag; ``{name}`` placeholders are filled
from the engine's context (build.py says where each comes from and which setting produced it); ``when`` names a
feature the line needs (a feature is on when the recipe, the hardware, the settings or the engine turns it on; a
leading ``!`` negates). A line ``("@name",)`` includes the fragment FRAGMENTS[name].
"""

from __future__ import annotations

from typing import Any, Optional, Union

# ---------------------------------------------------------------------------------------------------- settings
# Every setting of the plan: the role inference.deepseek_v4.plan exposes each as plan_<name>. Its defaults,
# meta/argument_specs.yml and the sample inventory are generated from this table (scripts/gen-settings.py); a unit
# test fails when they drift. ``default`` None: the recipe, topology or hardware profile decides.


def _s(default: Any, kind: str, description: str, **extra: Any) -> dict[str, Any]:
    row = {"default": default, "type": kind, "description": description}
    row.update(extra)
    return row


SETTINGS = {
    "topology": _s("h200_pd", "str", "Topology: a row of the topology table (see the plan role's README).",
                   choices="TOPOLOGIES"),
    "hardware": _s(None, "str", "Hardware profile: h200, b200, b300 or gb200. Null takes the topology's.",
                   choices="HARDWARE"),
    "recipe": _s("seed", "str", "Recipe profile by date: 2026-04 (the source documents; alias seed) or 2026-08 "
                 "(the current recipe; alias v0.25.0).", choices="RECIPES"),
    "model": _s(None, "str", "Hugging Face checkpoint served. Null takes the recipe's."),
    "image": _s(None, "str", "vLLM container image, tag or digest. Null takes the recipe's."),
    "vllm_version": _s(None, "str", "vLLM version the image carries: the plan refuses engine flags it lacks. Null takes the recipe's."),
    "router_version": _s(None, "str", "vllm-router version installed on the router host. Null takes the recipe's."),
    "allow_untagged_image": _s(False, "bool", "Allow untagged, latest, main or nightly images (refused by default: "
                               "the vLLM development branch breaks this model)."),
    "name_prefix": _s("deepseek-v4", "str", "Prefix of container and unit names."),
    "max_model_len": _s(None, "raw", "--max-model-len for every engine. Null keeps the recipe's (auto on the H200 "
                        "prefill/decode topologies, the model default elsewhere). Think Max needs >= 393216."),
    "reasoning_modes": _s(["non_think", "think_high", "think_max"], "list", "Reasoning modes the endpoint must "
                          "serve and the smoke test exercises: non_think, think_high, think_max.", elements="str"),
    "enable_tool_calling": _s(None, "bool", "Add --tool-call-parser deepseek_v4 --enable-auto-tool-choice. Null "
                              "takes the recipe's."),
    "enable_mtp": _s(False, "bool", "Speculative decoding with the checkpoint's MTP head (1 token on Hopper, 2 on "
                     "Blackwell); refused on checkpoints without one."),
    "enable_dspark": _s(False, "bool", "Speculative decoding with the DSpark draft (checkpoints that ship one, "
                        "e.g. DeepSeek-V4-Flash-0731)."),
    "hf_cache_dir": _s("~/.cache/huggingface", "str", "Host directory of the Hugging Face cache mounted at "
                       "/root/.cache/huggingface (a leading ~/ is the home of the user that runs the containers)."),
    "shared_dir": _s("/mnt/shared", "str", "Shared filesystem mounted at the same path in the prefill/decode "
                     "containers of the topologies that mount one; empty to mount none."),
    "hf_offline": _s(True, "bool", "Run the engines offline (HF_HUB_OFFLINE=1): they read the weights hf_cache "
                     "provisioned and verified from the cache and never ask the Hub; false lets every engine start "
                     "ask the Hub (and fetch what its revision names)."),
    "weights_revision": _s(None, "str", "Checkpoint revision (branch, tag or commit) hf_cache provisions; every "
                           "engine serves the commit hf_cache verified (--revision <commit>). Null: the default "
                           "branch, resolved once."),
    "engine_port": _s(8000, "int", "API port of the engine of the non-disaggregated topologies (replica N uses "
                      "port + N).", minimum=1, maximum=65535),
    "prefill_port": _s(None, "int", "API port of the prefill engines. Null takes the topology's.", minimum=1, maximum=65535),
    "decode_port": _s(None, "int", "API port of the decode engines. Null takes the topology's.", minimum=1, maximum=65535),
    "prefill_bootstrap_port": _s(8998, "int", "Mooncake bootstrap port of the prefill engines "
                                 "(VLLM_MOONCAKE_BOOTSTRAP_PORT).", minimum=1, maximum=65535),
    "decode_bootstrap_port": _s(9889, "int", "Mooncake bootstrap port of the decode engines.", minimum=1, maximum=65535),
    "prefill_side_channel_port": _s(5557, "int", "NIXL side-channel base port of the prefill engines; vLLM "
                                    "listens on base + data_parallel_index for each DP rank.", minimum=1, maximum=65535),
    "decode_side_channel_port": _s(None, "int", "NIXL side-channel base port of the decode engines. Null takes "
                                   "the topology's.", minimum=1, maximum=65535),
    "prefill_dp_rpc_port": _s(29550, "int", "--data-parallel-rpc-port of the prefill pool (multi-node).", minimum=1, maximum=65535),
    "decode_dp_rpc_port": _s(29650, "int", "--data-parallel-rpc-port of the decode pool (multi-node).", minimum=1, maximum=65535),
    "replicas_per_host": _s(1, "int", "Engines per host in the non-disaggregated topologies.", minimum=1,
                            maximum=8),
    "socket_ifname": _s(None, "str", "Interface for GLOO_SOCKET_IFNAME and NCCL_SOCKET_IFNAME on multi-node "
                        "engines; null to leave unset."),
    "mooncake_protocol": _s("rdma", "str", "Mooncake transport: rdma (default) or tcp (slower, not validated for "
                            "this model; warns).", choices=["rdma", "tcp"]),
    "mooncake_device_name": _s(None, "str", "Mooncake RDMA devices, e.g. mlx5_0,mlx5_1; null lets Mooncake "
                               "choose."),
    "router_host": _s("127.0.0.1", "str", "Address vllm-router binds (loopback: it has no inbound authentication and "
                      "its admin routes add and remove workers; expose it through a TLS proxy instead)."),
    "router_port": _s(30000, "int", "Port vllm-router serves the OpenAI API on.", minimum=1, maximum=65535),
    "router_metrics_port": _s(29000, "int", "vllm-router Prometheus port.", minimum=1, maximum=65535),
    "router_standby_port": _s(30001, "int", "Port of the standby router: the same router on the same host, started "
                              "only while playbooks/upgrade.yml restarts the router, so that the endpoint front "
                              "passes new requests to it meanwhile.", minimum=1, maximum=65535),
    "router_standby_metrics_port": _s(29001, "int", "Prometheus port of the standby router.", minimum=1, maximum=65535),
    "router_policy": _s("round_robin", "str", "vllm-router load-balancing policy.", choices="ROUTER_POLICIES"),
    "router_extra_args": _s([], "list", "Extra vllm-router flags; flags the plan manages are refused.",
                            elements="str"),
    # vllm-router's own resilience (ROUTER_RESILIENCE): bounded retries with jittered backoff before an answer
    # starts, a circuit breaker per worker, and an active health check that takes a dead worker out of rotation.
    "router_retry_max_retries": _s(3, "int", "Attempts vllm-router makes for a request whose worker fails before "
                                   "answering (--retry-max-retries; 1: no retry).", minimum=1, maximum=10),
    "router_retry_initial_backoff_ms": _s(100, "int", "First retry delay in ms (--retry-initial-backoff-ms).",
                                          minimum=1, maximum=60000),
    "router_retry_max_backoff_ms": _s(2000, "int", "Longest retry delay in ms (--retry-max-backoff-ms).",
                                      minimum=1, maximum=300000),
    "router_retry_jitter_percent": _s(20, "int", "Random spread of each retry delay in percent "
                                      "(--retry-jitter-factor 0.20).", minimum=0, maximum=100),
    "router_cb_failure_threshold": _s(3, "int", "Consecutive failures that open a worker's circuit: the router "
                                      "stops sending it requests (--cb-failure-threshold).", minimum=1, maximum=1000),
    "router_cb_timeout_secs": _s(15, "int", "Seconds an open circuit waits before a trial request "
                                 "(--cb-timeout-duration-secs).", minimum=1, maximum=3600),
    "router_health_check_interval_secs": _s(2, "int", "Seconds between the router's health checks of each worker "
                                            "(--health-check-interval-secs; vllm-router's own default is 60). The "
                                            "router's prefill/decode path does not retry a failed prefill, so a lost "
                                            "worker is left out only by its health checks.",
                                            minimum=1, maximum=3600),
    "router_health_check_timeout_secs": _s(2, "int", "Seconds a health check of a worker may take before it counts "
                                           "as failed (--health-check-timeout-secs; vllm-router's own default is 5).",
                                           minimum=1, maximum=300),
    "router_health_failure_threshold": _s(3, "int", "Failed health checks in a row that take a worker out of "
                                          "rotation (--health-failure-threshold).", minimum=1, maximum=100),
    "endpoint_failure_policy": _s("auto", "str", "What the endpoint front (role endpoint_proxy) does with a request "
                                  "while the router or one side of the prefill/decode pair fails before the first "
                                  "byte of an answer: fallback (retried on an engine that serves whole requests "
                                  "alone: a kv_both connector), retry (retried through the router once), fail. "
                                  "auto: fallback where every engine can serve alone, else retry.",
                                  choices=["auto", "fallback", "retry", "fail"]),
    "endpoint_retry_tries": _s(6, "int", "Tries the endpoint front makes through the router under the retry policy "
                               "(the first and its retries), each before the first byte of an answer and all within "
                               "the front's retry timeout. The router does not retry a failed prefill itself and "
                               "may pick a lost prefill worker again until its health checks leave it out, so the "
                               "tries must outlast that (interval x threshold).", minimum=2, maximum=20),
    "lmcache_image": _s(None, "str", "Image of the LMCache MP server. Null uses the engine image."),
    "lmcache_l1_size_gb": _s(100, "int", "LMCache L1 (CPU memory) size in GB.", minimum=1, maximum=65536),
    "lmcache_eviction_policy": _s("LRU", "str", "LMCache eviction policy."),
    "lmcache_port": _s(5555, "int", "LMCache MP server ZMQ port (replica N uses port + 10N).", minimum=1, maximum=65535),
    "lmcache_http_port": _s(8080, "int", "LMCache MP server HTTP port (health check; replica N uses port + N).", minimum=1, maximum=65535),
    "lmcache_extra_args": _s([], "list", "Extra lmcache server flags; managed flags are refused.", elements="str"),
    "lmcache_memory_headroom_gb": _s(32, "int", "Host memory in GB a host keeps beyond the L1 caches of its LMCache "
                                     "servers: gpu_preflight needs MemTotal >= their --l1-size-gb summed + this.", minimum=0, maximum=65536),
    "engine_privileges": _s("rdma_devices", "str", "How engine containers reach RDMA: rdma_devices (the default: "
                            "no --privileged; the /dev/infiniband devices, the IPC_LOCK capability and an unlimited "
                            "memlock ulimit where the engines move KV over RDMA or span nodes, nothing more elsewhere) "
                            "or privileged (the recipe's --privileged: every device and capability of the host; the "
                            "plan warns).", choices=["privileged", "rdma_devices"]),
    "engine_load_strategy": _s(None, "str", "vLLM --safetensors-load-strategy of every engine. Null takes the "
                               "recipe profile's (prefetch: the checkpoint is read into the page cache ahead of the "
                               "workers; about 3.4x faster loading measured on local disks, vllm#36012); default "
                               "leaves vLLM's own (lazy memory-mapping).",
                               choices=["default", "lazy", "eager", "prefetch"]),
    "engine_cache_dir": _s(None, "str", "Host directory of the engines' kernel and compile caches (DeepGEMM, "
                           "FlashInfer, Triton, TileLang, torch inductor, CUDA): one folder per image, GPU "
                           "architecture and driver under it, mounted into every engine, so that a restart finds "
                           "what the first start built. Null: deepseek-v4-engine-cache beside plan_hf_cache_dir; "
                           "off: no cache mount."),
    "engine_shutdown_timeout": _s(600, "int", "Seconds an engine answers what it serves after it is asked to stop "
                                  "(vLLM --shutdown-timeout, from 0.18.0: new requests are refused, those in flight "
                                  "finish); longer than the longest answer you allow. Its container's stop timeout is "
                                  "30 s more, so Docker never kills a draining engine. 0: vLLM's default (abort what "
                                  "is in flight).", minimum=0, maximum=86400),
    "extra_engine_args": _s([], "list", "Extra vllm serve flags for every engine, e.g. ['--max-num-seqs', '16'] "
                            "where not managed; to change a managed flag use the *_flag_overrides settings.",
                            elements="str"),
    "extra_prefill_args": _s([], "list", "Extra vllm serve flags for prefill engines only.", elements="str"),
    "extra_decode_args": _s([], "list", "Extra vllm serve flags for decode engines only.", elements="str"),
    "engine_flag_overrides": _s({}, "dict", "Change managed flags of every engine: {'--max-num-seqs': 16}; true "
                                "makes a bare flag, false removes it."),
    "prefill_flag_overrides": _s({}, "dict", "Change managed flags of prefill engines."),
    "decode_flag_overrides": _s({}, "dict", "Change managed flags of decode engines."),
    "extra_env": _s({}, "dict", "Extra environment for every engine; derived variables (CUDA_VISIBLE_DEVICES, "
                    "bootstrap and side-channel ports) are refused."),
    "extra_prefill_env": _s({}, "dict", "Extra environment for prefill engines."),
    "extra_decode_env": _s({}, "dict", "Extra environment for decode engines."),
    "prefill_group": _s("prefill", "str", "Inventory group of the prefill hosts."),
    "decode_group": _s("decode", "str", "Inventory group of the decode hosts."),
    "router_group": _s("router", "str", "Inventory group of the router host (exactly one)."),
    "serving_group": _s("serving", "str", "Inventory group of the hosts of the non-disaggregated topologies."),
}

# Per-host settings, read from each host's variables (plan_<name> in host_vars or an inventory line).
HOST_SETTINGS = {
    "address": "Address the other hosts reach this one on (default: ansible_host, else the inventory name).",
    "gpu_count": "GPUs of the host (default: the hardware profile's).",
    "prefill_gpus": "GPU indices of this host's prefill engine.",
    "decode_gpus": "GPU indices of this host's decode engine.",
    "engine_gpus": "GPU indices of this host's engine (a list of lists with plan_replicas_per_host > 1).",
    "engine_bind_address": "vLLM --host of this host's engines (default: 127.0.0.1, or plan_address where "
                           "another host reaches them).",
}

VAR_PREFIX = "plan_"

# ---------------------------------------------------------------------------------------------------- hardware
# ``features``: flag-line features the hardware turns on. ``memory_registration``: how RDMA registers GPU memory
# (peermem needs the nvidia_peermem kernel module; dmabuf does not, and Mooncake must be told WITH_NVIDIA_PEERMEM=0).
# ``nic_affinity``: what makes an RDMA NIC a rank's own (rdma_info's nic_affinity_rule): pcie - on the GPU's PCIe
# switch (PIX/PXB; HGX boards), numa - on the GPU's NUMA node (GB200: NVLink-C2C GPUs share no PCIe path with a NIC).
# ``kv_transfer_min_gbytes_per_s``: the KV transfer rate (GB/s) the engines must report after the rollout (the rdma
# role's transport gate): 15-25 GB/s with each rank on its own NIC, 0.76 GB/s with every rank on one NIC.
HARDWARE = {
    "h200": {"family": "hopper", "arch": "x86_64", "gpus_per_node": 8, "gpu_names": ["NVIDIA H200"],
             "min_gpu_memory_mib": 140000, "compute_capability": "9.0", "nvswitch": True, "imex": False,
             "min_driver": "580", "mtp_tokens": 1, "memory_registration": "peermem", "features": [],
             "nic_affinity": "pcie", "kv_transfer_min_gbytes_per_s": 5.0},
    "b200": {"family": "blackwell", "arch": "x86_64", "gpus_per_node": 8, "gpu_names": ["NVIDIA B200"],
             "min_gpu_memory_mib": 178000, "compute_capability": "10.0", "nvswitch": True, "imex": False,
             "min_driver": "580", "mtp_tokens": 2, "memory_registration": "peermem", "features": ["blackwell"],
             "nic_affinity": "pcie", "kv_transfer_min_gbytes_per_s": 5.0},
    "b300": {"family": "blackwell", "arch": "x86_64", "gpus_per_node": 8,
             "gpu_names": ["NVIDIA B300", "NVIDIA B300 SXM6 AC"], "min_gpu_memory_mib": 260000,
             "compute_capability": "10.3", "nvswitch": True, "imex": False, "min_driver": "580", "mtp_tokens": 2,
             "memory_registration": "peermem", "features": ["blackwell"], "nic_affinity": "pcie",
             "kv_transfer_min_gbytes_per_s": 5.0},
    "gb200": {"family": "blackwell", "arch": "aarch64", "gpus_per_node": 4, "gpu_names": ["NVIDIA GB200"],
              "min_gpu_memory_mib": 180000, "compute_capability": "10.0", "nvswitch": False, "imex": True,
              "min_driver": "580", "mtp_tokens": 2, "memory_registration": "dmabuf",
              "features": ["blackwell", "imex"], "nic_affinity": "numa", "kv_transfer_min_gbytes_per_s": 5.0},
}
# Hardware keys the plan publishes for gpu_preflight (the rest shape flags).
HARDWARE_PUBLISHED = ("family", "arch", "gpus_per_node", "gpu_names", "min_gpu_memory_mib", "compute_capability",
                      "nvswitch", "imex", "min_driver")

# Flags only some hardware can run, in their normalised spelling (flags.flag_key): feature needed and why.
HARDWARE_ONLY_FLAGS = {
    "attention-config.use-fp4-indexer-cache": ("blackwell", "the FP4 indexer cache needs Blackwell (SM100+) "
                                               "tensor cores"),
}

# ---------------------------------------------------------------------------------------------------- checkpoints
# What each checkpoint can serve. ``speculative``: the speculative-decoding methods it ships heads/drafts for.
CHECKPOINTS = {
    "deepseek-ai/DeepSeek-V4-Flash": {"size_bytes": 160 * 10**9, "min_gpu_memory_gb": 170,
                                      "speculative": ["mtp"], "quantization": "fp8"},
    "deepseek-ai/DeepSeek-V4-Flash-0731": {"size_bytes": 167 * 10**9, "min_gpu_memory_gb": 200,
                                           "speculative": ["dspark"], "quantization": "fp8"},
    "deepseek-ai/DeepSeek-V4-Flash-DSpark": {"size_bytes": 167 * 10**9, "min_gpu_memory_gb": 200,
                                             "speculative": ["dspark"], "quantization": "fp8"},
    "nvidia/DeepSeek-V4-Flash-NVFP4": {"size_bytes": 100 * 10**9, "min_gpu_memory_gb": 110,
                                       "speculative": ["mtp"], "quantization": "nvfp4", "needs": "blackwell"},
}
# A checkpoint outside the table (a fine-tune, a mirror): sizes as the preview's, no speculative-decoding rule.
UNKNOWN_CHECKPOINT = {"size_bytes": 160 * 10**9, "min_gpu_memory_gb": 0, "speculative": None, "quantization": None}

# ---------------------------------------------------------------------------------------------------- recipes
# A recipe profile: what the recipe page pinned at a date. ``features`` turn flag lines on; ``speculative_flag``
# is the recipe's spelling; ``moe_backend`` adds --moe-backend where the hardware has the feature and the checkpoint
# the quantization it names.
RECIPES = {
    "2026-04": {
        "source": "the source documents (vLLM recipe page and LMCache page, April 2026)",
        "image": "vllm/vllm-openai:deepseekv4-cu130", "vllm_version": "0.20.1", "router_version": "0.1.17",
        "model": "deepseek-ai/DeepSeek-V4-Flash", "enable_tool_calling": False,
        "speculative_flag": "--speculative_config", "features": ["eager_prefill"], "load_strategy": "prefetch",
    },
    "2026-08": {
        "source": "vllm-project/recipes DeepSeek-V4-Flash, 2026-08-17 (recipes#828: PD prefill without "
                  "--enforce-eager)",
        "image": "vllm/vllm-openai:v0.25.0", "vllm_version": "0.25.0", "router_version": "0.1.17",
        "model": "deepseek-ai/DeepSeek-V4-Flash-0731", "enable_tool_calling": True,
        "speculative_flag": "--speculative-config", "features": ["reasoning_config"], "load_strategy": "prefetch",
        "moe_backend": {"value": "deep_gemm_mega_moe", "hardware_feature": "blackwell", "quantization": "fp8"},
    },
}
RECIPE_ALIASES = {"seed": "2026-04", "v0.25.0": "2026-08"}
SPECULATIVE_CONFIGS = {
    "mtp": {"method": "mtp", "num_speculative_tokens": "{mtp_tokens}"},
    "dspark": {"method": "dspark", "num_speculative_tokens": 7, "draft_sample_method": "probabilistic"},
}
REASONING_CONFIG = {"reasoning_parser": "deepseek_v4", "reasoning_start_str": "", "reasoning_end_str": ""}

# ---------------------------------------------------------------------------------------------------- engine flags
FRAGMENTS = {
    "common": [("{model}", None, None), ("--trust-remote-code", None, None), ("--kv-cache-dtype", "fp8", None),
               ("--block-size", "256", None)],
    "reasoning": [("--tokenizer-mode", "deepseek_v4", None), ("--reasoning-parser", "deepseek_v4", None),
                  ("--reasoning-config", "{reasoning_config}", "reasoning_config")],
    "features": [("--attention_config.use_fp4_indexer_cache=True", None, "blackwell"),
                 ("--moe-backend", "{moe_backend}", "moe_backend"),
                 ("--tool-call-parser", "deepseek_v4", "tool_calling"),
                 ("--enable-auto-tool-choice", None, "tool_calling"),
                 ("{speculative_flag}", "{speculative_config}", "speculative")],
    # What the non-disaggregated recipes leave out unless set.
    "tail": [("--max-model-len", "{max_model_len}", "max_model_len"), ("--port", "{port}", "port_not_default"),
             ("@features",)],
    "pd_h200_head": [("@common",), ("--port", "{port}", None), ("--data-parallel-size", "{dp}", None),
                     ("--enable-expert-parallel", None, None), ("@reasoning",),
                     ("--max-model-len", "{max_model_len_or_auto}", None)],
    "pd_h200_tail": [("--no-disable-hybrid-kv-cache-manager", None, None),
                     ("--disable-uvicorn-access-log", None, None), ("@features",),
                     ("--kv-transfer-config", "{kv_transfer_config}", None)],
    "pd_cluster_head": [("@common",), ("@reasoning",), ("@features",),
                        ("--max-model-len", "{max_model_len}", "max_model_len"), ("--port", "{port}", None),
                        ("--kv-transfer-config", "{kv_transfer_config}", None),
                        ("--data-parallel-size", "{dp_size}", None), ("--data-parallel-size-local", "{dp}", None),
                        ("--data-parallel-start-rank", "{start_rank}", None),
                        ("--data-parallel-address", "{dp_address}", None),
                        ("--data-parallel-rpc-port", "{rpc_port}", None),
                        ("--data-parallel-hybrid-lb", None, "pool_nodes"), ("--enable-expert-parallel", None, None)],
    "pd_cluster_tail": [("--no-disable-hybrid-kv-cache-manager", None, None), ("--enable-sleep-mode", None, None)],
}

ENGINE_FLAGS = {
    "pd_h200": {
        "prefill": [("@pd_h200_head",), ("--max-num-batched-tokens", "16384", None), ("--max-num-seqs", "8", None),
                    ("--enforce-eager", None, "eager_prefill"), ("@pd_h200_tail",)],
        "decode": [("@pd_h200_head",), ("--max-num-seqs", "512", None), ("--max-num-batched-tokens", "512", None),
                   ("--compilation-config", '{"mode":0,"cudagraph_mode":"FULL_DECODE_ONLY",'
                    '"max_cudagraph_capture_size":512,"compile_ranges_endpoints":[512]}', None),
                   ("@pd_h200_tail",)],
    },
    "pd_cluster": {
        "prefill": [("@pd_cluster_head",), ("--enforce-eager", None, "eager_prefill"),
                    ("--max-num-seqs", "8", None), ("--max-num-batched-tokens", "65536", None),
                    ("@pd_cluster_tail",)],
        "decode": [("@pd_cluster_head",), ("--max-num-seqs", "1536", None),
                   ("--max-num-batched-tokens", "1536", None), ("--max-cudagraph-capture-size", "1536", None),
                   ("--compilation-config", '{"cudagraph_mode":"FULL_DECODE_ONLY"}', None), ("@pd_cluster_tail",)],
    },
    "single_dep": {"single": [("@common",), ("@reasoning",), ("--enable-expert-parallel", None, None),
                              ("--data-parallel-size", "{dp}", None),
                              ("--compilation-config", '{"cudagraph_mode":"FULL_AND_PIECEWISE", '
                               '"custom_ops":["all"]}', None), ("@tail",)]},
    # Multi-node DEP: one data-parallel + expert-parallel engine across nodes, every node serving its own API
    # (hybrid load balancing); the head (start rank 0) writes no --data-parallel-start-rank.
    "multi_dep": {"single": [("@common",), ("@reasoning",), ("--enable-expert-parallel", None, None),
                             ("--data-parallel-hybrid-lb", None, None), ("--data-parallel-size", "{dp_size}", None),
                             ("--data-parallel-size-local", "{dp}", None),
                             ("--data-parallel-address", "{dp_address}", None),
                             ("--data-parallel-start-rank", "{start_rank}", "pool_worker"), ("@tail",)]},
    "single_tp": {"single": [("@common",), ("@reasoning",), ("--tensor-parallel-size", "{tp}", None),
                             ("--no-enable-flashinfer-autotune", None, None), ("@tail",)]},
    "single_tep": {"single": [("@common",), ("@reasoning",), ("--tensor-parallel-size", "{tp}", None),
                              ("--enable-expert-parallel", None, None), ("@tail",)]},
    "lmcache_tp": {"single": [("{model}", None, None), ("--tensor-parallel-size", "{tp}", None),
                              ("--enable-expert-parallel", None, None), ("--kv-cache-dtype", "fp8_ds_mla", None),
                              ("--trust-remote-code", None, None), ("--tokenizer-mode", "deepseek_v4", None),
                              ("--kv-transfer-config", "{kv_transfer_config}", None), ("@tail",)]},
}
VLLM_DEFAULT_PORT = 8000

# ---------------------------------------------------------------------------------------------------- router
# vllm-router flags the plan always sets, each from one setting (value divided by ``scale`` where the flag takes a
# fraction). The router's defaults (60 s health checks) leave a dead worker in rotation for minutes.
ROUTER_RESILIENCE = (
    ("--retry-max-retries", "router_retry_max_retries", 1),
    ("--retry-initial-backoff-ms", "router_retry_initial_backoff_ms", 1),
    ("--retry-max-backoff-ms", "router_retry_max_backoff_ms", 1),
    ("--retry-jitter-factor", "router_retry_jitter_percent", 100),
    ("--cb-failure-threshold", "router_cb_failure_threshold", 1),
    ("--cb-timeout-duration-secs", "router_cb_timeout_secs", 1),
    ("--health-check-interval-secs", "router_health_check_interval_secs", 1),
    ("--health-check-timeout-secs", "router_health_check_timeout_secs", 1),
    ("--health-failure-threshold", "router_health_failure_threshold", 1),
)

# ---------------------------------------------------------------------------------------------------- KV transfer
# Per connector: what vLLM's --kv-transfer-config carries per engine role (``{name}`` placeholders as in flag
# lines; a key whose value is None after filling is left out), the router's --kv-connector name, the transfer ports
# and the environment that carries them, whether the transfer needs RDMA (True, or the feature that decides) and
# registers GPU memory through nvidia_peermem (unless the hardware uses DMA-BUF), and whether each engine can serve a
# whole request on its own (``serves_alone``: kv_both; the endpoint's fallback policy needs it). What the rules and
# roles check per connector: ``label`` and ``extra_keys`` (the keys its kv_connector_extra_config may hold),
# ``extra_settings`` (extra-config keys that must equal a setting: the rdma role checks the setting), the values of its
# protocol setting that warn (``protocol_warnings``), the --kv-cache-dtype its engines need (``kv_cache_dtype``),
# warnings where no engine has a flag (``missing_flag_warnings``), and whether its transfer engine must import in the
# engine image (``engine_import``: the plan's transfer.engine_import, checked by the rdma role).
CONNECTORS = {
    "mooncake": {
        "kv_connector": "MooncakeConnector", "router": "mooncake", "moves_kv": True, "serves_alone": True,
        "kv_transfer": {"kv_role": "kv_both", "kv_load_failure_policy": "fail", "kv_buffer_device": "cuda",
                        "kv_connector_extra_config": {"enforce_handshake_compat": False,
                                                      "mooncake_protocol": "{mooncake_protocol}",
                                                      "device_name": "{mooncake_device_name}"}},
        "ports": {"mooncake_bootstrap": "{role}_bootstrap_port"},
        "env": [("VLLM_MOONCAKE_BOOTSTRAP_PORT", "{port:mooncake_bootstrap}", None),
                ("WITH_NVIDIA_PEERMEM", "0", "dmabuf")],
        "protocol": "{mooncake_protocol}", "protocol_setting": "mooncake_protocol", "devices_setting":
        "mooncake_device_name", "rdma": "rdma_protocol", "peermem": True,
        "label": "Mooncake", "extra_keys": ("num_workers", "mooncake_protocol", "device_name",
                                            "bootstrap_server_address", "enforce_handshake_compat"),
        "extra_settings": (("mooncake_protocol", "mooncake_protocol"), ("device_name", "mooncake_device_name")),
        "protocol_warnings": {"tcp": "KV transfer over TCP is slower and not validated for DeepSeek-V4; use rdma on "
                                     "hosts with RDMA NICs."},
        "engine_import": True,
    },
    "nixl_both": {
        "kv_connector": "NixlConnector", "router": "nixl", "moves_kv": True, "serves_alone": True,
        "kv_transfer": {"kv_role": "kv_both"},
        "ports": {"nixl_side_channel": "{role}_side_channel_port"},
        "env": [("VLLM_NIXL_SIDE_CHANNEL_PORT", "{port:nixl_side_channel}", None),
                ("VLLM_NIXL_SIDE_CHANNEL_HOST", "{address}", "multi_node")],
        "protocol": "ucx", "rdma": True, "peermem": False,
    },
    "nixl_split": {
        "kv_connector": "NixlConnector", "router": "nixl", "moves_kv": True, "serves_alone": False,
        "kv_transfer": {"kv_role": "{kv_role}", "kv_load_failure_policy": "fail"},
        "kv_roles": {"prefill": "kv_producer", "decode": "kv_consumer"},
        "ports": {"nixl_side_channel": "{role}_side_channel_port"},
        "env": [("VLLM_NIXL_SIDE_CHANNEL_PORT", "{port:nixl_side_channel}", None),
                ("VLLM_NIXL_SIDE_CHANNEL_HOST", "{address}", "multi_node")],
        "protocol": "ucx", "rdma": True, "peermem": False,
    },
    "lmcache_mp": {
        "kv_connector": "LMCacheMPConnector", "router": None, "moves_kv": False, "json_separators": (", ", ":"),
        "serves_alone": True,
        "kv_transfer": {"kv_role": "kv_both", "kv_connector_extra_config": "{lmcache_connector_extra}"},
        "ports": {}, "env": [], "protocol": None, "rdma": False, "peermem": False,
        "kv_cache_dtype": "fp8_ds_mla",
        "missing_flag_warnings": {
            "reasoning-parser": "The LMCache recipe sets no --reasoning-parser: Think High/Max return their reasoning "
                                "inline in the answer. Add it with plan_extra_engine_args: ['--reasoning-parser', "
                                "'deepseek_v4'] to get reasoning_content."},
    },
}
# The per-rank NIC map vLLM reads where the transfer is RDMA (vllm#42083): the rdma role derives the value on each host
# (rdma_gpu_nic_mapping) and vllm_engine sets both variables; vLLM then sets UCX_NET_DEVICES=<nic>:1 per worker.
NIC_MAP = {"env": "VLLM_GPU_NIC_PCIE_MAPPING", "selection_env": "VLLM_NIC_SELECTION_VARS",
           "selection": "UCX_NET_DEVICES:1"}
# Port kinds that carry KV between engines (the rdma role checks them free), ranges per DP rank.
TRANSFER_PORTS = ("mooncake_bootstrap", "nixl_side_channel")
RANGED_PORTS = ("nixl_side_channel",)
ROUTER_DEFAULT_CONNECTOR = "nixl"
MOONCAKE_DEFAULT_BOOTSTRAP_PORT = 8998
ROUTER_DEFAULT_METRICS_PORT = 29000
LMCACHE_DEFAULT_PORTS = {"zmq": 5555, "http": 8080}
# Where a data-parallel pool spans hosts (topology ``multi_node``), what its engines also listen on beyond their
# named ports (plan section cluster_ports, role cluster_firewall): vLLM's --data-parallel-rpc-port when the recipe
# writes none, and the ports NCCL, Gloo, UCX and vLLM's data-parallel process groups bind, which are any free port of
# the kernel's ephemeral range (net.ipv4.ip_local_port_range; Linux's default 32768-60999).
VLLM_DEFAULT_DP_RPC_PORT = 29550
# Where the KV connector is Mooncake, its transfer engine's handshake listener (P2PHANDSHAKE, as vLLM's Mooncake
# connector starts it): a free port Mooncake picks at random in 15000-17000 (its findAvailableTcpPort), bound on every
# address; one per engine worker, with no setting to move or narrow it.
MOONCAKE_HANDSHAKE_PORTS = (15000, 17000)
COLLECTIVE_PORTS = (32768, 60999)
COLLECTIVE_PORTS_SYSCTL = "net.ipv4.ip_local_port_range"

# ---------------------------------------------------------------------------------------------------- environment
ENV = {
    "seed_pd": [("TILELANG_CLEANUP_TEMP_FILES", "1"), ("VLLM_DISABLE_COMPILE_CACHE", "1"),
                ("VLLM_ENGINE_READY_TIMEOUT_S", "3600"), ("VLLM_RPC_TIMEOUT", "600000"),
                ("VLLM_LOG_STATS_INTERVAL", "1")],
    "gb200_cluster": [("VLLM_ENGINE_READY_TIMEOUT_S", "3600"), ("VLLM_USE_NCCL_SYMM_MEM", "1"),
                      ("NCCL_CUMEM_ENABLE", "1"), ("NCCL_MNNVL_ENABLE", "1"), ("NCCL_NVLS_ENABLE", "1"),
                      ("UCX_NET_DEVICES", "all")],
    "ready_timeout": [("VLLM_ENGINE_READY_TIMEOUT_S", "3600")],
    "none": [],
}
# Environment of an engine, in order: the topology's (ENV), these lines, the user's plan_extra_*env, the
# connector's, the multi-node lines, CUDA_VISIBLE_DEVICES last. A line whose value fills to None is left out.
ENV_BEFORE_USER = [("HF_HUB_OFFLINE", "1", "hf_offline")]  # HARDENING_ENV
# The flag that gives an engine the revision of its weights (the commit hf_cache verified): vllm_engine adds it from the
# engine's ``weights`` at run time, when the commit is known (the plan knows it only when it pins one). Refused in
# plan_extra_*args and *_flag_overrides: plan_weights_revision sets it.
REVISION_FLAG = "--revision"
ENV_AFTER_CONNECTOR = [("GLOO_SOCKET_IFNAME", "{socket_ifname}", "multi_node"),
                       ("NCCL_SOCKET_IFNAME", "{socket_ifname}", "multi_node")]
# Derived environment a user may not set through plan_extra_*env, and the settings that set it instead.
MANAGED_ENV = {
    "CUDA_VISIBLE_DEVICES": "the host's plan_prefill_gpus / plan_decode_gpus / plan_engine_gpus",
    "VLLM_MOONCAKE_BOOTSTRAP_PORT": "plan_prefill_bootstrap_port / plan_decode_bootstrap_port",
    "VLLM_NIXL_SIDE_CHANNEL_PORT": "plan_prefill_side_channel_port / plan_decode_side_channel_port",
    "VLLM_NIXL_SIDE_CHANNEL_HOST": "the host's plan_address",
}
IMEX_DEVICE = "/dev/nvidia-caps-imex-channels"
# plan_engine_privileges: rdma_devices, instead of --privileged where RDMA is needed (Mooncake/NIXL over RDMA, NCCL
# across nodes): the RDMA devices, locked memory for registration (Docker's default memlock fails it: "Cannot
# allocate memory") and the capability to lock it.
RDMA_DEVICE = "/dev/infiniband"
RDMA_CAPABILITIES = ["IPC_LOCK"]
RDMA_ULIMITS = ["memlock:-1:-1"]  # name:soft:hard (docker run --ulimit memlock=-1:-1)
GPU_REQUEST = {"driver": "nvidia", "count": -1, "capabilities": [["gpu"]]}

# ---------------------------------------------------------------------------------------------------- topologies
# A topology: ``roles`` its engine roles (start ``order``: roles of one order start together, each gated on readiness;
# the roles it starts ``after``; the roles it ``restart_with`` (default: ``after``), e.g. a decode after its prefill
# restarted, vllm#49238, though both start at once; the settings of its API port, GPU sets, extra flags, overrides
# and extra environment); ``gpus`` the default GPUs per engine (a number, or
# "node": the hardware's GPUs / replicas), ``split_shared`` shares a host's GPUs equally between the roles one host
# runs; ``flags``, ``env``, ``connector`` keys of ENGINE_FLAGS, ENV and CONNECTORS; ``router`` whether vllm-router
# fronts the engines; ``published`` whether the recipe publishes the API port; ``shared`` whether the shared
# filesystem is mounted; ``multi_node`` whether a role's engines form one data-parallel pool across hosts (a role's
# ``rpc_port`` names the setting of its pool's --data-parallel-rpc-port, where the recipe writes one; the first host
# of the group is the pool's head); ``min_hosts`` the hosts each engine group needs, ``one_host`` the topology that
# serves from fewer; ``bind`` where engines listen by default: ``loopback``, or ``address`` (the host's plan_address,
# where clients on other hosts reach every node's API); an engine a router on another host reaches listens on its
# address whatever the row says.
# A role row also says which inventory group its hosts are in (``group``: the setting <group>_group names it), the
# service name of its engines (``service``: <name_prefix>-<service>), whether each host runs plan_replicas_per_host
# engines of it (``replicated``: replica N on API port + N, GPU sets per replica, name suffix -N; such a role does
# not share a host's GPUs with others), whether the router is told its Mooncake bootstrap port and reads its engine
# ids there (``router_bootstrap``), and whether the endpoint front falls back to its engines first
# (``fallback_first``: decode has the KV capacity for long answers).
_PD_ROLES = {"prefill": {"order": 20, "after": [], "router_bootstrap": True, "port": "prefill_port", "gpus_var": "prefill_gpus",
                         "group": "prefill", "service": "prefill",
                         "rpc_port": "prefill_dp_rpc_port", "extra": ["extra_engine_args", "extra_prefill_args"],
                         "overrides": ["engine_flag_overrides", "prefill_flag_overrides"],
                         "env": ["extra_env", "extra_prefill_env"]},
             "decode": {"order": 20, "after": [], "restart_with": ["prefill"], "port": "decode_port",
                        "gpus_var": "decode_gpus", "group": "decode", "service": "decode", "fallback_first": True,
                        "rpc_port": "decode_dp_rpc_port", "extra": ["extra_engine_args", "extra_decode_args"],
                        "overrides": ["engine_flag_overrides", "decode_flag_overrides"],
                        "env": ["extra_env", "extra_decode_env"]}}
_SINGLE_ROLE = {"single": {"order": 20, "after": [], "port": "engine_port", "gpus_var": "engine_gpus",
                           "group": "serving", "service": "engine", "replicated": True,
                           "extra": ["extra_engine_args"], "overrides": ["engine_flag_overrides"],
                           "env": ["extra_env"]}}


def _topology(description: str, hardware: str, flags: str, env: str, connector: Optional[str] = None,
              router: bool = False, roles: Optional[dict[str, dict[str, Any]]] = None, gpus: Union[int, str] = 4,
              split_shared: bool = False, published: bool = False, privileged: bool = True, shared: bool = False,
              multi_node: bool = False, lmcache: bool = False, defaults: Optional[dict[str, Any]] = None,
              min_hosts: int = 1, one_host: Optional[str] = None, bind: str = "loopback") -> dict[str, Any]:
    return {"description": description, "hardware": hardware, "flags": flags, "env": env, "connector": connector,
            "router": router, "roles": roles or _SINGLE_ROLE, "gpus": gpus, "split_shared": split_shared,
            "published": published, "privileged": privileged, "shared": shared, "multi_node": multi_node,
            "lmcache": lmcache, "defaults": defaults or {}, "min_hosts": min_hosts, "one_host": one_host,
            "bind": bind}


TOPOLOGIES = {
    "single_node": _topology("one DP4 + expert-parallel engine per host (no disaggregation)", "h200",
                             "single_dep", "ready_timeout", published=True),
    "single_node_tp": _topology("one tensor-parallel engine over every GPU of the host", "h200", "single_tp",
                                "ready_timeout", gpus="node", published=True),
    "single_node_tep": _topology("one tensor-parallel + expert-parallel engine over every GPU of the host",
                                 "h200", "single_tep", "ready_timeout", gpus="node", published=True),
    "h200_pd": _topology("prefill and decode engines on one 8-GPU host, KV over Mooncake, vllm-router in front",
                         "h200", "pd_h200", "seed_pd", connector="mooncake", router=True, roles=_PD_ROLES,
                         split_shared=True, published=True, shared=True,
                         defaults={"prefill_port": 8000, "decode_port": 8001}),
    "h200_pd_nixl": _topology("the H200 single-host prefill/decode split with the NIXL connector", "h200",
                              "pd_h200", "seed_pd", connector="nixl_both", router=True, roles=_PD_ROLES,
                              split_shared=True, published=True, shared=True,
                              # One side channel per DP rank: prefill takes 5557-5560 on a DP4 engine, so the
                              # decode engine on the same host starts above that range.
                              defaults={"prefill_port": 8000, "decode_port": 8001,
                                        "decode_side_channel_port": 5567}),
    "gb200_pd_cluster": _topology("prefill and decode pools of GB200 trays, data parallel across nodes, KV over "
                                  "NIXL", "gb200", "pd_cluster", "gb200_cluster", connector="nixl_split",
                                  router=True, roles=_PD_ROLES, gpus="node", multi_node=True,
                                  defaults={"prefill_port": 8001, "decode_port": 8002,
                                            "decode_side_channel_port": 5558}),
    "multi_node_dep": _topology("one data-parallel + expert-parallel engine across 2+ nodes, every node serving its "
                                "own API port (hybrid load balancing)", "h200", "multi_dep", "ready_timeout",
                                gpus="node", published=True, multi_node=True, min_hosts=2, one_host="single_node",
                                bind="address"),
    "lmcache_tp8": _topology("LMCache MP server beside a tensor-parallel + expert-parallel engine on each host",
                             "h200", "lmcache_tp", "none", connector="lmcache_mp", gpus="node", privileged=False,
                             lmcache=True),
}
# Defaults of settings that are null in SETTINGS and no topology sets.
FALLBACK_DEFAULTS = {"prefill_port": 8000, "decode_port": 8001, "decode_side_channel_port": 5567}
# Groups by kind of topology.
GROUPS = {"disaggregated": ("prefill", "decode", "router"), "serving": ("serving",)}

# ---------------------------------------------------------------------------------------------------- start order
ORDER = {"lmcache": 10, "router": 40}
# Service kinds playbooks/upgrade.yml moves in waves of engine hosts (the plan's upgrade_waves); the router follows them.
UPGRADE_KINDS = ("engine", "lmcache")
# The role of the LMCache MP server beside each engine (service kind lmcache).
LMCACHE_ROLE = "lmcache"

# ---------------------------------------------------------------------------------------------------- vocabularies
ROUTER_POLICIES = ["random", "round_robin", "cache_aware", "kv_aware", "power_of_two", "consistent_hash",
                   "sticky_least_loaded"]
KV_CONNECTORS = ("MooncakeConnector", "NixlConnector", "LMCacheMPConnector", "LMCacheConnectorV1",
                 "P2pNcclConnector", "OffloadingConnector", "MultiConnector", "ExampleConnector")
KV_TRANSFER_KEYS = ("kv_connector", "kv_role", "kv_load_failure_policy", "kv_buffer_device", "kv_buffer_size",
                    "kv_connector_extra_config", "kv_connector_module_path", "kv_rank", "kv_parallel_size",
                    "kv_ip", "kv_port", "engine_id", "enable_permute_local_kv")
KV_ROLES = ("kv_both", "kv_producer", "kv_consumer")
KV_ROLE_ALLOWED = {"prefill": ("kv_producer", "kv_both"), "decode": ("kv_consumer", "kv_both"),
                   "single": ("kv_both",)}
KV_LOAD_FAILURE_POLICIES = ("fail", "recompute")
MOONCAKE_EXTRA_KEYS = CONNECTORS["mooncake"]["extra_keys"]
MOONCAKE_PROTOCOLS = ("rdma", "tcp")
CUDAGRAPH_MODES = ("NONE", "PIECEWISE", "FULL", "FULL_DECODE_ONLY", "FULL_AND_PIECEWISE")
TOKENIZER_MODE = "deepseek_v4"
REASONING_PARSERS = ("deepseek_v4", "deepseek_v3", "deepseek_r1")
REASONING_MODES = ("non_think", "think_high", "think_max")
LMCACHE_KV_CACHE_DTYPE = CONNECTORS["lmcache_mp"]["kv_cache_dtype"]
REFUSED_IMAGE_TAGS = ("latest", "main", "nightly", "dev", "master", "edge")
THINK_MAX_MIN_LEN = 393216
MODEL_MAX_LEN = 1048576

# ---------------------------------------------------------------------------------------------------- security
LOOPBACK = "127.0.0.1"
ALL_INTERFACES = ("0.0.0.0", "::", "[::]", "")
ANY_ADDRESS = ALL_INTERFACES[0]
LOOPBACK_NAMES = (LOOPBACK, "localhost", "::1")
# Where the program behind each named port listens when the plan does not say (plan section cluster_ports, each
# entry's ``binds``; render.scrape_targets finds the metrics endpoints with it too): (argv flag, environment variable,
# the program's default). vLLM's API: --host, every address by default. vLLM's Mooncake bootstrap server and
# Mooncake's transfer engine handshake: every address, no setting. vLLM's NIXL side channel:
# VLLM_NIXL_SIDE_CHANNEL_HOST, localhost by default. LMCache's MP server: --host, localhost by default (its request
# port); --http-host, 127.0.0.1 by default (its HTTP server, /metrics included). vllm-router (and its standby, the
# same argv on other ports): --host and --prometheus-host, 127.0.0.1 by default. A port not listed (the data-parallel
# RPC port, the collective range) is taken to bind every address, the safe assumption.
PORT_BINDS = {
    "api": ("--host", None, ANY_ADDRESS),
    "mooncake_bootstrap": (None, None, ANY_ADDRESS),
    "mooncake_handshake": (None, None, ANY_ADDRESS),
    "nixl_side_channel": (None, "VLLM_NIXL_SIDE_CHANNEL_HOST", "localhost"),
    "lmcache_zmq": ("--host", None, "localhost"),
    "lmcache_http": ("--http-host", None, LOOPBACK),
    "router": ("--host", None, LOOPBACK),
    "router_metrics": ("--prometheus-host", None, LOOPBACK),
    "router_standby": ("--host", None, LOOPBACK),
    "router_standby_metrics": ("--prometheus-host", None, LOOPBACK),
}

# What the plan adds to the recipes' commands so that nothing listens wider than it must (README "Security"): per
# service kind, the flag and why. The golden tests remove exactly these from the rendered commands (and say so); any
# other difference from the source documents still fails them.
HARDENING = {
    "router": {flag: "vllm-router's resilience set from plan_%s (bounded, jittered retries before the first byte; a "
                     "circuit breaker; a 2 s health check instead of 60 s)" % setting
               for flag, setting, _scale in ROUTER_RESILIENCE},
    "engine": {"--host": "the engine listens on the address the plan gives it (loopback on one host, the host's "
                         "address where another host reaches it), not on every interface (vLLM's default)",
               "--shutdown-timeout": "a stopped engine (an upgrade, a teardown, a node going down) finishes the "
                                     "requests it serves instead of aborting them (plan_engine_shutdown_timeout; the "
                                     "container's stop timeout is 30 s longer)"},
    "lmcache": {"--http-host": "the LMCache HTTP API (/env shows the environment, POST /run_script runs code) on "
                               "loopback; some LMCache versions default to 0.0.0.0"},
}
# What the plan adds to the recipes' engines for faster starts (README "Warm and fast starts"). The golden tests
# remove exactly these too.
PERFORMANCE = {
    "engine": {"--safetensors-load-strategy": "the recipe profile's load strategy (plan_engine_load_strategy): "
                                              "prefetch reads the checkpoint into the page cache ahead of the "
                                              "workers instead of faulting it in page by page"},
}
# The engines' kernel and compile caches (plan_engine_cache_dir): where they are mounted in the container and the
# environment that points each library's cache there. vllm_engine mounts <engine_cache_dir>/<key> at run time, the
# key naming what invalidates the kernels: the image (its id), the GPU architecture and the driver.
ENGINE_CACHE_MOUNT = "/root/.cache/deepseek-v4-engine"
ENGINE_CACHE_ENV = {"VLLM_CACHE_ROOT": "vllm", "TRITON_CACHE_DIR": "triton", "TORCHINDUCTOR_CACHE_DIR": "inductor",
                    "FLASHINFER_WORKSPACE_BASE": "flashinfer", "DG_JIT_CACHE_DIR": "deep_gemm",
                    "TILELANG_CACHE_DIR": "tilelang", "CUDA_CACHE_PATH": "nv"}
ENGINE_CACHE_KEY = ["image", "gpu_arch", "driver"]
ENGINE_CACHE_DIR_NAME = "deepseek-v4-engine-cache"
# `vllm serve` options by vLLM release, so that the plan refuses, before any host is contacted, a flag the profile's
# vLLM (plan_vllm_version) lacks: its parser would refuse the command when the engine starts (rules.py
# engine_flags_of_version). ENGINE_FLAGS_SINCE: the first release that has the option; ENGINE_FLAGS_UNTIL: the first
# that no longer has it. The rows are the differences between the real parsers of ENGINE_FLAGS_VERSIONS, printed by
# scripts/vllm-flag-diff.py (--check compares them; the conformance tests check every recipe profile's release).
# A managed flag the profile's vLLM lacks is left out of older images instead. The first two rows predate the releases
# diffed (vLLM's release notes). Keys are option strings (dashes); a --no-<flag> spelling without a row of its own
# shares its flag's.
ENGINE_FLAGS_VERSIONS = ("0.20.1", "0.20.2", "0.21.0", "0.22.0", "0.22.1", "0.23.0", "0.24.0", "0.25.0", "0.25.1",
                         "0.26.0", "0.27.0", "0.27.1", "0.28.0", "0.29.0", "0.30.0", "0.31.0", "0.32.0")
ENGINE_FLAGS_SINCE = {
    "--safetensors-load-strategy": "0.11.0", "--shutdown-timeout": "0.18.0",
    "--fingerprint-mode": "0.21.0", "--fingerprint-value": "0.21.0", "--mm-encoder-attn-dtype": "0.21.0",
    "--mm-encoder-fp8-scale-path": "0.21.0", "--mm-encoder-fp8-scale-save-margin": "0.21.0",
    "--mm-encoder-fp8-scale-save-path": "0.21.0", "--safetensors-prefetch-block-size": "0.21.0",
    "--safetensors-prefetch-num-threads": "0.21.0",
    "--cpu-distributed-timeout-seconds": "0.22.0", "--data-parallel-multi-port-external-lb": "0.22.0",
    "--data-parallel-supervisor-port": "0.22.0", "--dp-supervisor-probe-failure-threshold": "0.22.0",
    "--dp-supervisor-probe-interval-s": "0.22.0", "--dp-supervisor-probe-timeout-s": "0.22.0",
    "--enable-cumem-allocator": "0.22.0", "--enable-mixed-moe-lora-format": "0.22.0", "--linear-backend": "0.22.0",
    "--quantization-config": "0.22.0", "--spec-method": "0.22.0", "--spec-model": "0.22.0", "--spec-tokens": "0.22.0",
    "--use-fp64-gumbel": "0.22.0", "-dpm": "0.22.0",
    "--device-ids": "0.24.0", "--diffusion-config": "0.24.0", "--jit-monitor-verbose": "0.24.0",
    "--prefill-schedule-interval": "0.24.0", "--watermark": "0.24.0", "-dc": "0.24.0",
    "--enable-per-request-metrics": "0.25.0", "--jit-monitor-mode": "0.25.0", "--mm-ipc-gpu-memory-gb": "0.25.0",
    "--model-class-overrides": "0.25.0",
    "--enable-bf16x3-router-gemm": "0.26.0", "--enable-moe-shared-loras": "0.26.0",
    "--max-num-scheduled-tokens": "0.26.0", "--prefix-match-unit": "0.26.0",
    "--cohere-format": "0.27.0", "--cohere-is-reasoning-model": "0.27.0", "--enable-fault-tolerance": "0.27.0",
    "--fault-tolerance-config": "0.27.0", "--kda-prefill-backend": "0.27.0", "--mamba-ssu-algorithm": "0.27.0",
    "--mm-hasher-algorithm": "0.27.0", "--replayssm-buffer-len": "0.27.0", "--use-replayssm": "0.27.0",
    "--video-pruning-method": "0.27.0",
    "--ec-manager-config": "0.28.0", "--mm-device-do-normalize": "0.28.0", "--mm-processor-device": "0.28.0",
    "--return-sampling-mask": "0.28.0",
    "--dcp-q-replicate": "0.29.0", "--enable-batch-sharded-sampling": "0.29.0", "--enable-trace-replay": "0.29.0",
    "--max-num-queued-reqs": "0.29.0", "--max-num-queued-tokens": "0.29.0",
    "--per-request-spec-decode-metrics": "0.29.0", "--prefix-cache-retention-interval": "0.29.0",
    "--sse-keep-alive-interval": "0.29.0",
    "--dp-sync-interval": "0.30.0", "--elastic-ep-max-dp-size": "0.30.0",
    "--enable-mamba-fine-grained-prefix-cache": "0.30.0", "--enable-nccl-comm-suspend": "0.30.0",
    "--enable-scale-out": "0.30.0", "--engram-config": "0.30.0", "--kda-decode-backend": "0.30.0",
    "--sparse-indexer-topk-backend": "0.30.0", "--watermark-config": "0.30.0",
    "--anthropic-disabled-thinking-effort": "0.31.0", "--aux-output-config": "0.31.0",
    "--device-memory-utilization": "0.31.0", "--enable-mamba-shared-prefix-checkpoint": "0.31.0",
    "--log-level": "0.31.0", "--logging-config": "0.31.0", "--long-prefill-token-threshold-adaptive": "0.31.0",
    "--max-lora-cls-labels": "0.31.0", "--max-num-active-seqs": "0.31.0",
    "--sleep-preserve-parameter-names": "0.31.0", "--swa-bounded-replay": "0.31.0", "--tool-strict-level": "0.31.0",
    "--trust-request-mm-kwargs": "0.31.0",
    "--custom-histogram-buckets": "0.32.0", "--enable-hc-sp": "0.32.0", "--enable-shm-tensor-arena": "0.32.0",
    "--grpc-port": "0.32.0", "--sleep-mode-offload-cudagraph": "0.32.0",
}
ENGINE_FLAGS_UNTIL = {
    "--max-long-partial-prefills": "0.27.0", "--max-num-partial-prefills": "0.27.0",
    "--calculate-kv-scales": "0.28.0", "--override-attention-dtype": "0.28.0",
    "--enable-bf16x3-router-gemm": "0.30.0",
    "--enable-mamba-fine-grained-prefix-cache": "0.31.0",
}
# Seconds Docker waits beyond the engine's own --shutdown-timeout before it kills a stopping container.
ENGINE_STOP_MARGIN = 30
# What the plan changes in the recipes' engine containers (plan_engine_privileges: rdma_devices, the default): the
# recipe's --privileged gives way to the options RDMA needs (where the engines use it: the devices, the capability and
# the memlock ulimit of RDMA_DEVICE/RDMA_CAPABILITIES/RDMA_ULIMITS). The golden tests put --privileged back in place
# of exactly these options.
HARDENING_CONTAINER = {
    "engine": {"--privileged": "least privilege: the engine container gets the RDMA devices, IPC_LOCK and an "
                               "unlimited memlock where it moves KV over RDMA or spans nodes, and nothing more "
                               "(plan_engine_privileges: privileged restores the recipe's --privileged, with a "
                               "warning)"},
}
# What the plan adds to the recipes' engines so that every engine serves the weights hf_cache verified: the environment
# (plan_hf_offline, default true) and the flag vllm_engine adds at run time (the printed command shows it; argv does
# not carry it: the commit a branch names is known once hf_cache ran). The golden tests remove exactly these too.
HARDENING_ENV = {
    "engine": {"HF_HUB_OFFLINE": "the engine reads its weights from the cache hf_cache provisioned and verified and "
                                 "never asks the Hub: a (re)start cannot resolve the branch to other weights or fetch "
                                 "them (plan_hf_offline: false opts out)"},
}
HARDENING_RUN_TIME = {
    "engine": {REVISION_FLAG: "the engine serves the commit hf_cache verified (plan_weights_revision, or the commit "
                              "its branch resolved to), not what the default branch names at its next start"},
}
# The revision the printed command names where the plan pins none (hf_cache's default; vllm_engine passes the commit).
DEFAULT_REVISION = "main"
# The API key (deepseek_v4_api_key, from a vault) never enters the plan: the plan says which services need it and
# through which environment variable or flag the roles pass it (service ``secret_env`` / ``secret_args``).
API_KEY_VARIABLE = "deepseek_v4_api_key"
API_KEY_ENV = "VLLM_API_KEY"
ROUTER_API_KEY_FLAG = "--api-key"
# vllm-router versions measured to send their --api-key to prefill/decode workers. 0.1.17 is not one: in PD mode it
# sends "Authorization: Bearer " (empty) and /v1/models without a header whatever --api-key says, so engines behind it
# cannot require a key (they would refuse the router); they listen on loopback where the router shares their host.
ROUTER_FORWARDS_API_KEY = ()
# Environment variables and flags that carry secrets: refused in plan_* settings (they would land in plan.json and
# the printed commands); set deepseek_v4_api_key or hf_cache_token from a vault instead.
SECRET_ENV = {"VLLM_API_KEY": API_KEY_VARIABLE, "HF_TOKEN": "hf_cache_token",
              "HUGGING_FACE_HUB_TOKEN": "hf_cache_token"}
SECRET_FLAGS = {"api-key": API_KEY_VARIABLE, "hf-token": "hf_cache_token"}
# Image references: a digest pins the exact image (tag@sha256:<64 hex> or name@sha256:<64 hex>).
DIGEST_ALGORITHMS = {"sha256": 64, "sha512": 128}
