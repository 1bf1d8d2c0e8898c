#!/usr/bin/env python
"""Rehearsal rollout time: Ansible (playbooks/h200_pd.yml) against a bare shell script.

Runs on the local Docker engine (see tests/rehearsal/inventory/):
  1. from a clean node: scripts/rehearse.sh (the real playbook)            -> first run
  2. scripts/rehearse.sh again (nothing to change)                          -> no-op re-run
  3. from a clean node: a bare shell script with the same container and router commands, generated from the
     same plan (docker run of the engines that can start together - prefill and decode - with the plan's
     argv/env/volumes, then a health wait on each, python3-venv + pip
     install of the pinned vllm-router in the node, the router under systemd-run, a readiness wait and one
     chat request through the router)                                        -> bare
Both timed runs start from a node that exists (scripts/rehearse.sh --node, not timed), as the bare script does.
Prints the times, Ansible/bare and no-op/first ratios, the seconds the rollout takes beyond the bare script, and the
ten costliest tasks of the first and of the no-op run (wall seconds, hosts, from benchmarks/callback_plugins/
task_profile.py). Leaves the rehearsal destroyed.

    python benchmarks/rehearsal_bench.py [--keep-script FILE]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NODE = os.environ.get("DSV4_REHEARSAL_NODE", "deepseek-v4-rehearsal-node")


def env():
    e = dict(os.environ, ANSIBLE_NOCOLOR="1")
    local = Path(sys.executable).with_name("ansible-playbook")
    if "ANSIBLE_PLAYBOOK" not in e and local.exists():
        e["ANSIBLE_PLAYBOOK"] = str(local)
    e.setdefault("DSV4_REHEARSAL_IMAGE", subprocess.run(
        ["bash", "scripts/build-rehearsal-image.sh", "--print"], cwd=ROOT, capture_output=True, text=True,
        check=True).stdout.strip())
    e["DSV4_REHEARSAL_NODE"] = NODE
    return e


def profiled(environ, profile):
    """ENVIRON with the per-task profile of the run going to PROFILE (benchmarks/callback_plugins/task_profile.py)."""
    return dict(environ, ANSIBLE_CALLBACK_PLUGINS=str(ROOT / "benchmarks" / "callback_plugins"),
                ANSIBLE_CALLBACKS_ENABLED="task_profile", DSV4_TASK_PROFILE=str(profile))


def print_profile(title, profile, top=10):
    """The TOP costliest tasks of a run's profile, by wall seconds."""
    data = json.loads(Path(profile).read_text())
    tasks = sorted(data["tasks"], key=lambda t: -t["wall_s"])
    print(f"{title}: {len(data['tasks'])} tasks, {sum(t['results'] for t in data['tasks'])} host results, "
          f"{data['wall_s']:.1f} s; the {top} costliest:")
    print("| wall s | hosts | results | changed | task |")
    print("| ---: | ---: | ---: | ---: | --- |")
    for t in tasks[:top]:
        print(f"| {t['wall_s']:.1f} | {t['hosts']} | {t['results']} | {t['changed']} | {t['task']} |")


def timed(cmd, environ=None, **kw):
    start = time.monotonic()
    result = subprocess.run(cmd, cwd=ROOT, env=environ or env(), capture_output=True, text=True, **kw,
                            check=False)
    elapsed = time.monotonic() - start
    if result.returncode != 0:
        sys.exit(f"{' '.join(map(str, cmd))} failed:\n{result.stdout[-4000:]}\n{result.stderr[-2000:]}")
    return elapsed


def plan_json():
    with tempfile.TemporaryDirectory() as d:
        playbook = Path(env().get("ANSIBLE_PLAYBOOK", "ansible-playbook"))
        subprocess.run([str(playbook), "-i", "tests/rehearsal/inventory", "playbooks/plan.yml", "-e", f"deepseek_v4_plan_dir={d}",
                        "-e", "deepseek_v4_plan_print=false"], cwd=ROOT, env=env(), check=True, capture_output=True)
        return json.loads((Path(d) / "plan.json").read_text())


def _docker_run(svc, home):
    """`docker run` of one engine of the plan, as a person would type it."""
    c = svc["container"]
    parts = ["docker", "run", "-d", "--name", svc["name"], "--network", c["network_mode"], "--ipc", c["ipc_mode"],
             "--restart", "unless-stopped"]
    for v in c["volumes"]:
        parts += ["-v", v.replace("~/", home + "/", 1)]
    for k, v in svc["env"].items():
        parts += ["-e", f"{k}={v}"]
    parts += [svc["image"], *svc["argv"]]
    return " ".join(shlex.quote(p) for p in parts)


def bare_script(plan):
    """The commands a person would type for the same rollout (rehearsal doubles: no GPU, no privileged)."""
    q = shlex.quote
    home = "/root"
    lines = ["#!/usr/bin/env bash", "set -euo pipefail",
             "wait_url() { for _ in $(seq 600); do curl -sf -o /dev/null \"$1\" && return 0; sleep 1; done; return 1; }"]
    engines = sorted((s for s in plan["services"] if s["kind"] == "engine"), key=lambda s: s["start_order"])
    # As a person with two terminals would: every engine of one start order at once, then wait for each.
    for _order, group in itertools.groupby(engines, key=lambda s: s["start_order"]):
        group = list(group)
        lines += [_docker_run(svc, home) for svc in group]
        lines += [f"wait_url {q(svc['health_url'])}" for svc in group]
    router = next(s for s in plan["services"] if s["kind"] == "router")
    venv = "/opt/deepseek-v4/router-venv"
    cert = os.environ.get("PIP_CERT", "")
    if cert:
        lines.append(f"docker cp {q(cert)} {NODE}:/tmp/pip-ca.crt")
    pip_env = "PIP_CERT=/tmp/pip-ca.crt " if cert else ""
    inner = (f"apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null && "
             f"python3 -m venv {venv} && {pip_env}{venv}/bin/pip install -q vllm-router=={plan['router_version']}")
    lines.append(f"docker exec {NODE} sh -c {q(inner)}")
    argv = [f"{venv}/bin/{router['argv'][0]}", *router["argv"][1:]]
    lines.append(f"docker exec {NODE} systemd-run --unit {q(router['name'])} -p Restart=on-failure "
                 + " ".join(q(a) for a in argv))
    lines.append(f"wait_url {q(router['health_url'])}")
    body = json.dumps({"model": plan["model"], "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 8})
    lines.append(f"curl -sf {q(plan['endpoint']['url'] + '/v1/chat/completions')} -H 'Content-Type: application/json' "
                 f"-d {q(body)} >/dev/null")
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep-script", help="also write the bare script here")
    args = parser.parse_args()

    rehearse = ["bash", "scripts/rehearse.sh"]
    profiles = Path(tempfile.mkdtemp(prefix="rehearsal-bench-"))
    timed(rehearse + ["--destroy"])
    timed(rehearse + ["--node"])
    first = timed(rehearse, profiled(env(), profiles / "first.json"))
    noop = timed(rehearse, profiled(env(), profiles / "noop.json"))
    plan = plan_json()
    timed(rehearse + ["--destroy"])

    script = bare_script(plan)
    if args.keep_script:
        Path(args.keep_script).write_text(script)
    timed(rehearse + ["--node"])
    with tempfile.NamedTemporaryFile("w", suffix=".sh", delete=False) as f:
        f.write(script)
    try:
        bare = timed(["bash", f.name])
    finally:
        os.unlink(f.name)
        for svc in plan["services"]:
            if svc["kind"] == "engine":
                subprocess.run(["docker", "rm", "-f", svc["name"]], capture_output=True, check=False)
        timed(rehearse + ["--destroy"])

    print(f"ansible rollout (first run): {first:8.1f} s")
    print(f"bare shell script          : {bare:8.1f} s")
    print(f"ansible / bare             : {first / bare:8.2f}")
    print(f"ansible - bare             : {first - bare:8.1f} s")
    print(f"ansible no-op re-run       : {noop:8.1f} s")
    print(f"no-op / first run          : {noop / first:8.2f}")
    print()
    print_profile("first run", profiles / "first.json")
    print()
    print_profile("no-op re-run", profiles / "noop.json")


if __name__ == "__main__":
    main()
