"""Secrets never shown, and who can reach what (README, Security), end to end.

1. test_rehearsal_at_vvv_shows_no_secret: the h200_pd rehearsal rollout (scripts/rehearse.sh) at -vvv with an API key
   (deepseek_v4_api_key) and a Hub token (hf_cache_token) set from a 0600 vars file, as a vault would give them. Then
   neither secret is in: the run's output and Ansible log, plan.json, anything under rehearsal-out/, any file of the
   node (docker exec grep over its whole filesystem, the journal included) except files that must hold one (those
   must be 0600), the node's process list, the engine containers' logs and command lines. The engines and the router
   listen on loopback only: the node's other address refuses them. The plan says why the engines behind vllm-router
   0.1.17 do not require the key (it sends none to PD workers) and the smoke test passed through the router.
2. test_engine_requires_the_key: an engine the plan makes require the key (single_node, no router), started by the
   real roles (plan, vllm_engine) at -vvv from a 0600 vars file: without the key /v1/models and a completion are
   refused with 401, with it they answer; the key is in the container's environment (the documented place) and
   nowhere in its command line or the run's output.

Slow (a rollout, an engine); the rehearsal is destroyed before and after. Skipped when Docker or the images are
missing, unless DSV4_REQUIRE_REHEARSAL=1.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import hostscan
import pytest
from rehearsal_lib import REQUIRE, ROOT, _env, _run, _unavailable, rehearse

pytestmark = [pytest.mark.rehearsal, pytest.mark.slow, pytest.mark.docker]

NODE = os.environ.get("DSV4_REHEARSAL_NODE", "deepseek-v4-rehearsal-node")
ENGINES = ("deepseek-v4-prefill", "deepseek-v4-decode")
ROUTER_UNIT = "deepseek-v4-router.service"
OUT = ROOT / "rehearsal-out"
SCAN_DIR = OUT / "secret-scan"
# Files of the node allowed to hold a secret (each must be 0600): the router's secret environment file, written
# only where the plan gives the router secret flags (a vllm-router that sends the key; not 0.1.17), and the Hub
# token file hf_cache writes only with hf_cache_store_token.
ALLOWED_NODE_FILES = {"/etc/deepseek-v4/deepseek-v4-router.env", "/var/lib/deepseek-v4-rehearsal/hf-cache/token"}


def _secrets():
    """Fresh values each run, so nothing left by an earlier run can hide or fake a leak."""
    return {"deepseek_v4_api_key": "sk-dsv4scan-" + secrets.token_hex(12),
            "hf_cache_token": "hf_dsv4scan" + secrets.token_hex(12)}


def _vars_file(tmp_path, values):
    path = tmp_path / "vault.yml"
    path.write_text("".join("%s: %s\n" % kv for kv in values.items()))
    path.chmod(0o600)
    return path


_leaks = hostscan.leaks


_files_holding = hostscan.local_files_holding


def _node_files_holding(values):
    """{path: [mode, owner]} of every file of the node holding a secret (grep over its whole filesystem, the journal
    too)."""
    return hostscan.modes(NODE, hostscan.files_holding(NODE, values.values()))


def _non_loopback_address():
    """An IPv4 address of this machine (the node shares its network) other than loopback, or None."""
    out = _run(["docker", "exec", NODE, "ip", "-4", "-o", "addr", "show", "scope", "global"]).stdout.split()
    for i, word in enumerate(out[:-1]):
        if word == "inet":
            return out[i + 1].split("/")[0]
    return None


def _refused(address, port):
    with socket.socket() as s:
        s.settimeout(3)
        try:
            s.connect((address, port))
        except (ConnectionRefusedError, socket.timeout, OSError):
            return True
    return False


@pytest.fixture(scope="module")
def rehearsal_cleaned():
    reason = _unavailable()
    if reason:
        if REQUIRE:
            pytest.fail(f"DSV4_REQUIRE_REHEARSAL=1 but {reason}")
        pytest.skip(reason)
    rehearse("--destroy")
    try:
        yield
    finally:
        rehearse("--destroy")


def test_rehearsal_at_vvv_shows_no_secret(rehearsal_cleaned, tmp_path, monkeypatch):
    values = _secrets()
    vault = _vars_file(tmp_path, values)
    log = tmp_path / "ansible.log"
    monkeypatch.setenv("ANSIBLE_LOG_PATH", str(log))
    out = rehearse("--", "-vvv", "-e", "@%s" % vault, "-e", "deepseek_v4_plan_dir=%s" % SCAN_DIR, timeout=2400)

    # The rollout worked with the secrets set: the smoke test passed through the router.
    summary = json.loads((OUT / "smoke-summary.json").read_text())
    assert summary["passed"] is True and summary["endpoint"] == "http://127.0.0.1:30000", summary
    assert all("$DEEPSEEK_V4_API_KEY" in m["curl"] for m in summary["modes"].values()), "curl refers to the key"

    # Nothing Ansible printed or logged holds a secret, at -vvv.
    assert "ESTABLISH" in out, "the run was not verbose (-vvv)"
    assert _leaks(out, values) == [], "the -vvv output shows a secret"
    assert log.exists() and _leaks(log.read_text(errors="replace"), values) == [], "the Ansible log shows a secret"

    # plan.json, and every report under rehearsal-out/.
    plan = json.loads((SCAN_DIR / "plan.json").read_text())
    assert _files_holding(OUT, values) == {}, "a file under rehearsal-out/ holds a secret"
    # The engines' bind-mount sources live on the Docker engine's machine (this one), not in the node.
    data_dir = Path("/var/lib/deepseek-v4-rehearsal")
    held = _files_holding(data_dir, values) if data_dir.is_dir() else {}
    assert all(oct(Path(p).stat().st_mode & 0o777) == "0o600" for p in held), held
    # The plan knows a key is set and says who requires it: nobody behind vllm-router 0.1.17 (it sends none).
    assert plan["api_key"] == {"set": True, "variable": "deepseek_v4_api_key", "required_by": [],
                               "router_sends": False}
    assert any("does not send it" in w for w in plan["warnings"]), plan["warnings"]
    assert all(s["bind_address"] == "127.0.0.1" for s in plan["services"])

    # The node: no file holds a secret but those that must, and those are 0600 root.
    held = _node_files_holding(values)
    assert set(held) <= ALLOWED_NODE_FILES, "node files holding a secret: %s" % held
    assert all(mode == ["600", "root"] for mode in held.values()), held
    journal = _run(["docker", "exec", NODE, "journalctl", "--no-pager", "-o", "cat"]).stdout
    assert _leaks(journal, values) == [], "the node's journal shows a secret"
    processes = _run(["docker", "exec", NODE, "ps", "-eo", "args"]).stdout
    assert _leaks(processes, values) == [], "a process of the node shows a secret"
    for name in ENGINES:
        logs = _run(["docker", "logs", name])
        assert _leaks(logs.stdout + logs.stderr, values) == [], "%s logged a secret" % name
        args = _run(["docker", "inspect", "-f", "{{json .Args}} {{json .Config.Env}}", name]).stdout
        assert _leaks(args, values) == [], "%s holds a secret in its command line or environment" % name

    # Who can reach what: engines and router on loopback only.
    other = _non_loopback_address()
    assert other, "the node has no non-loopback address to probe from"
    for port in (8000, 8001, 30000):
        assert not _refused("127.0.0.1", port), "nothing listens on 127.0.0.1:%d" % port
        assert _refused(other, port), "port %d answers on %s: it listens wider than loopback" % (port, other)


# ------------------------------------------------------------------------------------------------ engine auth
ENGINE_PORT = 28471
PLAYBOOK = """
- name: Plan and run one engine that requires the API key
  hosts: serving
  connection: local
  gather_facts: false
  pre_tasks:
    - name: Plan
      ansible.builtin.include_role:
        name: inference.deepseek_v4.plan
      run_once: true
  roles:
    - role: inference.deepseek_v4.vllm_engine
      vars:
        vllm_engine_plan: "{{ deepseek_v4_plan }}"
"""


def _request(url, key=None, body=None):
    req = urllib.request.Request(url, data=None if body is None else json.dumps(body).encode(),
                                 headers=dict({"Content-Type": "application/json"},
                                              **({"Authorization": "Bearer " + key} if key else {})))
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, None


def _playbook(tmp_path, prefix, vault, state, log):
    image = os.environ.get("DSV4_REHEARSAL_IMAGE") or _run(
        ["bash", str(ROOT / "scripts" / "build-rehearsal-image.sh"), "--print"]).stdout.strip()
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(json.dumps({"serving": {"hosts": {"localhost": {"ansible_python_interpreter": sys.executable,
                                                                         "plan_address": "127.0.0.1"}}}}))
    settings = {"plan_topology": "single_node", "plan_image": image, "plan_engine_port": ENGINE_PORT,
                "plan_name_prefix": prefix, "plan_hf_cache_dir": str(tmp_path / "hf-cache"), "plan_shared_dir": "",
                "deepseek_v4_plan_print": True, "vllm_engine_request_gpus": False,
                "vllm_engine_allow_privileged": False, "vllm_engine_pull": "never", "vllm_engine_state": state,
                "vllm_engine_ready_timeout": 600, "vllm_engine_ready_delay": 2, "vllm_engine_progress_interval": 20}
    book = tmp_path / "engine.yml"
    book.write_text(PLAYBOOK)
    env = dict(_env(), ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_LOG_PATH=str(log))
    cmd = [env.get("ANSIBLE_PLAYBOOK", "ansible-playbook"), "-vvv", "-i", str(inventory), str(book),
           "-e", "@%s" % vault, "-e", json.dumps(settings)]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200, check=False)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def test_engine_requires_the_key(tmp_path):
    reason = _unavailable()
    if reason:
        if REQUIRE:
            pytest.fail(f"DSV4_REQUIRE_REHEARSAL=1 but {reason}")
        pytest.skip(reason)
    values = _secrets()
    key = values["deepseek_v4_api_key"]
    vault = _vars_file(tmp_path, values)
    prefix = "dsv4-sec-%s" % secrets.token_hex(3)
    name = prefix + "-engine"
    log = tmp_path / "ansible.log"
    try:
        out = _playbook(tmp_path, prefix, vault, "present", log)
        assert _leaks(out, values) == [] and _leaks(log.read_text(errors="replace"), values) == []
        assert "-e VLLM_API_KEY" in out, "the printed command names the variable"
        base = "http://127.0.0.1:%d" % ENGINE_PORT
        # /health is open (vLLM guards /v1 only); the API refuses a request without the key or with another one.
        assert _request(base + "/health")[0] == 200
        assert _request(base + "/v1/models")[0] == 401
        assert _request(base + "/v1/models", key="sk-wrong")[0] == 401
        completion = {"model": "deepseek-ai/DeepSeek-V4-Flash", "prompt": "Hello", "max_tokens": 1}
        assert _request(base + "/v1/completions", body=completion)[0] == 401
        status, models = _request(base + "/v1/models", key=key)
        assert status == 200 and models["data"], models
        status, answer = _request(base + "/v1/completions", key=key, body=completion)
        assert status == 200 and answer["choices"], answer
        # The key is where the README says: the container's environment, not its command line.
        inspect = json.loads(_run(["docker", "inspect", name]).stdout)[0]
        assert "VLLM_API_KEY=" + key in inspect["Config"]["Env"]
        assert key not in json.dumps(inspect["Args"]) and key not in json.dumps(inspect["Config"]["Labels"])
        assert inspect["Args"][inspect["Args"].index("--host") + 1] == "127.0.0.1"
        assert not _refused("127.0.0.1", ENGINE_PORT)
        # A second run changes nothing and shows nothing.
        out = _playbook(tmp_path, prefix, vault, "present", log)
        assert "changed=0" in out.rsplit("PLAY RECAP", 1)[-1] and _leaks(out, values) == []
    finally:
        _run(["docker", "rm", "-f", name])
    assert _leaks(log.read_text(errors="replace"), values) == []
