#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: inference.deepseek_v4 maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: nft_table
short_description: Check, write and apply one nftables table, and the systemd unit that applies it at boot
version_added: 0.1.0
description:
  - Checks the ruleset O(content) with C(nft -c) (in check mode too). A ruleset nftables refuses is neither written nor
    applied; the module then returns RV(valid=false) and nftables' message instead of failing, so that the caller can
    name its own settings in the fix.
  - Writes O(content) to O(path) (mode 0644) when the file differs, and applies it with C(nft -f) when the file
    changed or the live table O(family) O(table) does not carry O(marker) (its comment, the digest of its rules, so
    that a table changed or deleted by hand is put back). C(nft -f) runs the file as one transaction.
  - Writes the unit O(unit_content) as O(unit_name) in O(unit_dir) when it differs (then reloads systemd), enables and
    starts it, then reads the live table back and fails unless it carries O(marker).
  - One connection per host for what is otherwise eight tasks (the role C(cluster_firewall) runs it once per host).
    Removing the table and the unit is the role's C(absent) path.
author:
  - inference.deepseek_v4 maintainers (!UNKNOWN)
extends_documentation_fragment:
  - inference.deepseek_v4._attributes
  - inference.deepseek_v4._attributes.target_module
attributes:
  check_mode:
    support: full
    details: Checks the ruleset and reads the live table, the file and the unit; writes, applies and starts nothing,
      and reports what a real run would change. Without C(nft) on the host it reports every step as a change.
  platform:
    details: Linux hosts with nftables and systemd.
options:
  content:
    description: The whole ruleset file, as C(nft -f) reads it.
    type: str
    required: true
  path:
    description: The ruleset file. Its directory is created (mode 0755) where missing.
    type: path
    required: true
  table:
    description: Name of the table the ruleset defines.
    type: str
    required: true
  family:
    description: Family of that table.
    type: str
    default: inet
  marker:
    description: Text the live table's listing carries when it is the one O(content) defines (its comment).
    type: str
    required: true
  unit_name:
    description: File name of the systemd unit that applies O(path) at boot (C(deepseek-v4-cluster-firewall.service)).
    type: str
    required: true
  unit_content:
    description: The unit file.
    type: str
    required: true
  unit_dir:
    description: Where the unit file goes.
    type: path
    default: /etc/systemd/system
"""

EXAMPLES = r"""
- name: Apply the table and enable the unit that applies it at boot
  inference.deepseek_v4.nft_table:
    content: "{{ lookup('ansible.builtin.template', 'cluster-firewall.nft.j2') }}"
    path: /etc/deepseek-v4/deepseek-v4-cluster-firewall.nft
    table: deepseek_v4
    marker: "inference.deepseek_v4 cluster_firewall sha256:{{ rules | hash('sha256') }}"
    unit_name: deepseek-v4-cluster-firewall.service
    unit_content: "{{ lookup('ansible.builtin.template', 'cluster-firewall.service.j2') }}"
  register: applied

- name: Refuse a ruleset nftables does not accept
  ansible.builtin.fail:
    msg: "nft -c refused the table: {{ applied.check_stderr }}"
  when: not applied.valid
"""

RETURN = r"""
valid:
  description: Whether C(nft -c) accepted O(content) (true where C(nft) is missing, in check mode).
  returned: always
  type: bool
check_stderr:
  description: What C(nft -c) said when it refused O(content).
  returned: always
  type: str
file_changed:
  description: Whether O(path) was (or would be) written.
  returned: always
  type: bool
applied:
  description: Whether the table was (or would be) applied with C(nft -f).
  returned: always
  type: bool
unit_changed:
  description: Whether the unit file was (or would be) written.
  returned: always
  type: bool
unit_started:
  description: Whether the unit was (or would be) enabled or started.
  returned: always
  type: bool
nft_missing:
  description: Whether C(nft) was not found on the host (check mode only; a real run fails).
  returned: always
  type: bool
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.inference.deepseek_v4.plugins.module_utils import _nft_table

ARGUMENT_SPEC = dict(
    content=dict(type="str", required=True),
    path=dict(type="path", required=True),
    table=dict(type="str", required=True),
    family=dict(type="str", default="inet"),
    marker=dict(type="str", required=True, no_log=False),
    unit_name=dict(type="str", required=True),
    unit_content=dict(type="str", required=True),
    unit_dir=dict(type="path", default="/etc/systemd/system"),
)


def main() -> None:
    _nft_table.run(AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True))


if __name__ == "__main__":
    main()
