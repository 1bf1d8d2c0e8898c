"""The chaos scenarios are data that the runner understands: known events and checks, known services, checks that
can fail (each breaks on an outcome that violates it)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

import chaos_lib as C  # noqa: E402  pylint: disable=wrong-import-position

SPEC = yaml.safe_load((Path(__file__).with_name("scenarios.yml")).read_text())
EVENTS = {"wait", "kill", "pause", "restart_docker", "restart_node", "wait_recovered", "wait_settled", "upgrade",
          "lose_host"}
CHECKS = {"max_failed", "max_failed_percent", "min_completed", "max_recovery_s", "not_restarted", "max_streams_cut",
          "max_failed_unstreamed"}


@pytest.mark.parametrize("scenario", SPEC["scenarios"], ids=[s["id"] for s in SPEC["scenarios"]])
def test_scenario_is_understood(scenario):
    rehearsal = SPEC["rehearsals"][scenario["rehearsal"]]
    services = rehearsal["services"]
    assert {"topology", "endpoint", "node", "guards", "guard_metrics", "services"} <= set(rehearsal)
    assert scenario["why"] and scenario["checks"]
    for event in scenario["events"]:
        (kind,) = set(event) - {"seconds", "max_num_seqs"}
        assert kind in EVENTS, event
        if kind in ("kill", "pause"):
            assert event[kind] in services, event
        if kind == "upgrade":
            assert event["upgrade"] in ("prefill", "decode"), event
        if kind == "pause":
            assert "container" in services[event["pause"]] and event["seconds"] > 0
        if kind == "lose_host":
            assert event["lose_host"] in rehearsal.get("hosts", {}), event
    assert set(scenario["checks"]) <= CHECKS
    assert set(scenario["checks"].get("not_restarted", [])) <= set(services)
    if "max_recovery_s" in scenario["checks"]:
        assert {"wait_recovered": True} in scenario["events"], "a recovery time needs a wait_recovered event"


def test_the_goal_scenarios_are_there():
    ids = {s["id"] for s in SPEC["scenarios"]}
    assert {"engine-stall", "router-kill", "prefill-kill", "decode-kill", "upgrade-decode", "upgrade-prefill",
            "node-restart", "docker-restart", "gb200-upgrade-decode", "gb200-upgrade-prefill",
            "gb200-prefill-tray-lost"} <= ids
    # One rollout per rehearsal: a rehearsal's scenarios follow each other.
    order = [s["rehearsal"] for s in SPEC["scenarios"]]
    assert order == sorted(order, key=order.index)


def _outcome(oks, streamed=False, first=True, restarted=(), recovery=5.0):
    return C.Outcome("x", [C.Result(0.0, streamed, ok, first) for ok in oks], recovery, list(restarted))


@pytest.mark.parametrize("checks, outcome, broken", [
    ({"max_failed": 0}, _outcome([True, False]), "1 requests failed"),
    ({"max_failed_percent": 1}, _outcome([True] * 98 + [False] * 2), "2.0% of requests failed"),
    ({"min_completed": 3}, _outcome([True, True, False]), "2 requests completed"),
    ({"max_recovery_s": 10}, _outcome([True], recovery=None), "recovery took None"),
    ({"max_recovery_s": 10}, _outcome([True], recovery=10.5), "recovery took 10.5"),
    ({"not_restarted": ["decode"]}, _outcome([True], restarted=["decode", "router"]), "decode"),
    ({"max_streams_cut": 0}, _outcome([False], streamed=True, first=True), "1 streams cut"),
    ({"max_failed_unstreamed": 0}, _outcome([True, False]), "1 non-streamed requests failed"),
])
def test_each_check_can_fail(checks, outcome, broken):
    problems = C.violations(outcome, checks)
    assert len(problems) == 1 and broken in problems[0]


def test_a_clean_outcome_passes_every_check():
    outcome = _outcome([True] * 100, recovery=3.0)
    checks = {"max_failed": 0, "max_failed_percent": 0, "min_completed": 100, "max_recovery_s": 3,
              "not_restarted": ["prefill"], "max_streams_cut": 0}
    assert not C.violations(outcome, checks)
    assert C.table([outcome]).splitlines()[2].startswith("| x | 100 | 0 (0.0%) | 0 |")
