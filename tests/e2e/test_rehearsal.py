"""End-to-end CPU rehearsal of playbooks/h200_pd.yml (scripts/rehearse.sh, tests/rehearsal/inventory/).

From a clean state: a dry run (`--check --diff`: it fails nowhere and starts nothing), roll out (GPU preflight
and RDMA checks against the node's hardware doubles, engines, router, smoke test), check the smoke test passed
through the router with the answer checks of a real deployment, re-run (changed=0; it only verifies, the host being
what its record says; the Mooncake bootstrap ports, which vLLM binds on every address, answer loopback and not another
host), edit the router unit by hand (the next run says so and restores it), re-run every phase
(changed=0), a dry run on the deployed endpoint (changed=0), change one decode flag and check that only the decode container was recreated, tear down
and check that no container, unit or file is left. The rehearsal is destroyed before and after, also when a step
fails. Wall times of the steps are printed (`pytest -rP` shows them).

Skipped when Docker or the images are missing, unless DSV4_REQUIRE_REHEARSAL=1 (then those fail).
DSV4_REHEARSAL_IMAGE picks the engine image (default: scripts/build-rehearsal-image.sh --print).
"""

from __future__ import annotations

import json
import os
import re
import time

import pytest
from rehearsal_lib import REQUIRE, ROOT, _run, _unavailable, recap, rehearse, timed_rehearse

SUMMARY = ROOT / "rehearsal-out" / "smoke-summary.json"
PREFLIGHT_REPORT = ROOT / "rehearsal-out" / "preflight" / "h200-node-1.json"
NODE = os.environ.get("DSV4_REHEARSAL_NODE", "deepseek-v4-rehearsal-node")
PREFILL, DECODE, ROUTER_UNIT = "deepseek-v4-prefill", "deepseek-v4-decode", "deepseek-v4-router.service"
BASE_DIR = "/opt/deepseek-v4"
STATE_FILE = BASE_DIR + "/deployed.json"

# main_job: `make test` (and so CI) runs this rehearsal of the README's main job although it is slow.
pytestmark = [pytest.mark.rehearsal, pytest.mark.slow, pytest.mark.main_job, pytest.mark.docker]


def container_id(name):
    result = _run(["docker", "inspect", "-f", "{{.Id}}", name])
    return result.stdout.strip() if result.returncode == 0 else None


def container_args(name):
    return json.loads(_run(["docker", "inspect", "-f", "{{json .Args}}", name]).stdout)


def host_config(name):
    return json.loads(_run(["docker", "inspect", "-f", "{{json .HostConfig}}", name]).stdout)


def memlock_grantable():
    """Whether this Docker engine can grant --ulimit memlock=-1:-1 (what scripts/rehearse.sh probes)."""
    return _run(["docker", "run", "--rm", "--ulimit", "memlock=-1:-1", "--entrypoint", "true",
                 _run(["bash", "scripts/build-base-image.sh", "--print"]).stdout.strip()]).returncode == 0


def assert_rdma_without_privileged(out):
    """plan_engine_privileges: rdma_devices: the printed commands carry the RDMA options instead of --privileged and
    the engines run with them (the unlimited memlock where this Docker engine can grant it)."""
    commands = dict(re.findall(r"# (deepseek-v4-(?:prefill|decode)) on .*?\n(.*?docker run .*?)\n\n", out, re.S))
    assert set(commands) == {PREFILL, DECODE}, "the plan's commands were not printed"
    for command in commands.values():
        assert "--privileged" not in command, command
        for option in ("--device /dev/infiniband:/dev/infiniband", "--cap-add IPC_LOCK", "--ulimit memlock=-1:-1"):
            assert option in command, (option, command)
    unlimited = memlock_grantable()
    for name in (PREFILL, DECODE):
        hc = host_config(name)
        assert hc["Privileged"] is False, name
        assert hc["CapAdd"] == ["IPC_LOCK"], (name, hc["CapAdd"])
        assert [d["PathOnHost"] for d in hc["Devices"]] == ["/dev/infiniband"], (name, hc["Devices"])
        memlock = [u for u in hc.get("Ulimits") or [] if u["Name"] == "memlock"]
        assert memlock == ([{"Name": "memlock", "Soft": -1, "Hard": -1}] if unlimited else []), (name, memlock)
        assert _run(["docker", "exec", name, "test", "-c", "/dev/infiniband/uverbs0"]).returncode == 0, name


def assert_hardened_units():
    """The router runs as its own user, the guard as root, neither can gain privileges or hold capabilities; the
    router's standby unit exists, disabled and stopped (the upgrade starts it)."""
    def props(unit):
        out = _run(["docker", "exec", NODE, "systemctl", "show", "-p",
                    "User,NoNewPrivileges,CapabilityBoundingSet,MainPID,UnitFileState,ActiveState", unit]).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    router, guard = props(ROUTER_UNIT), props("deepseek-v4-guard.service")
    assert router["User"] == "deepseek-v4-router" and router["NoNewPrivileges"] == "yes", router
    assert router["CapabilityBoundingSet"] == "", router
    owner = _run(["docker", "exec", NODE, "ps", "-o", "user=", "-p", router["MainPID"]]).stdout.strip()
    assert owner == "deepseek-v4-router", owner
    assert guard["NoNewPrivileges"] == "yes" and guard["CapabilityBoundingSet"] == "cap_dac_override", guard
    assert guard["ActiveState"] == "active", guard
    standby_unit = _run(["docker", "exec", NODE, "systemctl", "cat", ROUTER_UNIT.replace(".service", "-standby.service")])
    assert " --port 30001 " in standby_unit.stdout and " --port 30000 " not in standby_unit.stdout, standby_unit.stdout
    standby = props(ROUTER_UNIT.replace(".service", "-standby.service"))
    assert standby["ActiveState"] == "inactive" and standby["UnitFileState"] in ("static", "disabled"), standby


def assert_bootstrap_ports_limited():
    """vLLM's Mooncake bootstrap server (and the rehearsal engine's double of it) binds every address: the plan turns
    the cluster firewall on for h200_pd, whose table admits the bootstrap ports from the node's own addresses only.
    From this machine's loopback the prefill's bootstrap port answers; from a container on Docker's default bridge,
    through the bridge's gateway (an address of this machine), it does not."""
    table = _run(["docker", "exec", NODE, "nft", "list", "table", "inet", "deepseek_v4"])
    assert table.returncode == 0, "no cluster firewall table on the node: " + table.stderr
    assert "8998" in table.stdout and "9889" in table.stdout, table.stdout
    # Mooncake's transfer engine handshake: a random port of 15000-17000 on every address, limited the same way.
    assert "15000-17000" in table.stdout, table.stdout
    probe = "import socket,sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), 3).close()"
    local = _run(["docker", "exec", NODE, "python3", "-c", probe, "127.0.0.1", "8998"])
    assert local.returncode == 0, "the bootstrap port does not answer on loopback: " + local.stderr
    gateway = _run(["docker", "network", "inspect", "bridge", "-f", "{{(index .IPAM.Config 0).Gateway}}"]).stdout.strip()
    base = _run(["bash", str(ROOT / "scripts" / "build-base-image.sh"), "--print"]).stdout.strip()
    outside = _run(["docker", "run", "--rm", "--network", "bridge", base, "python3", "-c", probe, gateway, "8998"])
    assert outside.returncode != 0, f"the bootstrap port answers another host's address ({gateway}:8998)"


def flat(out):
    """Playbook output with its whitespace runs (the callback's line wrapping) made single spaces."""
    return " ".join(out.split())


def node_path_exists(path):
    return _run(["docker", "exec", NODE, "test", "-e", path]).returncode == 0


def rollout_containers():
    """IDs of the containers the rehearsal's rollout created (by their service label: other users of the
    Docker engine, molecule scenarios for one, run containers of the collection's roles at the same time)."""
    ids = []
    for name in (PREFILL, DECODE):
        ids += _run(["docker", "ps", "-aq", "--filter", f"label=inference.deepseek_v4.service={name}"]).stdout.split()
    return ids


def _force_clean():
    """Last resort when the teardown itself failed: remove the rollout's containers and the node."""
    for cid in rollout_containers() + [NODE]:
        _run(["docker", "rm", "-f", cid])


@pytest.fixture(scope="module")
def clean_rehearsal():
    reason = _unavailable()
    if reason:
        if REQUIRE:
            pytest.fail(f"DSV4_REQUIRE_REHEARSAL=1 but {reason}")
        pytest.skip(reason)
    start = time.monotonic()
    try:
        rehearse("--destroy")
        yield
    finally:
        try:
            rehearse("--destroy")
        except BaseException:
            _force_clean()
            raise
        finally:
            print(f"{'e2e total':<16} {time.monotonic() - start:7.1f} s", flush=True)


def test_rehearsal_rollout_rerun_change_teardown(clean_rehearsal):
    timings = {}
    assert not SUMMARY.exists() and not PREFLIGHT_REPORT.exists(), "rehearse.sh --destroy left reports"

    # 0. A dry run on the fresh node reports what it would change, fails nowhere and starts nothing.
    out = timed_rehearse(timings, "dry run (fresh)", "--", "--check", "--diff")
    counts = recap(out)
    assert all(c["failed"] == 0 and c["unreachable"] == 0 for c in counts.values()), counts
    assert counts["h200-node-1"]["changed"] > 0, counts
    assert rollout_containers() == [] and not node_path_exists(f"/etc/systemd/system/{ROUTER_UNIT}")
    assert not SUMMARY.exists()

    # 1. Roll out from a clean state: the host checks pass on the node's doubles; the smoke test passes
    #    through the router with the checks of a real deployment (answer 323, reasoning in the think modes).
    out = timed_rehearse(timings, "first rollout")
    assert all(c["failed"] == 0 and c["unreachable"] == 0 for c in recap(out).values())
    preflight = json.loads(PREFLIGHT_REPORT.read_text())
    assert preflight["problems"] == [] and preflight["found"]["gpu_count"] == 8, preflight
    assert re.search(r"MooncakeConnector\s+over\s+rdma;\s+active\s+RDMA\s+ports:\s+mlx5_0/1", out), "the rdma role did not run"
    summary = json.loads(SUMMARY.read_text())
    assert summary["passed"] is True, summary
    assert summary["endpoint"] == "http://127.0.0.1:30000", "the smoke test did not go through the router"
    assert summary["expected_answer"] == "323"
    assert set(summary["modes"]) == {"non_think", "think_high", "think_max"}
    assert all(m["ok"] and m["latency_s"] is not None for m in summary["modes"].values()), summary
    assert all(m["answer_ok"] is True for m in summary["modes"].values()), summary
    # Reasoning is required (and came back) in the think modes; Non-think is not checked for its absence:
    # vLLM 0.32's deepseek_v4 tokenizer mode renders a request without `thinking` as thinking.
    assert summary["modes"]["think_high"]["has_reasoning"] and summary["modes"]["think_max"]["has_reasoning"], summary
    assert "thinking" in summary["modes"]["think_max"]["curl"] and '"max"' in summary["modes"]["think_max"]["curl"]
    prefill_id, decode_id = container_id(PREFILL), container_id(DECODE)
    assert prefill_id and decode_id
    assert_rdma_without_privileged(out)
    assert_hardened_units()
    assert_bootstrap_ports_limited()

    # 2. A second run changes nothing, and only verifies: the host runs what its first rollout recorded, so the
    #    changing phases find no host; the smoke test still probes the endpoint.
    record = json.loads(_run(["docker", "exec", NODE, "cat", STATE_FILE]).stdout)
    assert set(record["containers"]) == {PREFILL, DECODE} and ROUTER_UNIT in record["units"], record
    assert record["containers"][DECODE]["id"] == decode_id, record
    assert _run(["docker", "exec", NODE, "stat", "-c", "%a", STATE_FILE]).stdout.strip() == "600"
    summary_time = SUMMARY.stat().st_mtime
    out = timed_rehearse(timings, "no-op re-run")
    assert all(c["changed"] == 0 and c["failed"] == 0 for c in recap(out).values()), recap(out)
    assert (container_id(PREFILL), container_id(DECODE)) == (prefill_id, decode_id)
    assert "Every host (1) runs what this run would deploy" in flat(out), "the no-op re-run did not only verify"
    assert re.search(r"PLAY \[Start the engines\] \*+ skipping: no hosts matched", flat(out)), "engines phase ran"
    assert SUMMARY.stat().st_mtime > summary_time and json.loads(SUMMARY.read_text())["passed"] is True

    # A unit edited by hand: the next run names it, deploys every phase and restores it; the engines stay.
    _run(["docker", "exec", NODE, "sh", "-c", f"echo '# edited by hand' >> /etc/systemd/system/{ROUTER_UNIT}"])
    out = timed_rehearse(timings, "edited unit")
    assert f"unit {ROUTER_UNIT} was edited" in flat(out), "the run did not say why it deploys"
    assert all(c["failed"] == 0 for c in recap(out).values()), recap(out)
    assert "edited by hand" not in _run(["docker", "exec", NODE, "cat", f"/etc/systemd/system/{ROUTER_UNIT}"]).stdout
    assert (container_id(PREFILL), container_id(DECODE)) == (prefill_id, decode_id)

    # Every phase again (verification only switched off): the roles themselves change nothing.
    out = timed_rehearse(timings, "no-op, every phase", "--", "-e", "deepseek_v4_fast_rerun=false")
    assert all(c["changed"] == 0 and c["failed"] == 0 for c in recap(out).values()), recap(out)
    assert "verification only is off" in flat(out)

    # A dry run on the deployed endpoint: changed=0.
    out = timed_rehearse(timings, "dry run (deployed)", "--", "--check", "--diff")
    assert all(c["changed"] == 0 and c["failed"] == 0 for c in recap(out).values()), recap(out)

    # 3. One decode flag changes: only decode is recreated.
    out = timed_rehearse(timings, "decode change", "--", "-e",
                         json.dumps({"plan_decode_flag_overrides": {"--max-num-seqs": 256}}))
    assert all(c["failed"] == 0 for c in recap(out).values())
    assert container_id(PREFILL) == prefill_id, "prefill was recreated by a decode-only change"
    new_decode = container_id(DECODE)
    assert new_decode and new_decode != decode_id, "decode was not recreated"
    args = container_args(DECODE)
    assert args[args.index("--max-num-seqs") + 1] == "256"
    assert json.loads(SUMMARY.read_text())["passed"] is True

    # 4. Teardown leaves no container, unit or file.
    timed_rehearse(timings, "teardown", "--teardown")
    assert container_id(PREFILL) is None and container_id(DECODE) is None
    assert not node_path_exists(f"/etc/systemd/system/{ROUTER_UNIT}")
    assert not node_path_exists(BASE_DIR)
    units = _run(["docker", "exec", NODE, "systemctl", "list-unit-files", ROUTER_UNIT, "--no-legend"]).stdout
    assert ROUTER_UNIT not in units
    assert not SUMMARY.exists()
    assert rollout_containers() == [], f"containers left: {rollout_containers()}"
    assert _run(["docker", "exec", NODE, "nft", "list", "table", "inet", "deepseek_v4"]).returncode != 0, \
        "the teardown left the cluster firewall table"
