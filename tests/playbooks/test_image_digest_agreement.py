# -*- coding: utf-8 -*-
"""One image for every host: role vllm_engine's pull entry point (tasks_from pull) through ansible-playbook with two
inventory hosts, each with its own Docker API double (tests/doubles/docker_api_double.py) on a unix socket, whose
registries give the tag different digests (the tag moved between the two hosts' pulls).

Asserted from the play's output and the doubles' request logs: the first host resolves the tag once (the distribution
endpoint, nothing pulled) and both hosts pull that digest, the second one although its registry's tag moved; a later
play reuses it without asking again; where the plan pins a digest nobody asks; where the registry does not answer, the
hosts pull the tag and the host whose pull gave another digest fails naming both digests, both hosts and the fix; a
local image without a registry digest passes with the line that says so.
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

from docker_api_double import DockerApiDouble  # noqa: E402

MIB = 1024 * 1024
IMAGE = "registry.example.test:5000/vllm/vllm-openai:v0.20.0"
REPO = IMAGE.rsplit(":", 1)[0]
D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64
PLAYBOOK = """
- name: Pull the engine images
  hosts: engines
  gather_facts: false
  tasks:
    - name: Pull
      ansible.builtin.include_role:
        name: inference.deepseek_v4.vllm_engine
        tasks_from: pull
      vars:
        vllm_engine_pull_images: "{{{{ [image] }}}}"

    - name: The reference this host runs
      ansible.builtin.debug:
        msg: "RUNS {{{{ image | inference.deepseek_v4.image_reference(hostvars.localhost._vllm_engine_image_agreement) }}}}"

- name: A later play of the same playbook (an upgrade batch)
  hosts: engines
  gather_facts: false
  tasks:
    - name: Pull again
      ansible.builtin.include_role:
        name: inference.deepseek_v4.vllm_engine
        tasks_from: pull
      vars:
        vllm_engine_pull_images: "{{{{ [image] }}}}"
"""


def ansible_playbook():
    local = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
    return local if os.path.exists(local) else shutil.which("ansible-playbook")


pytestmark = pytest.mark.skipif(ansible_playbook() is None, reason="ansible-playbook is not installed")


@pytest.fixture()
def work(tmp_path):
    path = tmp_path / "play.yml"
    path.write_text(PLAYBOOK.format())
    socks = [os.path.join("/tmp", "docker-double-%s-h%d.sock" % (uuid.uuid4().hex[:8], n)) for n in (1, 2)]
    return {"playbook": str(path), "sockets": socks, "tmp": tmp_path}


def _play(work, doubles, image=IMAGE):
    inventory = {"engines": {"hosts": dict(
        ("h%d" % n, {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
                     "vllm_engine_docker_host": double.docker_host,
                     "_vllm_engine_pull_progress_file": str(work["tmp"] / ("h%d" % n) / "image-pull.json")})
        for n, double in enumerate(doubles, 1))}}
    path = work["tmp"] / "inventory.json"
    path.write_text(json.dumps(inventory))
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    variables = {"image": image, "vllm_engine_progress_interval": 1, "vllm_engine_pull_stall_timeout": 30}
    done = subprocess.run([ansible_playbook(), "-i", str(path), work["playbook"], "-e", json.dumps(variables)],
                          cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=300, check=False)
    return done.returncode, done.stdout.decode()


def _pulls(double):
    return [r["query"] for r in double.requests if r["method"] == "POST" and r["path"] == "/images/create"]


def _asked(double):
    return [r["path"] for r in double.requests if r["path"].startswith("/distribution/")]


def _runs(out, host):
    found = re.findall(r"ok: \[%s\] => \n?\s*msg: RUNS (\S+)" % host, out)
    return found[0] if found else None


def _flat(out):
    return " ".join(out.replace("''", "'").split())


def test_the_second_host_pulls_the_first_hosts_digest_after_the_tag_moved(work):
    with DockerApiDouble(work["sockets"][0], layers=1, layer_size=MIB, step=MIB, tags={IMAGE: D1}) as first, \
            DockerApiDouble(work["sockets"][1], layers=1, layer_size=MIB, step=MIB, tags={IMAGE: D2}) as second:
        rc, out = _play(work, [first, second])
        assert rc == 0, out
        # Asked once, of the first host's daemon, for the whole playbook (the later play reuses it).
        assert _asked(first) == ["/distribution/%s/json" % IMAGE] and _asked(second) == [], (first.requests, out)
        digest = "tag=" + D1.replace(":", "%3A")
        assert [digest in q for q in _pulls(first)] == [True] and [digest in q for q in _pulls(second)] == [True]
        assert "every host pulls and runs %s@%s (the registry's digest of the tag, asked by h1)" % (REPO, D1) in \
            _flat(out), out
        assert _runs(out, "h1") == _runs(out, "h2") == REPO + "@" + D1, out
        # The second host's tag names what it runs now, not what its registry's tag moved to.
        assert second.find(IMAGE) is second.find(REPO + "@" + D1) and second.find(IMAGE)["RepoDigests"] == [
            REPO + "@" + D1]
        assert "changed: [h2]" in out, out
        # A new run: the first host has that digest now, nothing is pulled again.
        rc, out = _play(work, [first, second])
        assert rc == 0 and "changed=0" in out, out
        assert len(_pulls(first)) == len(_pulls(second)) == 1
        assert "the image h1 had on it" in out and _runs(out, "h2") == REPO + "@" + D1, out


def test_a_digest_the_plan_pins_is_pulled_everywhere_without_asking(work):
    pinned = IMAGE + "@" + D2
    with DockerApiDouble(work["sockets"][0], layers=1, layer_size=MIB, step=MIB, tags={IMAGE: D1}) as first, \
            DockerApiDouble(work["sockets"][1], layers=1, layer_size=MIB, step=MIB, tags={IMAGE: D1}) as second:
        rc, out = _play(work, [first, second], image=pinned)
        assert rc == 0, out
        assert _asked(first) == _asked(second) == []
        for double in (first, second):
            assert [("tag=" + D2.replace(":", "%3A")) in q for q in _pulls(double)] == [True], double.requests
        assert _runs(out, "h1") == _runs(out, "h2") == pinned, out


def test_a_pull_that_gives_another_digest_fails_naming_both(work):
    with DockerApiDouble(work["sockets"][0], layers=1, layer_size=MIB, step=MIB, tags={IMAGE: D1},
                         distribution=False) as first, \
            DockerApiDouble(work["sockets"][1], layers=1, layer_size=MIB, step=MIB, tags={IMAGE: D2},
                            distribution=False) as second:
        rc, out = _play(work, [first, second])
    assert rc != 0, out
    flat = _flat(out)
    assert "each host pulls the tag and its digest is checked against the first host's" in flat, out
    # Both pulled the tag (no digest to pull), the second got another image: it fails, the first does not.
    assert ["tag=v0.20.0" in q for q in _pulls(first) + _pulls(second)] == [True, True]
    found = re.search(r"fatal: \[h2\]: FAILED! => \{?.*?msg: '?(h2: the tag .*?)'? (?:fatal|PLAY RECAP|NO MORE)", flat)
    assert found, out
    msg = found.group(1)
    for needed in (IMAGE, "%s here" % D2, "but %s on h1" % D1, "different images", "Fix: pin the digest",
                   "%s@%s" % (IMAGE, D1)):
        assert needed in msg, (needed, msg)
    assert "fatal: [h1]" not in out, out


def test_a_local_image_without_a_registry_digest_keeps_working(work):
    local = "localhost/deepseek-v4-rehearsal:cpu"
    with DockerApiDouble(work["sockets"][0], local=[local], distribution=False) as first, \
            DockerApiDouble(work["sockets"][1], local=[local], distribution=False) as second:
        rc, out = _play(work, [first, second], image=local)
    assert rc == 0, out
    assert "h1 has it without a registry digest (a local image, built or loaded there): there is no digest to " \
           "agree on; each host runs its own %s" % local in _flat(out), out
    assert _pulls(first) == _pulls(second) == []
    assert _runs(out, "h1") == _runs(out, "h2") == local, out
