# -*- coding: utf-8 -*-
# Copyright: inference.deepseek_v4 maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Each GPU's nearest RDMA NIC, from ``nvidia-smi topo -m`` and the PCI tree under sysfs.

A rank whose KV leaves through a NIC on another PCIe switch or NUMA node crosses the CPU interconnect: NIXL measured
0.76 GB/s instead of 15-25 GB/s with every rank on one NIC. vLLM pins each worker to a NIC from
``VLLM_GPU_NIC_PCIE_MAPPING`` (``<gpu_bdf>=<nic_bdf>,...``; vllm#42083); this module derives that map.

No Ansible imports: everything takes text or a path and returns plain data; the checks return the collection's one
problem shape (``module_utils/_problem.py``).
"""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

import os
import re
from typing import Any, Container, Iterable, Mapping, Optional

from ansible_collections.inference.deepseek_v4.plugins.module_utils._problem import Problem

# nvidia-smi's link classes, nearest first (NV# links join GPUs only).
LINKS = ("PIX", "PXB", "PHB", "NODE", "SYS")
LINK_WORDS = {
    "PIX": "at most one PCIe bridge", "PXB": "several PCIe bridges, no host bridge",
    "PHB": "through the PCIe host bridge (the CPU)", "NODE": "across PCIe host bridges of one NUMA node",
    "SYS": "across the CPU interconnect between NUMA nodes (QPI/UPI)",
}
# What a rank's NIC must be to count as affine: ``pcie`` (a PCIe switch shared with the GPU: PIX or PXB; HGX boards),
# ``numa`` (the GPU's NUMA node: GB200, whose GPUs hang off the Grace CPU on NVLink-C2C and share no PCIe path with
# any NIC, so nvidia-smi says SYS for every pair).
AFFINITY_RULES = ("pcie", "numa")
BDF = re.compile(r"^(?:([0-9a-fA-F]{1,8}):)?([0-9a-fA-F]{1,2}):([0-9a-fA-F]{1,2})\.([0-7])$")


def link_rank(link: Optional[str]) -> int:
    """Position of a link class in LINKS; unknown links rank last."""
    return LINKS.index(link) if link in LINKS else len(LINKS)


def normalize_bdf(text: Optional[str]) -> Optional[str]:
    """``00000000:18:00.0`` (nvidia-smi), ``0000:18:00.0`` (sysfs), ``18:00.0`` -> ``0000:18:00.0``; None if not one."""
    match = BDF.match((text or "").strip())
    if not match:
        return None
    domain, bus, dev, fn = match.groups()
    return "%04x:%02x:%02x.%s" % (int(domain or "0", 16), int(bus, 16), int(dev, 16), fn)


def parse_gpu_bus_ids(text: Optional[str]) -> dict[int, str]:
    """``nvidia-smi --query-gpu=index,pci.bus_id --format=csv,noheader`` -> ``{index: bdf}``."""
    out = {}
    for line in (text or "").splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 2 and parts[0].isdigit() and normalize_bdf(parts[1]):
            out[int(parts[0])] = normalize_bdf(parts[1])
    return out


def parse_numa_list(text: Optional[str]) -> set[int]:
    """``0,3-9,11-17`` -> ``{0, 3, ..., 17}``; ``N/A`` or empty -> empty set."""
    nodes = set()
    for item in (text or "").split(","):
        first, _sep, last = item.strip().partition("-")
        if first.isdigit() and (not last or last.isdigit()):
            nodes.update(range(int(first), int(last or first) + 1))
    return nodes


def _row_cells(line: str, width: int) -> tuple[str, list[str], list[str]]:
    if "\t" in line:
        cells = [c.strip() for c in line.split("\t")]
        return cells[0], cells[1:1 + width], [c for c in cells[1 + width:] if c]
    tokens = line.split()
    return tokens[0], tokens[1:1 + width], tokens[1 + width:]


def parse_topo(text: Optional[str]) -> dict[str, Any]:
    """``nvidia-smi topo -m`` -> ``{"gpus": {index: {"links": {nic: link}, "numa": [..], "cpus": str}},
    "nics": [name, ...]}``. NIC columns (``NIC<n>``) are named from the "NIC Legend"; older drivers name them by
    device (``mlx5_0``) in the header itself."""
    lines = (text or "").splitlines()
    legend = dict(re.findall(r"^\s+(NIC\d+):\s*(\S+)\s*$", text or "", re.M))
    # The header names the columns (GPU0 GPU1 ... NIC0 ...); a row starts with its own name and " X " or a link.
    header = next((line for line in lines if line.split()[:1] == ["GPU0"] and line.split()[1:2] not in (["X"], [])
                   and not line.startswith("GPU0")), None)
    if header is None:
        return {"gpus": {}, "nics": []}
    columns = []
    for token in header.split():
        if token == "CPU":
            break
        columns.append(token)
    nics = [legend.get(c, c) for c in columns if not c.startswith("GPU")]
    gpus = {}
    for line in lines:
        match = re.match(r"^GPU(\d+)\s", line)
        if not match:
            continue
        _name, cells, rest = _row_cells(line, len(columns))
        links = dict((legend.get(col, col), cell) for col, cell in zip(columns, cells) if not col.startswith("GPU"))
        gpus[int(match.group(1))] = {"links": links, "cpus": rest[0] if rest else None,
                                     "numa": sorted(parse_numa_list(rest[1])) if len(rest) > 1 else []}
    return {"gpus": gpus, "nics": nics}


def _read(path: str) -> Optional[str]:
    try:
        with open(path) as handle:
            return handle.read().strip()
    except (IOError, OSError):
        return None


def _pci_entry(root: str, link: str) -> Optional[dict[str, Any]]:
    """The PCI device a sysfs symlink points at: its BDF, its path below ``<root>/devices`` and its NUMA node."""
    if not os.path.lexists(link):
        return None
    real = os.path.realpath(link)
    devices = os.path.realpath(os.path.join(root, "devices"))
    rel = os.path.relpath(real, devices)
    path = rel.split(os.sep) if not rel.startswith("..") else [os.path.basename(real)]
    numa = _read(os.path.join(real, "numa_node"))
    return {"bdf": normalize_bdf(os.path.basename(real)), "path": path,
            "numa": int(numa) if numa is not None and numa.lstrip("-").isdigit() and int(numa) >= 0 else None}


def read_nic_pci(root: str = "/sys") -> dict[str, dict[str, Any]]:
    """``{rdma device: {"bdf", "path", "numa"}}`` from ``<root>/class/infiniband/<dev>/device``."""
    base = os.path.join(root, "class", "infiniband")
    out = {}
    if os.path.isdir(base):
        for name in sorted(os.listdir(base)):
            entry = _pci_entry(root, os.path.join(base, name, "device"))
            if entry and entry["bdf"]:
                out[name] = entry
    return out


def read_gpu_pci(bus_ids: Mapping[int, str], root: str = "/sys") -> dict[int, dict[str, Any]]:
    """``{index: {"bdf", "path", "numa"}}`` for GPUs by bus id, from ``<root>/bus/pci/devices/<bdf>``."""
    out = {}
    for index, bdf in sorted(bus_ids.items()):
        entry = _pci_entry(root, os.path.join(root, "bus", "pci", "devices", bdf))
        out[index] = entry or {"bdf": bdf, "path": None, "numa": None}
    return out


def sysfs_link(gpu: Mapping[str, Any], nic: Mapping[str, Any]) -> Optional[str]:
    """The nvidia-smi class of a GPU/NIC pair from their PCI paths (``pci<dom>:<bus>/<bridge>/.../<bdf>``)."""
    pa, pb = gpu.get("path"), nic.get("path")
    if not pa or not pb or len(pa) < 2 or len(pb) < 2:
        return None
    if pa[0] != pb[0]:
        if gpu.get("numa") is None or nic.get("numa") is None:
            return None
        return "NODE" if gpu["numa"] == nic["numa"] else "SYS"
    common = 0
    while common < min(len(pa), len(pb)) and pa[common] == pb[common]:
        common += 1
    if common <= 1:
        return "PHB"
    return "PIX" if common == len(pa) - 1 == len(pb) - 1 else "PXB"


def _gpu_numa(index: int, topo: Mapping[str, Any], gpu: Mapping[str, Any]) -> set[int]:
    nodes = set((topo.get("gpus", {}).get(index) or {}).get("numa") or [])
    if not nodes and gpu.get("numa") is not None:
        nodes = {gpu["numa"]}
    return nodes


def derive(gpus: Mapping[int, Mapping[str, Any]], topo: Mapping[str, Any], nics: Mapping[str, Mapping[str, Any]],
           usable: Optional[Container[str]] = None) -> list[dict[str, Any]]:
    """Each GPU's nearest NIC: ``[{"gpu", "bus_id", "nic", "nic_bus_id", "link", "numa_local", "source"}]``.

    ``gpus``: ``read_gpu_pci``; ``topo``: ``parse_topo`` (may be empty: the PCI paths decide then); ``nics``:
    ``read_nic_pci``; ``usable``: the NICs allowed (those with an ACTIVE RDMA port), None for all. The nearest link
    wins, then a NIC on the GPU's NUMA node, then the NIC fewest GPUs took so far, then the name.
    """
    names = sorted(set(topo.get("nics") or []) | set(nics))
    if usable is not None:
        names = [n for n in names if n in usable]
    taken = dict((n, 0) for n in names)
    result = []
    for index in sorted(gpus):
        gpu = gpus[index]
        links = (topo.get("gpus", {}).get(index) or {}).get("links") or {}
        numa = _gpu_numa(index, topo, gpu)
        best = None
        for name in names:
            nic = nics.get(name) or {}
            link, source = (links[name], "nvidia-smi topo -m") if name in links else (sysfs_link(gpu, nic), "sysfs")
            local = nic.get("numa") is not None and nic["numa"] in numa
            key = (link_rank(link), 0 if local else 1, taken[name], name)
            if best is None or key < best[0]:
                best = (key, name, link, local, source)
        if best is None:
            result.append({"gpu": index, "bus_id": gpu.get("bdf"), "nic": None, "nic_bus_id": None, "link": None,
                           "numa_local": False, "source": None})
            continue
        _key, name, link, local, source = best
        taken[name] += 1
        result.append({"gpu": index, "bus_id": gpu.get("bdf"), "nic": name,
                       "nic_bus_id": (nics.get(name) or {}).get("bdf"), "link": link, "numa_local": local,
                       "source": source})
    return result


def is_affine(entry: Mapping[str, Any], rule: str = "pcie") -> bool:
    """Whether a ``derive`` entry's NIC is close enough under ``rule`` (AFFINITY_RULES)."""
    if not entry.get("nic"):
        return False
    if rule == "numa":
        return link_rank(entry.get("link")) <= LINKS.index("NODE") or bool(entry.get("numa_local"))
    return link_rank(entry.get("link")) <= LINKS.index("PXB")


def mapping(entries: Iterable[Mapping[str, Any]]) -> str:
    """``VLLM_GPU_NIC_PCIE_MAPPING``'s value: ``<gpu_bdf>=<nic_bdf>`` for every GPU with a NIC of known address."""
    return ",".join("%s=%s" % (e["bus_id"], e["nic_bus_id"]) for e in entries if e.get("bus_id") and e.get("nic_bus_id"))


def _needed(rule: str) -> str:
    if rule == "numa":
        return "an ACTIVE RDMA NIC on the GPU's NUMA node"
    return "an ACTIVE RDMA NIC on the GPU's PCIe switch (PIX or PXB in `nvidia-smi topo -m`)"


def affinity_problems(entries: Iterable[Mapping[str, Any]], gpus: Optional[Iterable[Any]] = None, rule: str = "pcie",
                      host: Optional[str] = None, unusable: Iterable[str] = ()) -> list[Problem]:
    """A Problem per GPU of ``gpus`` (all when None) without an affine NIC, or whose NIC's address is unknown (the
    map cannot name it). ``unusable``: RDMA devices left out for having no ACTIVE port (named in the message)."""
    wanted = None if gpus is None else set(int(g) for g in gpus)
    down = (" (not ACTIVE, so not counted: %s)" % ", ".join(sorted(unusable))) if unusable else ""
    problems = []
    for entry in entries:
        if wanted is not None and entry["gpu"] not in wanted:
            continue
        gpu = "GPU%d (%s)" % (entry["gpu"], entry.get("bus_id") or "bus id unknown")
        if not entry.get("nic"):
            problems.append(Problem(
                None, "%s: no RDMA NIC at all%s" % (gpu, down), "a rank has no RDMA NIC", "install or bring up an "
                "RDMA NIC for it (`ibv_devinfo`, `nvidia-smi topo -m`), or move the engine off GPU%d" % entry["gpu"],
                host=host, check="nic_affinity", needed=_needed(rule)))
            continue
        if not is_affine(entry, rule):
            problems.append(Problem(
                None, "%s: nearest RDMA NIC %s is %s (%s)%s" % (
                    gpu, entry["nic"], entry.get("link") or "of unknown distance",
                    LINK_WORDS.get(entry.get("link"), "no PCIe path known"), down),
                "a rank has no RDMA NIC next to its GPU: its KV would cross the CPU interconnect (NIXL measured 0.76 "
                "GB/s instead of 15-25 GB/s)",
                "seat or repair the NIC that shares GPU%d's PCIe switch (a missing mlx5 device in `ibv_devinfo`, a "
                "port not ACTIVE), or move the engine off GPU%d; rdma_check_nic_affinity: false accepts the slow "
                "path" % (entry["gpu"], entry["gpu"]), host=host, check="nic_affinity", needed=_needed(rule)))
            continue
        if not entry.get("nic_bus_id"):
            problems.append(Problem(
                None, "%s: NIC %s has no PCI address under /sys/class/infiniband/%s/device" % (
                    gpu, entry["nic"], entry["nic"]),
                "the GPU/NIC map cannot name the NIC", "check that sysfs is mounted (rdma_sysfs_root) and the NIC's "
                "driver is bound", host=host, check="nic_affinity", needed="the NIC's PCI address"))
    return problems
