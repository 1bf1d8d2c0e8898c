# -*- coding: utf-8 -*-
# Copyright: inference.deepseek_v4 contributors
# Apache License 2.0 (see LICENSE)
"""Settings: the user's values merged over the table's defaults, the recipe's and the topology's; types checked;
an unknown or misspelt name refused with the closest real one."""

from __future__ import annotations

import copy
import difflib
import re
from typing import Any, Iterable, Mapping, Optional

from ansible_collections.inference.deepseek_v4.plugins.module_utils._plan import inputs
from ansible_collections.inference.deepseek_v4.plugins.module_utils._plan import profiles as P
from ansible_collections.inference.deepseek_v4.plugins.module_utils._problem import Problem

# The setting a recipe default fills when the user leaves it null.
RECIPE_KEYS = ("image", "vllm_version", "router_version", "model", "enable_tool_calling")
NAMED_TABLES = {"TOPOLOGIES": P.TOPOLOGIES, "HARDWARE": P.HARDWARE,
                "RECIPES": sorted(P.RECIPES) + sorted(P.RECIPE_ALIASES), "ROUTER_POLICIES": P.ROUTER_POLICIES}


def var(name: str) -> str:
    return P.VAR_PREFIX + name


def choices(name: str) -> Optional[list[str]]:
    """The allowed values of a setting, or None."""
    spec = P.SETTINGS[name].get("choices")
    if isinstance(spec, str):
        return sorted(NAMED_TABLES[spec])
    return spec


def did_you_mean(name: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return " (did you mean %s?)" % var(close[0]) if close else ""


# A plan_* variable whose name says it holds a secret: its value is never shown (it is refused anyway).
_SECRET_NAME = re.compile(r"(key|token|secret|passw|credential)", re.IGNORECASE)


def unknown_setting(name: str, value: Any, host: Optional[str] = None,
                    known: Optional[Iterable[str]] = None) -> Problem:
    """The problem of a plan_* variable no table knows."""
    known = known if known is not None else list(P.SETTINGS) + list(P.HOST_SETTINGS)
    if _SECRET_NAME.search(name):
        value = "<hidden>"
    where = "a per-host setting" if host else "a setting"
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    fix = "rename it %s, or remove it" % var(close[0]) if close else "correct its name or remove it"
    return Problem(var(name), value, "is not %s of the serving plan%s." % (where, did_you_mean(name, known)),
                   "%s (every setting: roles/plan/README.md)." % fix, host)


def host_scoped(name: str, value: Any, host: str) -> Problem:
    """The problem of a whole-plan setting given one host a value of its own (it would be ignored)."""
    return Problem(var(name), value, "applies to the whole plan, not to one host; this host's value differs from the "
                   "play's.", "set %s once for every host (group_vars/all, the play or -e), not in this host's or "
                   "group's variables." % var(name), host)


def merge(user: Optional[Mapping[str, Any]]) -> tuple[dict[str, Any], list[Problem]]:
    """(settings, problems): every setting resolved; the problems of names and types."""
    settings = {name: copy.deepcopy(row["default"]) for name, row in P.SETTINGS.items()}
    problems = []
    for name, value in (user or {}).items():
        if name in P.HOST_SETTINGS:
            continue  # a host variable set for every host: the hosts carry it
        if name not in P.SETTINGS:
            problems.append(unknown_setting(name, value))
        elif value is not None:
            settings[name] = value
    for name in ("topology", "hardware", "recipe"):
        allowed = choices(name)
        if settings[name] is not None and settings[name] not in allowed:
            problems.append(Problem(var(name), settings[name], "is not a known %s." % name,
                                    "use one of: %s." % ", ".join(allowed)))
    if problems and any(settings[n] is not None and settings[n] not in choices(n)
                        for n in ("topology", "hardware", "recipe")):
        return settings, problems
    settings["recipe"] = P.RECIPE_ALIASES.get(settings["recipe"], settings["recipe"])
    recipe = P.RECIPES[settings["recipe"]]
    topology = P.TOPOLOGIES[settings["topology"]]
    defaults = dict(P.FALLBACK_DEFAULTS, hardware=topology["hardware"], **topology["defaults"])
    defaults.update((key, recipe[key]) for key in RECIPE_KEYS)
    for name, value in defaults.items():
        if settings[name] is None:
            settings[name] = value
    if settings["lmcache_image"] is None:
        settings["lmcache_image"] = settings["image"]
    problems.extend(check_types(settings))
    problems.extend(inputs.check(user, settings))
    return settings, problems


# Booleans as Ansible reads them (a string from -e key=value included); anything else is refused, not truthy.
_TRUE = ("true", "yes", "on", "1", "y", "t")
_FALSE = ("false", "no", "off", "0", "n", "f")


def _is_bool(value: Any) -> bool:
    return isinstance(value, bool) or (not isinstance(value, (list, dict)) and str(value).strip().lower() in
                                       _TRUE + _FALSE)


def _to_bool(value: Any) -> bool:
    return value if isinstance(value, bool) else str(value).strip().lower() in _TRUE


_TYPE_CHECKS = {
    "int": (lambda v: not isinstance(v, bool) and str(v).strip().lstrip("-").isdigit(), int,
            "must be a whole number.", "set a number."),
    "bool": (_is_bool, _to_bool, "must be a boolean.", "set true or false."),
    # A whole number is a string here (a numeric revision); 0.20 is not (YAML reads it as 0.2).
    "str": (lambda v: isinstance(v, str) or (isinstance(v, int) and not isinstance(v, bool)), str,
            "must be a string.", "write it as a string (in quotes where YAML would read another type)."),
    "list": (lambda v: isinstance(v, (list, tuple)), list, "must be a list.", "write it as a YAML list."),
    "dict": (lambda v: isinstance(v, dict), dict, "must be a mapping.", "write it as a YAML mapping."),
}
_EMPTY = {"int": 0, "list": [], "dict": {}, "bool": False}


def _out_of_range(name: str, row: dict[str, Any], value: Any) -> list[Problem]:
    """The problem of a whole number outside the row's ``minimum``/``maximum``."""
    low, high = row.get("minimum"), row.get("maximum")
    if row["type"] != "int" or value is None or (low is None and high is None):
        return []
    if (low is None or value >= low) and (high is None or value <= high):
        return []
    return [Problem(var(name), value, "is out of range.", "set %s to a whole number from %s to %s." % (
        var(name), low, high))]


def _empty_tokens(name: str, row: dict[str, Any], value: Any) -> list[Problem]:
    """The problem of a list of command-line tokens holding an empty one (an empty argument the program sees)."""
    if row["type"] != "list" or row.get("elements") != "str" or not isinstance(value, list):
        return []
    if not any(isinstance(token, str) and not token.strip() for token in value):
        return []
    return [Problem(var(name), value, "holds an empty token: the program would get an empty argument.",
                    "remove the empty string from the list.")]


def check_types(s: dict[str, Any]) -> list[Problem]:
    problems = []
    for name, row in P.SETTINGS.items():
        check = _TYPE_CHECKS.get(row["type"])
        if check is not None and s[name] is not None:
            ok, convert, message, fix = check
            if ok(s[name]):
                s[name] = convert(s[name])
            else:
                problems.append(Problem(var(name), s[name], message, fix))
                s[name] = copy.deepcopy(row["default"] if row["type"] == "str" else _EMPTY[row["type"]])
        allowed = choices(name)
        if allowed and s[name] not in allowed and not (s[name] is None and row["default"] is None):
            problems.append(Problem(var(name), s[name], "is not one of the allowed values.",
                                    "use one of: %s." % ", ".join(allowed)))
        problems.extend(_out_of_range(name, row, s[name]))
        problems.extend(_empty_tokens(name, row, s[name]))
    for mode in s["reasoning_modes"]:
        if mode not in P.REASONING_MODES:
            problems.append(Problem(var("reasoning_modes"), s["reasoning_modes"], "%r is not a reasoning mode." % mode,
                                    "use a subset of: %s." % ", ".join(P.REASONING_MODES)))
    if s["replicas_per_host"] < 1:  # out of range (said above): the plan goes on to find every other problem
        s["replicas_per_host"] = 1  # (GPUs per replica divide by it)
    if not re.match(r"^[a-z0-9][a-z0-9_.-]*$", str(s["name_prefix"])):
        problems.append(Problem(var("name_prefix"), s["name_prefix"], "is not a valid container name prefix.",
                                "use lower-case letters, digits, '-', '_' and '.'."))
    return problems
