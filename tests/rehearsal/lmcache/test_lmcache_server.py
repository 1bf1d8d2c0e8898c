"""The real LMCache MP server, started from the plan of inventories/lmcache_tp8, on a machine without a GPU.

The image (scripts/build-lmcache-image.sh: the pinned `lmcache` CLI on the CPU build of torch) runs the plan's
LMCache service as the vllm_engine role does: `entrypoint` + `args` on the host network. The plan is computed
from the example inventory with a small L1 (1 GB) and free ports, so the argv carries `--port` and `--http-port`.
Asserted: GET /healthcheck answers 200 {"status": "healthy"} and the ZMQ port accepts connections.

Skipped when Docker is missing or the image cannot be built, unless DSV4_REQUIRE_REHEARSAL=1 (then it fails).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
import yaml

from ansible_collections.inference.deepseek_v4.plugins.module_utils._plan import build_plan

ROOT = Path(__file__).resolve().parents[3]
INVENTORY = ROOT / "inventories" / "lmcache_tp8"
BUILD = ROOT / "scripts" / "build-lmcache-image.sh"
REQUIRE = os.environ.get("DSV4_REQUIRE_REHEARSAL") == "1"
READY_TIMEOUT = 120

pytestmark = [pytest.mark.slow, pytest.mark.rehearsal, pytest.mark.docker]


def unavailable(reason):
    if REQUIRE:
        pytest.fail("LMCache rehearsal required (DSV4_REQUIRE_REHEARSAL=1) but %s" % reason)
    pytest.skip("LMCache rehearsal skipped: %s (set DSV4_REQUIRE_REHEARSAL=1 to make this an error)" % reason)


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def inventory_plan(**overrides):
    """The plan of inventories/lmcache_tp8 (its plan_* group variables and its serving hosts) with overrides."""
    group_vars = yaml.safe_load((INVENTORY / "group_vars" / "all.yml").read_text(encoding="utf-8"))
    hosts_yml = yaml.safe_load((INVENTORY / "hosts.yml").read_text(encoding="utf-8"))["all"]
    settings = {k[len("plan_"):]: v for k, v in group_vars.items() if k.startswith("plan_")}
    settings.update(overrides)
    serving = hosts_yml["children"]["deepseek_v4"]["children"]["serving"]["hosts"]
    hosts = [{"name": name, "groups": ["serving"], "address": (hosts_yml["hosts"].get(name) or {}).get("ansible_host")}
             for name in serving]
    return build_plan(settings, hosts)


def http_get(url):
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read().decode("utf-8")
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode("utf-8", "replace")


@pytest.fixture(scope="module")
def image():
    docker = shutil.which("docker")
    if docker is None or subprocess.run([docker, "info"], capture_output=True, check=False).returncode != 0:
        unavailable("no Docker engine answers")
    tag = subprocess.run(["bash", str(BUILD), "--print"], check=True, capture_output=True, text=True).stdout.strip()
    built = subprocess.run(["bash", str(BUILD)], capture_output=True, text=True, check=False)
    if built.returncode != 0:
        unavailable("scripts/build-lmcache-image.sh failed: %s" % (built.stderr or built.stdout)[-2000:])
    return tag


@pytest.fixture()
def lmcache_service():
    zmq, http = free_port(), free_port()
    plan = inventory_plan(lmcache_l1_size_gb=1, lmcache_port=zmq, lmcache_http_port=http)
    servers = [s for s in plan["services"] if s["kind"] == "lmcache"]
    assert len(servers) == 1
    return servers[0]


def test_plan_argv_starts_the_real_server(image, lmcache_service):
    svc = lmcache_service
    zmq, http = svc["ports"]["lmcache_zmq"], svc["ports"]["lmcache_http"]
    assert svc["entrypoint"] == ["lmcache"]
    # --http-host 127.0.0.1: the plan keeps the HTTP API (/env, /run_script) on loopback (profiles.HARDENING)
    assert svc["args"] == ["server", "--l1-size-gb", "1", "--eviction-policy", "LRU", "--port", str(zmq),
                           "--http-port", str(http), "--http-host", "127.0.0.1"]
    assert svc["container"]["network_mode"] == "host"
    name = "dsv4-lmcache-test-%s" % uuid.uuid4().hex[:8]
    run = ["docker", "run", "-d", "--name", name, "--network", "host", "--entrypoint", svc["entrypoint"][0], image]
    subprocess.run(run + svc["args"], check=True, capture_output=True, text=True)
    try:
        deadline, status, body = time.monotonic() + READY_TIMEOUT, None, ""
        while time.monotonic() < deadline:
            try:
                status, body = http_get(svc["health_url"].replace("localhost", "127.0.0.1"))
            except OSError:
                status = None
            if status == 200:
                break
            state = subprocess.run(["docker", "inspect", "-f", "{{.State.Running}}", name], capture_output=True,
                                   text=True, check=False).stdout.strip()
            assert state == "true", "the LMCache server exited: %s" % subprocess.run(
                ["docker", "logs", "--tail", "40", name], capture_output=True, text=True, check=False).stderr
            time.sleep(1)
        assert status == 200, "no healthy /healthcheck within %d s (last: %s %s)" % (READY_TIMEOUT, status, body)
        assert json.loads(body) == {"status": "healthy"}
        with socket.create_connection(("127.0.0.1", zmq), timeout=5):
            pass
        logs = subprocess.run(["docker", "logs", name], capture_output=True, text=True, check=False)
        assert "zmq cache server is running on localhost:%d" % zmq in logs.stdout + logs.stderr
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)
