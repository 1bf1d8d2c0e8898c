# -*- coding: utf-8 -*-
# Copyright: inference.deepseek_v4 maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""RDMA helpers against the recorded sysfs trees and ibv_devinfo output."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible_collections.inference.deepseek_v4.plugins.module_utils import rdma_inventory as inv

SYSFS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "doubles", "rdma_sysfs")


def read(case, name):
    with open(os.path.join(SYSFS, case, name)) as handle:
        return handle.read()


def test_sysfs_mixed():
    devices = inv.read_sysfs(os.path.join(SYSFS, "mixed"))
    assert sorted(devices) == ["mlx5_%d" % i for i in range(6)]
    port = devices["mlx5_0"]["ports"]["1"]
    assert port == {"state": "ACTIVE", "phys_state": "LinkUp", "link_layer": "InfiniBand",
                    "rate": "400 Gb/sec (4X NDR)", "rate_gbps": 400, "netdev": None}
    assert devices["mlx5_0"]["hca_type"] == "MT4129"
    roce = devices["mlx5_4"]["ports"]["1"]
    assert roce["link_layer"] == "Ethernet" and roce["netdev"] == "ens5f0np0" and roce["rate_gbps"] == 200
    assert devices["mlx5_5"]["ports"]["1"]["state"] == "DOWN"
    assert inv.active_ports(devices) == ["mlx5_0/1", "mlx5_1/1", "mlx5_2/1", "mlx5_3/1", "mlx5_4/1"]


def test_sysfs_down_and_missing():
    devices = inv.read_sysfs(os.path.join(SYSFS, "down"))
    assert devices["mlx5_0"]["ports"]["1"]["phys_state"] == "Polling"
    assert inv.active_ports(devices) == []
    assert inv.read_sysfs(os.path.join(SYSFS, "no-such-tree")) == {}


def test_state_and_rate_parsers():
    assert inv.parse_state("4: ACTIVE") == "ACTIVE"
    assert inv.parse_state("1: DOWN\n") == "DOWN"
    assert inv.parse_state(None) is None
    assert inv.parse_rate("400 Gb/sec (4X NDR)") == 400
    assert inv.parse_rate("56.25 Gb/sec (4X FDR)") == 56.25
    assert inv.parse_rate("garbage") is None


def test_ibv_devinfo_parsing_and_merge():
    ibv = inv.parse_ibv_devinfo(read("mixed", "ibv_devinfo.txt"))
    assert sorted(ibv) == ["mlx5_%d" % i for i in range(6)]
    assert ibv["mlx5_0"]["fw_ver"] == "28.39.1002"
    assert ibv["mlx5_0"]["ports"]["1"]["state"] == "ACTIVE"
    assert ibv["mlx5_5"]["ports"]["1"]["state"] == "DOWN"
    assert ibv["mlx5_4"]["ports"]["1"]["link_layer"] == "Ethernet"
    merged = inv.merge_ibv(inv.read_sysfs(os.path.join(SYSFS, "mixed")), ibv)
    assert merged["mlx5_0"]["transport"] == "InfiniBand (0)"
    assert merged["mlx5_0"]["ports"]["1"]["active_mtu"] == "4096 (5)"
    only_ibv = inv.merge_ibv({}, ibv)
    assert inv.active_ports(only_ibv)[0] == "mlx5_0/1"


def test_proc_modules_and_limits():
    modules = inv.parse_proc_modules(
        "nvidia_peermem 16384 0 - Live 0x0000000000000000 (OE)\n"
        "mlx5_ib 495616 0 - Live 0x0000000000000000\n"
        "ib_core 466944 8 nvidia_peermem,mlx5_ib, Live 0x0000000000000000\n")
    assert modules == {"nvidia_peermem", "mlx5_ib", "ib_core"}
    limits = ("Limit                     Soft Limit           Hard Limit           Units     \n"
              "Max locked memory         8388608              8388608              bytes     \n")
    assert inv.parse_limits(limits) == {"soft": 8388608, "hard": 8388608, "unit": "bytes", "unlimited": False}
    unlimited = "Max locked memory         unlimited            unlimited            bytes     \n"
    assert inv.parse_limits(unlimited)["unlimited"] is True
    assert inv.parse_limits("")["soft"] is None


def test_transfer_problems():
    mixed = inv.read_sysfs(os.path.join(SYSFS, "mixed"))
    facts = {"devices": mixed, "active_ports": inv.active_ports(mixed)}
    assert inv.transfer_problems(facts, True) == []
    assert inv.transfer_problems(facts, True, ["mlx5_0", "mlx5_1"]) == []
    bad = inv.transfer_problems(facts, True, ["mlx5_5"], host="node-1")
    assert len(bad) == 1 and bad[0].check == "rdma_device" and "mlx5_5" in bad[0].found
    assert bad[0].needed == "an ACTIVE port on mlx5_5" and bad[0].host == "node-1"
    down = inv.read_sysfs(os.path.join(SYSFS, "down"))
    problems = inv.transfer_problems({"devices": down, "active_ports": []}, True, host="node-1",
                                     protocol_variable="plan_mooncake_protocol")
    assert len(problems) == 1
    problem = problems[0].as_dict()
    assert problem["check"] == "rdma_port" and problem["host"] == "node-1" and problem["variable"] is None
    assert "mlx5_0/1 DOWN (InfiniBand)" in problem["found"]
    assert "ACTIVE InfiniBand or RoCE port" in problem["needed"]
    assert "plan_mooncake_protocol: tcp" in problem["fix"] and problem["message"]
    assert "no RDMA devices" in inv.transfer_problems({"devices": {}, "active_ports": []}, True)[0].found
    assert inv.transfer_problems({"devices": down, "active_ports": []}, False) == []


def test_transfer_problems_names_the_variable_to_change_only_when_there_is_one():
    down = inv.read_sysfs(os.path.join(SYSFS, "down"))
    nixl = inv.transfer_problems({"devices": down, "active_ports": []}, True)
    assert "tcp" not in nixl[0].fix and "bring a port up" in nixl[0].fix


def test_peermem_problems():
    loaded = {"kernel_modules": {"nvidia_peermem": True}}
    missing = {"kernel_modules": {"nvidia_peermem": False}}
    assert inv.peermem_problems(loaded, True) == []
    assert inv.peermem_problems(missing, False) == []
    problem = inv.peermem_problems(missing, True, host="node-1")[0]
    assert problem.check == "nvidia_peermem" and problem.host == "node-1"
    assert "Bad address [14]" in problem.needed and "modprobe nvidia_peermem" in problem.fix


SS = (
    "LISTEN 0      4096         0.0.0.0:8998       0.0.0.0:*    users:((\"python3\",pid=811,fd=3))\n"
    "LISTEN 0      4096            [::]:5559          [::]:*    users:((\"sleep\",pid=812,fd=4))\n"
    "LISTEN 0      128     127.0.0.53%lo:53         0.0.0.0:*\n"
    "garbage\n"
)
PROC_TCP = (
    "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
    "   0: 00000000:2326 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1\n"
    "   1: 0100007F:1F40 0100007F:9C40 01 00000000:00000000 00:00000000 00000000     0        0 2 1\n"
)
PORTS = [
    {"service": "deepseek-v4-prefill", "name": "mooncake_bootstrap", "first": 8998, "last": 8998,
     "variable": "plan_prefill_bootstrap_port", "transfer": True},
    {"service": "deepseek-v4-decode", "name": "mooncake_bootstrap", "first": 9889, "last": 9889,
     "variable": "plan_decode_bootstrap_port", "transfer": True},
    {"service": "deepseek-v4-prefill", "name": "nixl_side_channel", "first": 5557, "last": 5560,
     "variable": "plan_prefill_side_channel_port", "transfer": True},
]


def test_listening_socket_parsers():
    listeners = inv.parse_ss_listeners(SS)
    assert [item["port"] for item in listeners] == [8998, 5559, 53]
    assert listeners[0]["process"] == 'users:(("python3",pid=811,fd=3))' and listeners[2]["process"] is None
    assert inv.parse_proc_net_tcp(PROC_TCP) == [{"port": 8998, "address": "0.0.0.0:8998", "process": None}]


def test_port_problems_cover_every_port_of_a_range():
    problems = inv.port_problems(inv.parse_ss_listeners(SS), PORTS, host="node-1")
    assert [p.check for p in problems] == ["transfer_port", "transfer_port"]
    assert problems[0].found.startswith("port 8998 (mooncake_bootstrap of deepseek-v4-prefill) held by ")
    assert "python3" in problems[0].found and "plan_prefill_bootstrap_port" in problems[0].fix
    # 5559 is neither the range's base port nor its last: every port first..last is checked.
    assert problems[1].found.startswith("port 5559 (nixl_side_channel 5557-5560 of deepseek-v4-prefill)")
    assert all(p.needed == "free" and p.host == "node-1" for p in problems)
    assert not any("9889" in p.found for p in problems)


def test_port_problems_leave_out_ports_held_by_the_service_itself():
    problems = inv.port_problems(inv.parse_ss_listeners(SS), PORTS, own_services=["deepseek-v4-prefill"])
    assert problems == []
    assert inv.port_problems([], PORTS) == []
