# -*- coding: utf-8 -*-
# Copyright: inference.deepseek_v4 maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Pure helpers for RDMA host facts: sysfs, ``ibv_devinfo``, ``/proc/modules`` and ``/proc/<pid>/limits``.

No Ansible imports: everything takes a path or text and returns plain data.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re

RDMA_LINK_LAYERS = ("InfiniBand", "Ethernet")


def _read(path):
    try:
        with open(path) as handle:
            return handle.read().strip()
    except (IOError, OSError):
        return None


def parse_state(text):
    """sysfs ``state`` / ``phys_state`` (``"4: ACTIVE"``, ``"5: LinkUp"``) -> ``"ACTIVE"`` / ``"LinkUp"``."""
    if text is None:
        return None
    match = re.match(r"^\s*\d+:\s*(\S+)", text)
    return match.group(1) if match else text.strip() or None


def parse_rate(text):
    """``"400 Gb/sec (4X NDR)"`` -> ``400`` (Gb/s, a float when fractional); ``None`` when unknown."""
    if not text:
        return None
    match = re.match(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*Gb/sec", text)
    if not match:
        return None
    value = float(match.group(1))
    return int(value) if value.is_integer() else value


def read_sysfs(root="/sys"):
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


def parse_ibv_devinfo(text):
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


def merge_ibv(devices, ibv):
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


def active_ports(devices):
    """``["mlx5_0/1", ...]`` for ports in state ACTIVE with an RDMA link layer."""
    result = []
    for dev in sorted(devices):
        for port, info in sorted(devices[dev]["ports"].items()):
            if info.get("state") == "ACTIVE" and (info.get("link_layer") or "InfiniBand") in RDMA_LINK_LAYERS:
                result.append("%s/%s" % (dev, port))
    return result


def parse_proc_modules(text):
    """``/proc/modules`` -> set of loaded module names."""
    return set(line.split()[0] for line in text.splitlines() if line.strip())


def parse_limits(text, name="Max locked memory"):
    """A row of ``/proc/<pid>/limits`` -> ``{"soft", "hard", "unit", "unlimited"}``; soft/hard are ints or ``"unlimited"``."""
    for line in text.splitlines():
        if line.startswith(name):
            parts = line[len(name):].split()
            if len(parts) < 2:
                break

            def value(item):
                return "unlimited" if item == "unlimited" else int(item)
            soft, hard = value(parts[0]), value(parts[1])
            return {"soft": soft, "hard": hard, "unit": parts[2] if len(parts) > 2 else None,
                    "unlimited": soft == "unlimited" and hard == "unlimited"}
    return {"soft": None, "hard": None, "unit": None, "unlimited": False}


def transfer_problems(facts, protocol, device_names=None, variable="rdma_mooncake_protocol"):
    """Why the host cannot carry KV transfer over ``protocol``; an empty list when it can.

    ``protocol`` ``tcp`` needs nothing. ``rdma`` needs an ACTIVE port, and every device named in
    ``device_names`` (Mooncake ``device_name``) must have one.
    """
    problems = []
    if protocol != "rdma":
        return problems
    active = facts.get("active_ports") or []
    if not active:
        found = ", ".join("%s/%s %s (%s)" % (dev, port, info.get("state"), info.get("link_layer"))
                          for dev, info_dev in sorted((facts.get("devices") or {}).items())
                          for port, info in sorted(info_dev["ports"].items())) or "no RDMA devices"
        problems.append(
            "no ACTIVE RDMA port (found: %s); needed: at least one ACTIVE InfiniBand or RoCE port for "
            "mooncake_protocol rdma; fix: bring a port up (cabling, subnet manager `opensm`, `ip link set <netdev> up`), "
            "or set %s to use TCP transfer (slower, not validated for DeepSeek-V4)"
            % (found, ("%s: false" % variable) if variable.endswith("_required") else ("%s: tcp" % variable)))
    for name in device_names or []:
        if not any(item.startswith(name + "/") for item in active):
            problems.append(
                "RDMA device %s named in the Mooncake device_name has no ACTIVE port (active: %s); "
                "fix: correct the device list or bring the device up" % (name, ", ".join(active) or "none"))
    return problems
