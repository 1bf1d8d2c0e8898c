# -*- coding: utf-8 -*-
# Copyright: inference.deepseek_v4 maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

# PRIVATE to this collection: the attributes every module of it documents. May change without notice; other
# collections must not use it.

from __future__ import annotations


class ModuleDocFragment(object):

    # What each attribute means. Every module extends this fragment, then one variant below or its own
    # support levels (a module's own C(attributes) entries win over the fragments').
    DOCUMENTATION = r"""
options: {}
attributes:
  check_mode:
    description: Can run in check mode, reporting what would change without changing anything.
  diff_mode:
    description: Returns what changed (or would change in check mode) when run with C(--diff).
  platform:
    description: The systems the module runs on.
"""

    # Modules that only read the target: the same result in check mode, nothing to diff, Linux targets.
    INFO_MODULE = r"""
options: {}
attributes:
  check_mode:
    support: full
    details: The module only reads; it runs the same in check mode.
  diff_mode:
    support: N/A
    details: The module changes nothing.
  platform:
    support: full
    platforms: posix
    details: Linux hosts.
"""

    # Modules that run on the target and may change it: each states its own check mode support; no diff.
    TARGET_MODULE = r"""
options: {}
attributes:
  diff_mode:
    support: none
    details: The module reports no diff.
  platform:
    support: full
    platforms: posix
    details: Linux hosts.
"""

    # Actions implemented by an action plugin that runs on the controller and contacts no inventory host.
    CONTROLLER_ACTION = r"""
options: {}
attributes:
  action:
    description: Has an action plugin of the same name, which runs on the controller.
    support: full
    details: The action plugin is the whole implementation; the module file holds its documentation only.
  diff_mode:
    support: none
    details: The action reports no diff.
  platform:
    support: full
    platforms: posix
    details: Runs on the controller; it contacts no inventory host.
"""
