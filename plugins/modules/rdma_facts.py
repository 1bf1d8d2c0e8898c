#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: inference.deepseek_v4 maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: rdma_facts
short_description: Read RDMA devices, ports, kernel modules and the memlock limit of a host
version_added: "0.1.0"
description:
  - Reads C(/sys/class/infiniband/<device>/ports/<n>/{state,phys_state,link_layer,rate}) and, when it is installed,
    C(ibv_devinfo), and returns every RDMA device and port with its state, link layer (InfiniBand or Ethernet/RoCE) and rate.
  - Reports which of the RDMA kernel modules (C(nvidia_peermem), C(ib_core), C(mlx5_ib)...) are loaded, the
    C(/dev/infiniband) verbs devices and the locked-memory limit the connection runs with.
  - Never changes the host.
author:
  - inference.deepseek_v4 maintainers (!UNKNOWN)
options:
  sysfs_root:
    description:
      - Mount point of sysfs; the devices are read from C(<sysfs_root>/class/infiniband). Change it only for tests.
    type: path
    default: /sys
  proc_modules:
    description:
      - File listing the loaded kernel modules.
    type: path
    default: /proc/modules
  proc_limits:
    description:
      - Resource limits file of the process whose memlock limit is reported.
    type: path
    default: /proc/self/limits
  dev_dir:
    description:
      - Directory holding the device nodes (C(infiniband/uverbs*)).
    type: path
    default: /dev
  modules:
    description:
      - Kernel modules to report as loaded or not.
    type: list
    elements: str
    default: [nvidia_peermem, ib_core, ib_uverbs, mlx5_core, mlx5_ib, rdma_ucm]
  ibv_devinfo:
    description:
      - Also run C(ibv_devinfo) when it is installed (adds transport, MTU and LID).
    type: bool
    default: true
  protocol:
    description:
      - KV transfer protocol to check the host for. V(rdma) needs at least one ACTIVE port (and one on every device of
        O(device_names)); V(tcp) needs none. Problems are returned in RV(transfer_problems); the module does not fail on them.
    type: str
    choices: [rdma, tcp]
  device_names:
    description:
      - RDMA devices the transfer engine is told to use (Mooncake C(device_name)); each must have an ACTIVE port.
    type: list
    elements: str
    default: []
  protocol_variable:
    description:
      - Variable named in RV(transfer_problems) as the one to change to use TCP.
    type: str
    default: rdma_mooncake_protocol
attributes:
  check_mode:
    support: full
    description: The module only reads; it runs the same in check mode.
  diff_mode:
    support: none
    description: The module reports no diff.
  platform:
    support: full
    platforms: posix
    description: Linux hosts.
seealso:
  - module: inference.deepseek_v4.gpu_facts
"""

EXAMPLES = r"""
- name: Read RDMA facts
  inference.deepseek_v4.rdma_facts:
  register: rdma

- name: Fail without an active RDMA port
  ansible.builtin.assert:
    that: rdma.active_ports | length > 0
    fail_msg: "no ACTIVE RDMA port on {{ inventory_hostname }}"

- name: Read a recorded sysfs tree (tests)
  inference.deepseek_v4.rdma_facts:
    sysfs_root: /srv/fixtures/sysfs
    ibv_devinfo: false
"""

RETURN = r"""
devices:
  description: RDMA devices by name.
  returned: always
  type: dict
  sample:
    mlx5_0:
      fw_ver: 28.39.1002
      hca_type: MT4129
      node_guid: b83f:d203:00a1:2b30
      transport: InfiniBand (0)
      ports:
        "1":
          state: ACTIVE
          phys_state: LinkUp
          link_layer: InfiniBand
          rate: 400 Gb/sec (4X NDR)
          rate_gbps: 400
          netdev: null
device_count:
  description: Number of RDMA devices.
  returned: always
  type: int
  sample: 4
active_ports:
  description: C(device/port) of every ACTIVE port with an InfiniBand or Ethernet (RoCE) link layer.
  returned: always
  type: list
  elements: str
  sample: [mlx5_0/1, mlx5_1/1]
ibv_devinfo:
  description: Path of the ibv_devinfo that was run, V(null) when absent or not used.
  returned: always
  type: str
kernel_modules:
  description: For each module of O(modules), whether it is loaded.
  returned: always
  type: dict
  sample: {nvidia_peermem: true, ib_core: true, mlx5_ib: true}
uverbs_devices:
  description: C(/dev/infiniband/uverbs*) device nodes.
  returned: always
  type: list
  elements: str
transfer_problems:
  description: Why the host cannot carry KV transfer over O(protocol); empty when it can or without O(protocol).
  returned: always
  type: list
  elements: str
memlock:
  description: Locked-memory limit of the process the module runs in (the connection's login session).
  returned: always
  type: dict
  contains:
    soft:
      description: Soft limit in bytes or V(unlimited).
      type: raw
    hard:
      description: Hard limit in bytes or V(unlimited).
      type: raw
    unit:
      description: Unit of the limit.
      type: str
    unlimited:
      description: Whether both limits are unlimited.
      type: bool
"""

import glob
import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.inference.deepseek_v4.plugins.module_utils import rdma_inventory as inv


def collect(params, run=None, which=None):
    """Gather the facts; ``run(argv) -> (rc, out, err)`` and ``which(name)`` are injected for tests."""
    devices = inv.read_sysfs(params["sysfs_root"])
    ibv_path = None
    if params.get("ibv_devinfo", True) and which is not None and run is not None:
        ibv_path = which("ibv_devinfo")
        if ibv_path:
            rc, out, err = run([ibv_path])
            if rc == 0:
                devices = inv.merge_ibv(devices, inv.parse_ibv_devinfo(out))
            else:
                ibv_path = None
    try:
        with open(params["proc_modules"]) as handle:
            loaded = inv.parse_proc_modules(handle.read())
    except (IOError, OSError):
        loaded = set()
    try:
        with open(params["proc_limits"]) as handle:
            memlock = inv.parse_limits(handle.read())
    except (IOError, OSError):
        memlock = inv.parse_limits("")
    return {
        "devices": devices,
        "device_count": len(devices),
        "active_ports": inv.active_ports(devices),
        "ibv_devinfo": ibv_path,
        "kernel_modules": dict((name, name in loaded) for name in params["modules"]),
        "uverbs_devices": sorted(glob.glob(os.path.join(params["dev_dir"], "infiniband", "uverbs*"))),
        "memlock": memlock,
    }


def main():
    module = AnsibleModule(
        argument_spec=dict(
            sysfs_root=dict(type="path", default="/sys"),
            proc_modules=dict(type="path", default="/proc/modules"),
            proc_limits=dict(type="path", default="/proc/self/limits"),
            dev_dir=dict(type="path", default="/dev"),
            modules=dict(type="list", elements="str",
                         default=["nvidia_peermem", "ib_core", "ib_uverbs", "mlx5_core", "mlx5_ib", "rdma_ucm"]),
            ibv_devinfo=dict(type="bool", default=True),
            protocol=dict(type="str", choices=["rdma", "tcp"]),
            device_names=dict(type="list", elements="str", default=[]),
            protocol_variable=dict(type="str", default="rdma_mooncake_protocol"),
        ),
        supports_check_mode=True,
    )

    def run(argv):
        return module.run_command(argv, environ_update={"LC_ALL": "C"})

    def which(name):
        return module.get_bin_path(name, opt_dirs=["/usr/local/bin", "/usr/sbin", "/sbin"])

    facts = collect(module.params, run=run, which=which)
    facts["transfer_problems"] = inv.transfer_problems(
        facts, module.params.get("protocol"), module.params.get("device_names"), module.params["protocol_variable"])
    module.exit_json(changed=False, **facts)


if __name__ == "__main__":
    main()
