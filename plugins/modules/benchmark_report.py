#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: inference.deepseek_v4 contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: benchmark_report
short_description: Write the report of a C(vllm bench serve) run directory and compare two runs
version_added: "0.1.0"
description:
  - Reads every result JSON C(vllm bench serve --save-result) wrote for one run of the role
    C(inference.deepseek_v4.benchmark) (O(run_dir)C(/results/*.json), one per concurrency of the sweep) and the run's
    C(run.json), and writes O(run_dir)C(/report.md) (a Markdown table - request throughput, output and total tokens/s,
    TTFT mean and p99, TPOT mean and p99, ITL p50 and p99, errors - per concurrency) and O(run_dir)C(/report.png)
    (throughput, time to first token and inter-token latency against concurrency).
  - Every figure comes from the result JSONs; nothing is measured here. The PNG is written with the Python standard
    library (zlib), so no plotting library is needed on the controller.
  - With O(compare_to), also returns a Markdown table comparing the two runs point by point (before -> after and the
    ratio after / before). C(scripts/benchmark-report.py compare BEFORE AFTER) prints the same table.
  - Implemented by the action plugin of the same name; this file holds its documentation only.
author:
  - inference.deepseek_v4 maintainers (!UNKNOWN)
options:
  run_dir:
    description: The run directory on the controller (it holds C(results/) and C(run.json)).
    type: path
    required: true
  compare_to:
    description: Another run directory (the run before); the result then carries RV(comparison) and RV(ratios).
    type: path
extends_documentation_fragment:
  - inference.deepseek_v4._attributes
  - inference.deepseek_v4._attributes.controller_action
attributes:
  check_mode:
    support: full
    details: Check mode reads the results and reports whether the report files would change, without writing them.
"""

EXAMPLES = r"""
- name: Write report.md and report.png of a run
  inference.deepseek_v4.benchmark_report:
    run_dir: benchmark-runs/20261203T101500Z-8k-1k-c32
  register: report

- name: Compare it with the run before the upgrade
  inference.deepseek_v4.benchmark_report:
    run_dir: benchmark-runs/20261203T101500Z-8k-1k-c32
    compare_to: benchmark-runs/20261120T090000Z-8k-1k-c32
  register: report

- name: Print the comparison
  ansible.builtin.debug:
    msg: "{{ report.comparison | split('\n') }}"
"""

RETURN = r"""
rows:
  description: One row per concurrency, read from the result JSONs (C(null) where a result lacks a figure).
  returned: success
  type: list
  elements: dict
  sample: [{"concurrency": 32, "prompts": 512, "completed": 512, "failed": 0, "request_throughput": 1.19,
            "output_throughput": 1222.4, "mean_ttft_ms": 1702.3, "p50_itl_ms": 64.1, "source": "results/c32.json"}]
table:
  description: The Markdown table of the report.
  returned: success
  type: str
markdown:
  description: Path of the Markdown report.
  returned: success
  type: str
png:
  description: Path of the PNG plot.
  returned: success
  type: str
comparison:
  description: The Markdown table comparing O(compare_to) (before) with O(run_dir) (after).
  returned: when O(compare_to) is set
  type: str
ratios:
  description: Per concurrency both runs measured, per compared metric, after / before (C(null) where undefined).
  returned: when O(compare_to) is set
  type: dict
"""
