"""Outcomes of the gpu_preflight scenario: the reports on the controller and an untouched instance."""

import json
import os

import pytest

EPHEMERAL = os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "")
HOST = "h200-node-1"


def report(kind):
    path = os.path.join(EPHEMERAL, kind, HOST + ".json")
    with open(path) as handle:
        return path, json.load(handle)


def test_report_of_the_healthy_host():
    path, data = report("reports")
    assert oct(os.stat(path).st_mode & 0o777) == "0o644"
    assert data["host"] == HOST
    assert data["status"] == "pass" and data["problems"] == []
    found = data["found"]
    assert found["gpu_count"] == 8
    assert set(g["name"] for g in found["gpus"]) == {"NVIDIA H200"}
    assert found["driver_version"] == "580.95.05" and found["cuda_version"] == "13.0"
    assert found["nvswitch"] is True
    assert found["fabricmanager"]["active"] is True and found["fabricmanager"]["version"] == "580.95.05"
    assert found["container_toolkit"]["ctk_version"] == "1.17.8"
    assert found["docker"]["available"] is True and "nvidia" in found["docker"]["runtimes"]
    assert found["architecture"] == "x86_64"
    # ~/ of the plan's cache directory: the home of the user that runs the containers, resolved on the host.
    assert found["weights_cache_dir"] == "/root/.cache/huggingface"
    req = data["requirements"]
    assert req["gpu_indices"] == list(range(8))
    assert req["gpu_names"] == ["NVIDIA H200"] and req["min_driver"] == "580"
    assert req["nvswitch"] is True and req["imex"] is False


def test_report_of_the_failing_host_lists_every_problem():
    _path, data = report("reports-failing")
    assert data["status"] == "fail"
    checks = set(p["check"] for p in data["problems"])
    assert {"driver_version", "mig_mode", "fabricmanager"} <= checks
    for problem in data["problems"]:
        assert set(problem) == {"host", "variable", "check", "found", "needed", "message", "fix"}
        assert problem["host"] == HOST
        assert problem["found"] and problem["needed"] and problem["message"] and problem["fix"]
    # The given gpu_preflight_home_dir stands for ~/.
    assert data["found"]["weights_cache_dir"] == "/srv/preflight-home/.cache/huggingface"


def test_check_mode_wrote_no_report():
    assert not os.path.exists(os.path.join(EPHEMERAL, "reports-check", HOST + ".json"))


@pytest.mark.parametrize("path", ["/usr/local/bin/nvidia-smi", "/usr/local/bin/nv-fabricmanager"])
def test_doubles_in_place(host, path):
    assert host.file(path).mode == 0o755


def test_double_restored_and_fabric_manager_running(host):
    assert host.file("/etc/nvidia-smi-double/profile").content_string.strip() == "h200_hgx8"
    assert host.service("nvidia-fabricmanager").is_running
    assert "CUDA Version: 13.0" in host.check_output("nvidia-smi")
