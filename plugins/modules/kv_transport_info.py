#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: inference.deepseek_v4 maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: kv_transport_info
short_description: Read the KV transfer path and rate the engines report, and check them against the plan
version_added: 0.1.0
description:
  - Reads engine log lines (as M(inference.deepseek_v4.container_logs) returns them) for what the KV transfer really
    used - the Mooncake protocol line, the per-rank NIC lines of C(VLLM_GPU_NIC_PCIE_MAPPING), UCX transport names,
    TCP fallback warnings - and the rate of vLLM's C(KV Transfer metrics) lines (C(Throughput (MB/s)), MB = 2**20
    bytes).
  - Reports a problem for a service whose transfer runs over TCP where O(expect) is V(rdma), for a rate below
    O(min_rate_gbytes_per_s), and with O(require_report) when no service reported a successful transfer.
  - Reads only its arguments; contacts nothing.
author:
  - inference.deepseek_v4 maintainers (!UNKNOWN)
options:
  logs:
    description:
      - Log lines per service (a list of lines, or one text).
    type: dict
    required: true
  expect:
    description:
      - The path the plan moves KV over (V(rdma) where the plan's C(transfer.rdma) is true).
    type: str
    choices: [rdma, tcp]
    default: rdma
  min_rate_gbytes_per_s:
    description:
      - The lowest acceptable transfer rate in GB/s (the plan's C(transfer.min_rate_gbytes_per_s)); none checked when
        left out.
    type: float
  require_report:
    description:
      - At least one service must have reported a successful transfer.
    type: bool
    default: true
extends_documentation_fragment:
  - inference.deepseek_v4._attributes
  - inference.deepseek_v4._attributes.info_module
"""

EXAMPLES = r"""
- name: Read the prefill's log
  inference.deepseek_v4.container_logs:
    name: deepseek-v4-prefill
    tail: 2000
  register: prefill_log

- name: Check the KV transport
  inference.deepseek_v4.kv_transport_info:
    logs:
      deepseek-v4-prefill: "{{ prefill_log.lines }}"
    expect: rdma
    min_rate_gbytes_per_s: "{{ deepseek_v4_plan.transfer.min_rate_gbytes_per_s }}"
  register: transport
"""

RETURN = r"""
services:
  description: Per service, what its log says.
  returned: always
  type: dict
  sample:
    deepseek-v4-decode: {path: rdma, evidence: "The Mooncake Transfer Engine is using rdma as its protocol.",
                         nics: {"0": mlx5_0}, transfers: 12, rate_gbytes_per_s: 18.2}
  contains:
    path:
      description: C(rdma), C(tcp) or V(null) (nothing said).
      type: str
    evidence:
      description: The log line that decided the path.
      type: str
    nics:
      description: Per rank, the NIC vLLM pinned it to.
      type: dict
    transfers:
      description: Successful transfers reported.
      type: int
    rate_gbytes_per_s:
      description: Transfers-weighted mean rate in GB/s; V(null) without a report.
      type: float
problems:
  description: The collection's one problem shape (checks C(kv_transport), C(kv_transport_rate), C(kv_transport_report)).
  returned: always
  type: list
  elements: dict
"""

from typing import Any, Mapping

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.six import string_types
from ansible_collections.inference.deepseek_v4.plugins.module_utils import kv_transport


def check(params: Mapping[str, Any]) -> dict[str, Any]:
    services = {}
    for name, lines in (params["logs"] or {}).items():
        if isinstance(lines, string_types):
            lines = lines.splitlines()
        services[name] = kv_transport.read_lines([str(line) for line in lines or []])
    problems = kv_transport.gate_problems(services, params["expect"], params.get("min_rate_gbytes_per_s"),
                                          params["require_report"])
    return {"services": services, "problems": [p.as_dict() for p in problems]}


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            logs=dict(type="dict", required=True),
            expect=dict(type="str", default="rdma", choices=["rdma", "tcp"]),
            min_rate_gbytes_per_s=dict(type="float"),
            require_report=dict(type="bool", default=True),
        ),
        supports_check_mode=True,
    )
    module.exit_json(changed=False, **check(module.params))


if __name__ == "__main__":
    main()
