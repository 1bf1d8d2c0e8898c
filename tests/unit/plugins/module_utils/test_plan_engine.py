# -*- coding: utf-8 -*-
"""Every validation rule of the plan engine: the bad case fails with the named message, the good case passes."""

from __future__ import annotations

import json

import pytest

from ansible_collections.inference.deepseek_v4.plugins.module_utils._plan import (
    PlanError,
    build_plan,
    flag_key,
    image_tag,
    parse_len,
)

H200_HOST = [{"name": "node1", "groups": ["prefill", "decode", "router"], "address": "10.0.0.11"}]
SERVING_HOST = [{"name": "node1", "groups": ["serving"], "address": "10.0.0.11"}]
GB200_HOSTS = [
    {"name": "p1", "groups": ["prefill"], "address": "10.1.0.1"},
    {"name": "p2", "groups": ["prefill"], "address": "10.1.0.2"},
    {"name": "d1", "groups": ["decode"], "address": "10.1.0.3"},
    {"name": "d2", "groups": ["decode"], "address": "10.1.0.4"},
    {"name": "r1", "groups": ["router"], "address": "10.1.0.5", "gpu_count": 0},
]


def plan(settings=None, hosts=None):
    return build_plan(settings or {}, hosts if hosts is not None else H200_HOST)


def problems(settings=None, hosts=None):
    with pytest.raises(PlanError) as err:
        plan(settings, hosts)
    return err.value.problems


def one(settings=None, hosts=None, variable=None, text=None):
    found = problems(settings, hosts)
    matching = [p for p in found if (variable is None or p.variable == variable) and (text is None or text in p.message)]
    assert matching, "no problem with variable=%r text=%r in %s" % (variable, text, [str(p) for p in found])
    for p in matching:
        assert p.fix, "every problem carries a fix"
    return matching[0]


def svc(result, name):
    return [s for s in result["services"] if s["name"] == name][0]


def host_with(**kw):
    h = dict(H200_HOST[0])
    h.update(kw)
    return [h]


# ------------------------------------------------------------------------------------------------ good cases
def test_default_plan_is_the_seed_topology():
    result = plan()
    assert [s["name"] for s in result["services"]] == ["deepseek-v4-prefill", "deepseek-v4-decode", "deepseek-v4-router"]
    assert svc(result, "deepseek-v4-prefill")["gpus"] == [0, 1, 2, 3]
    assert svc(result, "deepseek-v4-decode")["gpus"] == [4, 5, 6, 7]
    assert svc(result, "deepseek-v4-decode")["restart_with"] == ["node1/deepseek-v4-prefill"]
    # The router reads the engines' Mooncake ids and DP ranks only at startup: it restarts with them.
    assert svc(result, "deepseek-v4-router")["restart_with"] == ["node1/deepseek-v4-prefill", "node1/deepseek-v4-decode"]
    assert result["endpoint"]["url"] == "http://127.0.0.1:30000"


@pytest.mark.parametrize("topology,hosts", [
    ("single_node", SERVING_HOST), ("h200_pd", H200_HOST), ("h200_pd_nixl", H200_HOST),
    ("gb200_pd_cluster", GB200_HOSTS), ("lmcache_tp8", SERVING_HOST)])
def test_every_topology_plans(topology, hosts):
    result = plan({"topology": topology}, hosts)
    assert result["topology"] == topology
    assert all(s["plan_hash"] and s["command"] for s in result["services"])
    for s in result["services"]:
        if s["kind"] == "engine":
            assert s["argv"][0] == "deepseek-ai/DeepSeek-V4-Flash"
        elif s["kind"] == "router":
            assert s["argv"][0] == "vllm-router"
        else:
            assert s["argv"][:2] == ["lmcache", "server"]


def test_gb200_cluster_ranks_addresses_and_router():
    result = plan({"topology": "gb200_pd_cluster"}, GB200_HOSTS)
    p2 = [s for s in result["services"] if s["host"] == "p2"][0]["argv"]
    d1 = [s for s in result["services"] if s["host"] == "d1"][0]["argv"]
    assert p2[p2.index("--data-parallel-start-rank") + 1] == "4"
    assert p2[p2.index("--data-parallel-size") + 1] == "8"
    assert p2[p2.index("--data-parallel-address") + 1] == "10.1.0.1"
    assert d1[d1.index("--data-parallel-address") + 1] == "10.1.0.3"
    assert "--data-parallel-hybrid-lb" in p2
    assert "--attention_config.use_fp4_indexer_cache=True" in p2
    router = svc(result, "deepseek-v4-router")["argv"]
    assert router.count("--prefill") == 2 and router.count("--decode") == 2
    assert "http://10.1.0.2:8001" in router and "http://10.1.0.4:8002" in router
    assert "--kv-connector" not in router  # nixl is the router's default
    env = [s for s in result["services"] if s["host"] == "p2"][0]["env"]
    assert env["VLLM_NIXL_SIDE_CHANNEL_HOST"] == "10.1.0.2"
    assert "CUDA_VISIBLE_DEVICES" not in env  # the whole tray


def test_decode_override_changes_only_decode_and_keeps_position():
    base = plan()
    changed = plan({"decode_flag_overrides": {"--max-num-seqs": 256}})
    d0, d1 = svc(base, "deepseek-v4-decode")["argv"], svc(changed, "deepseek-v4-decode")["argv"]
    assert d0.index("--max-num-seqs") == d1.index("--max-num-seqs")
    assert d1[d1.index("--max-num-seqs") + 1] == "256"
    assert svc(base, "deepseek-v4-prefill")["plan_hash"] == svc(changed, "deepseek-v4-prefill")["plan_hash"]
    assert svc(base, "deepseek-v4-decode")["plan_hash"] != svc(changed, "deepseek-v4-decode")["plan_hash"]


def test_override_true_false_and_extra_flags():
    result = plan({"prefill_flag_overrides": {"--enforce-eager": False},
                   "extra_decode_args": ["--served-model-name", "dsv4"],
                   "extra_env": {"VLLM_ENGINE_READY_TIMEOUT_S": "7200", "NCCL_DEBUG": "INFO"}})
    assert "--enforce-eager" not in svc(result, "deepseek-v4-prefill")["argv"]
    decode = svc(result, "deepseek-v4-decode")
    assert decode["argv"][-2:] == ["--served-model-name", "dsv4"]
    assert decode["env"]["VLLM_ENGINE_READY_TIMEOUT_S"] == "7200"
    assert decode["env"]["NCCL_DEBUG"] == "INFO"


def test_mooncake_bootstrap_port_reaches_the_router_when_not_default():
    result = plan({"prefill_bootstrap_port": 8999})
    router = svc(result, "deepseek-v4-router")["argv"]
    assert router[router.index("--prefill") + 1:router.index("--prefill") + 3] == ["http://localhost:8000", "8999"]


def test_two_single_node_replicas_on_an_eight_gpu_host():
    result = plan({"topology": "single_node", "replicas_per_host": 2}, SERVING_HOST)
    engines = [s for s in result["services"] if s["kind"] == "engine"]
    assert [e["gpus"] for e in engines] == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert [e["ports"]["api"] for e in engines] == [8000, 8001]


def test_blackwell_profile_adds_its_flag_and_mtp_tokens():
    result = plan({"hardware": "b200", "enable_mtp": True})
    argv = svc(result, "deepseek-v4-prefill")["argv"]
    assert "--attention_config.use_fp4_indexer_cache=True" in argv
    assert json.loads(argv[argv.index("--speculative_config") + 1])["num_speculative_tokens"] == 2
    hopper = svc(plan({"enable_mtp": True}), "deepseek-v4-prefill")["argv"]
    assert json.loads(hopper[hopper.index("--speculative_config") + 1])["num_speculative_tokens"] == 1


def test_gb200_mooncake_disables_peermem():
    hosts = [{"name": "t1", "groups": ["prefill", "router"]}, {"name": "t2", "groups": ["decode"]}]
    result = plan({"hardware": "gb200"}, hosts)
    assert svc(result, "deepseek-v4-prefill")["env"]["WITH_NVIDIA_PEERMEM"] == "0"
    assert result["transfer"]["peermem"] is False


# ------------------------------------------------------------------------------------------------ GPU sets
def test_gpu_index_outside_the_host():
    p = one(hosts=host_with(decode_gpus=[4, 5, 6, 8]), variable="plan_decode_gpus", text="outside 0..7")
    assert p.host == "node1" and p.found == [4, 5, 6, 8]


def test_gpu_sets_overlap():
    one(hosts=host_with(decode_gpus=[3, 4, 5, 6]), variable="plan_decode_gpus", text="also assigned")


def test_gpu_listed_twice():
    one(hosts=host_with(prefill_gpus=[0, 0, 1, 2]), variable="plan_prefill_gpus", text="twice")


def test_gpu_count_smaller_than_the_sets():
    one(hosts=host_with(gpu_count=7), variable="plan_decode_gpus", text="outside 0..6")


def test_gpu_index_not_a_number():
    one(hosts=host_with(prefill_gpus=["a", 1]), variable="plan_prefill_gpus", text="not a GPU index")


# ------------------------------------------------------------------------------------------------ TP x DP
def test_tp_times_dp_must_equal_the_gpus():
    p = one({"engine_flag_overrides": {"--tensor-parallel-size": 2}}, variable="plan_prefill_gpus",
            text="tensor-parallel 2 x data-parallel(local) 4 = 8")
    assert "plan_prefill_flag_overrides" in p.fix


def test_lmcache_tp_follows_the_gpus_and_a_wrong_tp_is_refused():
    assert "8" == svc(plan({"topology": "lmcache_tp8"}, SERVING_HOST), "deepseek-v4-engine")["argv"][2]
    one({"topology": "lmcache_tp8", "engine_flag_overrides": {"--tensor-parallel-size": 4}}, SERVING_HOST,
        variable="plan_engine_gpus", text="= 4 GPUs but 8")


def test_router_needs_one_data_parallel_size():
    one(hosts=host_with(prefill_gpus=[0, 1]), variable="plan_prefill_gpus / plan_decode_gpus",
        text="different data-parallel(local) sizes")


# ------------------------------------------------------------------------------------------------ ports
def test_api_ports_clash():
    p = one({"prefill_port": 8001}, text="port 8001 ")
    assert "plan_prefill_port" in p.fix and "plan_decode_port" in p.fix


def test_bootstrap_port_clashes_with_router():
    p = one({"decode_bootstrap_port": 30000}, text="port 30000")
    assert "plan_router_port" in p.fix or p.variable == "plan_router_port"


def test_side_channel_port_clash_nixl():
    one({"topology": "h200_pd_nixl", "decode_side_channel_port": 5557}, variable="plan_decode_side_channel_port",
        text="ports 5557,5558,5559,5560")


def test_side_channel_ranges_overlap_per_dp_rank():
    # 5557/5558 look distinct, but a DP4 prefill listens on 5557-5560.
    p = one({"topology": "h200_pd_nixl", "decode_side_channel_port": 5558}, variable="plan_decode_side_channel_port",
            text="ports 5558,5559,5560")
    assert "data_parallel_index" in p.message


def test_nixl_default_side_channels_do_not_overlap():
    result = plan({"topology": "h200_pd_nixl"})
    assert svc(result, "deepseek-v4-prefill")["port_ranges"] == {"nixl_side_channel": [5557, 5560]}
    assert svc(result, "deepseek-v4-decode")["port_ranges"] == {"nixl_side_channel": [5567, 5570]}


def test_gb200_side_channel_range_follows_the_global_rank():
    result = plan({"topology": "gb200_pd_cluster"}, GB200_HOSTS)
    p2 = [s for s in result["services"] if s["host"] == "p2"][0]
    assert p2["port_ranges"]["nixl_side_channel"] == [5561, 5564]


def test_router_metrics_port_clash():
    one({"router_metrics_port": 8000}, variable="plan_router_metrics_port", text="port 8000")


def test_lmcache_http_port_clashes_with_engine():
    one({"topology": "lmcache_tp8", "lmcache_http_port": 8000}, SERVING_HOST, text="port 8000")


def test_port_out_of_range():
    one({"router_port": 70000}, variable="plan_router_port", text="not a TCP port")


# ------------------------------------------------------------------------------------------------ KV transfer
NIXL_BOTH = {"--kv-transfer-config": {"kv_connector": "NixlConnector", "kv_role": "kv_both"}}


def test_router_connector_must_match_the_engines():
    one({"engine_flag_overrides": NIXL_BOTH}, variable="plan_router_extra_args",
        text="--kv-connector mooncake does not match the engines' NixlConnector")


def test_router_extra_kv_connector_is_refused():
    one({"router_extra_args": ["--kv-connector", "nixl"]}, variable="plan_router_extra_args",
        text="contradicts the managed router flag")


def test_kv_transfer_config_bad_json():
    one({"decode_flag_overrides": {"--kv-transfer-config": "{bad"}}, variable="plan_decode_flag_overrides",
        text="not a JSON object")


def test_kv_transfer_config_unknown_key():
    cfg = {"kv_connector": "MooncakeConnector", "kv_role": "kv_both", "kv_bufer_device": "cuda"}
    one({"engine_flag_overrides": {"--kv-transfer-config": cfg}}, text="unknown key(s) ['kv_bufer_device']")


def test_kv_transfer_config_unknown_connector():
    cfg = {"kv_connector": "MoonCakeConnector", "kv_role": "kv_both"}
    one({"engine_flag_overrides": {"--kv-transfer-config": cfg}}, text="is not a vLLM KV connector")


def test_kv_role_inconsistent_with_the_engine_role():
    cfg = {"kv_connector": "MooncakeConnector", "kv_role": "kv_consumer"}
    one({"prefill_flag_overrides": {"--kv-transfer-config": cfg}}, variable="plan_prefill_flag_overrides",
        text="kv_role 'kv_consumer' does not fit the prefill engine")


def test_prefill_and_decode_connectors_differ():
    one({"prefill_flag_overrides": NIXL_BOTH}, text="different KV connectors")


def test_mooncake_protocol_unknown():
    one({"mooncake_protocol": "roce"}, variable="plan_mooncake_protocol")


def test_mooncake_tcp_is_a_warning():
    assert any("tcp" in w for w in plan({"mooncake_protocol": "tcp"})["warnings"])


# ------------------------------------------------------------------------------------------------ Think Max
def test_think_max_needs_a_long_context():
    one({"max_model_len": 131072}, variable="plan_max_model_len", text="Think Max needs --max-model-len >= 393216")


def test_think_max_with_auto_warns():
    assert any("Think Max" in w for w in plan()["warnings"])


@pytest.mark.parametrize("length", [393216, "384K", "1m", "auto"])
def test_think_max_long_enough(length):
    plan({"max_model_len": length})


def test_short_context_without_think_max_passes():
    plan({"max_model_len": 131072, "reasoning_modes": ["non_think", "think_high"]})


def test_max_model_len_garbage():
    one({"max_model_len": "lots"}, variable="plan_max_model_len", text="not a length")


# ------------------------------------------------------------------------------------------------ model rules
def test_lmcache_needs_fp8_ds_mla():
    one({"topology": "lmcache_tp8", "engine_flag_overrides": {"--kv-cache-dtype": "fp8"}}, SERVING_HOST,
        variable="plan_engine_flag_overrides", text="--kv-cache-dtype fp8_ds_mla")


def test_tokenizer_mode_required():
    one({"engine_flag_overrides": {"--tokenizer-mode": "auto"}}, text="--tokenizer-mode deepseek_v4")


def test_trust_remote_code_required():
    one({"engine_flag_overrides": {"--trust-remote-code": False}}, text="--trust-remote-code")


def test_unknown_reasoning_parser():
    one({"engine_flag_overrides": {"--reasoning-parser": "qwen3"}}, text="not a reasoning parser")


def test_bad_cudagraph_mode():
    one({"decode_flag_overrides": {"--compilation-config": {"cudagraph_mode": "FULL_DECODE"}}},
        variable="plan_decode_flag_overrides", text="cudagraph_mode 'FULL_DECODE' is unknown")


# ------------------------------------------------------------------------------------------------ images
@pytest.mark.parametrize("image", ["vllm/vllm-openai:latest", "vllm/vllm-openai:main", "vllm/vllm-openai:nightly",
                                   "vllm/vllm-openai:nightly-2026-01-01", "vllm/vllm-openai",
                                   "registry.local:5000/vllm-openai"])
def test_untagged_or_moving_images_are_refused(image):
    one({"image": image}, variable="plan_image")


@pytest.mark.parametrize("image", ["vllm/vllm-openai:v0.25.0", "registry.local:5000/vllm-openai:deepseekv4-cu130",
                                   "vllm/vllm-openai@sha256:" + "a" * 64])
def test_tagged_images_pass(image):
    plan({"image": image})


def test_moving_image_allowed_explicitly():
    plan({"image": "vllm/vllm-openai:nightly", "allow_untagged_image": True})


def test_image_tag_parsing():
    assert image_tag("host:5000/a/b") == (None, None)
    assert image_tag("a/b:t@sha256:x") == ("t", "sha256:x")


# ------------------------------------------------------------------------------------------------ Blackwell
def test_blackwell_only_flag_refused_on_hopper():
    one({"extra_engine_args": ["--attention_config.use_fp4_indexer_cache=True"]},
        text="Blackwell-only")


def test_blackwell_flag_on_blackwell_is_already_managed():
    one({"hardware": "b300", "extra_engine_args": ["--attention-config.use-fp4-indexer-cache=True"]},
        text="contradicts the managed flag")


# ------------------------------------------------------------------------------------------------ user flags
@pytest.mark.parametrize("extra,var_", [
    (["--max-num-seqs", "16"], "plan_extra_prefill_args"),
    (["--max_num_seqs", "16"], "plan_extra_prefill_args"),
    (["--no-enforce-eager"], "plan_extra_prefill_args"),
])
def test_prefill_extra_contradicting_managed_refused(extra, var_):
    p = one({"extra_prefill_args": extra}, variable=var_, text="contradicts the managed flag")
    assert "plan_prefill_flag_overrides" in p.fix


@pytest.mark.parametrize("extra", [["--port", "9000"], ["-dp", "2"], ["--kv-cache-dtype=auto"]])
def test_engine_extra_contradicting_managed_refused(extra):
    one({"extra_engine_args": extra}, variable="plan_extra_engine_args", text="contradicts the managed flag")


def test_extra_args_positional_refused():
    one({"extra_engine_args": ["other/model"]}, variable="plan_extra_engine_args", text="not a flag")


def test_extra_args_must_be_a_list():
    one({"extra_engine_args": "--foo bar"}, variable="plan_extra_engine_args", text="must be a list")


def test_extra_env_managed_refused():
    p = one({"extra_decode_env": {"CUDA_VISIBLE_DEVICES": "0"}}, variable="plan_extra_decode_env",
            text="derived by the plan")
    assert "plan_decode_gpus" in p.fix


def test_lmcache_extra_contradiction():
    one({"topology": "lmcache_tp8", "lmcache_extra_args": ["--l1-size-gb", "10"]}, SERVING_HOST,
        variable="plan_lmcache_extra_args")


# ------------------------------------------------------------------------------------------------ inventory
def test_unknown_setting():
    one({"prefil_port": 8000}, variable="plan_prefil_port", text="not a setting")


def test_unknown_topology_and_hardware():
    one({"topology": "h100_pd"}, variable="plan_topology")
    one({"hardware": "h100"}, variable="plan_hardware")


def test_unknown_recipe():
    one({"recipe": "v9"}, variable="plan_recipe")


def test_missing_groups():
    one(hosts=[{"name": "n", "groups": ["prefill", "router"]}], variable="groups['decode']")


def test_two_routers():
    hosts = [{"name": "a", "groups": ["prefill", "decode", "router"]}, {"name": "b", "groups": ["router"]}]
    one(hosts=hosts, variable="groups['router']", text="exactly one")


def test_serving_group_missing():
    one({"topology": "single_node"}, H200_HOST, variable="groups['serving']")


def test_unknown_per_host_variable():
    one(hosts=host_with(prefil_gpus=[0]), variable="plan_prefil_gpus")


def test_replica_gpu_sets_must_match_replicas():
    hosts = [dict(SERVING_HOST[0], engine_gpus=[[0, 1, 2, 3]])]
    one({"topology": "single_node", "replicas_per_host": 2}, hosts, variable="plan_engine_gpus")


def test_every_problem_is_reported_at_once():
    found = problems({"image": "vllm/vllm-openai:latest", "max_model_len": 1024, "router_port": 8000,
                      "extra_prefill_args": ["--port", "1"]}, host_with(decode_gpus=[4, 5, 6, 9]))
    variables = {p.variable for p in found}
    assert {"plan_image", "plan_max_model_len", "plan_extra_prefill_args", "plan_decode_gpus"} <= variables
    text = str(PlanError(found))
    assert "no host was changed" in text and "Fix:" in text


# ------------------------------------------------------------------------------------------------ helpers
def test_flag_key_and_parse_len():
    assert flag_key("--no-enforce-eager") == "enforce-eager"
    assert flag_key("--attention_config.use_fp4_indexer_cache=True") == "attention-config.use-fp4-indexer-cache"
    assert flag_key("-tp") == "tensor-parallel-size"
    assert parse_len("384K") == 393216 and parse_len("1k") == 1000 and parse_len("auto") is None


# ------------------------------------------------------------------------------------------------ settings names
def test_misspelt_setting_names_the_closest_real_one():
    p = one({"max_model_length": 131072}, variable="plan_max_model_length", text="did you mean plan_max_model_len?")
    assert p.found == 131072


def test_misspelt_host_setting_names_the_closest_real_one():
    one(hosts=host_with(prefil_gpus=[0, 1, 2, 3]), variable="plan_prefil_gpus", text="did you mean plan_prefill_gpus?")


def test_host_setting_in_group_vars_is_not_a_global_setting():
    assert plan({"gpu_count": 8})["hosts"]["node1"]["gpu_count"] == 8


# ------------------------------------------------------------------------------------------------ recipes
def test_recipe_aliases_name_the_dated_profiles():
    assert plan()["recipe"] == "2026-04"
    assert plan({"recipe": "v0.25.0"})["recipe"] == "2026-08"


def test_current_recipe_is_data_not_code():
    result = plan({"recipe": "2026-08"})
    prefill, decode = svc(result, "deepseek-v4-prefill")["argv"], svc(result, "deepseek-v4-decode")["argv"]
    assert result["model"] == "deepseek-ai/DeepSeek-V4-Flash-0731" and result["image"] == "vllm/vllm-openai:v0.25.0"
    assert "--enforce-eager" not in prefill  # recipes#828
    config = json.loads(prefill[prefill.index("--reasoning-config") + 1])
    assert config == {"reasoning_parser": "deepseek_v4", "reasoning_start_str": "", "reasoning_end_str": ""}
    assert prefill.index("--reasoning-config") == prefill.index("--reasoning-parser") + 2
    assert "--tool-call-parser" in decode and "--moe-backend" not in decode  # Hopper: no Blackwell MoE backend
    blackwell = svc(plan({"recipe": "2026-08", "hardware": "b200"}), "deepseek-v4-decode")["argv"]
    assert blackwell[blackwell.index("--moe-backend") + 1] == "deep_gemm_mega_moe"


def test_mtp_on_a_checkpoint_without_an_mtp_head_is_refused_with_the_fix():
    p = one({"recipe": "2026-08", "enable_mtp": True}, variable="plan_enable_mtp", text="has no MTP head")
    assert "plan_enable_dspark: true" in p.fix and "deepseek-ai/DeepSeek-V4-Flash" in p.fix


def test_dspark_on_the_current_recipe_and_mtp_on_the_preview_checkpoint():
    argv = svc(plan({"recipe": "2026-08", "enable_dspark": True}), "deepseek-v4-decode")["argv"]
    assert json.loads(argv[argv.index("--speculative-config") + 1])["method"] == "dspark"
    preview = svc(plan({"recipe": "2026-08", "enable_mtp": True, "model": "deepseek-ai/DeepSeek-V4-Flash"}),
                  "deepseek-v4-decode")["argv"]
    assert json.loads(preview[preview.index("--speculative-config") + 1]) == {"method": "mtp",
                                                                              "num_speculative_tokens": 1}
    one({"enable_dspark": True}, variable="plan_enable_dspark", text="has no DSPARK head")


def test_gpu_memory_minimum_per_checkpoint():
    hosts = [dict(SERVING_HOST[0], engine_gpus=[0])]
    one({"topology": "single_node_tp", "recipe": "2026-08"}, hosts, variable="plan_engine_gpus",
        text="needs about 200 GB of GPU memory")


@pytest.mark.parametrize("topology,flags", [
    ("single_node_tp", ["--tensor-parallel-size", "8", "--no-enable-flashinfer-autotune"]),
    ("single_node_tep", ["--tensor-parallel-size", "8", "--enable-expert-parallel"])])
def test_single_node_strategies_are_topology_rows(topology, flags):
    engine = svc(plan({"topology": topology}, SERVING_HOST), "deepseek-v4-engine")
    assert engine["gpus"] == list(range(8)) and "CUDA_VISIBLE_DEVICES" not in engine["env"]
    argv = engine["argv"]
    assert argv[argv.index(flags[0]):argv.index(flags[0]) + len(flags)] == flags


# ------------------------------------------------------------------------------------------------ what roles consume
def test_plan_publishes_what_the_roles_consume():
    result = plan({"topology": "h200_pd_nixl"})
    assert result["reasoning_parser"] == "deepseek_v4"
    assert result["transfer"]["hosts"] == ["node1"] and result["transfer"]["peermem"] is False
    ports = {(p["service"], p["name"]): p for p in result["hosts"]["node1"]["ports"]}
    side = ports[("deepseek-v4-decode", "nixl_side_channel")]
    assert (side["first"], side["last"], side["variable"], side["transfer"]) == (
        5567, 5570, "plan_decode_side_channel_port", True)
    assert ports[("deepseek-v4-router", "router")]["variable"] == "plan_router_port"
    prefill = svc(result, "deepseek-v4-prefill")
    assert prefill["container"]["published_ports"] == []  # the host network publishes nothing
    assert prefill["container"]["recipe_published_ports"] == ["8000:8000"] and " -p 8000:8000" in prefill["command"]
    assert prefill["readiness"]["completion"] == "http://localhost:8000/v1/completions"
    lmcache = [s for s in plan({"topology": "lmcache_tp8"}, SERVING_HOST)["services"] if s["kind"] == "lmcache"][0]
    assert lmcache["entrypoint"] == ["lmcache"] and lmcache["args"][0] == "server"
    assert lmcache["readiness"] == {"health": "http://127.0.0.1:8080/healthcheck", "models": None, "completion": None}


def test_lmcache_replicas_point_their_connector_at_their_own_server():
    result = plan({"topology": "lmcache_tp8", "replicas_per_host": 2}, SERVING_HOST)
    second = svc(result, "deepseek-v4-engine-1")["argv"]
    config = json.loads(second[second.index("--kv-transfer-config") + 1])
    assert config["kv_connector_extra_config"]["lmcache.mp.port"] == svc(result, "deepseek-v4-lmcache-1")["ports"][
        "lmcache_zmq"] == 5565


def test_transfer_names_its_protocol_setting_and_devices():
    transfer = plan({"mooncake_device_name": "mlx5_0, mlx5_1"})["transfer"]
    assert transfer["protocol_variable"] == "plan_mooncake_protocol"
    assert transfer["device_names"] == ["mlx5_0", "mlx5_1"]
    nixl = plan({"topology": "h200_pd_nixl"})["transfer"]
    assert nixl["protocol_variable"] is None and nixl["device_names"] == []


# ------------------------------------------------------------------------------------------------ port flags, KV transfer
def test_port_flag_moved_off_its_setting_is_refused_and_a_matching_one_is_not():
    one({"decode_flag_overrides": {"--port": 8000}}, variable="plan_decode_flag_overrides", text="--port")
    one({"topology": "single_node", "extra_engine_args": ["--port", "8001"]}, SERVING_HOST,
        variable="plan_extra_engine_args", text="plan_engine_port")
    plan({"decode_port": 8005})
    plan({"decode_flag_overrides": {"--port": 8001}})
    plan({"topology": "lmcache_tp8", "lmcache_port": 6000, "lmcache_http_port": 8081}, SERVING_HOST)


def test_kv_transfer_config_follows_the_topology_and_the_settings():
    nixl = {"--kv-transfer-config": {"kv_connector": "NixlConnector", "kv_role": "kv_both"}}
    p = one({"engine_flag_overrides": nixl}, variable="plan_engine_flag_overrides", text="moves KV with")
    assert "h200_pd_nixl" in p.fix
    tcp = {"--kv-transfer-config": {"kv_connector": "MooncakeConnector", "kv_role": "kv_both",
                                    "kv_connector_extra_config": {"mooncake_protocol": "tcp"}}}
    one({"prefill_flag_overrides": tcp}, variable="plan_prefill_flag_overrides", text="plan_mooncake_protocol")
    plan({"prefill_flag_overrides": tcp, "mooncake_protocol": "tcp"})
    plan({"topology": "single_node", "extra_engine_args": [
        "--kv-transfer-config", '{"kv_connector":"OffloadingConnector","kv_role":"kv_both"}']}, SERVING_HOST)


def test_booleans_and_strings_are_type_checked():
    one({"enable_mtp": "yes please"}, variable="plan_enable_mtp", text="boolean")
    one({"model": ["deepseek-ai/DeepSeek-V4-Flash"]}, variable="plan_model", text="string")
    one({"image": "vllm/vllm-openai:latest", "allow_untagged_image": "false"}, variable="plan_image")
    assert plan({"image": "vllm/vllm-openai:latest", "allow_untagged_image": "true"})["image"].endswith(":latest")


def test_development_build_tags_and_json_blackwell_flags_are_refused():
    one({"image": "vllm/vllm-openai:v0.26.0.dev12"}, variable="plan_image", text="not a tagged release")
    one({"extra_engine_args": ["--attention-config", '{"use_fp4_indexer_cache": true}']},
        variable="plan_extra_engine_args", text="Blackwell-only")
    plan({"image": "vllm/vllm-openai:v0.25.0"})
    plan({"extra_engine_args": ["--attention-config", '{"use_fp4_indexer_cache": false}']})
