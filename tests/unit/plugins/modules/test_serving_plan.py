# -*- coding: utf-8 -*-
"""The serving_plan module: success returns the plan, a bad inventory fails with every problem, dest is idempotent."""

from __future__ import annotations

import json

import pytest

from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args

from ansible_collections.inference.deepseek_v4.plugins.modules import serving_plan

HOSTS = [{"name": "node1", "groups": ["prefill", "decode", "router"], "address": "10.0.0.11"}]


class ExitJson(Exception):
    pass


class FailJson(Exception):
    pass


def exit_json(self, **kwargs):  # pylint: disable=unused-argument
    raise ExitJson(kwargs)


def fail_json(self, **kwargs):  # pylint: disable=unused-argument
    raise FailJson(kwargs)


def run(monkeypatch, args, check_mode=False):
    args = dict(args, _ansible_check_mode=check_mode)
    monkeypatch.setattr(basic.AnsibleModule, "exit_json", exit_json)
    monkeypatch.setattr(basic.AnsibleModule, "fail_json", fail_json)
    with patch_module_args(args), pytest.raises((ExitJson, FailJson)) as exc:
        serving_plan.main()
    return exc.value.args[0], isinstance(exc.value, FailJson)


def test_returns_the_plan(monkeypatch):
    result, failed = run(monkeypatch, {"settings": {"topology": "h200_pd"}, "hosts": HOSTS})
    assert not failed and result["changed"] is False
    assert [s["role"] for s in result["plan"]["services"]] == ["prefill", "decode", "router"]
    assert any(line.startswith("docker run --gpus all") for line in result["summary"])


def test_fails_with_every_problem(monkeypatch):
    result, failed = run(monkeypatch, {"settings": {"image": "vllm/vllm-openai:latest", "router_port": 8000},
                                       "hosts": HOSTS})
    assert failed
    assert "no host was changed" in result["msg"]
    variables = {p["variable"] for p in result["problems"]}
    assert "plan_image" in variables and any("port 8000" in p["message"] for p in result["problems"])


def test_dest_is_written_once_and_not_in_check_mode(monkeypatch, tmp_path):
    dest = tmp_path / "out" / "plan.json"
    args = {"settings": {}, "hosts": HOSTS, "dest": str(dest)}
    result, _failed = run(monkeypatch, args, check_mode=True)
    assert result["changed"] is True and not dest.exists()
    result, _failed = run(monkeypatch, args)
    assert result["changed"] is True and json.loads(dest.read_text())["topology"] == "h200_pd"
    assert oct(dest.stat().st_mode & 0o777) == "0o644"
    result, _failed = run(monkeypatch, args)
    assert result["changed"] is False


def test_hosts_required_without_the_action_plugin(monkeypatch):
    result, failed = run(monkeypatch, {"settings": {}})
    assert failed and "hosts is required" in result["msg"]
