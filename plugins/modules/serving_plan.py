#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: inference.deepseek_v4 contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: serving_plan
short_description: Compute and validate the DeepSeek-V4-Flash serving plan of an inventory
version_added: "0.1.0"
description:
  - Turns the inventory (topology, hardware profile, recipe profile, per-host GPU sets and addresses) into the exact
    command, environment, container options, ports and start order of every vLLM engine, vllm-router and LMCache
    server of the chosen topology.
  - Validates the result before any host is changed, and reports every problem at once, each naming the variable,
    the value found and the fix (GPU sets, tensor x data parallel sizes, port clashes, KV transfer configuration,
    router connector, Think Max context length, LMCache KV cache dtype, tokenizer mode, image tags, Blackwell-only
    flags, user flags that contradict managed ones).
  - Implemented by the action plugin of the same name; this file holds its documentation only.
  - Runs on the controller and contacts no host. When O(hosts) is omitted, the action plugin reads
    the hosts from the inventory groups named by O(settings) (C(prefill), C(decode), C(router), C(serving)) and the
    per-host variables C(plan_address) (default C(ansible_host)), C(plan_gpu_count), C(plan_prefill_gpus),
    C(plan_decode_gpus), C(plan_engine_gpus) and C(plan_engine_bind_address); any other C(plan_*) variable of those hosts that is not a setting
    is refused, naming the closest real one.
author:
  - inference.deepseek_v4 maintainers (!UNKNOWN)
options:
  settings:
    description:
      - Plan settings, keyed as the variables of the role C(inference.deepseek_v4.plan) without their C(plan_) prefix,
        for example C(topology), C(hardware), C(recipe), C(image), C(prefill_port), C(extra_engine_args),
        C(decode_flag_overrides).
      - Unknown keys are refused, naming the closest real one. Keys left out or null take the recipe, topology or
        hardware profile default.
    type: dict
    default: {}
  dest:
    description:
      - When set, the plan is also written there as JSON (mode 0600, since it holds every setting; atomically, only when
        its content changes; not in check mode; an existing plan readable by others is made 0600). Its directory is
        created.
    type: path
  api_key_required:
    description:
      - Whether the API key variable C(deepseek_v4_api_key) is set (the role C(inference.deepseek_v4.plan) passes
        it), never the key itself. The plan names the services that require it and the environment variable or flag
        the roles pass it through (C(secret_env), C(secret_args)); the key never enters the plan or its output.
    type: bool
    default: false
  hosts:
    description:
      - The hosts of the topology. Each item has C(name), C(groups) and optionally C(address), C(gpu_count),
        C(prefill_gpus), C(decode_gpus), C(engine_gpus), C(engine_bind_address).
      - Filled from the inventory by the action plugin when omitted.
    type: list
    elements: dict
extends_documentation_fragment:
  - inference.deepseek_v4._attributes
  - inference.deepseek_v4._attributes.controller_action
attributes:
  check_mode:
    support: full
    details: Check mode returns the same plan and reports whether O(dest) would change, without writing it.
notes:
  - The plan format is described in docs/plan-format.md of the collection.
"""

EXAMPLES = r"""
- name: Plan the H200 prefill/decode topology of this inventory
  inference.deepseek_v4.serving_plan:
    settings:
      topology: h200_pd
      hardware: h200
  register: plan

- name: Plan and keep the plan as JSON
  inference.deepseek_v4.serving_plan:
    settings:
      topology: lmcache_tp8
    dest: /tmp/plan/plan.json

- name: Plan a GB200 cluster from explicit hosts
  inference.deepseek_v4.serving_plan:
    settings:
      topology: gb200_pd_cluster
    hosts:
      - {name: tray-1, groups: [prefill], address: 10.0.0.1}
      - {name: tray-2, groups: [decode], address: 10.0.0.2}
      - {name: head, groups: [router]}
"""

RETURN = r"""
plan:
  description: The serving plan (see docs/plan-format.md).
  returned: success
  type: dict
  contains:
    topology:
      description: Topology name.
      type: str
      sample: h200_pd
    services:
      description: Every engine, router and LMCache server with host, name, kind, role, image, argv, env, gpus, ports,
        container options, URLs, start order and the shell command a person would type.
      type: list
      elements: dict
    warnings:
      description: Things that are allowed but worth knowing.
      type: list
      elements: str
    endpoint:
      description: Where clients connect (the router, or the engine for non-disaggregated topologies).
      type: dict
dest:
  description: Where the plan was written.
  returned: when O(dest) is set
  type: str
  sample: /tmp/plan/plan.json
summary:
  description: The plan as lines a person reads, every service as a shell command.
  returned: success
  type: list
  elements: str
problems:
  description: On failure, every problem found, each with host, variable, check, found, needed, message and fix.
  returned: failure
  type: list
  elements: dict
"""
