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
    assert inv.transfer_problems(facts, "rdma") == []
    assert inv.transfer_problems(facts, "rdma", ["mlx5_0", "mlx5_1"]) == []
    bad = inv.transfer_problems(facts, "rdma", ["mlx5_5"])
    assert len(bad) == 1 and "mlx5_5" in bad[0]
    down = inv.read_sysfs(os.path.join(SYSFS, "down"))
    problems = inv.transfer_problems({"devices": down, "active_ports": []}, "rdma")
    assert len(problems) == 1
    assert "rdma_mooncake_protocol: tcp" in problems[0] and "mlx5_0/1 DOWN (InfiniBand)" in problems[0]
    assert "no RDMA devices" in inv.transfer_problems({"devices": {}, "active_ports": []}, "rdma")[0]
    assert inv.transfer_problems({"devices": down, "active_ports": []}, "tcp") == []


def test_transfer_problems_names_the_variable_to_change():
    down = inv.read_sysfs(os.path.join(SYSFS, "down"))
    nixl = inv.transfer_problems({"devices": down, "active_ports": []}, "rdma", variable="rdma_required")
    assert "set rdma_required: false" in nixl[0]
