# -*- coding: utf-8 -*-
# Copyright: inference.deepseek_v4 contributors
# Apache License 2.0 (see LICENSE)
"""The serving plan engine: inventory in, every service's exact command out, or every problem found.

Pure Python, no Ansible imports, so that it is unit-testable on its own. ``build_plan(settings, hosts)`` returns the
plan described in docs/plan-format.md or raises ``PlanError`` carrying every problem, each naming the variable, the
value found and the fix.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
import shlex
import tempfile

from ansible_collections.inference.deepseek_v4.plugins.module_utils import plan_profiles as P

VAR_PREFIX = "plan_"


class Problem(object):
    """One thing wrong with the inventory."""

    def __init__(self, variable, found, message, fix, host=None):
        self.variable = variable
        self.found = found
        self.message = message
        self.fix = fix
        self.host = host

    def as_dict(self):
        return {"host": self.host, "variable": self.variable, "found": self.found, "message": self.message,
                "fix": self.fix}

    def __str__(self):
        where = "host %s: " % self.host if self.host else ""
        return "%s%s=%s: %s Fix: %s" % (where, self.variable, json.dumps(self.found, default=str), self.message,
                                        self.fix)


class PlanError(Exception):
    """Raised with every problem found; nothing is planned while one remains."""

    def __init__(self, problems, warnings=None):
        self.problems = list(problems)
        self.warnings = list(warnings or [])
        super(PlanError, self).__init__(self.summary())

    def summary(self):
        lines = ["The serving plan was refused (%d problem%s); no host was changed:" %
                 (len(self.problems), "" if len(self.problems) == 1 else "s")]
        lines.extend("  - %s" % p for p in self.problems)
        return "\n".join(lines)


def var(name):
    return VAR_PREFIX + name


# --------------------------------------------------------------------------------------------------------------
# Flags
# --------------------------------------------------------------------------------------------------------------
SHORT_FLAGS = {"-tp": "tensor-parallel-size", "-dp": "data-parallel-size", "-pp": "pipeline-parallel-size",
               "-dpl": "data-parallel-size-local", "-dpa": "data-parallel-address",
               "-dpp": "data-parallel-rpc-port", "-dpr": "data-parallel-start-rank", "-ep": "enable-expert-parallel"}


def flag_key(flag):
    """Normalised identity of a flag: dashes for underscores, no ``no-`` prefix, long form."""
    name = flag.split("=", 1)[0]
    if name in SHORT_FLAGS:
        return SHORT_FLAGS[name]
    name = name.lstrip("-").replace("_", "-")
    if name.startswith("no-"):
        name = name[3:]
    return name


class Flags(object):
    """An ordered list of (flag, value) pairs; value None is a bare flag. Rendered exactly in insertion order."""

    def __init__(self, pairs=()):
        self.pairs = [list(p) for p in pairs]

    def add(self, flag, value=None):
        self.pairs.append([flag, value])
        return self

    def index(self, key):
        for i, (flag, _value) in enumerate(self.pairs):
            if flag_key(flag) == key:
                return i
        return -1

    def has(self, key):
        return self.index(key) >= 0

    def get(self, key, default=None):
        i = self.index(key)
        if i < 0:
            return default
        flag, value = self.pairs[i]
        if "=" in flag and value is None:
            return flag.split("=", 1)[1]
        return value

    def flag(self, key):
        i = self.index(key)
        return self.pairs[i][0] if i >= 0 else None

    def set(self, flag, value):
        """Replace a flag in place (keeping its position), or append it."""
        i = self.index(flag_key(flag))
        if i >= 0:
            self.pairs[i] = [flag, value]
        else:
            self.pairs.append([flag, value])

    def remove(self, key):
        self.pairs = [p for p in self.pairs if flag_key(p[0]) != key]

    def argv(self):
        out = []
        for flag, value in self.pairs:
            out.append(flag)
            if value is not None:
                out.append(str(value))
        return out


def parse_args(tokens, variable, host, problems, positional_ok=False):
    """Parse a user's list of extra flags into (flag, value) pairs. Problems are appended, not raised."""
    pairs = []
    if tokens is None:
        return pairs
    if isinstance(tokens, str) or not isinstance(tokens, (list, tuple)):
        problems.append(Problem(variable, tokens, "must be a list of command-line tokens.",
                                "write it as a YAML list, e.g. ['--max-num-seqs', '16'].", host))
        return pairs
    tokens = [str(t) for t in tokens]
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if not tok.startswith("-"):
            if not positional_ok:
                problems.append(Problem(variable, tokens, "token %r is not a flag (positional arguments are "
                                        "managed by the plan)." % tok,
                                        "remove it; the model is set with plan_model.", host))
            i += 1
            continue
        if "=" in tok or i + 1 >= len(tokens) or tokens[i + 1].startswith("--"):
            pairs.append([tok, None])
            i += 1
        else:
            pairs.append([tok, tokens[i + 1]])
            i += 2
    return pairs


def apply_overrides(flags, overrides, variable, host, problems):
    """Change managed flags' values: a value sets it, true makes it a bare flag, false or null removes it."""
    if not overrides:
        return
    if not isinstance(overrides, dict):
        problems.append(Problem(variable, overrides, "must be a mapping of flag to value.",
                                "write it as {'--max-num-seqs': 16}.", host))
        return
    for flag, value in overrides.items():
        flag = str(flag)
        if not flag.startswith("--"):
            problems.append(Problem(variable, overrides, "key %r is not a long flag." % flag,
                                    "spell flags in full, e.g. '--max-num-seqs'.", host))
            continue
        if value is False or value is None:
            flags.remove(flag_key(flag))
        elif value is True:
            flags.set(flag, None)
        elif isinstance(value, (dict, list)):
            flags.set(flag, json.dumps(value, separators=(",", ":")))
        else:
            flags.set(flag, str(value))


def add_extra(flags, extra_pairs, variable, host, problems, override_var):
    """Append user flags; a flag the plan already manages is refused with the way to change it."""
    for flag, value in extra_pairs:
        key = flag_key(flag)
        if flags.has(key):
            managed = flags.flag(key)
            problems.append(Problem(
                variable, flag if value is None else [flag, value],
                "%s contradicts the managed flag %s (managed value %r)." % (flag, managed, flags.get(key)),
                "remove it from %s; to change a managed flag set %s: {'%s': <value>} "
                "(true for a bare flag, false to drop it)." % (variable, override_var, managed.split("=")[0]),
                host))
            continue
        flags.add(flag, value)


# --------------------------------------------------------------------------------------------------------------
# Settings
# --------------------------------------------------------------------------------------------------------------
def _merge_settings(user):
    settings = copy.deepcopy(P.SETTINGS)
    problems = []
    for key, value in (user or {}).items():
        if key not in P.SETTINGS:
            problems.append(Problem(var(key), value, "is not a setting of the serving plan.",
                                    "remove it or correct its name (see roles/plan/README.md).", None))
            continue
        if value is not None:
            settings[key] = value
    topo = settings["topology"]
    if topo not in P.TOPOLOGIES:
        problems.append(Problem(var("topology"), topo, "is not a known topology.",
                                "use one of: %s." % ", ".join(sorted(P.TOPOLOGIES)), None))
        return settings, problems
    tdef = P.TOPOLOGIES[topo]
    if settings["hardware"] is None:
        settings["hardware"] = tdef["hardware"]
    if settings["hardware"] not in P.HARDWARE_PROFILES:
        problems.append(Problem(var("hardware"), settings["hardware"], "is not a known hardware profile.",
                                "use one of: %s." % ", ".join(sorted(P.HARDWARE_PROFILES)), None))
    if settings["recipe"] not in P.RECIPES:
        problems.append(Problem(var("recipe"), settings["recipe"], "is not a known recipe profile.",
                                "use one of: %s." % ", ".join(sorted(P.RECIPES)), None))
        return settings, problems
    recipe = P.RECIPES[settings["recipe"]]
    for key in ("image", "vllm_version", "router_version", "model", "enable_tool_calling"):
        if settings[key] is None:
            settings[key] = recipe[key]
    if settings["lmcache_image"] is None:
        settings["lmcache_image"] = settings["image"]
    for key, fallback in (("prefill_port", 8000), ("decode_port", 8001), ("decode_side_channel_port", 5567)):
        if settings[key] is None:
            settings[key] = tdef.get(key, fallback)
    _check_types(settings, problems)
    return settings, problems


_INT_SETTINGS = ("engine_port", "prefill_port", "decode_port", "prefill_bootstrap_port", "decode_bootstrap_port",
                 "prefill_side_channel_port", "decode_side_channel_port", "prefill_dp_rpc_port",
                 "decode_dp_rpc_port", "router_port", "router_metrics_port", "lmcache_port", "lmcache_http_port",
                 "replicas_per_host", "lmcache_l1_size_gb")
_LIST_SETTINGS = ("reasoning_modes", "router_extra_args", "lmcache_extra_args", "extra_engine_args",
                  "extra_prefill_args", "extra_decode_args")
_DICT_SETTINGS = ("engine_flag_overrides", "prefill_flag_overrides", "decode_flag_overrides", "extra_env",
                  "extra_prefill_env", "extra_decode_env")


def _check_types(s, problems):
    for key in _INT_SETTINGS:
        try:
            s[key] = int(s[key])
            if isinstance(s[key], bool):
                raise ValueError
        except (TypeError, ValueError):
            problems.append(Problem(var(key), s[key], "must be a whole number.", "set a number.", None))
            s[key] = 0
    for key in _LIST_SETTINGS:
        if not isinstance(s[key], (list, tuple)):
            problems.append(Problem(var(key), s[key], "must be a list.", "write it as a YAML list.", None))
            s[key] = []
    for key in _DICT_SETTINGS:
        if not isinstance(s[key], dict):
            problems.append(Problem(var(key), s[key], "must be a mapping.", "write it as a YAML mapping.", None))
            s[key] = {}
    for mode in s["reasoning_modes"]:
        if mode not in P.REASONING_MODES:
            problems.append(Problem(var("reasoning_modes"), s["reasoning_modes"],
                                    "%r is not a reasoning mode." % mode,
                                    "use a subset of: %s." % ", ".join(P.REASONING_MODES), None))
    if s["mooncake_protocol"] not in P.MOONCAKE_PROTOCOLS:
        problems.append(Problem(var("mooncake_protocol"), s["mooncake_protocol"], "is not a Mooncake protocol.",
                                "use rdma (default) or tcp.", None))
    if s["router_policy"] not in P.ROUTER_POLICIES:
        problems.append(Problem(var("router_policy"), s["router_policy"], "is not a vllm-router policy.",
                                "use one of: %s." % ", ".join(P.ROUTER_POLICIES), None))
    if s["replicas_per_host"] < 1:
        problems.append(Problem(var("replicas_per_host"), s["replicas_per_host"], "must be at least 1.",
                                "set 1 (default) or 2 on an 8-GPU host.", None))
    if not re.match(r"^[a-z0-9][a-z0-9_.-]*$", str(s["name_prefix"])):
        problems.append(Problem(var("name_prefix"), s["name_prefix"],
                                "is not a valid container name prefix.",
                                "use lower-case letters, digits, '-', '_' and '.'.", None))


# --------------------------------------------------------------------------------------------------------------
# Image references
# --------------------------------------------------------------------------------------------------------------
def image_tag(ref):
    """(tag or None, digest or None) of an image reference."""
    ref = str(ref)
    digest = None
    if "@" in ref:
        ref, digest = ref.split("@", 1)
    last = ref.rsplit("/", 1)[-1]
    tag = last.split(":", 1)[1] if ":" in last else None
    return tag, digest


def check_image(ref, variable, allow, problems):
    if not ref or not isinstance(ref, str):
        problems.append(Problem(variable, ref, "must be an image reference.",
                                "set e.g. vllm/vllm-openai:deepseekv4-cu130.", None))
        return
    tag, digest = image_tag(ref)
    if digest or allow:
        return
    if tag is None:
        problems.append(Problem(variable, ref, "has no tag, which means 'latest': an unpinned, moving image.",
                                "pin a tagged release (e.g. vllm/vllm-openai:deepseekv4-cu130) or a digest; "
                                "set plan_allow_untagged_image: true to run it anyway.", None))
    elif tag.lower() in P.REFUSED_IMAGE_TAGS or "nightly" in tag.lower():
        problems.append(Problem(variable, ref,
                                "tag %r is not a tagged release; the vLLM development branch is known to break "
                                "DeepSeek-V4-Flash (FP4 experts misdispatched)." % tag,
                                "pin a tagged release such as vllm/vllm-openai:deepseekv4-cu130; set "
                                "plan_allow_untagged_image: true to run it anyway.", None))


# --------------------------------------------------------------------------------------------------------------
# Hosts
# --------------------------------------------------------------------------------------------------------------
def _gpu_list(value, variable, host, problems):
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
                raise ValueError
            out.append(int(v))
        except (TypeError, ValueError):
            problems.append(Problem(variable, value, "%r is not a GPU index." % (v,),
                                    "use whole numbers as nvidia-smi numbers the GPUs.", host))
            return []
    return out


def _normalise_hosts(hosts, profile, problems):
    """hosts: list of {name, groups, address, gpu_count, prefill_gpus, decode_gpus, engine_gpus}."""
    out = {}
    for h in hosts or []:
        name = str(h.get("name"))
        unknown = set(h) - set(P.HOST_SETTINGS) - {"name", "groups"}
        for key in sorted(unknown):
            problems.append(Problem(var(key), h[key], "is not a per-host setting of the serving plan.",
                                    "use one of: %s." % ", ".join(var(k) for k in P.HOST_SETTINGS), name))
        count = h.get("gpu_count")
        if count is None:
            count = profile["gpus_per_node"]
        try:
            count = int(count)
        except (TypeError, ValueError):
            problems.append(Problem(var("gpu_count"), count, "must be a whole number.", "set the host's GPU count.",
                                    name))
            count = profile["gpus_per_node"]
        out[name] = {
            "name": name,
            "groups": list(h.get("groups") or []),
            "address": str(h.get("address") or name),
            "gpu_count": count,
            "prefill_gpus": _gpu_list(h.get("prefill_gpus"), var("prefill_gpus"), name, problems),
            "decode_gpus": _gpu_list(h.get("decode_gpus"), var("decode_gpus"), name, problems),
            "engine_gpus": h.get("engine_gpus"),
        }
    return out


def _members(hosts, group):
    return [h for h in hosts.values() if group in h["groups"]]


# --------------------------------------------------------------------------------------------------------------
# Engines
# --------------------------------------------------------------------------------------------------------------
def _compact(obj):
    return json.dumps(obj, separators=(",", ":"))


def _common_flags(s):
    flags = Flags([[s["model"], None]])
    flags.add("--trust-remote-code").add("--kv-cache-dtype", "fp8").add("--block-size", "256")
    return flags


def _feature_flags(flags, s, profile):
    if profile["family"] == "blackwell":
        flags.add(P.BLACKWELL_FLAG)
    if s["enable_tool_calling"]:
        flags.add("--tool-call-parser", "deepseek_v4").add("--enable-auto-tool-choice")
    if s["enable_mtp"]:
        flags.add("--speculative_config", _compact({"method": "mtp",
                                                    "num_speculative_tokens": profile["mtp_tokens"]}))


def _kv_config(s, topology, role):
    if topology in ("h200_pd",):
        extra = {"enforce_handshake_compat": False, "mooncake_protocol": s["mooncake_protocol"]}
        if s["mooncake_device_name"]:
            extra["device_name"] = s["mooncake_device_name"]
        return {"kv_connector": "MooncakeConnector", "kv_role": "kv_both", "kv_load_failure_policy": "fail",
                "kv_buffer_device": "cuda", "kv_connector_extra_config": extra}
    if topology == "h200_pd_nixl":
        return {"kv_connector": "NixlConnector", "kv_role": "kv_both"}
    if topology == "gb200_pd_cluster":
        return {"kv_connector": "NixlConnector", "kv_role": "kv_producer" if role == "prefill" else "kv_consumer",
                "kv_load_failure_policy": "fail"}
    if topology == "lmcache_tp8":
        cfg = {"kv_connector": "LMCacheMPConnector", "kv_role": "kv_both"}
        if s["lmcache_port"] != 5555:
            cfg["kv_connector_extra_config"] = {"lmcache.mp.host": "tcp://127.0.0.1",
                                                "lmcache.mp.port": s["lmcache_port"]}
        return cfg
    return None


def _pd_flags(s, profile, topology, role, port, dp, pool=None):
    """Engine flags of the prefill/decode topologies, in the recipe's order."""
    flags = _common_flags(s)
    if topology == "gb200_pd_cluster":
        flags.add("--tokenizer-mode", P.TOKENIZER_MODE).add("--reasoning-parser", "deepseek_v4")
        _feature_flags(flags, s, profile)
        if s["max_model_len"] is not None:
            flags.add("--max-model-len", s["max_model_len"])
        flags.add("--port", port)
        flags.add("--kv-transfer-config", _compact(_kv_config(s, topology, role)))
        flags.add("--data-parallel-size", pool["size"]).add("--data-parallel-size-local", dp)
        flags.add("--data-parallel-start-rank", pool["start_rank"])
        flags.add("--data-parallel-address", pool["address"]).add("--data-parallel-rpc-port", pool["rpc_port"])
        if pool["nodes"] > 1:
            flags.add("--data-parallel-hybrid-lb")
        flags.add("--enable-expert-parallel")
        if role == "prefill":
            flags.add("--enforce-eager").add("--max-num-seqs", "8").add("--max-num-batched-tokens", "65536")
        else:
            flags.add("--max-num-seqs", "1536").add("--max-num-batched-tokens", "1536")
            flags.add("--max-cudagraph-capture-size", "1536")
            flags.add("--compilation-config", _compact({"cudagraph_mode": "FULL_DECODE_ONLY"}))
        flags.add("--no-disable-hybrid-kv-cache-manager").add("--enable-sleep-mode")
        return flags
    flags.add("--port", port).add("--data-parallel-size", dp).add("--enable-expert-parallel")
    flags.add("--tokenizer-mode", P.TOKENIZER_MODE).add("--reasoning-parser", "deepseek_v4")
    flags.add("--max-model-len", "auto" if s["max_model_len"] is None else s["max_model_len"])
    if role == "prefill":
        flags.add("--max-num-batched-tokens", "16384").add("--max-num-seqs", "8").add("--enforce-eager")
    else:
        flags.add("--max-num-seqs", "512").add("--max-num-batched-tokens", "512")
        flags.add("--compilation-config", _compact({"mode": 0, "cudagraph_mode": "FULL_DECODE_ONLY",
                                                    "max_cudagraph_capture_size": 512,
                                                    "compile_ranges_endpoints": [512]}))
    flags.add("--no-disable-hybrid-kv-cache-manager").add("--disable-uvicorn-access-log")
    _feature_flags(flags, s, profile)
    flags.add("--kv-transfer-config", _compact(_kv_config(s, topology, role)))
    return flags


def _single_flags(s, profile, port, dp):
    flags = _common_flags(s)
    flags.add("--tokenizer-mode", P.TOKENIZER_MODE).add("--reasoning-parser", "deepseek_v4")
    flags.add("--enable-expert-parallel").add("--data-parallel-size", dp)
    flags.add("--compilation-config", '{"cudagraph_mode":"FULL_AND_PIECEWISE", "custom_ops":["all"]}')
    return _single_tail(flags, s, profile, port)


def _single_tail(flags, s, profile, port):
    """Flags the non-disaggregated recipes leave out unless set: the context length, a non-default port, features."""
    if s["max_model_len"] is not None:
        flags.add("--max-model-len", s["max_model_len"])
    if port != 8000:
        flags.add("--port", port)
    _feature_flags(flags, s, profile)
    return flags


def _lmcache_engine_flags(s, profile, port, tp):
    flags = Flags([[s["model"], None]])
    flags.add("--tensor-parallel-size", tp).add("--enable-expert-parallel")
    flags.add("--kv-cache-dtype", P.LMCACHE_KV_CACHE_DTYPE).add("--trust-remote-code")
    flags.add("--tokenizer-mode", P.TOKENIZER_MODE)
    flags.add("--kv-transfer-config", json.dumps(_kv_config(s, "lmcache_tp8", "single"), separators=(", ", ":")))
    return _single_tail(flags, s, profile, port)


# --------------------------------------------------------------------------------------------------------------
# Services
# --------------------------------------------------------------------------------------------------------------
GPU_REQUEST = {"driver": "nvidia", "count": -1, "capabilities": [["gpu"]]}


def _container(s, topology, profile, published=None, privileged=True, shared=True):
    volumes = ["%s:/root/.cache/huggingface" % s["hf_cache_dir"]]
    if shared and s["shared_dir"]:
        volumes.append("%s:%s" % (s["shared_dir"], s["shared_dir"]))
    devices = []
    if profile["imex"] and P.TOPOLOGIES[topology].get("multi_node"):
        devices.append("%s:%s" % (P.IMEX_DEVICE, P.IMEX_DEVICE))
    return {
        "privileged": privileged,
        "ipc_mode": "host",
        "network_mode": "host",
        "published_ports": list(published or []),
        "volumes": volumes,
        "device_requests": [copy.deepcopy(GPU_REQUEST)],
        "devices": devices,
        "ulimits": [],
    }


def _engine_env(s, base, gpus, host, extra_vars, problems):
    env = dict(base)
    if gpus is not None and sorted(gpus) != list(range(host["gpu_count"])):
        env["CUDA_VISIBLE_DEVICES"] = ",".join(str(g) for g in gpus)
    if s["hf_offline"]:
        env["HF_HUB_OFFLINE"] = "1"
    for variable in extra_vars:
        extra = s[variable]
        for key, value in extra.items():
            key = str(key)
            if key in P.MANAGED_ENV:
                fix = "remove it from %s and set %s instead." % (var(variable), P.MANAGED_ENV[key])
                problems.append(Problem(var(variable), {key: value}, "%s is derived by the plan." % key, fix,
                                        host["name"]))
                continue
            env[key] = str(value)
    return env


def _finish_engine(flags, s, role, host, problems):
    """Apply the user's extra flags and overrides to an engine's managed flags."""
    scoped = "prefill" if role == "prefill" else "decode" if role == "decode" else None
    for name in ["extra_engine_args"] + (["extra_%s_args" % scoped] if scoped else []):
        override_var = var("%s_flag_overrides" % scoped) if scoped else var("engine_flag_overrides")
        pairs = parse_args(s[name], var(name), host["name"], problems)
        add_extra(flags, pairs, var(name), host["name"], problems, override_var)
    apply_overrides(flags, s["engine_flag_overrides"], var("engine_flag_overrides"), host["name"], problems)
    if scoped:
        apply_overrides(flags, s["%s_flag_overrides" % scoped], var("%s_flag_overrides" % scoped), host["name"],
                        problems)
    return flags


def _service(host, name, kind, role, image, argv, env, gpus, ports, container, url, health_url, order,
             entrypoint=None):
    return {
        "host": host,
        "name": name,
        "kind": kind,
        "role": role,
        "image": image,
        "entrypoint": entrypoint,
        "argv": argv,
        "env": env,
        "gpus": list(gpus or []),
        "ports": ports,
        "container": container,
        "url": url,
        "health_url": health_url,
        "start_order": order,
        "after": [],
        "restart_with": [],
        "port_ranges": {},
    }


def _default_gpus(topology, role, host, profile):
    # Defaults follow the hardware profile, not the host's reported count, so that a host with fewer GPUs than
    # its profile is refused rather than silently planned smaller.
    count = profile["gpus_per_node"]
    if topology in ("h200_pd", "h200_pd_nixl"):
        half = max(count // 2, 1)
        both = len(host["groups_effective"]) > 1
        if role == "prefill":
            return list(range(half)) if both else list(range(min(4, count)))
        return list(range(half, count)) if both else list(range(min(4, count)))
    return list(range(count))


def _engine_gpu_sets(s, topology, host, profile, problems):
    """Single/LMCache engines: one GPU set per replica (defaults follow the hardware profile)."""
    raw = host["engine_gpus"]
    replicas = s["replicas_per_host"]
    if raw is None:
        if topology == "lmcache_tp8":
            per = profile["gpus_per_node"] // replicas
            return [list(range(i * per, (i + 1) * per)) for i in range(replicas)]
        return [list(range(i * 4, i * 4 + 4)) for i in range(replicas)]
    if isinstance(raw, (list, tuple)) and raw and all(isinstance(x, (list, tuple)) for x in raw):
        sets = [_gpu_list(x, var("engine_gpus"), host["name"], problems) for x in raw]
    else:
        sets = [_gpu_list(raw, var("engine_gpus"), host["name"], problems)]
    if len(sets) != replicas:
        problems.append(Problem(var("engine_gpus"), raw,
                                "gives %d GPU set(s) but plan_replicas_per_host is %d." % (len(sets), replicas),
                                "give one list of GPU indices per replica, or change plan_replicas_per_host.",
                                host["name"]))
    return sets


def _dp_of(flags):
    def num(key, default):
        try:
            return int(flags.get(key, default))
        except (TypeError, ValueError):
            return default
    tp = num("tensor-parallel-size", 1)
    dp = num("data-parallel-size", 1)
    dp_local = num("data-parallel-size-local", dp)
    return tp, dp, dp_local


def build_plan(user_settings, hosts):
    """Build the plan. Raises PlanError with every problem found."""
    problems = []
    warnings = []
    s, problems = _merge_settings(user_settings)
    if problems and (s["topology"] not in P.TOPOLOGIES or s["hardware"] not in P.HARDWARE_PROFILES
                     or s["recipe"] not in P.RECIPES):
        raise PlanError(problems)
    topology = s["topology"]
    tdef = P.TOPOLOGIES[topology]
    profile = P.HARDWARE_PROFILES[s["hardware"]]
    check_image(s["image"], var("image"), s["allow_untagged_image"], problems)
    if topology == "lmcache_tp8" and s["lmcache_image"] != s["image"]:
        check_image(s["lmcache_image"], var("lmcache_image"), s["allow_untagged_image"], problems)

    hostmap = _normalise_hosts(hosts, profile, problems)
    group_of = {"prefill": s["prefill_group"], "decode": s["decode_group"], "router": s["router_group"],
                "serving": s["serving_group"]}
    for h in hostmap.values():
        h["groups_effective"] = [g for g in tdef["groups"] if g != "router" and group_of[g] in h["groups"]]

    services = []
    if tdef["disaggregated"]:
        prefill_hosts = _members(hostmap, s["prefill_group"])
        decode_hosts = _members(hostmap, s["decode_group"])
        router_hosts = _members(hostmap, s["router_group"])
        for group, members, need in ((s["prefill_group"], prefill_hosts, "at least one"),
                                     (s["decode_group"], decode_hosts, "at least one"),
                                     (s["router_group"], router_hosts, "exactly one")):
            if not members or (need == "exactly one" and len(members) != 1):
                problems.append(Problem("groups['%s']" % group, [m["name"] for m in members],
                                        "topology %s needs %s host in inventory group '%s'." % (topology, need,
                                                                                                group),
                                        "add the host(s) to group '%s' in the inventory." % group))
        if problems and not (prefill_hosts and decode_hosts and len(router_hosts) == 1):
            raise PlanError(problems, warnings)
        services = _pd_services(s, topology, tdef, profile, prefill_hosts, decode_hosts, router_hosts[0],
                                problems)
    else:
        serving = _members(hostmap, s["serving_group"])
        if not serving:
            problems.append(Problem("groups['%s']" % s["serving_group"], [],
                                    "topology %s needs at least one host in inventory group '%s'." %
                                    (topology, s["serving_group"]),
                                    "add the serving host(s) to group '%s'." % s["serving_group"]))
            raise PlanError(problems, warnings)
        services = _single_services(s, topology, profile, serving, problems)

    _validate(s, topology, profile, hostmap, services, problems, warnings)
    if problems:
        raise PlanError(problems, warnings)

    services.sort(key=lambda x: (x["start_order"], x["host"], x["name"]))
    for svc in services:
        svc["args"] = svc["argv"][len(svc["entrypoint"] or []):]
        base = svc["health_url"].rsplit("/", 1)[0]
        svc["readiness"] = {"health": svc["health_url"],
                            "models": base + "/v1/models" if svc["kind"] == "engine" else None,
                            "completion": base + "/v1/completions" if svc["kind"] == "engine" else None}
        c = svc["container"]
        if c is not None:
            c["recipe_published_ports"] = c["published_ports"]
            c["published_ports"] = [] if c["network_mode"] == "host" else list(c["published_ports"])
        svc["plan_hash"] = service_hash(svc)
        svc["command"] = render_command(svc)
    plan_hosts = {}
    for svc in services:
        entry = plan_hosts.setdefault(svc["host"], {"address": hostmap[svc["host"]]["address"],
                                                    "gpu_count": hostmap[svc["host"]]["gpu_count"],
                                                    "gpus": [], "services": []})
        entry["gpus"] = sorted(set(entry["gpus"]) | set(svc["gpus"]))
        entry["services"].append(svc["name"])
    endpoint = _endpoint(services)
    connector = tdef["connector"]
    moves_kv = connector in ("MooncakeConnector", "NixlConnector")
    for svc in services:
        for kind, port in svc["ports"].items():
            first, last = svc["port_ranges"].get(kind, (port, port))
            plan_hosts[svc["host"]].setdefault("ports", []).append({
                "service": svc["name"], "name": kind, "first": int(first), "last": int(last),
                "variable": _port_variable(svc, kind), "transfer": kind in _TRANSFER_PORTS})
        if svc["kind"] != "router":
            plan_hosts[svc["host"]]["engines"] = True
    for entry in plan_hosts.values():
        entry.setdefault("engines", False)
    parsers = [svc["argv"][svc["argv"].index("--reasoning-parser") + 1] for svc in services
               if svc["kind"] == "engine" and "--reasoning-parser" in svc["argv"]]
    return {
        "topology": topology,
        "description": tdef["description"],
        "hardware": profile["name"],
        "recipe": s["recipe"],
        "model": s["model"],
        "image": s["image"],
        "vllm_version": s["vllm_version"],
        "router_version": s["router_version"],
        "kv_connector": connector,
        "reasoning_modes": list(s["reasoning_modes"]),
        "reasoning_parser": parsers[0] if parsers else None,
        "hardware_profile": {k: v for k, v in profile.items() if k != "mtp_tokens"},
        "weights": {"repo_id": s["model"], "revision": s["weights_revision"], "size_bytes": P.MODEL_SIZE_BYTES,
                    "cache_dir": s["hf_cache_dir"], "shared_dir": s["shared_dir"] if tdef["mount_shared"] else None},
        "transfer": {"connector": connector,
                     "protocol": s["mooncake_protocol"] if connector == "MooncakeConnector" else
                     ("ucx" if connector == "NixlConnector" else None),
                     "rdma": connector == "MooncakeConnector" and s["mooncake_protocol"] == "rdma"
                     or connector == "NixlConnector",
                     "peermem": connector == "MooncakeConnector" and profile["name"] != "gb200",
                     "hosts": sorted({x["host"] for x in services if x["kind"] == "engine"}) if moves_kv else []},
        "endpoint": endpoint,
        "warnings": warnings,
        "hosts": plan_hosts,
        "services": services,
    }


_TRANSFER_PORTS = ("mooncake_bootstrap", "nixl_side_channel")
_PORT_VARIABLES = {"api": "%s_port", "mooncake_bootstrap": "%s_bootstrap_port",
                   "nixl_side_channel": "%s_side_channel_port", "dp_rpc": "%s_dp_rpc_port",
                   "router": "router_port", "router_metrics": "router_metrics_port",
                   "lmcache_zmq": "lmcache_port", "lmcache_http": "lmcache_http_port"}


def _port_variable(svc, kind):
    pattern = _PORT_VARIABLES[kind]
    role = svc["role"] if svc["role"] in ("prefill", "decode") else "engine"
    return var(pattern % role if "%s" in pattern else pattern)


def _endpoint(services):
    routers = [x for x in services if x["kind"] == "router"]
    target = routers[0] if routers else [x for x in services if x["kind"] == "engine"][0]
    url = target["health_url"].rsplit("/", 1)[0]
    return {"host": target["host"], "service": target["name"], "url": url}


def _router_url(engine_host, router_host, port):
    host = "localhost" if engine_host["name"] == router_host["name"] else engine_host["address"]
    return "http://%s:%s" % (host, port)


def _pd_services(s, topology, tdef, profile, prefill_hosts, decode_hosts, router_host, problems):
    services = []
    multi = tdef.get("multi_node", False)
    base_env = P.GB200_CLUSTER_ENV if topology == "gb200_pd_cluster" else P.SEED_PD_ENV
    connector = tdef["connector"]
    pools = {}
    for role, members in (("prefill", prefill_hosts), ("decode", decode_hosts)):
        gpu_sets = []
        for h in members:
            gpus = h["%s_gpus" % role]
            if gpus is None:
                gpus = _default_gpus(topology, role, h, profile)
            gpu_sets.append(gpus)
        pools[role] = gpu_sets
    ports_by_role = {"prefill": s["prefill_port"], "decode": s["decode_port"]}
    for role, members in (("prefill", prefill_hosts), ("decode", decode_hosts)):
        name = "%s-%s" % (s["name_prefix"], role)
        for idx, h in enumerate(members):
            gpus = pools[role][idx]
            dp = len(gpus)
            pool = None
            if multi:
                pool = {"size": sum(len(g) for g in pools[role]), "start_rank": sum(len(g) for g in pools[role][:idx]),
                        "address": members[0]["address"], "rpc_port": s["%s_dp_rpc_port" % role],
                        "nodes": len(members)}
            port = ports_by_role[role]
            flags = _pd_flags(s, profile, topology, role, port, dp, pool)
            _finish_engine(flags, s, role, h, problems)
            env_extra = ["extra_env", "extra_%s_env" % role]
            env = _engine_env(s, base_env, gpus, h, env_extra, problems)
            ports = {"api": port}
            port_ranges = {}
            if connector == "MooncakeConnector":
                ports["mooncake_bootstrap"] = s["%s_bootstrap_port" % role]
                env["VLLM_MOONCAKE_BOOTSTRAP_PORT"] = str(ports["mooncake_bootstrap"])
                if profile["name"] == "gb200":
                    env["WITH_NVIDIA_PEERMEM"] = "0"
            elif connector == "NixlConnector":
                ports["nixl_side_channel"] = s["%s_side_channel_port" % role]
                env["VLLM_NIXL_SIDE_CHANNEL_PORT"] = str(ports["nixl_side_channel"])
                # vLLM listens on base + data_parallel_index for each DP rank of the engine.
                first = ports["nixl_side_channel"] + (pool["start_rank"] if pool else 0)
                port_ranges = {"nixl_side_channel": [first, first + dp - 1]}
                if multi:
                    env["VLLM_NIXL_SIDE_CHANNEL_HOST"] = h["address"]
            if multi:
                ports["dp_rpc"] = pool["rpc_port"]
                if s["socket_ifname"]:
                    env["GLOO_SOCKET_IFNAME"] = str(s["socket_ifname"])
                    env["NCCL_SOCKET_IFNAME"] = str(s["socket_ifname"])
            # The seed orders env as: recipe env, then the bootstrap port, then the GPUs.
            if "CUDA_VISIBLE_DEVICES" in env:
                env["CUDA_VISIBLE_DEVICES"] = env.pop("CUDA_VISIBLE_DEVICES")
            published = ["%d:%d" % (port, port)] if topology in ("h200_pd", "h200_pd_nixl") else []
            container = _container(s, topology, profile, published=published, privileged=True,
                                   shared=tdef["mount_shared"])
            svc = _service(h["name"], name, "engine", role, s["image"], flags.argv(), env, gpus, ports, container,
                           _router_url(h, router_host, port), "http://localhost:%d/health" % port,
                           20 if role == "prefill" else 30)
            svc["_flags"] = flags
            svc["port_ranges"] = port_ranges
            services.append(svc)
    prefills = [x for x in services if x["role"] == "prefill"]
    decodes = [x for x in services if x["role"] == "decode"]
    for d in decodes:
        d["after"] = ["%s/%s" % (p["host"], p["name"]) for p in prefills]
        d["restart_with"] = list(d["after"])
    services.append(_router_service(s, tdef, router_host, prefills, decodes, problems))
    return services


def _router_service(s, tdef, router_host, prefills, decodes, problems):
    argv = ["vllm-router", "--policy", s["router_policy"], "--vllm-pd-disaggregation"]
    for p in prefills:
        argv += ["--prefill", p["url"]]
        bport = p["ports"].get("mooncake_bootstrap")
        if bport is not None and bport != P.MOONCAKE_DEFAULT_BOOTSTRAP_PORT:
            argv.append(str(bport))
    for d in decodes:
        argv += ["--decode", d["url"]]
    argv += ["--host", s["router_host"], "--port", str(s["router_port"])]
    dps = sorted({_dp_of(x["_flags"])[2] for x in prefills + decodes})
    argv += ["--intra-node-data-parallel-size", str(dps[0] if dps else 1)]
    connector = P.ROUTER_CONNECTOR.get(tdef["connector"])
    if connector and connector != P.ROUTER_DEFAULT_CONNECTOR:
        argv += ["--kv-connector", connector]
    if s["router_metrics_port"] != P.ROUTER_DEFAULT_METRICS_PORT:
        argv += ["--prometheus-port", str(s["router_metrics_port"])]
    pairs = parse_args(s["router_extra_args"], var("router_extra_args"), router_host["name"], problems)
    managed = Flags(parse_args(argv[1:], "router", router_host["name"], [], positional_ok=True))
    for flag, value in pairs:
        if managed.has(flag_key(flag)) and flag_key(flag) not in ("prefill", "decode"):
            problems.append(Problem(var("router_extra_args"), [flag, value] if value else flag,
                                    "%s contradicts the managed router flag." % flag,
                                    "remove it; the router flags follow plan_router_* settings and the engines.",
                                    router_host["name"]))
            continue
        argv.append(flag)
        if value is not None:
            argv.append(value)
    local = s["router_host"] if s["router_host"] not in ("0.0.0.0", "::") else "127.0.0.1"
    svc = _service(router_host["name"], "%s-router" % s["name_prefix"], "router", "router", None, argv, {}, [],
                   {"router": s["router_port"], "router_metrics": s["router_metrics_port"]}, None,
                   "http://%s:%d" % (local, s["router_port"]), "http://%s:%d/readiness" % (local, s["router_port"]),
                   40)
    svc["after"] = ["%s/%s" % (x["host"], x["name"]) for x in prefills + decodes]
    # vllm-router reads its workers only at startup: the prefills' Mooncake engine ids (GET /query on the
    # bootstrap port) and every worker's data-parallel ranks (/metrics). A recreated engine has new engine
    # ids, so the router restarts with every engine it lists (else decode fails "remote engine_id not found").
    svc["restart_with"] = list(svc["after"])
    return svc


def _single_services(s, topology, profile, serving, problems):
    services = []
    for h in serving:
        sets = _engine_gpu_sets(s, topology, h, profile, problems)
        for idx, gpus in enumerate(sets):
            suffix = "" if len(sets) == 1 else "-%d" % idx
            port = s["engine_port"] + idx
            if topology == "lmcache_tp8":
                flags = _lmcache_engine_flags(s, profile, port, len(gpus))
                base_env = ()
                published = []
                container = _container(s, topology, profile, published=published, privileged=False,
                                       shared=False)
            else:
                flags = _single_flags(s, profile, port, len(gpus))
                base_env = (("VLLM_ENGINE_READY_TIMEOUT_S", "3600"),)
                container = _container(s, topology, profile, published=["%d:%d" % (port, port)],
                                       privileged=True, shared=False)
            _finish_engine(flags, s, "single", h, problems)
            env = _engine_env(s, base_env, gpus, h, ["extra_env"], problems)
            svc = _service(h["name"], "%s-engine%s" % (s["name_prefix"], suffix), "engine", "single", s["image"],
                           flags.argv(), env, gpus, {"api": port}, container, "http://localhost:%d" % port,
                           "http://localhost:%d/health" % port, 20)
            svc["_flags"] = flags
            services.append(svc)
            if topology == "lmcache_tp8":
                lm = _lmcache_service(s, h, suffix, idx, problems)
                svc["after"] = ["%s/%s" % (lm["host"], lm["name"])]
                services.append(lm)
    return services


def _lmcache_service(s, host, suffix, idx, problems):
    argv = ["lmcache", "server", "--l1-size-gb", str(s["lmcache_l1_size_gb"]),
            "--eviction-policy", str(s["lmcache_eviction_policy"])]
    zmq, http = s["lmcache_port"] + idx * 10, s["lmcache_http_port"] + idx
    if zmq != 5555:
        argv += ["--port", str(zmq)]
    if http != 8080:
        argv += ["--http-port", str(http)]
    managed = Flags(parse_args(argv[2:], "lmcache", host["name"], []))
    for flag, value in parse_args(s["lmcache_extra_args"], var("lmcache_extra_args"), host["name"], problems):
        if managed.has(flag_key(flag)):
            problems.append(Problem(var("lmcache_extra_args"), [flag, value] if value else flag,
                                    "%s contradicts a managed LMCache flag." % flag,
                                    "remove it; set plan_lmcache_l1_size_gb, plan_lmcache_eviction_policy, "
                                    "plan_lmcache_port or plan_lmcache_http_port instead.", host["name"]))
            continue
        argv.append(flag)
        if value is not None:
            argv.append(value)
    container = {"privileged": False, "ipc_mode": "host", "network_mode": "host", "published_ports": [],
                 "volumes": [], "device_requests": [copy.deepcopy(GPU_REQUEST)], "devices": [], "ulimits": []}
    return _service(host["name"], "%s-lmcache%s" % (s["name_prefix"], suffix), "lmcache", "lmcache",
                    s["lmcache_image"], argv, {}, [], {"lmcache_zmq": zmq, "lmcache_http": http}, container,
                    "http://localhost:%d" % http, "http://localhost:%d/healthcheck" % http, 10,
                    entrypoint=[argv[0]])


# --------------------------------------------------------------------------------------------------------------
# Validation of the built services
# --------------------------------------------------------------------------------------------------------------
def parse_len(value):
    """vLLM's human-readable integers: 1k = 1000, 1K = 1024, 1m = 10**6, 1M = 2**20; None for 'auto'."""
    text = str(value).strip()
    if text.lower() in ("auto", "-1"):
        return None
    m = re.match(r"^(\d+(?:\.\d+)?)([kKmMgG]?)$", text)
    if not m:
        raise ValueError(text)
    num, unit = float(m.group(1)), m.group(2)
    scale = {"": 1, "k": 10**3, "K": 2**10, "m": 10**6, "M": 2**20, "g": 10**9, "G": 2**30}[unit]
    return int(num * scale)


def _gpu_var(role):
    return var({"prefill": "prefill_gpus", "decode": "decode_gpus"}.get(role, "engine_gpus"))


def _override_var(role):
    return var({"prefill": "prefill_flag_overrides", "decode": "decode_flag_overrides"}.get(
        role, "engine_flag_overrides"))


def _validate(s, topology, profile, hostmap, services, problems, warnings):
    engines = [x for x in services if x["kind"] == "engine"]
    by_host = {}
    for svc in services:
        by_host.setdefault(svc["host"], []).append(svc)

    # GPU sets: within the host's count, no duplicates, disjoint across services of a host.
    for host, svcs in by_host.items():
        count = hostmap[host]["gpu_count"]
        seen = {}
        for svc in svcs:
            if svc["kind"] != "engine":
                continue
            gvar = _gpu_var(svc["role"])
            if not svc["gpus"]:
                problems.append(Problem(gvar, svc["gpus"], "assigns no GPU to %s." % svc["name"],
                                        "list the GPU indices it should use.", host))
            bad = [g for g in svc["gpus"] if g < 0 or g >= count]
            if bad:
                problems.append(Problem(gvar, svc["gpus"],
                                        "GPU index(es) %s outside 0..%d (the host has %d GPUs, plan_gpu_count)."
                                        % (bad, count - 1, count),
                                        "use indices below %d, or set the host's plan_gpu_count." % count, host))
            if len(set(svc["gpus"])) != len(svc["gpus"]):
                problems.append(Problem(gvar, svc["gpus"], "lists a GPU twice.", "list each GPU once.", host))
            for g in svc["gpus"]:
                if g in seen and seen[g] != svc["name"]:
                    problems.append(Problem(gvar, svc["gpus"], "GPU %d is also assigned to %s." % (g, seen[g]),
                                            "give each engine on a host its own GPUs.", host))
                seen.setdefault(g, svc["name"])

    # TP x DP(local) == GPUs assigned.
    for svc in engines:
        tp, _dp, dp_local = _dp_of(svc["_flags"])
        if tp * dp_local != len(svc["gpus"]):
            problems.append(Problem(
                _gpu_var(svc["role"]), svc["gpus"],
                "%s runs tensor-parallel %d x data-parallel(local) %d = %d GPUs but %d GPU(s) are assigned."
                % (svc["name"], tp, dp_local, tp * dp_local, len(svc["gpus"])),
                "assign %d GPUs, or change --tensor-parallel-size/--data-parallel-size with %s."
                % (tp * dp_local, _override_var(svc["role"])), svc["host"]))

    # Ports unique per host and within range.
    port_vars = {"api": "plan_<role>_port", "mooncake_bootstrap": "plan_<role>_bootstrap_port",
                 "nixl_side_channel": "plan_<role>_side_channel_port", "dp_rpc": "plan_<role>_dp_rpc_port",
                 "router": "plan_router_port", "router_metrics": "plan_router_metrics_port",
                 "lmcache_zmq": "plan_lmcache_port", "lmcache_http": "plan_lmcache_http_port"}

    def port_var(svc, kind):
        role = svc["role"] if svc["role"] in ("prefill", "decode") else "engine"
        return port_vars[kind].replace("<role>", role)

    def occupied(svc):
        """(kind, port) of every port the service listens on, ranges expanded."""
        for kind, port in svc["ports"].items():
            lo, hi = svc.get("port_ranges", {}).get(kind, (port, port))
            for p in range(int(lo), int(hi) + 1):
                yield kind, p

    for host, svcs in by_host.items():
        used = {}
        clashes = {}
        for svc in svcs:
            for kind, port in svc["ports"].items():
                if not 1 <= int(port) <= 65535:
                    problems.append(Problem(port_var(svc, kind), port, "is not a TCP port.",
                                            "use a port between 1 and 65535.", host))
            for kind, port in occupied(svc):
                other = used.get(port)
                if other is None:
                    used[port] = (svc["name"], kind, port_var(svc, kind))
                elif other[:2] != (svc["name"], kind):
                    clashes.setdefault((svc["name"], kind, port_var(svc, kind)) + other, []).append(port)
        for (name, kind, variable, oname, okind, ovariable), ports in clashes.items():
            svc = [x for x in svcs if x["name"] == name][0]
            ranged = " (vLLM opens one NIXL side channel per DP rank: base port + data_parallel_index)" if (
                "nixl_side_channel" in (kind, okind)) else ""
            problems.append(Problem(variable, svc["ports"][kind],
                                    "port%s %s (%s %s) also used by %s %s on this host%s." % (
                                        "s" if len(ports) > 1 else "", ",".join(str(p) for p in ports), name, kind,
                                        oname, okind, ranged),
                                    "give every service port on a host its own number (change %s or %s)."
                                    % (variable, ovariable), host))

    # The engines' KV transfer config, and the router's connector.
    connectors = set()
    for svc in engines:
        flags = svc["_flags"]
        ov = _override_var(svc["role"])
        raw = flags.get("kv-transfer-config")
        if raw is None:
            if P.TOPOLOGIES[topology]["connector"]:
                problems.append(Problem(ov, None, "%s has no --kv-transfer-config but topology %s needs %s." % (
                    svc["name"], topology, P.TOPOLOGIES[topology]["connector"]),
                    "do not remove --kv-transfer-config.", svc["host"]))
            continue
        try:
            cfg = json.loads(raw)
            if not isinstance(cfg, dict):
                raise ValueError("not an object")
        except ValueError as exc:
            problems.append(Problem(ov, raw, "--kv-transfer-config of %s is not a JSON object (%s)." % (
                svc["name"], exc), "write valid JSON, e.g. {\"kv_connector\":\"NixlConnector\",\"kv_role\":\"kv_both\"}.",
                svc["host"]))
            continue
        unknown = sorted(set(cfg) - set(P.KV_TRANSFER_KEYS))
        if unknown:
            problems.append(Problem(ov, cfg, "--kv-transfer-config of %s has unknown key(s) %s." % (
                svc["name"], unknown), "use only: %s." % ", ".join(P.KV_TRANSFER_KEYS), svc["host"]))
        conn = cfg.get("kv_connector")
        if conn not in P.KV_CONNECTORS:
            problems.append(Problem(ov, cfg, "kv_connector %r of %s is not a vLLM KV connector." % (conn, svc["name"]),
                                    "use one of: %s." % ", ".join(P.KV_CONNECTORS), svc["host"]))
        connectors.add(conn)
        role = cfg.get("kv_role")
        allowed = P.KV_ROLE_ALLOWED.get(svc["role"], P.KV_ROLES)
        if role not in P.KV_ROLES or role not in allowed:
            message = "kv_role %r does not fit the %s engine %s." % (role, svc["role"], svc["name"])
            problems.append(Problem(ov, cfg, message, "use kv_role %s." % " or ".join(allowed), svc["host"]))
        policy = cfg.get("kv_load_failure_policy")
        if policy is not None and policy not in P.KV_LOAD_FAILURE_POLICIES:
            problems.append(Problem(ov, cfg, "kv_load_failure_policy %r is unknown." % policy,
                                    "use fail or recompute.", svc["host"]))
        extra = cfg.get("kv_connector_extra_config", {})
        if conn == "MooncakeConnector" and isinstance(extra, dict):
            bad = sorted(set(extra) - set(P.MOONCAKE_EXTRA_KEYS))
            if bad:
                problems.append(Problem(ov, cfg, "Mooncake kv_connector_extra_config has unknown key(s) %s." % bad,
                                        "use only: %s." % ", ".join(P.MOONCAKE_EXTRA_KEYS), svc["host"]))
            proto = extra.get("mooncake_protocol", "rdma")
            if proto not in P.MOONCAKE_PROTOCOLS:
                problems.append(Problem(var("mooncake_protocol"), proto, "is not a Mooncake protocol.",
                                        "use rdma or tcp.", svc["host"]))
        if conn == "LMCacheMPConnector" and flags.get("kv-cache-dtype") != P.LMCACHE_KV_CACHE_DTYPE:
            problems.append(Problem(ov, flags.get("kv-cache-dtype"),
                                    "the LMCacheMPConnector needs --kv-cache-dtype %s (DeepSeek-V4's sparse-MLA "
                                    "KV cache groups) on %s." % (P.LMCACHE_KV_CACHE_DTYPE, svc["name"]),
                                    "keep --kv-cache-dtype %s." % P.LMCACHE_KV_CACHE_DTYPE, svc["host"]))
    if len(connectors) > 1:
        problems.append(Problem("plan_prefill_flag_overrides / plan_decode_flag_overrides", sorted(connectors),
                                "the engines use different KV connectors.",
                                "use one connector for every prefill and decode engine."))
    routers = [x for x in services if x["kind"] == "router"]
    for r in routers:
        argv = r["argv"]
        router_conn = argv[argv.index("--kv-connector") + 1] if "--kv-connector" in argv else P.ROUTER_DEFAULT_CONNECTOR
        for conn in connectors:
            want = P.ROUTER_CONNECTOR.get(conn)
            if want and want != router_conn:
                problems.append(Problem(var("router_extra_args"), router_conn,
                                        "the router's --kv-connector %s does not match the engines' %s." % (
                                            router_conn, conn),
                                        "use --kv-connector %s (the plan sets it from the topology)." % want,
                                        r["host"]))
        dps = sorted({_dp_of(x["_flags"])[2] for x in engines})
        if len(dps) > 1:
            problems.append(Problem("plan_prefill_gpus / plan_decode_gpus", dps,
                                    "engines behind one router have different data-parallel(local) sizes %s; "
                                    "vllm-router takes one --intra-node-data-parallel-size." % dps,
                                    "give every prefill and decode engine the same number of GPUs.", r["host"]))
        if s["mooncake_protocol"] == "tcp" and "MooncakeConnector" in connectors:
            warnings.append("plan_mooncake_protocol is tcp: KV transfer over TCP is slower and not validated "
                            "for DeepSeek-V4; use rdma on hosts with RDMA NICs.")

    # Per-engine rules on the final flags.
    think_max = "think_max" in s["reasoning_modes"]
    warned_auto = False
    for svc in engines:
        flags = svc["_flags"]
        ov = _override_var(svc["role"])
        if flags.get("tokenizer-mode") != P.TOKENIZER_MODE:
            problems.append(Problem(ov, flags.get("tokenizer-mode"),
                                    "%s needs --tokenizer-mode %s (the model ships no Jinja chat template)."
                                    % (svc["name"], P.TOKENIZER_MODE),
                                    "keep --tokenizer-mode %s." % P.TOKENIZER_MODE, svc["host"]))
        if not flags.has("trust-remote-code") or flags.flag("trust-remote-code").startswith("--no-"):
            problems.append(Problem(ov, False, "%s needs --trust-remote-code for DeepSeek-V4." % svc["name"],
                                    "keep --trust-remote-code.", svc["host"]))
        parser = flags.get("reasoning-parser")
        if parser is not None and parser not in P.REASONING_PARSERS:
            problems.append(Problem(ov, parser, "%r is not a reasoning parser for DeepSeek-V4." % parser,
                                    "use --reasoning-parser deepseek_v4.", svc["host"]))
        if think_max:
            raw = flags.get("max-model-len")
            try:
                length = P.MODEL_MAX_LEN if raw is None else parse_len(raw)
            except ValueError:
                problems.append(Problem(var("max_model_len"), raw, "is not a length vLLM understands.",
                                        "use a number such as 393216, 384K, or auto.", svc["host"]))
                length = P.MODEL_MAX_LEN
            if length is None and not warned_auto:
                warned_auto = True
                warnings.append("--max-model-len auto with Think Max enabled: vLLM sizes the context to the KV "
                                "cache that fits; Think Max needs >= %d tokens. Check the engine log for the "
                                "chosen length, or set plan_max_model_len: %d." % (P.THINK_MAX_MIN_LEN,
                                                                                   P.THINK_MAX_MIN_LEN))
            elif length is not None and length < P.THINK_MAX_MIN_LEN:
                problems.append(Problem(var("max_model_len"), raw,
                                        "Think Max needs --max-model-len >= %d (384K tokens) to avoid truncation."
                                        % P.THINK_MAX_MIN_LEN,
                                        "set plan_max_model_len >= %d (or auto), or remove think_max from "
                                        "plan_reasoning_modes." % P.THINK_MAX_MIN_LEN, svc["host"]))
        cc = flags.get("compilation-config")
        if cc is not None:
            try:
                ccd = json.loads(cc)
                mode = ccd.get("cudagraph_mode") if isinstance(ccd, dict) else None
                if mode is not None and str(mode).upper() not in P.CUDAGRAPH_MODES:
                    problems.append(Problem(ov, cc, "cudagraph_mode %r is unknown." % mode,
                                            "use one of: %s." % ", ".join(P.CUDAGRAPH_MODES), svc["host"]))
            except ValueError as exc:
                problems.append(Problem(ov, cc, "--compilation-config is not JSON (%s)." % exc,
                                        "write valid JSON.", svc["host"]))
        if profile["family"] != "blackwell":
            for flag, _value in flags.pairs:
                key = flag_key(flag)
                if key in P.BLACKWELL_ONLY_FLAGS:
                    problems.append(Problem(ov + " / plan_extra_engine_args", flag,
                                            "%s is Blackwell-only: %s; hardware profile %s is %s." % (
                                                flag, P.BLACKWELL_ONLY_FLAGS[key], profile["name"],
                                                profile["family"]),
                                            "remove it, or set plan_hardware to b200, b300 or gb200.",
                                            svc["host"]))
    if P.TOPOLOGIES[topology]["connector"] == "LMCacheMPConnector" and not any(
            "--reasoning-parser" in x["argv"] for x in engines):
        warnings.append("The LMCache recipe sets no --reasoning-parser: Think High/Max return their reasoning "
                        "inline in the answer. Add it with plan_extra_engine_args: ['--reasoning-parser', "
                        "'deepseek_v4'] to get reasoning_content.")
    for svc in services:
        svc.pop("_flags", None)


# --------------------------------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------------------------------
def service_hash(svc):
    spec = {k: v for k, v in svc.items() if k not in ("plan_hash", "command", "_flags")}
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode("utf-8")).hexdigest()


def _q(token):
    token = str(token)
    if token.startswith("~/"):
        return "~/" + shlex.quote(token[2:])
    return shlex.quote(token)


def render_command(svc):
    """The shell command a person would type to start the service by hand."""
    lines = []
    if svc["kind"] == "router":
        argv = svc["argv"]
        lines.append(" ".join(_q(t) for t in argv[:3]))
        # Router flags take several values (--prefill URL [BOOTSTRAP_PORT]).
        lines.extend(_flag_lines(argv[3:], max_values=None))
        return " \\\n".join(lines)
    c = svc["container"]
    first = ["docker", "run"]
    if c["device_requests"]:
        first += ["--gpus", "all"]
    second = []
    if c["privileged"]:
        second.append("--privileged")
    if c["ipc_mode"]:
        second.append("--ipc=%s" % c["ipc_mode"])
    for p in c.get("recipe_published_ports", c["published_ports"]):
        second += ["-p", p]
    lines.append(" ".join(first))
    if second:
        lines.append("  " + " ".join(second))
    if c["network_mode"]:
        lines.append("  --network %s" % c["network_mode"])
    for d in c["devices"]:
        lines.append("  --device %s" % _q(d))
    for u in c["ulimits"]:
        lines.append("  --ulimit %s" % _q(u))
    for v in c["volumes"]:
        lines.append("  -v %s" % _q(v))
    for k, v in svc["env"].items():
        lines.append("  -e %s" % _q("%s=%s" % (k, v)))
    argv = list(svc["argv"])
    if svc["entrypoint"]:
        lines.append("  --entrypoint %s" % _q(svc["entrypoint"][0]))
        argv = argv[len(svc["entrypoint"]):]
    lines.append("  %s" % _q(svc["image"]))
    if argv and not argv[0].startswith("-"):
        lines.append("  %s" % _q(argv.pop(0)))
    lines.extend(_flag_lines(argv, max_values=1))
    return " \\\n".join(lines)


def _flag_lines(argv, max_values):
    """One indented line per flag with its values (at most max_values of them; None: every non-flag token)."""
    lines = []
    rest = list(argv)
    while rest:
        group = [rest.pop(0)]
        while rest and not rest[0].startswith("-") and (max_values is None or len(group) <= max_values):
            group.append(rest.pop(0))
        lines.append("  " + " ".join(_q(t) for t in group))
    return lines


def summary_lines(plan):
    """Human summary printed by the plan playbook."""
    out = ["Topology %s on %s (recipe %s, image %s, vLLM %s): %s" % (
        plan["topology"], plan["hardware"], plan["recipe"], plan["image"], plan["vllm_version"],
        plan["description"])]
    for svc in plan["services"]:
        out.append("")
        gpus = ",".join(str(g) for g in svc["gpus"]) or "-"
        ports = ", ".join("%s=%s" % kv for kv in svc["ports"].items())
        out.append("# %s on %s: %s %s, GPUs %s, ports %s" % (
            svc["name"], svc["host"], svc["kind"], svc["role"], gpus, ports))
        out.extend(svc["command"].split("\n"))
    out.append("")
    out.append("Endpoint: %s (%s on %s)" % (plan["endpoint"]["url"], plan["endpoint"]["service"],
                                            plan["endpoint"]["host"]))
    for w in plan["warnings"]:
        out.append("WARNING: %s" % w)
    return out


def plan_json(plan):
    return json.dumps(plan, indent=2, sort_keys=False) + "\n"


def write_if_changed(path, content, check_mode=False):
    """Write content to path atomically (mode 0644) unless it is already there. Returns whether it changed."""
    try:
        with open(path, encoding="utf-8") as f:
            if f.read() == content:
                return False
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
        os.chmod(tmp, 0o644)
        os.rename(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return True
