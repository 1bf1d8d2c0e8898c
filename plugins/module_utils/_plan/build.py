# -*- coding: utf-8 -*-
# Copyright: inference.deepseek_v4 contributors
# Apache License 2.0 (see LICENSE)
"""Build the plan: one loop over the topology's data. Every engine is its flag lines filled from a context whose
values remember the setting that produced them; rules.py then checks the result."""

from __future__ import annotations

import copy
import re
from typing import Any, Container, Iterable, Mapping, Optional

from ansible_collections.inference.deepseek_v4.plugins.module_utils._plan import profiles as P
from ansible_collections.inference.deepseek_v4.plugins.module_utils._plan import render, rules, settings
from ansible_collections.inference.deepseek_v4.plugins.module_utils._plan.template import fill, lines
from ansible_collections.inference.deepseek_v4.plugins.module_utils._plan.flags import (
    Flags,
    compact_json,
    flag_key,
    merge,
    parallel_sizes,
)
from ansible_collections.inference.deepseek_v4.plugins.module_utils._problem import Problem, summary

var = settings.var
ENGINE_FIX = ("remove it from {{variable}}; to change a managed flag set {override}: {{{{'{{flag}}': <value>}}}} "
              "(true for a bare flag, false to drop it).")


class PlanError(Exception):
    """Raised with every problem found; nothing is planned while one remains."""

    def __init__(self, problems: Iterable[Problem], warnings: Optional[Iterable[str]] = None) -> None:
        self.problems = list(problems)
        self.warnings = list(warnings or [])
        super(PlanError, self).__init__(self.summary())

    def summary(self) -> str:
        return summary(self.problems)


class Build(object):
    """What the rules see: resolved settings, the rows of the tables they chose, hosts, services, warnings."""

    def __init__(self, s: dict[str, Any], api_key: bool = False) -> None:
        self.s = s
        # Whether deepseek_v4_api_key is set (never the key): which services require it is the build's to say.
        self.api_key = bool(api_key)
        self.topology = P.TOPOLOGIES[s["topology"]]
        self.hardware = dict(P.HARDWARE[s["hardware"]], name=s["hardware"])
        self.recipe = P.RECIPES[s["recipe"]]
        self.checkpoint = P.CHECKPOINTS.get(s["model"], P.UNKNOWN_CHECKPOINT)
        self.connector = P.CONNECTORS.get(self.topology["connector"])
        self.hosts = {}
        self.services = []
        self.warnings = []
        # The endpoint's failure policy (plan_endpoint_failure_policy), where a router fronts the engines.
        self.failure_policy = None
        backend = self.recipe.get("moe_backend")
        self.moe_backend = backend["value"] if backend and backend["hardware_feature"] in self.hardware["features"] \
            and backend["quantization"] == self.checkpoint["quantization"] else None
        self.features = set(self.recipe["features"]) | set(self.hardware["features"])
        self.features |= {name for name, on in (
            ("tool_calling", s["enable_tool_calling"]), ("speculative", s["enable_mtp"] or s["enable_dspark"]),
            ("max_model_len", s["max_model_len"] is not None), ("multi_node", self.topology["multi_node"]),
            ("hf_offline", s["hf_offline"]), ("dmabuf", self.hardware["memory_registration"] == "dmabuf"),
            ("rdma_protocol", s["mooncake_protocol"] == "rdma"),
            ("moe_backend", self.moe_backend is not None)) if on}

    @property
    def engines(self) -> list[dict[str, Any]]:
        return [x for x in self.services if x["kind"] == "engine"]

    def group(self, role: str) -> str:
        return self.s["%s_group" % role]


# ------------------------------------------------------------------------------------------------ hosts
def _gpu_list(value: Any, variable: str, host: str, problems: list[Problem]) -> Optional[list[int]]:
    if value is None:
        return None
    if isinstance(value, str):
        value = [v for v in re.split(r"[,\s]+", value.strip()) if v != ""]
    if not isinstance(value, (list, tuple)):
        problems.append(Problem(variable, value, "must be a list of GPU indices.", "write e.g. [0, 1, 2, 3].", host))
        return []
    out = []
    for v in value:
        try:
            if isinstance(v, bool):
                raise ValueError(v)
            out.append(int(v))
        except (TypeError, ValueError):
            problems.append(Problem(variable, value, "%r is not a GPU index." % (v,),
                                    "use whole numbers as nvidia-smi numbers the GPUs.", host))
            return []
    return out


def _host(h: dict[str, Any], b: Build, problems: list[Problem]) -> dict[str, Any]:
    name = str(h.get("name"))
    for key in sorted(set(h) - set(P.HOST_SETTINGS) - {"name", "groups"}):
        problems.append(settings.host_scoped(key, h[key], name) if key in P.SETTINGS
                        else settings.unknown_setting(key, h[key], host=name))
    count = h.get("gpu_count", b.hardware["gpus_per_node"])
    try:
        count = int(count)
    except (TypeError, ValueError):
        problems.append(Problem(var("gpu_count"), count, "must be a whole number.", "set the host's GPU count.", name))
        count = b.hardware["gpus_per_node"]
    raw = h.get("engine_gpus")
    nested = isinstance(raw, (list, tuple)) and raw and all(isinstance(x, (list, tuple)) for x in raw)
    engine_sets = None if raw is None else [_gpu_list(x, var("engine_gpus"), name, problems)
                                            for x in (raw if nested else [raw])]
    return {"name": name, "groups": list(h.get("groups") or []), "address": str(h.get("address") or name),
            "gpu_count": count, "prefill_gpus": _gpu_list(h.get("prefill_gpus"), var("prefill_gpus"), name, problems),
            "decode_gpus": _gpu_list(h.get("decode_gpus"), var("decode_gpus"), name, problems),
            "engine_gpus": engine_sets, "engine_gpus_raw": raw,
            "engine_bind_address": None if h.get("engine_bind_address") in (None, "") else str(
                h["engine_bind_address"]).strip()}


def _members(b: Build, role: str) -> list[dict[str, Any]]:
    return [h for h in b.hosts.values() if b.group(role) in h["groups"]]


def _require_groups(b: Build, problems: list[Problem]) -> None:
    """Every group the topology reads has its hosts; the engines cannot be built otherwise."""
    needs = [(rdef["group"], "at least one") for rdef in b.topology["roles"].values()]
    if b.topology["router"]:
        needs.append(("router", "exactly one"))
    found = []
    for role, need in needs:
        members = [m["name"] for m in _members(b, role)]
        if not members or (need == "exactly one" and len(members) != 1):
            found.append(Problem("groups['%s']" % b.group(role), members, "topology %s needs %s host in "
                                 "inventory group '%s'." % (b.s["topology"], need, b.group(role)),
                                 "add the host(s) to group '%s' in the inventory, or set %s to the group that "
                                 "holds them." % (b.group(role), var("%s_group" % role))))
    if found:
        raise PlanError(problems + found)


def _require_hosts(b: Build) -> list[Problem]:
    """Each engine group of a topology whose engine spans nodes has the nodes it needs."""
    need = b.topology["min_hosts"]
    found = []
    for rdef in b.topology["roles"].values():
        group = rdef["group"]
        members = [m["name"] for m in _members(b, group)]
        if len(members) < need:
            alone = "; on one host set %s: %s" % (var("topology"), b.topology["one_host"]) if b.topology[
                "one_host"] else ""
            found.append(Problem("groups['%s']" % b.group(group), members, "topology %s runs one engine across nodes "
                                 "and needs at least %d hosts in inventory group '%s'; it has %d." % (
                                     b.s["topology"], need, b.group(group), len(members)),
                                 "add %d or more hosts to group '%s' (the first is the data-parallel head)%s." % (
                                     need, b.group(group), alone)))
    return found


# ------------------------------------------------------------------------------------------------ engines
def _engine_slots(b: Build, problems: list[Problem]) -> list[tuple[str, dict[str, Any], int, list[int], str]]:
    """(role, host, index, gpus, gpus variable) of every engine, in role order, with default GPU sets."""
    slots = []
    replicas = b.s["replicas_per_host"]
    for role, rdef in b.topology["roles"].items():
        members = _members(b, rdef["group"])
        replicated = bool(rdef.get("replicated"))
        for h in members:
            shared = [r for r, row in b.topology["roles"].items() if not row.get("replicated")
                      and b.group(row["group"]) in h["groups"]]
            count = b.hardware["gpus_per_node"]
            reps = replicas if replicated else 1
            per = count // reps if b.topology["gpus"] == "node" else b.topology["gpus"]
            if b.topology["split_shared"] and len(shared) > 1:
                per = count // len(shared)
            own = h[rdef["gpus_var"]]
            given = own if replicated else (None if own is None else [own])
            n = len(given) if given is not None else reps
            if replicated and given is not None and len(given) != replicas:
                problems.append(Problem(var("engine_gpus"), h["engine_gpus_raw"], "gives %d GPU set(s) but "
                                        "plan_replicas_per_host is %d." % (len(given), replicas), "give one list "
                                        "of GPU indices per replica, or change plan_replicas_per_host.", h["name"]))
            for i in range(n):
                offset = (shared.index(role) if role in shared else i) * per
                gpus = given[i] if given is not None else list(range(offset, offset + per))
                slots.append((role, h, i, gpus, var(rdef["gpus_var"])))
    return slots


def _pools(b: Build,
           slots: list[tuple[str, dict[str, Any], int, list[int], str]]) -> dict[tuple[str, str, int], dict[str, Any]]:
    """Per role of a multi-node topology: DP size, start rank and address of each engine's pool."""
    pools = {}
    if not b.topology["multi_node"]:
        return pools
    for role, rdef in b.topology["roles"].items():
        members = [x for x in slots if x[0] == role]
        rank = 0
        rpc = rdef.get("rpc_port")
        for _role, h, i, gpus, _gvar in members:
            pools[(role, h["name"], i)] = {"size": sum(len(x[3]) for x in members), "start_rank": rank,
                                           "address": members[0][1]["address"], "nodes": len(members),
                                           "rpc_port": b.s[rpc] if rpc else None, "rpc_var": var(rpc) if rpc else None}
            rank += len(gpus)
    return pools


def _values(b: Build, role: str, h: dict[str, Any], gpus: list[int], gvar: str, pool: Optional[dict[str, Any]],
            ports: dict[str, int]) -> dict[str, tuple[Any, Optional[str]]]:
    """The placeholders of an engine's flag and environment lines: (value, setting that produced it)."""
    s = b.s
    port_var = var(b.topology["roles"][role]["port"])
    tokens = P.HARDWARE[s["hardware"]]["mtp_tokens"]
    spec = "mtp" if s["enable_mtp"] else "dspark"
    values = {
        "model": (s["model"], var("model")), "port": (ports["api"], port_var), "dp": (len(gpus), gvar),
        "tp": (len(gpus), gvar), "max_model_len": (s["max_model_len"], var("max_model_len")),
        "max_model_len_or_auto": ("auto" if s["max_model_len"] is None else s["max_model_len"],
                                  var("max_model_len")),
        "speculative_flag": (b.recipe["speculative_flag"], None),
        "speculative_config": (compact_json(fill(P.SPECULATIVE_CONFIGS[spec], {"mtp_tokens": (tokens, None)})),
                               var("enable_%s" % spec)),
        "reasoning_config": (compact_json(P.REASONING_CONFIG), var("recipe")),
        "moe_backend": (b.moe_backend, var("recipe")),
        "mooncake_protocol": (s["mooncake_protocol"], var("mooncake_protocol")),
        "mooncake_device_name": (s["mooncake_device_name"], var("mooncake_device_name")),
        "kv_role": ((b.connector or {}).get("kv_roles", {}).get(role), None),
        "address": (h["address"], var("address")), "socket_ifname": (s["socket_ifname"], var("socket_ifname")),
        "lmcache_connector_extra": (None if ports.get("lmcache_zmq", P.LMCACHE_DEFAULT_PORTS["zmq"]) ==
                                    P.LMCACHE_DEFAULT_PORTS["zmq"] else
                                    {"lmcache.mp.host": "tcp://127.0.0.1", "lmcache.mp.port": ports["lmcache_zmq"]},
                                    var("lmcache_port")),
    }
    values.update(("port:%s" % kind, (port, None)) for kind, port in ports.items())
    if pool:
        values.update(dp_size=(pool["size"], gvar), start_rank=(pool["start_rank"], gvar),
                      dp_address=(pool["address"], var("address")),
                      rpc_port=(pool["rpc_port"], pool["rpc_var"]))
    if b.connector:
        kv = dict(kv_connector=b.connector["kv_connector"], **b.connector["kv_transfer"])
        seps = b.connector.get("json_separators", (",", ":"))
        values["kv_transfer_config"] = (compact_json(fill(kv, values), seps), None)
    return values


def _env(b: Build, rdef: dict[str, Any], h: dict[str, Any], gpus: Optional[list[int]],
         values: dict[str, tuple[Any, Optional[str]]], problems: list[Problem]) -> dict[str, str]:
    env = list(P.ENV[b.topology["env"]])
    env += _env_lines(P.ENV_BEFORE_USER, b.features, values)
    for variable in rdef["env"]:
        for key, value in b.s[variable].items():
            if str(key) in P.MANAGED_ENV:
                fix = "remove it from %s and set %s instead." % (var(variable), P.MANAGED_ENV[str(key)])
                problems.append(Problem(var(variable), {key: value}, "%s is derived by the plan." % key, fix,
                                        h["name"]))
            else:
                env.append((str(key), str(value)))
    env += _env_lines((b.connector or {}).get("env", []), b.features, values)
    env += _env_lines(P.ENV_AFTER_CONNECTOR, b.features, values)
    if gpus is not None and sorted(gpus) != list(range(h["gpu_count"])):
        env.append(("CUDA_VISIBLE_DEVICES", ",".join(str(g) for g in gpus)))
    return dict(env)


def _env_lines(env_lines: Iterable[tuple[str, Any, Optional[str]]], features: Container[str],
               values: dict[str, tuple[Any, Optional[str]]]) -> list[tuple[str, str]]:
    out = []
    for key, template, when in env_lines:
        if when is None or when in features:
            value = fill(template, values)
            if value is not None:
                out.append((key, str(value)))
    return out


def _engine_ports(b: Build, role: str, rdef: dict[str, Any], h: dict[str, Any], i: int, gpus: list[int],
                  pool: Optional[dict[str, Any]]) -> tuple[dict[str, int], dict[str, str], dict[str, list[int]]]:
    ports = {"api": b.s[rdef["port"]] + (i if rdef.get("replicated") else 0)}
    variables = {"api": var(rdef["port"])}
    for kind, setting in (b.connector or {}).get("ports", {}).items():
        name = setting.format(role=role)
        ports[kind], variables[kind] = b.s[name], var(name)
    if pool and pool["rpc_port"] is not None:
        ports["dp_rpc"], variables["dp_rpc"] = pool["rpc_port"], pool["rpc_var"]
    if b.topology["lmcache"]:
        ports["lmcache_zmq"] = b.s["lmcache_port"] + 10 * i
    ranges = {}
    for kind in P.RANGED_PORTS:
        if kind in ports:
            first = ports[kind] + (pool["start_rank"] if pool else 0)
            ranges[kind] = [first, first + len(gpus) - 1]
    return ports, variables, ranges


def _engine(b: Build, slot: tuple[str, dict[str, Any], int, list[int], str],
            pools: dict[tuple[str, str, int], dict[str, Any]], router_host: Optional[dict[str, Any]],
            problems: list[Problem]) -> dict[str, Any]:
    role, h, i, gpus, gvar = slot
    rdef = b.topology["roles"][role]
    pool = pools.get((role, h["name"], i))
    ports, port_vars, ranges = _engine_ports(b, role, rdef, h, i, gpus, pool)
    values = _values(b, role, h, gpus, gvar, pool, ports)
    features = set(b.features)
    features.update(name for name, on in (("port_not_default", ports["api"] != P.VLLM_DEFAULT_PORT),
                                          ("pool_nodes", bool(pool) and pool["nodes"] > 1),
                                          ("pool_worker", bool(pool) and bool(pool["start_rank"]))) if on)
    flags = Flags(lines(P.ENGINE_FLAGS[b.topology["flags"]][role], features, values))
    remote = router_host is not None and router_host["name"] != h["name"]
    bind = _bind_address(b, h, remote)
    _add_before(flags, "port", ["--host", bind, var("engine_bind_address")])  # profiles.HARDENING
    if b.s["engine_shutdown_timeout"] and _has_flag(b, "--shutdown-timeout"):  # profiles.HARDENING
        flags.add("--shutdown-timeout", b.s["engine_shutdown_timeout"], var("engine_shutdown_timeout"))
    strategy = _load_strategy(b)
    if strategy and _has_flag(b, "--safetensors-load-strategy"):  # profiles.PERFORMANCE
        flags.add("--safetensors-load-strategy", strategy, var("engine_load_strategy"))
    overrides = [(var(o), b.s[o]) for o in rdef["overrides"]]
    merge(flags, [(var(e), b.s[e]) for e in rdef["extra"]], overrides, h["name"], problems,
          ENGINE_FIX.format(override=overrides[-1][0]))
    ports.pop("lmcache_zmq", None)
    suffix = "-%d" % i if rdef.get("replicated") and b.s["replicas_per_host"] > 1 else ""
    name = "%s-%s%s" % (b.s["name_prefix"], rdef["service"], suffix)
    local = "http://%s:%d" % (_url_host(bind, "localhost"), ports["api"])
    reach = "http://%s:%d" % (_url_host(bind, h["address"]), ports["api"]) if remote else local
    env = _env(b, rdef, h, gpus, values, problems)
    spec = container(b, [ports["api"]] if b.topology["published"] else [])
    spec["stop_timeout"] = _stop_timeout(flags)
    svc = service(h["name"], name, "engine", role, b.s["image"], flags.argv(), env, gpus, ports, spec, reach,
                  local + "/health", rdef["order"])
    port_vars.update(gpus=gvar, overrides=overrides[-1][0], extra=var(rdef["extra"][-1]))
    svc.update(port_ranges=ranges, _flags=flags, _vars=port_vars, _index=i, bind_address=bind, _remote=remote)
    _engine_api_key(b, svc, router_host)
    _engine_weights(b, svc, h, problems)
    svc["cache"] = _engine_cache(b)
    return svc


def _load_strategy(b: Build) -> Optional[str]:
    """--safetensors-load-strategy: the setting, else the recipe profile's; None for vLLM's own."""
    chosen = b.s["engine_load_strategy"]
    chosen = b.recipe.get("load_strategy") if chosen is None else chosen
    return None if chosen in (None, "default") else chosen


def _engine_cache(b: Build) -> Optional[dict[str, Any]]:
    """Where the engine's kernel and compile caches live on its host, or None (plan_engine_cache_dir: off)."""
    root = b.s["engine_cache_dir"]
    if root == "off":
        return None
    if root is None:
        parent = b.s["hf_cache_dir"].rstrip("/").rsplit("/", 1)[0] or "/"
        root = "%s/%s" % (parent.rstrip("/"), P.ENGINE_CACHE_DIR_NAME)
    mount = P.ENGINE_CACHE_MOUNT
    return {"dir": root, "mount": mount, "key": list(P.ENGINE_CACHE_KEY),
            "env": {name: "%s/%s" % (mount, sub) for name, sub in P.ENGINE_CACHE_ENV.items()}}


def _version(text: Any) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", str(text or ""))[:3])


def _has_flag(b: Build, flag: str) -> bool:
    """Whether the profile's vLLM has FLAG (profiles.ENGINE_FLAGS_SINCE; an unknown version is taken as new)."""
    since = P.ENGINE_FLAGS_SINCE.get(flag)
    return not since or not b.s["vllm_version"] or _version(b.s["vllm_version"]) >= _version(since)


def _stop_timeout(flags: Flags) -> Optional[int]:
    """Seconds Docker waits for a stopping engine: its own --shutdown-timeout and a margin; None (Docker's 10 s)
    where it aborts what it serves."""
    try:
        drain = int(flags.get("shutdown-timeout", 0) or 0)
    except (TypeError, ValueError):
        drain = 0
    return drain + P.ENGINE_STOP_MARGIN if drain > 0 else None


def _engine_weights(b: Build, svc: dict[str, Any], h: dict[str, Any], problems: list[Problem]) -> None:
    """What the engine serves: the repository, the revision the plan pins (null: the default branch) and whether it
    runs offline (HF_HUB_OFFLINE=1 in its env). vllm_engine adds ``revision_flag`` with the commit hf_cache verified
    (profiles.HARDENING_RUN_TIME); a user's flag cannot name another revision."""
    for flag, value, origin in svc["_flags"].entries:
        if flag_key(flag) == flag_key(P.REVISION_FLAG) and origin is not None:
            problems.append(Problem(origin, flag if value is None else [flag, value], "%s is managed by the plan: "
                                    "every engine serves the commit hf_cache verified." % P.REVISION_FLAG,
                                    "remove it; set %s (a branch, tag or commit) instead." % var("weights_revision"),
                                    h["name"]))
    svc["weights"] = {"repo_id": b.s["model"], "revision": b.s["weights_revision"],
                      "revision_flag": P.REVISION_FLAG, "offline": b.s["hf_offline"]}


def _add_before(flags: Flags, key: str, entry: Iterable[Any]) -> None:
    """Add a flag entry before the flag ``key`` (where a person looks for it), or at the end."""
    at = flags.index(key)
    flags.entries.insert(at if at >= 0 else len(flags.entries), list(entry))


def _bind_address(b: Build, h: dict[str, Any], remote: bool) -> str:
    """Where the engine listens: the host's own setting, else loopback unless another host reaches it (a router
    elsewhere, or a topology whose every node serves clients: row ``bind`` address)."""
    if h["engine_bind_address"] is not None:
        return h["engine_bind_address"]
    return h["address"] if remote or b.topology["bind"] == "address" else P.LOOPBACK


def _url_host(bind: str, fallback: str) -> str:
    """The host part of a URL that reaches a service listening on ``bind`` (every interface or loopback: the
    fallback; an IPv6 literal in brackets)."""
    host = fallback if bind in P.ALL_INTERFACES or (bind == P.LOOPBACK and fallback == "localhost") else bind
    return "[%s]" % host if ":" in host and not host.startswith("[") else host


def _engine_api_key(b: Build, svc: dict[str, Any], router_host: Optional[dict[str, Any]]) -> None:
    """With deepseek_v4_api_key set, an engine requires it (VLLM_API_KEY, filled by vllm_engine; the plan carries its
    name only), unless a router that cannot send it fronts the engine (ROUTER_FORWARDS_API_KEY)."""
    fronted = router_host is not None and b.s["router_version"] not in P.ROUTER_FORWARDS_API_KEY
    svc["api_key"] = b.api_key and not fronted
    svc["secret_env"] = {P.API_KEY_ENV: P.API_KEY_VARIABLE} if svc["api_key"] else {}


def container(b: Build, published: Iterable[int], privileged: Optional[bool] = None,
              volumes: bool = True) -> dict[str, Any]:
    s = b.s
    vols = ["%s:/root/.cache/huggingface" % s["hf_cache_dir"]] if volumes else []
    if volumes and b.topology["shared"] and s["shared_dir"]:
        vols.append("%s:%s" % (s["shared_dir"], s["shared_dir"]))
    imex = volumes and {"imex", "multi_node"} <= b.features
    privileged = b.topology["privileged"] if privileged is None else privileged
    spec = {"privileged": privileged, "ipc_mode": "host",
            "network_mode": "host", "published_ports": ["%d:%d" % (p, p) for p in published], "volumes": vols,
            "device_requests": [copy.deepcopy(P.GPU_REQUEST)],
            "devices": ["%s:%s" % (P.IMEX_DEVICE, P.IMEX_DEVICE)] if imex else [], "ulimits": [], "cap_add": []}
    if privileged and s["engine_privileges"] == "rdma_devices":
        # No --privileged: what RDMA needs, where the engines use it (KV over RDMA, NCCL across nodes).
        spec["privileged"] = False
        if _uses_rdma(b):
            spec["devices"].append("%s:%s" % (P.RDMA_DEVICE, P.RDMA_DEVICE))
            spec["cap_add"] = list(P.RDMA_CAPABILITIES)
            spec["ulimits"] = list(P.RDMA_ULIMITS)
    return spec


def _uses_rdma(b: Build) -> bool:
    rdma = (b.connector or {}).get("rdma")
    return bool(rdma is True or (rdma and rdma in b.features) or b.topology["multi_node"])


def service(host: str, name: str, kind: str, role: str, image: Optional[str], argv: list[str], env: dict[str, str],
            gpus: Optional[Iterable[int]], ports: dict[str, int], container_spec: Optional[dict[str, Any]], url: str,
            health_url: str, order: int, entrypoint: Optional[list[str]] = None) -> dict[str, Any]:
    return {"host": host, "name": name, "kind": kind, "role": role, "image": image, "entrypoint": entrypoint,
            "argv": argv, "env": env, "gpus": list(gpus or []), "ports": ports, "container": container_spec,
            "url": url, "health_url": health_url, "start_order": order, "after": [], "restart_with": [],
            "port_ranges": {}, "bind_address": P.LOOPBACK, "api_key": False, "secret_env": {}, "secret_args": {}}


def ref(svc: dict[str, Any]) -> str:
    return "%s/%s" % (svc["host"], svc["name"])


# ------------------------------------------------------------------------------------------------ router, LMCache
def _router(b: Build, router_host: dict[str, Any], problems: list[Problem]) -> dict[str, Any]:
    s = b.s
    engines = b.engines
    flags = Flags([("--policy", s["router_policy"], var("router_policy")), ("--vllm-pd-disaggregation", None, None)])
    for svc in engines:
        bport = svc["ports"].get("mooncake_bootstrap")
        custom = b.topology["roles"][svc["role"]].get("router_bootstrap") and bport is not None and (
            bport != P.MOONCAKE_DEFAULT_BOOTSTRAP_PORT)
        flags.add("--%s" % svc["role"], [svc["url"], bport] if custom else svc["url"], svc["_vars"]["api"])
    flags.add("--host", s["router_host"], var("router_host")).add("--port", s["router_port"], var("router_port"))
    dps = sorted({parallel_sizes(x["_flags"])[2] for x in engines})
    flags.add("--intra-node-data-parallel-size", dps[0] if dps else 1, None)
    connector = b.connector["router"]
    if connector and connector != P.ROUTER_DEFAULT_CONNECTOR:
        flags.add("--kv-connector", connector, var("topology"))
    if s["router_metrics_port"] != P.ROUTER_DEFAULT_METRICS_PORT:
        flags.add("--prometheus-port", s["router_metrics_port"], var("router_metrics_port"))
    for flag, setting, scale in P.ROUTER_RESILIENCE:  # profiles.HARDENING
        flags.add(flag, s[setting] if scale == 1 else "%.2f" % (s[setting] / float(scale)), var(setting))
    merge(flags, [(var("router_extra_args"), s["router_extra_args"])], None, router_host["name"], problems,
          "remove it; the router flags follow plan_router_* settings and the engines.",
          repeatable=tuple(b.topology["roles"]), what="router flag")
    argv = ["vllm-router"] + flags.argv()
    local = s["router_host"] if s["router_host"] not in ("0.0.0.0", "::") else "127.0.0.1"
    svc = service(router_host["name"], "%s-router" % s["name_prefix"], "router", "router", None, argv, {}, [],
                  {"router": s["router_port"], "router_metrics": s["router_metrics_port"],
                   "router_standby": s["router_standby_port"],
                   "router_standby_metrics": s["router_standby_metrics_port"]}, None,
                  "http://%s:%d" % (local, s["router_port"]), "http://%s:%d/readiness" % (local, s["router_port"]),
                  P.ORDER["router"])
    # vllm-router reads its workers only at startup: the prefills' Mooncake engine ids (GET /query on the
    # bootstrap port) and every worker's data-parallel ranks (/metrics). A recreated engine has new engine
    # ids, so the router restarts with every engine it lists (else decode fails "remote engine_id not found").
    svc["after"] = [ref(x) for x in engines]
    svc["restart_with"] = list(svc["after"])
    svc["workers"], span = _router_workers(argv, engines)
    svc.update(_around(argv, span))
    b.failure_policy = _failure_policy(b, problems)
    svc["bind_address"] = s["router_host"]
    svc["standby"] = _standby(svc, argv, local, s)
    svc["standby"].update(_around(svc["standby"]["argv"], span))
    svc.update(_flags=flags, _vars={"router": var("router_port"), "router_metrics": var("router_metrics_port"),
                                    "router_standby": var("router_standby_port"),
                                    "router_standby_metrics": var("router_standby_metrics_port")})
    forwards = s["router_version"] in P.ROUTER_FORWARDS_API_KEY
    # The router has no inbound authentication: it never requires the key; it sends it to the workers where it can.
    svc["api_key"] = False
    svc["secret_args"] = {P.ROUTER_API_KEY_FLAG: P.API_KEY_VARIABLE} if b.api_key and forwards else {}
    return svc


def _standby(svc: dict[str, Any], argv: list[str], local: str, s: dict[str, Any]) -> dict[str, Any]:
    """The standby router: the router's argv on the standby ports. playbooks/upgrade.yml starts it, and the endpoint
    front passes new requests to it, while the router restarts (the router reads its workers only at startup, so it
    restarts after each batch); it stops once the router serves again and its streams are over."""
    ports = {"--port": s["router_standby_port"], "--prometheus-port": s["router_standby_metrics_port"]}
    out = [str(ports[argv[i - 1]]) if i and argv[i - 1] in ports else token for i, token in enumerate(argv)]
    out += ["--prometheus-port", str(ports["--prometheus-port"])] if "--prometheus-port" not in argv else []
    url = "http://%s:%d" % (local, s["router_standby_port"])
    return {"name": "%s-standby" % svc["name"], "argv": out, "url": url, "health_url": url + "/readiness"}


def _failure_policy(b: Build, problems: list[Problem]) -> dict[str, Any]:
    """What the endpoint front does while the router or one side of the pair fails (plan_endpoint_failure_policy):
    {policy, fallbacks, tries}, the fallbacks being the engines that serve whole requests alone (decode first: it
    has the KV capacity for long answers), tries the front's tries through the router (retry: plan_endpoint_retry_tries;
    fallback: the router once, then each fallback; fail: one)."""
    alone = bool((b.connector or {}).get("serves_alone"))
    policy = b.s["endpoint_failure_policy"]
    if policy == "auto":
        policy = "fallback" if alone else "retry"
    elif policy == "fallback" and not alone:
        problems.append(Problem(var("endpoint_failure_policy"), policy, "needs engines that serve whole requests on "
                                "their own; the %s connector's are not kv_both." % b.connector["kv_connector"],
                                "set retry (or auto)."))
    order = {role: 0 for role, row in b.topology["roles"].items() if row.get("fallback_first")}
    engines = sorted(b.engines, key=lambda x: order.get(x["role"], 1)) if policy == "fallback" else []
    fallbacks = [_direct_url(x) for x in engines]
    tries = {"retry": b.s["endpoint_retry_tries"], "fallback": 1 + len(fallbacks)}.get(policy, 1)
    return {"policy": policy, "fallbacks": fallbacks, "tries": tries}


def _direct_url(engine: dict[str, Any]) -> str:
    """The engine's API as an address, not a name (``localhost`` may resolve to ::1 where the engine binds IPv4)."""
    address = engine["bind_address"] if engine["bind_address"] not in ("0.0.0.0", "::") else P.LOOPBACK
    return "http://%s:%d" % ("[%s]" % address if ":" in address else address, engine["ports"]["api"])


def _router_workers(argv: list[str], engines: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], tuple[int, int]]:
    """Each engine the router lists, with its health URL and its own tokens of the router's argv (--prefill URL
    [BOOTSTRAP_PORT], --decode URL), and the slice of argv the workers' tokens fill ([first, end)): the vllm_router
    role leaves out the workers that do not answer (filter router_argv), so that a host lost during a rollout does not
    keep the router from starting."""
    workers, spans = [], []
    for x in engines:
        start = next(i for i in range(1, len(argv)) if argv[i] == x["url"] and argv[i - 1] == "--" + x["role"])
        end = start + 1 + (1 if start + 1 < len(argv) and argv[start + 1].isdigit() else 0)
        workers.append({"ref": ref(x), "role": x["role"], "health_url": x["health_url"],
                        "argv": argv[start - 1:end]})
        spans.append((start - 1, end))
    first, end = (min(a for a, e in spans), max(e for a, e in spans)) if spans else (len(argv), len(argv))
    return workers, (first, end)


def _around(argv: list[str], span: tuple[int, int]) -> dict[str, list[str]]:
    """The router's argv before and after its workers' tokens: argv_head + every worker's argv + argv_tail is argv."""
    return {"argv_head": argv[:span[0]], "argv_tail": argv[span[1]:]}


def _lmcache(b: Build, engine: dict[str, Any], problems: list[Problem]) -> dict[str, Any]:
    s = b.s
    i = engine["_index"]
    zmq, http = s["lmcache_port"] + i * 10, s["lmcache_http_port"] + i
    flags = Flags([("--l1-size-gb", s["lmcache_l1_size_gb"], var("lmcache_l1_size_gb")),
                   ("--eviction-policy", s["lmcache_eviction_policy"], var("lmcache_eviction_policy"))])
    if zmq != P.LMCACHE_DEFAULT_PORTS["zmq"]:
        flags.add("--port", zmq, var("lmcache_port"))
    if http != P.LMCACHE_DEFAULT_PORTS["http"]:
        flags.add("--http-port", http, var("lmcache_http_port"))
    flags.add("--http-host", P.LOOPBACK, None)  # profiles.HARDENING
    merge(flags, [(var("lmcache_extra_args"), s["lmcache_extra_args"])], None, engine["host"], problems,
          "remove it; set plan_lmcache_l1_size_gb, plan_lmcache_eviction_policy, plan_lmcache_port or "
          "plan_lmcache_http_port instead.", what="LMCache flag")
    suffix = engine["name"][len("%s-%s" % (s["name_prefix"], b.topology["roles"][engine["role"]]["service"])):]
    svc = service(engine["host"], "%s-lmcache%s" % (s["name_prefix"], suffix), "lmcache", P.LMCACHE_ROLE,
                  s["lmcache_image"], ["lmcache", "server"] + flags.argv(), {}, [],
                  {"lmcache_zmq": zmq, "lmcache_http": http}, container(b, [], privileged=False, volumes=False),
                  "http://%s:%d" % (P.LOOPBACK, http), "http://%s:%d/healthcheck" % (P.LOOPBACK, http),
                  P.ORDER["lmcache"], entrypoint=["lmcache"])
    svc.update(_flags=flags, _vars={"lmcache_zmq": var("lmcache_port"), "lmcache_http": var("lmcache_http_port")})
    engine["after"] = [ref(svc)]
    return svc


# ------------------------------------------------------------------------------------------------ the plan
def build_plan(user_settings: Optional[Mapping[str, Any]], hosts: Optional[Iterable[dict[str, Any]]],
               api_key: bool = False) -> dict[str, Any]:
    """The plan of docs/plan-format.md; raises PlanError with every problem found. ``api_key``: whether
    deepseek_v4_api_key is set (the key itself never reaches the plan)."""
    s, problems = settings.merge(user_settings)
    if any(s[n] not in settings.choices(n) for n in ("topology", "hardware", "recipe")):
        raise PlanError(problems)
    b = Build(s, api_key)
    b.hosts = {str(h.get("name")): _host(h, b, problems) for h in hosts or []}
    _require_groups(b, problems)
    problems.extend(_require_hosts(b))
    router_host = _members(b, "router")[0] if b.topology["router"] else None
    slots = _engine_slots(b, problems)
    pools = _pools(b, slots)
    for slot in slots:
        engine = _engine(b, slot, pools, router_host, problems)
        b.services.append(engine)
        if b.topology["lmcache"]:
            b.services.append(_lmcache(b, engine, problems))
    for svc in b.engines:
        row = b.topology["roles"][svc["role"]]
        svc["after"] = svc["after"] + [ref(x) for x in b.engines if x["role"] in row["after"]]
        svc["restart_with"] = [ref(x) for x in b.engines if x["role"] in row.get("restart_with", row["after"])]
    if router_host is not None:
        b.services.append(_router(b, router_host, problems))
    for rule in rules.RULES:
        problems.extend(rule(b))
    if problems:
        raise PlanError(problems, b.warnings)
    return render.plan(b)


def topology_groups(user_settings: Optional[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """(role, inventory group) of every group the chosen topology reads; every group for an unknown topology."""
    user = user_settings or {}
    tdef = P.TOPOLOGIES.get(user.get("topology") or P.SETTINGS["topology"]["default"])
    if tdef is None:
        roles = [name[:-len("_group")] for name in P.SETTINGS if name.endswith("_group")]
    else:
        roles = [rdef["group"] for rdef in tdef["roles"].values()] + (["router"] if tdef["router"] else [])
    return [(role, user.get("%s_group" % role) or P.SETTINGS["%s_group" % role]["default"]) for role in roles]
