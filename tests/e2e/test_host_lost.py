"""A host lost in the middle of a rollout of the multi-host rehearsal (gb200_pd_cluster: 2 prefill trays, 2 decode
trays, router-1 with the real vllm-router).

From a clean state the rollout starts; once gb200-decode-2's engine container exists and the readiness gates run,
that host dies: its node container is killed and its engine containers are removed with it (they live in its
network namespace). Then:

* the rollout ends with the lost host unreachable or failed and no other host failed;
* the router started without the lost host's worker (vllm-router waits at startup for every worker it lists) and
  says so; the recipe's three reasoning modes answer through it: the others keep serving;
* the host comes back empty (scripts/rehearse-cluster.sh starts a fresh node where one is not running), and a re-run
  converges: every host ok, the router lists every worker again, the endpoint answers; a bounded request loop through
  the router (2 a second, the upgrade test's) runs through the re-run, and its figures are printed: the router's
  restart that lists the worker again is the only gap;
* the run after that reports changed=0, and each engine host runs exactly one engine container.

`make e2e` runs it (markers slow, rehearsal); the figures are printed (`pytest -rP`).
"""

from __future__ import annotations

import json
import subprocess
import time

import pytest
import rehearsal_lib as lib
import test_rehearsal_topologies as topologies
from rehearsal_lib import recap
from test_upgrade import RequestLoop

pytestmark = [pytest.mark.rehearsal, pytest.mark.slow, pytest.mark.docker]

TOPOLOGY = "gb200_pd_cluster"
LOST = "gb200-decode-2"
ROUTER_HOST = "router-1"
ROUTER_UNIT = "deepseek-v4-gb200-router.service"
ENGINE_HOSTS = ["gb200-prefill-1", "gb200-prefill-2", "gb200-decode-1", "gb200-decode-2"]


@pytest.fixture
def rehearsal():
    yield from topologies.destroyed_around(TOPOLOGY)


def lose_host(r, host):
    """The host dies: its node container is killed, and its engine containers go with it. Returns its address and
    the engines it ran."""
    engines, address = r.containers_in(host), r.address(host)
    subprocess.run(["docker", "kill", r.node(host)], capture_output=True, check=True)
    for name in engines:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)
    return address, engines


def rollout_losing(r, host, timeout=3600):
    """The rollout, streamed; HOST is lost once its engine container exists and a readiness gate runs (at the router
    play at the latest). Returns (return code, output, seconds from start to loss, its address, engines lost)."""
    proc = subprocess.Popen(["bash", str(lib.REHEARSE)], cwd=lib.ROOT, env=lib._env(TOPOLOGY),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    start, lines, lost = time.monotonic(), [], None
    try:
        for line in proc.stdout:
            lines.append(line)
            if lost is None and ("_readiness :" in line or "PLAY [Start the router]" in line):
                if r.containers_in(host) or "PLAY [Start the router]" in line:
                    lost = (round(time.monotonic() - start, 1), lose_host(r, host))
            if time.monotonic() - start > timeout:
                proc.kill()
                pytest.fail(f"the rollout ran past {timeout}s")
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert lost is not None, "the rollout never reached the engines' readiness gates"
    return (proc.returncode, "".join(lines), lost[0]) + lost[1]


def router_execstart(r):
    return r.on_node(ROUTER_HOST, "systemctl", "show", "-p", "ExecStart", "--value", ROUTER_UNIT).stdout


def assert_three_modes_answer(r):
    answers = r.ask(ROUTER_HOST, "http://127.0.0.1:30000")
    assert set(answers) == {"non_think", "think_high", "think_max"}
    assert all((a["content"] or "").strip() for a in answers.values()), answers


def test_a_host_lost_mid_rollout_leaves_the_others_serving_and_a_rerun_converges(rehearsal):
    r = rehearsal
    # 1. The rollout loses a decode host.
    start = time.monotonic()
    rc, out, lost_after, address, engines = rollout_losing(r, LOST)
    lost_url = f"http://{address}:8002"
    assert address, "the lost host had no address"
    r.timings["rollout losing a host"] = round(time.monotonic() - start, 1)
    print(f"{'host lost after':<32} {lost_after:7.1f} s (engines removed: {engines})", flush=True)
    counts = recap(out)
    assert rc != 0, "the recap hides a lost host"
    assert counts[LOST]["unreachable"] + counts[LOST]["failed"] > 0, counts[LOST]
    assert all(c["failed"] == 0 and c["unreachable"] == 0 for h, c in counts.items() if h != LOST), counts
    assert f"starts without {LOST}/deepseek-v4-gb200-decode" in out, out[-4000:]
    execstart = router_execstart(r)
    assert lost_url not in execstart and f"http://{r.address('gb200-decode-1')}:8002" in execstart, execstart
    assert_three_modes_answer(r)

    # 2. The host comes back empty; a re-run converges, under the request loop.
    loop = RequestLoop(r)
    time.sleep(5)
    out = r.run("re-run with the host back")
    time.sleep(5)
    figures = loop.stop()
    print(f"{'re-run figures':<32} " + json.dumps(figures), flush=True)
    assert figures["sent"] > 50 and figures["failed"] < figures["sent"] / 10, figures
    counts = recap(out)
    assert all(c["failed"] == 0 and c["unreachable"] == 0 for c in counts.values()), counts
    assert "starts without" not in out
    assert lost_url in router_execstart(r)
    assert_three_modes_answer(r)

    # 3. Nothing left to change; one engine container per engine host.
    out = r.run("no-op re-run")
    assert all(c["changed"] == 0 and c["failed"] == 0 for c in recap(out).values()), recap(out)
    for host in ENGINE_HOSTS:
        assert len(r.containers_in(host)) == 1, (host, r.containers_in(host))
    print(f"{TOPOLOGY} host-lost wall times: " + ", ".join(f"{k} {v} s" for k, v in r.timings.items()), flush=True)
