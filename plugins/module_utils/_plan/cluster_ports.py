# -*- coding: utf-8 -*-
# Copyright: inference.deepseek_v4 contributors
# Apache License 2.0 (see LICENSE)
"""The plan's ``cluster_ports`` section: on each engine host, the ports and ranges that only the plan's own hosts may
reach (the engines' API, KV transfer, data-parallel RPC and collective ports), and the addresses of those hosts. The
role cluster_firewall renders its nftables table from it (roles/cluster_firewall/README.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

from ansible_collections.inference.deepseek_v4.plugins.module_utils._plan import profiles as P

if TYPE_CHECKING:
    from ansible_collections.inference.deepseek_v4.plugins.module_utils._plan.build import Build

# Kinds of service whose ports are limited: the engines and their LMCache servers. The router is the endpoint
# clients reach (on loopback unless plan_router_host says otherwise; the endpoint proxy exposes it).
LIMITED_KINDS = ("engine", "lmcache")


def _entry(service: str, name: str, first: int, last: int, variable: Optional[str], source: str) -> dict[str, Any]:
    return {"service": service, "name": name, "first": int(first), "last": int(last), "variable": variable,
            "api": name == "api", "source": source}


def _host_entries(b: Build, name: str, host: dict[str, Any], services: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every limited port of one host: its engines' and LMCache servers' own ports (hosts[host].ports), then, where a
    data-parallel pool spans hosts, the pool's RPC port where the recipe does not write one (vLLM's default) and the
    range its collectives bind."""
    limited = {x["name"]: x for x in services if x["host"] == name and x["kind"] in LIMITED_KINDS}
    out = [_entry(p["service"], p["name"], p["first"], p["last"], p["variable"], "service")
           for p in host["ports"] if p["service"] in limited]
    if b.topology["multi_node"]:
        for svc in (x for x in limited.values() if x["kind"] == "engine"):
            if "dp_rpc" not in svc["ports"]:
                out.append(_entry(svc["name"], "dp_rpc", P.VLLM_DEFAULT_DP_RPC_PORT, P.VLLM_DEFAULT_DP_RPC_PORT,
                                  None, "vllm_default"))
            first, last = P.COLLECTIVE_PORTS
            out.append(_entry(svc["name"], "collective", first, last, None, "ephemeral"))
    return out


def section(b: Build, hosts: dict[str, dict[str, Any]], services: list[dict[str, Any]]) -> dict[str, Any]:
    """``cluster_ports`` of the plan document (docs/plan-format.md)."""
    limited = {name: _host_entries(b, name, host, services) for name, host in hosts.items()}
    return {"enabled": bool(b.topology["multi_node"]),
            "addresses": sorted({host["address"] for host in hosts.values()}),
            "collective": {"first": P.COLLECTIVE_PORTS[0], "last": P.COLLECTIVE_PORTS[1],
                           "sysctl": P.COLLECTIVE_PORTS_SYSCTL},
            "hosts": {name: entries for name, entries in limited.items() if entries}}
