# -*- coding: utf-8 -*-
# Copyright: inference.deepseek_v4 maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Pure parsing and evaluation helpers for GPU host facts.

Nothing here imports Ansible: the functions take the text printed by ``nvidia-smi``,
``nv-fabricmanager``, ``nvidia-ctk`` and ``docker info`` and return plain data, and
``evaluate`` compares such facts with the requirements of a hardware profile, returning
the collection's one problem shape (``module_utils/_problem.py``).
"""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

import json
import re
import xml.etree.ElementTree as ET
from typing import Any, Mapping, Optional, Sequence

from ansible_collections.inference.deepseek_v4.plugins.module_utils._problem import Problem

# The fields the gpu_info module asks nvidia-smi for, in this order.
QUERY_FIELDS = (
    "index",
    "name",
    "uuid",
    "memory.total",
    "compute_cap",
    "driver_version",
    "mig.mode.current",
    "persistence_mode",
)

_NOT_AVAILABLE = ("[N/A]", "N/A", "[Not Supported]", "Not Supported", "")

ARCH_ALIASES = {
    "amd64": "x86_64",
    "x86_64": "x86_64",
    "x64": "x86_64",
    "arm64": "aarch64",
    "aarch64": "aarch64",
    "arm64/v8": "aarch64",
}


def normalize_arch(arch: Any) -> Optional[str]:
    """Map the many spellings of a CPU architecture to ``x86_64`` or ``aarch64``."""
    if arch is None:
        return None
    text = str(arch).strip().lower()
    if text.startswith("linux/"):
        text = text[len("linux/"):]
    return ARCH_ALIASES.get(text, text)


def _clean(value: str) -> Optional[str]:
    value = value.strip()
    return None if value in _NOT_AVAILABLE else value


def _to_int(value: Any) -> Optional[int]:
    if value is None:
        return None
    match = re.match(r"^\s*(\d+)", str(value))
    return int(match.group(1)) if match else None


def _mode_enabled(value: Optional[str]) -> Optional[bool]:
    """``Enabled``/``Disabled`` (any case) to a boolean; ``None`` when not reported."""
    if value is None:
        return None
    text = value.strip().lower()
    if text in ("enabled", "on", "1", "true"):
        return True
    if text in ("disabled", "off", "0", "false"):
        return False
    return None


def version_tuple(version: Any) -> tuple[int, ...]:
    """``"580.95.05"`` -> ``(580, 95, 5)``; non numeric parts are dropped; ``None`` -> ``()``."""
    if version is None:
        return ()
    parts = []
    for piece in re.split(r"[.\-]", str(version).strip()):
        if not piece.isdigit():
            break
        parts.append(int(piece))
    return tuple(parts)


def version_at_least(found: Any, needed: Any) -> bool:
    """Compare dotted versions component by component (``580.95.05`` >= ``580``)."""
    found_t = version_tuple(found)
    needed_t = version_tuple(needed)
    if not found_t:
        return False
    width = max(len(found_t), len(needed_t))
    return found_t + (0,) * (width - len(found_t)) >= needed_t + (0,) * (width - len(needed_t))


def parse_query_csv(text: str, fields: Sequence[str] = QUERY_FIELDS) -> list[dict[str, Any]]:
    """Parse ``nvidia-smi --query-gpu=... --format=csv,noheader,nounits`` output.

    Returns a list of dicts, one per GPU, with typed values.
    """
    gpus = []
    for line in text.splitlines():
        if not line.strip():
            continue
        values = [part.strip() for part in line.split(",")]
        if len(values) != len(fields):
            # A name holding a comma would break the split: join the middle back.
            if len(values) > len(fields) and "name" in fields:
                extra = len(values) - len(fields)
                pos = fields.index("name")
                values = values[:pos] + [", ".join(values[pos:pos + extra + 1])] + values[pos + extra + 1:]
            else:
                raise ValueError("unexpected nvidia-smi query line (%d fields, expected %d): %r"
                                 % (len(values), len(fields), line))
        raw = dict(zip(fields, values))
        gpus.append({
            "index": _to_int(raw.get("index")),
            "name": _clean(raw.get("name", "")),
            "uuid": _clean(raw.get("uuid", "")),
            "memory_total_mib": _to_int(_clean(raw.get("memory.total", ""))),
            "compute_cap": _clean(raw.get("compute_cap", "")),
            "driver_version": _clean(raw.get("driver_version", "")),
            "mig_mode": _clean(raw.get("mig.mode.current", "")),
            "mig_enabled": bool(_mode_enabled(_clean(raw.get("mig.mode.current", "")))),
            "persistence_mode": _mode_enabled(_clean(raw.get("persistence_mode", ""))),
        })
    return gpus


def parse_banner(text: str) -> dict[str, Optional[str]]:
    """Driver and CUDA version from the header of plain ``nvidia-smi``."""
    result = {"smi_version": None, "driver_version": None, "cuda_version": None}
    match = re.search(r"NVIDIA-SMI\s+([0-9][0-9.]*)", text)
    if match:
        result["smi_version"] = match.group(1)
    match = re.search(r"Driver Version:\s*([0-9][0-9.]*)", text)
    if match:
        result["driver_version"] = match.group(1)
    match = re.search(r"CUDA Version:\s*([0-9][0-9.]*)", text)
    if match:
        result["cuda_version"] = match.group(1)
    return result


def _xml_text(node: ET.Element, path: str) -> Optional[str]:
    found = node.find(path)
    if found is None or found.text is None:
        return None
    return _clean(found.text)


def parse_smi_xml(text: str) -> dict[str, Any]:
    """Parse ``nvidia-smi -q -x``: driver/CUDA versions and per-GPU details.

    GPUs are returned in document order; their ``index`` is that order (nvidia-smi
    enumerates in PCI bus order, as the query output does).
    """
    # The document starts with a DOCTYPE naming a DTD that is not available: drop it.
    cleaned = re.sub(r"<!DOCTYPE[^>]*>", "", text, count=1)
    root = ET.fromstring(cleaned)
    result = {
        "driver_version": _xml_text(root, "driver_version"),
        "cuda_version": _xml_text(root, "cuda_version"),
        "attached_gpus": _to_int(_xml_text(root, "attached_gpus")),
        "gpus": [],
    }
    for pos, gpu in enumerate(root.findall("gpu")):
        fabric_state = _xml_text(gpu, "fabric/state")
        result["gpus"].append({
            "index": pos,
            "pci_bus_id": gpu.get("id"),
            "name": _xml_text(gpu, "product_name"),
            "architecture": _xml_text(gpu, "product_architecture"),
            "uuid": _xml_text(gpu, "uuid"),
            "memory_total_mib": _to_int(_xml_text(gpu, "fb_memory_usage/total")),
            "mig_mode": _xml_text(gpu, "mig_mode/current_mig"),
            "mig_enabled": bool(_mode_enabled(_xml_text(gpu, "mig_mode/current_mig"))),
            "persistence_mode": _mode_enabled(_xml_text(gpu, "persistence_mode")),
            "fabric_state": fabric_state,
            "fabric_status": _xml_text(gpu, "fabric/status"),
            "fabric_clique_id": _xml_text(gpu, "fabric/cliqueId"),
            "fabric_cluster_uuid": _xml_text(gpu, "fabric/clusterUuid"),
        })
    return result


def parse_nvlink_status(text: str) -> dict[int, dict[str, int]]:
    """``nvidia-smi nvlink --status``: active link count per GPU index."""
    links = {}
    current = None
    for line in text.splitlines():
        header = re.match(r"^GPU\s+(\d+):", line)
        if header:
            current = int(header.group(1))
            links[current] = {"active": 0, "inactive": 0}
            continue
        link = re.match(r"^\s+Link\s+\d+:\s*(.*)$", line)
        if link and current is not None:
            if "inactive" in link.group(1).lower():
                links[current]["inactive"] += 1
            else:
                links[current]["active"] += 1
    return links


def parse_fabricmanager_version(text: str) -> Optional[str]:
    """``nv-fabricmanager --version`` ("Fabric Manager version is : 580.95.05")."""
    match = re.search(r"version\s+is\s*:\s*([0-9][0-9.]*)", text, re.IGNORECASE)
    if not match:
        match = re.search(r"([0-9]{3}\.[0-9]+(?:\.[0-9]+)?)", text)
    return match.group(1) if match else None


def parse_dpkg_fabricmanager(text: str) -> Optional[str]:
    """``dpkg-query -W -f='${Package} ${Version}\\n' 'nvidia-fabricmanager*'`` -> driver-style version."""
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].startswith("nvidia-fabricmanager"):
            match = re.match(r"^(?:\d+:)?([0-9]+(?:\.[0-9]+)*)", parts[1])
            if match:
                return match.group(1)
    return None


def parse_ctk_version(text: str) -> Optional[str]:
    """``nvidia-ctk --version`` ("NVIDIA Container Toolkit CLI version 1.17.8")."""
    match = re.search(r"version\s+([0-9][0-9.]*)", text)
    return match.group(1) if match else None


def parse_container_cli_version(text: str) -> Optional[str]:
    """``nvidia-container-cli --version`` ("cli-version: 1.17.8")."""
    match = re.search(r"cli-version:\s*([0-9][0-9.]*)", text)
    return match.group(1) if match else None


def parse_docker_info(text: str) -> dict[str, Any]:
    """``docker info --format '{{json .}}'`` -> runtimes, default runtime, CDI spec dirs, architecture."""
    data = json.loads(text)
    runtimes = sorted((data.get("Runtimes") or {}).keys())
    cdi_devices = []
    for dev in data.get("DiscoveredDevices") or []:
        if isinstance(dev, dict) and dev.get("Source") == "cdi":
            cdi_devices.append(dev.get("ID"))
    return {
        "server_version": data.get("ServerVersion"),
        "runtimes": runtimes,
        "default_runtime": data.get("DefaultRuntime"),
        "nvidia_runtime": "nvidia" in runtimes,
        "cdi_spec_dirs": list(data.get("CDISpecDirs") or []),
        "cdi_devices": cdi_devices,
        "architecture": normalize_arch(data.get("Architecture")),
    }


def parse_meminfo(text: str) -> dict[str, Optional[int]]:
    """``/proc/meminfo`` -> ``total_bytes`` (MemTotal) and ``available_bytes`` (MemAvailable); None when absent."""
    values = {}
    for line in text.splitlines():
        match = re.match(r"^(\w+):\s+(\d+)\s*(kB)?\s*$", line)
        if match:
            values[match.group(1)] = int(match.group(2)) * (1024 if match.group(3) else 1)
    return {"total_bytes": values.get("MemTotal"), "available_bytes": values.get("MemAvailable")}


def merge_gpus(query_gpus: Optional[list[dict[str, Any]]],
               xml_gpus: Optional[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Combine the query rows (authoritative) with per-GPU details only the XML has."""
    by_index = {}
    for gpu in xml_gpus or []:
        by_index[gpu["index"]] = gpu
    merged = []
    source = query_gpus if query_gpus else (xml_gpus or [])
    for gpu in source:
        row = dict(gpu)
        extra = by_index.get(row.get("index"), {})
        for key, value in extra.items():
            if row.get(key) is None:
                row[key] = value
        merged.append(row)
    return merged


# ---------------------------------------------------------------------------------------------
# Evaluation
# ---------------------------------------------------------------------------------------------

# What each check's failure means, in a few words (the Problem's message).
MESSAGES = {
    "nvidia_smi": "nvidia-smi is missing or fails",
    "gpu_count": "fewer GPUs than this host needs",
    "gpu_model": "GPU model not of the hardware profile",
    "driver_version": "NVIDIA driver too old",
    "cuda_version": "the driver supports too old a CUDA",
    "gpu_memory": "too little memory per GPU",
    "compute_capability": "compute capability too low",
    "mig_mode": "MIG is enabled",
    "fabricmanager": "Fabric Manager not active on an NVSwitch system",
    "fabricmanager_version": "Fabric Manager version differs from the driver",
    "imex_channels": "no IMEX channel",
    "container_runtime": "no Docker engine with the NVIDIA container toolkit",
    "architecture": "CPU architecture differs from the engine image's",
    "disk_space": "too little free disk for the weights",
    "host_memory": "too little host memory for the LMCache L1 caches and their headroom",
}


def _failure(host: Optional[str], check: str, found: Any, needed: Any, fix: str) -> Problem:
    return Problem(None, found, MESSAGES[check], fix, host=host, needed=needed, check=check)


def _fmt_bytes(value: Optional[float]) -> str:
    if value is None:
        return "unknown"
    return "%.1f GB" % (value / 1e9)


# One function per check: each takes the facts and the requirements and returns its Problems (a list, empty when
# the check passes or is not asked for). CHECKS lists them in the order their problems are reported.

def check_nvidia_smi(facts: Mapping[str, Any], req: Mapping[str, Any]) -> list[Problem]:
    if facts.get("nvidia_smi"):
        return []
    return [_failure(
        req.get("host"), "nvidia_smi",
        "nvidia-smi not found or not working (%s)" % (facts.get("nvidia_smi_error") or "absent"),
        "a working NVIDIA driver with nvidia-smi",
        "install the NVIDIA data-center driver (>= %s, open kernel modules) and reboot" % (req.get("min_driver") or "580"))]


def check_gpu_count(facts: Mapping[str, Any], req: Mapping[str, Any]) -> list[Problem]:
    """At least ``gpu_count`` GPUs, and every index the plan assigns to this host."""
    gpus = facts.get("gpus") or []
    needed_count = req.get("gpu_count") or 0
    indices = req.get("gpu_indices") or []
    if indices:
        needed_count = max(needed_count, max(indices) + 1)
    if not needed_count or len(gpus) >= needed_count:
        return []
    assigned = (" (indices %s assigned by the plan)" % ",".join(str(i) for i in indices)) if indices else ""
    return [_failure(
        req.get("host"), "gpu_count", "%d GPUs" % len(gpus), "%d GPUs%s" % (needed_count, assigned),
        "check `nvidia-smi -L` and `dmesg | grep -i nvrm` for a GPU that fell off the bus (Xid 79), "
        "reseat or replace it, or assign fewer GPUs to this host in the plan")]


def check_gpu_model(facts: Mapping[str, Any], req: Mapping[str, Any]) -> list[Problem]:
    gpus = facts.get("gpus") or []
    allowed = req.get("gpu_names") or []
    if not (allowed and gpus):
        return []
    bad = sorted(set(g.get("name") or "unknown" for g in gpus if (g.get("name") or "") not in allowed))
    if not bad:
        return []
    return [_failure(
        req.get("host"), "gpu_model", ", ".join(bad), "one of: %s" % ", ".join(allowed),
        "run on hosts of the hardware profile's GPU model or choose the matching hardware profile in the plan")]


def check_driver_version(facts: Mapping[str, Any], req: Mapping[str, Any]) -> list[Problem]:
    driver = facts.get("driver_version")
    min_driver = req.get("min_driver")
    if not (min_driver and facts.get("nvidia_smi")) or version_at_least(driver, min_driver):
        return []
    return [_failure(
        req.get("host"), "driver_version", driver or "unknown", ">= %s (CUDA 13 images)" % min_driver,
        "install NVIDIA driver branch %s or newer (with the matching nvidia-fabricmanager on NVSwitch systems) "
        "and reboot" % min_driver)]


def check_cuda_version(facts: Mapping[str, Any], req: Mapping[str, Any]) -> list[Problem]:
    min_cuda = req.get("min_cuda")
    if not (min_cuda and facts.get("nvidia_smi")) or version_at_least(facts.get("cuda_version"), min_cuda):
        return []
    return [_failure(
        req.get("host"), "cuda_version", facts.get("cuda_version") or "unknown", ">= %s" % min_cuda,
        "upgrade the driver: the CUDA version nvidia-smi shows is the newest the driver supports")]


def check_gpu_memory(facts: Mapping[str, Any], req: Mapping[str, Any]) -> list[Problem]:
    gpus = facts.get("gpus") or []
    min_mem = req.get("min_gpu_memory_mib")
    small = [g for g in gpus if (g.get("memory_total_mib") or 0) < min_mem] if min_mem else []
    if not small:
        return []
    return [_failure(
        req.get("host"), "gpu_memory",
        ", ".join("GPU %s: %s MiB" % (g.get("index"), g.get("memory_total_mib")) for g in small),
        ">= %d MiB per GPU" % min_mem,
        "use GPUs with enough memory for the model or a hardware profile that matches these GPUs")]


def check_compute_capability(facts: Mapping[str, Any], req: Mapping[str, Any]) -> list[Problem]:
    gpus = facts.get("gpus") or []
    min_cc = req.get("min_compute_capability")
    low = [g for g in gpus if g.get("compute_cap") and not version_at_least(g.get("compute_cap"), min_cc)] \
        if min_cc else []
    if not low:
        return []
    return [_failure(
        req.get("host"), "compute_capability",
        ", ".join("GPU %s: %s" % (g.get("index"), g.get("compute_cap")) for g in low),
        ">= %s" % min_cc, "use GPUs of the hardware profile's architecture")]


def check_mig_mode(facts: Mapping[str, Any], req: Mapping[str, Any]) -> list[Problem]:
    gpus = facts.get("gpus") or []
    mig = [g for g in gpus if g.get("mig_enabled")] if req.get("require_mig_disabled", True) else []
    if not mig:
        return []
    return [_failure(
        req.get("host"), "mig_mode", "MIG enabled on GPU %s" % ",".join(str(g.get("index")) for g in mig),
        "MIG disabled on every GPU",
        "stop GPU clients, run `nvidia-smi -i <index> -mig 0` for each listed GPU, then reset the GPUs or reboot")]


def _needs_fabricmanager(facts: Mapping[str, Any], req: Mapping[str, Any]) -> bool:
    """``require_fabricmanager`` when set, else whether the host has NVSwitches (said by ``nvswitch`` or detected)."""
    nvswitch = req.get("nvswitch")
    nvswitch_detected = bool((facts.get("nvswitch") or {}).get("present"))
    needs_fm = req.get("require_fabricmanager")
    if needs_fm is not None:
        return needs_fm
    return bool(nvswitch) or (nvswitch is None and nvswitch_detected)


def check_fabricmanager(facts: Mapping[str, Any], req: Mapping[str, Any]) -> list[Problem]:
    fm = facts.get("fabricmanager") or {}
    if not _needs_fabricmanager(facts, req) or fm.get("active"):
        return []
    return [_failure(
        req.get("host"), "fabricmanager", "nvidia-fabricmanager %s" % (fm.get("state") or "not installed"),
        "nvidia-fabricmanager active (NVSwitch system; otherwise CUDA error 802)",
        "install nvidia-fabricmanager matching driver %s and run `systemctl enable --now nvidia-fabricmanager`"
        % (facts.get("driver_version") or "version"))]


def check_fabricmanager_version(facts: Mapping[str, Any], req: Mapping[str, Any]) -> list[Problem]:
    fm = facts.get("fabricmanager") or {}
    driver = facts.get("driver_version")
    if not _needs_fabricmanager(facts, req) or not req.get("require_fabricmanager_version_match", True):
        return []
    if not (fm.get("installed") or fm.get("version")):
        return []
    fm_version = fm.get("version")
    if fm_version is not None and not (driver and fm_version != driver):
        return []
    return [_failure(
        req.get("host"), "fabricmanager_version", fm_version or "unknown",
        "%s (equal to the driver)" % (driver or "the driver version"),
        "install nvidia-fabricmanager %s (same version as the driver), then restart nvidia-fabricmanager"
        % (driver or "<driver version>"))]


def check_imex_channels(facts: Mapping[str, Any], req: Mapping[str, Any]) -> list[Problem]:
    if not req.get("imex") or (facts.get("imex") or {}).get("channels"):
        return []
    return [_failure(
        req.get("host"), "imex_channels", "no IMEX channel devices",
        "/dev/nvidia-caps-imex-channels/channel0 (multi-node NVLink on GB200)",
        "start nvidia-imex and create the channel: `mknod /dev/nvidia-caps-imex-channels/channel0 c "
        "$(awk '$2==\"nvidia-caps-imex-channels\"{print $1}' /proc/devices) 0` (not persistent across reboots), "
        "or load nvidia with NVreg_CreateImexChannel0=1")]


def check_container_runtime(facts: Mapping[str, Any], req: Mapping[str, Any]) -> list[Problem]:
    """A Docker engine that answers, then the NVIDIA container toolkit (one problem at most)."""
    if not req.get("require_container_runtime"):
        return []
    docker = facts.get("docker") or {}
    toolkit = facts.get("container_toolkit") or {}
    if not docker.get("available"):
        return [_failure(
            req.get("host"), "container_runtime",
            "docker not answering (%s)" % (docker.get("error") or "docker not installed"),
            "a running Docker engine", "install Docker and run `systemctl enable --now docker`")]
    if toolkit.get("hook") or toolkit.get("container_cli_version") or docker.get("nvidia_runtime"):
        return []
    return [_failure(
        req.get("host"), "container_runtime", "Docker without the NVIDIA container toolkit",
        "nvidia-container-toolkit (docker run --gpus all)",
        "install nvidia-container-toolkit, run `nvidia-ctk runtime configure --runtime=docker` and restart docker")]


def check_architecture(facts: Mapping[str, Any], req: Mapping[str, Any]) -> list[Problem]:
    arch = normalize_arch(req.get("arch"))
    found_arch = normalize_arch(facts.get("architecture"))
    if not (arch and found_arch and arch != found_arch):
        return []
    return [_failure(
        req.get("host"), "architecture", found_arch, "%s (the engine image platform)" % arch,
        "run this hardware profile on %s hosts or select the profile and image built for %s" % (arch, found_arch))]


def _disk_required(disk: Mapping[str, Any], req: Mapping[str, Any]) -> Optional[int]:
    """Free bytes needed at the weights cache: an absolute figure, or what is still to download plus headroom."""
    required = req.get("disk_required_bytes")
    if not required and req.get("weights_size_bytes"):
        missing = max(0, int(req["weights_size_bytes"]) - int(disk.get("weights_present_bytes") or 0))
        required = missing + int(req.get("disk_headroom_bytes") or 0) if missing else 0
    return required


def check_disk_space(facts: Mapping[str, Any], req: Mapping[str, Any]) -> list[Problem]:
    disk = facts.get("disk") or {}
    required = _disk_required(disk, req)
    if not required:
        return []
    free = disk.get("free_bytes")
    if free is not None and free >= required:
        return []
    return [_failure(
        req.get("host"), "disk_space",
        "%s free at %s" % (_fmt_bytes(free), disk.get("checked_path") or disk.get("path") or "?"),
        "%s free for the weights at %s" % (_fmt_bytes(required), disk.get("path") or "?"),
        "free space or point the weights cache directory (plan weights.cache_dir) at a larger volume")]


def _fmt_gib(value: Optional[float]) -> str:
    return "unknown" if value is None else "%.1f GiB" % (value / 2.0 ** 30)


def check_host_memory(facts: Mapping[str, Any], req: Mapping[str, Any]) -> list[Problem]:
    """MemTotal holds what the plan's ``host_memory`` asks: the L1 caches of the host's LMCache servers (pinned host
    memory) plus a headroom for the OS, Docker and the engines. MemTotal, not MemAvailable: on a re-run the running
    servers already hold their caches, and MemAvailable moves with page cache and load; the verdict must not."""
    need = req.get("host_memory") or {}
    required = need.get("required_bytes")
    if not required:
        return []
    total = (facts.get("memory") or {}).get("total_bytes")
    if total is not None and total >= int(required):
        return []
    servers = int(need.get("lmcache_servers") or 1)
    variable = need.get("variable") or "plan_lmcache_l1_size_gb"
    headroom_variable = need.get("headroom_variable") or "plan_lmcache_memory_headroom_gb"
    fit = "" if total is None else " (at most %d GB per server with this headroom)" % max(
        0, (total - int(need.get("headroom_bytes") or 0)) // servers // 2 ** 30)
    needed = "%s: %s of LMCache L1 (%d server(s), %s) + %s headroom (%s)" % (
        _fmt_gib(int(required)), _fmt_gib(need.get("lmcache_l1_bytes")), servers, variable,
        _fmt_gib(need.get("headroom_bytes")), headroom_variable)
    fix = ("lower %s%s or %s, run fewer LMCache servers on this host (plan_replicas_per_host), or add memory"
           % (variable, fit, headroom_variable))
    return [Problem(variable, "MemTotal %s" % _fmt_gib(total), MESSAGES["host_memory"], fix, host=req.get("host"),
                    needed=needed, check="host_memory")]


CHECKS = [check_nvidia_smi, check_gpu_count, check_gpu_model, check_driver_version, check_cuda_version,
          check_gpu_memory, check_compute_capability, check_mig_mode, check_fabricmanager,
          check_fabricmanager_version, check_imex_channels, check_container_runtime, check_architecture,
          check_disk_space, check_host_memory]


def evaluate(facts: Mapping[str, Any], req: Mapping[str, Any]) -> list[Problem]:
    """Compare gpu_info output with requirements; return a list of Problems (empty: the host passes).

    ``facts`` is the ``gpu_info`` module result (``gpus``, ``driver_version``, ``nvswitch``,
    ``fabricmanager``, ``imex``, ``container_toolkit``, ``docker``, ``architecture``, ``disk``).
    ``req`` keys (all optional; a missing or ``None`` key skips its check):

    ``host``, ``gpu_count`` (minimum), ``gpu_indices`` (indices the host's services use),
    ``gpu_names`` (allowed product names), ``min_driver``, ``min_cuda``, ``min_gpu_memory_mib``,
    ``min_compute_capability``, ``require_mig_disabled``, ``nvswitch`` (``True``/``False``/``None`` =
    detect), ``require_fabricmanager``, ``require_fabricmanager_version_match``, ``imex``,
    ``require_container_runtime``, ``arch``, ``disk_required_bytes`` (free bytes needed at the weights
    cache), or ``weights_size_bytes`` with ``disk_headroom_bytes`` (needed = size - bytes already cached + headroom),
    ``host_memory`` (the plan's ``hosts[host].host_memory``: MemTotal >= its ``required_bytes``).

    Each Problem names the ``check`` that failed, the ``host``, what was ``found``, what is ``needed``, a short
    ``message`` and the ``fix``; ``variable`` is None (the host, not a setting, is at fault) except for
    ``host_memory``, which names the plan setting that sized the need. The checks are those
    of ``CHECKS``, in its order.
    """
    problems = []
    for check in CHECKS:
        problems.extend(check(facts, req))
    return problems
