# -*- coding: utf-8 -*-
# Copyright: inference.deepseek_v4 contributors
# Apache License 2.0 (see LICENSE)
"""The plan's ``cluster_ports`` section: on each engine host, the ports and ranges that only the plan's own hosts may
reach (the engines' API, KV transfer (Mooncake's transfer engine handshake range included), data-parallel RPC and
collective ports), each with the address its program binds, and the addresses of those hosts. The role
cluster_firewall renders its nftables table from it (roles/cluster_firewall/README.md). It is on where a
data-parallel pool spans hosts, and on a single host where a port binds wider than loopback (vLLM's Mooncake
bootstrap server binds every address, with no setting to change it)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

from ansible_collections.inference.deepseek_v4.plugins.module_utils._plan import profiles as P

if TYPE_CHECKING:
    from ansible_collections.inference.deepseek_v4.plugins.module_utils._plan.build import Build

# Kinds of service whose ports are limited: the engines and their LMCache servers. The router is the endpoint
# clients reach (on loopback unless plan_router_host says otherwise; the endpoint proxy exposes it).
LIMITED_KINDS = ("engine", "lmcache")


def _entry(service: str, name: str, first: int, last: int, variable: Optional[str], source: str,
           binds: str) -> dict[str, Any]:
    return {"service": service, "name": name, "first": int(first), "last": int(last), "variable": variable,
            "api": name == "api", "source": source, "binds": binds}


def binds(svc: dict[str, Any], port: str) -> str:
    """The address SVC's program binds PORT on (profiles.PORT_BINDS): its argv flag's or environment variable's value,
    else the program's own default."""
    flag, env, default = P.PORT_BINDS.get(port, (None, None, P.ANY_ADDRESS))
    value = svc["env"].get(env) if env else None
    if flag:
        for i, token in enumerate(svc["argv"]):
            if token == flag and i + 1 < len(svc["argv"]):
                value = svc["argv"][i + 1]
            elif str(token).startswith(flag + "="):
                value = str(token).split("=", 1)[1]
    return str(value if value is not None else default)


def wide(address: str) -> bool:
    """Whether a program bound to ADDRESS is reachable from other hosts (anything but loopback)."""
    return address not in P.LOOPBACK_NAMES


def _host_entries(b: Build, name: str, host: dict[str, Any], services: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every limited port of one host: its engines' and LMCache servers' own ports (hosts[host].ports), the range of
    the Mooncake transfer engine's handshake where the engine moves KV with Mooncake, then, where a data-parallel pool
    spans hosts, the pool's RPC port where the recipe does not write one (vLLM's default) and the
    range its collectives bind."""
    limited = {x["name"]: x for x in services if x["host"] == name and x["kind"] in LIMITED_KINDS}
    out = [_entry(p["service"], p["name"], p["first"], p["last"], p["variable"], "service",
                  binds(limited[p["service"]], p["name"]))
           for p in host["ports"] if p["service"] in limited]
    for svc in (x for x in limited.values() if x["kind"] == "engine" and "mooncake_bootstrap" in x["ports"]):
        first, last = P.MOONCAKE_HANDSHAKE_PORTS
        out.append(_entry(svc["name"], "mooncake_handshake", first, last, None, "mooncake_default",
                          binds(svc, "mooncake_handshake")))
    if b.topology["multi_node"]:
        for svc in (x for x in limited.values() if x["kind"] == "engine"):
            if "dp_rpc" not in svc["ports"]:
                out.append(_entry(svc["name"], "dp_rpc", P.VLLM_DEFAULT_DP_RPC_PORT, P.VLLM_DEFAULT_DP_RPC_PORT,
                                  None, "vllm_default", binds(svc, "dp_rpc")))
            first, last = P.COLLECTIVE_PORTS
            out.append(_entry(svc["name"], "collective", first, last, None, "ephemeral", P.ANY_ADDRESS))
    return out


def section(b: Build, hosts: dict[str, dict[str, Any]], services: list[dict[str, Any]]) -> dict[str, Any]:
    """``cluster_ports`` of the plan document (docs/plan-format.md)."""
    limited = {name: _host_entries(b, name, host, services) for name, host in hosts.items()}
    bound_wide = sorted({"%s %s" % (e["service"], e["name"]) for entries in limited.values() for e in entries
                         if wide(e["binds"])})
    return {"enabled": bool(b.topology["multi_node"] or bound_wide),
            "why": ("the data-parallel pools span hosts" if b.topology["multi_node"] else
                    "bound wider than loopback: %s" % ", ".join(bound_wide) if bound_wide else
                    "every limited port binds loopback"),
            "addresses": sorted({host["address"] for host in hosts.values()}),
            "collective": {"first": P.COLLECTIVE_PORTS[0], "last": P.COLLECTIVE_PORTS[1],
                           "sysctl": P.COLLECTIVE_PORTS_SYSCTL},
            "hosts": {name: entries for name, entries in limited.items() if entries}}
