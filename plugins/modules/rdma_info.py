#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: inference.deepseek_v4 maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: rdma_info
short_description: Read RDMA devices, ports, kernel modules, memlock and transfer ports of a host and check them
version_added: "0.1.0"
description:
  - Reads C(/sys/class/infiniband/<device>/ports/<n>/{state,phys_state,link_layer,rate}) and, when it is installed,
    C(ibv_devinfo), and returns every RDMA device and port with its state, link layer (InfiniBand or Ethernet/RoCE) and rate.
  - Reports which of the RDMA kernel modules (C(nvidia_peermem), C(ib_core), C(mlx5_ib)...) are loaded, the
    C(/dev/infiniband) verbs devices and the locked-memory limit the connection runs with.
  - With O(daemon_units), reads the locked-memory limit the container engine gives the containers it starts, which
    they inherit unless started with C(--ulimit memlock) - C(systemctl show) of each unit (C(LimitMEMLOCK)) and, while
    it runs, C(/proc/<MainPID>/limits).
  - With O(ports), lists the listening TCP sockets (C(ss -Hltnp), else C(/proc/net/tcp) and C(/proc/net/tcp6)) and
    reports every port of those ranges that a process holds.
  - Checks what it is asked to (O(require_rdma), O(device_names), O(require_peermem), O(ports)) and returns every
    unmet need in RV(problems); it does not fail on them, so that a role can report all of them at once.
  - Never changes the host. Returns no C(ansible_facts); register the result. Formerly C(rdma_facts), a name that
    still redirects here (deprecated).
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
  host:
    description:
      - Inventory name of the host, carried by every problem in RV(problems).
    type: str
  require_rdma:
    description:
      - The KV transfer needs RDMA (the plan's C(transfer.rdma)) - at least one ACTIVE InfiniBand or RoCE port, and
        one on every device of O(device_names).
    type: bool
    default: false
  device_names:
    description:
      - RDMA devices the transfer engine is told to use (Mooncake C(device_name)); with O(require_rdma), each must have
        an ACTIVE port.
    type: list
    elements: str
    default: []
  protocol_variable:
    description:
      - The setting that moves the transfer to TCP instead of RDMA (for example C(plan_mooncake_protocol)), named in
        the fix of a missing ACTIVE port. Without it the fix names none.
    type: str
  require_peermem:
    description:
      - C(nvidia_peermem) must be loaded (the plan's C(transfer.peermem)).
    type: bool
    default: false
  ports:
    description:
      - Port ranges that must be free, for example the plan's C(hosts[host].ports) whose C(transfer) is true.
    type: list
    elements: dict
    default: []
    suboptions:
      first:
        description: First port of the range.
        type: int
        required: true
      last:
        description: Last port of the range; O(ports[].first) when left out.
        type: int
      service:
        description: The service that binds the range.
        type: str
      name:
        description: The port's name in the plan (C(mooncake_bootstrap), C(nixl_side_channel)).
        type: str
      variable:
        description: The setting that moves the port, named in the fix.
        type: str
      transfer:
        description: Whether the plan marks the range as a KV transfer port; accepted so that plan entries pass as
          they are, not used.
        type: bool
  daemon_units:
    description:
      - systemd units of the container engine whose memlock limit containers inherit (C(docker.service),
        C(containerd.service) - with a separate containerd, the containers' shims are its children). Reported in
        RV(daemon_memlock); none read when empty.
    type: list
    elements: str
    default: []
  require_daemon_memlock:
    description:
      - Every loaded unit of O(daemon_units) must give unlimited locked memory, configured (C(LimitMEMLOCK=infinity))
        and in its running process; at least one must be loaded. Where the engine containers inherit the limit and
        move KV over RDMA (Mooncake fails with C(Cannot allocate memory) otherwise).
    type: bool
    default: false
  proc_dir:
    description:
      - Mount point of procfs, where the units' processes' C(limits) are read. Change it only for tests.
    type: path
    default: /proc
  own_services:
    description:
      - Services whose own container runs on the host; a port of O(ports) that such a service binds is its own, not a
        conflict.
    type: list
    elements: str
    default: []
  gpu_nic_affinity:
    description:
      - Derive each GPU's nearest RDMA NIC (RV(gpu_nics), RV(gpu_nic_mapping)) from C(nvidia-smi topo -m), the GPUs'
        PCI bus ids (C(nvidia-smi --query-gpu=index,pci.bus_id)) and the PCI tree under O(sysfs_root)
        (C(class/infiniband/<dev>/device), C(bus/pci/devices/<bdf>)). Only NICs with an ACTIVE RDMA port count.
      - Without C(nvidia-smi topo) the PCI paths alone decide.
    type: bool
    default: false
  nic_affinity_rule:
    description:
      - What makes a NIC affine to a GPU. V(pcie) - a PCIe switch shared with the GPU (C(PIX) or C(PXB); HGX boards).
        V(numa) - the GPU's NUMA node (GB200, whose GPUs sit on NVLink-C2C and share no PCIe path with a NIC). The
        plan's C(transfer.nic_map.affinity).
    type: str
    choices: [pcie, numa]
    default: pcie
  gpus:
    description:
      - GPU indexes that run ranks moving KV (the plan's C(hosts[host].gpus)); empty for every GPU.
    type: list
    elements: int
    default: []
  require_nic_affinity:
    description:
      - With O(gpu_nic_affinity), every GPU of O(gpus) must have an affine NIC with a known PCI address (problem
        C(nic_affinity)).
    type: bool
    default: false
  nvidia_smi:
    description:
      - Path of C(nvidia-smi); looked up on the PATH when left out.
    type: path
extends_documentation_fragment:
  - inference.deepseek_v4._attributes
  - inference.deepseek_v4._attributes.info_module
seealso:
  - module: inference.deepseek_v4.gpu_info
"""

EXAMPLES = r"""
- name: Read RDMA facts
  inference.deepseek_v4.rdma_info:
  register: rdma

- name: Show the active ports
  ansible.builtin.debug:
    msg: "{{ rdma.active_ports | join(', ') or 'no ACTIVE RDMA port' }}"

- name: Check the host for the plan's KV transfer
  inference.deepseek_v4.rdma_info:
    host: "{{ inventory_hostname }}"
    require_rdma: "{{ deepseek_v4_plan.transfer.rdma }}"
    require_peermem: "{{ deepseek_v4_plan.transfer.peermem }}"
    protocol_variable: plan_mooncake_protocol
    ports: "{{ deepseek_v4_plan.hosts[inventory_hostname].ports | selectattr('transfer') | list }}"
  register: rdma

- name: Fail with every problem
  ansible.builtin.fail:
    msg: "{{ rdma.problems | map(attribute='found') | join('; ') }}"
  when: rdma.problems | length > 0

- name: Read a recorded sysfs tree (tests)
  inference.deepseek_v4.rdma_info:
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
daemon_memlock:
  description: Per unit of O(daemon_units), the memlock limit it gives the containers it starts; empty without O(daemon_units).
  returned: always
  type: list
  elements: dict
  contains:
    unit:
      description: The unit.
      type: str
    loaded:
      description: Whether systemd has the unit loaded (C(LoadState=loaded)).
      type: bool
    main_pid:
      description: Its main process, V(null) when it does not run.
      type: int
    configured:
      description: C(LimitMEMLOCKSoft) and C(LimitMEMLOCK) (bytes or V(unlimited)) and whether both are unlimited.
      type: dict
    running:
      description: The running process's limit as RV(memlock) reports it; V(null) when it does not run.
      type: dict
gpu_nics:
  description: Per GPU, its nearest RDMA NIC (with O(gpu_nic_affinity); empty otherwise).
  returned: always
  type: list
  elements: dict
  contains:
    gpu:
      description: GPU index.
      type: int
    bus_id:
      description: The GPU's PCI address (C(0000:18:00.0)).
      type: str
    nic:
      description: The RDMA device (C(mlx5_0)); V(null) when the host has none with an ACTIVE port.
      type: str
    nic_bus_id:
      description: The NIC's PCI address, V(null) when sysfs does not tell.
      type: str
    link:
      description: C(PIX), C(PXB), C(PHB), C(NODE) or C(SYS) as C(nvidia-smi topo -m) says; V(null) when unknown.
      type: str
    numa_local:
      description: Whether the NIC is on one of the GPU's NUMA nodes.
      type: bool
    source:
      description: C(nvidia-smi topo -m) or C(sysfs) (PCI paths).
      type: str
  sample:
    - {gpu: 0, bus_id: "0000:18:00.0", nic: mlx5_0, nic_bus_id: "0000:1a:00.0", link: PXB, numa_local: true,
       source: nvidia-smi topo -m}
gpu_nic_mapping:
  description: The value of C(VLLM_GPU_NIC_PCIE_MAPPING) (C(<gpu_bdf>=<nic_bdf>,...)) for every GPU with a NIC; empty
    without O(gpu_nic_affinity).
  returned: always
  type: str
  sample: "0000:18:00.0=0000:1a:00.0,0000:2a:00.0=0000:1a:00.0"
listeners:
  description: The listening TCP sockets on ports of O(ports); empty without O(ports).
  returned: always
  type: list
  elements: dict
  contains:
    port:
      description: The port.
      type: int
    address:
      description: The local address, as C(ss) prints it.
      type: str
    process:
      description: The C(users:(...)) column of C(ss), V(null) when unknown.
      type: str
problems:
  description:
    - Every unmet need of O(require_rdma), O(device_names), O(require_peermem) and O(ports); empty when the host is fit.
    - The collection's one problem shape (C(module_utils/_problem.py)), as the plan and M(inference.deepseek_v4.gpu_info)
      return it.
  returned: always
  type: list
  elements: dict
  contains:
    host:
      description: O(host).
      type: str
    check:
      description: C(rdma_port), C(rdma_device), C(nic_affinity), C(nvidia_peermem), C(docker_memlock) or
        C(transfer_port).
      type: str
    variable:
      description: Always V(null) here (a host check failed; the fix names the setting to change, if any).
      type: str
    found:
      description: What the host has.
      type: str
    needed:
      description: What is required.
      type: str
    message:
      description: What is wrong, in a few words.
      type: str
    fix:
      description: How to fix it.
      type: str
"""

import glob
import os
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.inference.deepseek_v4.plugins.module_utils import rdma_inventory as inv
from ansible_collections.inference.deepseek_v4.plugins.module_utils import rdma_topology as topo


def _read(path: str) -> Optional[str]:
    try:
        with open(path) as handle:
            return handle.read()
    except (IOError, OSError):
        return None


def listeners(run: Optional[Callable[[list[str]], tuple[int, str, str]]] = None,
              which: Optional[Callable[[str], Optional[str]]] = None,
              proc_net: Iterable[str] = ("/proc/net/tcp", "/proc/net/tcp6")) -> list[dict[str, Any]]:
    """The listening TCP sockets: ``ss -Hltnp`` (with the processes), else the procfs tables (without)."""
    ss = which("ss") if which is not None else None
    if ss and run is not None:
        rc, out, _err = run([ss, "-Hltnp"])
        if rc == 0:
            return inv.parse_ss_listeners(out)
    result = []
    for path in proc_net:
        text = _read(path)
        if text:
            result.extend(inv.parse_proc_net_tcp(text))
    return result


def daemon_memlock(units: Sequence[str], run: Optional[Callable[[list[str]], tuple[int, str, str]]] = None,
                   which: Optional[Callable[[str], Optional[str]]] = None,
                   proc_dir: str = "/proc") -> list[dict[str, Any]]:
    """``rdma_inventory.daemon_memlock`` of each unit: ``systemctl show`` and, while it runs, its process's limits."""
    systemctl = which("systemctl") if which is not None and units else None
    result = []
    for unit in units:
        show = ""
        if systemctl and run is not None:
            rc, out, _err = run([systemctl, "show", unit, "-p", "LoadState", "-p", "MainPID", "-p", "LimitMEMLOCK",
                                 "-p", "LimitMEMLOCKSoft"])
            show = out if rc == 0 else ""
        pid = inv.parse_systemctl_show(show).get("MainPID", "0")
        limits = _read(os.path.join(proc_dir, pid, "limits")) if pid.isdigit() and int(pid) > 0 else None
        result.append(inv.daemon_memlock(unit, show, limits))
    return result


def gpu_nics(params: Mapping[str, Any], devices: dict[str, dict[str, Any]],
             run: Optional[Callable[[list[str]], tuple[int, str, str]]] = None,
             which: Optional[Callable[[str], Optional[str]]] = None) -> tuple[list[dict[str, Any]], list[str]]:
    """Each GPU's nearest NIC with an ACTIVE port (``rdma_topology.derive``) and the NICs left out for being down."""
    if not params.get("gpu_nic_affinity") or run is None:
        return [], []
    smi = params.get("nvidia_smi") or (which("nvidia-smi") if which is not None else None)
    bus_ids, matrix = {}, {}
    if smi:
        rc, out, _err = run([smi, "--query-gpu=index,pci.bus_id", "--format=csv,noheader"])
        bus_ids = topo.parse_gpu_bus_ids(out) if rc == 0 else {}
        rc, out, _err = run([smi, "topo", "-m"])
        matrix = topo.parse_topo(out) if rc == 0 else {}
    root = params["sysfs_root"]
    active = set(item.split("/")[0] for item in inv.active_ports(devices))
    nics = topo.read_nic_pci(root)
    down = sorted((set(devices) | set(nics)) - active)
    return topo.derive(topo.read_gpu_pci(bus_ids, root), matrix, nics, usable=active), down


def collect(params: Mapping[str, Any], run: Optional[Callable[[list[str]], tuple[int, str, str]]] = None,
            which: Optional[Callable[[str], Optional[str]]] = None,
            proc_net: Iterable[str] = ("/proc/net/tcp", "/proc/net/tcp6")) -> dict[str, Any]:
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
    modules_text = _read(params["proc_modules"])
    loaded = inv.parse_proc_modules(modules_text) if modules_text is not None else set()
    memlock = inv.parse_limits(_read(params["proc_limits"]) or "")
    wanted = set()
    for entry in params.get("ports") or []:
        first = int(entry["first"])
        wanted.update(range(first, int(entry.get("last") or first) + 1))
    nic_map, down = gpu_nics(params, devices, run, which)
    return {
        "devices": devices,
        "device_count": len(devices),
        "gpu_nics": nic_map,
        "gpu_nic_mapping": topo.mapping(nic_map),
        "_nics_down": down,
        "active_ports": inv.active_ports(devices),
        "ibv_devinfo": ibv_path,
        "kernel_modules": dict((name, name in loaded) for name in params["modules"]),
        "uverbs_devices": sorted(glob.glob(os.path.join(params["dev_dir"], "infiniband", "uverbs*"))),
        "memlock": memlock,
        "daemon_memlock": daemon_memlock(params.get("daemon_units") or [], run, which,
                                         params.get("proc_dir") or "/proc"),
        "listeners": [item for item in listeners(run, which, proc_net) if item["port"] in wanted] if wanted else [],
    }


def problems(facts: Mapping[str, Any], params: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every unmet need the parameters ask about, in the collection's problem shape (dicts)."""
    host = params.get("host")
    found = inv.transfer_problems(facts, params.get("require_rdma"), params.get("device_names"), host=host,
                                  protocol_variable=params.get("protocol_variable"))
    if params.get("gpu_nic_affinity") and params.get("require_nic_affinity"):
        gpus = params.get("gpus") or None
        entries = facts.get("gpu_nics") or []
        if not entries:
            found.append(topo.Problem(
                None, "no GPU read (nvidia-smi --query-gpu=index,pci.bus_id failed or found none)",
                "the GPU/NIC affinity cannot be derived", "check nvidia-smi on the host (the driver loaded)",
                host=host, check="nic_affinity", needed="the GPUs' PCI bus ids"))
        found += topo.affinity_problems(entries, gpus, params.get("nic_affinity_rule") or "pcie", host=host,
                                        unusable=facts.get("_nics_down") or ())
    found += inv.peermem_problems(facts, params.get("require_peermem"), host=host)
    found += inv.daemon_memlock_problems(facts.get("daemon_memlock") or [], params.get("require_daemon_memlock"),
                                         host=host)
    found += inv.port_problems(facts["listeners"], params.get("ports") or [], params.get("own_services") or [],
                               host=host)
    return [p.as_dict() for p in found]


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            sysfs_root=dict(type="path", default="/sys"),
            proc_modules=dict(type="path", default="/proc/modules"),
            proc_limits=dict(type="path", default="/proc/self/limits"),
            dev_dir=dict(type="path", default="/dev"),
            modules=dict(type="list", elements="str",
                         default=["nvidia_peermem", "ib_core", "ib_uverbs", "mlx5_core", "mlx5_ib", "rdma_ucm"]),
            ibv_devinfo=dict(type="bool", default=True),
            host=dict(type="str"),
            require_rdma=dict(type="bool", default=False),
            device_names=dict(type="list", elements="str", default=[]),
            protocol_variable=dict(type="str"),
            require_peermem=dict(type="bool", default=False),
            ports=dict(type="list", elements="dict", default=[], options=dict(
                first=dict(type="int", required=True),
                last=dict(type="int"),
                service=dict(type="str"),
                name=dict(type="str"),
                variable=dict(type="str"),
                transfer=dict(type="bool"),
            )),
            own_services=dict(type="list", elements="str", default=[]),
            daemon_units=dict(type="list", elements="str", default=[]),
            require_daemon_memlock=dict(type="bool", default=False),
            proc_dir=dict(type="path", default="/proc"),
            gpu_nic_affinity=dict(type="bool", default=False),
            nic_affinity_rule=dict(type="str", default="pcie", choices=["pcie", "numa"]),
            gpus=dict(type="list", elements="int", default=[]),
            require_nic_affinity=dict(type="bool", default=False),
            nvidia_smi=dict(type="path"),
        ),
        supports_check_mode=True,
    )

    def run(argv: list[str]) -> tuple[int, str, str]:
        return module.run_command(argv, environ_update={"LC_ALL": "C"})

    def which(name: str) -> Optional[str]:
        return module.get_bin_path(name, opt_dirs=["/usr/local/bin", "/usr/sbin", "/sbin", "/bin", "/usr/bin"])

    facts = collect(module.params, run=run, which=which)
    facts["problems"] = problems(facts, module.params)
    facts.pop("_nics_down", None)
    module.exit_json(changed=False, **facts)


if __name__ == "__main__":
    main()
