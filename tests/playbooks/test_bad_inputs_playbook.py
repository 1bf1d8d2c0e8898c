# -*- coding: utf-8 -*-
"""The real playbooks/h200_pd.yml refuses a wrong inventory in its plan step, before any host is contacted.

One case of tests/fixtures/bad_inputs/cases.yml per topology family, written as an inventory whose hosts are
unreachable (192.0.2.x, TEST-NET-1): the run fails with the plan's message naming the variable and the fix, no host
is reported UNREACHABLE (none was tried), only localhost is in the recap, and it takes seconds.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
with open(os.path.join(ROOT, "tests", "fixtures", "bad_inputs", "cases.yml"), encoding="utf-8") as _f:
    CORPUS = yaml.safe_load(_f)
BY_ID = {c["id"]: c for c in CORPUS["cases"]}
# One per topology family: Mooncake pair, NIXL pair, router without engines, single-node, GB200 cluster, LMCache,
# multi-node DEP.
CASE_IDS = ["h200_pd-overlapping-gpu-sets", "h200_pd_nixl-decode-side-channel-inside-the-prefill-range",
            "h200_pd-router-without-engines", "single_node-api-port-moved-by-an-extra-flag",
            "gb200_pd_cluster-dp-rpc-port-inside-the-side-channel-range",
            "lmcache_tp8-second-replica-http-port-on-the-first-engine", "multi_node_dep-one-node"]
WALL_LIMIT_S = 60


def ansible_playbook():
    local = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
    venv = os.path.join(ROOT, ".venv", "bin", "ansible-playbook")
    for candidate in (local, venv):
        if os.path.exists(candidate):
            return candidate
    return shutil.which("ansible-playbook")


def write_inventory(case, where):
    """The case as an inventory directory: hosts.yml (unreachable addresses) and group_vars/all.yml."""
    hosts = CORPUS["inventories"][case.get("inventory") or CORPUS["default_inventory"][case["topology"]]]
    inventory = {"all": {"hosts": {}, "children": {}}}
    for i, (name, host) in enumerate(hosts.items()):
        entry = dict(host.get("vars", {}), ansible_host="192.0.2.%d" % (10 + i), ansible_connection="ssh")
        entry.update((case.get("host_vars") or {}).get(name, {}))
        inventory["all"]["hosts"][name] = entry
        for group in host["groups"]:
            inventory["all"]["children"].setdefault(group, {"hosts": {}})["hosts"][name] = None
    (where / "group_vars").mkdir(parents=True)
    (where / "hosts.yml").write_text(yaml.safe_dump(inventory, sort_keys=False))
    group_vars = dict(case.get("vars") or {}, plan_topology=case["topology"])
    (where / "group_vars" / "all.yml").write_text(yaml.safe_dump(group_vars, sort_keys=False))


def run_playbook(inventory):
    """(output, wall seconds) of playbooks/h200_pd.yml on the inventory; its return code must be non-zero."""
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_TIMEOUT="5", ANSIBLE_RETRY_FILES_ENABLED="0")
    started = time.monotonic()
    proc = subprocess.run([ansible_playbook(), "playbooks/h200_pd.yml", "-i", str(inventory)], cwd=ROOT,
                          capture_output=True, text=True, env=env, check=False, timeout=WALL_LIMIT_S * 2)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    return out, time.monotonic() - started


def test_a_valid_inventory_of_the_same_addresses_does_reach_for_its_hosts(tmp_path):
    """The control: once the plan passes, the playbook tries the (unreachable) hosts and says so."""
    case = {"topology": "h200_pd", "inventory": "pd_one_host"}
    write_inventory(case, tmp_path / "inventory")
    out, _wall = run_playbook(tmp_path / "inventory")
    assert "UNREACHABLE" in out and "The serving plan was refused" not in out, out


@pytest.mark.parametrize("case_id", CASE_IDS)
def test_refused_in_the_plan_step_before_any_host(case_id, tmp_path):
    case = BY_ID[case_id]
    write_inventory(case, tmp_path / "inventory")
    out, wall = run_playbook(tmp_path / "inventory")
    assert "UNREACHABLE" not in out, out
    assert "The serving plan was refused" in out and "no host was changed" in out, out
    assert any(case["variable"] in line and "Fix: " in line and case["fix"] in line.split("Fix: ", 1)[1]
               for line in out.splitlines()), out
    recap = [line.split()[0] for line in out.split("PLAY RECAP")[1].splitlines() if ": ok=" in line]
    assert recap == ["localhost"], out
    assert wall < WALL_LIMIT_S, "%s took %.1f s" % (case_id, wall)
