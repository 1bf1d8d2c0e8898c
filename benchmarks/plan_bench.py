#!/usr/bin/env python
# -*- coding: utf-8 -*-
"""Plans a 64-host gb200_pd_cluster inventory and prints the wall time (target: under 5 s).

Two figures: the plan engine alone (median of several runs), and the real path a user takes:
`ansible-playbook playbooks/plan.yml` on a generated inventory (one run, controller only).

    python3 benchmarks/plan_bench.py [--hosts 64] [--runs 20]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, ".collections"))

from ansible_collections.inference.deepseek_v4.plugins.module_utils._plan import build_plan  # noqa: E402


def inventory(n_hosts):
    trays = n_hosts - 1
    prefill = trays // 2
    hosts = []
    for i in range(trays):
        role = "prefill" if i < prefill else "decode"
        hosts.append({"name": "gb200-%02d" % i, "groups": [role], "address": "10.2.%d.%d" % (i // 200, i % 200 + 10)})
    hosts.append({"name": "router-1", "groups": ["router"], "address": "10.2.9.1", "gpu_count": 0})
    return hosts


def write_inventory(path, hosts):
    lines = ["all:", "  children:", "    deepseek_v4:", "      children:"]
    for group in ("prefill", "decode", "router"):
        lines += ["        %s:" % group, "          hosts:"]
        for h in hosts:
            if group in h["groups"]:
                lines.append("            %s: {ansible_host: %s%s}" % (
                    h["name"], h["address"], ", plan_gpu_count: 0" if group == "router" else ""))
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hosts", type=int, default=64)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--no-playbook", action="store_true", help="time only the engine")
    args = ap.parse_args()

    hosts = inventory(args.hosts)
    settings = {"topology": "gb200_pd_cluster"}
    times = []
    for _run in range(args.runs):
        start = time.perf_counter()
        plan = build_plan(settings, hosts)
        times.append(time.perf_counter() - start)
    engines = sum(1 for s in plan["services"] if s["kind"] == "engine")
    print("hosts: %d (%d engines, 1 router)" % (args.hosts, engines))
    print("engine build_plan: median %.4f s, max %.4f s over %d runs" % (statistics.median(times), max(times),
                                                                         args.runs))
    if args.no_playbook:
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        inv = os.path.join(tmp, "hosts.yml")
        write_inventory(inv, hosts)
        gv = os.path.join(tmp, "group_vars")
        os.makedirs(gv)
        with open(os.path.join(gv, "all.yml"), "w", encoding="utf-8") as f:
            f.write("plan_topology: gb200_pd_cluster\nplan_hardware: gb200\n")
        ansible_playbook = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
        if not os.path.exists(ansible_playbook):
            ansible_playbook = "ansible-playbook"
        start = time.perf_counter()
        proc = subprocess.run([ansible_playbook, "playbooks/plan.yml", "-i", inv, "-e", "deepseek_v4_plan_dir=%s" % tmp,
                               "-e", "deepseek_v4_plan_print=false"], cwd=ROOT, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            print(proc.stdout[-3000:], proc.stderr[-3000:])
            return 1
        with open(os.path.join(tmp, "plan.json"), encoding="utf-8") as f:
            written = json.load(f)
        print("ansible-playbook playbooks/plan.yml: %.2f s wall (%d services in plan.json)" % (
            wall, len(written["services"])))
        print("target: under 5 s -> %s" % ("met" if wall < 5 else "MISSED"))
        return 0 if wall < 5 else 1


if __name__ == "__main__":
    sys.exit(main())
