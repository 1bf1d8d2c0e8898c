#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: inference.deepseek_v4 maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: container_logs
short_description: Read the tail of a container's log and its state
version_added: 0.1.0
description:
  - Reads the last lines of a container's standard output and error through the Docker API, together with the
    container's state (status, exit code, OOM kill).
  - Used by the C(vllm_engine) role to show why an engine did not become ready.
  - Talks to the Docker Engine API with Python's standard library; the host needs no Docker SDK and no C(requests).
author:
  - inference.deepseek_v4 maintainers (!UNKNOWN)
extends_documentation_fragment:
  - inference.deepseek_v4._docker_api
  - inference.deepseek_v4._attributes
  - inference.deepseek_v4._attributes.info_module
attributes:
  platform:
    details: Hosts with a Docker daemon.
options:
  name:
    description: Container name or ID.
    type: str
    required: true
  tail:
    description: Number of log lines to return, counted from the end.
    type: int
    default: 200
  timestamps:
    description: Prefix each line with its timestamp.
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Show why the prefill engine stopped
  inference.deepseek_v4.container_logs:
    name: deepseek-v4-prefill
    tail: 100
  register: logs

- name: Print the tail
  ansible.builtin.debug:
    var: logs.lines
"""

RETURN = r"""
exists:
  description: Whether the container exists.
  returned: always
  type: bool
lines:
  description: The last O(tail) log lines (stdout and stderr interleaved as written).
  returned: always
  type: list
  elements: str
state:
  description: The container's C(State) as Docker reports it (C(Status), C(ExitCode), C(OOMKilled), C(Error), ...).
  returned: always
  type: dict
  sample: {"Status": "exited", "ExitCode": 1, "OOMKilled": false}
"""

from typing import TYPE_CHECKING

from ansible.module_utils.common.text.converters import to_text

from ansible_collections.inference.deepseek_v4.plugins.module_utils import _docker_api

if TYPE_CHECKING:
    from ansible.module_utils.basic import AnsibleModule

ARGUMENT_SPEC = dict(
    name=dict(type="str", required=True),
    tail=dict(type="int", default=200),
    timestamps=dict(type="bool", default=False),
)


def run(module: AnsibleModule) -> None:
    params = module.params
    client = _docker_api.DockerClient(params)
    container = client.inspect_container(params["name"])
    if not container:
        module.exit_json(changed=False, exists=False, lines=[], state={})
    raw = client.container_logs(container, params["tail"], params["timestamps"])
    module.exit_json(changed=False, exists=True, lines=to_text(raw, errors="surrogate_or_replace").splitlines(),
                     state=container.get("State", {}))


def main() -> None:
    _docker_api.run_module(ARGUMENT_SPEC, run)


if __name__ == "__main__":
    main()
