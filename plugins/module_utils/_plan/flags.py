# -*- coding: utf-8 -*-
# Copyright: inference.deepseek_v4 contributors
# Apache License 2.0 (see LICENSE)
"""Command-line flags: an ordered list that remembers which setting produced each flag, and the one merge of a
user's extra flags and overrides into the flags the plan manages (engines, router and LMCache alike)."""

from __future__ import annotations

import json
import re
from typing import Any, Container, Iterable, Optional

from ansible_collections.inference.deepseek_v4.plugins.module_utils._problem import Problem

SHORT_FLAGS = {"-tp": "tensor-parallel-size", "-dp": "data-parallel-size", "-pp": "pipeline-parallel-size",
               "-dpl": "data-parallel-size-local", "-dpa": "data-parallel-address",
               "-dpp": "data-parallel-rpc-port", "-dpr": "data-parallel-start-rank", "-ep": "enable-expert-parallel"}


def flag_key(flag: str) -> str:
    """Normalised identity of a flag: dashes for underscores, no ``no-`` prefix, long form."""
    name = flag.split("=", 1)[0]
    if name in SHORT_FLAGS:
        return SHORT_FLAGS[name]
    name = name.lstrip("-").replace("_", "-")
    if name.startswith("no-"):
        name = name[3:]
    return name


def option_name(flag: str) -> str:
    """The option string vLLM's parser knows a flag by: dashes for underscores in a long flag, the part before ``=``
    and before a ``.`` (``--attention_config.use_fp4_indexer_cache=True`` sets a key of ``--attention-config``);
    a short flag (``-tp``) as it is."""
    name = flag.split("=", 1)[0]
    if not name.startswith("--"):
        return name
    return "--" + name[2:].split(".", 1)[0].replace("_", "-")


def release(text: Any) -> tuple[int, ...]:
    """A release version as a comparable tuple: ``0.20.1`` -> (0, 20, 1); () for none."""
    return tuple(int(part) for part in re.findall(r"\d+", str(text or ""))[:3])


def compact_json(obj: Any, separators: tuple[str, str] = (",", ":")) -> str:
    return json.dumps(obj, separators=separators)


class Flags(object):
    """Ordered (flag, value, origin) entries; value None is a bare flag, origin the setting that produced it
    (None: the recipe or topology). Rendered exactly in insertion order."""

    def __init__(self, entries: Iterable[Iterable[Any]] = ()) -> None:
        self.entries = [list(e) for e in entries]

    def add(self, flag: str, value: Any = None, origin: Optional[str] = None) -> Flags:
        self.entries.append([flag, value, origin])
        return self

    def index(self, key: str) -> int:
        for i, entry in enumerate(self.entries):
            if flag_key(entry[0]) == key:
                return i
        return -1

    def has(self, key: str) -> bool:
        return self.index(key) >= 0

    def get(self, key: str, default: Any = None) -> Any:
        i = self.index(key)
        if i < 0:
            return default
        flag, value, _origin = self.entries[i]
        if "=" in flag and value is None:
            return flag.split("=", 1)[1]
        return value

    def flag(self, key: str) -> Optional[str]:
        i = self.index(key)
        return self.entries[i][0] if i >= 0 else None

    def origin(self, key: str, default: Optional[str] = None) -> Optional[str]:
        i = self.index(key)
        return (self.entries[i][2] or default) if i >= 0 else default

    def set(self, flag: str, value: Any, origin: Optional[str] = None) -> None:
        """Replace a flag in place (keeping its position), or append it."""
        i = self.index(flag_key(flag))
        if i >= 0:
            self.entries[i] = [flag, value, origin]
        else:
            self.entries.append([flag, value, origin])

    def remove(self, key: str) -> None:
        self.entries = [e for e in self.entries if flag_key(e[0]) != key]

    def argv(self) -> list[str]:
        out = []
        for flag, value, _origin in self.entries:
            out.append(str(flag))
            if isinstance(value, (list, tuple)):
                out.extend(str(v) for v in value)  # a flag with several values (--prefill URL BOOTSTRAP_PORT)
            elif value is not None:
                out.append(str(value))
        return out


def parse_args(tokens: Any, variable: str, host: Optional[str], problems: list[Problem],
               positional_ok: bool = False) -> list[list[Optional[str]]]:
    """A user's list of command-line tokens as [flag, value] pairs; problems are appended, not raised."""
    if tokens is None:
        return []
    if isinstance(tokens, str) or not isinstance(tokens, (list, tuple)):
        problems.append(Problem(variable, tokens, "must be a list of command-line tokens.",
                                "write it as a YAML list, e.g. ['--max-num-seqs', '16'].", host))
        return []
    tokens = [str(t) for t in tokens]
    pairs = []
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if not tok.startswith("-"):
            if positional_ok:
                pairs.append([tok, None])
            else:
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


def _override_value(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return compact_json(value)
    return str(value)


def apply_overrides(flags: Flags, overrides: Any, variable: str, host: Optional[str], problems: list[Problem]) -> None:
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
        elif value is False or value is None:
            flags.remove(flag_key(flag))
        else:
            flags.set(flag, None if value is True else _override_value(value), variable)


def merge(flags: Flags, extras: Iterable[tuple[str, Any]], overrides: Optional[Iterable[tuple[str, Any]]],
          host: Optional[str], problems: list[Problem], fix: str, repeatable: Container[str] = (),
          what: str = "flag") -> Flags:
    """The one merge of user flags into managed ones, for engines, router and LMCache.

    ``extras``: [(variable, tokens)] appended in order; a flag the plan already manages is refused with ``fix``
    (a format string given the variable and the managed flag), unless its key is ``repeatable``.
    ``overrides``: [(variable, mapping)] applied in order (None: this service takes no overrides).
    """
    for variable, tokens in extras:
        for flag, value in parse_args(tokens, variable, host, problems):
            key = flag_key(flag)
            if flags.has(key) and key not in repeatable:
                managed = flags.flag(key)
                problems.append(Problem(
                    variable, flag if value is None else [flag, value],
                    "%s contradicts the managed %s %s (managed value %r)." % (flag, what, managed, flags.get(key)),
                    fix.format(variable=variable, flag=managed.split("=")[0]), host))
                continue
            flags.add(flag, value, variable)
    for variable, mapping in overrides or ():
        apply_overrides(flags, mapping, variable, host, problems)
    return flags


def parse_len(value: Any) -> Optional[int]:
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


def parallel_sizes(flags: Flags) -> tuple[int, int, int]:
    """(tensor-parallel, data-parallel, data-parallel local) of an engine's flags."""
    def num(key: str, default: int) -> int:
        try:
            return int(flags.get(key, default))
        except (TypeError, ValueError):
            return default
    tp = num("tensor-parallel-size", 1)
    dp = num("data-parallel-size", 1)
    return tp, dp, num("data-parallel-size-local", dp)
