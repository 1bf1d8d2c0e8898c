# -*- coding: utf-8 -*-
"""playbooks/plan.yml end to end: controller only, plan.json as specified, bad inventories refused clearly."""

from __future__ import annotations

import json
import os
import shutil
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
INVENTORIES = ["h200_pd", "h200_pd_nixl", "single_node", "gb200_pd_cluster", "lmcache_tp8", "multi_node_dep"]
SERVICE_KEYS = {"host", "name", "kind", "role", "image", "argv", "env", "gpus", "ports", "container", "url",
                "health_url", "start_order", "after", "restart_with", "plan_hash", "command", "entrypoint"}


def ansible_playbook():
    local = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
    return local if os.path.exists(local) else shutil.which("ansible-playbook")


def play(*args):
    env = dict(os.environ, ANSIBLE_NOCOLOR="1")
    return subprocess.run([ansible_playbook(), "playbooks/plan.yml", *args], cwd=ROOT, capture_output=True,
                          text=True, env=env, check=False)


@pytest.mark.parametrize("inventory", INVENTORIES)
def test_plan_json_for_every_example_inventory(inventory, tmp_path):
    proc = play("-i", "inventories/%s" % inventory, "-e", "deepseek_v4_plan_dir=%s" % tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    plan = json.loads((tmp_path / "plan.json").read_text())
    assert plan["topology"] == inventory
    for svc in plan["services"]:
        assert SERVICE_KEYS <= set(svc), SERVICE_KEYS - set(svc)
        first = {"engine": plan["model"], "router": "vllm-router", "lmcache": "lmcache"}[svc["kind"]]
        assert svc["argv"][0] == first
    # every service is printed as the command a person would type
    for svc in plan["services"]:
        assert svc["command"].split("\n")[0] in proc.stdout
    # the controller only: no inventory host appears in the recap
    recap = [line.split()[0] for line in proc.stdout.split("PLAY RECAP")[1].splitlines() if ": ok=" in line]
    assert recap == ["localhost"]


def test_bad_inventory_is_refused_with_every_problem(tmp_path):
    proc = play("-i", "inventories/h200_pd", "-e", '{"plan_image": "vllm/vllm-openai:latest", "plan_max_model_len": 4096}',
                "-e", "deepseek_v4_plan_dir=%s" % tmp_path)
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "plan_image" in out and "plan_max_model_len" in out and "no host was changed" in out
    assert not (tmp_path / "plan.json").exists()


def test_second_run_changes_nothing(tmp_path):
    first = play("-i", "inventories/gb200_pd_cluster", "-e", "deepseek_v4_plan_dir=%s" % tmp_path, "-e", "deepseek_v4_plan_print=false")
    second = play("-i", "inventories/gb200_pd_cluster", "-e", "deepseek_v4_plan_dir=%s" % tmp_path, "-e", "deepseek_v4_plan_print=false")
    # plan.json and scrape-targets.json written once, then left alone
    assert "changed=2" in first.stdout and "changed=0" in second.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plan.json", "scrape-targets.json"]


def test_misspelt_setting_in_group_vars_is_refused_before_any_host(tmp_path):
    """A typo in group_vars (or in a host's variables) is refused, naming the closest real setting."""
    shutil.copytree(os.path.join(ROOT, "inventories", "h200_pd"), tmp_path / "inv")
    with open(tmp_path / "inv" / "group_vars" / "all.yml", "a", encoding="utf-8") as f:
        f.write("plan_max_model_length: 131072\n")
    (tmp_path / "inv" / "host_vars").mkdir()
    (tmp_path / "inv" / "host_vars" / "h200-node-1.yml").write_text("plan_prefil_gpus: [0, 1, 2, 3]\n")
    proc = play("-i", str(tmp_path / "inv"), "-e", "deepseek_v4_plan_dir=%s" % tmp_path)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    assert "plan_max_model_length" in out and "did you mean plan_max_model_len?" in out
    assert "plan_prefil_gpus" in out and "did you mean plan_prefill_gpus?" in out
    assert "(2 problems)" in out and not (tmp_path / "plan.json").exists()


def test_check_mode_reports_without_writing(tmp_path):
    proc = play("-i", "inventories/h200_pd", "--check", "-e", "deepseek_v4_plan_dir=%s" % tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # plan.json and scrape-targets.json reported, neither written
    assert "changed=2" in proc.stdout and not any(tmp_path.iterdir())


def test_the_module_file_is_documentation_only():
    """One implementation: the action plugin; the module file carries the documentation."""
    with open(os.path.join(ROOT, "plugins", "modules", "serving_plan.py"), encoding="utf-8") as f:
        text = f.read()
    code = text.replace("from __future__ import annotations", "")
    assert "DOCUMENTATION" in text and "def " not in code and "import " not in code
