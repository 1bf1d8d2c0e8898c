# -*- coding: utf-8 -*-
"""The rdma role's NIC affinity preflight (tasks affinity.yml) run for real on this machine against the hardware
TEST DOUBLES: the nvidia-smi double (topo -m, pci.bus_id) and the recorded sysfs trees. A node with one NIC per two
GPUs passes and hands the map on; a node missing a NIC is refused with the host, the GPUs and the fix."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DOUBLES = os.path.join(ROOT, "tests", "doubles")


def _layouts():
    """tests/doubles/make_rdma_topology.py, which makes the recorded sysfs trees (PCI addresses hold colons)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("make_rdma_topology", os.path.join(DOUBLES, "make_rdma_topology.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


LAYOUTS = _layouts()

PLAYBOOK = """
- name: NIC affinity of a transfer host
  hosts: localhost
  connection: local
  gather_facts: false
  vars:
    ansible_python_interpreter: {python}
    rdma_plan:
      transfer:
        connector: MooncakeConnector
        rdma: true
        hosts: [localhost]
        nic_map: {{env: VLLM_GPU_NIC_PCIE_MAPPING, selection_env: VLLM_NIC_SELECTION_VARS,
                  selection: "UCX_NET_DEVICES:1", affinity: {affinity}}}
      hosts:
        localhost: {{gpus: {gpus}}}
    rdma_sysfs_root: {sysfs}
  tasks:
    - name: Derive and check
      ansible.builtin.include_role:
        name: inference.deepseek_v4.rdma
        tasks_from: affinity.yml
    - name: Print the map vllm_engine reads
      ansible.builtin.debug:
        msg: "MAP={{{{ rdma_gpu_nic_mapping }}}}"
"""


def ansible_playbook():
    local = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
    return local if os.path.exists(local) else shutil.which("ansible-playbook")


def run(tmp_path, profile, case, gpus, affinity="pcie"):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    os.symlink(os.path.join(DOUBLES, "nvidia-smi"), bindir / "nvidia-smi")
    book = tmp_path / "affinity.yml"
    book.write_text(PLAYBOOK.format(python=sys.executable, affinity=affinity, gpus=gpus,
                                    sysfs=LAYOUTS.sysfs(case)))
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", NVIDIA_SMI_DOUBLE_PROFILE=profile,
               NVIDIA_SMI_DOUBLE_DIR=os.path.join(DOUBLES, "nvidia_smi_profiles"),
               PATH="%s:%s" % (bindir, os.environ.get("PATH", "")))
    return subprocess.run([ansible_playbook(), "-i", "localhost,", str(book)], cwd=ROOT, capture_output=True,
                          text=True, env=env, check=False)


def test_one_nic_per_two_gpus_passes_and_hands_the_map_on(tmp_path):
    proc = run(tmp_path, "h200_hgx8", "mixed", [0, 1, 2, 3, 4, 5, 6, 7])
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "MAP=0000:18:00.0=0000:1a:00.0,0000:2a:00.0=0000:1a:00.0," in out
    assert "GPU6 -> mlx5_3 (PXB)" in out


def test_a_node_missing_a_nic_is_refused(tmp_path):
    proc = run(tmp_path, "h200_hgx8_nic_missing", "h200_hgx8_nic_missing", [4, 5, 6, 7])
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    assert "RDMA NIC affinity failed on localhost (2 problem(s))" in out
    assert "[nic_affinity]" in out and "GPU6 (0000:ba:00.0): nearest RDMA NIC mlx5_4 is SYS" in out
    assert "GPU7 (0000:db:00.0)" in out and "GPU4 (" not in out
    assert "seat or repair the NIC that shares GPU6's PCIe switch" in out
    assert "MAP=" not in out


def test_a_gb200_tray_passes_by_numa_node(tmp_path):
    proc = run(tmp_path, "gb200_4", "gb200_4", [0, 1, 2, 3], affinity="numa")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "MAP=0008:01:00.0=0000:03:00.0,0009:01:00.0=0002:03:00.0,0018:01:00.0=0010:03:00.0," in out
