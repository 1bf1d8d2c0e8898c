"""Warm starts: the engines' kernel and compile caches live on the host and are reused, in the h200_pd rehearsal.

vllm_engine mounts <plan_engine_cache_dir>/<image id>-<sm arch>-<driver> (the nvidia-smi double's 9.0 and 580.95.05)
into every engine and points each library's cache there (DG_JIT_CACHE_DIR, TRITON_CACHE_DIR, ...). The CPU engine
builds no GPU kernels, so the rehearsal engine carries a TEST DOUBLE of the kernel JIT (REHEARSAL_KERNEL_JIT_S): a
start that finds no kernels in DG_JIT_CACHE_DIR spends that long building them and writes them there; one that finds
them starts at once. Measured and asserted:

* the first start is cold (the double builds), a container restart is warm, and a recreation of the container (a
  changed flag, the same image) is warm too: the cache outlives the container;
* the cache folder carries the key (image id, GPU architecture, driver) and its size is printed.

`make e2e` runs it (markers slow, rehearsal); the figures are printed (`pytest -rP`).
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from rehearsal_lib import REQUIRE, _run, _unavailable, rehearse

pytestmark = [pytest.mark.rehearsal, pytest.mark.slow, pytest.mark.docker]

JIT_S = 40
CACHE_ROOT = Path("/var/lib/deepseek-v4-rehearsal/deepseek-v4-engine-cache")
DECODE, DECODE_PORT = "deepseek-v4-decode", 8001


def health_after(name, port, since, timeout=900):
    """Seconds from `since` until the engine's /health answers 200 (its container running)."""
    deadline = since + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/health" % port, timeout=3) as resp:
                if resp.status == 200:
                    return round(time.monotonic() - since, 1)
        except Exception:  # loading
            pass
        time.sleep(0.5)
    pytest.fail("%s did not answer /health within %d s" % (name, timeout))


def logs(name):
    return _run(["docker", "logs", name]).stdout


@pytest.fixture(scope="module")
def rollout(tmp_path_factory):
    why = _unavailable()
    if why:
        if REQUIRE:
            pytest.fail(why)
        pytest.skip(why)
    vars_file = tmp_path_factory.mktemp("cache") / "cache.json"
    vars_file.write_text(json.dumps({"plan_extra_env": {"REHEARSAL_KERNEL_JIT_S": str(JIT_S)}}))
    rehearse("--destroy")
    subprocess.run(["rm", "-rf", str(CACHE_ROOT)], check=False)
    try:
        yield vars_file
    finally:
        rehearse("--destroy")
        subprocess.run(["rm", "-rf", str(CACHE_ROOT)], check=False)


def test_the_kernel_cache_outlives_the_container_and_makes_restarts_warm(rollout):
    start = time.monotonic()
    rehearse("--", "-e", "@%s" % rollout, timeout=2400)
    first = round(time.monotonic() - start, 1)
    assert "kernel cache cold" in logs(DECODE)
    folders = [p for p in CACHE_ROOT.iterdir() if p.is_dir()]
    assert len(folders) == 1 and folders[0].name.endswith("-sm90-580.95.05"), folders
    image_id = _run(["docker", "inspect", "-f", "{{.Image}}", DECODE]).stdout.strip().split(":")[-1]
    assert folders[0].name.startswith(image_id[:12])
    assert (folders[0] / "deep_gemm" / "rehearsal-kernels.json").is_file()
    mounts = json.loads(_run(["docker", "inspect", "-f", "{{json .Mounts}}", DECODE]).stdout)
    assert {"Source": str(folders[0]), "Destination": "/root/.cache/deepseek-v4-engine"} in [
        {"Source": m["Source"], "Destination": m["Destination"]} for m in mounts]

    # Cold: a fresh container with an empty cache, timed from its start to /health.
    subprocess.run(["rm", "-rf", str(folders[0] / "deep_gemm")], check=True)
    since = time.monotonic()
    assert _run(["docker", "restart", DECODE]).returncode == 0
    cold = health_after(DECODE, DECODE_PORT, since)
    # Warm: the same container again, and a new container (a changed flag recreates it) on the same image.
    since = time.monotonic()
    assert _run(["docker", "restart", DECODE]).returncode == 0
    warm_restart = health_after(DECODE, DECODE_PORT, since)
    assert "kernel cache warm" in logs(DECODE)
    old_id = _run(["docker", "inspect", "-f", "{{.Id}}", DECODE]).stdout.strip()
    settings = json.loads(rollout.read_text())
    settings["plan_decode_flag_overrides"] = {"--max-num-seqs": 32}
    rollout.write_text(json.dumps(settings))
    since = time.monotonic()
    rehearse("--", "-e", "@%s" % rollout, "--tags", "engines", timeout=2400)
    recreated = round(time.monotonic() - since, 1)
    assert _run(["docker", "inspect", "-f", "{{.Id}}", DECODE]).stdout.strip() != old_id, "decode was not recreated"
    assert "kernel cache warm" in logs(DECODE) and "kernel cache cold" not in logs(DECODE)
    size = _run(["du", "-sb", str(CACHE_ROOT)]).stdout.split()[0]
    print("engine start (decode, to /health): cold %.1f s, warm restart %.1f s (kernel JIT double %d s); first "
          "rollout %.1f s, engines re-run with a recreated decode %.1f s; cache %s bytes in %s"
          % (cold, warm_restart, JIT_S, first, recreated, size, folders[0].name), flush=True)
    assert cold - warm_restart >= JIT_S * 0.75, (cold, warm_restart)
