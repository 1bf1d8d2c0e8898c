# -*- coding: utf-8 -*-
# Copyright: inference.deepseek_v4 contributors
# Apache License 2.0 (see LICENSE)
"""Filter image_reference: the reference a host pulls and runs for an image of the plan."""

from __future__ import annotations

from typing import Any, Callable, Mapping, Optional

from ansible_collections.inference.deepseek_v4.plugins.module_utils._image_digest import reference

DOCUMENTATION = r"""
name: image_reference
short_description: The reference every host pulls and runs for an image of the plan
version_added: 0.2.0
description:
  - The C(reference) (C(repository@sha256:...)) of the image's entry in the agreement of module
    M(inference.deepseek_v4.image_digest_info), so that every host runs the digest the first host resolved.
  - The image itself where the agreement has no entry for it or no digest (a local image, or no answer from the
    registry).
options:
  _input:
    description: An image reference of the plan (a service's C(image)).
    type: str
    required: true
  agreements:
    description: Plan image reference -> entry of RV(inference.deepseek_v4.image_digest_info#module:images).
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: The reference this service runs
  ansible.builtin.debug:
    msg: "{{ service.image | inference.deepseek_v4.image_reference(agreed) }}"
"""

RETURN = r"""
_value:
  description: The agreed reference, or the image itself.
  type: str
"""


def image_reference(image: str, agreements: Optional[Mapping[str, Mapping[str, Any]]]) -> str:
    """The agreed reference of ``image``, or ``image``."""
    return reference(image, agreements)


class FilterModule(object):
    """The collection's filters."""

    def filters(self) -> dict[str, Callable[..., str]]:
        return {"image_reference": image_reference}
