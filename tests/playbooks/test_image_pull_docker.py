# -*- coding: utf-8 -*-
"""The engine image pull (role vllm_engine, tasks_from pull) with the real Docker daemon of this machine, pulling from
the registry double (tests/doubles/registry_double.py) on loopback: the daemon's own progress stream is what the
module reads. A generated image of three 4 MiB random layers sent at 1 MiB/s per layer.

Asserted: progress lines during the pull, the image on the daemon afterwards, no second pull; a registry that stops
sending fails the host after the stall timeout with the image, the layer and the fix, and leaves no image behind.
Run under the Docker lock (flock /tmp/dsv4-docker.lock).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import uuid

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "doubles"))

from registry_double import RegistryDouble  # noqa: E402

MIB = 1024 * 1024
PLAYBOOK = """
- name: Pull the engine images
  hosts: localhost
  connection: local
  gather_facts: false
  vars:
    ansible_python_interpreter: {python}
  tasks:
    - name: Pull
      ansible.builtin.include_role:
        name: inference.deepseek_v4.vllm_engine
        tasks_from: pull
"""


def _ansible_playbook():
    local = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
    return local if os.path.exists(local) else shutil.which("ansible-playbook")


def _docker_ok():
    return shutil.which("docker") and subprocess.run(["docker", "info"], capture_output=True,
                                                     check=False).returncode == 0


pytestmark = [pytest.mark.slow, pytest.mark.docker,
              pytest.mark.skipif(_ansible_playbook() is None or not _docker_ok(),
                                 reason="needs ansible-playbook and a running Docker engine")]


@pytest.fixture()
def work(tmp_path):
    path = tmp_path / "play.yml"
    path.write_text(PLAYBOOK.format(python=sys.executable))
    return {"playbook": str(path), "progress": str(tmp_path / "progress" / "image-pull.json")}


def _play(work, image, **extra):
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    variables = {"vllm_engine_pull_images": [image], "vllm_engine_progress_interval": 1,
                 "vllm_engine_pull_stall_timeout": 30, "_vllm_engine_pull_progress_file": work["progress"]}
    variables.update(extra)
    done = subprocess.run([_ansible_playbook(), work["playbook"], "-e", json.dumps(variables)], cwd=ROOT, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=600, check=False)
    return done.returncode, done.stdout.decode()


def _present(image):
    return subprocess.run(["docker", "image", "inspect", image], capture_output=True, check=False).returncode == 0


def _remove(image):
    subprocess.run(["docker", "image", "rm", "-f", image], capture_output=True, check=False)


def test_the_daemons_pull_shows_progress_lines_and_is_not_repeated(work):
    with RegistryDouble(tag="t" + uuid.uuid4().hex[:8], rate=MIB) as registry:
        image = registry.image
        try:
            rc, out = _play(work, image)
            lines = [line for line in out.splitlines() if line.startswith("localhost: %s: " % image)]
            print("\n".join(lines))
            assert rc == 0, out
            moving = [line for line in lines if re.search(r"MiB/s|KiB/s", line) and "finished" not in line]
            assert len(moving) >= 2, out
            assert any(" layer " in line and "downloading" in line for line in moving), lines
            assert re.search(r"finished after \d+ s \(12\.\d MiB in the end", out), out
            assert _present(image)
            # Pulled by the registry's digest of the tag (asked first, nothing pulled), and the tag names it.
            digests = subprocess.run(["docker", "image", "inspect", "--format", "{{json .RepoDigests}}", image],
                                     capture_output=True, text=True, check=False).stdout
            assert image.rsplit(":", 1)[0] + "@" + registry.manifest_digest in digests, digests
            assert "every host pulls and runs %s@%s" % (image.rsplit(":", 1)[0], registry.manifest_digest) in \
                " ".join(out.split()), out
            served = sum(r["bytes"] for r in registry.requests if "/blobs/" in r["path"])
            assert served >= registry.layers_size

            before = len(registry.requests)
            rc, out = _play(work, image)
            assert rc == 0 and "changed=0" in out, out
            assert len(registry.requests) == before  # present: the registry is not asked again
        finally:
            _remove(image)


def test_a_registry_that_stops_sending_fails_the_host_with_the_layer_and_the_fix(work):
    with RegistryDouble(tag="t" + uuid.uuid4().hex[:8], rate=MIB, stall_after=2 * MIB) as registry:
        image = registry.image
        try:
            rc, out = _play(work, image, vllm_engine_pull_stall_timeout=5)
            assert rc != 0, out
            flat = " ".join(out.replace("''", "'").split())
            found = re.search(r"msg: '?(localhost: The pull of .*?)'? PLAY RECAP", flat)
            assert found, out
            # The host pulls the digest the daemon's distribution endpoint gave for the tag.
            reference = image.rsplit(":", 1)[0] + "@" + registry.manifest_digest
            for needed in (reference, "nothing downloaded or extracted for", " layer ", "Fix:", "127.0.0.1",
                           "vllm_engine_pull_stall_timeout"):
                assert needed in found.group(1), (needed, found.group(1))
            registry.release()
            assert not _present(image)
        finally:
            _remove(image)
