"""Rolling upgrade of the decode pool in the multi-host rehearsal (gb200_pd_cluster: 2 prefill trays, 2 decode trays,
router-1 with the real vllm-router), under a bounded request loop through the router.

From a clean state: roll out; start a loop on router-1 that sends 2 chat requests a second through the router and
stops by itself; run playbooks/upgrade.yml with a new decode flag (scripts/rehearse.sh --upgrade). Then:

* both decode engines were recreated with the new flag, one batch at a time (serial 1), each taken out of the router
  (every data-parallel rank) before it stopped; the prefill engines were not touched;
* the router restarted once per batch and serves; the guards were held (no guard restart during the upgrade) and
  released;
* the loop's figures are printed: requests sent, failed, and the longest time without a successful answer;
* a second run of the same upgrade reports changed=0;
* a decode flag vLLM refuses fails the first batch within minutes, not at the readiness timeout (the engine exits,
  Docker restarts it, and the readiness gate ends once it restarted more often than allowed) and stops the upgrade
  (max_fail_percentage 0): the second decode is not touched and the endpoint keeps serving through it;
* the failed batch is rolled back: the first decode runs the container it had (the same container, kept stopped and
  renamed back), no kept container is left, the guards are released and the run says so;
* re-running the good upgrade changes nothing.

`make e2e` runs it (markers slow, rehearsal); the figures are printed (`pytest -rP`).
"""

from __future__ import annotations

import json
import subprocess
import time

import pytest
import test_rehearsal_topologies as topologies
from rehearsal_lib import recap

pytestmark = [pytest.mark.rehearsal, pytest.mark.slow, pytest.mark.docker]

TOPOLOGY = "gb200_pd_cluster"
DECODES = ["gb200-decode-1", "gb200-decode-2"]
PREFILLS = ["gb200-prefill-1", "gb200-prefill-2"]
ROUTER_HOST = "router-1"
ROUTER_UNIT = "deepseek-v4-gb200-router.service"
GUARD_UNIT = "deepseek-v4-gb200-guard.service"
STOP_FILE = "/tmp/upgrade-loop.stop"

# A bounded loop on the router host (its loopback is the router's): a request every 1/RATE s until STOP_FILE appears
# or LIMIT s passed; prints {"sent", "failed", "longest_gap_s", "errors"} (the gap: the longest time between two
# successful answers, or from the start to the first).
LOOP = r"""
import json, os, sys, time, urllib.request
rate, limit, stop = float(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
body = json.dumps({"model": "deepseek-ai/DeepSeek-V4-Flash", "max_tokens": 4,
                   "messages": [{"role": "user", "content": "Hello"}]}).encode()
start = last_ok = time.monotonic()
sent = failed = 0
gap = 0.0
errors = {}
while time.monotonic() - start < limit and not os.path.exists(stop):
    t = time.monotonic()
    req = urllib.request.Request("http://127.0.0.1:30000/v1/chat/completions", data=body, method="POST",
                                 headers={"Content-Type": "application/json"})
    sent += 1
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            ok = resp.status == 200
            err = None if ok else str(resp.status)
    except Exception as exc:
        ok, err = False, type(exc).__name__ + ": " + str(exc)[:80]
    now = time.monotonic()
    if ok:
        gap = max(gap, now - last_ok)
        last_ok = now
    else:
        failed += 1
        errors[err] = errors.get(err, 0) + 1
    time.sleep(max(0.0, 1.0 / rate - (time.monotonic() - t)))
gap = max(gap, time.monotonic() - last_ok)
print(json.dumps({"sent": sent, "failed": failed, "longest_gap_s": round(gap, 1), "errors": errors,
                  "seconds": round(time.monotonic() - start, 1)}))
"""


class RequestLoop:
    def __init__(self, r, rate=2.0, limit=1800):
        self.r = r
        r.on_node(ROUTER_HOST, "rm", "-f", STOP_FILE)
        self.proc = subprocess.Popen(["docker", "exec", r.node(ROUTER_HOST), "python3", "-c", LOOP, str(rate),
                                      str(limit), STOP_FILE], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)

    def stop(self):
        self.r.on_node(ROUTER_HOST, "touch", STOP_FILE)
        out, err = self.proc.communicate(timeout=120)
        assert self.proc.returncode == 0, err[-2000:]
        return json.loads(out.strip().splitlines()[-1])


def container_ids(r, hosts, role):
    return {h: r.engine_containers().get(f"{r.node(h)}.deepseek-v4-{r.name}-{role}") for h in hosts}


def args_of(r, host, role):
    return json.loads(subprocess.run(["docker", "inspect", "-f", "{{json .Args}}",
                                      f"{r.node(host)}.deepseek-v4-{r.name}-{role}"],
                                     capture_output=True, text=True, check=True).stdout)


def upgrade(r, step, change):
    return r.run(step, "--upgrade", "--", "-e", json.dumps(change))


def upgrade_expecting_failure(r, change):
    """The upgrade that must fail: rehearse.sh's non-zero exit is the expected outcome here."""
    import rehearsal_lib as lib
    proc = subprocess.run(["bash", str(lib.REHEARSE), "--upgrade", "--", "-e", json.dumps(change)], cwd=lib.ROOT,
                          env=lib._env(TOPOLOGY), capture_output=True, text=True, timeout=1800, check=False)
    return proc.returncode, proc.stdout


def serves(r):
    """Three chat requests through the router, from the router host; all must succeed."""
    res = r.on_node(ROUTER_HOST, "python3", "-c", LOOP, "1", "3", STOP_FILE)
    return res.returncode == 0 and json.loads(res.stdout.strip().splitlines()[-1])["failed"] == 0


@pytest.fixture
def rehearsal():
    yield from topologies.destroyed_around(TOPOLOGY)


def test_rolling_upgrade_of_the_decode_pool(rehearsal):
    r = rehearsal
    out = r.run("first rollout")
    assert all(c["failed"] == 0 for c in recap(out).values()), recap(out)
    decodes, prefills = container_ids(r, DECODES, "decode"), container_ids(r, PREFILLS, "prefill")
    assert all(decodes.values()) and all(prefills.values()), (decodes, prefills)
    since = r.on_node(ROUTER_HOST, "date", "+%Y-%m-%d %H:%M:%S").stdout.strip()

    # 1. The decode pool, batch by batch, under the request loop.
    loop = RequestLoop(r)
    time.sleep(5)
    out = upgrade(r, "upgrade (decode pool)", {"plan_decode_flag_overrides": {"--max-num-seqs": 64}})
    time.sleep(5)
    figures = loop.stop()
    print(f"{'upgrade figures':<32} " + json.dumps(figures), flush=True)
    assert all(c["failed"] == 0 for c in recap(out).values()), recap(out)
    new_decodes = container_ids(r, DECODES, "decode")
    assert all(new_decodes[h] and new_decodes[h] != decodes[h] for h in DECODES), (decodes, new_decodes)
    assert container_ids(r, PREFILLS, "prefill") == prefills, "the prefill pool was touched"
    for host in DECODES:
        args = args_of(r, host, "decode")
        assert args[args.index("--max-num-seqs") + 1] == "64", (host, args)
    # One batch per decode host (the plan's waves: decode, prefill, decode again; only the first recreates): each
    # drained (every rank it has in the router) before it stopped, then the router.
    batches = [b.split("PLAY [", 1)[0] for b in out.split("PLAY [Upgrade wave ")[1:]]
    run = "Run the container - deepseek-v4-gb200-decode"
    # The dry run lists "Run the container" (skipped) first; the real one comes last.
    recreated = [b for b in batches if run in b and b[b.rindex(run):].split("TASK [", 1)[0].count("changed:") == 1]
    assert len(recreated) == 2, "serial 1: one batch per decode host"
    for batch in recreated:
        recreate = batch.rindex(run)
        assert batch.index("Take it out of the router") < recreate < batch.index("Restart the router so that it takes")
    journal = r.on_node(ROUTER_HOST, "journalctl", "-u", ROUTER_UNIT, "--since", since, "-o", "cat").stdout
    restarts = sum(1 for line in journal.splitlines() if line.startswith("Started "))
    assert restarts == 2, f"the router started {restarts} times during the upgrade (once per batch expected)"
    guard_log = r.on_node(ROUTER_HOST, "journalctl", "-u", GUARD_UNIT, "--since", since, "-o", "cat").stdout
    assert '"held"' in guard_log and '"released"' in guard_log, guard_log[-2000:]
    assert '"restarting"' not in guard_log, "the guard restarted something during the upgrade"
    assert r.on_node(ROUTER_HOST, "test", "-e", "/opt/deepseek-v4/guard/hold").returncode != 0, "hold left behind"
    # The loop ran through the whole upgrade; the gaps are the router's restarts (it takes workers only at start).
    assert figures["sent"] > 100 and figures["failed"] < figures["sent"] / 10, figures
    assert figures["longest_gap_s"] < 60, figures

    # 2. The same upgrade again changes nothing.
    out = upgrade(r, "upgrade (no-op)", {"plan_decode_flag_overrides": {"--max-num-seqs": 64}})
    assert all(c["changed"] == 0 and c["failed"] == 0 for c in recap(out).values()), recap(out)
    assert container_ids(r, DECODES, "decode") == new_decodes

    # 3. A flag vLLM refuses: the first batch fails fast, the upgrade stops, the other decode keeps serving.
    start = time.monotonic()
    rc, out = upgrade_expecting_failure(r, {"plan_decode_flag_overrides": {"--max-num-seqs": 64},
                                            "plan_extra_decode_args": ["--no-such-flag"]})
    refused = time.monotonic() - start
    print(f"{'upgrade (refused flag)':<32} {refused:7.1f} s, rc {rc}", flush=True)
    assert rc != 0, out[-3000:]
    assert "crashes while starting" in out or "and never will" in out, out[-3000:]
    assert refused < 600, "the readiness gate waited for a crash-looping engine"
    assert "PLAY [Upgrade wave 2 of the plan]" not in out, "the upgrade went on past the failed batch"
    after = container_ids(r, DECODES, "decode")
    assert after[DECODES[1]] == new_decodes[DECODES[1]], "the second decode was touched after the first batch failed"
    # Rolled back: the first decode runs the very container it had (same id: kept stopped, renamed back, started),
    # nothing of the failed one is left, the guards are released, and the run said so.
    assert after[DECODES[0]] == new_decodes[DECODES[0]], "the failed batch was not rolled back to the container it had"
    assert "--no-such-flag" not in args_of(r, DECODES[0], "decode")
    assert "Rolled back: " in out and "guards are released" in out, out[-3000:]
    names = subprocess.run(["docker", "ps", "-a", "--format", "{{.Names}}"], capture_output=True, text=True,
                           check=True).stdout
    assert ".previous" not in names, names
    assert r.on_node(ROUTER_HOST, "test", "-e", "/opt/deepseek-v4/guard/hold").returncode != 0, "hold left behind"
    assert serves(r), "the endpoint stopped serving after a failed batch"

    # 4. Re-running the good upgrade finds nothing to change: the rollback left the endpoint as it was.
    out = upgrade(r, "upgrade (after the rollback)", {"plan_decode_flag_overrides": {"--max-num-seqs": 64}})
    assert all(c["changed"] == 0 and c["failed"] == 0 for c in recap(out).values()), recap(out)
    assert container_ids(r, DECODES, "decode") == new_decodes
    assert serves(r)
    print(f"{TOPOLOGY} upgrade wall times: " + ", ".join(f"{k} {v} s" for k, v in r.timings.items()), flush=True)
