# -*- coding: utf-8 -*-
# Copyright: inference.deepseek_v4 maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Parsing of recorded nvidia-smi layouts and the preflight evaluation for every fixture host."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os

import pytest

from ansible_collections.inference.deepseek_v4.plugins.module_utils import gpu_inventory as inv
from ansible_collections.inference.deepseek_v4.plugins.module_utils._plan import build_plan
from ansible_collections.inference.deepseek_v4.plugins.module_utils._problem import summary

PROFILES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "doubles", "nvidia_smi_profiles")

H200 = {"gpu_count": 8, "gpu_names": ["NVIDIA H200"], "min_driver": "580", "min_gpu_memory_mib": 140000,
        "min_compute_capability": "9.0", "nvswitch": True, "imex": False, "arch": "x86_64",
        "require_container_runtime": True, "require_mig_disabled": True}
B200 = dict(H200, gpu_names=["NVIDIA B200"], min_gpu_memory_mib=180000, min_compute_capability="10.0")
GB200 = dict(H200, gpu_count=4, gpu_names=["NVIDIA GB200"], min_gpu_memory_mib=185000, min_compute_capability="10.0",
             nvswitch=False, imex=True, arch="aarch64")


def read(profile, name):
    with open(os.path.join(PROFILES, profile, name)) as handle:
        return handle.read()


def facts_from_fixture(profile):
    """What gpu_info returns on the fixture host, built from the recorded outputs and host.json."""
    host = json.loads(read(profile, "host.json"))
    banner = inv.parse_banner(read(profile, "banner.txt"))
    xml = inv.parse_smi_xml(read(profile, "q.xml"))
    gpus = inv.merge_gpus(inv.parse_query_csv(read(profile, "query.csv")), xml["gpus"])
    fm = host.get("fabricmanager")
    return {
        "nvidia_smi": "/usr/bin/nvidia-smi",
        "gpu_count": len(gpus),
        "gpus": gpus,
        "driver_version": banner["driver_version"],
        "cuda_version": banner["cuda_version"],
        "nvswitch": {"present": host["nvswitch_devices"] > 0},
        "fabricmanager": {"installed": bool(fm), "state": fm["state"] if fm else None,
                          "active": bool(fm) and fm["state"] == "active", "version": fm["version"] if fm else None},
        "imex": {"channels": ["/dev/nvidia-caps-imex-channels/channel%d" % i for i in range(host["imex_channels"])]},
        "container_toolkit": {"ctk_version": host["toolkit"]["ctk_version"],
                              "container_cli_version": host["toolkit"]["container_cli_version"],
                              "hook": "/usr/bin/nvidia-container-runtime-hook"},
        "docker": {"available": True, "nvidia_runtime": "nvidia" in host["docker"]["runtimes"]},
        "architecture": host["arch"],
        "disk": {"path": "/root/.cache/huggingface", "checked_path": "/root", "free_bytes": 900 * 10 ** 9},
    }


CASES = [
    ("h200_hgx8", H200, set()),
    # The same healthy node with a NIC missing (tests/doubles/make_rdma_topology.py): the GPU checks pass; the rdma
    # role's NIC affinity check refuses it (tests/unit/plugins/module_utils/test_rdma_topology.py).
    ("h200_hgx8_nic_missing", H200, set()),
    ("b200_8", B200, set()),
    ("gb200_4", GB200, set()),
    ("h100_1", H200, {"gpu_count", "gpu_model", "gpu_memory", "fabricmanager"}),
    ("h200_7gpus", H200, {"gpu_count"}),
    ("h200_driver570", H200, {"driver_version"}),
    ("h200_mig_on", H200, {"mig_mode"}),
    ("h200_driver570_mig_on", H200, {"driver_version", "mig_mode"}),
    ("h200_fm_stopped", H200, {"fabricmanager"}),
    ("h200_fm_mismatch", H200, {"fabricmanager", "fabricmanager_version"}),
    ("gb200_no_imex", GB200, {"imex_channels"}),
]


@pytest.mark.parametrize("profile,req,expected", CASES, ids=[c[0] for c in CASES])
def test_evaluate_fixture_hosts(profile, req, expected):
    problems = inv.evaluate(facts_from_fixture(profile), dict(req, host=profile))
    assert set(p.check for p in problems) == expected
    for problem in problems:
        assert problem.host == profile and problem.variable is None
        for key in ("found", "needed", "message", "fix"):
            assert getattr(problem, key), (problem.check, key)
        assert set(problem.as_dict()) == {"host", "variable", "check", "found", "needed", "message", "fix"}


def test_every_profile_is_covered():
    assert sorted(os.listdir(PROFILES)) == sorted(c[0] for c in CASES)


def test_failure_details_name_the_problem():
    failures = {p.check: p.as_dict() for p in inv.evaluate(facts_from_fixture("h200_driver570_mig_on"), H200)}
    assert failures["driver_version"]["found"] == "570.172.08"
    assert "580" in failures["driver_version"]["needed"]
    assert "GPU 0" in failures["mig_mode"]["found"]
    assert "-mig 0" in failures["mig_mode"]["fix"]
    mismatch = {p.check: p.as_dict() for p in inv.evaluate(facts_from_fixture("h200_fm_mismatch"), H200)}
    assert mismatch["fabricmanager_version"]["found"] == "580.82.07"
    assert mismatch["fabricmanager_version"]["needed"].startswith("580.95.05")
    mig = {p.check: p.as_dict() for p in inv.evaluate(facts_from_fixture("h200_mig_on"), H200)}
    assert mig["mig_mode"]["found"] == "MIG enabled on GPU 2,5"
    lines = [str(p) for p in inv.evaluate(facts_from_fixture("h100_1"), dict(H200, host="node-9"))]
    assert all(line.startswith("host node-9: ") for line in lines)
    text = summary(inv.evaluate(facts_from_fixture("h200_driver570"), dict(H200, host="node-9")),
                   what="GPU preflight failed on node-9", consequence="fix them before serving")
    assert text.splitlines()[0] == "GPU preflight failed on node-9 (1 problem); fix them before serving:"
    assert "driver_version: found 570.172.08; needed >= 580" in text and "Fix: install NVIDIA driver" in text


def test_query_csv_parsing():
    gpus = inv.parse_query_csv(read("h200_hgx8", "query.csv"))
    assert len(gpus) == 8
    first = gpus[0]
    assert first["index"] == 0 and first["name"] == "NVIDIA H200"
    assert first["memory_total_mib"] == 143771 and first["compute_cap"] == "9.0"
    assert first["driver_version"] == "580.95.05"
    assert first["mig_enabled"] is False and first["persistence_mode"] is True
    assert first["uuid"].startswith("GPU-")
    gpus = inv.parse_query_csv(read("h200_mig_on", "query.csv"))
    assert [g["index"] for g in gpus if g["mig_enabled"]] == [2, 5]


def test_query_csv_not_supported_values():
    line = "0, NVIDIA H100 PCIe, GPU-1, 81559, 9.0, 580.95.05, [N/A], Disabled\n"
    gpu = inv.parse_query_csv(line)[0]
    assert gpu["mig_mode"] is None and gpu["mig_enabled"] is False and gpu["persistence_mode"] is False
    with pytest.raises(ValueError):
        inv.parse_query_csv("0, NVIDIA H100\n")


def test_banner_parsing():
    assert inv.parse_banner(read("h200_hgx8", "banner.txt")) == {
        "smi_version": "580.95.05", "driver_version": "580.95.05", "cuda_version": "13.0"}
    assert inv.parse_banner(read("h200_driver570", "banner.txt"))["cuda_version"] == "12.8"
    assert inv.parse_banner("garbage") == {"smi_version": None, "driver_version": None, "cuda_version": None}


def test_xml_parsing():
    xml = inv.parse_smi_xml(read("gb200_4", "q.xml"))
    assert xml["driver_version"] == "580.95.05" and xml["cuda_version"] == "13.0"
    assert xml["attached_gpus"] == 4 and len(xml["gpus"]) == 4
    gpu = xml["gpus"][3]
    assert gpu["name"] == "NVIDIA GB200" and gpu["architecture"] == "Blackwell"
    assert gpu["memory_total_mib"] == 189471 and gpu["pci_bus_id"] == "00000019:01:00.0"
    assert gpu["fabric_state"] == "Completed"
    stopped = inv.parse_smi_xml(read("h200_fm_stopped", "q.xml"))
    assert stopped["gpus"][0]["fabric_state"] == "Not Started"
    assert inv.parse_smi_xml(read("h100_1", "q.xml"))["gpus"][0]["fabric_state"] is None


def test_merge_prefers_query_and_adds_xml_details():
    merged = inv.merge_gpus(inv.parse_query_csv(read("b200_8", "query.csv")),
                            inv.parse_smi_xml(read("b200_8", "q.xml"))["gpus"])
    assert merged[5]["compute_cap"] == "10.0" and merged[5]["architecture"] == "Blackwell"
    assert inv.merge_gpus([], inv.parse_smi_xml(read("b200_8", "q.xml"))["gpus"])[0]["name"] == "NVIDIA B200"


def test_nvlink_parsing():
    links = inv.parse_nvlink_status(read("h200_hgx8", "nvlink-status.txt"))
    assert sorted(links) == list(range(8)) and links[0] == {"active": 18, "inactive": 0}
    assert inv.parse_nvlink_status(read("h100_1", "nvlink-status.txt"))[0] == {"active": 0, "inactive": 18}


def test_companion_tool_parsers():
    assert inv.parse_fabricmanager_version("Fabric Manager version is : 580.95.05\n") == "580.95.05"
    assert inv.parse_fabricmanager_version("nothing") is None
    assert inv.parse_dpkg_fabricmanager("nvidia-fabricmanager-580 580.95.05-0ubuntu1\n") == "580.95.05"
    assert inv.parse_dpkg_fabricmanager("nvidia-fabricmanager 580.95.05-1\n") == "580.95.05"
    assert inv.parse_ctk_version("NVIDIA Container Toolkit CLI version 1.17.8\ncommit: abc\n") == "1.17.8"
    assert inv.parse_container_cli_version("cli-version: 1.17.8\nlib-version: 1.17.8\n") == "1.17.8"
    info = inv.parse_docker_info(json.dumps({
        "ServerVersion": "28.3.3", "Runtimes": {"runc": {}, "nvidia": {}}, "DefaultRuntime": "runc",
        "CDISpecDirs": ["/etc/cdi"], "DiscoveredDevices": [{"Source": "cdi", "ID": "nvidia.com/gpu=all"}],
        "Architecture": "arm64"}))
    assert info["nvidia_runtime"] is True and info["cdi_devices"] == ["nvidia.com/gpu=all"]
    assert info["architecture"] == "aarch64"


@pytest.mark.parametrize("found,needed,ok", [
    ("580.95.05", "580", True), ("580.65.06", "580.65.06", True), ("570.172.08", "580", False),
    ("590.1", "580.95.05", True), (None, "580", False), ("10.0", "9.0", True), ("8.9", "9.0", False),
])
def test_version_at_least(found, needed, ok):
    assert inv.version_at_least(found, needed) is ok


def test_normalize_arch():
    assert inv.normalize_arch("arm64") == "aarch64"
    assert inv.normalize_arch("linux/amd64") == "x86_64"
    assert inv.normalize_arch(None) is None


def test_no_nvidia_smi_is_reported_not_crashing():
    facts = {"nvidia_smi": None, "nvidia_smi_error": "nvidia-smi not found", "gpus": [], "gpu_count": 0,
             "driver_version": None, "architecture": "x86_64"}
    checks = set(p.check for p in inv.evaluate(facts, dict(H200, require_container_runtime=False, nvswitch=False)))
    assert checks == {"nvidia_smi", "gpu_count"}


def test_arch_disk_runtime_indices_and_cuda():
    facts = facts_from_fixture("gb200_4")
    req = dict(GB200, arch="x86_64", disk_required_bytes=10 ** 12, gpu_indices=[0, 1, 2, 3, 4], min_cuda="13.0")
    facts["docker"] = {"available": True, "nvidia_runtime": False}
    facts["container_toolkit"] = {"ctk_version": None, "container_cli_version": None, "hook": None}
    checks = {p.check: p for p in inv.evaluate(facts, req)}
    assert set(checks) == {"architecture", "disk_space", "gpu_count", "container_runtime"}
    assert "indices 0,1,2,3,4" in checks["gpu_count"].needed
    assert "900.0 GB" in checks["disk_space"].found
    facts["docker"] = {"available": False, "error": "Cannot connect to the Docker daemon"}
    assert "Cannot connect" in {p.check: p for p in inv.evaluate(facts, req)}["container_runtime"].found


def test_nvswitch_detection_drives_fabricmanager_when_profile_is_silent():
    facts = facts_from_fixture("h200_fm_stopped")
    checks = set(p.check for p in inv.evaluate(facts, dict(H200, nvswitch=None)))
    assert checks == {"fabricmanager"}
    facts["nvswitch"] = {"present": False}
    assert inv.evaluate(facts, dict(H200, nvswitch=None)) == []
    assert inv.evaluate(facts_from_fixture("h200_fm_mismatch"),
                        dict(H200, require_fabricmanager=False)) == []


def test_disk_need_counts_weights_already_cached():
    facts = facts_from_fixture("h200_hgx8")
    facts["disk"] = {"path": "/data/hf", "checked_path": "/data", "free_bytes": 50 * 10 ** 9,
                     "weights_present_bytes": 150 * 10 ** 9}
    req = dict(H200, weights_size_bytes=160 * 10 ** 9, disk_headroom_bytes=10 * 10 ** 9)
    assert inv.evaluate(facts, req) == []
    facts["disk"]["weights_present_bytes"] = 0
    failure = inv.evaluate(facts, req)[0]
    assert failure.check == "disk_space" and "170.0 GB" in failure.needed and "50.0 GB" in failure.found
    facts["disk"]["weights_present_bytes"] = 160 * 10 ** 9
    facts["disk"]["free_bytes"] = 0
    assert inv.evaluate(facts, req) == []


# /proc/meminfo of a host with 128 GiB (the layout the kernel prints; values in kB).
MEMINFO_128G = """MemTotal:       134217728 kB
MemFree:        120000000 kB
MemAvailable:   125829120 kB
Buffers:           204800 kB
HugePages_Total:        0
Hugepagesize:       2048 kB
"""


def lmcache_need(**settings):
    """hosts[host].host_memory of the lmcache_tp8 plan, as gpu_preflight passes it in the requirements."""
    plan = build_plan(dict({"topology": "lmcache_tp8"}, **settings),
                      [{"name": "node1", "groups": ["serving"], "address": "10.0.0.11"}])
    return plan["hosts"]["node1"]["host_memory"]


def test_meminfo_is_read_in_bytes():
    assert inv.parse_meminfo(MEMINFO_128G) == {"total_bytes": 128 * 2 ** 30, "available_bytes": 120 * 2 ** 30}
    assert inv.parse_meminfo("") == {"total_bytes": None, "available_bytes": None}


def test_host_memory_holds_the_lmcache_l1_caches_and_the_headroom():
    facts = dict(facts_from_fixture("h200_hgx8"), memory=inv.parse_meminfo(MEMINFO_128G))
    # 100 GB of L1 (the LMCache page) + 32 GB headroom = 132 GiB > 128 GiB.
    failure, = inv.evaluate(facts, dict(H200, host="node1", host_memory=lmcache_need()))
    assert failure.check == "host_memory" and failure.host == "node1"
    assert failure.variable == "plan_lmcache_l1_size_gb" and failure.found == "MemTotal 128.0 GiB"
    assert "132.0 GiB" in failure.needed and "plan_lmcache_memory_headroom_gb" in failure.needed
    assert "plan_lmcache_l1_size_gb (at most 96 GB per server" in failure.fix
    assert "plan_lmcache_memory_headroom_gb" in failure.fix and failure.message == inv.MESSAGES["host_memory"]
    assert inv.evaluate(facts, dict(H200, host_memory=lmcache_need(lmcache_memory_headroom_gb=28))) == []
    # Two servers on the host: each may hold half of what is left after the headroom.
    two = inv.check_host_memory(facts, dict(host_memory=lmcache_need(replicas_per_host=2, lmcache_l1_size_gb=60)))
    assert "2 server(s)" in two[0].needed and "at most 48 GB per server" in two[0].fix


def test_host_memory_unread_fails_and_no_lmcache_asks_nothing():
    facts = dict(facts_from_fixture("h200_hgx8"), memory={"total_bytes": None, "available_bytes": None})
    failure, = inv.check_host_memory(facts, {"host_memory": lmcache_need()})
    assert failure.found == "MemTotal unknown" and "at most" not in failure.fix
    assert inv.check_host_memory(facts, {"host_memory": None}) == []
    assert inv.evaluate(facts, H200) == []
