"""End-to-end CPU rehearsal of playbooks/h200_pd.yml (scripts/rehearse.sh, inventories/rehearsal/).

From a clean state: roll out, check the smoke test passed through the router, re-run (changed=0),
change one decode flag and check that only the decode container was recreated, tear down and check
that no container, unit or file is left.

Skipped when Docker or the images are missing, unless DSV4_REQUIRE_REHEARSAL=1 (then those fail).
DSV4_REHEARSAL_IMAGE picks the engine image (default: scripts/build-rehearsal-image.sh --print).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
REHEARSE = ROOT / "scripts" / "rehearse.sh"
SUMMARY = ROOT / "rehearsal-out" / "smoke-summary.json"
NODE = os.environ.get("DSV4_REHEARSAL_NODE", "deepseek-v4-rehearsal-node")
PREFILL, DECODE, ROUTER_UNIT = "deepseek-v4-prefill", "deepseek-v4-decode", "deepseek-v4-router.service"
BASE_DIR = "/opt/deepseek-v4"
REQUIRE = os.environ.get("DSV4_REQUIRE_REHEARSAL") == "1"

pytestmark = [pytest.mark.rehearsal, pytest.mark.slow, pytest.mark.docker]


def _run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


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


def _env():
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
    if "ANSIBLE_PLAYBOOK" not in env:
        local = Path(sys.executable).with_name("ansible-playbook")
        if local.exists():
            env["ANSIBLE_PLAYBOOK"] = str(local)
    return env


def rehearse(*args, timeout=1800):
    result = _run(["bash", str(REHEARSE), *args], cwd=ROOT, env=_env(), timeout=timeout)
    assert result.returncode == 0, f"rehearse.sh {' '.join(args)} failed:\n{result.stdout[-6000:]}\n{result.stderr[-3000:]}"
    return result.stdout


def recap(output):
    """{host: {ok, changed, failed, ...}} from the last PLAY RECAP of an ansible-playbook run."""
    block = output.rsplit("PLAY RECAP", 1)[-1]
    hosts = {}
    for host, counts in re.findall(r"^(\S+)\s+:\s+(.*)$", block, re.M):
        hosts[host] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", counts)}
    assert hosts, "no PLAY RECAP in the output"
    return hosts


def container_id(name):
    result = _run(["docker", "inspect", "-f", "{{.Id}}", name])
    return result.stdout.strip() if result.returncode == 0 else None


def container_args(name):
    return json.loads(_run(["docker", "inspect", "-f", "{{json .Args}}", name]).stdout)


def node_path_exists(path):
    return _run(["docker", "exec", NODE, "test", "-e", path]).returncode == 0


@pytest.fixture(scope="module")
def clean_rehearsal():
    reason = _unavailable()
    if reason:
        if REQUIRE:
            pytest.fail(f"DSV4_REQUIRE_REHEARSAL=1 but {reason}")
        pytest.skip(reason)
    rehearse("--destroy")
    yield
    rehearse("--destroy")


def test_rehearsal_rollout_rerun_change_teardown(clean_rehearsal):
    # 1. Roll out from a clean state; the smoke test passes through the router.
    out = rehearse()
    assert all(c["failed"] == 0 and c["unreachable"] == 0 for c in recap(out).values())
    summary = json.loads(SUMMARY.read_text())
    assert summary["passed"] is True, summary
    assert summary["endpoint"] == "http://127.0.0.1:30000", "the smoke test did not go through the router"
    assert set(summary["modes"]) == {"non_think", "think_high", "think_max"}
    assert all(m["ok"] and m["latency_s"] is not None for m in summary["modes"].values()), summary
    assert "thinking" in summary["modes"]["think_max"]["curl"] and '"max"' in summary["modes"]["think_max"]["curl"]
    prefill_id, decode_id = container_id(PREFILL), container_id(DECODE)
    assert prefill_id and decode_id

    # 2. A second run changes nothing.
    out = rehearse()
    assert all(c["changed"] == 0 and c["failed"] == 0 for c in recap(out).values()), recap(out)
    assert (container_id(PREFILL), container_id(DECODE)) == (prefill_id, decode_id)

    # 3. One decode flag changes: only decode is recreated.
    out = rehearse("--", "-e", json.dumps({"plan_decode_flag_overrides": {"--max-num-seqs": 256}}))
    assert all(c["failed"] == 0 for c in recap(out).values())
    assert container_id(PREFILL) == prefill_id, "prefill was recreated by a decode-only change"
    new_decode = container_id(DECODE)
    assert new_decode and new_decode != decode_id, "decode was not recreated"
    args = container_args(DECODE)
    assert args[args.index("--max-num-seqs") + 1] == "256"
    assert json.loads(SUMMARY.read_text())["passed"] is True

    # 4. Teardown leaves no container, unit or file.
    rehearse("--teardown")
    assert container_id(PREFILL) is None and container_id(DECODE) is None
    assert not node_path_exists(f"/etc/systemd/system/{ROUTER_UNIT}")
    assert not node_path_exists(BASE_DIR)
    units = _run(["docker", "exec", NODE, "systemctl", "list-unit-files", ROUTER_UNIT, "--no-legend"]).stdout
    assert ROUTER_UNIT not in units
    assert not SUMMARY.exists()
    labelled = _run(["docker", "ps", "-aq", "--filter", "label=inference.deepseek_v4.topology"]).stdout.split()
    assert labelled == [], f"containers left: {labelled}"
