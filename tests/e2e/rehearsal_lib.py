"""Driving scripts/rehearse.sh from the end-to-end tests: availability, the run, its timing, its PLAY RECAP.

Shared by tests/e2e/test_rehearsal.py (h200_pd, the main job), test_faults.py and
test_rehearsal_gb200_pd_cluster.py (TOPOLOGY=gb200_pd_cluster).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
REHEARSE = ROOT / "scripts" / "rehearse.sh"
REQUIRE = os.environ.get("DSV4_REQUIRE_REHEARSAL") == "1"


def _run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, **kw, check=False)


def _unavailable():
    """Why the rehearsal cannot run here, or None."""
    if not shutil.which("docker") or _run(["docker", "info"]).returncode != 0:
        return "no running Docker engine"
    image = os.environ.get("DSV4_REHEARSAL_IMAGE") or _run(
        ["bash", str(ROOT / "scripts" / "build-rehearsal-image.sh"), "--print"]).stdout.strip()
    if not image or _run(["docker", "image", "inspect", image]).returncode != 0:
        return f"rehearsal engine image {image or '?'} not built (scripts/build-rehearsal-image.sh)"
    base = _run(["bash", str(ROOT / "scripts" / "build-base-image.sh"), "--print"]).stdout.strip()
    if _run(["docker", "image", "inspect", base]).returncode != 0:
        return f"base image {base} not built (scripts/build-base-image.sh)"
    return None


def _env(topology=None):
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
    if topology:
        env["TOPOLOGY"] = topology
    if "ANSIBLE_PLAYBOOK" not in env:
        local = Path(sys.executable).with_name("ansible-playbook")
        if local.exists():
            env["ANSIBLE_PLAYBOOK"] = str(local)
    return env


def rehearse(*args, timeout=1800, topology=None):
    """[TOPOLOGY=...] scripts/rehearse.sh ARGS; on a timeout the whole process group (ansible-playbook included)
    is killed."""
    proc = subprocess.Popen(["bash", str(REHEARSE), *args], cwd=ROOT, env=_env(topology), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
        pytest.fail(f"rehearse.sh {' '.join(args)} ran past {timeout}s:\n{stdout[-6000:]}\n{stderr[-3000:]}")
    assert proc.returncode == 0, f"rehearse.sh {' '.join(args)} failed:\n{stdout[-6000:]}\n{stderr[-3000:]}"
    return stdout


def timed_rehearse(timings, step, *args, **kw):
    start = time.monotonic()
    try:
        return rehearse(*args, **kw)
    finally:
        timings[step] = round(time.monotonic() - start, 1)
        print(f"{step:<16} {timings[step]:7.1f} s", flush=True)


def recap(output):
    """{host: {ok, changed, failed, ...}} from the last PLAY RECAP of an ansible-playbook run."""
    block = output.rsplit("PLAY RECAP", 1)[-1]
    hosts = {}
    for host, counts in re.findall(r"^(\S+)\s+:\s+(.*)$", block, re.M):
        hosts[host] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", counts)}
    assert hosts, "no PLAY RECAP in the output"
    return hosts


MODEL = "deepseek-ai/DeepSeek-V4-Flash"
MODES = {"non_think": None, "think_high": {"thinking": True, "reasoning_effort": "high"},
         "think_max": {"thinking": True, "reasoning_effort": "max"}}


def seed_requests_pass(base_url, api_key="EMPTY", verify=True):
    """The recipe's OpenAI client example, once per reasoning mode, at base_url (the router, or the endpoint proxy
    with its bearer key; verify=False for a self-signed certificate)."""
    import httpx2
    from openai import OpenAI
    client = OpenAI(base_url=base_url, api_key=api_key, timeout=60, max_retries=0,
                    http_client=httpx2.Client(verify=verify, timeout=60))
    try:
        for kwargs in MODES.values():
            extra = {"chat_template_kwargs": kwargs} if kwargs else None
            resp = client.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": "What is 17*19? Return only the final integer."}],
                max_tokens=64, temperature=1.0, top_p=1.0, extra_body=extra)
            if not resp.choices or not (resp.choices[0].message.content or "").strip():
                return False
        return True
    except Exception:  # any failure: not recovered yet
        return False
    finally:
        client.close()


def restart_docker_daemon():
    """The Docker engine stops, its containers with it, and starts again: the engines and the node come back by their
    restart policies (the node is a container of the same engine here), the router and the guard with the node's
    systemd, in whatever order the engine restarts them."""
    if os.path.isdir("/run/systemd/system"):
        assert _run(["systemctl", "restart", "docker"]).returncode == 0
        return
    pids = _run(["pgrep", "-x", "dockerd"]).stdout.split()
    assert pids, "no dockerd to restart"
    _run(["kill", "-TERM", *pids])
    deadline = time.monotonic() + 120
    while _run(["pgrep", "-x", "dockerd"]).returncode == 0 and time.monotonic() < deadline:
        time.sleep(1)
    started = _run(["bash", str(ROOT / "scripts" / "ensure-docker.sh")])
    assert started.returncode == 0, started.stderr
