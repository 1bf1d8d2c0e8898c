# -*- coding: utf-8 -*-
"""multi_node_dep at plan level: nodes and their GPUs, start ranks, the head's address, ports, refusals with fixes."""

from __future__ import annotations

import pytest

from ansible_collections.inference.deepseek_v4.plugins.module_utils._plan import PlanError, build_plan


def nodes(count, **per_host):
    return [dict({"name": "node-%d" % i, "groups": ["serving"], "address": "10.0.3.%d" % i}, **per_host)
            for i in range(1, count + 1)]


def plan(hosts, **settings):
    return build_plan(dict({"topology": "multi_node_dep"}, **settings), hosts)


def problems(hosts, **settings):
    with pytest.raises(PlanError) as err:
        plan(hosts, **settings)
    return err.value.problems


def flag(svc, name):
    argv = svc["argv"]
    return argv[argv.index(name) + 1] if name in argv else None


def by_host(result):
    return {s["host"]: s for s in result["services"]}


@pytest.mark.parametrize("hardware,per_node", [("h200", 8), ("b200", 8), ("b300", 8), ("gb200", 4)])
def test_start_rank_per_node_and_one_pool(hardware, per_node):
    engines = by_host(plan(nodes(3), hardware=hardware))
    assert list(engines) == ["node-1", "node-2", "node-3"]
    for index, (host, svc) in enumerate(engines.items()):
        assert flag(svc, "--data-parallel-size") == str(3 * per_node)
        assert flag(svc, "--data-parallel-size-local") == str(per_node)
        assert flag(svc, "--data-parallel-start-rank") == (str(index * per_node) if index else None), host
        assert svc["gpus"] == list(range(per_node)) and "CUDA_VISIBLE_DEVICES" not in svc["env"]
        assert "--data-parallel-rpc-port" not in svc["argv"], "the recipe writes none"


def test_the_head_is_the_first_host_at_its_plan_address():
    hosts = nodes(2)
    hosts[0]["address"] = "192.168.7.1"  # plan_address of the first host (else its ansible_host)
    engines = by_host(plan(hosts))
    assert {flag(s, "--data-parallel-address") for s in engines.values()} == {"192.168.7.1"}
    swapped = by_host(plan(list(reversed(hosts))))
    assert {flag(s, "--data-parallel-address") for s in swapped.values()} == {"10.0.3.2"}
    assert flag(swapped["node-1"], "--data-parallel-start-rank") == "8"


def test_every_node_serves_its_own_api_and_no_router():
    result = plan(nodes(2))
    assert [s["kind"] for s in result["services"]] == ["engine", "engine"]
    for host, entry in result["hosts"].items():
        assert [(p["name"], p["first"], p["last"], p["variable"], p["transfer"]) for p in entry["ports"]] == [
            ("api", 8000, 8000, "plan_engine_port", False)], host
    # Every node serves clients: its API listens on its own address (--host), where the endpoint is reached.
    assert result["endpoint"] == {"host": "node-1", "service": "deepseek-v4-engine", "url": "http://10.0.3.1:8000",
                                  "policy": "fail", "fallbacks": [], "tries": 1, "standby": None}
    assert {s["host"]: flag(s, "--host") for s in result["services"]} == {"node-1": "10.0.3.1", "node-2": "10.0.3.2"}
    assert result["transfer"]["hosts"] == [] and result["kv_connector"] is None


def test_engine_port_moves_every_node():
    result = plan(nodes(2), engine_port=8100)
    assert all(flag(s, "--port") == "8100" and s["ports"] == {"api": 8100} for s in result["services"])
    assert result["endpoint"]["url"] == "http://10.0.3.1:8100"


def test_socket_interface_reaches_every_node_and_is_unset_by_default():
    assert all("GLOO_SOCKET_IFNAME" not in s["env"] for s in plan(nodes(2))["services"])
    for svc in plan(nodes(2), socket_ifname="ib0")["services"]:
        assert svc["env"]["GLOO_SOCKET_IFNAME"] == svc["env"]["NCCL_SOCKET_IFNAME"] == "ib0"


def test_one_node_is_refused_with_the_fix():
    found = problems(nodes(1))
    (p,) = [x for x in found if x.variable == "groups['serving']"]
    assert p.found == ["node-1"] and "at least 2 hosts" in p.message
    assert "add 2 or more hosts to group 'serving'" in p.fix and "plan_topology: single_node" in p.fix
    renamed = problems([dict(nodes(1)[0], groups=["dep"])], serving_group="dep")
    assert any(x.variable == "groups['dep']" for x in renamed)


def test_a_node_with_too_few_gpus_is_refused_naming_the_variable_and_fix():
    hosts = nodes(2)
    hosts[1]["gpu_count"] = 4
    found = problems(hosts)
    (p,) = [x for x in found if x.host == "node-2"]
    assert p.variable == "plan_engine_gpus" and p.found == list(range(8))
    assert "outside 0..3" in p.message and "plan_gpu_count" in p.fix


def test_gpus_per_node_follow_plan_engine_gpus():
    engines = by_host(plan(nodes(2, engine_gpus=[0, 1, 2, 3])))
    assert flag(engines["node-1"], "--data-parallel-size") == "8"
    assert flag(engines["node-2"], "--data-parallel-size-local") == "4"
    assert flag(engines["node-2"], "--data-parallel-start-rank") == "4"
    assert engines["node-2"]["env"]["CUDA_VISIBLE_DEVICES"] == "0,1,2,3"


def test_a_managed_dp_flag_changed_against_the_gpus_is_refused():
    found = problems(nodes(2), engine_flag_overrides={"--data-parallel-size-local": 4})
    assert any(p.variable == "plan_engine_gpus" and "data-parallel(local) 4" in p.message for p in found)


def test_gb200_trays_mount_the_imex_channels():
    imex, rdma = "/dev/nvidia-caps-imex-channels:/dev/nvidia-caps-imex-channels", "/dev/infiniband:/dev/infiniband"
    for svc in plan(nodes(2), hardware="gb200")["services"]:
        assert svc["container"]["devices"] == [imex, rdma]
    # The engines span nodes: the RDMA devices (plan_engine_privileges: rdma_devices, the default), no IMEX on H200.
    assert all(s["container"]["devices"] == [rdma] for s in plan(nodes(2))["services"])
