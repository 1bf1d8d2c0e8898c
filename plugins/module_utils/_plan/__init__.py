# -*- coding: utf-8 -*-
# Copyright: inference.deepseek_v4 contributors
# Apache License 2.0 (see LICENSE)
"""The serving plan engine: inventory in, every service's exact command out, or every problem found.

One job per module (docs/architecture.md): ``profiles`` (data only: settings, hardware, recipes, topologies),
``flags`` (flag lists and the one merge of user flags into managed ones), ``settings`` (merge, types, unknown
names), ``build`` (one loop over the topology's data), ``rules`` (one function per validation rule, listed in one
table), ``render`` (command text, summary, JSON). Pure Python, no Ansible imports.
"""

from __future__ import annotations

from ansible_collections.inference.deepseek_v4.plugins.module_utils._plan.build import (
    PlanError,
    build_plan,
    topology_groups,
)
from ansible_collections.inference.deepseek_v4.plugins.module_utils._plan.flags import flag_key, parse_len
from ansible_collections.inference.deepseek_v4.plugins.module_utils._plan.render import (
    plan_json,
    render_command,
    summary_lines,
    write_if_changed,
)
from ansible_collections.inference.deepseek_v4.plugins.module_utils._plan.rules import image_tag

__all__ = ["PlanError", "build_plan", "topology_groups", "flag_key", "image_tag", "parse_len", "plan_json",
           "render_command", "summary_lines", "write_if_changed"]
