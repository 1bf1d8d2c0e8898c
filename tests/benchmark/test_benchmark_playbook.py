"""playbooks/benchmark.yml end to end against a real vLLM engine: the rehearsal engine image (vLLM 0.32.0 CPU build,
tiny model) started here as a container `dsv4-bench-<pid>` on a free port, the client `vllm bench serve` from the
same image (the plan's image), profile `tiny` (concurrency 1 and 4, 8 prompts each).

A dry run (--check) starts and writes nothing; a run saves every result JSON in a run directory and writes report.md,
whose numbers are the JSONs' ones, and a valid report.png; a second run compared with the first (the playbook's
benchmark_compare_to, and scripts/benchmark-report.py compare) prints after / before ratios of the two runs' JSONs.
The client containers are gone afterwards. Skipped without Docker or the image unless DSV4_REQUIRE_REHEARSAL=1.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmark_checks import check_comparison, check_png, check_report, results  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
INVENTORY = ROOT / "tests" / "benchmark" / "inventory"
REHEARSAL_VARS = ROOT / "tests" / "benchmark" / "rehearsal-vars.yml"
REQUIRE = os.environ.get("DSV4_REQUIRE_REHEARSAL") == "1"
NAME = "dsv4-bench-%d" % os.getpid()
CLIENT_PREFIX = "dsv4-bench-bench-"

pytestmark = [pytest.mark.slow, pytest.mark.docker, pytest.mark.rehearsal]


def _run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, check=False, **kw)


def _image():
    return os.environ.get("DSV4_REHEARSAL_IMAGE") or _run(
        ["bash", str(ROOT / "scripts" / "build-rehearsal-image.sh"), "--print"]).stdout.strip()


def _free_port(start=18080):
    for port in range(start, start + 100):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) != 0:
                return port
    raise RuntimeError("no free port from %d" % start)


def _ready(port):
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d/v1/models" % port, timeout=5) as r:
            return r.status == 200
    except OSError:
        return False


@pytest.fixture(scope="module")
def engine():
    reason = None
    if _run(["docker", "info"]).returncode != 0:
        reason = "no running Docker engine"
    elif _run(["docker", "image", "inspect", _image()]).returncode != 0:
        reason = "rehearsal engine image %s not built (scripts/build-rehearsal-image.sh)" % _image()
    if reason:
        if REQUIRE:
            pytest.fail("DSV4_REQUIRE_REHEARSAL=1 but " + reason)
        pytest.skip(reason)
    port = _free_port()
    started = _run(["docker", "run", "-d", "--name", NAME, "--network", "host", "--ipc", "host",
                    "--label", "inference.deepseek_v4.test=benchmark", _image(),
                    "deepseek-ai/DeepSeek-V4-Flash", "--host", "127.0.0.1", "--port", str(port),
                    "--tokenizer-mode", "deepseek_v4", "--reasoning-parser", "deepseek_v4", "--trust-remote-code"])
    assert started.returncode == 0, started.stderr
    try:
        deadline = time.monotonic() + 600
        while not _ready(port):
            state = _run(["docker", "inspect", "-f", "{{.State.Running}}", NAME]).stdout.strip()
            assert state == "true", _run(["docker", "logs", "--tail", "40", NAME]).stdout
            assert time.monotonic() < deadline, "engine not ready in 600 s"
            time.sleep(2)
        yield port
    finally:
        _run(["docker", "rm", "-f", NAME])


def playbook(port, runs, *extra):
    env = dict(os.environ, DSV4_BENCH_PORT=str(port), DSV4_BENCH_RUNS=str(runs),
               DSV4_BENCH_HF_CACHE=str(runs / "hf-cache"), ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0",
               ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"))
    ansible_playbook = Path(sys.executable).with_name("ansible-playbook")
    cmd = [str(ansible_playbook if ansible_playbook.exists() else "ansible-playbook"), "-i", str(INVENTORY),
           str(ROOT / "playbooks" / "benchmark.yml"), "-e", "@%s" % REHEARSAL_VARS, *extra]
    start = time.monotonic()
    proc = _run(cmd, cwd=ROOT, env=env, timeout=900)
    print("%-40s %6.1f s" % (" ".join(extra) or "run", time.monotonic() - start))
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    return proc.stdout


def test_benchmark_playbook_report_and_compare(engine, tmp_path):
    runs = tmp_path / "runs"

    # A dry run benchmarks nothing and writes nothing.
    out = playbook(engine, runs, "--check")
    assert "not benchmarked in check mode" in out
    assert not runs.exists() or not any(p.name != "hf-cache" for p in runs.iterdir())

    # A run: every result JSON on the controller, the report's numbers are theirs, a valid PNG.
    playbook(engine, runs, "-e", "benchmark_run_name=before")
    before_dir = runs / "before"
    before = check_report(before_dir, [1, 4], prompts=8)
    check_png(before_dir / "report.png")
    meta = json.loads((before_dir / "run.json").read_text())
    assert meta["profile"] == "tiny" and meta["endpoint"] == "http://localhost:%d" % engine
    assert [p["exit_code"] for p in meta["points"]] == [0, 0]
    assert all((before_dir / p["log"]).exists() for p in meta["points"])
    for data in before.values():
        assert data["backend"] == "openai-chat" and data["model_id"] == "deepseek-ai/DeepSeek-V4-Flash"
        assert data["tokenizer_id"] == "/models/tiny" and data["total_output_tokens"] == 8 * 16

    # A second run compared with the first: after / before of the JSONs, in the playbook and the script.
    out = playbook(engine, runs, "-e", "benchmark_run_name=after", "-e", "benchmark_compare_to=%s" % before_dir)
    after = check_report(runs / "after", [1, 4], prompts=8)
    assert "Comparison:" in out
    script = _run([sys.executable, str(ROOT / "scripts" / "benchmark-report.py"), "compare",
                   str(before_dir), str(runs / "after")])
    assert script.returncode == 0, script.stderr
    print(script.stdout)
    ratios = check_comparison(script.stdout, before, after)
    assert set(c for c, _h in ratios) == {1, 4}
    assert results(runs / "after").keys() == before.keys()

    # No client container is left.
    left = _run(["docker", "ps", "-a", "--format", "{{.Names}}"]).stdout.split()
    assert not [n for n in left if n.startswith(CLIENT_PREFIX)], left
