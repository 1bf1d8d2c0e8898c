"""playbooks/benchmark.yml against the h200_pd rehearsal's router (scripts/rehearse.sh, tests/rehearsal/inventory/).

Rolls the rehearsal out from a clean state, then benchmarks the plan's endpoint - the real vllm-router on the "H200
node", in front of the prefill and decode engines (real vLLM CPU behind the Mooncake double) - with the client
`vllm bench serve` from the plan's engine image, started through the node's Docker socket, profile `tiny`. Checks the
report's numbers are the result JSONs' ones, every request went through (no errors), the PNG is valid, the requests
reached both engines (prefill then decode: the router's PD flow), and a comparison of two runs prints their ratios.
The rehearsal is destroyed before and after. Slow (a rollout, about 10 minutes): `make e2e`, not `make test`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
from rehearsal_lib import REQUIRE, ROOT, _env, _run, _unavailable, rehearse, timed_rehearse

sys.path.insert(0, str(ROOT / "tests" / "benchmark"))
from benchmark_checks import check_comparison, check_png, check_report  # noqa: E402

REHEARSAL_VARS = ROOT / "tests" / "benchmark" / "rehearsal-vars.yml"
PREFILL, DECODE = "deepseek-v4-prefill", "deepseek-v4-decode"

pytestmark = [pytest.mark.rehearsal, pytest.mark.slow, pytest.mark.docker]


@pytest.fixture(scope="module")
def rehearsal():
    reason = _unavailable()
    if reason:
        if REQUIRE:
            pytest.fail(f"DSV4_REQUIRE_REHEARSAL=1 but {reason}")
        pytest.skip(reason)
    try:
        rehearse("--destroy")
        timed_rehearse({}, "rollout")
        yield
    finally:
        rehearse("--destroy")


def benchmark(runs, *extra, timeout=1800):
    env = _env()
    env["ANSIBLE_CONFIG"] = str(ROOT / "ansible.cfg")
    playbook = env.get("ANSIBLE_PLAYBOOK") or "ansible-playbook"
    cmd = [playbook, "-i", str(ROOT / "tests" / "rehearsal" / "inventory"), str(ROOT / "playbooks" / "benchmark.yml"),
           "-e", f"@{REHEARSAL_VARS}", "-e", f"benchmark_runs_dir={runs}", *extra]
    start = time.monotonic()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    print(f"{'benchmark ' + ' '.join(extra):<48} {time.monotonic() - start:7.1f} s", flush=True)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    return proc.stdout


def pd_transfers(name):
    """Transfers the engine's PD double has seen (GET /rehearsal/pd on its port, from the node)."""
    port = {PREFILL: 8000, DECODE: 8001}[name]
    out = _run(["docker", "exec", os.environ.get("DSV4_REHEARSAL_NODE", "deepseek-v4-rehearsal-node"),
                "python3", "-c", f"import urllib.request; print(urllib.request.urlopen("
                f"'http://127.0.0.1:{port}/rehearsal/pd', timeout=10).read().decode())"])
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_benchmark_through_the_router(rehearsal, tmp_path):
    runs = tmp_path / "runs"
    before_pd = (pd_transfers(PREFILL), pd_transfers(DECODE))
    out = benchmark(runs, "-e", "benchmark_run_name=before")
    assert "endpoint: http://127.0.0.1:30000 (profile tiny)" in out, "the benchmark did not go to the router"
    before = check_report(runs / "before", [1, 4], prompts=8)
    check_png(runs / "before" / "report.png")
    meta = json.loads((runs / "before" / "run.json").read_text())
    assert meta["topology"] == "h200_pd" and meta["host"] == "h200-node-1"
    # The router's PD flow: every benchmark request was prefilled by one engine and decoded by the other.
    after_pd = (pd_transfers(PREFILL), pd_transfers(DECODE))
    print("PD double before:", before_pd, "after:", after_pd)
    assert after_pd[0]["events"] != before_pd[0]["events"], "no request reached the prefill engine"
    assert after_pd[1]["events"] != before_pd[1]["events"], "no request reached the decode engine"

    out = benchmark(runs, "-e", "benchmark_run_name=after", "-e", f"benchmark_compare_to={runs / 'before'}")
    after = check_report(runs / "after", [1, 4], prompts=8)
    assert "Comparison:" in out
    script = _run([sys.executable, str(ROOT / "scripts" / "benchmark-report.py"), "compare",
                   str(runs / "before"), str(runs / "after")])
    assert script.returncode == 0, script.stderr
    print(script.stdout)
    check_comparison(script.stdout, before, after)
    left = _run(["docker", "ps", "-a", "--filter", "label=inference.deepseek_v4.benchmark", "--format", "{{.Names}}"])
    assert left.stdout.split() == [], left.stdout
