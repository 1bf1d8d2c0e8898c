# -*- coding: utf-8 -*-
# Copyright: inference.deepseek_v4 contributors
# Apache License 2.0 (see LICENSE)
"""Filter unserved_roles: the engine roles a set of changing services would leave without a serving engine."""

from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping, Optional, Sequence

DOCUMENTATION = r"""
name: unserved_roles
short_description: The engine roles a batch would leave without a serving engine
version_added: 0.2.0
description:
  - Given the plan's services and the services a batch is about to drain, the roles (C(prefill), C(decode), ...) of
    which every engine of the plan is among them, in the plan's order.
  - A service is known by its host and name; services that are not engines (C(kind) other than C(engine)) are ignored.
  - Role C(upgrade) refuses to drain such a role unless the endpoint front falls back to engines of another role.
options:
  _input:
    description: The plan's services (C(deepseek_v4_plan.services)).
    type: list
    elements: dict
    required: true
  changing:
    description: The services the batch drains (each with C(host), C(name), C(kind) and C(role)).
    type: list
    elements: dict
    required: true
"""

EXAMPLES = r"""
- name: Roles left without an engine while this batch drains
  ansible.builtin.debug:
    msg: "{{ deepseek_v4_plan.services | inference.deepseek_v4.unserved_roles(changing_services) }}"
"""

RETURN = r"""
_value:
  description: The engine roles every engine of which is in O(changing), each once, in the plan's order.
  type: list
  elements: str
"""


def _engines(services: Optional[Iterable[Mapping[str, Any]]]) -> list[Mapping[str, Any]]:
    return [s for s in services or [] if s.get("kind") == "engine"]


def unserved_roles(services: Optional[Sequence[Mapping[str, Any]]],
                   changing: Optional[Iterable[Mapping[str, Any]]]) -> list[str]:
    """The roles every engine of which is among ``changing``."""
    leaving = {(s.get("host"), s.get("name")) for s in _engines(changing)}
    roles = []
    for svc in _engines(services):
        if svc.get("role") not in roles:
            roles.append(svc.get("role"))
    staying = {s.get("role") for s in _engines(services) if (s.get("host"), s.get("name")) not in leaving}
    return [role for role in roles if role not in staying]


class FilterModule(object):
    """The collection's filters."""

    def filters(self) -> dict[str, Callable[..., list[str]]]:
        return {"unserved_roles": unserved_roles}
