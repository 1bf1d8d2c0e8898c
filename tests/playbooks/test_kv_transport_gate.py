# -*- coding: utf-8 -*-
"""The post-rollout KV transport gate (roles/rdma tasks gate.yml) against engine container doubles on the local Docker
engine: each container writes a recorded engine log (tests/doubles/engine_logs/) and sleeps; the gate reads the logs
through the Docker API (container_logs) and judges them (kv_transport_info). RDMA above the floor passes; an engine
on TCP fails with the service, the log line and the fix."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LOGS = os.path.join(ROOT, "tests", "doubles", "engine_logs")
sys.path.insert(0, os.path.join(ROOT, "tests", "unit", "plugins", "modules"))
from module_runner import local_systemd_image  # noqa: E402

pytestmark = pytest.mark.docker

PLAYBOOK = """
- name: Transport gate
  hosts: localhost
  connection: local
  gather_facts: false
  vars:
    ansible_python_interpreter: {python}
    rdma_container_name_prefix: "{prefix}"
    rdma_plan:
      transfer: {{connector: MooncakeConnector, rdma: true, hosts: [localhost], min_rate_gbytes_per_s: 5.0}}
      hosts:
        localhost:
          ports: {ports}
  tasks:
    - name: Gate
      ansible.builtin.include_role:
        name: inference.deepseek_v4.rdma
        tasks_from: gate.yml
"""


def ansible_playbook():
    local = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
    return local if os.path.exists(local) else shutil.which("ansible-playbook")


@pytest.fixture()
def engines():
    image = local_systemd_image()
    if image is None:
        pytest.skip("no local base image (scripts/build-base-image.sh) on this Docker engine")
    prefix = "kvgate-%s." % uuid.uuid4().hex[:8]
    started = []

    def start(service, log):
        name = prefix + service
        subprocess.run(["docker", "run", "-d", "--name", name, "--network", "none", "-v",
                        "%s:/engine.log:ro" % os.path.join(LOGS, log), "--entrypoint", "sh", image, "-c",
                        "cat /engine.log; exec sleep 300"], check=True, capture_output=True)
        started.append(name)
        for _attempt in range(50):  # the log is written at once
            out = subprocess.run(["docker", "logs", name], capture_output=True, text=True, check=False).stdout
            if out:
                break
        return {"service": service, "name": "mooncake_bootstrap", "first": 8998, "last": 8998, "transfer": True}

    yield prefix, start
    for name in started:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)


def gate(tmp_path, prefix, ports):
    book = tmp_path / "gate.yml"
    book.write_text(PLAYBOOK.format(python=sys.executable, prefix=prefix, ports=ports))
    env = dict(os.environ, ANSIBLE_NOCOLOR="1")
    proc = subprocess.run([ansible_playbook(), "-i", "localhost,", str(book)], cwd=ROOT, capture_output=True,
                          text=True, env=env, check=False)
    return proc.returncode, proc.stdout + proc.stderr


def test_rdma_above_the_floor_passes(tmp_path, engines):
    prefix, start = engines
    rc, out = gate(tmp_path, prefix, [start("deepseek-v4-decode", "mooncake_rdma_decode.log")])
    assert rc == 0, out
    assert "localhost/deepseek-v4-decode: rdma, 18.507 GB/s over 4 transfer(s)" in out


def test_an_engine_on_tcp_fails_the_gate(tmp_path, engines):
    prefix, start = engines
    ports = [start("deepseek-v4-prefill", "mooncake_tcp_prefill.log"),
             start("deepseek-v4-decode", "mooncake_rdma_decode.log")]
    rc, out = gate(tmp_path, prefix, ports)
    assert rc != 0, out
    assert "KV transport gate failed (2 problem(s))" in out
    assert "[kv_transport] the KV transfer runs over TCP" in out
    assert "localhost/deepseek-v4-prefill: " in out and "The Mooncake Transfer Engine is using tcp" in out
    assert "[kv_transport_rate]" in out and "0.604 GB/s" in out
