# -*- coding: utf-8 -*-
"""The deploy playbooks: one per topology family, each a thin import of playbooks/deploy.yml.

Run against the example inventories with every host phase skipped by tag (the plan play is tagged `always`), so no
inventory host is contacted: the plan's host groups are read from the output, and an entry playbook given another
topology's inventory is refused in the plan play.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PHASES = "preflight,rdma,weights,firewall,engines,router,guard,proxy,monitoring,smoke,transport,benchmark"
# entry playbook -> (topologies it deploys, an example inventory of each)
ENTRY = {
    "h200_pd": ["h200_pd", "h200_pd_nixl"],
    "single_node": ["single_node"],
    "lmcache": ["lmcache_tp8"],
    "gb200_pd_cluster": ["gb200_pd_cluster"],
    "multi_node_dep": ["multi_node_dep"],
}
INVENTORIES = sorted({inv for invs in ENTRY.values() for inv in invs})


def ansible_playbook():
    local = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
    return local if os.path.exists(local) else shutil.which("ansible-playbook")


def run(playbook, inventory):
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"))
    return subprocess.run([ansible_playbook(), "playbooks/%s.yml" % playbook, "-i", "inventories/%s" % inventory,
                           "--skip-tags", PHASES, "-e", "deepseek_v4_plan_print=false"],
                          cwd=ROOT, capture_output=True, text=True, env=env, check=False)


def groups(stdout):
    """The add_host loop labels of the plan role: `group: host`."""
    found = {}
    for group, host in re.findall(r"\(item=(deepseek_v4_\w+): ([\w.-]+)\)", stdout):
        found.setdefault(group, []).append(host)
    return found


def recap_hosts(stdout):
    return [line.split()[0] for line in stdout.split("PLAY RECAP")[1].splitlines() if ": ok=" in line]


def test_every_phase_targets_a_plan_group_and_has_its_tag():
    with open(os.path.join(ROOT, "playbooks", "deploy.yml")) as f:
        plays = yaml.safe_load(f)
    # Untagged (always): the plan, the read of each host's record, the record written at the end.
    assert [play["hosts"] for play in plays if play["tags"] == ["always"]] == [
        "localhost", "deepseek_v4_hosts:!deepseek_v4_deploy_hosts", "deepseek_v4_record_hosts"]
    targets = {play["tags"][0]: play["hosts"] for play in plays if play["tags"] != ["always"]}
    # The phases that change hosts run only where the read found a difference (or tags select them); the
    # verification runs every time.
    deploy = ":&deepseek_v4_deploy_hosts"
    assert targets == {
        "preflight": "deepseek_v4_engine_hosts" + deploy,
        "rdma": "deepseek_v4_transfer_hosts" + deploy,
        "weights": "deepseek_v4_engine_hosts" + deploy,
        "firewall": "deepseek_v4_hosts" + deploy,
        "router": "deepseek_v4_router_hosts" + deploy,
        "engines": "deepseek_v4_engine_hosts" + deploy,
        "guard": "deepseek_v4_hosts" + deploy,
        "proxy": "deepseek_v4_endpoint_hosts" + deploy,
        "monitoring": "deepseek_v4_hosts" + deploy,
        "smoke": "deepseek_v4_endpoint_hosts",
        "transport": "deepseek_v4_transfer_hosts",
        "benchmark": "deepseek_v4_endpoint_hosts",
    }
    assert all(play["gather_facts"] is False for play in plays)


@pytest.mark.parametrize("entry", sorted(ENTRY))
def test_entry_playbooks_only_import_deploy(entry):
    with open(os.path.join(ROOT, "playbooks", "%s.yml" % entry)) as f:
        (play,) = yaml.safe_load(f)
    assert play["ansible.builtin.import_playbook"] == "deploy.yml"
    assert play["vars"]["deepseek_v4_playbook_topologies"][: len(ENTRY[entry])] == ENTRY[entry]


def test_groups_follow_the_plan():
    proc = run("deploy", "gb200_pd_cluster")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    g = groups(proc.stdout)
    trays = ["gb200-prefill-1", "gb200-prefill-2", "gb200-decode-1", "gb200-decode-2"]
    assert sorted(g["deepseek_v4_engine_hosts"]) == sorted(trays)
    assert sorted(g["deepseek_v4_transfer_hosts"]) == sorted(trays)
    assert g["deepseek_v4_router_hosts"] == ["router-1"]
    assert g["deepseek_v4_endpoint_hosts"] == ["router-1"]
    assert sorted(g["deepseek_v4_hosts"]) == sorted(trays + ["router-1"])
    # One group per engine role: the pools playbooks/upgrade.yml walks.
    assert sorted(g["deepseek_v4_prefill_hosts"]) == trays[:2] and sorted(g["deepseek_v4_decode_hosts"]) == trays[2:]
    assert recap_hosts(proc.stdout) == ["localhost"]


def test_no_transfer_and_no_router_where_the_plan_has_none():
    proc = run("single_node", "single_node")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    g = groups(proc.stdout)
    assert g["deepseek_v4_engine_hosts"] == g["deepseek_v4_hosts"]
    assert g["deepseek_v4_endpoint_hosts"][0] in g["deepseek_v4_engine_hosts"]
    assert "deepseek_v4_transfer_hosts" not in g and "deepseek_v4_router_hosts" not in g
    assert g["deepseek_v4_single_hosts"] == g["deepseek_v4_hosts"]


@pytest.mark.parametrize("entry,inventory", [("single_node", "h200_pd"), ("h200_pd", "gb200_pd_cluster"),
                                             ("lmcache", "single_node"), ("multi_node_dep", "lmcache_tp8")])
def test_an_entry_playbook_refuses_another_topology(entry, inventory):
    proc = run(entry, inventory)
    assert proc.returncode != 0
    out = " ".join((proc.stdout + proc.stderr).split())
    assert "This playbook deploys %s" % ", ".join(ENTRY[entry]) in out
    assert "set plan_topology to one of" in out
    assert recap_hosts(proc.stdout) == ["localhost"]


def test_upgrade_walks_the_pools_in_the_order_of_the_restart_relations():
    """playbooks/upgrade.yml: the plan first, then the plan's upgrade waves (on gb200_pd_cluster: decode, prefill,
    the decodes that restart with a prefill), each in serial batches stopped by max_fail_percentage; the router,
    guards and smoke test after. The order comes from the plan (its restart relations), not from role names."""
    with open(os.path.join(ROOT, "playbooks", "upgrade.yml")) as f:
        text = f.read()
    plays = yaml.safe_load(text)
    assert "[prefill]" not in text and "[decode]" not in text and "'prefill'" not in text and "'decode'" not in text
    assert plays[0]["hosts"] == "localhost" and plays[0]["tags"] == ["always"]
    batches = [p for p in plays if "serial" in p]
    assert [p["hosts"] for p in batches] == ["deepseek_v4_upgrade_wave_%d" % n for n in range(1, 5)]
    for n, play in enumerate(batches):
        assert play["serial"] == "{{ deepseek_v4_upgrade_serial | default(1) }}", play["name"]
        assert play["max_fail_percentage"] == "{{ deepseek_v4_upgrade_max_fail_percentage | default(0) }}"
        (role,) = play["roles"]
        assert role["role"] == "inference.deepseek_v4.upgrade", play["name"]
        assert "deepseek_v4_plan.upgrade_waves[%d].roles" % n in role["upgrade_service_roles"], play["name"]
    rest = [p["hosts"] for p in plays[plays.index(batches[-1]) + 1:]]
    assert rest == ["deepseek_v4_engine_hosts", "deepseek_v4_router_hosts", "deepseek_v4_hosts",
                    "deepseek_v4_endpoint_hosts"]
    proc = run("upgrade", "gb200_pd_cluster")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    g = groups(proc.stdout)
    prefill, decode = ["gb200-prefill-1", "gb200-prefill-2"], ["gb200-decode-1", "gb200-decode-2"]
    assert [g.get("deepseek_v4_upgrade_wave_%d" % n) for n in range(1, 5)] == [decode, prefill, decode, None]
    proc = run("upgrade", "lmcache_tp8")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    g = groups(proc.stdout)
    assert g["deepseek_v4_upgrade_wave_1"] == g["deepseek_v4_engine_hosts"]
    assert "deepseek_v4_upgrade_wave_2" not in g


def test_upgrade_contacts_no_host_when_every_phase_is_skipped():
    proc = run("upgrade", "gb200_pd_cluster")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert recap_hosts(proc.stdout) == ["localhost"]
