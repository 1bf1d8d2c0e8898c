# -*- coding: utf-8 -*-
# Copyright: inference.deepseek_v4 maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

# PRIVATE to this collection: file writes of its modules (deployment_state, nft_table). May change without notice.
"""Write a file whole or not at all: its directory created where missing, a temporary file beside it with the final
mode from the start, then an atomic move."""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ansible.module_utils.basic import AnsibleModule


def write_atomic(module: AnsibleModule, path: str, text: str, mode: int) -> None:
    """Write TEXT to PATH with MODE through PATH.tmp and an atomic move (its directory created 0755 where missing)."""
    directory = os.path.dirname(path)
    if directory and not os.path.isdir(directory):
        os.makedirs(directory, 0o755)
    temp = path + ".tmp"
    with os.fdopen(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode), "w") as handle:
        handle.write(text)
    module.atomic_move(temp, path)
    os.chmod(path, mode)
