#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: inference.deepseek_v4 maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: container_logs
short_description: Read the tail of a container's log and its state
version_added: 0.1.0
description:
  - Reads the last lines of a container's standard output and error through the Docker API, together with the
    container's state (status, exit code, OOM kill).
  - Used by the C(vllm_engine) role to show why an engine did not become ready.
  - Talks to the Docker daemon like the community.docker modules do; the host needs only C(python3-requests).
author:
  - inference.deepseek_v4 maintainers (!UNKNOWN)
extends_documentation_fragment:
  - community.docker.docker.api_documentation
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
requirements:
  - requests
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

import traceback

from ansible.module_utils.common.text.converters import to_native, to_text

from ansible_collections.community.docker.plugins.module_utils.common_api import (
    AnsibleDockerClient,
    RequestException,
)
from ansible_collections.community.docker.plugins.module_utils._api.errors import DockerException


def main():
    client = AnsibleDockerClient(
        argument_spec=dict(
            name=dict(type="str", required=True),
            tail=dict(type="int", default=200),
            timestamps=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    params = client.module.params
    try:
        container = client.get_container(params["name"])
        if not container:
            client.module.exit_json(changed=False, exists=False, lines=[], state={})
        params_q = {
            "stdout": 1,
            "stderr": 1,
            "tail": str(max(params["tail"], 0)),
            "timestamps": 1 if params["timestamps"] else 0,
        }
        res = client._get(client._url("/containers/{0}/logs", container["Id"]), params=params_q, stream=False)
        is_tty = bool(container.get("Config", {}).get("Tty"))
        raw = client._get_result_tty(False, res, is_tty)
        text = to_text(raw, errors="surrogate_or_replace")
        client.module.exit_json(
            changed=False,
            exists=True,
            lines=text.splitlines(),
            state=container.get("State", {}),
        )
    except DockerException as e:
        client.fail("An unexpected Docker error occurred: {0}".format(to_native(e)), exception=traceback.format_exc())
    except RequestException as e:
        client.fail(
            "An unexpected requests error occurred when talking to the Docker daemon: {0}".format(to_native(e)),
            exception=traceback.format_exc(),
        )


if __name__ == "__main__":
    main()
