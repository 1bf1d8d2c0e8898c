# -*- coding: utf-8 -*-
# Copyright: inference.deepseek_v4 contributors
# Apache License 2.0 (see LICENSE)
"""Controller side of inference.deepseek_v4.serving_plan: reads the hosts from the inventory, contacts none."""

from __future__ import annotations

from ansible.plugins.action import ActionBase

from ansible_collections.inference.deepseek_v4.plugins.module_utils.plan_engine import (
    PlanError,
    build_plan,
    plan_json,
    summary_lines,
    write_if_changed,
)
from ansible_collections.inference.deepseek_v4.plugins.module_utils.plan_profiles import (
    HOST_SETTINGS,
    SETTINGS,
    TOPOLOGIES,
)

HOST_VAR_PREFIX = "plan_"


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("settings", "hosts", "dest"))

    def _inventory_hosts(self, settings, task_vars):
        topology = settings.get("topology") or SETTINGS["topology"]
        wanted = TOPOLOGIES.get(topology, {}).get("groups", ("prefill", "decode", "router", "serving"))
        group_names = {g: settings.get("%s_group" % g) or SETTINGS["%s_group" % g] for g in wanted}
        groups = task_vars.get("groups", {})
        hostvars = task_vars.get("hostvars", {})
        hosts = []
        seen = {}
        for role in wanted:
            for name in groups.get(group_names[role], []):
                if name not in seen:
                    seen[name] = {"name": name, "groups": []}
                    hosts.append(seen[name])
                seen[name]["groups"].append(group_names[role])
        for entry in hosts:
            hv = hostvars[entry["name"]]
            for key in HOST_SETTINGS:
                value = hv.get(HOST_VAR_PREFIX + key)
                if value is not None:
                    entry[key] = self._templar.template(value)
            if "address" not in entry:
                entry["address"] = self._templar.template(hv.get("ansible_host", entry["name"]))
        return hosts

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        task_vars = task_vars or {}
        valid, args = self.validate_argument_spec(argument_spec=dict(
            settings=dict(type="dict", default={}),
            hosts=dict(type="list", elements="dict"),
            dest=dict(type="path"),
        ))
        settings = dict(args["settings"] or {})
        hosts = args["hosts"]
        if hosts is None:
            hosts = self._inventory_hosts(settings, task_vars)
        try:
            plan = build_plan(settings, hosts)
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
