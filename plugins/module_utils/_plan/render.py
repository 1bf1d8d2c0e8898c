# -*- coding: utf-8 -*-
# Copyright: inference.deepseek_v4 contributors
# Apache License 2.0 (see LICENSE)
"""Output: the plan document, each service's hash and shell command, the printed summary, plan.json."""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import tempfile
from typing import TYPE_CHECKING, Any, Iterable, Optional

from ansible_collections.inference.deepseek_v4.plugins.module_utils._plan import cluster_ports
from ansible_collections.inference.deepseek_v4.plugins.module_utils._plan import profiles as P
from ansible_collections.inference.deepseek_v4.plugins.module_utils._plan.template import fill

if TYPE_CHECKING:
    from ansible_collections.inference.deepseek_v4.plugins.module_utils._plan.build import Build


# Service kinds that answer OpenAI requests (LMCache answers only its health URL).
SERVES_OPENAI_API = ("engine", "router")


def service_hash(svc: dict[str, Any]) -> str:
    spec = {k: v for k, v in svc.items() if k not in ("plan_hash", "command") and not k.startswith("_")}
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode("utf-8")).hexdigest()


def _q(token: Any) -> str:
    token = str(token)
    if token.startswith("~/"):
        return "~/" + shlex.quote(token[2:])
    return shlex.quote(token)


def _flag_lines(argv: Iterable[Any], max_values: Optional[int]) -> list[str]:
    """One indented line per flag with its values (at most max_values of them; None: every non-flag token)."""
    lines = []
    rest = list(argv)
    while rest:
        group = [rest.pop(0)]
        while rest and not rest[0].startswith("-") and (max_values is None or len(group) <= max_values):
            group.append(rest.pop(0))
        lines.append("  " + " ".join(_q(t) for t in group))
    return lines


def _docker_lines(svc: dict[str, Any]) -> list[str]:
    c = svc["container"]
    first = "docker run" + (" --gpus all" if c["device_requests"] else "")
    second = (["--privileged"] if c["privileged"] else []) + (["--ipc=%s" % c["ipc_mode"]] if c["ipc_mode"] else [])
    for p in c["recipe_published_ports"]:
        second += ["-p", p]
    lines = [first] + (["  " + " ".join(second)] if second else [])
    lines += ["  --network %s" % c["network_mode"]] if c["network_mode"] else []
    lines += ["  --device %s" % _q(d) for d in c["devices"]]
    lines += ["  --cap-add %s" % _q(cap) for cap in c.get("cap_add") or []]
    lines += ["  --ulimit %s" % _q(u.replace(":", "=", 1)) for u in c["ulimits"]]
    lines += ["  -v %s" % _q(v) for v in c["volumes"]]
    lines += ["  -e %s" % _q("%s=%s" % kv) for kv in svc["env"].items()]
    # A secret's variable without a value: docker takes it from the caller's environment (never in the plan).
    lines += ["  -e %s" % _q(name) for name in svc.get("secret_env") or {}]
    cache = svc.get("cache")
    if cache:  # mounted by vllm_engine at run time, in the folder of the host's key (profiles.ENGINE_CACHE_KEY)
        key = "-".join("<%s>" % part for part in cache["key"])
        lines.append("  -v %s" % _q("%s/%s:%s" % (cache["dir"], key, cache["mount"])))
        lines += ["  -e %s" % _q("%s=%s" % kv) for kv in cache["env"].items()]
    if svc["entrypoint"]:
        lines.append("  --entrypoint %s" % _q(svc["entrypoint"][0]))
    lines.append("  %s" % _q(svc["image"]))
    return lines


def render_command(svc: dict[str, Any]) -> str:
    """The shell command a person would type to start the service by hand."""
    if svc["container"] is None:
        # Router flags take several values (--prefill URL [BOOTSTRAP_PORT]); a secret flag's value is a reference to
        # an environment variable of the caller's shell, never the secret.
        argv = svc["argv"]
        secrets = ['  %s "$%s"' % (_q(flag), variable.upper()) for flag, variable in
                   (svc.get("secret_args") or {}).items()]
        return " \\\n".join([" ".join(_q(t) for t in argv[:3])] + _flag_lines(argv[3:], max_values=None) + secrets)
    args = list(svc["args"]) + _run_time_args(svc)
    lines = _docker_lines(svc)
    if args and not args[0].startswith("-"):
        lines.append("  %s" % _q(args.pop(0)))
    return " \\\n".join(lines + _flag_lines(args, max_values=1))


def _run_time_args(svc: dict[str, Any]) -> list[str]:
    """The flags vllm_engine adds to an engine's args at run time (profiles.HARDENING_RUN_TIME): its revision, which
    with HF_HUB_OFFLINE=1 resolves in the cache to the commit hf_cache pinned; vllm_engine passes that commit."""
    weights = svc.get("weights")
    return [weights["revision_flag"], weights["revision"] or P.DEFAULT_REVISION] if weights else []


def _readiness(health_url: str, serves: bool) -> dict[str, Optional[str]]:
    base = health_url.rsplit("/", 1)[0]
    return {"health": health_url, "models": base + "/v1/models" if serves else None,
            "completion": base + "/v1/completions" if serves else None}


def _finish_service(svc: dict[str, Any]) -> None:
    svc["args"] = svc["argv"][len(svc["entrypoint"] or []):]
    # Engines and the router serve the OpenAI API: ready means a listed model and one real completion (the
    # router's /readiness said ready while every request through it failed).
    serves = svc["kind"] in SERVES_OPENAI_API
    svc["readiness"] = _readiness(svc["health_url"], serves)
    if svc.get("standby"):
        svc["standby"]["readiness"] = _readiness(svc["standby"]["health_url"], serves)
    c = svc["container"]
    if c is not None:
        # Docker ignores published ports on the host network: the recipe's -p stays in the printed command only.
        c["recipe_published_ports"] = c["published_ports"]
        c["published_ports"] = [] if c["network_mode"] == "host" else list(c["published_ports"])
    svc["plan_hash"] = service_hash(svc)
    svc["command"] = render_command(svc)


# LMCache sizes its L1 cache in GiB (--l1-size-gb N allocates N * 2**30 bytes of host memory).
GIB = 2 ** 30


def _host_memory(b: Build, services: list[dict[str, Any]]) -> Optional[dict[str, Any]]:
    """What a host's memory must hold beyond its engines' own: the L1 caches of its LMCache servers and a headroom.
    None on a host without an LMCache server."""
    servers = [x for x in services if x["kind"] == "lmcache"]
    if not servers:
        return None
    l1_gb = sum(int(x["_flags"].get("l1-size-gb")) for x in servers)
    headroom_gb = b.s["lmcache_memory_headroom_gb"]
    return {"required_bytes": (l1_gb + headroom_gb) * GIB, "lmcache_l1_bytes": l1_gb * GIB,
            "headroom_bytes": headroom_gb * GIB, "lmcache_servers": len(servers), "variable": P.VAR_PREFIX + "lmcache_l1_size_gb",
            "headroom_variable": P.VAR_PREFIX + "lmcache_memory_headroom_gb"}


def _hosts(b: Build, services: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out = {}
    for svc in services:
        h = b.hosts[svc["host"]]
        entry = out.setdefault(svc["host"], {"address": h["address"], "gpu_count": h["gpu_count"], "gpus": [],
                                             "services": [], "engines": False, "ports": []})
        entry["gpus"] = sorted(set(entry["gpus"]) | set(svc["gpus"]))
        entry["services"].append(svc["name"])
        entry["engines"] = entry["engines"] or svc["container"] is not None
        for kind, port in svc["ports"].items():
            first, last = svc["port_ranges"].get(kind, (port, port))
            entry["ports"].append({"service": svc["name"], "name": kind, "first": int(first), "last": int(last),
                                   "variable": svc["_vars"][kind], "transfer": kind in P.TRANSFER_PORTS})
    for name, entry in out.items():
        entry["host_memory"] = _host_memory(b, [x for x in services if x["host"] == name])
    return out


def _transfer(b: Build, services: list[dict[str, Any]]) -> dict[str, Any]:
    conn = b.connector or {}
    moves = bool(conn.get("moves_kv"))
    rdma = conn.get("rdma")
    protocol_setting, devices_setting = conn.get("protocol_setting"), conn.get("devices_setting")
    devices = b.s[devices_setting] if devices_setting else None
    over_rdma = bool(moves and (rdma is True or rdma in b.features))
    return {"connector": conn.get("kv_connector"),
            "protocol": fill(conn.get("protocol"), {"mooncake_protocol": (b.s["mooncake_protocol"], None)}),
            # The setting that chooses the protocol (tcp where no RDMA port is up), and the RDMA devices named.
            "protocol_variable": P.VAR_PREFIX + protocol_setting if protocol_setting else None,
            "device_names": [d.strip() for d in str(devices).split(",") if d.strip()] if devices else [],
            "rdma": bool(rdma is True or rdma in b.features),
            # Where KV moves over RDMA: each rank's NIC (derived on the host) and the rate the transport gate wants.
            "nic_map": dict(P.NIC_MAP, affinity=b.hardware["nic_affinity"]) if over_rdma else None,
            "min_rate_gbytes_per_s": b.hardware["kv_transfer_min_gbytes_per_s"] if over_rdma else None,
            "peermem": bool(conn.get("peermem")) and "dmabuf" not in b.features,
            # Whether the connector's transfer engine must import in the engine image (the rdma role checks it).
            "engine_import": bool(conn.get("engine_import")),
            "hosts": sorted({x["host"] for x in services if x["kind"] == "engine"}) if moves else []}


def _api_key(b: Build, services: list[dict[str, Any]]) -> dict[str, Any]:
    """What the API key protects (never the key): whether deepseek_v4_api_key is set, the services that require it
    and whether the router sends it to its workers."""
    return {"set": b.api_key, "variable": P.API_KEY_VARIABLE,
            "required_by": [x["name"] for x in services if x["api_key"]],
            "router_sends": any(x["secret_args"] for x in services if x["kind"] == "router")}


# Where each kind of service serves its Prometheus metrics: the port (a key of the service's ports) and the path. The
# address it listens on is the port's (cluster_ports.binds, profiles.PORT_BINDS: vllm-router's --prometheus-host,
# LMCache's --http-host, whose HTTP server serves /metrics). A kind not listed has none.
METRICS_ENDPOINTS = {
    "engine": {"port": "api", "path": "/metrics"},
    "router": {"port": "router_metrics", "path": "/metrics"},
    "lmcache": {"port": "lmcache_http", "path": "/metrics"},
}


def scrape_targets(topology: str, hosts: dict[str, dict[str, Any]],
                   services: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Prometheus file_sd target groups, one per service with metrics: the address it listens on (the host's address
    where it listens on every interface; loopback ones are reachable from their own host only) and the labels
    topology, role, host and service."""
    groups = []
    for svc in services:
        endpoint = METRICS_ENDPOINTS.get(svc["kind"])
        if endpoint is None or endpoint["port"] not in svc["ports"]:
            continue
        bind = cluster_ports.binds(svc, endpoint["port"])
        address = hosts[svc["host"]]["address"] if bind in P.ALL_INTERFACES else bind
        address = "[%s]" % address if ":" in address and not address.startswith("[") else address
        groups.append({"targets": ["%s:%d" % (address, int(svc["ports"][endpoint["port"]]))],
                       "labels": {"topology": topology, "role": svc["role"], "host": svc["host"],
                                  "service": svc["name"], "__metrics_path__": endpoint["path"]}})
    return groups


def upgrade_waves(services: list[dict[str, Any]]) -> list[dict[str, list[str]]]:
    """The waves playbooks/upgrade.yml walks, batch by batch, from the services' restart relations: the roles that
    restart with another (a decode with its prefill, vllm#49238), the roles they restart with, the first roles once
    more (their engines restart again after what they restart with changed), then every other role of the engine
    hosts. Each wave: its roles and the hosts that run them, in the plan's order; at most four waves."""
    pool = [x for x in services if x["kind"] in P.UPGRADE_KINDS]
    role_of = {"%s/%s" % (x["host"], x["name"]): x["role"] for x in pool}
    roles = _unique(x["role"] for x in pool)
    dependents = _unique(x["role"] for x in pool if any(r in role_of for r in x["restart_with"]))
    targets = _unique(role_of[r] for x in pool for r in x["restart_with"] if role_of.get(r) not in dependents + [None])
    others = [r for r in roles if r not in dependents + targets]
    waves = [dependents, targets, dependents if targets else [], others]
    return [{"roles": wave, "hosts": _unique(x["host"] for x in pool if x["role"] in wave)} for wave in waves if wave]


def _bootstrap_servers(b: Build, services: list[dict[str, Any]]) -> list[str]:
    """host/name of the engines whose Mooncake bootstrap server lists their engine ids (GET /query on their
    mooncake_bootstrap port): those of the roles the router is told the bootstrap port of (row router_bootstrap).
    The serving guard reads them to see that such an engine restarted."""
    return ["%s/%s" % (x["host"], x["name"]) for x in services if x["kind"] == "engine"
            and b.topology["roles"][x["role"]].get("router_bootstrap") and "mooncake_bootstrap" in x["ports"]]


def _unique(items: Iterable[str]) -> list[str]:
    out = []
    for item in items:
        if item not in out:
            out.append(item)
    return out


def _digest(image: Any) -> Optional[str]:
    """The digest an image reference pins (``name[:tag]@sha256:...``), or None."""
    return str(image).split("@", 1)[1] if image and "@" in str(image) else None


def plan(b: Build) -> dict[str, Any]:
    """The plan document of a build that passed every rule."""
    # Start order, then the build's own order (its rows' roles in their order, hosts in inventory order).
    services = sorted(b.services, key=lambda x: x["start_order"])
    for svc in services:
        _finish_service(svc)
    hosts = _hosts(b, services)
    parsers = [x["_flags"].get("reasoning-parser") for x in b.engines if x["_flags"].has("reasoning-parser")]
    routers = [x for x in services if x["kind"] == "router"]
    target = routers[0] if routers else [x for x in services if x["kind"] == "engine"][0]
    s = b.s
    result = {
        "topology": s["topology"], "name_prefix": s["name_prefix"], "description": b.topology["description"],
        "hardware": b.hardware["name"],
        "recipe": s["recipe"], "model": s["model"], "image": s["image"], "vllm_version": s["vllm_version"],
        "router_version": s["router_version"], "kv_connector": (b.connector or {}).get("kv_connector"),
        "reasoning_modes": list(s["reasoning_modes"]), "reasoning_parser": parsers[0] if parsers else None,
        "hardware_profile": dict({k: b.hardware[k] for k in P.HARDWARE_PUBLISHED}, name=b.hardware["name"]),
        "weights": {"repo_id": s["model"], "revision": s["weights_revision"],
                    "size_bytes": b.checkpoint["size_bytes"], "cache_dir": s["hf_cache_dir"],
                    "shared_dir": s["shared_dir"] or None if b.topology["shared"] else None},
        "transfer": _transfer(b, services),
        "endpoint": dict({"host": target["host"], "service": target["name"],
                          "url": target["health_url"].rsplit("/", 1)[0],
                          "standby": (target.get("standby") or {}).get("url")},
                         **(b.failure_policy or {"policy": "fail", "fallbacks": [], "tries": 1})),
        "api_key": _api_key(b, services), "image_digest": _digest(s["image"]),
        "warnings": list(b.warnings), "hosts": hosts, "services": services,
        "scrape_targets": scrape_targets(s["topology"], hosts, services),
        "cluster_ports": cluster_ports.section(b, hosts, services),
        "upgrade_waves": upgrade_waves(services),
        "bootstrap_servers": _bootstrap_servers(b, services),
    }
    for svc in services:
        for key in [k for k in svc if k.startswith("_")]:
            del svc[key]
    return result


def summary_lines(plan_doc: dict[str, Any]) -> list[str]:
    """Human summary printed by the plan playbook."""
    out = ["Topology %s on %s (recipe %s, image %s, vLLM %s): %s" % (
        plan_doc["topology"], plan_doc["hardware"], plan_doc["recipe"], plan_doc["image"], plan_doc["vllm_version"],
        plan_doc["description"])]
    for svc in plan_doc["services"]:
        gpus = ",".join(str(g) for g in svc["gpus"]) or "-"
        ports = ", ".join("%s=%s" % kv for kv in svc["ports"].items())
        fields = (svc["name"], svc["host"], svc["kind"], svc["role"], gpus, ports)
        out += ["", "# %s on %s: %s %s, GPUs %s, ports %s" % fields]
        out.extend(svc["command"].split("\n"))
    out += ["", "Endpoint: %s (%s on %s)" % (plan_doc["endpoint"]["url"], plan_doc["endpoint"]["service"],
                                             plan_doc["endpoint"]["host"])]
    key = plan_doc["api_key"]
    if key["set"]:
        out.append("API key (%s, passed through the environment, never shown): required by %s" % (
            key["variable"], ", ".join(key["required_by"]) or "no service"))
    out.extend("WARNING: %s" % w for w in plan_doc["warnings"])
    return out


def plan_json(plan_doc: dict[str, Any]) -> str:
    return json.dumps(plan_doc, indent=2, sort_keys=False) + "\n"


def write_if_changed(path: str, content: str, check_mode: bool = False) -> bool:
    """Write content to path atomically (mode 0600: the plan holds every setting, the extra environment included)
    unless it is already there; an existing plan readable by others is made 0600. Returns whether it changed."""
    try:
        with open(path, encoding="utf-8") as f:
            if f.read() == content:
                return _owner_only(path, check_mode)
    except (IOError, OSError):
        pass
    if check_mode:
        return True
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        os.makedirs(directory, 0o755)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".plan-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(content)
        os.chmod(tmp, 0o600)
        os.rename(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return True


def _owner_only(path: str, check_mode: bool) -> bool:
    """Make an existing file 0600 (a plan written by an older version was 0644). Returns whether it changed."""
    if os.stat(path).st_mode & 0o077 == 0:
        return False
    if not check_mode:
        os.chmod(path, 0o600)
    return True
