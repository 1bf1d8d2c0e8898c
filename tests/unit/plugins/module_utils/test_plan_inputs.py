# -*- coding: utf-8 -*-
"""Input syntax (plugins/module_utils/_plan/inputs.py): control characters anywhere in a setting or a host's value,
paths, revisions, model ids, interface names, image references and addresses refused with the variable and a fix,
all at once; every default, recipe and sample value still accepted."""

from __future__ import annotations

import json

import pytest

from ansible_collections.inference.deepseek_v4.plugins.module_utils._plan import PlanError, build_plan
from ansible_collections.inference.deepseek_v4.plugins.module_utils._plan import inputs
from ansible_collections.inference.deepseek_v4.plugins.module_utils._plan import profiles as P

ONE_HOST_PD = [{"name": "node1", "groups": ["prefill", "decode", "router"], "address": "10.0.0.11"}]
SERVING = [{"name": "node1", "groups": ["serving"], "address": "10.0.0.11"}]
DEP = [{"name": "node-%d" % i, "groups": ["serving"], "address": "10.0.2.1%d" % i} for i in (1, 2)]


def refused(settings, hosts=None, topology="h200_pd"):
    with pytest.raises(PlanError) as err:
        build_plan(dict(settings, topology=topology), hosts or (ONE_HOST_PD if topology.startswith("h200") else
                                                                SERVING))
    return err.value


def named(settings, variable, hosts=None, topology="h200_pd", fix=None):
    err = refused(settings, hosts, topology)
    found = [p for p in err.problems if p.variable == variable]
    assert found, "no problem names %s:\n%s" % (variable, err.summary())
    if fix:
        assert any(fix in p.fix for p in found), err.summary()
    return found


# ------------------------------------------------------------------------------------------------ control characters
@pytest.mark.parametrize("name,value", [
    ("router_extra_args", ["--log-level", "info\nExecStartPre=/bin/sh -c id"]),
    ("extra_engine_args", ["--max-num-seqs", "16\r"]),
    ("extra_env", {"NCCL_DEBUG": "INFO\nLD_PRELOAD=/tmp/x.so"}),
    ("extra_env", {"NCCL_DEBUG\n": "INFO"}),
    ("engine_flag_overrides", {"--max-num-seqs": "16\x00"}),
    ("image", "vllm/vllm-openai:deepseekv4-cu130\n"),
    ("model", "deepseek-ai/DeepSeek-V4-Flash\t"),
    ("weights_revision", "main\u2028"),
    ("name_prefix", "deepseek-v4\x1b[31m"),
    ("router_version", "0.1.17\n"),
    ("hf_cache_dir", "/var/lib/hf\n"),
])
def test_a_control_character_anywhere_is_refused_with_its_variable(name, value):
    found = named({name: value}, "plan_" + name, fix="remove the control character")
    assert any("holds" in p.message for p in found)


def test_every_problem_at_once():
    err = refused({"router_extra_args": ["--log-level", "info\nX=1"], "hf_cache_dir": "/", "model": "a b",
                   "weights_revision": "../main", "socket_ifname": "eth0 "})
    variables = {p.variable for p in err.problems}
    assert {"plan_router_extra_args", "plan_hf_cache_dir", "plan_model", "plan_weights_revision",
            "plan_socket_ifname"} <= variables
    # the newline is shown escaped on its one line, never as a line of its own
    assert all(line.startswith(("The serving plan", "  - ")) for line in err.summary().splitlines())


def test_a_control_character_in_a_secret_value_is_not_shown():
    err = refused({"extra_env": {"HF_TOKEN": "hf_secretvalue\nX"}})
    text = err.summary() + json.dumps([p.as_dict() for p in err.problems])
    assert "secretvalue" not in text and "<hidden>" in text


# ------------------------------------------------------------------------------------------------ paths
@pytest.mark.parametrize("name,value,fix", [
    ("hf_cache_dir", "/", "a directory of its own"),
    ("hf_cache_dir", "/etc/hf", "a directory of its own"),
    ("hf_cache_dir", "/usr/local/hf", "a directory of its own"),
    ("hf_cache_dir", "/proc/self", "a directory of its own"),
    ("hf_cache_dir", "/var", "a directory of its own"),
    ("hf_cache_dir", "/root", "a directory of its own"),
    ("hf_cache_dir", "~/", "a directory of its own"),
    ("hf_cache_dir", "relative/hf", "write it from the root"),
    ("hf_cache_dir", "/srv/../etc", "write /etc"),
    ("hf_cache_dir", "/srv//hf", "write /srv/hf"),
    ("hf_cache_dir", "/srv/hf/", "write /srv/hf"),
    ("hf_cache_dir", "~/./hf", "write ~/hf"),
    ("hf_cache_dir", "", "set an absolute directory"),
    ("shared_dir", "/srv:/root:rw", "only letters, digits"),
    ("shared_dir", "/srv/a,b", "only letters, digits"),
    ("shared_dir", "/srv/my share", "only letters, digits"),
    ("shared_dir", "/root/.cache/huggingface", "outside /root/.cache/huggingface"),
    ("shared_dir", "/dev", "a directory of its own"),
])
def test_paths_are_absolute_normalised_and_not_system_directories(name, value, fix):
    topology = "gb200_pd_cluster" if name == "shared_dir" else "h200_pd"
    hosts = [{"name": "p1", "groups": ["prefill"], "address": "10.1.0.1"},
             {"name": "d1", "groups": ["decode"], "address": "10.1.0.3"},
             {"name": "r1", "groups": ["router"], "address": "10.1.0.5", "gpu_count": 0}]
    named({name: value}, "plan_" + name, hosts=hosts if name == "shared_dir" else None, topology=topology, fix=fix)


@pytest.mark.parametrize("value", ["~/.cache/huggingface", "/var/lib/deepseek-v4-rehearsal/hf-cache",
                                   "/root/.cache/huggingface", "/mnt/shared/hf", "/data/hf_cache@v2"])
def test_reasonable_cache_directories_are_accepted(value):
    assert inputs.path_problem("plan_hf_cache_dir", value) is None


def test_no_shared_directory_is_allowed():
    assert inputs.path_problem("plan_shared_dir", "", empty_ok=True) is None


# ------------------------------------------------------------------------------------------------ names
@pytest.mark.parametrize("value", ["../../etc/passwd", "main..dev", "refs/heads/main/", "/main", "a b", "v1.0.lock",
                                   "x@{1}", "@", "feature~1", "tag^", "a:b", "ab*", "a[b", "a\\b", ".hidden", ""])
def test_revisions_follow_git_reference_syntax(value):
    assert inputs.revision_problem("plan_weights_revision", value) is not None


@pytest.mark.parametrize("value", ["main", "v1.0", "refs/pr/1", "0123456789abcdef0123456789abcdef01234567", 1234])
def test_revisions_accepted(value):
    assert inputs.revision_problem("plan_weights_revision", value) is None


@pytest.mark.parametrize("value", ["DeepSeek-V4-Flash", "deepseek-ai/DeepSeek-V4-Flash/extra",
                                   "https://huggingface.co/deepseek-ai/DeepSeek-V4-Flash", "/models/dsv4",
                                   "deepseek-ai/Deep Seek", "deepseek-ai/..", "org--x/name", "-org/name",
                                   "org/name-", "org/" + "a" * 97])
def test_model_ids_are_org_slash_name(value):
    assert inputs.model_problem("plan_model", value) is not None


@pytest.mark.parametrize("value", sorted(P.CHECKPOINTS) + ["Qwen/Qwen3-0.6B", "a/b", "nvidia/DeepSeek-V4-Flash-NVFP4"])
def test_model_ids_accepted(value):
    assert inputs.model_problem("plan_model", value) is None


@pytest.mark.parametrize("value", ["vllm/vLLM-openai:v1", "vllm/vllm-openai:", "vllm/vllm-openai:tag with space",
                                   "vllm//vllm-openai:v1", "docker.io/vllm/vllm-openai:v1;rm", "-vllm/x:v1",
                                   "vllm/vllm-openai:v1:v2", "https://ghcr.io/x/y:v1", "x:" + "a" * 129])
def test_image_references_follow_docker_grammar(value):
    assert inputs.image_problem("plan_image", value) is not None


@pytest.mark.parametrize("value", ["vllm/vllm-openai:deepseekv4-cu130", "localhost/deepseek-v4-rehearsal-engine:x-1",
                                   "registry.example.com:5000/team/vllm:v0.20.0", "vllm/vllm-openai",
                                   "vllm/vllm-openai@sha256:" + "0" * 64, "[::1]:5000/x/y:v1",
                                   "nvcr.io/nvidia/vllm:25.10-py3"]
                         + sorted({r["image"] for r in P.RECIPES.values()}))
def test_image_references_accepted(value):
    assert inputs.image_problem("plan_image", value) is None


@pytest.mark.parametrize("value", ["eth0 ", "^docker,lo", "=eth0", "a" * 16, "eth0/1", "eth0:1", ".", "..", "",
                                   "eth0,"])
def test_interface_names_follow_linux_rules(value):
    assert inputs.ifnames_problem("plan_socket_ifname", value) is not None


@pytest.mark.parametrize("value", ["eth0", "ens1f0np0", "bond0.100", "eth0,eth1", "a" * 15])
def test_interface_names_accepted(value):
    assert inputs.ifnames_problem("plan_socket_ifname", value) is None


@pytest.mark.parametrize("value", ["http://10.0.0.1", "10.0.0.1:8000", "node 1", "-node", "999.1.1.1", "a/b",
                                   "node_1..x"])
def test_addresses_are_ip_literals_or_host_names(value):
    assert inputs.address_problem("plan_address", value) is not None


@pytest.mark.parametrize("value", ["10.0.0.1", "::1", "[fd00::1]", "node-1", "node-1.example.com", "h200_node_1"])
def test_addresses_accepted(value):
    assert inputs.address_problem("plan_address", value) is None


def test_host_values_are_checked_per_host():
    hosts = [{"name": "node1", "groups": ["prefill", "decode", "router"], "address": "10.0.0.11\nX=1"}]
    found = named({}, "plan_address", hosts=hosts, fix="remove the control character")
    assert found[0].host == "node1"
    hosts = [dict(ONE_HOST_PD[0], engine_bind_address="0.0.0.0 --x")]
    named({}, "plan_engine_bind_address", hosts=hosts, fix="10.0.0.11 or ::1")


@pytest.mark.parametrize("name,value,fix", [
    ("extra_env", {"NCCL DEBUG": "INFO"}, "letters, digits and '_'"),
    ("extra_env", {"1NCCL": "INFO"}, "letters, digits and '_'"),
    ("extra_env", {"NCCL_DEBUG": ["INFO"]}, "one string value"),
    ("extra_engine_args", [{"--max-num-seqs": 16}], "its own string"),
    ("extra_engine_args", ["--served-model-name", "my model"], "deepseek-v4-flash"),
    ("mooncake_device_name", "mlx5_0;mlx5_1", "comma-separated"),
    ("router_version", "0.1.17 --index-url x", "release version"),
    ("vllm_version", "", "release version"),
    ("prefill_group", "prefill hosts", "the group's"),
    ("lmcache_eviction_policy", "LRU;", "LRU"),
    ("router_host", "localhost:30000", "no scheme, port or path"),
    ("max_model_len", "lots", "384K"),
])
def test_other_syntaxes(name, value, fix):
    named({name: value, "reasoning_modes": ["non_think"]}, "plan_" + name, fix=fix)


@pytest.mark.parametrize("topology,hosts", [("h200_pd", ONE_HOST_PD), ("single_node", SERVING),
                                            ("multi_node_dep", DEP), ("lmcache_tp8", SERVING)])
@pytest.mark.parametrize("recipe", sorted(P.RECIPES))
def test_defaults_and_recipes_pass(topology, hosts, recipe):
    build_plan({"topology": topology, "recipe": recipe, "socket_ifname": "eth0", "weights_revision": "main",
                "mooncake_device_name": "mlx5_0,mlx5_1"}, hosts)


# ------------------------------------------------------------------------------------------------ anything at all
HOSTILE_VALUES = ["", None, 0, -1, 1.5, True, "x\ny", [], {}, [1, "a"], {"a": [1]}, "../..", "a" * 300, [None],
                  {"--x": None}, [[1]], "~", ["--"], ["--x="]]


@pytest.mark.parametrize("topology,hosts", [("h200_pd", ONE_HOST_PD), ("lmcache_tp8", SERVING),
                                            ("multi_node_dep", DEP)])
def test_any_value_of_any_setting_is_planned_or_refused_never_a_crash(topology, hosts):
    """Every setting and host value given each hostile value: a plan or a PlanError, never another exception (a
    traceback instead of the variable and its fix)."""
    for name in sorted(set(P.SETTINGS) | set(P.HOST_SETTINGS) - {"topology"}):
        for value in HOSTILE_VALUES:
            per_host = name in P.HOST_SETTINGS
            settings = {"topology": topology} if per_host else {"topology": topology, name: value}
            given = [dict(h, **{name: value}) for h in hosts] if per_host else hosts
            try:
                build_plan(settings, given)
            except PlanError as err:
                assert all("\n" not in str(p) for p in err.problems), (name, value)


# ------------------------------------------------------------------------------------------------ every setting
WRONG_TYPE = {"int": "many", "str": {"a": 1}, "list": 5, "dict": ["x"], "bool": "maybe"}


def _every_setting_case():
    """For every plan setting: a value of the wrong type, an empty token in a list of tokens, a whole number below
    its minimum and above its maximum (every int setting has a range)."""
    for name, row in sorted(P.SETTINGS.items()):
        if name == "topology" or row["type"] not in WRONG_TYPE:
            continue
        yield name, "wrong type", WRONG_TYPE[row["type"]]
        if row["type"] == "list" and row.get("elements") == "str":
            yield name, "empty token", ["--x", ""]
        if row["type"] == "int":
            yield name, "below its minimum", row["minimum"] - 1
            yield name, "above its maximum", row["maximum"] + 1


EVERY_SETTING = list(_every_setting_case())


def test_every_int_setting_has_a_range():
    assert not [n for n, r in P.SETTINGS.items() if r["type"] == "int" and ("minimum" not in r or "maximum" not in r)]
    assert len(EVERY_SETTING) >= 120


@pytest.mark.parametrize("name,what,value", EVERY_SETTING, ids=["%s-%s" % (n, w) for n, w, _v in EVERY_SETTING])
def test_every_setting_refuses_a_bad_value_naming_itself_with_a_fix(name, what, value):
    """Whatever the topology uses: a value no topology can use is refused with the setting's name and a fix."""
    with pytest.raises(PlanError) as err:
        build_plan({"topology": "h200_pd", name: value}, ONE_HOST_PD)
    mine = [p for p in err.value.problems if p.variable == "plan_" + name]
    assert mine, (what, [str(p) for p in err.value.problems])
    assert all(p.fix for p in mine)
