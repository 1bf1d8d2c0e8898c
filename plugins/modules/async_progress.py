#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: inference.deepseek_v4 contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: async_progress
short_description: Wait for a background transfer and print a line of its progress per interval
version_added: "0.2.0"
description:
  - Follows a task started in the background (C(async), C(poll=0)) whose module writes a progress file
    (M(inference.deepseek_v4.hf_snapshot), M(inference.deepseek_v4.image_pull)) until it finishes, and returns that
    task's own result (failed when it failed, its message prefixed with the host).
  - >-
    Every O(interval) seconds it prints one line per host, for example
    "gpu-1: deepseek-ai/DeepSeek-V4-Flash: 12.3 GiB of 149.0 GiB (8.3%), 95.2 MiB/s, 24 min left
    [model-00007-of-00046.safetensors]". The lines go through the controller's display, so they show where the task has C(no_log); they hold sizes,
    rates and file or layer names only.
  - A stall (no new byte for the module's own C(stall_timeout)) is decided by the module, which stops and fails
    naming the file and the fix; this action adds O(fix). A job whose progress file stops changing for
    O(stale_timeout) seconds (its process died or hangs) fails here.
  - Implemented by the action plugin of the same name; this file holds its documentation only. Each poll runs
    C(ansible.builtin.async_status) and C(ansible.builtin.slurp) on the host; the finished job's status file is
    removed.
author:
  - inference.deepseek_v4 maintainers (!UNKNOWN)
options:
  jid:
    description: The C(ansible_job_id) of the background task.
    type: str
    required: true
  progress_file:
    description: The progress file the background module writes (its C(progress_file) option), on the host.
    type: str
    required: true
  interval:
    description: Seconds between two lines of a host. The job is polled every 5 s (or every O(interval) when shorter).
    type: int
    default: 30
  timeout:
    description: Seconds after which to stop waiting and fail (V(0) waits as long as the job runs; its C(async) limit
      ends it).
    type: int
    default: 0
  stale_timeout:
    description: Seconds after which a progress file that no longer changes while the job runs fails the task
      (V(0) never).
    type: int
    default: 600
  label:
    description: What moves, at the start of each line (default the module's own label).
    type: str
    default: ""
  fix:
    description: Text appended to the message of a stalled or timed out job (for example the role variable to change).
    type: str
    default: ""
extends_documentation_fragment:
  - inference.deepseek_v4._attributes
attributes:
  action:
    description: Has an action plugin of the same name, which runs on the controller and polls the host.
    support: full
    details: The action plugin is the whole implementation; the module file holds its documentation only.
  check_mode:
    support: none
    details: C(async) tasks do not run in check mode; skip this task there (C(when) on the job id).
  diff_mode:
    support: none
    details: The action reports no diff.
  platform:
    support: full
    platforms: posix
    details: Linux hosts.
"""

EXAMPLES = r"""
- name: Pull the engine image in the background
  inference.deepseek_v4.image_pull:
    name: vllm/vllm-openai:v0.20.0
    progress_file: /run/deepseek-v4/image-pull.json
    stall_timeout: 300
  async: 7200
  poll: 0
  register: pull_job

- name: Follow the pull, a line per host every 30 s
  inference.deepseek_v4.async_progress:
    jid: "{{ pull_job.ansible_job_id }}"
    progress_file: /run/deepseek-v4/image-pull.json
    interval: 30
  register: pull
"""

RETURN = r"""
progress:
  description: The last state of the progress file (C(done), C(total), C(rate), C(item), C(phase)), or null.
  returned: always
  type: dict
progress_lines:
  description: The number of progress lines printed for this host.
  returned: always
  type: int
msg:
  description: The job's message, prefixed with the host, when it failed.
  returned: failure
  type: str
"""
