# -*- coding: utf-8 -*-
# Copyright: inference.deepseek_v4 maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Lookup collection_digest: one digest of the collection's own roles, playbooks and plugins on the controller."""

from __future__ import annotations

DOCUMENTATION = r"""
name: collection_digest
short_description: A digest of this collection's roles, playbooks and plugins as installed on the controller
version_added: 0.1.0
description:
  - The sha256 of the relative path and the bytes of every file under the collection's C(roles), C(playbooks) and
    C(plugins) directories, in path order, leaving out compiled Python files, documentation (C(*.md)) and the
    subdirectories of C(playbooks), where runs write their reports.
  - Any change to the collection's code (an upgrade of the collection, or an edited file) changes it. The deploy
    playbooks put it in the key of what a run deploys (module M(inference.deepseek_v4.deployment_state_info)), so
    that a host deployed by other code is deployed again.
options: {}
"""

EXAMPLES = r"""
- name: Show the digest of the collection's code
  ansible.builtin.debug:
    msg: "{{ lookup('inference.deepseek_v4.collection_digest') }}"
"""

RETURN = r"""
_raw:
  description: One element, the digest as 64 lower-case hex digits.
  type: list
  elements: str
"""

import hashlib
import os
from typing import Any, Optional

from ansible.plugins.lookup import LookupBase

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# Each tree, and whether it is read recursively: the playbooks' own directory also receives run outputs (the
# preflight reports, benchmark runs), so only its files count.
_TREES = (("playbooks", False), ("plugins", True), ("roles", True))
# Compiled Python, and documentation (a role's README changes nothing a host runs).
_LEFT_OUT = (".pyc", ".pyo", ".md")
_CACHE: dict[str, str] = {}


def digest(root: str = _ROOT) -> str:
    """sha256 over (relative path, bytes) of every file of the collection's code trees under ROOT."""
    if root in _CACHE:
        return _CACHE[root]
    total = hashlib.sha256()
    for tree, recursive in _TREES:
        for top, dirs, files in os.walk(os.path.join(root, tree)):
            dirs[:] = sorted(d for d in dirs if d != "__pycache__") if recursive else []
            for name in sorted(files):
                if name.endswith(_LEFT_OUT):
                    continue
                path = os.path.join(top, name)
                total.update(os.path.relpath(path, root).encode("utf-8") + b"\0")
                with open(path, "rb") as handle:
                    total.update(hashlib.sha256(handle.read()).digest())
    _CACHE[root] = total.hexdigest()
    return _CACHE[root]


class LookupModule(LookupBase):
    """The digest of the collection's code."""

    def run(self, terms: list[Any], variables: Optional[dict[str, Any]] = None, **kwargs: Any) -> list[str]:
        return [digest()]
