#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: inference.deepseek_v4 maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: deployment_state_info
short_description: Whether a host still runs what its last complete rollout left, for the same inputs
version_added: 0.1.0
description:
  - Reads the record M(inference.deepseek_v4.deployment_state) wrote at the end of the host's last complete rollout
    and compares it with the host, in one call. The record's key is O(key); each recorded container exists, is the
    same container (its id), runs and answers its health URL once; each recorded unit file has the same digest and
    the unit the same active state, and an active unit with a health URL answers it; each recorded file has the same
    digest, and no file was added under a recorded directory.
  - RV(current) is true only when all of that holds; otherwise RV(reasons) says why, one line each. The deploy
    playbooks skip their changing phases when every host is current and go straight to the verification.
  - A Docker daemon is contacted only when the record names containers.
author:
  - inference.deepseek_v4 maintainers (!UNKNOWN)
extends_documentation_fragment:
  - inference.deepseek_v4._docker_api
  - inference.deepseek_v4._attributes
  - inference.deepseek_v4._attributes.info_module
attributes:
  platform:
    details: Linux hosts with systemd; with containers recorded, a Docker daemon.
options:
  path:
    description: The record's file.
    type: path
    required: true
  key:
    description: The key of what this run would deploy on the host (a digest; the record must hold the same).
    type: str
    required: true
  request_timeout:
    description: Seconds each health URL may take to answer.
    type: int
    default: 5
"""

EXAMPLES = r"""
- name: Read whether the host runs what this run would deploy
  inference.deepseek_v4.deployment_state_info:
    path: /opt/deepseek-v4/deployed.json
    key: "{{ inputs | to_json(sort_keys=true) | hash('sha256') }}"
  register: deployed

- name: Say why not
  ansible.builtin.debug:
    msg: "{{ deployed.reasons }}"
  when: not deployed.current
"""

RETURN = r"""
current:
  description: Whether the host runs what the record says, for the same key.
  returned: always
  type: bool
reasons:
  description: Why it does not, one line each (the first difference of each recorded item).
  returned: always
  type: list
  elements: str
  sample: ["container deepseek-v4-decode is not the one the last rollout started (re-created since)"]
key:
  description: O(key), for the task that writes the record at the end of the run.
  returned: always
  type: str
record:
  description: The record as read (C(version), C(key), C(paths), C(containers), C(units), C(files)), null where there is none.
  returned: always
  type: dict
"""

import os
from typing import TYPE_CHECKING

from ansible_collections.inference.deepseek_v4.plugins.module_utils import _deployment_state, _docker_api

if TYPE_CHECKING:
    from ansible.module_utils.basic import AnsibleModule

ARGUMENT_SPEC = dict(
    path=dict(type="path", required=True),
    key=dict(type="str", required=True, no_log=False),
    request_timeout=dict(type="int", default=5),
)


def run(module: AnsibleModule) -> None:
    path = module.params["path"]
    text = None
    if os.path.isfile(path):
        with open(path) as handle:
            text = handle.read()
    stamp = _deployment_state.load(text)
    stale = _deployment_state.stale_record(stamp, module.params["key"])
    reasons = [stale] if stale else []
    if stamp is not None and not stale:
        seen = _deployment_state.observe(module, stamp.get("containers", {}), sorted(stamp.get("units", {})),
                                         stamp.get("paths") or sorted(stamp.get("files", {})))
        reasons = _deployment_state.differences(stamp, module.params["key"], seen["containers"], seen["units"],
                                                seen["files"],
                                                _deployment_state.answers_url(module.params["request_timeout"]))
    module.exit_json(changed=False, current=not reasons, reasons=reasons, key=module.params["key"], record=stamp)


def main() -> None:
    _docker_api.run_module(ARGUMENT_SPEC, run)


if __name__ == "__main__":
    main()
