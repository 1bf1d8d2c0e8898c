# -*- coding: utf-8 -*-
# Copyright: inference.deepseek_v4 maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""gpu_info against the nvidia-smi test double: every fixture host, end to end through the evaluation."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import subprocess
import sys

import pytest

from ansible_collections.inference.deepseek_v4.plugins.module_utils import gpu_inventory as inv
from ansible_collections.inference.deepseek_v4.plugins.modules import gpu_info
from ansible_collections.inference.deepseek_v4.tests.unit.plugins.modules.module_runner import run_main
from ansible_collections.inference.deepseek_v4.tests.unit.plugins.module_utils.test_gpu_inventory import (
    CASES as FIXTURE_CASES,
)

DOUBLES = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "doubles"))
DOUBLE = os.path.join(DOUBLES, "nvidia-smi")
PROFILES = os.path.join(DOUBLES, "nvidia_smi_profiles")
DOUBLED_TOOLS = ("nvidia-smi", "nv-fabricmanager", "nvidia-ctk", "nvidia-container-cli",
                 "nvidia-container-runtime-hook", "docker", "systemctl")

H200 = {"gpu_count": 8, "gpu_names": ["NVIDIA H200"], "min_driver": "580", "min_gpu_memory_mib": 140000,
        "nvswitch": True, "imex": False, "arch": "x86_64", "require_container_runtime": True}


def host_json(profile):
    with open(os.path.join(PROFILES, profile, "host.json")) as handle:
        return json.load(handle)


def make_dev_dir(tmp_path, profile):
    """Device nodes of the fixture host as plain files: NVSwitches and IMEX channels."""
    host = host_json(profile)
    dev = tmp_path / "dev"
    dev.mkdir()
    for num in range(host["nvswitch_devices"]):
        (dev / ("nvidia-nvswitch%d" % num)).write_text(u"")
    if host["nvswitch_devices"]:
        (dev / "nvidia-nvswitchctl").write_text(u"")
    if host["imex_channels"]:
        (dev / "nvidia-caps-imex-channels").mkdir()
        for num in range(host["imex_channels"]):
            (dev / "nvidia-caps-imex-channels" / ("channel%d" % num)).write_text(u"")
    return str(dev)


def collector(profile, tmp_path, **params):
    host = host_json(profile) if profile != "no_driver" else {"fabricmanager": None}

    def run(argv):
        tool = os.path.basename(argv[0])
        env = dict(os.environ, NVIDIA_SMI_DOUBLE_PROFILE=profile, NVIDIA_DOUBLE_TOOL=tool)
        proc = subprocess.Popen([sys.executable, DOUBLE] + list(argv[1:]), env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
        out, err = proc.communicate()
        return proc.returncode, out, err

    def which(name):
        name = os.path.basename(name)
        if name == "nv-fabricmanager" and not host.get("fabricmanager"):
            return None
        return "/usr/bin/" + name if name in DOUBLED_TOOLS else None

    options = {"nvidia_smi": "nvidia-smi", "fabricmanager_service": "nvidia-fabricmanager",
               "dev_dir": make_dev_dir(tmp_path, profile) if profile != "no_driver" else str(tmp_path),
               "proc_dir": str(tmp_path / "proc"), "docker": True,
               "weights_cache_dir": str(tmp_path / "hf"), "weights_repo_id": "deepseek-ai/DeepSeek-V4-Flash"}
    options.update(params)
    return gpu_info.Collector(run, which, options)


# The fixture hosts and what each must be refused for: one table for the evaluation and the module tests.
CASES = FIXTURE_CASES


@pytest.mark.parametrize("profile,req,expected", CASES, ids=[c[0] for c in CASES])
def test_collect_and_evaluate(profile, req, expected, tmp_path, monkeypatch):
    monkeypatch.setattr(gpu_info.platform, "machine", lambda: host_json(profile)["arch"])
    facts = collector(profile, tmp_path).collect()
    assert facts["nvidia_smi"] == "/usr/bin/nvidia-smi"
    problems = inv.evaluate(facts, dict(req, host="node-1"))
    assert set(p.check for p in problems) == expected, [str(p) for p in problems]


def test_h200_facts(tmp_path, monkeypatch):
    monkeypatch.setattr(gpu_info.platform, "machine", lambda: "x86_64")
    facts = collector("h200_hgx8", tmp_path).collect()
    assert facts["gpu_count"] == 8
    assert facts["driver_version"] == "580.95.05" and facts["cuda_version"] == "13.0"
    assert facts["gpus"][7]["name"] == "NVIDIA H200" and facts["gpus"][7]["pci_bus_id"] == "00000000:DB:00.0"
    assert facts["nvswitch"]["present"] is True and len(facts["nvswitch"]["devices"]) == 4
    assert facts["nvswitch"]["nvlink_active"]["0"] == 18
    assert facts["fabricmanager"] == {"installed": True, "state": "active", "active": True,
                                      "unit_file_state": "enabled", "version": "580.95.05"}
    assert facts["container_toolkit"] == {"ctk_version": "1.17.8", "container_cli_version": "1.17.8",
                                          "hook": "/usr/bin/nvidia-container-runtime-hook"}
    assert facts["docker"]["available"] is True and facts["docker"]["nvidia_runtime"] is True
    assert facts["imex"]["channels"] == []
    assert facts["disk"]["checked_path"] == str(tmp_path) and facts["disk"]["free_bytes"] > 0
    assert facts["disk"]["weights_present_bytes"] == 0
    assert facts["architecture"] == "x86_64"


def test_gb200_facts(tmp_path, monkeypatch):
    monkeypatch.setattr(gpu_info.platform, "machine", lambda: "aarch64")
    facts = collector("gb200_4", tmp_path).collect()
    assert facts["gpu_count"] == 4 and facts["architecture"] == "aarch64"
    assert facts["fabricmanager"]["installed"] is False and facts["fabricmanager"]["state"] == "not-found"
    assert facts["imex"]["channels"][0].endswith("nvidia-caps-imex-channels/channel0")
    assert facts["nvswitch"]["present"] is False


def test_host_memory_from_meminfo(tmp_path):
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc" / "meminfo").write_text(u"MemTotal:       2113407120 kB\nMemAvailable:   2000000000 kB\n")
    host = collector("h200_hgx8", tmp_path)
    assert host.collect()["memory"] == {"total_bytes": 2113407120 * 1024, "available_bytes": 2000000000 * 1024}
    (tmp_path / "proc" / "meminfo").unlink()
    assert host.memory() == {"total_bytes": None, "available_bytes": None}


def test_weights_present_bytes(tmp_path, monkeypatch):
    blobs = tmp_path / "hf" / "hub" / "models--deepseek-ai--DeepSeek-V4-Flash" / "blobs"
    blobs.mkdir(parents=True)
    (blobs / "a").write_bytes(b"x" * 1000)
    (blobs / "b").write_bytes(b"y" * 24)
    facts = collector("h200_hgx8", tmp_path).collect()
    assert facts["disk"]["weights_present_bytes"] == 1024
    assert facts["disk"]["checked_path"] == str(tmp_path / "hf")


def test_no_driver_reports_instead_of_failing(tmp_path):
    facts = collector("no_driver", tmp_path).collect()
    assert facts["nvidia_smi"] is None and facts["gpu_count"] == 0 and facts["gpus"] == []
    assert "exited 9" in facts["nvidia_smi_error"]
    checks = set(p.check for p in inv.evaluate(facts, dict(H200, nvswitch=False, require_container_runtime=False)))
    assert checks == {"nvidia_smi", "gpu_count"}


def test_docker_not_queried(tmp_path):
    facts = collector("h200_hgx8", tmp_path, docker=False).collect()
    assert facts["docker"]["available"] is False and facts["docker"]["error"] == "not queried"


def _run_main(args, capsys):
    return run_main(gpu_info.main, args, capsys)


def test_main_without_nvidia_smi(tmp_path, capsys):
    result = _run_main({"nvidia_smi": str(tmp_path / "missing-nvidia-smi"), "docker": False,
                        "dev_dir": str(tmp_path), "proc_dir": str(tmp_path), "_ansible_check_mode": True}, capsys)
    assert result["changed"] is False
    assert result["nvidia_smi"] is None and result["gpu_count"] == 0
    assert result["nvidia_smi_error"] == "nvidia-smi not found"
    assert result["problems"] == []


def test_main_with_double(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("NVIDIA_SMI_DOUBLE_PROFILE", "h200_mig_on")
    result = _run_main({"nvidia_smi": DOUBLE, "docker": False, "dev_dir": str(tmp_path),
                        "proc_dir": str(tmp_path)}, capsys)
    assert result["gpu_count"] == 8 and result["driver_version"] == "580.95.05"
    assert [g["index"] for g in result["gpus"] if g["mig_enabled"]] == [2, 5]


def test_main_evaluates_requirements(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("NVIDIA_SMI_DOUBLE_PROFILE", "h200_driver570_mig_on")
    result = _run_main({"nvidia_smi": DOUBLE, "docker": False, "dev_dir": str(tmp_path), "proc_dir": str(tmp_path),
                        "requirements": {"host": "node-1", "min_driver": "580", "gpu_indices": [0, 1, 2, 3]}}, capsys)
    assert result["changed"] is False and "ansible_facts" not in result
    assert [(p["host"], p["check"]) for p in result["problems"]] == [("node-1", "driver_version"), ("node-1", "mig_mode")]
    assert all(set(p) == {"host", "variable", "check", "found", "needed", "message", "fix"} for p in result["problems"])
