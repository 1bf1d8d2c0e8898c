"""The serving guard in the h200_pd rehearsal: a stalled prefill restarts nothing, a restarted one restarts decode
and the router once.

One rollout (scripts/rehearse.sh), then:

1. ``docker pause`` of the prefill engine for 8 s (its container never restarts: health polls time out, then answer
   again), ``docker unpause``, 30 s of watching: no container's Id, StartedAt or RestartCount changed, the router's
   unit was not restarted (its ActiveEnterTimestamp and InvocationID inside the node), and the guard's metrics count
   no restart and no identity change.
2. The prefill's main process killed (-9): Docker's restart policy starts it again (a new StartedAt); the guard sees
   the new identity, waits until the prefill is healthy for its settle time, restarts decode, then the router, each
   exactly once, and requests through the router succeed again.

Printed figures (``pytest -rP``): the longest run of failed polls during the pause, the seconds from the kill to
the guard's ``restarted`` line, to decode's and the router's restarts, and to serving again.
`make e2e` runs it (markers slow, rehearsal); it is not part of the main job.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request

import pytest
import test_rehearsal
from rehearsal_lib import rehearse
from test_rehearsal import DECODE, NODE, PREFILL, ROUTER_UNIT

# The rehearsal's fixture: destroyed before and after, also when a step fails.
clean_rehearsal = test_rehearsal.clean_rehearsal

pytestmark = [pytest.mark.rehearsal, pytest.mark.slow, pytest.mark.docker]

GUARD_UNIT = "deepseek-v4-guard.service"
ROUTER_SERVICE = "deepseek-v4-router"
METRICS = "/var/lib/prometheus/node-exporter/deepseek-v4-guard.prom"
ROUTER = "http://127.0.0.1:30000/v1/chat/completions"
MODEL = "deepseek-ai/DeepSeek-V4-Flash"


def sh(*cmd):
    return subprocess.run(list(cmd), capture_output=True, text=True, check=False)


def node_exec(*cmd):
    return sh("docker", "exec", NODE, *cmd)


def container_identity(name):
    out = sh("docker", "inspect", "-f", "{{.Id}} {{.State.StartedAt}} {{.RestartCount}}", name)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def router_start():
    out = node_exec("systemctl", "show", "-p", "ActiveEnterTimestamp", "-p", "InvocationID", ROUTER_UNIT)
    assert out.returncode == 0 and "ActiveEnterTimestamp=" in out.stdout, out
    return out.stdout.strip()


def guard_events():
    """The guard's JSON lines in the node's journal."""
    out = node_exec("journalctl", "-u", GUARD_UNIT, "-o", "cat", "--no-pager")
    events = []
    for line in out.stdout.splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:
            continue
    return events


def metrics():
    """{series: value} of the guard's textfile."""
    out = node_exec("cat", METRICS)
    assert out.returncode == 0, f"no guard metrics file {METRICS}: {out.stderr}"
    series = {}
    for line in out.stdout.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            series[name] = float(value)
    return series


def series(name, **labels):
    return name + "{%s}" % ",".join('%s="%s"' % kv for kv in sorted(labels.items()))


def serving():
    body = json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "Hello"}], "max_tokens": 4}).encode()
    req = urllib.request.Request(ROUTER, data=body, headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status == 200 and bool(json.loads(resp.read()).get("choices"))
    except Exception:  # any failure: not serving
        return False


def wait_for(what, check, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(2)
    pytest.fail(f"{what}: not within {timeout}s")


def first_event(events, event, service, after):
    for e in events:
        if e.get("event") == event and e.get("service") == service and e["time"] >= after:
            return e
    return None


def test_a_stalled_prefill_restarts_nothing_a_restarted_one_restarts_decode_and_router_once(clean_rehearsal):  # pylint: disable=redefined-outer-name
    rehearse()
    upstreams = ["h200-node-1/" + PREFILL, "h200-node-1/" + DECODE]
    wait_for("the guard reads every identity", lambda: all(
        metrics().get(series("deepseek_v4_guard_upstream_identity_known", upstream=u)) == 1 for u in upstreams), 120)
    assert serving()
    ids = {name: container_identity(name) for name in (PREFILL, DECODE, NODE)}
    router = router_start()

    # 1. an 8-second stall of the prefill
    paused_at = time.time()
    assert sh("docker", "pause", PREFILL).returncode == 0
    worst = 0.0
    for _second in range(8):
        time.sleep(1)
        worst = max(worst, metrics().get(series("deepseek_v4_guard_upstream_consecutive_failures",
                                                upstream=upstreams[0]), 0.0))
    assert sh("docker", "unpause", PREFILL).returncode == 0
    time.sleep(30)
    after = {name: container_identity(name) for name in ids}
    assert after == ids, "a container restarted after a pause"
    assert router_start() == router, "the router's unit restarted after a pause"
    m = metrics()
    restarts = {k: v for k, v in m.items() if k.startswith("deepseek_v4_guard_restarts_total") and v}
    assert restarts == {}, restarts
    assert m[series("deepseek_v4_guard_upstream_identity_changes_total", upstream=upstreams[0])] == 0
    stalled = [e for e in guard_events() if e["time"] >= paused_at and e.get("event") in ("restarted", "restarting")]
    assert stalled == [], stalled
    print(f"pause 8 s: longest run of failed polls {worst:.0f}, restarts 0, StartedAt unchanged", flush=True)

    # 2. a real restart of the prefill
    pid = sh("docker", "inspect", "-f", "{{.State.Pid}}", PREFILL).stdout.strip()
    killed_at = time.time()
    assert sh("kill", "-9", pid).returncode == 0
    seen = wait_for("the guard sees the prefill's new identity",
                    lambda: first_event(guard_events(), "restarted", upstreams[0], killed_at), 120)
    decode = wait_for("the guard restarts decode",
                      lambda: first_event(guard_events(), "restarting", DECODE, killed_at), 900)
    router_restart = wait_for("the guard restarts the router",
                              lambda: first_event(guard_events(), "restarting", ROUTER_SERVICE, killed_at), 900)
    wait_for("the router is ready again", lambda: first_event(guard_events(), "ready", ROUTER_SERVICE, killed_at), 900)
    wait_for("requests through the router succeed", serving, 300)
    served_at = time.time()
    time.sleep(30)  # nothing restarts a second time
    events = [e for e in guard_events() if e["time"] >= killed_at]
    restarted = [e["service"] for e in events if e.get("event") == "restarting"]
    assert restarted == [DECODE, ROUTER_SERVICE], restarted
    assert container_identity(DECODE) != ids[DECODE], "decode was not restarted"
    assert router_start() != router, "the router was not restarted"
    m = metrics()
    assert m[series("deepseek_v4_guard_restarts_total", service=DECODE, reason="upstream")] == 1
    assert m[series("deepseek_v4_guard_restarts_total", service=ROUTER_SERVICE, reason="upstream")] == 1
    assert m[series("deepseek_v4_guard_upstream_identity_changes_total", upstream=upstreams[0])] == 1
    print(f"kill -9 prefill: restart seen in {seen['time'] - killed_at:.1f} s, decode restarted at "
          f"{decode['time'] - killed_at:.1f} s, router at {router_restart['time'] - killed_at:.1f} s, serving again "
          f"at {served_at - killed_at:.1f} s; restarts {restarted}", flush=True)
