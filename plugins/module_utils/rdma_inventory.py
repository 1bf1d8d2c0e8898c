# -*- coding: utf-8 -*-
# Copyright: inference.deepseek_v4 maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Pure helpers for RDMA host facts: sysfs, ``ibv_devinfo``, ``/proc/modules``, ``/proc/<pid>/limits`` and the
listening TCP sockets (``ss -Hltnp``, else ``/proc/net/tcp*``), and the checks of a host for KV transfer.

No Ansible imports: everything takes a path or text and returns plain data; the checks return the collection's one
problem shape (``module_utils/_problem.py``).
"""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

import os
import re
from typing import Any, Container, Iterable, Mapping, Optional, Sequence, Union

from ansible_collections.inference.deepseek_v4.plugins.module_utils._problem import Problem

RDMA_LINK_LAYERS = ("InfiniBand", "Ethernet")


def _read(path: str) -> Optional[str]:
    try:
        with open(path) as handle:
            return handle.read().strip()
    except (IOError, OSError):
        return None


def parse_state(text: Optional[str]) -> Optional[str]:
    """sysfs ``state`` / ``phys_state`` (``"4: ACTIVE"``, ``"5: LinkUp"``) -> ``"ACTIVE"`` / ``"LinkUp"``."""
    if text is None:
        return None
    match = re.match(r"^\s*\d+:\s*(\S+)", text)
    return match.group(1) if match else text.strip() or None


def parse_rate(text: Optional[str]) -> Optional[Union[int, float]]:
    """``"400 Gb/sec (4X NDR)"`` -> ``400`` (Gb/s, a float when fractional); ``None`` when unknown."""
    if not text:
        return None
    match = re.match(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*Gb/sec", text)
    if not match:
        return None
    value = float(match.group(1))
    return int(value) if value.is_integer() else value


def read_sysfs(root: str = "/sys") -> dict[str, dict[str, Any]]:
    """Devices and ports under ``<root>/class/infiniband``.

    Returns ``{device: {"fw_ver", "hca_type", "node_guid", "ports": {port: {...}}}}``.
    """
    base = os.path.join(root, "class", "infiniband")
    devices = {}
    if not os.path.isdir(base):
        return devices
    for dev in sorted(os.listdir(base)):
        dev_path = os.path.join(base, dev)
        ports = {}
        ports_path = os.path.join(dev_path, "ports")
        if os.path.isdir(ports_path):
            for port in sorted(os.listdir(ports_path), key=lambda p: (len(p), p)):
                port_path = os.path.join(ports_path, port)
                raw_state = _read(os.path.join(port_path, "state"))
                raw_rate = _read(os.path.join(port_path, "rate"))
                ports[port] = {
                    "state": parse_state(raw_state),
                    "phys_state": parse_state(_read(os.path.join(port_path, "phys_state"))),
                    "link_layer": _read(os.path.join(port_path, "link_layer")),
                    "rate": raw_rate,
                    "rate_gbps": parse_rate(raw_rate),
                    "netdev": _read(os.path.join(port_path, "gid_attrs", "ndevs", "0")),
                }
        devices[dev] = {
            "fw_ver": _read(os.path.join(dev_path, "fw_ver")),
            "hca_type": _read(os.path.join(dev_path, "hca_type")),
            "node_guid": _read(os.path.join(dev_path, "node_guid")),
            "ports": ports,
        }
    return devices


def parse_ibv_devinfo(text: str) -> dict[str, dict[str, Any]]:
    """``ibv_devinfo`` output -> ``{device: {"transport", "fw_ver", ..., "ports": {port: {...}}}}``."""
    devices = {}
    dev = None
    port = None
    for line in text.splitlines():
        if not line.strip():
            continue
        match = re.match(r"^hca_id:\s*(\S+)", line)
        if match:
            dev = {"ports": {}}
            devices[match.group(1)] = dev
            port = None
            continue
        if dev is None:
            continue
        match = re.match(r"^\s+port:\s*(\d+)", line)
        if match:
            port = {}
            dev["ports"][match.group(1)] = port
            continue
        match = re.match(r"^\s+([a-z_]+):\s*(.*?)\s*$", line)
        if not match:
            continue
        key, value = match.group(1), match.group(2)
        if port is not None:
            if key == "state":
                state = re.match(r"^PORT_(\S+)", value)
                value = state.group(1) if state else value
            port[key] = value
        else:
            dev[key] = value
    return devices


def merge_ibv(devices: dict[str, dict[str, Any]], ibv: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Add ``ibv_devinfo`` details (transport, MTU, LID) to sysfs devices; add devices sysfs missed."""
    merged = dict((name, dict(info, ports=dict((p, dict(v)) for p, v in info["ports"].items())))
                  for name, info in devices.items())
    for name, info in ibv.items():
        target = merged.setdefault(name, {"fw_ver": info.get("fw_ver"), "hca_type": None,
                                          "node_guid": info.get("node_guid"), "ports": {}})
        target["transport"] = info.get("transport")
        if not target.get("fw_ver"):
            target["fw_ver"] = info.get("fw_ver")
        for port, pinfo in info.get("ports", {}).items():
            tport = target["ports"].setdefault(port, {"state": pinfo.get("state"), "phys_state": None,
                                                      "link_layer": pinfo.get("link_layer"), "rate": None,
                                                      "rate_gbps": None, "netdev": None})
            tport["active_mtu"] = pinfo.get("active_mtu")
            tport["port_lid"] = pinfo.get("port_lid")
    return merged


def active_ports(devices: dict[str, dict[str, Any]]) -> list[str]:
    """``["mlx5_0/1", ...]`` for ports in state ACTIVE with an RDMA link layer."""
    result = []
    for dev in sorted(devices):
        for port, info in sorted(devices[dev]["ports"].items()):
            if info.get("state") == "ACTIVE" and (info.get("link_layer") or "InfiniBand") in RDMA_LINK_LAYERS:
                result.append("%s/%s" % (dev, port))
    return result


def parse_proc_modules(text: str) -> set[str]:
    """``/proc/modules`` -> set of loaded module names."""
    return set(line.split()[0] for line in text.splitlines() if line.strip())


def parse_limits(text: str, name: str = "Max locked memory") -> dict[str, Any]:
    """A row of ``/proc/<pid>/limits`` -> ``{"soft", "hard", "unit", "unlimited"}``; soft/hard are ints or ``"unlimited"``."""
    for line in text.splitlines():
        if line.startswith(name):
            parts = line[len(name):].split()
            if len(parts) < 2:
                break

            def value(item: str) -> Union[str, int]:
                return "unlimited" if item == "unlimited" else int(item)
            soft, hard = value(parts[0]), value(parts[1])
            return {"soft": soft, "hard": hard, "unit": parts[2] if len(parts) > 2 else None,
                    "unlimited": soft == "unlimited" and hard == "unlimited"}
    return {"soft": None, "hard": None, "unit": None, "unlimited": False}


def transfer_problems(facts: Mapping[str, Any], require_rdma: bool, device_names: Optional[Iterable[str]] = None,
                      host: Optional[str] = None, protocol_variable: Optional[str] = None) -> list[Problem]:
    """Why the host cannot carry KV transfer over RDMA; an empty list when it can or RDMA is not required.

    With ``require_rdma`` the host needs an ACTIVE InfiniBand/RoCE port, and every device named in ``device_names``
    (Mooncake ``device_name``) one of its own. ``protocol_variable``, when given, is the setting that moves the
    transfer to TCP instead (named in the fix).
    """
    problems = []
    if not require_rdma:
        return problems
    active = facts.get("active_ports") or []
    if not active:
        found = ", ".join("%s/%s %s (%s)" % (dev, port, info.get("state"), info.get("link_layer"))
                          for dev, info_dev in sorted((facts.get("devices") or {}).items())
                          for port, info in sorted(info_dev["ports"].items())) or "no RDMA devices"
        fix = "bring a port up (cabling, subnet manager `opensm`, `ip link set <netdev> up`)"
        if protocol_variable:
            fix += " or set %s: tcp (slower, not validated for DeepSeek-V4)" % protocol_variable
        problems.append(Problem(
            None, found, "no ACTIVE RDMA port for the KV transfer", fix, host=host, check="rdma_port",
            needed="at least one ACTIVE InfiniBand or RoCE port"))
    for name in device_names or []:
        if not any(item.startswith(name + "/") for item in active):
            problems.append(Problem(
                None, "%s without an ACTIVE port (active: %s)" % (name, ", ".join(active) or "none"),
                "an RDMA device the transfer engine is told to use is not up", "correct the device list or bring "
                "the device up", host=host, check="rdma_device", needed="an ACTIVE port on %s" % name))
    return problems


def peermem_problems(facts: Mapping[str, Any], require_peermem: bool, host: Optional[str] = None) -> list[Problem]:
    """``nvidia_peermem`` must be loaded when GPU memory is registered through it (the plan's ``transfer.peermem``)."""
    if not require_peermem or (facts.get("kernel_modules") or {}).get("nvidia_peermem"):
        return []
    return [Problem(
        None, "nvidia_peermem not in /proc/modules", "GPUDirect RDMA kernel module not loaded",
        "install the NVIDIA driver's nvidia-peermem module (part of the driver since 470) and run "
        "`modprobe nvidia_peermem`", host=host, check="nvidia_peermem",
        needed='nvidia_peermem loaded (WITH_NVIDIA_PEERMEM=1; else "Failed to register memory ... Bad address [14]")')]


def _port_of(address: str) -> Optional[int]:
    """``0.0.0.0:8998``, ``[::]:8998``, ``*:8998``, ``127.0.0.53%lo:53`` -> the port number, None when unreadable."""
    match = re.search(r":(\d+)$", address)
    return int(match.group(1)) if match else None


def parse_ss_listeners(text: str) -> list[dict[str, Any]]:
    """``ss -Hltnp`` -> ``[{"port", "address", "process"}]`` (process: the ``users:(...)`` column or None)."""
    listeners = []
    for line in text.splitlines():
        parts = line.split()
        # State Recv-Q Send-Q Local:Port Peer:Port [Process]
        if len(parts) < 5:
            continue
        port = _port_of(parts[3])
        if port is None:
            continue
        listeners.append({"port": port, "address": parts[3], "process": " ".join(parts[5:]) or None})
    return listeners


def parse_proc_net_tcp(text: str) -> list[dict[str, Any]]:
    """``/proc/net/tcp`` or ``tcp6`` -> the listening sockets as ``parse_ss_listeners`` returns them (no process)."""
    listeners = []
    for line in text.splitlines()[1:]:
        parts = line.split()
        if len(parts) < 4 or parts[3] != "0A":  # 0A: TCP_LISTEN
            continue
        address, _sep, port = parts[1].rpartition(":")
        if len(address) == 8:  # IPv4, little-endian hex
            address = ".".join(str(int(address[i:i + 2], 16)) for i in (6, 4, 2, 0))
        listeners.append({"port": int(port, 16), "address": "%s:%d" % (address, int(port, 16)), "process": None})
    return listeners


def port_label(entry: Mapping[str, Any]) -> str:
    """``8998 (mooncake_bootstrap of deepseek-v4-prefill)``; a range shows ``first-last``."""
    first, last = int(entry["first"]), int(entry.get("last") or entry["first"])
    span = "" if first == last else " %d-%d" % (first, last)
    return "%s%s of %s" % (entry.get("name") or "port", span, entry.get("service") or "this host")


def port_problems(listeners: Iterable[Mapping[str, Any]], ports: Iterable[Mapping[str, Any]],
                  own_services: Container[str] = (), host: Optional[str] = None) -> list[Problem]:
    """A Problem per port of ``ports`` (each ``first``..``last``, with ``service``, ``name``, ``variable``) that a
    listener in ``listeners`` holds, unless its service is in ``own_services`` (its own container runs)."""
    by_port = {}
    for item in listeners:
        by_port.setdefault(item["port"], []).append(item)
    problems = []
    for entry in ports:
        if entry.get("service") in own_services:
            continue
        first, last = int(entry["first"]), int(entry.get("last") or entry["first"])
        for port in range(first, last + 1):
            held = by_port.get(port)
            if not held:
                continue
            found = "port %d (%s) held by %s" % (port, port_label(entry), " | ".join(
                "%s %s" % (item["address"], item["process"] or "(process unknown)") for item in held))
            variable = entry.get("variable")
            problems.append(Problem(
                None, found, "a KV transfer port is in use",
                "stop that process or move the port (%s)" % (variable or "the plan's port setting"),
                host=host, check="transfer_port", needed="free"))
    return problems


def parse_systemctl_show(text: Optional[str]) -> dict[str, str]:
    """``systemctl show UNIT -p NAME ...`` (``NAME=value`` lines) -> ``{NAME: value}``."""
    props = {}
    for line in (text or "").splitlines():
        name, sep, value = line.partition("=")
        if sep:
            props[name.strip()] = value.strip()
    return props


def parse_systemd_limit(value: Optional[str]) -> Optional[Union[str, int]]:
    """A systemd ``LimitMEMLOCK=`` value (``infinity``, bytes) -> ``"unlimited"``, an int, or None when unset."""
    if value is None or value == "":
        return None
    if value == "infinity":
        return "unlimited"
    try:
        return int(value)
    except ValueError:
        return None


def _limit_label(soft: Optional[Union[str, int]], hard: Optional[Union[str, int]]) -> str:
    def one(value: Optional[Union[str, int]]) -> str:
        return "unlimited" if value == "unlimited" else ("%d bytes" % value if isinstance(value, int) else "unknown")
    return one(soft) if soft == hard else "soft %s, hard %s" % (one(soft), one(hard))


def daemon_memlock(unit: str, show_text: Optional[str], limits_text: Optional[str] = None) -> dict[str, Any]:
    """The memlock limit a container engine unit gives what it starts: from ``systemctl show`` (``LoadState``,
    ``MainPID``, ``LimitMEMLOCK``, ``LimitMEMLOCKSoft``) and, while it runs, its process's ``/proc/<pid>/limits``."""
    props = parse_systemctl_show(show_text)
    hard = parse_systemd_limit(props.get("LimitMEMLOCK"))
    soft = parse_systemd_limit(props.get("LimitMEMLOCKSoft")) or hard
    try:
        pid = int(props.get("MainPID") or 0)
    except ValueError:
        pid = 0
    running = parse_limits(limits_text) if limits_text else None
    return {
        "unit": unit,
        "loaded": props.get("LoadState") == "loaded",
        "main_pid": pid or None,
        "configured": {"soft": soft, "hard": hard, "unlimited": soft == "unlimited" and hard == "unlimited"},
        "running": running if running and running.get("soft") is not None else None,
    }


DAEMON_MEMLOCK_FIX = (
    "a systemd drop-in /etc/systemd/system/%(unit)s.d/90-memlock.conf with `[Service]` `LimitMEMLOCK=infinity`, then "
    "`systemctl daemon-reload && systemctl restart %(unit)s` (running containers stop unless live-restore is on); "
    "the rdma role writes it with rdma_docker_memlock_dropin: true and restarts with rdma_docker_memlock_restart: true. "
    "Or give every engine container its own limit: plan_engine_privileges: rdma_devices (--ulimit memlock=-1:-1)")


def daemon_memlock_problems(entries: Sequence[Mapping[str, Any]], require: bool, host: Optional[str] = None,
                            units_variable: str = "rdma_docker_memlock_units") -> list[Problem]:
    """Containers inherit the memlock limit of the container engine that starts them (no ``--ulimit memlock``):
    below unlimited, RDMA memory registration fails ("Cannot allocate memory"). A Problem per loaded unit whose
    configured or running limit is not unlimited; one when no unit of ``entries`` is loaded (nothing to read)."""
    if not require:
        return []
    loaded = [entry for entry in entries if entry.get("loaded")]
    if not loaded:
        units = ", ".join(e["unit"] for e in entries) or "(no unit named)"
        return [Problem(
            None, "none of %s is a loaded systemd unit on this host" % units,
            "cannot read the memlock limit the Docker daemon gives containers",
            "name the units of the container engine in %s, or set rdma_check_docker_memlock: false where the engine "
            "containers set their own limit (plan_engine_privileges: rdma_devices)" % units_variable,
            host=host, check="docker_memlock", needed="the container engine's systemd unit, LimitMEMLOCK=infinity")]
    problems = []
    for entry in loaded:
        configured, running = entry["configured"], entry.get("running")
        if configured["unlimited"] and (running is None or running["unlimited"]):
            continue
        found = "%s LimitMEMLOCK %s" % (entry["unit"], _limit_label(configured["soft"], configured["hard"]))
        if running is not None:
            found += ", its running process (pid %s) %s" % (entry["main_pid"],
                                                            _limit_label(running["soft"], running["hard"]))
        problems.append(Problem(
            None, found, "containers started by %s inherit a memlock limit below unlimited (Mooncake / NIXL then "
            "fail with \"Cannot allocate memory\")" % entry["unit"], DAEMON_MEMLOCK_FIX % {"unit": entry["unit"]},
            host=host, check="docker_memlock", needed="LimitMEMLOCK=infinity, configured and running"))
    return problems
