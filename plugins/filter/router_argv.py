# -*- coding: utf-8 -*-
# Copyright: inference.deepseek_v4 contributors
# Apache License 2.0 (see LICENSE)
"""Filter router_argv: the router's (or its standby's) argv from the plan, without the workers left out."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

DOCUMENTATION = r"""
name: router_argv
short_description: The router's command line from the plan, without the workers left out
version_added: 0.2.0
description:
  - Builds the argv of the plan's router service (or of its standby) from the plan's data, that is C(argv_head), the
    tokens of each worker of C(workers) (C(--prefill URL [BOOTSTRAP_PORT]), C(--decode URL)) that is not left out,
    then C(argv_tail).
  - With no worker left out the result is the service's C(argv) (the standby's C(standby.argv)).
  - Role C(vllm_router) leaves out the workers whose health URL does not answer, so that a host lost during a rollout
    does not keep the router from starting.
options:
  _input:
    description: The plan's router service (C(kind) C(router)).
    type: dict
    required: true
  left_out:
    description: The C(ref) (C(host/name)) of each worker to leave out.
    type: list
    elements: str
    default: []
  standby:
    description: Build the standby router's argv (the service's C(standby)); an empty list where the plan has none.
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: The router's argv without the workers that do not answer
  ansible.builtin.set_fact:
    router_argv: "{{ router_service | inference.deepseek_v4.router_argv(['node2/deepseek-v4-decode']) }}"
"""

RETURN = r"""
_value:
  description: The argv, starting with C(vllm-router).
  type: list
  elements: str
"""


def router_argv(svc: dict, left_out: list | None = None, standby: bool = False) -> list:
    """argv_head + the argv of every worker not in ``left_out`` + argv_tail, of the router or its standby."""
    if not isinstance(svc, dict):
        raise AnsibleFilterError("router_argv expects the plan's router service, got %s" % type(svc).__name__)
    source = svc.get("standby") if standby else svc
    if not source:
        return []
    try:
        head, tail = source["argv_head"], source["argv_tail"]
    except KeyError as exc:
        raise AnsibleFilterError("router_argv: %s has no %s: the plan is older than this collection; re-run the plan "
                                 "play." % (svc.get("name"), exc)) from exc
    skip = set(left_out or [])
    workers = [w for w in svc.get("workers") or [] if w.get("ref") not in skip]
    return list(head) + [t for w in workers for t in w["argv"]] + list(tail)


class FilterModule(object):
    """The collection's filters."""

    def filters(self) -> dict:
        return {"router_argv": router_argv}
