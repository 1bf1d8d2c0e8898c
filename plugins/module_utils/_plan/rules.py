# -*- coding: utf-8 -*-
# Copyright: inference.deepseek_v4 contributors
# Apache License 2.0 (see LICENSE)
"""Validation rules: one function per rule, each taking the build (build.Build) and returning its problems.
RULES lists them in the order their problems are reported. A rule names the setting that produced a value from
what the build remembered (a flag's origin, a service's ``_vars``), never by rebuilding a variable name."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any, Callable, Iterator, Optional, Union

from ansible_collections.inference.deepseek_v4.plugins.module_utils._plan import profiles as P
from ansible_collections.inference.deepseek_v4.plugins.module_utils._plan.flags import (
    flag_key,
    option_name,
    parallel_sizes,
    parse_len,
    release,
)
from ansible_collections.inference.deepseek_v4.plugins.module_utils._plan.inputs import (
    address_problem,
    control_problem,
    strings,
)
from ansible_collections.inference.deepseek_v4.plugins.module_utils._plan.settings import var
from ansible_collections.inference.deepseek_v4.plugins.module_utils._problem import (
    Problem,
    secret_env_name,
    secret_flag,
    token_shaped,
)

if TYPE_CHECKING:
    from ansible_collections.inference.deepseek_v4.plugins.module_utils._plan.build import Build


def image_tag(ref: Any) -> tuple[Optional[str], Optional[str]]:
    """(tag or None, digest or None) of an image reference."""
    ref = str(ref)
    digest = None
    if "@" in ref:
        ref, digest = ref.split("@", 1)
    last = ref.rsplit("/", 1)[-1]
    tag = last.split(":", 1)[1] if ":" in last else None
    return tag, digest


# A development build's tag (v0.26.0.dev12, dev-abc123, cu130-dev): not a tagged release either.
DEV_RELEASE_TAG = re.compile(r"(^|[.\-_])dev(\d+|$|[.\-_+])", re.IGNORECASE)


def _image_problem(ref: Any, variable: str) -> Optional[Problem]:
    if not ref or not isinstance(ref, str):
        return Problem(variable, ref, "must be an image reference.", "set e.g. vllm/vllm-openai:deepseekv4-cu130.")
    tag, digest = image_tag(ref)
    fix = ("pin a tagged release (e.g. vllm/vllm-openai:deepseekv4-cu130) or a digest; set "
           "plan_allow_untagged_image: true to run it anyway.")
    if digest:
        return _digest_problem(ref, digest, variable)
    if tag is None:
        return Problem(variable, ref, "has no tag, which means 'latest': an unpinned, moving image.", fix)
    if tag.lower() in P.REFUSED_IMAGE_TAGS or "nightly" in tag.lower() or DEV_RELEASE_TAG.search(tag):
        return Problem(variable, ref, "tag %r is not a tagged release; the vLLM development branch is known to "
                       "break DeepSeek-V4-Flash (FP4 experts misdispatched)." % tag, fix)
    return None


def _digest_problem(ref: str, digest: str, variable: str) -> Optional[Problem]:
    """A digest is <algorithm>:<hex> of the algorithm's length (sha256: 64 hex digits)."""
    algorithm, _sep, value = digest.partition(":")
    size = P.DIGEST_ALGORITHMS.get(algorithm)
    if size is None or not re.match(r"^[0-9a-f]{%d}$" % size, value):
        return Problem(variable, ref, "digest %r is not <algorithm>:<hex> (sha256: 64 lower-case hex digits)." % digest,
                       "copy the digest from `docker buildx imagetools inspect <image>` or the registry, e.g. "
                       "vllm/vllm-openai:deepseekv4-cu130@sha256:<64 hex digits>.")
    return None


def images_pinned(b: Build) -> list[Problem]:
    malformed = [_image_problem(svc["image"], var("lmcache_image" if svc["kind"] == "lmcache" else "image"))
                 for svc in b.services if svc["image"] and "@" in str(svc["image"])]
    if b.s["allow_untagged_image"]:
        return sorted({p.variable: p for p in malformed if p}.values(), key=lambda p: p.variable)
    refs = {svc["image"]: var("lmcache_image" if svc["kind"] == "lmcache" else "image")
            for svc in reversed(b.services) if svc["image"] is not None}
    found = [_image_problem(ref, variable) for ref, variable in refs.items()]
    return sorted((p for p in found if p), key=lambda p: p.variable)


def _moving_tag_warning(ref: str, variable: str) -> str:
    tag, _digest = image_tag(ref)
    return ("%s %s is a tag without a digest: the registry may point it at another image at any time, so two hosts or "
            "two runs can get different images. Role vllm_engine has every host of a run pull the digest the first "
            "engine host resolved, but the next run may resolve another. Pin it: %s: %s%s@sha256:<64 hex digits> "
            "(the digest from `docker buildx imagetools inspect %s`, or RepoDigests of `docker image inspect`)."
            % (variable, ref, variable, ref, "" if tag else ":latest", ref))


def image_digest_warnings(b: Build) -> list[Problem]:
    """One warning per image of the plan that a tag names without a digest (a tag may move); no problem."""
    refs = {}
    for svc in b.services:
        if svc["image"] and isinstance(svc["image"], str) and "@" not in svc["image"]:
            refs.setdefault(svc["image"], var("lmcache_image" if svc["kind"] == "lmcache" else "image"))
    b.warnings.extend(_moving_tag_warning(ref, variable) for ref, variable in refs.items())
    return []


def _by_host(b: Build) -> dict[str, list[dict[str, Any]]]:
    out = {}
    for svc in b.services:
        out.setdefault(svc["host"], []).append(svc)
    return out


def gpu_sets(b: Build) -> list[Problem]:
    """Within the host's GPUs, none listed twice, disjoint between the engines of a host, none empty."""
    problems = []
    for host, svcs in _by_host(b).items():
        count = b.hosts[host]["gpu_count"]
        seen = {}
        for svc in (x for x in svcs if x["kind"] == "engine"):
            gvar, gpus = svc["_vars"]["gpus"], svc["gpus"]
            if not gpus:
                problems.append(Problem(gvar, gpus, "assigns no GPU to %s." % svc["name"],
                                        "list the GPU indices it should use.", host))
            bad = [g for g in gpus if g < 0 or g >= count]
            if bad:
                problems.append(Problem(gvar, gpus, "GPU index(es) %s outside 0..%d (the host has %d GPUs, "
                                        "plan_gpu_count)." % (bad, count - 1, count),
                                        "use indices below %d, or set the host's plan_gpu_count." % count, host))
            if len(set(gpus)) != len(gpus):
                problems.append(Problem(gvar, gpus, "lists a GPU twice.", "list each GPU once.", host))
            for g in gpus:
                if seen.setdefault(g, svc["name"]) != svc["name"]:
                    problems.append(Problem(gvar, gpus, "GPU %d is also assigned to %s." % (g, seen[g]),
                                            "give each engine on a host its own GPUs.", host))
    return problems


def parallelism_fills_gpus(b: Build) -> list[Problem]:
    """Tensor-parallel x data-parallel(local) equals the GPUs an engine is given."""
    problems = []
    for svc in b.engines:
        tp, _dp, dp_local = parallel_sizes(svc["_flags"])
        if tp * dp_local != len(svc["gpus"]):
            problems.append(Problem(
                svc["_vars"]["gpus"], svc["gpus"], "%s runs tensor-parallel %d x data-parallel(local) %d = %d GPUs "
                "but %d GPU(s) are assigned." % (svc["name"], tp, dp_local, tp * dp_local, len(svc["gpus"])),
                "assign %d GPUs, or change --tensor-parallel-size/--data-parallel-size with %s."
                % (tp * dp_local, svc["_vars"]["overrides"]), svc["host"]))
    return problems


def _occupied(svc: dict[str, Any]) -> Iterator[tuple[str, int]]:
    """(kind, port) of every port the service listens on, ranges expanded."""
    for kind, port in svc["ports"].items():
        first, last = svc["port_ranges"].get(kind, (port, port))
        for p in range(int(first), int(last) + 1):
            yield kind, p


def ports_valid(b: Build) -> list[Problem]:
    return [Problem(svc["_vars"][kind], port, "is not a TCP port.", "use a port between 1 and 65535.", svc["host"])
            for svc in b.services for kind, port in svc["ports"].items() if not 1 <= int(port) <= 65535]


def ports_unique(b: Build) -> list[Problem]:
    """Every port a host's services listen on (NIXL side-channel ranges included) is used once."""
    problems = []
    for host, svcs in _by_host(b).items():
        used, clashes = {}, {}
        for svc in svcs:
            for kind, port in _occupied(svc):
                mine = (svc["name"], kind, svc["_vars"][kind])
                other = used.setdefault(port, mine)
                if other[:2] != mine[:2]:
                    clashes.setdefault((id(svc), kind) + other, (svc, []))[1].append(port)
        for (_id, kind, oname, okind, ovariable), (svc, ports) in clashes.items():
            ranged = " (vLLM opens one NIXL side channel per DP rank: base port + data_parallel_index)" if (
                set(P.RANGED_PORTS) & {kind, okind}) else ""
            problems.append(Problem(svc["_vars"][kind], svc["ports"][kind], "port%s %s (%s %s) also used by %s %s "
                                    "on this host%s." % ("s" if len(ports) > 1 else "", ",".join(map(str, ports)),
                                                         svc["name"], kind, oname, okind, ranged),
                                    "give every service port on a host its own number (change %s or %s)."
                                    % (svc["_vars"][kind], ovariable), host))
    return problems


# Per kind of service: the flags that choose a port it listens on, the port kind of the plan they must equal, and
# the port the program takes when the flag is absent (None: the plan always writes the flag).
PORT_FLAGS = {
    "engine": (("port", "api", P.VLLM_DEFAULT_PORT), ("data-parallel-rpc-port", "dp_rpc", None)),
    "lmcache": (("port", "lmcache_zmq", P.LMCACHE_DEFAULT_PORTS["zmq"]),
                ("http-port", "lmcache_http", P.LMCACHE_DEFAULT_PORTS["http"])),
    "router": (("port", "router", None), ("prometheus-port", "router_metrics", P.ROUTER_DEFAULT_METRICS_PORT)),
}


def port_flags_match_plan(b: Build) -> list[Problem]:
    """A port flag changed through extra flags or overrides would listen where the plan (router, readiness, port
    checks) does not look: every port comes from its plan_*port setting."""
    problems = []
    for svc in b.services:
        flags = svc["_flags"]
        for key, kind, default in PORT_FLAGS.get(svc["kind"], ()):
            if kind not in svc["ports"] or (default is None and not flags.has(key)):
                continue
            planned, setting = svc["ports"][kind], svc["_vars"][kind]
            variable = flags.origin(key, svc["_vars"].get("overrides", setting)) if flags.has(key) else \
                svc["_vars"].get("overrides", setting)
            raw = flags.get(key, default) if flags.has(key) else default
            try:
                port = int(raw)
            except (TypeError, ValueError):
                port = None
            if port != planned:
                problems.append(Problem(variable, raw, "--%s of %s is %s but the plan's %s port is %d (%s): the "
                                        "router, the readiness checks and the port checks use the plan's." % (
                                            key, svc["name"], raw, kind, planned, setting),
                                        "remove --%s from %s and set %s instead." % (key, variable, setting),
                                        svc["host"]))
    return problems


def _kv_config(svc: dict[str, Any], b: Build, problems: list[Problem]) -> Optional[dict[str, Any]]:
    """An engine's --kv-transfer-config as a dict, or None (a problem added where it is missing or not JSON)."""
    flags, ov = svc["_flags"], svc["_vars"]["overrides"]
    raw = flags.get("kv-transfer-config")
    if raw is None:
        if b.connector:
            problems.append(Problem(ov, None, "%s has no --kv-transfer-config but topology %s needs %s." % (
                svc["name"], b.s["topology"], b.connector["kv_connector"]), "do not remove --kv-transfer-config.",
                svc["host"]))
        return None
    try:
        cfg = json.loads(raw)
        if not isinstance(cfg, dict):
            raise ValueError("not an object")
    except ValueError as exc:
        problems.append(Problem(flags.origin("kv-transfer-config", ov), raw, "--kv-transfer-config of %s is not a "
                                "JSON object (%s)." % (svc["name"], exc), "write valid JSON, e.g. "
                                "{\"kv_connector\":\"NixlConnector\",\"kv_role\":\"kv_both\"}.", svc["host"]))
        return None
    return cfg


def kv_transfer_config(b: Build) -> list[Problem]:
    """Each engine's KV transfer config: known keys, connector, a kv_role that fits its role, Mooncake extras."""
    problems = []
    for svc in b.engines:
        cfg = _kv_config(svc, b, problems)
        if cfg is None:
            continue
        ov, host, name = svc["_flags"].origin("kv-transfer-config", svc["_vars"]["overrides"]), svc["host"], svc["name"]
        unknown = sorted(set(cfg) - set(P.KV_TRANSFER_KEYS))
        if unknown:
            problems.append(Problem(ov, cfg, "--kv-transfer-config of %s has unknown key(s) %s." % (name, unknown),
                                    "use only: %s." % ", ".join(P.KV_TRANSFER_KEYS), host))
        conn = cfg.get("kv_connector")
        if conn not in P.KV_CONNECTORS:
            problems.append(Problem(ov, cfg, "kv_connector %r of %s is not a vLLM KV connector." % (conn, name),
                                    "use one of: %s." % ", ".join(P.KV_CONNECTORS), host))
        allowed = P.KV_ROLE_ALLOWED.get(svc["role"], P.KV_ROLES)
        if cfg.get("kv_role") not in allowed:
            problems.append(Problem(ov, cfg, "kv_role %r does not fit the %s engine %s." % (
                cfg.get("kv_role"), svc["role"], name), "use kv_role %s." % " or ".join(allowed), host))
        policy = cfg.get("kv_load_failure_policy")
        if policy is not None and policy not in P.KV_LOAD_FAILURE_POLICIES:
            problems.append(Problem(ov, cfg, "kv_load_failure_policy %r is unknown." % policy,
                                    "use fail or recompute.", host))
        extra, row = cfg.get("kv_connector_extra_config", {}), _connector_row(conn)
        if row.get("extra_keys") and isinstance(extra, dict):
            bad = sorted(set(extra) - set(row["extra_keys"]))
            if bad:
                problems.append(Problem(ov, cfg, "%s kv_connector_extra_config has unknown key(s) %s." % (
                    row["label"], bad), "use only: %s." % ", ".join(row["extra_keys"]), host))
    return problems


def _connector_row(kv_connector: Optional[str]) -> dict[str, Any]:
    """The connector row (profiles.CONNECTORS) of a vLLM kv_connector name; {} for one the table does not have."""
    return next((row for row in P.CONNECTORS.values() if row["kv_connector"] == kv_connector), {})


def _connector_of(svc: dict[str, Any]) -> Optional[str]:
    try:
        return json.loads(svc["_flags"].get("kv-transfer-config") or "{}").get("kv_connector")
    except (ValueError, AttributeError):
        return None


def _connectors(b: Build) -> list[str]:
    return sorted({_connector_of(svc) for svc in b.engines} - {None})


def kv_transfer_follows_plan(b: Build) -> list[Problem]:
    """The engines' kv_connector is the topology's, and the Mooncake protocol and devices in the JSON are the
    settings': the transfer ports, the environment and the rdma role's checks are derived from those."""
    problems = []
    want = b.connector["kv_connector"] if b.connector else None
    for svc in b.engines:
        try:
            cfg = json.loads(svc["_flags"].get("kv-transfer-config") or "{}")
        except ValueError:
            continue  # kv_transfer_config reports it
        if not isinstance(cfg, dict):
            continue
        variable = svc["_flags"].origin("kv-transfer-config", svc["_vars"]["overrides"])
        conn = cfg.get("kv_connector")
        if want and conn != want and conn in P.KV_CONNECTORS:
            others = sorted(t for t, row in P.TOPOLOGIES.items() if row["connector"] and
                            P.CONNECTORS[row["connector"]]["kv_connector"] == conn)
            problems.append(Problem(variable, conn, "%s uses kv_connector %s but topology %s moves KV with %s (its "
                                    "transfer ports, environment and RDMA checks follow the topology)." % (
                                        svc["name"], conn, b.s["topology"], want),
                                    "keep kv_connector %s%s." % (want, ", or set plan_topology to one that uses %s: "
                                                                 "%s" % (conn, ", ".join(others)) if others else ""),
                                    svc["host"]))
        extra = cfg.get("kv_connector_extra_config")
        if not isinstance(extra, dict):
            continue
        for key, setting in _connector_row(conn).get("extra_settings", ()):
            if key in extra and extra[key] != b.s[setting]:
                problems.append(Problem(variable, extra[key], "%s of %s is %r but %s is %r (the rdma role checks "
                                        "what the setting says)." % (key, svc["name"], extra[key], var(setting),
                                                                     b.s[setting]),
                                        "set %s instead; the plan writes it into --kv-transfer-config." % var(setting),
                                        svc["host"]))
    return problems


def one_connector(b: Build) -> list[Problem]:
    connectors = _connectors(b)
    if len(connectors) < 2:
        return []
    variables = sorted({x["_vars"]["overrides"] for x in b.engines})
    return [Problem(" / ".join(variables), connectors, "the engines use different KV connectors.",
                    "use one connector for every prefill and decode engine.")]


def lmcache_kv_cache_dtype(b: Build) -> list[Problem]:
    return [Problem(svc["_flags"].origin("kv-cache-dtype", svc["_vars"]["overrides"]),
                    svc["_flags"].get("kv-cache-dtype"), "the %s needs --kv-cache-dtype %s "
                    "(DeepSeek-V4's sparse-MLA KV cache groups) on %s." % (_connector_of(svc), dtype, svc["name"]),
                    "keep --kv-cache-dtype %s." % dtype, svc["host"])
            for svc, dtype in ((x, _connector_row(_connector_of(x)).get("kv_cache_dtype")) for x in b.engines)
            if dtype and svc["_flags"].get("kv-cache-dtype") != dtype]


def router_matches_engines(b: Build) -> list[Problem]:
    """The router's --kv-connector is the engines' and every engine behind it has one data-parallel size."""
    problems = []
    by_kv_connector = {row["kv_connector"]: row["router"] for row in P.CONNECTORS.values()}
    for r in (x for x in b.services if x["kind"] == "router"):
        router_conn = r["_flags"].get("kv-connector", P.ROUTER_DEFAULT_CONNECTOR)
        for conn in _connectors(b):
            want = by_kv_connector.get(conn)
            if want and want != router_conn:
                problems.append(Problem(var("router_extra_args"), router_conn, "the router's --kv-connector %s does "
                                        "not match the engines' %s." % (router_conn, conn),
                                        "use --kv-connector %s (the plan sets it from the topology)." % want,
                                        r["host"]))
        dps = sorted({parallel_sizes(x["_flags"])[2] for x in b.engines})
        if len(dps) > 1:
            gvars = " / ".join(sorted({x["_vars"]["gpus"] for x in b.engines}, reverse=True))
            problems.append(Problem(gvars, dps, "engines behind one router have different data-parallel(local) "
                                    "sizes %s; vllm-router takes one --intra-node-data-parallel-size." % dps,
                                    "give every prefill and decode engine the same number of GPUs.", r["host"]))
    for row in (_connector_row(conn) for conn in _connectors(b)):
        setting = row.get("protocol_setting")
        if setting and b.s[setting] in row.get("protocol_warnings", {}):
            b.warnings.append("%s is %s: %s" % (var(setting), b.s[setting], row["protocol_warnings"][b.s[setting]]))
    return problems


def _each_flag(b: Build, key: str,
               check: Callable[[dict[str, Any], Any, str], Union[Problem, bool, None]]) -> list[Problem]:
    """Problems of ``check(svc, value, variable)`` for every engine."""
    out = []
    for svc in b.engines:
        variable = svc["_flags"].origin(key, svc["_vars"]["overrides"])
        problem = check(svc, svc["_flags"].get(key), variable)
        if problem:
            out.append(problem)
    return out


def tokenizer_mode(b: Build) -> list[Problem]:
    return _each_flag(b, "tokenizer-mode", lambda svc, value, variable: value != P.TOKENIZER_MODE and Problem(
        variable, value, "%s needs --tokenizer-mode %s (the model ships no Jinja chat template)." % (
            svc["name"], P.TOKENIZER_MODE), "keep --tokenizer-mode %s." % P.TOKENIZER_MODE, svc["host"]))


def trust_remote_code(b: Build) -> list[Problem]:
    return _each_flag(b, "trust-remote-code", lambda svc, _value, variable: (
        not svc["_flags"].has("trust-remote-code") or svc["_flags"].flag("trust-remote-code").startswith("--no-"))
        and Problem(variable, False, "%s needs --trust-remote-code for DeepSeek-V4." % svc["name"],
                    "keep --trust-remote-code.", svc["host"]))


def reasoning_parser(b: Build) -> list[Problem]:
    found = _each_flag(b, "reasoning-parser", lambda svc, value, variable: value is not None
                       and value not in P.REASONING_PARSERS and Problem(
                           variable, value, "%r is not a reasoning parser for DeepSeek-V4." % value,
                           "use --reasoning-parser deepseek_v4.", svc["host"]))
    for flag, warning in (b.connector or {}).get("missing_flag_warnings", {}).items():
        if not any(x["_flags"].has(flag) for x in b.engines):
            b.warnings.append(warning)
    return found


def think_max_context(b: Build) -> list[Problem]:
    """Think Max needs a context of at least 384K tokens; auto is a warning (vLLM sizes it to the KV cache)."""
    if "think_max" not in b.s["reasoning_modes"]:
        return []
    problems, auto = [], False
    for svc in b.engines:
        raw = svc["_flags"].get("max-model-len")
        variable = svc["_flags"].origin("max-model-len", var("max_model_len"))
        where = "plan_max_model_len" if variable == var("max_model_len") else "--max-model-len in %s" % variable
        try:
            length = P.MODEL_MAX_LEN if raw is None else parse_len(raw)
        except ValueError:
            problems.append(Problem(variable, raw, "is not a length vLLM understands.",
                                    "use a number such as 393216, 384K, or auto.", svc["host"]))
            continue
        auto = auto or length is None
        if length is not None and length < P.THINK_MAX_MIN_LEN:
            problems.append(Problem(variable, raw, "Think Max needs --max-model-len >= %d (384K tokens) "
                                    "to avoid truncation." % P.THINK_MAX_MIN_LEN, "set %s >= %d (or "
                                    "auto), or remove think_max from plan_reasoning_modes." % (
                                        where, P.THINK_MAX_MIN_LEN), svc["host"]))
    if auto:
        b.warnings.append("--max-model-len auto with Think Max enabled: vLLM sizes the context to the KV cache that "
                          "fits; Think Max needs >= %d tokens. Check the engine log for the chosen length, or set "
                          "plan_max_model_len: %d." % (P.THINK_MAX_MIN_LEN, P.THINK_MAX_MIN_LEN))
    return problems


def _cudagraph_problem(svc: dict[str, Any], value: Optional[str], variable: str) -> Optional[Problem]:
    if value is None:
        return None
    try:
        config = json.loads(value)
    except ValueError as exc:
        return Problem(variable, value, "--compilation-config is not JSON (%s)." % exc, "write valid JSON.",
                       svc["host"])
    mode = config.get("cudagraph_mode") if isinstance(config, dict) else None
    if mode is not None and str(mode).upper() not in P.CUDAGRAPH_MODES:
        return Problem(variable, value, "cudagraph_mode %r is unknown." % mode,
                       "use one of: %s." % ", ".join(P.CUDAGRAPH_MODES), svc["host"])
    return None


def compilation_config(b: Build) -> list[Problem]:
    return _each_flag(b, "compilation-config", _cudagraph_problem)


def _hardware_only(flag: str, value: Any) -> Optional[tuple[str, str]]:
    """The HARDWARE_ONLY_FLAGS row a flag sets: dotted (--attention_config.use_fp4_indexer_cache=True) or as a
    true key of a JSON value (--attention-config '{"use_fp4_indexer_cache": true}')."""
    key = flag_key(flag)
    if key in P.HARDWARE_ONLY_FLAGS:
        return P.HARDWARE_ONLY_FLAGS[key]
    if "=" in flag and value is None:
        value = flag.split("=", 1)[1]
    try:
        config = json.loads(value) if isinstance(value, str) else None
    except ValueError:
        return None
    if not isinstance(config, dict):
        return None
    for name, on in config.items():
        row = P.HARDWARE_ONLY_FLAGS.get("%s.%s" % (key, str(name).replace("_", "-")))
        if row and on not in (False, None, 0, "false", "False"):
            return row
    return None


def hardware_only_flags(b: Build) -> list[Problem]:
    """Flags the chosen hardware cannot run (the FP4 indexer cache on Hopper)."""
    problems = []
    for svc in b.engines:
        for flag, value, origin in svc["_flags"].entries:
            need = _hardware_only(flag, value)
            if need and need[0] not in b.hardware["features"]:
                problems.append(Problem(origin or svc["_vars"]["overrides"], flag, "%s is %s-only: %s; hardware "
                                        "profile %s is %s." % (flag, need[0].capitalize(), need[1],
                                                               b.hardware["name"], b.hardware["family"]),
                                        "remove it, or set plan_hardware to one with %s: %s." % (need[0], ", ".join(
                                            sorted(n for n, h in P.HARDWARE.items() if need[0] in h["features"]))),
                                        svc["host"]))
    return problems


def _version_span(option: str) -> tuple[Optional[str], Optional[str]]:
    """(first release with the option, first release without it) from ENGINE_FLAGS_SINCE/UNTIL; a ``--no-`` spelling
    without a row of its own came and went with its positive one."""
    since, until = P.ENGINE_FLAGS_SINCE.get(option), P.ENGINE_FLAGS_UNTIL.get(option)
    if since is None and until is None and option.startswith("--no-"):
        return _version_span("--" + option[len("--no-"):])
    return since, until


def _profiles_with(since: Optional[str], until: Optional[str]) -> list[str]:
    """The recipe profiles whose vLLM has an option of that span, as plan_recipe values."""
    return ["%s (vLLM %s)" % (name, r["vllm_version"]) for name, r in sorted(P.RECIPES.items())
            if (not since or release(r["vllm_version"]) >= release(since))
            and (not until or release(r["vllm_version"]) < release(until))]


def _version_problem(b: Build, svc: dict[str, Any], flag: str, origin: Optional[str]) -> Optional[Problem]:
    """The problem of one flag the profile's vLLM lacks, or None."""
    version = b.s["vllm_version"]
    since, until = _version_span(option_name(flag))
    if since and release(version) < release(since):
        has = "vLLM %s and later have it" % since
        run = "an image of vLLM >= %s" % since
    elif until and release(version) >= release(until):
        has = "vLLM %s removed it" % until
        run = "an image of vLLM < %s" % until
    else:
        return None
    profiles = _profiles_with(since, until)
    return Problem(origin or var("vllm_version"), flag, "vLLM %s (plan_vllm_version of recipe profile %s) has no %s "
                   "option: its parser refuses the command; %s." % (version, b.s["recipe"], option_name(flag), has),
                   "remove it%s, or run %s: set plan_image and plan_vllm_version%s." % (
                       " from %s" % origin if origin else "", run,
                       ", or plan_recipe: %s" % " / ".join(profiles) if profiles else ""), svc["host"])


def engine_flags_of_version(b: Build) -> list[Problem]:
    """Flags the profile's vLLM does not have (ENGINE_FLAGS_SINCE/UNTIL, derived from the real parsers of the releases
    in ENGINE_FLAGS_VERSIONS): the engine would refuse its command at start, after the rollout began."""
    if not b.s["vllm_version"]:
        return []
    problems, seen = [], set()
    for svc in b.engines:
        for flag, _value, origin in svc["_flags"].entries:
            if not flag.startswith("-"):
                continue
            problem = _version_problem(b, svc, flag, origin)
            if problem and (svc["host"], flag, origin) not in seen:
                seen.add((svc["host"], flag, origin))
                problems.append(problem)
    return problems


def checkpoint_serves_request(b: Build) -> list[Problem]:
    """The checkpoint ships what the settings ask of it: an MTP head or a DSpark draft, the hardware it needs."""
    problems = []
    offered = b.checkpoint["speculative"]
    asked = [m for m in ("mtp", "dspark") if b.s["enable_%s" % m]]
    if len(asked) > 1:
        problems.append(Problem(var("enable_dspark"), True, "MTP and DSpark are two speculative-decoding methods; "
                                "vLLM runs one.", "set only one of plan_enable_mtp and plan_enable_dspark."))
    for method in asked if offered is not None else []:
        if method not in offered:
            others = sorted(m for m, c in P.CHECKPOINTS.items() if method in c["speculative"])
            alternative = [m for m in offered if m != method]
            problems.append(Problem(var("enable_%s" % method), True, "checkpoint %s has no %s head or draft "
                                    "(it ships: %s)." % (b.s["model"], method.upper(), ", ".join(offered) or "none"),
                                    "%sor set plan_model to one of: %s." % (
                                        "set plan_enable_%s: true instead, " % alternative[0] if alternative else "",
                                        ", ".join(others))))
    need = b.checkpoint.get("needs")
    if need and need not in b.hardware["features"]:
        problems.append(Problem(var("model"), b.s["model"], "this checkpoint needs %s GPUs; hardware profile %s is "
                                "%s." % (need, b.hardware["name"], b.hardware["family"]),
                                "choose another checkpoint or set plan_hardware accordingly."))
    return problems


def gpu_memory_fits_checkpoint(b: Build) -> list[Problem]:
    """An engine's GPUs hold the checkpoint (the recipe's minimum GPU memory per checkpoint)."""
    need = b.checkpoint["min_gpu_memory_gb"] * 1000
    per_gpu = b.hardware["min_gpu_memory_mib"] * 1.048576
    return [Problem(svc["_vars"]["gpus"], svc["gpus"], "%s has %d GPU(s) of about %d GB; checkpoint %s needs about "
                    "%d GB of GPU memory." % (svc["name"], len(svc["gpus"]), per_gpu // 1000, b.s["model"],
                                              need // 1000), "give the engine more GPUs, or choose a smaller "
                    "checkpoint (plan_model).", svc["host"])
            for svc in b.engines if svc["gpus"] and len(svc["gpus"]) * per_gpu < need]


def _hidden(name: str) -> str:
    return "%s=<hidden>" % name


_SECRET_CARRY = ("the serving path needs no other secret (the API key is deepseek_v4_api_key, the Hub token "
                 "hf_cache_token, both from a vault); give the engines any other outside the plan (a credentials "
                 "file on the host or in the image), never through plan_* settings.")
_SECRET_WHY = "%s is a secret: in a plan_* setting it is printed with the plan, written to plan.json%s."


def _secret_env_problem(variable: str, key: str) -> Problem:
    carrier = P.SECRET_ENV.get(key)
    fix = "remove it from %s and set %s from a vault instead." % (variable, carrier) if carrier else \
        "remove it from %s; %s" % (variable, _SECRET_CARRY)
    return Problem(variable, _hidden(key), _SECRET_WHY % (key, " and passed in every engine's environment"), fix)


def _secret_flag_problem(variable: str, token: str) -> Problem:
    name = token.split("=", 1)[0]
    carrier = P.SECRET_FLAGS.get(flag_key(name))
    fix = "remove it from %s and set %s from a vault instead." % (variable, carrier) if carrier else \
        "remove it from %s; %s" % (variable, _SECRET_CARRY)
    return Problem(variable, _hidden(name), "%s carries a secret: in a plan_* setting it is printed with the "
                   "plan, written to plan.json and in the process list." % name, fix)


def no_secrets_in_settings(b: Build) -> list[Problem]:
    """No secret in plan_* settings, whatever the topology reads: environment names that hold one by convention
    (*_KEY, *_TOKEN, *SECRET*, *PASSWORD*, *PASSWD*, *CREDENTIAL*) and flags whose value is one (--api-key,
    --hf-token, ...). They would be printed and written to plan.json; the refusal shows their names only."""
    problems = []
    for name in sorted(b.s):
        value, variable = b.s[name], var(name)
        if name.endswith("_env") and isinstance(value, dict):
            problems.extend(_secret_env_problem(variable, k) for k in sorted(str(k) for k in value)
                            if secret_env_name(k))
        elif name.endswith("_args") and isinstance(value, (list, tuple)):
            problems.extend(_secret_flag_problem(variable, str(t)) for t in value if secret_flag(t))
        elif name.endswith("_flag_overrides") and isinstance(value, dict):
            problems.extend(_secret_flag_problem(variable, str(k)) for k in sorted(str(k) for k in value)
                            if secret_flag(k))
        if variable not in {p.variable for p in problems} and any(token_shaped(t) for _l, t in strings(value)):
            problems.append(Problem(variable, value, "holds a value shaped like an access token (hf_..., sk-..., "
                                    "nvapi-..., ghp_...): in a plan_* setting it is printed with the plan and "
                                    "written to plan.json.", "remove it; %s" % _SECRET_CARRY))
    return problems


def _host_value(variable: str, value: Optional[str], host: str) -> Optional[Problem]:
    if value is None or value in P.ALL_INTERFACES:
        return None
    return control_problem(variable, value, host) or address_problem(variable, value, host)


def host_values(b: Build) -> list[Problem]:
    """Every host's own values: its name free of control characters, its address and the address its engines bind
    an IP literal or a host name."""
    problems = []
    for name, h in sorted(b.hosts.items()):
        found = [control_problem("inventory_hostname", name, name), _host_value(var("address"), h["address"], name),
                 _host_value(var("engine_bind_address"), h["engine_bind_address"], name)]
        problems.extend(p for p in found if p)
    return problems


def engine_bind_address(b: Build) -> list[Problem]:
    """Engines listen where their clients reach them: not on loopback when a router on another host is one of them,
    and on exactly the plan's address (--host follows plan_engine_bind_address)."""
    problems = []
    for svc in b.engines:
        bind, flags = svc["bind_address"], svc["_flags"]
        if flags.get("host") != bind:
            variable = flags.origin("host", svc["_vars"]["overrides"])
            problems.append(Problem(variable, flags.get("host"), "--host of %s is %s but the plan binds it to %s: "
                                    "the router, the readiness checks and the exposure table use the plan's." % (
                                        svc["name"], flags.get("host"), bind), "remove --host from %s and set the "
                                    "host's plan_engine_bind_address instead." % variable, svc["host"]))
        if svc["_remote"] and (bind == P.LOOPBACK or bind.startswith("127.") or bind in ("::1", "localhost")):
            problems.append(Problem(var("engine_bind_address"), bind, "%s listens on loopback but the router runs on "
                                    "another host and reaches it at its address." % svc["name"],
                                    "set this host's plan_engine_bind_address to the address the router reaches "
                                    "(its plan_address %s), or remove it." % b.hosts[svc["host"]]["address"],
                                    svc["host"]))
        if bind in P.ALL_INTERFACES:
            b.warnings.append("%s on %s listens on every interface (plan_engine_bind_address %r): anyone who reaches "
                              "the host reaches it%s." % (svc["name"], svc["host"], bind, "" if svc["api_key"] else
                                                          ", without an API key"))
    return problems


def exposure_warnings(b: Build) -> list[Problem]:
    """Say where the plan leaves something open that a person should know about (no problem: a choice)."""
    for svc in (x for x in b.services if x["kind"] == "router"):
        if svc["bind_address"] in P.ALL_INTERFACES:
            b.warnings.append("plan_router_host %r: vllm-router has no inbound authentication and its admin routes "
                              "(/add_worker, /remove_worker, /workers) answer whoever reaches the port; keep it on "
                              "127.0.0.1 and expose it through a TLS proxy." % svc["bind_address"])
    privileged = sorted({"%s on %s" % (x["name"], x["host"]) for x in b.services
                         if (x.get("container") or {}).get("privileged")})
    if privileged:
        b.warnings.append("plan_engine_privileges is privileged: %s run%s with --privileged (the recipe's), every "
                          "device and capability of the host; rdma_devices (the default) gives what RDMA needs only "
                          "(/dev/infiniband, IPC_LOCK, memlock)." % (", ".join(privileged),
                                                                     "s" if len(privileged) == 1 else ""))
    fronted = [x["name"] for x in b.engines if b.api_key and not x["api_key"]]
    if fronted:
        where = [x for x in b.engines if x["name"] in fronted and x["_remote"]]
        b.warnings.append("deepseek_v4_api_key is set but vllm-router %s does not send it to prefill/decode workers, "
                          "so %s accept requests without it%s." % (
                              b.s["router_version"], ", ".join(sorted(set(fronted))),
                              "; they listen on the hosts' addresses for the router: allow their API ports from "
                              "the router host only (host firewall)" if where else " (on loopback only)"))
    return []


# The rules, in the order their problems are reported.
RULES = [images_pinned, image_digest_warnings, gpu_sets, parallelism_fills_gpus, ports_valid, ports_unique,
         port_flags_match_plan,
         kv_transfer_config, kv_transfer_follows_plan, one_connector, lmcache_kv_cache_dtype,
         router_matches_engines, tokenizer_mode, trust_remote_code,
         reasoning_parser, think_max_context, compilation_config, hardware_only_flags, engine_flags_of_version,
         checkpoint_serves_request,
         gpu_memory_fits_checkpoint, no_secrets_in_settings, host_values, engine_bind_address, exposure_warnings]
