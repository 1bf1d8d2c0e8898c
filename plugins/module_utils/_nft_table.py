# -*- coding: utf-8 -*-
# Copyright: inference.deepseek_v4 maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

# PRIVATE to this collection (module nft_table): may change without notice.
"""One nftables table and its boot unit, in one call: check, compare, write, apply, enable, verify."""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

import os
from typing import TYPE_CHECKING, Any

from ansible_collections.inference.deepseek_v4.plugins.module_utils import _files

if TYPE_CHECKING:
    from ansible.module_utils.basic import AnsibleModule


def differs(path: str, content: str) -> bool:
    """Whether the file at PATH is missing or holds something else than CONTENT."""
    try:
        with open(path, "rb") as handle:
            return handle.read() != content.encode("utf-8")
    except FileNotFoundError:
        return True


def live_table(module: AnsibleModule, nft: str, family: str, table: str) -> str:
    """The live table's listing; empty where it does not exist."""
    rc, out, err = module.run_command([nft, "list", "table", family, table])
    if rc != 0 and "No such file or directory" not in err:
        module.fail_json(msg="nft list table %s %s failed: %s" % (family, table, err.strip()))
    return out if rc == 0 else ""


def unit_state(module: AnsibleModule, systemctl: str, unit: str) -> tuple[bool, bool]:
    """(enabled, active) of UNIT."""
    enabled = module.run_command([systemctl, "is-enabled", "--quiet", unit])[0] == 0
    active = module.run_command([systemctl, "is-active", "--quiet", unit])[0] == 0
    return enabled, active


def _must(module: AnsibleModule, argv: list[str], what: str) -> None:
    rc, out, err = module.run_command(argv)
    if rc != 0:
        module.fail_json(msg="%s failed (%s): %s" % (what, " ".join(argv), (err or out).strip()))


def run(module: AnsibleModule) -> None:
    p = module.params
    result: dict[str, Any] = dict(changed=False, valid=True, check_stderr="", file_changed=False, applied=False,
                                  unit_changed=False, unit_started=False, nft_missing=False)
    nft = module.get_bin_path("nft")
    if nft is None:
        if not module.check_mode:
            module.fail_json(msg="nft is not installed on this host (package nftables)", **result)
        result.update(changed=True, file_changed=True, applied=True, unit_changed=True, unit_started=True,
                      nft_missing=True)
        module.exit_json(**result)
    rc, _out, err = module.run_command([nft, "-c", "-f", "/dev/stdin"], data=p["content"], binary_data=True)
    if rc != 0:
        result.update(valid=False, check_stderr=err.strip())
        module.exit_json(**result)
    marker = '"%s"' % p["marker"]
    unit_path = os.path.join(p["unit_dir"], p["unit_name"])
    systemctl = module.get_bin_path("systemctl", required=True)
    enabled, active = unit_state(module, systemctl, p["unit_name"])
    result["file_changed"] = differs(p["path"], p["content"])
    result["applied"] = result["file_changed"] or marker not in live_table(module, nft, p["family"], p["table"])
    result["unit_changed"] = differs(unit_path, p["unit_content"])
    result["unit_started"] = not (enabled and active)
    result["changed"] = any(result[k] for k in ("file_changed", "applied", "unit_changed", "unit_started"))
    if module.check_mode or not result["changed"]:
        module.exit_json(**result)
    if result["file_changed"]:
        _files.write_atomic(module, p["path"], p["content"], 0o644)
    if result["applied"]:
        _must(module, [nft, "-f", p["path"]], "Applying the table")
    if result["unit_changed"]:
        _files.write_atomic(module, unit_path, p["unit_content"], 0o644)
        _must(module, [systemctl, "daemon-reload"], "Reloading systemd")
    if not enabled:
        _must(module, [systemctl, "enable", "--quiet", p["unit_name"]], "Enabling the unit")
    if not active:
        _must(module, [systemctl, "start", p["unit_name"]], "Starting the unit")
    if marker not in live_table(module, nft, p["family"], p["table"]):
        module.fail_json(msg="the live table %s %s does not carry %s after nft -f" % (p["family"], p["table"], marker),
                         **result)
    module.exit_json(**result)
