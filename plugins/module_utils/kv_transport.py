# -*- coding: utf-8 -*-
# Copyright: inference.deepseek_v4 maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""What the engines' logs say about their KV transfer: the path (RDMA or TCP) and the rate.

The lines read are vLLM's own:

- ``The Mooncake Transfer Engine is using <protocol> as its protocol.`` (MooncakeConnector, at start);
- ``GPU rank <n> (PCIe addr <gpu>) mapped to NIC <dev> (PCIe addr <nic>) via env vars: ...`` (the per-rank NIC map,
  ``VLLM_GPU_NIC_PCIE_MAPPING``);
- ``KV Transfer metrics: Num successful transfers=<n>, Avg xfer time (ms)=..., ..., Throughput (MB/s)=<x>, ...``
  (the connectors' stats, Mooncake and NIXL, every log-stats interval; MB = 2**20 bytes);

and UCX's own transport names (``rc_mlx5/mlx5_0:1``, ``tcp/eth0``, with ``UCX_PROTO_INFO=y`` or ``UCX_LOG_LEVEL=info``)
and "falling back to TCP" warnings. No Ansible imports.
"""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

import re
from typing import Any, Iterable, Mapping, Optional

from ansible_collections.inference.deepseek_v4.plugins.module_utils._problem import Problem

MOONCAKE_PROTOCOL = re.compile(r"The Mooncake Transfer Engine is using (\w+) as its protocol")
NIC_PIN = re.compile(r"GPU rank (\d+) \(PCIe addr (\S+)\) mapped to NIC (\S+) \(PCIe addr (\S+)\)")
METRICS = re.compile(r"KV Transfer metrics: (.*)$")
UCX_TRANSPORT = re.compile(r"(?<![\w/])(rc_mlx5|rc_verbs|dc_mlx5|ud_mlx5|ud_verbs|gga_mlx5|tcp)/([A-Za-z0-9_.:-]+)")
TCP_FALLBACK = re.compile(r"(?i)fall(?:s|ing)?\s*back to tcp")
MIB = 2 ** 20


def parse_metrics(text: str) -> dict[str, float]:
    """``k=v, k=v`` of a ``KV Transfer metrics`` line -> ``{k: float}`` (values that are not numbers are left out)."""
    out = {}
    for item in re.split(r",\s*(?=[A-Za-z][^=,]*=)", text):
        key, sep, value = item.partition("=")
        if sep:
            try:
                out[key.strip()] = float(value.strip())
            except ValueError:
                continue
    return out


def read_lines(lines: Iterable[str]) -> dict[str, Any]:
    """One service's log lines -> ``{"path", "evidence", "nics", "transfers", "rate_gbytes_per_s"}``.

    ``path`` is ``tcp`` when any line says so (a TCP protocol, a UCX tcp transport, a fallback), else ``rdma`` when a
    line shows RDMA, else None. The rate is the transfers-weighted mean of the reported throughputs, in GB/s."""
    path, evidence, nics = None, None, {}
    transfers, weighted = 0, 0.0
    for line in lines:
        line = line.rstrip()
        match = MOONCAKE_PROTOCOL.search(line)
        found = None
        if match:
            found = "tcp" if match.group(1).lower() == "tcp" else "rdma"
        elif TCP_FALLBACK.search(line):
            found = "tcp"
        else:
            kinds = set("tcp" if m.group(1) == "tcp" else "rdma" for m in UCX_TRANSPORT.finditer(line))
            if kinds and ("ucp" in line or "UCX" in line or "|" in line):
                found = "tcp" if "tcp" in kinds else "rdma"
        pin = NIC_PIN.search(line)
        if pin:
            nics[int(pin.group(1))] = pin.group(3)
            found = found or "rdma"
        if found and (path != "tcp"):
            if found == "tcp" or path is None:
                path, evidence = found, line.strip()
        metrics = METRICS.search(line)
        if metrics:
            values = parse_metrics(metrics.group(1))
            count = int(values.get("Num successful transfers") or 0)
            if count > 0 and "Throughput (MB/s)" in values:
                transfers += count
                weighted += count * values["Throughput (MB/s)"] * MIB / 1e9
    return {"path": path, "evidence": evidence, "nics": nics, "transfers": transfers,
            "rate_gbytes_per_s": round(weighted / transfers, 3) if transfers else None}


def gate_problems(services: Mapping[str, Mapping[str, Any]], expect: str = "rdma", min_rate: Optional[float] = None,
                  require_report: bool = True) -> list[Problem]:
    """Problems of the transport gate over ``{service: read_lines(...)}``: a service on TCP where ``expect`` is rdma,
    a rate below ``min_rate`` (GB/s), and (``require_report``) no service that reported a transfer."""
    problems = []
    for name, info in sorted(services.items()):
        if expect == "rdma" and info["path"] == "tcp":
            problems.append(Problem(
                None, "%s: %s" % (name, info["evidence"]), "the KV transfer runs over TCP where the plan moves it over "
                "RDMA (time to first token ~98 s instead of 0.2-0.5 s)",
                "give the engine containers the RDMA devices (/dev/infiniband, memlock unlimited, IPC_LOCK or "
                "--privileged; the rdma role's checks) and an RDMA build of the transfer engine, or set "
                "plan_mooncake_protocol: tcp to accept TCP", check="kv_transport", needed="rdma"))
        rate = info["rate_gbytes_per_s"]
        if min_rate is not None and rate is not None and rate < float(min_rate):
            problems.append(Problem(
                None, "%s: %.3f GB/s over %d transfer(s)" % (name, rate, info["transfers"]),
                "the KV transfer is slower than the hardware profile's floor",
                "pin each rank to the NIC next to its GPU (the plan's transfer.nic_map; the rdma role derives the map "
                "and vllm_engine passes it), check the NICs' link rate (`ibstat`) and that no rank shares a NIC on "
                "another NUMA node", check="kv_transport_rate", needed=">= %s GB/s" % min_rate))
    if require_report and not any(info["transfers"] for info in services.values()):
        problems.append(Problem(
            None, "no `KV Transfer metrics` line with a successful transfer in the logs of %s" % (
                ", ".join(sorted(services)) or "no engine"),
            "the engines reported no KV transfer, so its path and rate are unproven",
            "send a request through the router first (the smoke test does), keep vLLM's stats logging on (no "
            "--disable-log-stats) and read enough of the log (rdma_transport_gate_tail), or set "
            "rdma_transport_gate: false", check="kv_transport_report", needed="at least one reported transfer"))
    return problems
