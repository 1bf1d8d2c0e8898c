# -*- coding: utf-8 -*-
"""Every wrong inventory of tests/fixtures/bad_inputs/cases.yml is refused by the serving plan, in-process and before
any host is contacted: the refusal names the case's variable, carries its fix, and comes in well under 5 s."""

from __future__ import annotations

import json
import os
import time
from unittest.mock import MagicMock

import pytest
import yaml

from ansible.parsing.dataloader import DataLoader
from ansible.playbook.play_context import PlayContext
from ansible.template import Templar

from ansible_collections.inference.deepseek_v4.plugins.action.serving_plan import ActionModule

CASES_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "fixtures", "bad_inputs",
                          "cases.yml")
with open(CASES_FILE, encoding="utf-8") as _f:
    CORPUS = yaml.safe_load(_f)
CASES = CORPUS["cases"]
TOPOLOGIES = ("single_node", "single_node_tp", "single_node_tep", "multi_node_dep", "h200_pd", "h200_pd_nixl",
              "gb200_pd_cluster", "lmcache_tp8")
LIMIT_S = 5.0


def inventory(case):
    """(groups, hostvars) as Ansible hands them to the action: every host's variables include group all's."""
    hosts = CORPUS["inventories"][case.get("inventory") or CORPUS["default_inventory"][case["topology"]]]
    groups, hostvars = {}, {}
    for i, (name, host) in enumerate(hosts.items()):
        for group in host["groups"]:
            groups.setdefault(group, []).append(name)
        hostvars[name] = dict(case.get("vars") or {}, ansible_host="192.0.2.%d" % (10 + i), **host.get("vars", {}))
        hostvars[name].update((case.get("host_vars") or {}).get(name, {}))
    return groups, hostvars


def run_action(case):
    """The serving_plan action as roles/plan calls it: the plan_* variables in scope, the hosts from the inventory."""
    settings = {k[len("plan_"):]: v for k, v in (case.get("vars") or {}).items()}
    settings["topology"] = case["topology"]
    groups, hostvars = inventory(case)
    task = MagicMock()
    task.args = {"settings": settings}
    task.check_mode = False
    task.async_val = 0
    task.action = "inference.deepseek_v4.serving_plan"
    connection = MagicMock()
    loader = DataLoader()
    action = ActionModule(task=task, connection=connection, play_context=PlayContext(), loader=loader,
                          templar=Templar(loader=loader), shared_loader_obj=None)
    started = time.monotonic()
    result = action.run(task_vars={"groups": groups, "hostvars": hostvars})
    return result, time.monotonic() - started, connection


def test_the_corpus_covers_every_topology():
    assert len(CASES) >= 150
    assert len({c["id"] for c in CASES}) == len(CASES), "case ids are unique"
    covered = {c["topology"] for c in CASES}
    assert set(TOPOLOGIES) <= covered, set(TOPOLOGIES) - covered
    for case in CASES:
        assert case.get("variable") and case.get("fix"), case["id"]


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_refused_naming_the_variable_and_the_fix(case):
    result, elapsed, connection = run_action(case)
    assert result.get("failed"), "%s was not refused: %s" % (case["id"], result.get("summary"))
    assert "plan" not in result
    assert "no host was changed" in result["msg"]
    naming = [p for p in result["problems"] if case["variable"] in (p["variable"] or "").split(" / ")]
    assert naming, "no problem names %s:\n%s" % (case["variable"], result["msg"])
    fixing = [p for p in naming if case["fix"] in p["fix"]]
    assert fixing, "no problem of %s has a fix with %r:\n%s" % (case["variable"], case["fix"], result["msg"])
    # the message a person reads names the variable and the fix on one line
    assert any(case["variable"] in line and "Fix: " in line and case["fix"] in line.split("Fix: ", 1)[1]
               for line in result["msg"].splitlines()), result["msg"]
    if case.get("secret"):
        shown = result["msg"] + json.dumps(result["problems"], default=str)
        assert case["secret"] not in shown, "the refusal shows the secret of %s" % case["id"]
    assert not connection.method_calls, "a host was contacted"
    assert elapsed < LIMIT_S, "%s took %.2f s" % (case["id"], elapsed)
