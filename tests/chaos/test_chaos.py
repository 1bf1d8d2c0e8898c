"""The chaos suite: the scenarios of tests/chaos/scenarios.yml, each a test that fails when one of its checks fails.

One rollout of the h200_pd rehearsal with the endpoint proxy on (the endpoint clients use: TLS, a bearer key, the
plan's failure policy), then each scenario in the file's order under a steady load through that endpoint. The table
of every scenario's figures is printed after each one (`pytest -rP`) and written to rehearsal-out/chaos-table.md;
`make chaos` runs the suite and prints it. DSV4_CHAOS_SCENARIOS=a,b picks scenarios.

The rehearsal is destroyed before and after. Markers slow and rehearsal: `make e2e` runs it too.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
import time
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))

import chaos_lib as C  # noqa: E402  pylint: disable=wrong-import-position
from rehearsal_lib import (  # noqa: E402  pylint: disable=wrong-import-position
    REQUIRE, ROOT, _unavailable, rehearse, restart_docker_daemon, seed_requests_pass)

pytestmark = [pytest.mark.rehearsal, pytest.mark.slow, pytest.mark.docker]

SPEC = yaml.safe_load((Path(__file__).with_name("scenarios.yml")).read_text())
PICKED = [s for s in os.environ.get("DSV4_CHAOS_SCENARIOS", "").split(",") if s]
SCENARIOS = [s for s in SPEC["scenarios"] if s["rehearsal"] == "h200_pd" and (not PICKED or s["id"] in PICKED)]
NODE = os.environ.get("DSV4_REHEARSAL_NODE", "deepseek-v4-rehearsal-node")
TABLE = ROOT / "rehearsal-out" / "chaos-table.md"
ACCESS_LOG = "/var/log/nginx/deepseek-v4-endpoint.access.log"
ROUTER_UPSTREAM = "upstream=127.0.0.1:30000 "
OUTCOMES: list = []
UPGRADED: dict = {}


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory):
    why = _unavailable()
    if why:
        if REQUIRE:
            pytest.fail(why)
        pytest.skip(why)
    key = "sk-chaos-" + secrets.token_hex(12)
    vault = tmp_path_factory.mktemp("chaos") / "vault.yml"
    vault.write_text(json.dumps({"deepseek_v4_api_key": key, "endpoint_proxy_enabled": True}))
    vault.chmod(0o600)
    rehearse("--destroy")
    try:
        rehearse("--", "-e", "@%s" % vault, timeout=2400)
        yield C.Endpoint("127.0.0.1", 8443, key)
    finally:
        rehearse("--destroy")


def services():
    return C.Services(NODE, SPEC["rehearsals"]["h200_pd"]["services"])


GUARD_METRICS = "/var/lib/prometheus/node-exporter/deepseek-v4-guard.prom"
ROUTER_READY = "http://127.0.0.1:30000/readiness"


def settled():
    """Nothing of an earlier fault is still in motion: the guard holds, waits or restarts nothing and sees every
    upstream up, and the router is ready."""
    import urllib.request
    metrics = C.sh("docker", "exec", NODE, "cat", GUARD_METRICS).stdout
    values = [line.rsplit(" ", 1) for line in metrics.splitlines() if line and not line.startswith("#")]
    busy_gauges = ("deepseek_v4_guard_pending", "deepseek_v4_guard_restarting", "deepseek_v4_guard_held")
    busy = [name for name, value in values if name.startswith(busy_gauges) and float(value) != 0]
    down = [name for name, value in values if name.startswith("deepseek_v4_guard_upstream_up") and float(value) != 1]
    try:
        with urllib.request.urlopen(ROUTER_READY, timeout=5) as resp:
            ready = resp.status == 200
    except Exception:  # not ready
        ready = False
    return bool(values) and not busy and not down and ready


def wait_settled(endpoint, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if settled() and seed_requests_pass(endpoint.base_url, endpoint.key, verify=False):
            return True
        time.sleep(2)
    return False


def wait_recovered(endpoint, since, timeout):
    deadline = since + timeout
    while time.monotonic() < deadline:
        if seed_requests_pass(endpoint.base_url, endpoint.key, verify=False):
            return round(time.monotonic() - since, 1)
        time.sleep(1)
    return None


def access_lines():
    out = C.sh("docker", "exec", NODE, "cat", ACCESS_LOG)
    return out.stdout.splitlines() if out.returncode == 0 else []


def run_events(endpoint, svc, events, outcome):
    timeout = SPEC["defaults"]["recovery_timeout"]
    since = time.monotonic()
    for event in events:
        if "wait" in event:
            time.sleep(event["wait"])
        elif "kill" in event:
            since = time.monotonic()
            svc.kill(event["kill"])
        elif "pause" in event:
            since = time.monotonic()
            svc.pause(event["pause"], event["seconds"])
        elif "restart_docker" in event:
            since = time.monotonic()
            restart_docker_daemon()
        elif "restart_node" in event:
            since = time.monotonic()
            C.sh("docker", "restart", NODE)
        elif "upgrade" in event:
            since = time.monotonic()
            # Cumulative: an upgrade of one pool keeps what earlier scenarios changed in the other.
            UPGRADED["plan_%s_flag_overrides" % event["upgrade"]] = {"--max-num-seqs": event.get("max_num_seqs", 64)}
            change = dict(UPGRADED, deepseek_v4_api_key=endpoint.key, endpoint_proxy_enabled=True)
            vault = ROOT / "rehearsal-out" / "chaos-upgrade.json"
            vault.write_text(json.dumps(change))
            vault.chmod(0o600)
            try:
                rehearse("--upgrade", "--", "-e", "@%s" % vault, timeout=2400)
            finally:
                vault.unlink()
        elif "wait_settled" in event:
            assert wait_settled(endpoint, timeout), "no steady state within %d s" % timeout
        elif "wait_recovered" in event:
            time.sleep(2)  # the fault takes effect (a process restarts, a health URL goes down)
            outcome.recovery_s = wait_recovered(endpoint, since, timeout)
        else:
            pytest.fail("unknown event %r" % event)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s["id"] for s in SCENARIOS])
def test_scenario(endpoint, scenario):  # pylint: disable=redefined-outer-name
    # Each scenario starts from a steady state: what the guard does after the previous fault is over.
    assert wait_settled(endpoint, SPEC["defaults"]["recovery_timeout"]), "no steady state before the scenario"
    svc = services()
    before = svc.identities()
    logged = len(access_lines())
    outcome = C.Outcome(scenario["id"])
    defaults = SPEC["defaults"]["load"]
    load = C.Load(endpoint, **dict(defaults, **scenario.get("load", {})))
    load.start()
    try:
        run_events(endpoint, svc, scenario["events"], outcome)
    finally:
        outcome.results = load.stop()
    after = svc.identities()
    outcome.restarted = [name for name in before if before[name] != after[name]]
    served = [line for line in access_lines()[logged:] if "/v1/chat/completions" in line]
    outcome.fallback_served = sum(1 for line in served if ROUTER_UPSTREAM not in line + " ")
    OUTCOMES.append(outcome)
    text = C.table(OUTCOMES)
    TABLE.parent.mkdir(parents=True, exist_ok=True)
    TABLE.write_text(text)
    print("\n" + text, flush=True)
    failures = [r.detail for r in outcome.results if not r.ok][:5]
    problems = C.violations(outcome, scenario["checks"])
    assert not problems, "%s: %s (first failures: %s)" % (scenario["id"], "; ".join(problems), failures)
    # Whatever happened, the endpoint serves afterwards with one container per engine.
    assert wait_recovered(endpoint, time.monotonic(), SPEC["defaults"]["recovery_timeout"]) is not None
