# -*- coding: utf-8 -*-
# Copyright: inference.deepseek_v4 contributors
# Apache License 2.0 (see LICENSE)
"""inference.deepseek_v4.serving_plan: computes the plan on the controller from the inventory; contacts no host.

The implementation of the module of the same name (whose file holds its documentation only).
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

from ansible.plugins.action import ActionBase

from ansible_collections.inference.deepseek_v4.plugins.module_utils._plan import (
    PlanError,
    build_plan,
    plan_json,
    summary_lines,
    topology_groups,
    write_if_changed,
)
from ansible_collections.inference.deepseek_v4.plugins.module_utils._plan.profiles import (
    HOST_SETTINGS,
    SETTINGS,
    VAR_PREFIX,
)


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("settings", "hosts", "dest", "api_key_required"))

    def _host_entry(self, name: str, groups: list[str], hostvars: Mapping[str, Any],
                    settings: Mapping[str, Any]) -> dict[str, Any]:
        """The plan's view of one inventory host: its groups, its per-host settings, any plan_* variable of its
        own that no table knows (refused by the plan, with the closest real name; one the play's settings carry
        too is reported once, there), and any whole-plan setting whose value on this host differs from the
        play's (refused: it would be ignored)."""
        entry = {"name": name, "groups": groups}
        for key, value in hostvars.items():
            if not key.startswith(VAR_PREFIX):
                continue
            short = key[len(VAR_PREFIX):]
            if short in HOST_SETTINGS or (short not in SETTINGS and short not in settings):
                entry[short] = self._templar.template(value)
            elif short in SETTINGS:
                value = self._templar.template(value)
                if value != settings.get(short, SETTINGS[short]["default"]):
                    entry[short] = value
        if "address" not in entry:
            entry["address"] = self._templar.template(hostvars.get("ansible_host", name))
        return entry

    def _inventory_hosts(self, settings: Mapping[str, Any], task_vars: Mapping[str, Any]) -> list[dict[str, Any]]:
        groups = task_vars.get("groups", {})
        hostvars = task_vars.get("hostvars", {})
        members = {}
        for _role, group in topology_groups(settings):
            for name in groups.get(group, []):
                members.setdefault(name, []).append(group)
        return [self._host_entry(name, member_of, hostvars[name], settings)
                for name, member_of in members.items()]

    def run(self, tmp: Optional[str] = None, task_vars: Optional[dict[str, Any]] = None) -> dict[str, Any]:
        result = super(ActionModule, self).run(tmp, task_vars)
        task_vars = task_vars or {}
        _valid, args = self.validate_argument_spec(argument_spec=dict(
            settings=dict(type="dict", default={}),
            hosts=dict(type="list", elements="dict"),
            dest=dict(type="path"),
            api_key_required=dict(type="bool", default=False),
        ))
        settings = dict(args["settings"] or {})
        hosts = args["hosts"]
        if hosts is None:
            hosts = self._inventory_hosts(settings, task_vars)
        try:
            plan = build_plan(settings, hosts, api_key=args["api_key_required"])
        except PlanError as exc:
            result.update(failed=True, msg=exc.summary(), problems=[p.as_dict() for p in exc.problems])
            return result
        for warning in plan["warnings"]:
            self._display.warning(warning)
        result.update(changed=False, plan=plan, summary=summary_lines(plan))
        if args["dest"]:
            # The plan is written on the controller, where this action runs.
            result["dest"] = args["dest"]
            result["changed"] = write_if_changed(args["dest"], plan_json(plan), self._task.check_mode)
        return result
