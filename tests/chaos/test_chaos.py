"""The chaos suite: the scenarios of tests/chaos/scenarios.yml, each a test that fails when one of its checks fails.

One rollout per rehearsal the scenarios name (h200_pd, then gb200_pd_cluster) with the endpoint proxy on (the
endpoint clients use: TLS, a bearer key, the plan's failure policy), then each of its scenarios in the file's order
under a steady load through that endpoint. The table
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
import test_rehearsal_topologies as topologies  # noqa: E402  pylint: disable=wrong-import-position
from rehearsal_lib import (  # noqa: E402  pylint: disable=wrong-import-position
    REQUIRE, ROOT, _unavailable, rehearse, restart_docker_daemon, seed_requests_pass)

pytestmark = [pytest.mark.rehearsal, pytest.mark.slow, pytest.mark.docker]

SPEC = yaml.safe_load((Path(__file__).with_name("scenarios.yml")).read_text())
PICKED = [s for s in os.environ.get("DSV4_CHAOS_SCENARIOS", "").split(",") if s]
SCENARIOS = [s for s in SPEC["scenarios"] if not PICKED or s["id"] in PICKED]
TABLE = ROOT / "rehearsal-out" / "chaos-table.md"
ACCESS_LOG = "/var/log/nginx/deepseek-v4-endpoint.access.log"
ROUTER_UPSTREAM = "upstream=127.0.0.1:30000 "
ROUTER_READY = "http://127.0.0.1:30000/readiness"
OUTCOMES: list = []
UPGRADED: dict = {}


class Rollout:
    """The rehearsal now rolled out for the scenarios (one at a time: a rehearsal's scenarios follow each other)."""

    def __init__(self):
        self.name = None
        self.spec = None
        self.endpoint = None
        self.key = "sk-chaos-" + secrets.token_hex(12)

    def topology(self):
        return self.spec["topology"]

    def switch(self, name, workdir):
        if self.name == name:
            return
        self.destroy()
        spec = SPEC["rehearsals"][name]
        vault = workdir / ("vault-%s.yml" % name)
        vault.write_text(json.dumps({"deepseek_v4_api_key": self.key, "endpoint_proxy_enabled": True}))
        vault.chmod(0o600)
        rehearse("--destroy", topology=spec["topology"])
        self.name, self.spec = name, spec
        UPGRADED.clear()
        rehearse("--", "-e", "@%s" % vault, timeout=3600, topology=spec["topology"])
        self.endpoint = C.Endpoint(spec["endpoint"], 8443, self.key)

    def destroy(self):
        if self.name is None:
            return
        topology, self.name = self.spec["topology"], None
        try:
            rehearse("--destroy", timeout=1800, topology=topology)
        except BaseException:
            if topology != "h200_pd":  # a multi-host rehearsal with a lost host: its nodes, network and containers
                topologies.Rehearsal(topology).force_clean()
            raise

    def services(self):
        return C.Services(self.spec["node"], self.spec["services"])


@pytest.fixture(scope="module")
def rollout():
    why = _unavailable()
    if why:
        if REQUIRE:
            pytest.fail(why)
        pytest.skip(why)
    state = Rollout()
    try:
        yield state
    finally:
        state.destroy()


@pytest.fixture
def endpoint(rollout, scenario, tmp_path_factory):  # pylint: disable=redefined-outer-name
    rollout.switch(scenario["rehearsal"], tmp_path_factory.mktemp("chaos"))
    return rollout.endpoint


def node_run(node, *cmd):
    return C.sh("docker", "exec", node, *cmd)


def settled(spec):
    """Nothing of an earlier fault is still in motion: every guard holds, waits or restarts nothing and sees every
    upstream up, and the router is ready."""
    values = []
    for node in spec["guards"]:
        metrics = node_run(node, "cat", spec["guard_metrics"]).stdout
        values += [line.rsplit(" ", 1) for line in metrics.splitlines() if line and not line.startswith("#")]
    busy_gauges = ("deepseek_v4_guard_pending", "deepseek_v4_guard_restarting", "deepseek_v4_guard_held")
    busy = [name for name, value in values if name.startswith(busy_gauges) and float(value) != 0]
    down = [name for name, value in values if name.startswith("deepseek_v4_guard_upstream_up") and float(value) != 1]
    ready = node_run(spec["node"], "python3", "-c", "import urllib.request as u; u.urlopen(%r, timeout=5)"
                     % ROUTER_READY).returncode == 0
    return bool(values) and not busy and not down and ready


def wait_settled(spec, endpoint, timeout):  # pylint: disable=redefined-outer-name
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if settled(spec) and seed_requests_pass(endpoint.base_url, endpoint.key, verify=False):
            return True
        time.sleep(2)
    return False


def wait_recovered(endpoint, since, timeout):  # pylint: disable=redefined-outer-name
    deadline = since + timeout
    while time.monotonic() < deadline:
        if seed_requests_pass(endpoint.base_url, endpoint.key, verify=False):
            return round(time.monotonic() - since, 1)
        time.sleep(1)
    return None


def access_lines(node):
    out = C.sh("docker", "exec", node, "cat", ACCESS_LOG)
    return out.stdout.splitlines() if out.returncode == 0 else []


def run_events(rollout, endpoint, svc, events, outcome):  # pylint: disable=redefined-outer-name
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
        elif "lose_host" in event:
            since = time.monotonic()
            svc.lose_host(rollout.spec["hosts"][event["lose_host"]])
        elif "restart_docker" in event:
            since = time.monotonic()
            restart_docker_daemon()
        elif "restart_node" in event:
            since = time.monotonic()
            C.sh("docker", "restart", rollout.spec["node"])
        elif "upgrade" in event:
            since = time.monotonic()
            # Cumulative: an upgrade of one pool keeps what earlier scenarios changed in the other.
            UPGRADED["plan_%s_flag_overrides" % event["upgrade"]] = {"--max-num-seqs": event.get("max_num_seqs", 64)}
            change = dict(UPGRADED, deepseek_v4_api_key=endpoint.key, endpoint_proxy_enabled=True)
            vault = ROOT / "rehearsal-out" / "chaos-upgrade.json"
            vault.write_text(json.dumps(change))
            vault.chmod(0o600)
            try:
                rehearse("--upgrade", "--", "-e", "@%s" % vault, timeout=3600, topology=rollout.topology())
            finally:
                vault.unlink()
        elif "wait_settled" in event:
            assert wait_settled(rollout.spec, endpoint, timeout), "no steady state within %d s" % timeout
        elif "wait_recovered" in event:
            time.sleep(2)  # the fault takes effect (a process restarts, a health URL goes down)
            outcome.recovery_s = wait_recovered(endpoint, since, timeout)
        else:
            pytest.fail("unknown event %r" % event)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s["id"] for s in SCENARIOS])
def test_scenario(rollout, endpoint, scenario):  # pylint: disable=redefined-outer-name
    # Each scenario starts from a steady state: what the guard does after the previous fault is over.
    spec = rollout.spec
    assert wait_settled(spec, endpoint, SPEC["defaults"]["recovery_timeout"]), "no steady state before the scenario"
    svc = rollout.services()
    before = svc.identities()
    logged = len(access_lines(spec["node"]))
    outcome = C.Outcome(scenario["id"])
    defaults = SPEC["defaults"]["load"]
    load = C.Load(endpoint, **dict(defaults, **scenario.get("load", {})))
    load.start()
    try:
        run_events(rollout, endpoint, svc, scenario["events"], outcome)
    finally:
        outcome.results = load.stop()
    after = svc.identities()
    outcome.restarted = [name for name in before if before[name] != after[name]]
    served = [line for line in access_lines(spec["node"])[logged:] if "/v1/chat/completions" in line]
    passed_on = [line for line in served if ROUTER_UPSTREAM not in line + " "]
    outcome.passed_on = len(passed_on)
    # What the front did with each request it passed on (upstream=<each try> upstream_status=<each answer>).
    for line in passed_on:
        print("passed on: " + line.split('"', 1)[-1], flush=True)
    OUTCOMES.append(outcome)
    text = C.table(OUTCOMES)
    TABLE.parent.mkdir(parents=True, exist_ok=True)
    TABLE.write_text(text)
    print("\n" + text, flush=True)
    failures = [r.detail for r in outcome.results if not r.ok][:5]
    problems = C.violations(outcome, scenario["checks"])
    assert not problems, "%s: %s (first failures: %s)" % (scenario["id"], "; ".join(problems), failures)
    # Whatever happened, the endpoint serves afterwards.
    assert wait_recovered(endpoint, time.monotonic(), SPEC["defaults"]["recovery_timeout"]) is not None
