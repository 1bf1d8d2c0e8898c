# -*- coding: utf-8 -*-
"""The router's systemd unit and launcher (roles/vllm_router/templates) as the template module renders them: a flag
whose value is a secret (the plan's secret_args) is read from the 0600 environment file, in the router's own
process; the unit, the launcher and the command line never hold the key. The role writes that file 0600 under a
0700 directory (tasks/service_secrets.yml, checked here from the task itself)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jinja2
import pytest
import yaml

from ansible_collections.inference.deepseek_v4.plugins.module_utils._plan import build_plan
from ansible_collections.inference.deepseek_v4.plugins.module_utils._plan import profiles as P

ROLE = Path(__file__).resolve().parents[2] / "roles" / "vllm_router"
HOSTS = [{"name": "node1", "groups": ["prefill", "decode", "router"], "address": "10.0.0.11"}]
VENV = "/opt/deepseek-v4/router-venv"


def render(name, svc, plan, secret_env=None, **extra):
    """The template rendered with the template module's settings (trim_blocks, Ansible's match test, to_json)."""
    env = jinja2.Environment(trim_blocks=True, keep_trailing_newline=True, undefined=jinja2.StrictUndefined)
    env.tests["match"] = lambda value, pattern: re.match(pattern, value) is not None
    env.filters["to_json"] = json.dumps
    text = (ROLE / "templates" / name).read_text()
    values = dict(ansible_managed="managed", _vllm_router_svc=svc, _vllm_router_unit_argv=svc["argv"],
                  vllm_router_plan=plan, vllm_router_venv=VENV, vllm_router_secret_dir="/etc/deepseek-v4",
                  _vllm_router_secret_env=secret_env or {})
    values.update(extra)
    return env.from_string(text).render(**values)


def router(monkeypatch, forwards):
    monkeypatch.setattr(P, "ROUTER_FORWARDS_API_KEY", ("0.1.17",) if forwards else ())
    plan = build_plan({"topology": "h200_pd"}, HOSTS, api_key=True)
    return [s for s in plan["services"] if s["kind"] == "router"][0], plan


def exec_start(unit):
    (line,) = [x for x in unit.splitlines() if x.startswith("ExecStart=")]
    return line[len("ExecStart="):].split(" ")


def test_without_secret_flags_the_unit_runs_the_plan_argv(monkeypatch):
    svc, plan = router(monkeypatch, forwards=False)
    unit = render("vllm-router.service.j2", svc, plan)
    assert exec_start(unit) == [VENV + "/bin/vllm-router"] + svc["argv"][1:]
    assert "EnvironmentFile" not in unit and "api-key" not in unit
    assert "\n\nRestart=on-failure" in unit, "the unit keeps its layout"


def test_secret_flags_come_from_the_environment_file_through_the_launcher(monkeypatch):
    svc, plan = router(monkeypatch, forwards=True)
    assert svc["secret_args"] == {"--api-key": "deepseek_v4_api_key"}
    secret_env = {"--api-key": "DEEPSEEK_V4_API_KEY"}
    unit = render("vllm-router.service.j2", svc, plan, secret_env)
    assert "EnvironmentFile=/etc/deepseek-v4/deepseek-v4-router.env" in unit.splitlines()
    assert exec_start(unit) == [VENV + "/bin/python", VENV + "/bin/deepseek-v4-router-launch"] + svc["argv"][1:]
    assert "--api-key" not in unit and "\n\nRestart=on-failure" in unit
    launcher = render("vllm-router-launch.py.j2", svc, plan, secret_env)
    compile(launcher, "launcher", "exec")
    assert 'SECRET_ARGS = {"--api-key": "DEEPSEEK_V4_API_KEY"}' in launcher
    assert "os.environ[variable]" in launcher


def test_the_environment_file_is_written_0600_root_only_and_never_shown():
    tasks = yaml.safe_load((ROLE / "tasks" / "service_secrets.yml").read_text())
    by_name = {t["name"].split(" - ")[0]: t for t in tasks}
    secret_file = by_name["Write the router's secret environment file (0600)"]
    assert secret_file["no_log"] is True
    assert secret_file["ansible.builtin.copy"]["mode"] == "0600"
    assert secret_file["ansible.builtin.copy"]["owner"] == "root"
    assert by_name["Create the directory of the router's secret files"]["ansible.builtin.file"]["mode"] == "0700"
    service = yaml.safe_load((ROLE / "tasks" / "service.yml").read_text())
    assert "service_secrets.yml" in [t.get("ansible.builtin.import_tasks") for t in service]


@pytest.mark.parametrize("forwards", [False, True])
def test_the_standby_unit_runs_the_standby_argv_and_is_never_enabled(monkeypatch, forwards):
    """The standby router's unit (started only by playbooks/upgrade.yml): the plan's standby argv, the router's secret
    file and launcher, no [Install] section (nothing enables it)."""
    svc, plan = router(monkeypatch, forwards=forwards)
    main = render("vllm-router.service.j2", svc, plan)
    standby = render("vllm-router.service.j2", svc, plan, _vllm_router_unit_argv=svc["standby"]["argv"],
                     _vllm_router_standby=True)
    argv = exec_start(standby)
    assert argv[argv.index("--port") + 1] == "30001" and argv[argv.index("--prometheus-port") + 1] == "29001"
    assert "[Install]" in main and "[Install]" not in standby and "WantedBy" not in standby
    assert ("EnvironmentFile" in standby) == forwards == ("EnvironmentFile" in main)
    assert exec_start(standby)[:2] == exec_start(main)[:2]


def test_the_unit_is_hardened_from_the_role_defaults(monkeypatch):
    """The role's hardening table, user and sandboxing become directives; a newline in a value cannot add one."""
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    svc, plan = router(monkeypatch, forwards=False)
    unit = render("vllm-router.service.j2", svc, plan, vllm_router_user=defaults["vllm_router_user"],
                  vllm_router_unit_hardening=dict(defaults["vllm_router_unit_hardening"],
                                                  UMask="0077\nExecStartPre=/bin/sh"),
                  vllm_router_unit_sandboxing=True)
    lines = unit.splitlines()
    for line in ("User=deepseek-v4-router", "NoNewPrivileges=yes", "CapabilityBoundingSet=", "ProtectSystem=strict",
                 "PrivateTmp=yes", "ProtectHome=yes", "SystemCallArchitectures=native"):
        assert line in lines, line
    assert not [x for x in lines if x.startswith("ExecStartPre")]
    bare = render("vllm-router.service.j2", svc, plan, vllm_router_user="", vllm_router_unit_hardening={},
                  vllm_router_unit_sandboxing=False)
    assert "User=" not in bare and "ProtectSystem" not in bare
