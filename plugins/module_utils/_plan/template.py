# -*- coding: utf-8 -*-
# Copyright: inference.deepseek_v4 contributors
# Apache License 2.0 (see LICENSE)
"""Filling the data's templates: ``{name}`` placeholders and feature-gated flag lines (profiles.py)."""

from __future__ import annotations

import re
from typing import Any, Container, Iterable, Mapping, Optional, Sequence, Union

from ansible_collections.inference.deepseek_v4.plugins.module_utils._plan import profiles as P

_PLACEHOLDER = re.compile(r"^\{([a-z_:]+)\}$")


def fill(template: Any, values: Mapping[str, tuple[Any, Optional[str]]]) -> Any:
    """A template with whole-string ``{name}`` placeholders filled (typed); dict keys filled to None dropped."""
    if isinstance(template, dict):
        out = {k: fill(v, values) for k, v in template.items()}
        return {k: v for k, v in out.items() if v is not None} or None
    if isinstance(template, str):
        m = _PLACEHOLDER.match(template)
        return values[m.group(1)][0] if m else template
    return template


def lines(name_or_lines: Union[str, Iterable[Sequence[Any]]], features: Container[str],
          values: Mapping[str, tuple[Any, Optional[str]]]) -> list[tuple[str, Optional[str], Optional[str]]]:
    """Flag lines with fragments expanded and features applied: [(flag, value, origin)]."""
    out = []
    for line in P.FRAGMENTS[name_or_lines] if isinstance(name_or_lines, str) else name_or_lines:
        if line[0].startswith("@"):
            out.extend(lines(line[0][1:], features, values))
            continue
        flag, value, when = line
        if when and when not in features:
            continue
        origins = [values[m.group(1)][1] for m in [_PLACEHOLDER.match(t) for t in (flag, value) if t] if m]
        out.append((str(fill(flag, values)), None if value is None else str(fill(value, values)),
                    origins[-1] if origins else None))
    return out
