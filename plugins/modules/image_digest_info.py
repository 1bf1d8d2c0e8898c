#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: inference.deepseek_v4 maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: image_digest_info
short_description: Resolve image tags to the registry digest every host of a run pulls
version_added: 0.2.0
description:
  - For each image of O(name), the digest every host should pull and run, as this host sees it, so that a tag that
    moves between hosts or during a rollout cannot give two hosts two images. Role C(vllm_engine) runs it once per
    play, on the first engine host, and has every host pull the reference it returns.
  - A reference that pins a digest (C(name:tag@sha256:...)) is that digest; nothing is asked.
  - A tag (O(pull=missing)) is the digest the image on this host has (its C(RepoDigests)), else the registry's
    manifest digest of the tag, asked through the Docker daemon's distribution endpoint
    (C(GET /distribution/{name}/json)), which answers without pulling. With O(pull=always) the registry comes first.
  - An image on this host without a registry digest (built or loaded here) has no digest to agree on; a registry that
    does not answer leaves the tag, whose pulls the role then compares.
  - Registry credentials come from the Docker client configuration, as for M(inference.deepseek_v4.image_pull).
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
    description: Image references (C(repository[:tag]) or C(repository[:tag]@sha256:digest)).
    type: list
    elements: str
    required: true
  pull:
    description: The pull policy of the play (V(missing) prefers the image already here, V(always) the registry).
    type: str
    choices: [missing, always]
    default: missing
  host:
    description: The name the results give the host (the inventory name); default its host name.
    type: str
"""

EXAMPLES = r"""
- name: The digest every host pulls
  inference.deepseek_v4.image_digest_info:
    name:
      - vllm/vllm-openai:v0.20.0
  run_once: true
  register: agreed
"""

RETURN = r"""
images:
  description: One entry per image of O(name), in order.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The image reference asked for.
      type: str
    digest:
      description: The digest every host runs, or null where none was found.
      type: str
    reference:
      description: What every host pulls and runs (C(repository@digest)), or O(name) itself without a digest.
      type: str
    source:
      description: >-
        Where the digest came from: V(plan) (O(name) pins it), V(local) (the image on this host), V(registry), V(none)
        (a local image without a registry digest) or V(pull) (no answer from the registry: compare the hosts' pulls).
      type: str
    host:
      description: The host that resolved it (O(host), else its host name).
      type: str
    note:
      description: A sentence saying where the digest came from.
      type: str
  sample: [{name: "vllm/vllm-openai:v0.20.0", digest: "sha256:0123...", reference: "vllm/vllm-openai@sha256:0123...",
            source: registry, host: node1, note: "the registry's digest of the tag, asked by node1"}]
"""

import socket
from typing import TYPE_CHECKING, Optional

from ansible_collections.inference.deepseek_v4.plugins.module_utils._docker_api import (
    DockerClient,
    DockerError,
    run_module,
)
from ansible_collections.inference.deepseek_v4.plugins.module_utils._image_digest import agreement, pinned
from ansible_collections.inference.deepseek_v4.plugins.module_utils._registry import registry_auth, split_reference

if TYPE_CHECKING:
    from ansible.module_utils.basic import AnsibleModule


def _registry_digest(client: DockerClient, name: str) -> tuple[Optional[str], Optional[str]]:
    """(digest, None) from the registry through the daemon, or (None, the reason it gave none)."""
    try:
        answer = client.distribution(name, registry_auth(split_reference(name)[2]))
    except DockerError as e:
        return None, str(e)
    digest = ((answer or {}).get("Descriptor") or {}).get("digest")
    return (digest, None) if digest else (None, "no digest in the daemon's answer")


def run(module: AnsibleModule) -> None:
    client = DockerClient(module.params)
    host = module.params["host"] or socket.gethostname()
    images = []
    for name in module.params["name"]:
        if pinned(name):
            images.append(agreement(name, host))
            continue
        local = client.inspect_image(name)
        registry, error = None, None
        if module.params["pull"] == "always" or not (local or {}).get("RepoDigests"):
            registry, error = _registry_digest(client, name)
        images.append(agreement(name, host, local, registry, error, module.params["pull"]))
    module.exit_json(changed=False, images=images)


def main() -> None:
    run_module(dict(
        name=dict(type="list", elements="str", required=True),
        pull=dict(type="str", choices=["missing", "always"], default="missing"),
        host=dict(type="str"),
    ), run)


if __name__ == "__main__":
    main()
