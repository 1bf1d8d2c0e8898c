# -*- coding: utf-8 -*-
# Copyright: inference.deepseek_v4 maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Writes the recorded GPU/NIC PCIe layouts of the TEST DOUBLES (run it again after editing a layout below).

For each layout it writes, in the formats the real tools and the kernel use:

- ``nvidia_smi_profiles/<profile>/topo.txt``: ``nvidia-smi topo -m`` (GPU/NIC matrix, CPU and NUMA affinity, the
  legend and the "NIC Legend"), replayed by the nvidia-smi double;
- with ``--sysfs DIR`` (or ``sysfs(case)`` from a test), ``DIR/<case>/devices/pci<domain>:<bus>/...``: the PCI device
  tree (``numa_node`` of every device), with ``class/infiniband/<dev>/device`` a symlink to its NIC's PCI directory
  and ``bus/pci/devices/<bdf>`` a symlink to every GPU's, as under /sys. These are made, not committed: PCI addresses
  hold colons, which no file name of the collection may. scripts/install-hardware-doubles.sh makes them for the
  rehearsal nodes.

Layouts:

- ``h200_hgx8`` / ``mixed``: HGX H200 on two sockets (NUMA 0: GPU0-3, NUMA 1: GPU4-7). Each PCIe switch carries two
  GPUs and one 400G InfiniBand NIC (GPU<->NIC: PXB): mlx5_0 (GPU0/1), mlx5_1 (GPU2/3), mlx5_2 (GPU4/5), mlx5_3
  (GPU6/7), and a dual-port Ethernet NIC mlx5_4/mlx5_5 on socket 0 off the root port (NODE/SYS to every GPU).
- ``h200_hgx8_nic_missing``: the same node in sub-NUMA clustering (four NUMA nodes, two GPUs each) with mlx5_3 gone
  (unseated or dead): GPU6 and GPU7 reach no NIC closer than SYS.
- ``gb200_4``: a GB200 compute tray: two Grace CPUs (NUMA 0 and 1), two B200 each on NVLink-C2C (their own PCI
  domains 0008, 0009, 0018, 0019), four ConnectX-7 on the Graces' PCIe (domains 0000, 0002, 0010, 0012). No GPU
  shares a PCIe path with a NIC: ``nvidia-smi topo -m`` says SYS for every GPU/NIC pair, and the NUMA affinity
  (GPU0/1 with mlx5_0/1, GPU2/3 with mlx5_2/3) is what places a rank.
"""

import os
import re
import shutil
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

LEGEND = """
Legend:

  X    = Self
  SYS  = Connection traversing PCIe as well as the SMP interconnect between NUMA nodes (e.g., QPI/UPI)
  NODE = Connection traversing PCIe as well as the interconnect between PCIe Host Bridges within a NUMA node
  PHB  = Connection traversing PCIe as well as a PCIe Host Bridge (typically the CPU)
  PXB  = Connection traversing multiple PCIe bridges (without traversing the PCIe Host Bridge)
  PIX  = Connection traversing at most a single PCIe bridge
  NV#  = Connection traversing a bonded set of # NVLinks
"""


def _switch(rc, upstream, downstream_bus, devices):
    """Devices behind a PCIe switch on root complex ``rc`` (``"0000:15"``): [(bdf, path)]."""
    root_port = "%s:01.0" % rc
    out = []
    for slot, bdf in devices:
        out.append((bdf, ["pci%s" % rc, root_port, upstream, "%s:%s" % (downstream_bus, slot), bdf]))
    return out


def h200_tree(with_mlx5_3=True):
    dev = {}
    # Per socket pair of switches: root complex, switch upstream port, downstream bus, then GPU, NIC, GPU.
    switches = (("0000:15", "0000:16:00.0", "0000:17", ("0000:18:00.0", "0000:1a:00.0", "0000:2a:00.0")),
                ("0000:37", "0000:38:00.0", "0000:39", ("0000:3a:00.0", "0000:3c:00.0", "0000:5d:00.0")),
                ("0000:97", "0000:98:00.0", "0000:99", ("0000:9a:00.0", "0000:9c:00.0", "0000:ab:00.0")),
                ("0000:b7", "0000:b8:00.0", "0000:b9", ("0000:ba:00.0", "0000:bc:00.0", "0000:db:00.0")))
    for rc, upstream, bus, devices in switches:
        for bdf, path in _switch(rc, upstream, bus, list(zip(("00.0", "02.0", "04.0"), devices))):
            dev[bdf] = path
    for bdf in ("0000:4d:00.0", "0000:4d:00.1"):
        dev[bdf] = ["pci0000:4a", "0000:4a:01.0", bdf]
    if not with_mlx5_3:
        del dev["0000:bc:00.0"]
    return dev


H200_GPUS = ["0000:18:00.0", "0000:2a:00.0", "0000:3a:00.0", "0000:5d:00.0", "0000:9a:00.0", "0000:ab:00.0",
             "0000:ba:00.0", "0000:db:00.0"]
H200_NICS = [("mlx5_0", "0000:1a:00.0"), ("mlx5_1", "0000:3c:00.0"), ("mlx5_2", "0000:9c:00.0"),
             ("mlx5_3", "0000:bc:00.0"), ("mlx5_4", "0000:4d:00.0"), ("mlx5_5", "0000:4d:00.1")]

GB200_GPUS = ["0008:01:00.0", "0009:01:00.0", "0018:01:00.0", "0019:01:00.0"]
GB200_NICS = [("mlx5_0", "0000:03:00.0"), ("mlx5_1", "0002:03:00.0"), ("mlx5_2", "0010:03:00.0"),
              ("mlx5_3", "0012:03:00.0")]


def gb200_tree():
    dev = {}
    for bdf in GB200_GPUS:
        dom = bdf[:4]
        dev[bdf] = ["pci%s:00" % dom, "%s:00:00.0" % dom, bdf]
    for _name, bdf in GB200_NICS:
        dom = bdf[:4]
        dev[bdf] = ["pci%s:00" % dom, "%s:00:00.0" % dom, "%s:01:00.0" % dom, "%s:02:00.0" % dom, bdf]
    return dev


LAYOUTS = {
    "h200_hgx8": {
        "tree": h200_tree(True), "gpus": H200_GPUS, "nics": H200_NICS, "nvlink": "NV18", "c2c": False,
        "numa": {"pci0000:15": 0, "pci0000:37": 0, "pci0000:4a": 0, "pci0000:97": 1, "pci0000:b7": 1},
        "cpus": {0: "0-47,96-143", 1: "48-95,144-191"},
    },
    "h200_hgx8_nic_missing": {
        "description": "HGX H200 8-GPU as h200_hgx8, in sub-NUMA clustering, the NIC of GPU6/GPU7 (mlx5_3) missing",
        "tree": h200_tree(False), "gpus": H200_GPUS, "nvlink": "NV18", "c2c": False,
        "nics": [n for n in H200_NICS if n[0] != "mlx5_3"],
        "numa": {"pci0000:15": 0, "pci0000:37": 1, "pci0000:4a": 0, "pci0000:97": 2, "pci0000:b7": 3},
        "cpus": {0: "0-23,96-119", 1: "24-47,120-143", 2: "48-71,144-167", 3: "72-95,168-191"},
    },
    "gb200_4": {
        "tree": gb200_tree(), "gpus": GB200_GPUS, "nics": GB200_NICS, "nvlink": "NV18", "c2c": True,
        "numa": {"pci0000:00": 0, "pci0002:00": 0, "pci0008:00": 0, "pci0009:00": 0,
                 "pci0010:00": 1, "pci0012:00": 1, "pci0018:00": 1, "pci0019:00": 1},
        "cpus": {0: "0-71", 1: "72-143"},
        # Grace: the GPU's memory is a NUMA node of its own; the CPU-side NUMA affinity lists the nodes.
        "gpu_numa": {0: ("0,3-9,11-17", "2"), 1: ("0,3-9,11-17", "10"), 2: ("1,19-25,27-33", "18"),
                     3: ("1,19-25,27-33", "26")},
    },
}


def link(layout, a, b):
    """The ``nvidia-smi topo -m`` class of two devices of a layout's tree."""
    pa, pb = layout["tree"][a], layout["tree"][b]
    if pa[0] != pb[0]:
        return "NODE" if layout["numa"][pa[0]] == layout["numa"][pb[0]] else "SYS"
    common = 0
    while common < min(len(pa), len(pb)) and pa[common] == pb[common]:
        common += 1
    if common == 1:
        return "PHB"
    if common == len(pa) - 1 == len(pb) - 1:
        return "PIX"
    return "PXB"


def topo_text(layout):
    gpus, nics = layout["gpus"], layout["nics"]
    cols = ["GPU%d" % i for i in range(len(gpus))] + ["NIC%d" % i for i in range(len(nics))]
    bdfs = list(gpus) + [bdf for _n, bdf in nics]
    lines = ["\t" + "\t".join(cols) + "\tCPU Affinity\tNUMA Affinity\tGPU NUMA ID"]
    for i, name in enumerate(cols):
        cells = []
        for j in range(len(cols)):
            if i == j:
                cells.append(" X ")
            elif i < len(gpus) and j < len(gpus):
                cells.append(layout["nvlink"])
            elif layout["c2c"] and (i < len(gpus)) != (j < len(gpus)):
                cells.append("SYS")
            else:
                cells.append(link(layout, bdfs[i], bdfs[j]))
        tail = ""
        if i < len(gpus):
            numa = layout["numa"][layout["tree"][gpus[i]][0]]
            numa_aff, gpu_numa = layout.get("gpu_numa", {}).get(i, (str(numa), "N/A"))
            tail = "\t%s\t%s\t\t%s" % (layout["cpus"][numa], numa_aff, gpu_numa)
        lines.append(name + "\t" + "\t".join(cells) + tail)
    legend = ["", "NIC Legend:", ""] + ["  NIC%d: %s" % (i, n) for i, (n, _b) in enumerate(nics)]
    return "\n".join(lines) + "\n" + LEGEND + "\n".join(legend) + "\n\n"


def write(path, text):
    with open(path, "w") as handle:
        handle.write(text)


def pci_tree(root, layout):
    """``devices/<path>/numa_node`` for every device of the layout, ``bus/pci/devices/<gpu>`` links."""
    devices = os.path.join(root, "devices")
    if os.path.isdir(devices):
        shutil.rmtree(devices)
    for _bdf, path in sorted(layout["tree"].items()):
        full = os.path.join(devices, *path)
        os.makedirs(full, exist_ok=True)
        write(os.path.join(full, "numa_node"), "%d\n" % layout["numa"][path[0]])
    bus = os.path.join(root, "bus", "pci", "devices")
    if os.path.isdir(bus):
        shutil.rmtree(bus)
    os.makedirs(bus)
    for bdf in layout["gpus"]:
        target = os.path.join("..", "..", "..", "devices", *layout["tree"][bdf])
        os.symlink(target, os.path.join(bus, bdf))


PORT = {"state": "4: ACTIVE\n", "phys_state": "5: LinkUp\n", "link_layer": "InfiniBand\n",
        "rate": "400 Gb/sec (4X NDR)\n", "lid": "0x11\n", "sm_lid": "0x1\n"}


# The dual-port front-end NIC of the H200 layouts is RoCE (mlx5_4, mlx5_5).
ETHERNET = ("mlx5_4", "mlx5_5")
ETHERNET_PORT = {"link_layer": "Ethernet\n", "rate": "200 Gb/sec (4X HDR)\n", "lid": "0x0\n", "sm_lid": "0x0\n"}


def nic_links(root, layout, own_class_dirs):
    """``class/infiniband/<dev>``: with ``own_class_dirs`` the case keeps its recorded device directories and gains
    their ``device`` links; else each device lives under its PCI directory, linked from class/ as the kernel does."""
    ib = os.path.join(root, "class", "infiniband")
    os.makedirs(ib, exist_ok=True)
    for index, (name, bdf) in enumerate(layout["nics"]):
        pci = os.path.join("devices", *layout["tree"][bdf])
        if own_class_dirs:
            link_path = os.path.join(ib, name, "device")
            if os.path.lexists(link_path):
                os.remove(link_path)
            os.symlink(os.path.join("..", "..", "..", pci), link_path)
            continue
        dev_dir = os.path.join(root, pci, "infiniband", name)
        port = os.path.join(dev_dir, "ports", "1")
        os.makedirs(port, exist_ok=True)
        ethernet = name in ETHERNET
        for key, value in dict(PORT, **(ETHERNET_PORT if ethernet else {})).items():
            write(os.path.join(port, key), value)
        write(os.path.join(dev_dir, "fw_ver"), "28.39.1002\n")
        write(os.path.join(dev_dir, "hca_type"), "MT4125\n" if ethernet else "MT4129\n")
        write(os.path.join(dev_dir, "node_guid"), "b83f:d203:00a1:%04x\n" % (0x2b30 + index))
        write(os.path.join(dev_dir, "node_type"), "1: CA\n")
        os.symlink(os.path.join("..", "..", "..", bdf), os.path.join(dev_dir, "device"))
        class_link = os.path.join(ib, name)
        if os.path.lexists(class_link):
            os.remove(class_link)
        os.symlink(os.path.join("..", "..", pci, "infiniband", name), class_link)


def write_profiles():
    """``topo.txt`` of every layout's nvidia-smi profile (committed; a layout without a profile gets h200_hgx8's)."""
    profiles = os.path.join(HERE, "nvidia_smi_profiles")
    for name, layout in sorted(LAYOUTS.items()):
        profile = os.path.join(profiles, name)
        if not os.path.isdir(profile):
            shutil.copytree(os.path.join(profiles, "h200_hgx8"), profile)
            host = os.path.join(profile, "host.json")
            with open(host) as handle:
                text = handle.read()
            write(host, re.sub(r'"description": "[^"]*"', '"description": "%s"' % layout["description"], text))
        write(os.path.join(profile, "topo.txt"), topo_text(layout))


def write_sysfs(out):
    """Every sysfs case under ``out``: the committed ones (rdma_sysfs/), "mixed" with the PCI tree of h200_hgx8 and
    its devices' ``device`` links, and the generated layouts. (PCI addresses hold colons, which the collection's
    file names may not: the trees are made here, for the tests and the hardware doubles' installation.)"""
    if os.path.isdir(out):
        shutil.rmtree(out)
    shutil.copytree(os.path.join(HERE, "rdma_sysfs"), out, symlinks=True)
    for name, layout in sorted(LAYOUTS.items()):
        case = "mixed" if name == "h200_hgx8" else name
        root = os.path.join(out, case)
        os.makedirs(root, exist_ok=True)
        pci_tree(root, layout)
        nic_links(root, layout, own_class_dirs=(case == "mixed"))
    return out


_MADE = {}


def sysfs(case):
    """The path of a sysfs case, the trees made once per process in a temporary directory (removed at exit)."""
    if "root" not in _MADE:
        import atexit
        import tempfile
        base = tempfile.mkdtemp(prefix="rdma-sysfs-")
        atexit.register(shutil.rmtree, base, True)
        _MADE["root"] = write_sysfs(os.path.join(base, "rdma_sysfs"))
    return os.path.join(_MADE["root"], case)


def main(argv):
    """No argument: rewrite the profiles' topo.txt. ``--sysfs DIR``: write every sysfs case under DIR."""
    if argv[:1] == ["--sysfs"] and len(argv) == 2:
        write_sysfs(argv[1])
        return 0
    if argv:
        sys.stderr.write("usage: make_rdma_topology.py [--sysfs DIR]\n")
        return 2
    write_profiles()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
