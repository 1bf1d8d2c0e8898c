# -*- coding: utf-8 -*-
"""The serving_plan action (its one implementation): success returns the plan, a bad inventory fails with every
problem, dest is idempotent and untouched in check mode, the hosts come from the inventory when omitted."""

from __future__ import annotations

import json
from unittest.mock import MagicMock

from ansible.parsing.dataloader import DataLoader
from ansible.playbook.play_context import PlayContext
from ansible.template import Templar

from ansible_collections.inference.deepseek_v4.plugins.action.serving_plan import ActionModule

HOSTS = [{"name": "node1", "groups": ["prefill", "decode", "router"], "address": "10.0.0.11"}]


def run(args, check_mode=False, task_vars=None):
    task = MagicMock()
    task.args = args
    task.check_mode = check_mode
    task.async_val = 0
    task.action = "inference.deepseek_v4.serving_plan"
    loader = DataLoader()
    action = ActionModule(task=task, connection=MagicMock(), play_context=PlayContext(), loader=loader,
                          templar=Templar(loader=loader), shared_loader_obj=None)
    return action.run(task_vars=task_vars or {})


def test_returns_the_plan():
    result = run({"settings": {"topology": "h200_pd"}, "hosts": HOSTS})
    assert not result.get("failed") and result["changed"] is False
    assert [s["role"] for s in result["plan"]["services"]] == ["prefill", "decode", "router"]
    assert any(line.startswith("docker run --gpus all") for line in result["summary"])


def test_fails_with_every_problem():
    result = run({"settings": {"image": "vllm/vllm-openai:latest", "router_port": 8000}, "hosts": HOSTS})
    assert result["failed"]
    assert "no host was changed" in result["msg"]
    variables = {p["variable"] for p in result["problems"]}
    assert "plan_image" in variables and any("port 8000" in p["message"] for p in result["problems"])
    assert all(set(p) == {"host", "variable", "check", "found", "needed", "message", "fix"} for p in result["problems"])


def test_dest_is_written_once_and_not_in_check_mode(tmp_path):
    dest = tmp_path / "out" / "plan.json"
    args = {"settings": {}, "hosts": HOSTS, "dest": str(dest)}
    result = run(dict(args), check_mode=True)
    assert result["changed"] is True and not dest.exists()
    result = run(dict(args))
    assert result["changed"] is True and json.loads(dest.read_text())["topology"] == "h200_pd"
    assert oct(dest.stat().st_mode & 0o777) == "0o600"
    result = run(dict(args))
    assert result["changed"] is False
    # a plan an older version left readable by others is made the owner's only, content unchanged
    dest.chmod(0o644)
    assert run(dict(args), check_mode=True)["changed"] is True and oct(dest.stat().st_mode & 0o777) == "0o644"
    assert run(dict(args))["changed"] is True and oct(dest.stat().st_mode & 0o777) == "0o600"
    assert run(dict(args))["changed"] is False


def test_hosts_come_from_the_inventory_when_omitted():
    task_vars = {"groups": {"prefill": ["node1"], "decode": ["node1"], "router": ["node1"]},
                 "hostvars": {"node1": {"ansible_host": "10.0.0.11", "plan_prefill_gpus": [0, 1, 2, 3]}}}
    result = run({"settings": {"topology": "h200_pd"}}, task_vars=task_vars)
    assert not result.get("failed"), result.get("msg")
    assert result["plan"]["hosts"]["node1"]["address"] == "10.0.0.11"
    misspelt = dict(task_vars, hostvars={"node1": {"ansible_host": "10.0.0.11", "plan_prefil_gpus": [0, 1]}})
    result = run({"settings": {"topology": "h200_pd"}}, task_vars=misspelt)
    assert result["failed"] and "plan_prefill_gpus" in result["msg"]


def test_a_whole_plan_setting_given_to_one_host_is_refused():
    groups = {"prefill": ["node1"], "decode": ["node1"], "router": ["node1"]}
    # The same value as the play's (group_vars/all reaches both): nothing to say.
    same = {"groups": groups, "hostvars": {"node1": {"ansible_host": "10.0.0.11", "plan_max_model_len": 393216,
                                                     "plan_topology": "h200_pd"}}}
    result = run({"settings": {"topology": "h200_pd", "max_model_len": 393216}}, task_vars=same)
    assert not result.get("failed"), result.get("msg")
    # Only this host's variables set it (host_vars, or group_vars of the prefill group): it would be ignored.
    own = {"groups": groups, "hostvars": {"node1": {"ansible_host": "10.0.0.11", "plan_max_model_len": 131072}}}
    result = run({"settings": {"topology": "h200_pd"}}, task_vars=own)
    assert result["failed"]
    (problem,) = [p for p in result["problems"] if p["variable"] == "plan_max_model_len"]
    assert problem["host"] == "node1" and problem["found"] == 131072
    assert "whole plan" in problem["message"] and "group_vars/all" in problem["fix"]


def test_the_api_key_reaches_the_plan_as_a_flag_only():
    """roles/plan passes api_key_required (whether deepseek_v4_api_key is set); the key in the task variables never
    reaches the plan, its summary or its JSON."""
    secret = "sk-action-secret-5150"
    serving = [{"name": "node1", "groups": ["serving"], "address": "10.0.0.11"}]
    result = run({"settings": {"topology": "single_node"}, "hosts": serving, "api_key_required": True},
                 task_vars={"deepseek_v4_api_key": secret})
    assert not result.get("failed")
    assert result["plan"]["api_key"]["required_by"] == ["deepseek-v4-engine"]
    assert secret not in json.dumps(result)
    off = run({"settings": {"topology": "single_node"}, "hosts": serving})
    assert off["plan"]["api_key"]["set"] is False and off["plan"]["services"][0]["secret_env"] == {}
