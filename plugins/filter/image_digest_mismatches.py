# -*- coding: utf-8 -*-
# Copyright: inference.deepseek_v4 contributors
# Apache License 2.0 (see LICENSE)
"""Filter image_digest_mismatches: a host's images that are not the digest every host of the run agreed on."""

from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping, Optional, Sequence

from ansible_collections.inference.deepseek_v4.plugins.module_utils._image_digest import mismatches

DOCUMENTATION = r"""
name: image_digest_mismatches
short_description: A host's images that are not the digest every host of the run runs
version_added: 0.2.0
description:
  - Given a host's images as module M(inference.deepseek_v4.image_pull) returns them (C(name), C(digests)) and the
    agreement of module M(inference.deepseek_v4.image_digest_info) (plan reference -> its entry), one message per
    image whose C(RepoDigests) do not hold the agreed digest, naming the host, both digests and the fix (pin it).
  - An image without an agreed digest that the hosts pulled by tag (C(source) V(pull)) is checked against the first
    host of O(peers) that has a digest of it; a local image without a registry digest (C(source) V(none)) is not
    checked.
options:
  _input:
    description: The host's images (C(images) of M(inference.deepseek_v4.image_pull)).
    type: list
    elements: dict
    required: true
  agreements:
    description: Plan image reference -> entry of RV(inference.deepseek_v4.image_digest_info#module:images).
    type: dict
    required: true
  host:
    description: The host's inventory name, for the messages.
    type: str
    required: true
  peers:
    description: The play's hosts in order, each as [host, {reference - RepoDigests}].
    type: list
    elements: list
    default: []
"""

EXAMPLES = r"""
- name: Fail a host whose image is not the agreed digest
  ansible.builtin.fail:
    msg: "{{ pulled.images | inference.deepseek_v4.image_digest_mismatches(agreed, inventory_hostname) | join(' ') }}"
  when: pulled.images | inference.deepseek_v4.image_digest_mismatches(agreed, inventory_hostname) | length > 0
"""

RETURN = r"""
_value:
  description: One message per image that differs (host, image, both digests, the fix); empty when all agree.
  type: list
  elements: str
"""


def image_digest_mismatches(images: Optional[Iterable[Mapping[str, Any]]],
                            agreements: Optional[Mapping[str, Mapping[str, Any]]], host: str,
                            peers: Optional[Iterable[Sequence[Any]]] = None) -> list[str]:
    """The messages of the host's images that are not the agreed digest."""
    return mismatches(images, agreements, host, peers or [])


class FilterModule(object):
    """The collection's filters."""

    def filters(self) -> dict[str, Callable[..., list[str]]]:
        return {"image_digest_mismatches": image_digest_mismatches}
