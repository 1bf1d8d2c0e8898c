# -*- coding: utf-8 -*-
# Copyright: inference.deepseek_v4 maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""rdma_facts.collect against the recorded sysfs trees and the ibv_devinfo double."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import subprocess

from ansible_collections.inference.deepseek_v4.plugins.modules import rdma_facts

DOUBLES = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "doubles"))
SYSFS = os.path.join(DOUBLES, "rdma_sysfs")


def params(tmp_path, case, **extra):
    (tmp_path / "modules").write_text(u"nvidia_peermem 16384 0 - Live 0x0000000000000000 (OE)\n"
                                      u"ib_core 466944 8 nvidia_peermem, Live 0x0000000000000000\n")
    (tmp_path / "limits").write_text(u"Limit                     Soft Limit           Hard Limit           Units     \n"
                                     u"Max locked memory         unlimited            unlimited            bytes     \n")
    (tmp_path / "infiniband").mkdir()
    (tmp_path / "infiniband" / "uverbs0").write_text(u"")
    result = {"sysfs_root": os.path.join(SYSFS, case), "proc_modules": str(tmp_path / "modules"),
              "proc_limits": str(tmp_path / "limits"), "dev_dir": str(tmp_path),
              "modules": ["nvidia_peermem", "ib_core", "mlx5_ib"], "ibv_devinfo": True}
    result.update(extra)
    return result


def runner(case):
    def run(argv):
        env = dict(os.environ, IBV_DEVINFO_DOUBLE_CASE=case)
        proc = subprocess.Popen([os.path.join(DOUBLES, "ibv_devinfo")], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, universal_newlines=True)
        out, err = proc.communicate()
        return proc.returncode, out, err
    return run


def test_collect_mixed(tmp_path):
    facts = rdma_facts.collect(params(tmp_path, "mixed"), run=runner("mixed"), which=lambda name: "/usr/bin/" + name)
    assert facts["device_count"] == 6 and facts["ibv_devinfo"] == "/usr/bin/ibv_devinfo"
    assert facts["active_ports"] == ["mlx5_0/1", "mlx5_1/1", "mlx5_2/1", "mlx5_3/1", "mlx5_4/1"]
    assert facts["devices"]["mlx5_0"]["transport"] == "InfiniBand (0)"
    assert facts["kernel_modules"] == {"nvidia_peermem": True, "ib_core": True, "mlx5_ib": False}
    assert facts["memlock"]["unlimited"] is True
    assert facts["uverbs_devices"] == [str(tmp_path / "infiniband" / "uverbs0")]


def test_collect_down_without_ibv_devices(tmp_path):
    facts = rdma_facts.collect(params(tmp_path, "down"), run=runner("none"), which=lambda name: "/usr/bin/" + name)
    assert facts["ibv_devinfo"] is None
    assert facts["device_count"] == 2 and facts["active_ports"] == []


def test_collect_no_rdma_at_all(tmp_path):
    facts = rdma_facts.collect(params(tmp_path, "no-such-case", ibv_devinfo=False))
    assert facts["devices"] == {} and facts["active_ports"] == []
