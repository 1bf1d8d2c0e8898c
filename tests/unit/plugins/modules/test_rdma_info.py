# -*- coding: utf-8 -*-
# Copyright: inference.deepseek_v4 maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""rdma_info against the recorded sysfs trees, the ibv_devinfo double and recorded listening sockets."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import subprocess

import pytest

from ansible_collections.inference.deepseek_v4.plugins.modules import rdma_info

DOUBLES = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "doubles"))
SYSFS = os.path.join(DOUBLES, "rdma_sysfs")


def _layouts():
    """tests/doubles/make_rdma_topology.py, which makes the recorded sysfs trees (PCI addresses hold colons)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("make_rdma_topology", os.path.join(DOUBLES, "make_rdma_topology.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


LAYOUTS = _layouts()


def params(tmp_path, case, **extra):
    (tmp_path / "modules").write_text(u"nvidia_peermem 16384 0 - Live 0x0000000000000000 (OE)\n"
                                      u"ib_core 466944 8 nvidia_peermem, Live 0x0000000000000000\n")
    (tmp_path / "limits").write_text(u"Limit                     Soft Limit           Hard Limit           Units     \n"
                                     u"Max locked memory         unlimited            unlimited            bytes     \n")
    (tmp_path / "infiniband").mkdir(exist_ok=True)
    (tmp_path / "infiniband" / "uverbs0").write_text(u"")
    made = case in ("mixed", "gb200_4", "h200_hgx8_nic_missing")
    result = {"sysfs_root": LAYOUTS.sysfs(case) if made else os.path.join(SYSFS, case), "proc_modules": str(tmp_path / "modules"),
              "proc_limits": str(tmp_path / "limits"), "dev_dir": str(tmp_path),
              "modules": ["nvidia_peermem", "ib_core", "mlx5_ib"], "ibv_devinfo": True}
    result.update(extra)
    return result


SS_OUT = ('LISTEN 0 4096 0.0.0.0:8998 0.0.0.0:* users:(("python3",pid=811,fd=3))\n'
          'LISTEN 0 4096 [::]:5559 [::]:* users:(("sleep",pid=812,fd=4))\n'
          'LISTEN 0 4096 0.0.0.0:22 0.0.0.0:* users:(("sshd",pid=1,fd=3))\n')
PORTS = [
    {"service": "deepseek-v4-prefill", "name": "mooncake_bootstrap", "first": 8998, "last": 8998,
     "variable": "plan_prefill_bootstrap_port", "transfer": True},
    {"service": "deepseek-v4-decode", "name": "nixl_side_channel", "first": 5557, "last": 5560,
     "variable": "plan_decode_side_channel_port", "transfer": True},
]
CHECKS = {"host": "node-1", "require_rdma": True, "device_names": [], "protocol_variable": "plan_mooncake_protocol",
          "require_peermem": True, "ports": PORTS, "own_services": []}


def runner(case):
    def run(argv):
        if os.path.basename(argv[0]) == "ss":
            return 0, SS_OUT, ""
        env = dict(os.environ, IBV_DEVINFO_DOUBLE_CASE=case)
        proc = subprocess.Popen([os.path.join(DOUBLES, "ibv_devinfo")], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, universal_newlines=True)
        out, err = proc.communicate()
        return proc.returncode, out, err
    return run


def test_collect_mixed(tmp_path):
    facts = rdma_info.collect(params(tmp_path, "mixed"), run=runner("mixed"), which=which)
    assert facts["device_count"] == 6 and facts["ibv_devinfo"] == "/usr/bin/ibv_devinfo"
    assert facts["active_ports"] == ["mlx5_0/1", "mlx5_1/1", "mlx5_2/1", "mlx5_3/1", "mlx5_4/1"]
    assert facts["devices"]["mlx5_0"]["transport"] == "InfiniBand (0)"
    assert facts["kernel_modules"] == {"nvidia_peermem": True, "ib_core": True, "mlx5_ib": False}
    assert facts["memlock"]["unlimited"] is True
    assert facts["uverbs_devices"] == [str(tmp_path / "infiniband" / "uverbs0")]


def test_collect_down_without_ibv_devices(tmp_path):
    facts = rdma_info.collect(params(tmp_path, "down"), run=runner("none"), which=which)
    assert facts["ibv_devinfo"] is None
    assert facts["device_count"] == 2 and facts["active_ports"] == []


def test_collect_no_rdma_at_all(tmp_path):
    facts = rdma_info.collect(params(tmp_path, "no-such-case", ibv_devinfo=False))
    assert facts["devices"] == {} and facts["active_ports"] == []


def which(name):
    return "/usr/bin/" + name


def test_listeners_only_for_the_requested_ports(tmp_path):
    facts = rdma_info.collect(params(tmp_path, "mixed", ports=PORTS), run=runner("mixed"), which=which)
    assert [item["port"] for item in facts["listeners"]] == [8998, 5559]
    assert rdma_info.collect(params(tmp_path, "mixed"), run=runner("mixed"), which=which)["listeners"] == []


def test_listeners_from_procfs_without_ss(tmp_path):
    tcp = tmp_path / "tcp"
    tcp.write_text(u"  sl  local_address rem_address   st\n"
                   u"   0: 00000000:2326 00000000:0000 0A 00000000:00000000 00:00000000 00000000  0 0 1 1\n")
    facts = rdma_info.collect(params(tmp_path, "mixed", ibv_devinfo=False, ports=PORTS), run=runner("mixed"),
                              which=lambda name: None, proc_net=(str(tcp), str(tmp_path / "absent")))
    assert facts["listeners"] == [{"port": 8998, "address": "0.0.0.0:8998", "process": None}]


def test_problems_of_a_healthy_host(tmp_path):
    facts = rdma_info.collect(params(tmp_path, "mixed", ports=PORTS), run=runner("mixed"),
                              which=which)
    checks = dict(CHECKS, own_services=["deepseek-v4-prefill", "deepseek-v4-decode"])
    assert rdma_info.problems(facts, checks) == []


def test_every_problem_of_a_broken_host(tmp_path):
    (tmp_path / "modules-none").write_text(u"ib_core 466944 8 - Live 0x0000000000000000\n")
    facts = rdma_info.collect(params(tmp_path, "down", ports=PORTS, proc_modules=str(tmp_path / "modules-none")),
                              run=runner("none"), which=which)
    problems = rdma_info.problems(facts, dict(CHECKS, device_names=["mlx5_0"]))
    assert [p["check"] for p in problems] == ["rdma_port", "rdma_device", "nvidia_peermem", "transfer_port",
                                              "transfer_port"]
    for problem in problems:
        assert set(problem) == {"host", "variable", "check", "found", "needed", "message", "fix"}
        assert problem["host"] == "node-1" and problem["found"] and problem["needed"] and problem["fix"]
    assert "plan_mooncake_protocol: tcp" in problems[0]["fix"]
    assert "port 5559 (nixl_side_channel 5557-5560 of deepseek-v4-decode)" in problems[4]["found"]
    assert "sleep" in problems[4]["found"] and "plan_decode_side_channel_port" in problems[4]["fix"]


def test_nothing_is_required_by_default(tmp_path):
    facts = rdma_info.collect(params(tmp_path, "down"), run=runner("none"), which=which)
    assert rdma_info.problems(facts, {"host": None}) == []


def test_main(tmp_path, capsys):
    from ansible.module_utils.testing import patch_module_args

    args = params(tmp_path, "down", ibv_devinfo=False, ports=PORTS, require_rdma=True, host="node-1",
                  _ansible_check_mode=True)
    with patch_module_args(args), pytest.raises(SystemExit):
        rdma_info.main()
    result = json.loads(capsys.readouterr().out)
    assert result["changed"] is False and "ansible_facts" not in result
    assert result["active_ports"] == [] and [p["check"] for p in result["problems"]][0] == "rdma_port"


def smi_runner(case, profile):
    """ibv_devinfo and ss as above; nvidia-smi is the double replaying ``profile``."""
    base = runner(case)

    def run(argv):
        if os.path.basename(argv[0]) != "nvidia-smi":
            return base(argv)
        env = dict(os.environ, NVIDIA_SMI_DOUBLE_PROFILE=profile)
        proc = subprocess.Popen([os.path.join(DOUBLES, "nvidia-smi")] + list(argv[1:]), env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
        out, err = proc.communicate()
        return proc.returncode, out, err
    return run


AFFINITY = dict(CHECKS, ports=[], require_peermem=False, gpu_nic_affinity=True, require_nic_affinity=True)


@pytest.mark.parametrize("profile, case, rule", [("h200_hgx8", "mixed", "pcie"), ("gb200_4", "gb200_4", "numa"),
                                                 ("gb200_4", "mixed", "numa")])
def test_gpu_nics_through_the_nvidia_smi_double(tmp_path, profile, case, rule):
    args = params(tmp_path, case, gpu_nic_affinity=True, nic_affinity_rule=rule)
    facts = rdma_info.collect(args, run=smi_runner(case, profile), which=which)
    assert len(facts["gpu_nics"]) == (8 if profile == "h200_hgx8" else 4)
    assert all(e["source"] == "nvidia-smi topo -m" for e in facts["gpu_nics"])
    assert facts["gpu_nic_mapping"].count("=") == len(facts["gpu_nics"])
    assert rdma_info.problems(facts, dict(AFFINITY, nic_affinity_rule=rule)) == []


def test_a_rank_without_an_affine_nic_is_refused(tmp_path):
    case = "h200_hgx8_nic_missing"
    facts = rdma_info.collect(params(tmp_path, case, gpu_nic_affinity=True), run=smi_runner(case, case), which=which)
    problems = rdma_info.problems(facts, dict(AFFINITY, gpus=[4, 5, 6, 7]))
    assert [(p["check"], p["found"].split(":")[0]) for p in problems] == [("nic_affinity", "GPU6 (0000"),
                                                                          ("nic_affinity", "GPU7 (0000")]
    assert all(p["host"] == "node-1" and "SYS" in p["found"] for p in problems)
    # The prefill's GPUs 0-3 have theirs.
    assert rdma_info.problems(facts, dict(AFFINITY, gpus=[0, 1, 2, 3])) == []
    # Not asked: nothing refused.
    assert rdma_info.problems(facts, dict(AFFINITY, require_nic_affinity=False)) == []


def test_no_gpu_read_is_a_problem_when_affinity_is_required(tmp_path):
    facts = rdma_info.collect(params(tmp_path, "mixed", gpu_nic_affinity=True), run=smi_runner("mixed", "no_such"),
                              which=which)
    assert facts["gpu_nics"] == [] and facts["gpu_nic_mapping"] == ""
    problems = rdma_info.problems(facts, AFFINITY)
    assert [p["check"] for p in problems] == ["nic_affinity"] and "nvidia-smi" in problems[0]["fix"]
