#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: inference.deepseek_v4 maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, annotations, division, print_function

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
  path:
    description: Absolute path inside the container (a file or a directory).
    type: str
    required: true
  max_bytes:
    description: Refuse (fail) when the files together are larger than this.
    type: int
    default: 16777216
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
from typing import TYPE_CHECKING, Any

from ansible.module_utils.common.text.converters import to_text

from ansible_collections.inference.deepseek_v4.plugins.module_utils import _docker_api

if TYPE_CHECKING:
    from ansible.module_utils.basic import AnsibleModule

ARGUMENT_SPEC = dict(
    name=dict(type="str", required=True),
    path=dict(type="str", required=True),
    max_bytes=dict(type="int", default=16 * 1024 * 1024),
)


def read_archive(data: bytes, max_bytes: int) -> list[dict[str, Any]]:
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


def run(module: AnsibleModule) -> None:
    params = module.params
    client = _docker_api.DockerClient(params)
    container = client.inspect_container(params["name"])
    if not container:
        module.exit_json(changed=False, exists=False, found=False, files=[])
    archive = client.container_archive(container["Id"], params["path"])
    if archive is None:
        module.exit_json(changed=False, exists=True, found=False, files=[])
    module.exit_json(changed=False, exists=True, found=True, files=read_archive(archive, params["max_bytes"]))


def main() -> None:
    _docker_api.run_module(ARGUMENT_SPEC, run, errors=(ValueError, tarfile.TarError))


if __name__ == "__main__":
    main()
