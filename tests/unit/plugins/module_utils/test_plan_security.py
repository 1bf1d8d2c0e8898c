# -*- coding: utf-8 -*-
"""Security of the plan (README, Security): where every engine listens, which services require the API key and how
the roles pass it (never its value), secrets refused in plan_* settings, the RDMA container options without
--privileged, images pinned by digest."""

from __future__ import annotations

import json
import shlex

import pytest

from ansible_collections.inference.deepseek_v4.plugins.module_utils._plan import (
    PlanError,
    build_plan,
    plan_json,
    summary_lines,
)
from ansible_collections.inference.deepseek_v4.plugins.module_utils._plan import profiles as P

ONE_HOST_PD = [{"name": "node1", "groups": ["prefill", "decode", "router"], "address": "10.0.0.11"}]
SERVING = [{"name": "node1", "groups": ["serving"], "address": "10.0.0.11"}]
DEP = [{"name": "node-%d" % i, "groups": ["serving"], "address": "10.0.2.1%d" % i} for i in (1, 2)]
GB200 = [{"name": "p1", "groups": ["prefill"], "address": "10.1.0.1"},
         {"name": "d1", "groups": ["decode"], "address": "10.1.0.3"},
         {"name": "r1", "groups": ["router"], "address": "10.1.0.5", "gpu_count": 0}]
# (topology, hosts, where its engines listen by default: loopback or each host's address)
TOPOLOGY_BINDS = [("h200_pd", ONE_HOST_PD, "loopback"), ("h200_pd_nixl", ONE_HOST_PD, "loopback"),
                  ("single_node", SERVING, "loopback"), ("single_node_tp", SERVING, "loopback"),
                  ("single_node_tep", SERVING, "loopback"), ("lmcache_tp8", SERVING, "loopback"),
                  ("multi_node_dep", DEP, "address"), ("gb200_pd_cluster", GB200, "address")]
DIGEST = "sha256:" + "0123456789abcdef" * 4


def argv_value(svc, flag):
    return svc["argv"][svc["argv"].index(flag) + 1]


def problems(settings, hosts, **kw):
    with pytest.raises(PlanError) as err:
        build_plan(settings, hosts, **kw)
    return err.value.problems


# ------------------------------------------------------------------------------------------------ bind addresses
@pytest.mark.parametrize("topology,hosts,where", TOPOLOGY_BINDS, ids=[t[0] for t in TOPOLOGY_BINDS])
def test_engines_listen_where_the_plan_says(topology, hosts, where):
    plan = build_plan({"topology": topology}, hosts)
    addresses = {h["name"]: h["address"] for h in hosts}
    for svc in (x for x in plan["services"] if x["kind"] == "engine"):
        want = "127.0.0.1" if where == "loopback" else addresses[svc["host"]]
        assert argv_value(svc, "--host") == want == svc["bind_address"], svc["name"]
        assert svc["argv"].count("--host") == 1
        # the readiness gate asks the address the engine listens on
        assert svc["readiness"]["health"].startswith("http://%s:" % ("localhost" if where == "loopback" else want))
    for svc in (x for x in plan["services"] if x["kind"] == "router"):
        assert svc["bind_address"] == "127.0.0.1" and argv_value(svc, "--host") == "127.0.0.1"
    for svc in (x for x in plan["services"] if x["kind"] == "lmcache"):
        assert argv_value(svc, "--http-host") == "127.0.0.1" and svc["readiness"]["health"].startswith(
            "http://127.0.0.1:")


def test_an_engine_a_router_elsewhere_reaches_listens_on_its_address():
    hosts = [{"name": "gpu1", "groups": ["prefill", "decode"], "address": "10.0.0.21"},
             {"name": "cpu1", "groups": ["router"], "address": "10.0.0.22", "gpu_count": 0}]
    plan = build_plan({"topology": "h200_pd"}, hosts)
    engines = [x for x in plan["services"] if x["kind"] == "engine"]
    assert {argv_value(x, "--host") for x in engines} == {"10.0.0.21"}
    router = [x for x in plan["services"] if x["kind"] == "router"][0]
    assert "http://10.0.0.21:8000" in router["argv"] and "http://10.0.0.21:8001" in router["argv"]


def test_a_host_may_set_its_own_bind_address():
    hosts = [dict(GB200[0], engine_bind_address="192.168.7.1")] + GB200[1:]
    plan = build_plan({"topology": "gb200_pd_cluster"}, hosts)
    prefill = [x for x in plan["services"] if x["role"] == "prefill"][0]
    assert argv_value(prefill, "--host") == "192.168.7.1"
    assert prefill["url"] == "http://192.168.7.1:8001" and prefill["health_url"] == "http://192.168.7.1:8001/health"
    router = [x for x in plan["services"] if x["kind"] == "router"][0]
    assert "http://192.168.7.1:8001" in router["argv"]


def test_loopback_where_a_router_on_another_host_must_reach_is_refused():
    hosts = [dict(GB200[0], engine_bind_address="127.0.0.1")] + GB200[1:]
    found = problems({"topology": "gb200_pd_cluster"}, hosts)
    assert [(p.variable, p.host) for p in found] == [("plan_engine_bind_address", "p1")]
    assert "10.1.0.1" in found[0].fix


def test_host_changed_through_flags_is_refused_naming_the_setting():
    found = problems({"topology": "single_node", "engine_flag_overrides": {"--host": "0.0.0.0"}}, SERVING)
    assert [p.variable for p in found] == ["plan_engine_flag_overrides"]
    assert "plan_engine_bind_address" in found[0].fix
    found = problems({"topology": "single_node", "extra_engine_args": ["--host", "0.0.0.0"]}, SERVING)
    assert [p.variable for p in found] == ["plan_extra_engine_args"]


def test_every_interface_is_allowed_but_said():
    plan = build_plan({"topology": "single_node"}, [dict(SERVING[0], engine_bind_address="0.0.0.0")])
    assert argv_value(plan["services"][0], "--host") == "0.0.0.0"
    assert any("every interface" in w and "without an API key" in w for w in plan["warnings"])
    plan = build_plan({"topology": "h200_pd", "router_host": "0.0.0.0"}, ONE_HOST_PD)
    assert any("no inbound authentication" in w for w in plan["warnings"])


# ------------------------------------------------------------------------------------------------ API key
SECRET = "sk-never-in-the-plan-4242"


@pytest.mark.parametrize("topology,hosts", [("single_node", SERVING), ("multi_node_dep", DEP),
                                            ("lmcache_tp8", SERVING)])
def test_engines_without_a_router_require_the_key_through_the_environment(topology, hosts):
    plan = build_plan({"topology": topology}, hosts, api_key=True)
    engines = [x for x in plan["services"] if x["kind"] == "engine"]
    assert engines and all(x["api_key"] and x["secret_env"] == {"VLLM_API_KEY": "deepseek_v4_api_key"}
                           for x in engines)
    assert all("VLLM_API_KEY" not in x["env"] and "--api-key" not in x["argv"] for x in engines)
    for svc in engines:
        rendered = shlex.split(svc["command"].replace("\\\n", " "))
        # docker takes a bare `-e NAME` from the caller's environment: the command shows the name, never a value
        assert rendered[rendered.index("VLLM_API_KEY") - 1] == "-e"
    assert plan["api_key"] == {"set": True, "variable": "deepseek_v4_api_key",
                               "required_by": [x["name"] for x in engines], "router_sends": False}
    assert [x for x in plan["services"] if x["kind"] == "lmcache" and x["secret_env"]] == []


def test_the_key_changes_the_engine_hash_and_nothing_without_it():
    off = build_plan({"topology": "single_node"}, SERVING)
    on = build_plan({"topology": "single_node"}, SERVING, api_key=True)
    assert off["services"][0]["secret_env"] == {} and "VLLM_API_KEY" not in off["services"][0]["command"]
    assert off["api_key"]["set"] is False and off["api_key"]["required_by"] == []
    assert on["services"][0]["plan_hash"] != off["services"][0]["plan_hash"]


def test_engines_behind_a_router_that_cannot_send_the_key_do_not_require_it():
    """vllm-router 0.1.17 sends 'Authorization: Bearer ' (empty) to prefill/decode workers whatever --api-key says
    (measured): engines that required the key would refuse every request through it."""
    assert "0.1.17" not in P.ROUTER_FORWARDS_API_KEY
    plan = build_plan({"topology": "h200_pd"}, ONE_HOST_PD, api_key=True)
    assert [x["api_key"] for x in plan["services"]] == [False, False, False]
    assert all(x["secret_env"] == {} and x["secret_args"] == {} for x in plan["services"])
    assert any("does not send it" in w and "loopback" in w for w in plan["warnings"])
    plan = build_plan({"topology": "gb200_pd_cluster"}, GB200, api_key=True)
    assert any("host firewall" in w for w in plan["warnings"])


def test_a_router_that_sends_the_key_gets_it_by_reference(monkeypatch):
    monkeypatch.setattr(P, "ROUTER_FORWARDS_API_KEY", ("0.1.17",))
    plan = build_plan({"topology": "h200_pd"}, ONE_HOST_PD, api_key=True)
    engines = [x for x in plan["services"] if x["kind"] == "engine"]
    router = [x for x in plan["services"] if x["kind"] == "router"][0]
    assert all(x["secret_env"] == {"VLLM_API_KEY": "deepseek_v4_api_key"} for x in engines)
    assert router["secret_args"] == {"--api-key": "deepseek_v4_api_key"} and "--api-key" not in router["argv"]
    assert router["command"].endswith('--api-key "$DEEPSEEK_V4_API_KEY"')
    assert plan["api_key"]["router_sends"] is True and router["api_key"] is False


def test_no_secret_in_plan_json_commands_or_summary():
    """The plan never holds the key (the action gets a boolean); what it prints names variables only."""
    for topology, hosts, _where in TOPOLOGY_BINDS:
        plan = build_plan({"topology": topology}, hosts, api_key=True)
        text = plan_json(plan) + "\n".join(summary_lines(plan))
        assert SECRET not in text
        assert "deepseek_v4_api_key" in text


@pytest.mark.parametrize("settings,variable", [
    ({"extra_env": {"VLLM_API_KEY": SECRET}}, "plan_extra_env"),
    ({"extra_decode_env": {"HF_TOKEN": SECRET}}, "plan_extra_decode_env"),
    ({"extra_prefill_args": ["--api-key", SECRET]}, "plan_extra_prefill_args"),
    ({"extra_engine_args": ["--api-key=" + SECRET]}, "plan_extra_engine_args"),
    ({"router_extra_args": ["--api-key", SECRET]}, "plan_router_extra_args"),
    ({"api_key": SECRET}, "plan_api_key"),
    ({"extra_env": {"AWS_SECRET_ACCESS_KEY": SECRET}}, "plan_extra_env"),
    ({"extra_env": {"NGC_API_KEY": SECRET}}, "plan_extra_env"),
    ({"extra_prefill_env": {"WANDB_API_KEY": SECRET}}, "plan_extra_prefill_env"),
    ({"extra_decode_env": {"db_password": SECRET}}, "plan_extra_decode_env"),
    ({"extra_env": {"MY_SERVICE_PASSWD": SECRET}}, "plan_extra_env"),
    ({"extra_env": {"GOOGLE_APPLICATION_CREDENTIALS_JSON": SECRET}}, "plan_extra_env"),
    ({"extra_env": {"S3_CLIENT_SECRET_VALUE": SECRET}}, "plan_extra_env"),
    ({"extra_env": {"GITHUB_TOKEN": SECRET}}, "plan_extra_env"),
    ({"decode_flag_overrides": {"--api-key": SECRET}}, "plan_decode_flag_overrides"),
    ({"extra_engine_args": ["--hf-token", SECRET]}, "plan_extra_engine_args"),
    ({"lmcache_extra_args": ["--s3-secret-key", SECRET]}, "plan_lmcache_extra_args"),
    ({"extra_env": ["HF_TOKEN=" + SECRET]}, "plan_extra_env"),  # a list: refused by type, the value still hidden
    ({"extra_engine_args": "--api-key " + SECRET}, "plan_extra_engine_args"),
    ({"plan_tokens": {"hf": SECRET}}, "plan_plan_tokens"),
])
def test_secrets_in_settings_are_refused_without_showing_them(settings, variable):
    found = problems(dict(settings, topology="h200_pd"), ONE_HOST_PD)
    assert variable in [p.variable for p in found]
    text = json.dumps([p.as_dict() for p in found]) + "\n".join(str(p) for p in found)
    assert SECRET not in text and "<hidden>" in text


@pytest.mark.parametrize("topology,hosts", [("single_node", SERVING), ("lmcache_tp8", SERVING)])
def test_a_secret_in_an_env_setting_the_topology_does_not_read_is_refused_too(topology, hosts):
    """plan_extra_prefill_env on a topology without prefill engines still lands in the inventory, the printed
    variables and a copy of the settings: refused all the same, for the whole plan."""
    found = problems({"topology": topology, "extra_prefill_env": {"NGC_API_KEY": SECRET}}, hosts)
    mine = [p for p in found if p.variable == "plan_extra_prefill_env"]
    assert mine and mine[0].host is None and "pass it" not in mine[0].fix and "outside the plan" in mine[0].fix
    assert SECRET not in json.dumps([p.as_dict() for p in found])


@pytest.mark.parametrize("settings", [
    {"extra_env": {"TOKENIZERS_PARALLELISM": "false", "VLLM_MAX_TOKENS_PER_BATCH": "8", "NCCL_IB_GID_INDEX": "3",
                   "PYTHONHASHSEED": "0", "VLLM_CACHE_ROOT": "/tmp/x"}},
    {"extra_engine_args": ["--served-model-name", "disk-cache-experiment-2026-08", "--max-num-batched-tokens", "8192",
                           "--tokenizer", "deepseek-ai/DeepSeek-V4-Flash",
                           "--ssl-keyfile", "/etc/ssl/x.key"]},
])
def test_names_that_only_look_alike_are_not_secrets(settings):
    build_plan(dict(settings, topology="single_node"), SERVING)


@pytest.mark.parametrize("settings,variable", [
    ({"extra_env": {"MY_SETTING": "hf_" + "a1B2c3D4e5" * 3}}, "plan_extra_env"),
    ({"extra_engine_args": ["--served-model-name", "sk-" + "x" * 24]}, "plan_extra_engine_args"),
    ({"decode_flag_overrides": {"--max-num-seqs": "nvapi-" + "Q" * 30}}, "plan_decode_flag_overrides"),
])
def test_a_token_shaped_value_under_any_name_is_refused(settings, variable):
    found = problems(dict(settings, topology="h200_pd"), ONE_HOST_PD)
    mine = [p for p in found if p.variable == variable and "access token" in p.message]
    assert mine and "outside the plan" in mine[0].fix
    text = json.dumps([p.as_dict() for p in found]) + "".join(str(p) for p in found)
    assert "a1B2c3D4e5" not in text and "x" * 24 not in text and "Q" * 30 not in text


def test_a_token_shaped_value_is_hidden_wherever_a_problem_shows_it():
    token = "hf_" + "a1B2c3D4e5" * 3
    found = problems({"topology": "h200_pd", "model": token}, ONE_HOST_PD)
    assert any(p.variable == "plan_model" for p in found)
    assert token not in json.dumps([p.as_dict() for p in found]) + "".join(str(p) for p in found)


# ------------------------------------------------------------------------------------------------ RDMA privileges
def test_least_privilege_by_default_and_privileged_only_when_asked_with_a_warning():
    plan = build_plan({"topology": "h200_pd"}, ONE_HOST_PD)
    engine = plan["services"][0]
    assert engine["container"]["privileged"] is False and engine["container"]["cap_add"] == ["IPC_LOCK"]
    assert "--privileged" not in engine["command"]
    assert not [w for w in plan["warnings"] if "--privileged" in w]
    asked = build_plan({"topology": "h200_pd", "engine_privileges": "privileged"}, ONE_HOST_PD)
    engine = asked["services"][0]
    assert engine["container"]["privileged"] is True and engine["container"]["cap_add"] == []
    assert "--privileged" in engine["command"]
    (warning,) = [w for w in asked["warnings"] if "--privileged" in w]
    assert "plan_engine_privileges is privileged" in warning and "deepseek-v4-prefill on" in warning


def test_rdma_devices_instead_of_privileged_where_rdma_is_used():
    plan = build_plan({"topology": "h200_pd", "engine_privileges": "rdma_devices"}, ONE_HOST_PD)
    for engine in (x for x in plan["services"] if x["kind"] == "engine"):
        c = engine["container"]
        assert c["privileged"] is False
        assert c["devices"] == ["/dev/infiniband:/dev/infiniband"]
        assert c["cap_add"] == ["IPC_LOCK"] and c["ulimits"] == ["memlock:-1:-1"]
        rendered = shlex.split(engine["command"].replace("\\\n", " "))
        assert "--privileged" not in rendered
        for flag, value in (("--device", "/dev/infiniband:/dev/infiniband"), ("--cap-add", "IPC_LOCK"),
                            ("--ulimit", "memlock=-1:-1")):
            assert rendered[rendered.index(flag) + 1] == value
    gb = build_plan({"topology": "gb200_pd_cluster", "engine_privileges": "rdma_devices"}, GB200)
    prefill = [x for x in gb["services"] if x["role"] == "prefill"][0]["container"]
    assert prefill["devices"] == ["/dev/nvidia-caps-imex-channels:/dev/nvidia-caps-imex-channels",
                                  "/dev/infiniband:/dev/infiniband"]


def test_rdma_devices_where_no_rdma_is_used_drops_privileged_only():
    plan = build_plan({"topology": "single_node", "engine_privileges": "rdma_devices"}, SERVING)
    c = plan["services"][0]["container"]
    assert c["privileged"] is False and c["devices"] == [] and c["cap_add"] == [] and c["ulimits"] == []
    plan = build_plan({"topology": "multi_node_dep", "engine_privileges": "rdma_devices"}, DEP)
    assert plan["services"][0]["container"]["cap_add"] == ["IPC_LOCK"], "NCCL across nodes uses RDMA"


def test_lmcache_never_privileged():
    plan = build_plan({"topology": "lmcache_tp8", "engine_privileges": "rdma_devices"}, SERVING)
    assert all(not x["container"]["privileged"] for x in plan["services"])


def test_engine_privileges_has_two_values():
    found = problems({"topology": "h200_pd", "engine_privileges": "none"}, ONE_HOST_PD)
    assert [p.variable for p in found] == ["plan_engine_privileges"]


# ------------------------------------------------------------------------------------------------ images
def test_an_image_pinned_by_digest_is_accepted_and_shown():
    image = "vllm/vllm-openai:deepseekv4-cu130@" + DIGEST
    plan = build_plan({"topology": "h200_pd", "image": image}, ONE_HOST_PD)
    assert plan["image"] == image and plan["image_digest"] == DIGEST
    assert all(x["image"] == image for x in plan["services"] if x["kind"] == "engine")
    assert image in plan["services"][0]["command"]
    plan = build_plan({"topology": "h200_pd", "image": "vllm/vllm-openai@" + DIGEST}, ONE_HOST_PD)
    assert plan["image_digest"] == DIGEST
    assert build_plan({"topology": "h200_pd"}, ONE_HOST_PD)["image_digest"] is None


@pytest.mark.parametrize("image", ["vllm/vllm-openai@sha256:abc", "vllm/vllm-openai:v0.25.0@md5:" + "0" * 32,
                                   "vllm/vllm-openai@sha256:" + "A" * 64])
def test_a_malformed_digest_is_refused_even_when_untagged_images_are_allowed(image):
    for allow in (False, True):
        found = problems({"topology": "h200_pd", "image": image, "allow_untagged_image": allow}, ONE_HOST_PD)
        assert [p.variable for p in found] == ["plan_image"] and "64" in found[0].message


@pytest.mark.parametrize("image", ["vllm/vllm-openai:latest", "vllm/vllm-openai:nightly",
                                   "vllm/vllm-openai:v0.26.0.dev12", "vllm/vllm-openai"])
def test_moving_images_are_refused(image):
    assert [p.variable for p in problems({"topology": "h200_pd", "image": image}, ONE_HOST_PD)] == ["plan_image"]


def _tag_warnings(plan):
    return [w for w in plan["warnings"] if "is a tag without a digest" in w]


def test_a_tag_without_a_digest_is_warned_about_once_with_the_way_to_pin_it():
    plan = build_plan({"topology": "h200_pd", "image": "vllm/vllm-openai:v0.25.0"}, ONE_HOST_PD)
    (warning,) = _tag_warnings(plan)
    assert warning.startswith("plan_image vllm/vllm-openai:v0.25.0 is a tag without a digest")
    assert "plan_image: vllm/vllm-openai:v0.25.0@sha256:<64 hex digits>" in warning
    assert "first engine host" in warning and "next run" in warning
    assert "WARNING: " + warning in summary_lines(plan)


def test_a_pinned_digest_is_not_warned_about():
    for image in ("vllm/vllm-openai:v0.25.0@" + DIGEST, "vllm/vllm-openai@" + DIGEST):
        assert not _tag_warnings(build_plan({"topology": "h200_pd", "image": image}, ONE_HOST_PD))


def test_each_image_is_warned_about_under_its_own_setting():
    settings = {"topology": "lmcache_tp8", "image": "vllm/vllm-openai:v0.25.0",
                "lmcache_image": "lmcache/vllm-openai:v0.3.9"}
    found = _tag_warnings(build_plan(settings, SERVING))
    expected = [["plan_image", "vllm/vllm-openai:v0.25.0"], ["plan_lmcache_image", "lmcache/vllm-openai:v0.3.9"]]
    assert [w.split(" ", 2)[:2] for w in found] == expected
    # The LMCache server on the engine image: one image, one warning.
    assert len(_tag_warnings(build_plan(dict(settings, lmcache_image=None), SERVING))) == 1
    pinned = dict(settings, lmcache_image="lmcache/vllm-openai:v0.3.9@" + DIGEST)
    assert [w.split(" ", 1)[0] for w in _tag_warnings(build_plan(pinned, SERVING))] == ["plan_image"]


def test_an_untagged_image_allowed_anyway_is_warned_about_as_latest():
    plan = build_plan({"topology": "h200_pd", "image": "localhost/vllm-dev", "allow_untagged_image": True},
                      ONE_HOST_PD)
    (warning,) = _tag_warnings(plan)
    assert "plan_image: localhost/vllm-dev:latest@sha256:<64 hex digits>" in warning
