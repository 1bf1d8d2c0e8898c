#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: inference.deepseek_v4 maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: deployment_state
short_description: Record what a host runs at the end of a complete rollout, or remove the record
version_added: 0.1.0
description:
  - With O(state=present), writes (mode 0600) the record M(inference.deepseek_v4.deployment_state_info) compares a
    later run against; O(key) is the key of what the run deployed. The record holds each named container that exists
    (its id and health URL), each unit (O(units), and the unit files of O(unit_dir) that match O(unit_patterns)) with
    the digest of its unit file (with its drop-ins) and its active state, and the digest of each file at or under
    O(paths). It holds no file content and no secret.
  - Reports a change only when the record's content changes.
  - With O(state=absent), removes the record (the teardown does, so that nothing is current after it).
author:
  - inference.deepseek_v4 maintainers (!UNKNOWN)
extends_documentation_fragment:
  - inference.deepseek_v4._docker_api
  - inference.deepseek_v4._attributes
  - inference.deepseek_v4._attributes.target_module
attributes:
  check_mode:
    support: full
    details: Reports whether the record would change, and writes nothing.
  platform:
    details: Linux hosts with systemd; with O(containers), a Docker daemon.
options:
  path:
    description: The record's file. Its directory is created (mode 0755) where missing.
    type: path
    required: true
  state:
    description: Whether the record should exist.
    type: str
    choices: [present, absent]
    default: present
  key:
    description: The key of what the run deployed on the host. Required with O(state=present).
    type: str
  containers:
    description: Names of the containers the host runs (one that does not exist is left out of the record).
    type: list
    elements: str
    default: []
  units:
    description: Names of units the host runs that O(unit_patterns) does not find (C(nginx.service)).
    type: list
    elements: str
    default: []
  unit_dir:
    description: Where O(unit_patterns) look for unit files.
    type: path
    default: /etc/systemd/system
  unit_patterns:
    description: Shell patterns of unit file names in O(unit_dir) to record (C(deepseek-v4-*.service)).
    type: list
    elements: str
    default: []
  paths:
    description: Configuration files, or directories of them, whose digests are recorded.
    type: list
    elements: path
    default: []
  health_urls:
    description: Container or unit name (with its C(.service) suffix) -> the health URL the later run probes.
    type: dict
    default: {}
"""

EXAMPLES = r"""
- name: Record what the host runs
  inference.deepseek_v4.deployment_state:
    path: /opt/deepseek-v4/deployed.json
    key: "{{ deployed.key }}"
    containers: [deepseek-v4-prefill, deepseek-v4-decode]
    unit_patterns: ["deepseek-v4-*.service"]
    paths: [/etc/deepseek-v4]
    health_urls:
      deepseek-v4-prefill: http://localhost:8000/health
      deepseek-v4-router.service: http://127.0.0.1:30000/readiness

- name: Remove the record
  inference.deepseek_v4.deployment_state:
    path: /opt/deepseek-v4/deployed.json
    state: absent
"""

RETURN = r"""
record:
  description: The record written (or that would be written in check mode); null with O(state=absent).
  returned: always
  type: dict
"""

import json
import os
from typing import TYPE_CHECKING

from ansible_collections.inference.deepseek_v4.plugins.module_utils import _deployment_state, _docker_api, _files

if TYPE_CHECKING:
    from ansible.module_utils.basic import AnsibleModule

ARGUMENT_SPEC = dict(
    path=dict(type="path", required=True),
    state=dict(type="str", choices=["present", "absent"], default="present"),
    key=dict(type="str", no_log=False),
    containers=dict(type="list", elements="str", default=[]),
    units=dict(type="list", elements="str", default=[]),
    unit_dir=dict(type="path", default="/etc/systemd/system"),
    unit_patterns=dict(type="list", elements="str", default=[]),
    paths=dict(type="list", elements="path", default=[]),
    health_urls=dict(type="dict", default={}),
)


def run(module: AnsibleModule) -> None:
    params = module.params
    path = params["path"]
    old = None
    if os.path.isfile(path):
        with open(path) as handle:
            old = handle.read()
    if params["state"] == "absent":
        if old is not None and not module.check_mode:
            os.remove(path)
        module.exit_json(changed=old is not None, record=None)
    if not params["key"]:
        module.fail_json(msg="key is required with state=present")
    units = _deployment_state.unit_names(params["unit_dir"], params["unit_patterns"], params["units"])
    seen = _deployment_state.observe(module, params["containers"], units, params["paths"])
    record = _deployment_state.record(params["key"], seen["containers"], seen["units"], seen["files"],
                                      params["health_urls"], params["paths"])
    text = json.dumps(record, indent=2, sort_keys=True) + "\n"
    mode_ok = old is None or (os.stat(path).st_mode & 0o777) == 0o600
    changed = text != old or not mode_ok
    if changed and not module.check_mode:
        _files.write_atomic(module, path, text, 0o600)
    module.exit_json(changed=changed, record=record)


def main() -> None:
    _docker_api.run_module(ARGUMENT_SPEC, run)


if __name__ == "__main__":
    main()
