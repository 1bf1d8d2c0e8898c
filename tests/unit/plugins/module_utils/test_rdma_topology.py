# -*- coding: utf-8 -*-
# Copyright: inference.deepseek_v4 maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""GPU -> nearest RDMA NIC on the recorded layouts (tests/doubles/make_rdma_topology.py): an HGX H200 with one NIC per
two GPUs, the same node with a NIC missing, a GB200 tray; and the topo/sysfs parsers on real output shapes."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

import pytest

from ansible_collections.inference.deepseek_v4.plugins.module_utils import rdma_topology as topo

DOUBLES = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "doubles"))


def _layouts():
    """tests/doubles/make_rdma_topology.py, which makes the recorded sysfs trees (PCI addresses hold colons)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("make_rdma_topology", os.path.join(DOUBLES, "make_rdma_topology.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


LAYOUTS = _layouts()


def read(*parts):
    with open(os.path.join(DOUBLES, *parts)) as handle:
        return handle.read()


def bus_ids(profile):
    """The GPUs' bus ids as nvidia-smi prints them (8-digit domain), from the profile's recorded -q -x report."""
    import re
    ids = re.findall(r"<pci_bus_id>([^<]*)</pci_bus_id>", read("nvidia_smi_profiles", profile, "q.xml"))
    return topo.parse_gpu_bus_ids("\n".join("%d, %s" % (i, b) for i, b in enumerate(ids)))


def layout(profile, case, with_topo=True, usable=None):
    root = LAYOUTS.sysfs(case)
    matrix = topo.parse_topo(read("nvidia_smi_profiles", profile, "topo.txt")) if with_topo else {}
    return topo.derive(topo.read_gpu_pci(bus_ids(profile), root), matrix, topo.read_nic_pci(root), usable=usable)


def picks(entries):
    return [(e["gpu"], e["nic"], e["link"]) for e in entries]


def test_hgx_h200_one_nic_per_two_gpus():
    entries = layout("h200_hgx8", "mixed")
    assert picks(entries) == [(0, "mlx5_0", "PXB"), (1, "mlx5_0", "PXB"), (2, "mlx5_1", "PXB"), (3, "mlx5_1", "PXB"),
                              (4, "mlx5_2", "PXB"), (5, "mlx5_2", "PXB"), (6, "mlx5_3", "PXB"), (7, "mlx5_3", "PXB")]
    assert all(e["source"] == "nvidia-smi topo -m" and e["numa_local"] for e in entries)
    first = ["0000:18:00.0=0000:1a:00.0", "0000:2a:00.0=0000:1a:00.0", "0000:3a:00.0=0000:3c:00.0"]
    assert topo.mapping(entries).split(",")[:3] == first
    assert topo.affinity_problems(entries, rule="pcie") == []


def test_the_pci_paths_alone_give_the_same_map():
    assert picks(layout("h200_hgx8", "mixed", with_topo=False)) == picks(layout("h200_hgx8", "mixed"))
    assert all(e["source"] == "sysfs" for e in layout("h200_hgx8", "mixed", with_topo=False))
    assert (picks(layout("h200_hgx8_nic_missing", "h200_hgx8_nic_missing", with_topo=False))
            == picks(layout("h200_hgx8_nic_missing", "h200_hgx8_nic_missing")))


def test_a_node_missing_a_nic_refuses_its_two_gpus():
    entries = layout("h200_hgx8_nic_missing", "h200_hgx8_nic_missing")
    assert picks(entries)[:6] == [(0, "mlx5_0", "PXB"), (1, "mlx5_0", "PXB"), (2, "mlx5_1", "PXB"),
                                  (3, "mlx5_1", "PXB"), (4, "mlx5_2", "PXB"), (5, "mlx5_2", "PXB")]
    assert [e["link"] for e in entries[6:]] == ["SYS", "SYS"]
    problems = [p.as_dict() for p in topo.affinity_problems(entries, rule="pcie", host="gpu-7")]
    assert [p["check"] for p in problems] == ["nic_affinity", "nic_affinity"]
    assert problems[0]["host"] == "gpu-7" and problems[0]["found"].startswith("GPU6 (0000:ba:00.0): nearest RDMA NIC")
    assert "SYS" in problems[0]["found"] and "GPU6" in problems[0]["fix"] and "PXB" in problems[0]["needed"]
    # Ranks only on GPU0-5 (the plan's gpus) are fine.
    assert topo.affinity_problems(entries, gpus=[0, 1, 2, 3, 4, 5], rule="pcie") == []


def test_a_nic_that_is_down_does_not_count():
    usable = {"mlx5_0", "mlx5_1", "mlx5_2", "mlx5_4"}  # mlx5_3 (GPU6/7's) down
    entries = layout("h200_hgx8", "mixed", usable=usable)
    assert [e["nic"] for e in entries[6:]] == ["mlx5_2", "mlx5_2"] and entries[6]["link"] == "NODE"
    problems = topo.affinity_problems(entries, rule="pcie", unusable=["mlx5_3", "mlx5_5"])
    assert len(problems) == 2 and "not ACTIVE, so not counted: mlx5_3, mlx5_5" in problems[0].found


def test_gb200_tray_pins_by_numa_node():
    entries = layout("gb200_4", "gb200_4")
    # nvidia-smi says SYS for every GPU/NIC pair (NVLink-C2C GPUs): the NUMA node places each rank, one NIC each.
    assert picks(entries) == [(0, "mlx5_0", "SYS"), (1, "mlx5_1", "SYS"), (2, "mlx5_2", "SYS"), (3, "mlx5_3", "SYS")]
    assert all(e["numa_local"] for e in entries)
    assert topo.mapping(entries) == ("0008:01:00.0=0000:03:00.0,0009:01:00.0=0002:03:00.0,"
                                     "0018:01:00.0=0010:03:00.0,0019:01:00.0=0012:03:00.0")
    assert topo.affinity_problems(entries, rule="numa") == []
    # The HGX rule would refuse the tray: the rule is the hardware's.
    assert len(topo.affinity_problems(entries, rule="pcie")) == 4


def test_the_rehearsal_doubles_give_every_rank_a_nic():
    """The rehearsal nodes read the "mixed" sysfs tree with either nvidia-smi profile."""
    assert topo.affinity_problems(layout("h200_hgx8", "mixed"), rule="pcie") == []
    gb = layout("gb200_4", "mixed", usable={"mlx5_0", "mlx5_1", "mlx5_2", "mlx5_3", "mlx5_4"})
    assert [e["nic"] for e in gb] == ["mlx5_0", "mlx5_1", "mlx5_2", "mlx5_3"]
    assert topo.affinity_problems(gb, rule="numa") == []


def test_no_nic_at_all():
    entries = topo.derive({0: {"bdf": "0000:18:00.0", "path": None, "numa": 0}}, {}, {})
    assert entries[0]["nic"] is None
    problems = topo.affinity_problems(entries)
    assert len(problems) == 1 and "no RDMA NIC at all" in problems[0].found


def test_a_nic_without_pci_address_is_reported():
    matrix = topo.parse_topo(read("nvidia_smi_profiles", "h200_hgx8", "topo.txt"))
    entries = topo.derive({0: {"bdf": "0000:18:00.0", "path": None, "numa": None}}, matrix, {})
    assert entries[0]["nic"] == "mlx5_0" and entries[0]["nic_bus_id"] is None
    assert topo.mapping(entries) == ""
    assert "no PCI address" in topo.affinity_problems(entries)[0].found


SPACED = """        GPU0    GPU1    mlx5_0  mlx5_1  CPU Affinity    NUMA Affinity
GPU0     X      NV12    PIX     SYS     0-23,48-71      0
GPU1    NV12     X      SYS     PXB     24-47   1
mlx5_0  PIX     SYS      X      SYS
mlx5_1  SYS     PXB     SYS      X
"""


def test_parse_topo_of_an_older_driver_with_spaces_and_device_columns():
    matrix = topo.parse_topo(SPACED)
    assert matrix["nics"] == ["mlx5_0", "mlx5_1"]
    assert matrix["gpus"][0] == {"links": {"mlx5_0": "PIX", "mlx5_1": "SYS"}, "cpus": "0-23,48-71", "numa": [0]}
    assert matrix["gpus"][1]["links"] == {"mlx5_0": "SYS", "mlx5_1": "PXB"} and matrix["gpus"][1]["numa"] == [1]


def test_parse_topo_of_gb200():
    matrix = topo.parse_topo(read("nvidia_smi_profiles", "gb200_4", "topo.txt"))
    assert matrix["nics"] == ["mlx5_0", "mlx5_1", "mlx5_2", "mlx5_3"]
    assert matrix["gpus"][2]["numa"] == [1] + list(range(19, 26)) + list(range(27, 34))
    assert matrix["gpus"][0]["cpus"] == "0-71" and set(matrix["gpus"][0]["links"].values()) == {"SYS"}


@pytest.mark.parametrize("text, expected", [
    ("00000000:18:00.0", "0000:18:00.0"), ("0000:1A:00.0", "0000:1a:00.0"), ("18:00.0", "0000:18:00.0"),
    ("00000009:01:00.0", "0009:01:00.0"), ("mlx5_0", None), ("", None), (None, None),
])
def test_normalize_bdf(text, expected):
    assert topo.normalize_bdf(text) == expected


def test_parsers_take_garbage():
    assert topo.parse_topo("") == {"gpus": {}, "nics": []}
    assert topo.parse_topo("No devices were found") == {"gpus": {}, "nics": []}
    assert topo.parse_gpu_bus_ids("index, pci.bus_id\nfoo\n0, 00000000:18:00.0\n") == {0: "0000:18:00.0"}
    assert topo.parse_numa_list("N/A") == set() and topo.parse_numa_list("0,2-3") == {0, 2, 3}
    assert topo.read_nic_pci("/nonexistent") == {}
