"""End-to-end CPU rehearsal of playbooks/gb200_pd_cluster.yml on five hosts (TOPOLOGY=gb200_pd_cluster
scripts/rehearse.sh, tests/rehearsal/gb200_pd_cluster/inventory/).

From a clean state: roll out (GPU preflight against the 4x GB200 tray doubles on every tray, RDMA checks, one prefill
or decode engine per tray in the tray's own network namespace, the router on router-1 listing every tray, the smoke
test through it), check the containers per node, ask the router with the openai client in the three reasoning modes,
re-run (changed=0, no container recreated), tear down and check that no container, unit or file is left on any node.
The rehearsal is destroyed before and after (nodes and network included), also when a step fails. Wall times are
printed (`pytest -rP` shows them).

Slow (four CPU engines start on the machine) and not part of `make test`: `make e2e` runs it.
Skipped when Docker or the images are missing, unless DSV4_REQUIRE_REHEARSAL=1 (then those fail).
"""

from __future__ import annotations

import json
import re
import time

import pytest
import rehearsal_lib as lib
from rehearsal_lib import REQUIRE, ROOT, _run, _unavailable, recap

OUT = ROOT / "rehearsal-out" / "gb200_pd_cluster"
SUMMARY = OUT / "smoke-summary.json"
PREFIX = "deepseek-v4-gb200-rehearsal-"
NETWORK = "deepseek-v4-gb200-rehearsal"
TRAYS = {"gb200-prefill-1": "prefill", "gb200-prefill-2": "prefill",
         "gb200-decode-1": "decode", "gb200-decode-2": "decode"}
ROUTER_HOST = "router-1"
HOSTS = [*TRAYS, ROUTER_HOST]
ROUTER_UNIT = "deepseek-v4-gb200-router.service"
GUARD_UNIT = "deepseek-v4-gb200-guard.service"
BASE_DIR = "/opt/deepseek-v4"

pytestmark = [pytest.mark.rehearsal, pytest.mark.slow, pytest.mark.docker]


def rehearse(*args):
    return lib.rehearse(*args, timeout=3600, topology="gb200_pd_cluster")


def timed_rehearse(timings, step, *args):
    return lib.timed_rehearse(timings, step, *args, timeout=3600, topology="gb200_pd_cluster")


def engine_containers():
    """{name: id} of this rehearsal's engine containers (their names start with their node's)."""
    out = _run(["docker", "ps", "-a", "--filter", f"name=^{PREFIX}",
                "--filter", "label=inference.deepseek_v4.topology=gb200_pd_cluster",
                "--format", "{{.Names}} {{.ID}}"]).stdout
    return dict(line.split() for line in out.splitlines() if line.strip())


def containers_in(node):
    """Names of the running containers that share NODE's network namespace."""
    node_id = _run(["docker", "inspect", "-f", "{{.Id}}", node]).stdout.strip()
    out = _run(["docker", "ps", "--format", "{{.Names}}"]).stdout.split()
    mode = {n: _run(["docker", "inspect", "-f", "{{.HostConfig.NetworkMode}}", n]).stdout.strip() for n in out}
    return sorted(n for n, m in mode.items() if m in (f"container:{node}", f"container:{node_id}"))


def node_path_exists(host, path):
    return _run(["docker", "exec", PREFIX + host, "test", "-e", path]).returncode == 0


def _force_clean():
    """Last resort when the teardown itself failed: the engines, the nodes, the network."""
    for cid in engine_containers().values():
        _run(["docker", "rm", "-f", cid])
    for host in HOSTS:
        _run(["docker", "rm", "-f", PREFIX + host])
    _run(["docker", "network", "rm", NETWORK])


@pytest.fixture(scope="module")
def clean_cluster():
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


def ask_router(question="What is 17*19? Answer with the number only."):
    """The recipe's three reasoning modes through the router, from inside router-1 (the router listens on its
    loopback, as the plan says), with the openai client of the smoke test's virtualenv there."""
    script = r"""
import json, sys
from openai import OpenAI
client = OpenAI(base_url="http://127.0.0.1:30000/v1", api_key="EMPTY", timeout=300)
modes = {
    "non_think": {"chat_template_kwargs": {"thinking": False}},
    "think_high": {"chat_template_kwargs": {"thinking": True, "reasoning_effort": "high"}},
    "think_max": {"chat_template_kwargs": {"thinking": True, "reasoning_effort": "max"}},
}
out = {}
for mode, extra in modes.items():
    r = client.chat.completions.create(model="deepseek-ai/DeepSeek-V4-Flash", max_tokens=64,
                                       messages=[{"role": "user", "content": sys.argv[1]}], extra_body=extra)
    m = r.choices[0].message
    out[mode] = {"content": m.content, "reasoning": getattr(m, "reasoning", None) or getattr(m, "reasoning_content", None)}
print(json.dumps(out))
"""
    venvs = _run(["docker", "exec", PREFIX + ROUTER_HOST, "sh", "-c",
                  f"ls -d {BASE_DIR}/*/bin/python 2>/dev/null"]).stdout.split()
    for python in venvs:
        if _run(["docker", "exec", PREFIX + ROUTER_HOST, python, "-c", "import openai"]).returncode == 0:
            result = _run(["docker", "exec", PREFIX + ROUTER_HOST, python, "-c", script, question], timeout=1200)
            assert result.returncode == 0, result.stderr[-3000:]
            return json.loads(result.stdout)
    pytest.fail(f"no virtualenv with the openai client on {ROUTER_HOST} (found {venvs})")


def test_gb200_pd_cluster_rollout_rerun_teardown(clean_cluster):
    timings = {}
    assert not SUMMARY.exists(), "rehearse.sh --destroy left reports"

    # 1. Roll out on five hosts from a clean state.
    out = timed_rehearse(timings, "first rollout")
    counts = recap(out)
    assert set(HOSTS) <= set(counts), counts
    assert all(c["failed"] == 0 and c["unreachable"] == 0 for c in counts.values()), counts
    for host in TRAYS:
        report = json.loads((OUT / "preflight" / f"{host}.json").read_text())
        assert report["problems"] == [], report
        assert report["found"]["gpu_count"] == 4 and report["found"]["architecture"] == "aarch64", report["found"]
        assert report["found"]["imex_channels"], report["found"]
    summary = json.loads(SUMMARY.read_text())
    assert summary["passed"] is True, summary
    assert summary["endpoint"] == "http://127.0.0.1:30000", "the smoke test did not go through the router"
    assert all(m["ok"] and m["answer_ok"] is True for m in summary["modes"].values()), summary

    # One engine per tray, in the tray's own network namespace; none on the router host.
    engines = engine_containers()
    assert len(engines) == 4, engines
    for host, role in TRAYS.items():
        assert containers_in(PREFIX + host) == [f"{PREFIX}{host}.deepseek-v4-gb200-{role}"], host
    assert containers_in(PREFIX + ROUTER_HOST) == []
    print(f"{'engines':<16} " + ", ".join(sorted(engines)), flush=True)

    # The router on router-1 lists every tray: Non-think, Think High and Think Max through it with the openai client.
    unit = _run(["docker", "exec", PREFIX + ROUTER_HOST, "systemctl", "cat", ROUTER_UNIT]).stdout
    for address in ("11:8001", "12:8001", "21:8002", "22:8002"):
        assert re.search(rf"--(prefill|decode) http://[0-9.]+\.{address}\b", unit), (address, unit)
    answers = ask_router()
    for mode, answer in answers.items():
        assert "323" in (answer["content"] or ""), (mode, answer)
    assert answers["think_high"]["reasoning"] and answers["think_max"]["reasoning"], answers

    # 2. A second run changes nothing and recreates no engine.
    out = timed_rehearse(timings, "no-op re-run")
    assert all(c["changed"] == 0 and c["failed"] == 0 for c in recap(out).values()), recap(out)
    assert engine_containers() == engines

    # 3. Teardown leaves no container, unit or file on any host.
    timed_rehearse(timings, "teardown", "--teardown")
    assert engine_containers() == {}, engine_containers()
    for host in HOSTS:
        assert not node_path_exists(host, BASE_DIR), host
        for unit_name in (ROUTER_UNIT, GUARD_UNIT):
            assert not node_path_exists(host, f"/etc/systemd/system/{unit_name}"), (host, unit_name)
    assert not SUMMARY.exists()
    print("wall times: " + ", ".join(f"{k} {v} s" for k, v in timings.items()), flush=True)
