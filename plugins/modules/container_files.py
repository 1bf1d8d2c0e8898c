#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: inference.deepseek_v4 maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: container_files
short_description: Read the text files under a path of a container, running or stopped
version_added: 0.1.0
description:
  - Reads the regular files under O(path) of a container (a file or a directory, recursively) through the Docker
    API's archive endpoint, the way C(docker cp) does, and returns their text. The container may have exited.
  - Used by the C(benchmark) role to collect the result JSONs C(vllm bench serve) wrote inside its container. No
    bind mount is needed, so it works where the host that runs the play is not the Docker engine's host (a node
    container that drives a sibling Docker engine).
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
  path:
    description: Absolute path inside the container (a file or a directory).
    type: str
    required: true
  max_bytes:
    description: Refuse (fail) when the files together are larger than this.
    type: int
    default: 16777216
requirements:
  - requests
"""

EXAMPLES = r"""
- name: Collect the benchmark results of a finished container
  inference.deepseek_v4.container_files:
    name: deepseek-v4-bench-tiny-c4
    path: /tmp/benchmark-results
  register: results

- name: Show their names
  ansible.builtin.debug:
    msg: "{{ results.files | map(attribute='path') }}"
"""

RETURN = r"""
exists:
  description: Whether the container exists.
  returned: always
  type: bool
found:
  description: Whether O(path) exists in the container.
  returned: always
  type: bool
files:
  description: The regular files under O(path), sorted by path, each with its path relative to O(path) (its name when
    O(path) is a file), its C(size) in bytes and its C(content) decoded as UTF-8.
  returned: always
  type: list
  elements: dict
  sample: [{"path": "tiny-c4.json", "size": 2150, "content": "{\"date\": \"20261203-101500\", ...}"}]
"""

import io
import tarfile
import traceback

from ansible.module_utils.common.text.converters import to_native, to_text

from ansible_collections.community.docker.plugins.module_utils.common_api import (
    AnsibleDockerClient,
    RequestException,
)
from ansible_collections.community.docker.plugins.module_utils._api.errors import DockerException, NotFound


def read_archive(data, max_bytes):
    """[{path, size, content}] of the regular files of a tar archive (the first path component dropped)."""
    files = []
    total = 0
    with tarfile.open(fileobj=io.BytesIO(data), mode="r") as tar:
        members = [m for m in tar.getmembers() if m.isfile()]
        single = len(tar.getmembers()) == 1
        for member in members:
            total += member.size
            if total > max_bytes:
                raise ValueError("the files are larger than max_bytes (%d)" % max_bytes)
            name = member.name if single else member.name.split("/", 1)[-1]
            content = tar.extractfile(member).read()
            files.append({"path": name, "size": member.size, "content": to_text(content, errors="surrogate_or_replace")})
    return sorted(files, key=lambda f: f["path"])


def main():
    client = AnsibleDockerClient(
        argument_spec=dict(
            name=dict(type="str", required=True),
            path=dict(type="str", required=True),
            max_bytes=dict(type="int", default=16 * 1024 * 1024),
        ),
        supports_check_mode=True,
    )
    params = client.module.params
    try:
        container = client.get_container(params["name"])
        if not container:
            client.module.exit_json(changed=False, exists=False, found=False, files=[])
        try:
            stream = client.get_raw_stream("/containers/{0}/archive", container["Id"], params={"path": params["path"]},
                                           headers={"Accept-Encoding": "identity"})
        except NotFound:
            client.module.exit_json(changed=False, exists=True, found=False, files=[])
        files = read_archive(b"".join(stream), params["max_bytes"])
        client.module.exit_json(changed=False, exists=True, found=True, files=files)
    except ValueError as e:
        client.fail(to_native(e))
    except DockerException as e:
        client.fail("An unexpected Docker error occurred: {0}".format(to_native(e)), exception=traceback.format_exc())
    except RequestException as e:
        client.fail(
            "An unexpected requests error occurred when talking to the Docker daemon: {0}".format(to_native(e)),
            exception=traceback.format_exc(),
        )


if __name__ == "__main__":
    main()
