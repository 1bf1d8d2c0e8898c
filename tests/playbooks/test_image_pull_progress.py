# -*- coding: utf-8 -*-
"""The engine image pull ahead of the containers (role vllm_engine, tasks_from pull: module image_pull in the
background, action async_progress following it), through ansible-playbook on localhost, against the Docker API double
(tests/doubles/docker_api_double.py) on a unix socket: no registry can be reached here, so the double answers the
daemon's part and streams dockerd's progress messages at a set rate.

Asserted from the play's output and the double's request log: progress lines per interval with the layers' bytes
growing; a present image is not pulled again (no POST); a pull whose stream stops fails after the stall timeout with a
message naming the host, the image, the layer and the fix; an error of the daemon's stream fails the host with it.
The hosts pull the digest the registry gives for the tag (tests/playbooks/test_image_digest_agreement.py).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import uuid

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "doubles"))

from docker_api_double import DockerApiDouble  # noqa: E402

MIB = 1024 * 1024
IMAGE = "registry.example.test:5000/vllm/vllm-openai:v0.20.0"
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
LINE = re.compile(r"^localhost: %s: ([0-9.]+) (B|KiB|MiB) of (?:at least )?([0-9.]+ MiB) \(([0-9.]+)%%\), "
                  r"([0-9.]+ (?:B|KiB|MiB)/s)" % re.escape(IMAGE), re.M)


def ansible_playbook():
    local = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
    return local if os.path.exists(local) else shutil.which("ansible-playbook")


pytestmark = pytest.mark.skipif(ansible_playbook() is None, reason="ansible-playbook is not installed")


@pytest.fixture()
def work(tmp_path):
    path = tmp_path / "play.yml"
    path.write_text(PLAYBOOK.format(python=sys.executable))
    sock = os.path.join("/tmp", "docker-double-%s.sock" % uuid.uuid4().hex[:8])
    return {"playbook": str(path), "socket": sock, "progress": str(tmp_path / "progress" / "image-pull.json")}


def _play(work, double, **extra):
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    variables = {"vllm_engine_pull_images": [IMAGE], "vllm_engine_docker_host": double.docker_host,
                 "vllm_engine_progress_interval": 1, "vllm_engine_pull_stall_timeout": 30,
                 "_vllm_engine_pull_progress_file": work["progress"]}
    variables.update(extra)
    done = subprocess.run([ansible_playbook(), work["playbook"], "-e", json.dumps(variables)], cwd=ROOT, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=300, check=False)
    return done.returncode, done.stdout.decode()


def _posts(double):
    return [r for r in double.requests if r["method"] == "POST" and r["path"] == "/images/create"]


def test_a_pull_prints_progress_lines_and_a_present_image_is_not_pulled_again(work):
    with DockerApiDouble(work["socket"], layers=3, layer_size=8 * MIB, step=MIB // 2, rate=3 * MIB // 2) as double:
        rc, out = _play(work, double)
        assert rc == 0, out
        lines = LINE.findall(out)
        print("\n".join(line for line in out.splitlines() if line.startswith("localhost: ")))
        # 24 MiB at 1.5 MiB/s: 16 s, a line a second where this machine polls that fast.
        assert len(lines) >= 2, out
        done = [float(value) * {"B": 1.0 / MIB, "KiB": 1.0 / 1024, "MiB": 1}[unit] for value, unit, *_rest in lines]
        assert done == sorted(done) and done[-1] > done[0], done
        assert all(float(total.split()[0]) <= 24 for _v, _u, total, _p, _r in lines), lines
        assert re.search(r"^localhost: .*: finished after \d+ s \(24.0 MiB in the end", out, re.M), out
        posts = _posts(double)
        assert len(posts) == 1 and "fromImage=registry.example.test%3A5000%2Fvllm%2Fvllm-openai" in posts[0]["query"]
        # By the digest the registry gives for the tag (asked first: the distribution endpoint), not by the tag.
        assert "tag=" + double.digest(IMAGE).replace(":", "%3A") in posts[0]["query"], posts
        assert [r["path"] for r in double.requests if r["path"].startswith("/distribution/")] == [
            "/distribution/%s/json" % IMAGE]
        assert "changed=1" in out, out

        # Present now: no pull, no line, no change.
        rc, out = _play(work, double)
        assert rc == 0 and "changed=0" in out and not LINE.search(out), out
        assert len(_posts(double)) == 1


def test_a_stalled_pull_fails_naming_host_image_layer_and_fix(work):
    with DockerApiDouble(work["socket"], layers=2, layer_size=8 * MIB, step=MIB // 2, rate=8 * MIB,
                         stall_after=10 * MIB) as double:
        rc, out = _play(work, double, vllm_engine_pull_stall_timeout=3)
    assert rc != 0, out
    flat = " ".join(out.replace("''", "'").split())
    found = re.search(r"msg: '?(localhost: The pull of .*?)'? PLAY RECAP", flat)
    assert found, out
    text = found.group(1)
    reference = IMAGE.rsplit(":", 1)[0] + "@" + double.digest(IMAGE)
    for needed in (reference, socket.gethostname(), "nothing downloaded or extracted for", "layer abc000000001 downloading",
                   "Fix:", "registry.example.test:5000", "vllm_engine_pull_stall_timeout"):
        assert needed in text, (needed, text)


def test_an_error_of_the_pull_fails_the_host_with_it(work):
    with DockerApiDouble(work["socket"], layers=1, layer_size=MIB, step=MIB,
                         error="unauthorized: authentication required") as double:
        rc, out = _play(work, double)
    assert rc != 0, out
    flat = " ".join(out.split())
    reference = IMAGE.rsplit(":", 1)[0] + "@" + double.digest(IMAGE)
    assert "localhost: Docker could not pull %s: unauthorized: authentication required" % reference in flat, out
