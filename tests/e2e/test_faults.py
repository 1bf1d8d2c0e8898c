"""Fault tests of the h200_pd rehearsal: the endpoint heals itself, and a re-run repairs what the guard did not.

One rollout (scripts/rehearse.sh), then each fault in turn while a bounded request loop sends a few chat requests
a second through the router: the prefill's main process killed (-9), the decode's, the router's, the node restarted
(its systemd brings the router and the guard back), the Docker daemon restarted (every container stops and comes
back by its restart policy, the node's included; this test must be the Docker engine's only user). Recovery is
the time until the seed's three reasoning-mode requests (the openai client, as the recipe's example) succeed through
the router again; the loop's failures during
it are counted, and afterwards exactly one container per engine and one unit each for the router and the guard
exist. Last, with the guard stopped, a killed prefill leaves the router stale (every request fails, /readiness says
ready); a playbook re-run repairs it (the router's readiness gate sends a real request and restarts it) and ends
with a passing smoke test, and the run after that reports changed=0.

`make e2e` runs it (markers slow, rehearsal); the table of figures is printed (`pytest -rP`).
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time

import pytest
import test_rehearsal
from rehearsal_lib import ROOT, recap, rehearse
from rehearsal_lib import restart_docker_daemon
from rehearsal_lib import seed_requests_pass as lib_seed_requests_pass
from test_rehearsal import NODE, PREFILL, DECODE, ROUTER_UNIT

# The rehearsal's fixture: destroyed before and after, also when a step fails.
clean_rehearsal = test_rehearsal.clean_rehearsal

pytestmark = [pytest.mark.rehearsal, pytest.mark.slow, pytest.mark.docker]

ROUTER = "http://127.0.0.1:30000/v1"
MODEL = "deepseek-ai/DeepSeek-V4-Flash"
GUARD_UNIT = "deepseek-v4-guard.service"
RECOVERY_TIMEOUT = int(os.environ.get("DSV4_FAULT_RECOVERY_TIMEOUT", "900"))


def sh(*cmd):
    return subprocess.run(list(cmd), capture_output=True, text=True, check=False)


def seed_requests_pass():
    """The recipe's OpenAI client example, once per reasoning mode, through the router."""
    return lib_seed_requests_pass(ROUTER)


class RequestLoop(threading.Thread):
    """A few requests a second through the router until stopped; records (time, ok)."""

    def __init__(self, rate=2.0):
        threading.Thread.__init__(self, daemon=True)
        self.period = 1.0 / rate
        self.results = []
        self.halt = threading.Event()

    def run(self):
        import urllib.request
        body = json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "Hello"}],
                           "max_tokens": 4}).encode()
        while not self.halt.is_set():
            start = time.monotonic()
            req = urllib.request.Request(ROUTER + "/chat/completions", data=body,
                                         headers={"Content-Type": "application/json"}, method="POST")
            try:
                with urllib.request.urlopen(req, timeout=30) as resp:
                    ok = resp.status == 200
            except Exception:
                ok = False
            self.results.append((start, ok))
            self.halt.wait(max(0.0, self.period - (time.monotonic() - start)))

    def stop(self):
        self.halt.set()
        self.join(60)
        return len(self.results), sum(1 for _start, ok in self.results if not ok)


def wait_recovered(since):
    deadline = since + RECOVERY_TIMEOUT
    while time.monotonic() < deadline:
        if seed_requests_pass():
            return round(time.monotonic() - since, 1)
        time.sleep(2)
    pytest.fail(f"the endpoint did not recover within {RECOVERY_TIMEOUT}s")


def main_pid(name):
    return sh("docker", "inspect", "-f", "{{.State.Pid}}", name).stdout.strip()


def node_exec(*cmd):
    return sh("docker", "exec", NODE, *cmd)


def assert_nothing_duplicated():
    for name in (PREFILL, DECODE):
        ids = sh("docker", "ps", "-aq", "--filter", f"label=inference.deepseek_v4.service={name}").stdout.split()
        assert len(ids) == 1, f"{name}: {len(ids)} containers"
        assert sh("docker", "inspect", "-f", "{{.State.Running}}", name).stdout.strip() == "true"
    for unit in (ROUTER_UNIT, GUARD_UNIT):
        listed = node_exec("systemctl", "list-units", "--all", "--no-legend", unit).stdout.strip().splitlines()
        assert len(listed) == 1 and "running" in listed[0], f"{unit}: {listed}"


def changed_tasks(output):
    """The TASK headers of the tasks an ansible-playbook run reported changed (or rescued) on some host."""
    tasks, task = [], None
    for line in output.splitlines():
        if line.startswith("TASK ["):
            task = line.rstrip(" *")
        elif (line.startswith("changed:") or "rescued" in line.lower()) and task and task not in tasks:
            tasks.append(task)
    return tasks


def kill_container_main(name):
    pid = main_pid(name)
    assert pid and pid != "0", f"{name} is not running"
    sh("kill", "-9", pid)


FAULTS = [
    ("prefill crash", lambda: kill_container_main(PREFILL)),
    ("decode crash", lambda: kill_container_main(DECODE)),
    ("router crash", lambda: node_exec("systemctl", "kill", "-s", "KILL", ROUTER_UNIT)),
    ("node restart", lambda: sh("docker", "restart", NODE)),
    ("docker daemon restart", restart_docker_daemon),
]


def test_the_endpoint_heals_itself_and_a_rerun_repairs(clean_rehearsal):  # pylint: disable=redefined-outer-name
    rehearse()
    assert seed_requests_pass()
    assert_nothing_duplicated()
    table = []
    for name, inject in FAULTS:
        loop = RequestLoop()
        loop.start()
        time.sleep(3)
        start = time.monotonic()
        inject()
        time.sleep(5)  # the fault takes effect (a process restarts, a health URL goes down)
        seconds = wait_recovered(start)
        time.sleep(3)
        sent, failed = loop.stop()
        table.append((name, seconds, sent, failed))
        print(f"{name:<24} recovered in {seconds:7.1f} s; requests {sent}, failed {failed}", flush=True)
        assert_nothing_duplicated()

    # Without the guard a killed prefill leaves the router stale; a re-run repairs it.
    node_exec("systemctl", "stop", GUARD_UNIT)
    kill_container_main(PREFILL)
    deadline = time.monotonic() + RECOVERY_TIMEOUT
    while time.monotonic() < deadline:
        time.sleep(5)
        if sh("curl", "-fsS", "http://localhost:8000/health").returncode == 0:
            break
    time.sleep(10)
    stale = not seed_requests_pass()
    assert stale, "a killed prefill did not leave the router stale: the repair below proves nothing"
    start = time.monotonic()
    out = rehearse()
    repair = round(time.monotonic() - start, 1)
    counts = recap(out)
    assert all(c["failed"] == 0 for c in counts.values()), counts
    summary = json.loads((ROOT / "rehearsal-out" / "smoke-summary.json").read_text())
    assert summary["passed"] is True
    assert seed_requests_pass()
    print(f"{'re-run repair':<24} {repair:7.1f} s (router stale before: {stale})", flush=True)
    out = rehearse()
    changed = changed_tasks(out)
    assert all(c["changed"] == 0 and c["failed"] == 0 for c in recap(out).values()), (recap(out), changed)
    assert_nothing_duplicated()
    print("\n| fault | recovery (s) | requests | failed |\n| --- | --- | --- | --- |")
    for name, seconds, sent, failed in table:
        print(f"| {name} | {seconds} | {sent} | {failed} |")
