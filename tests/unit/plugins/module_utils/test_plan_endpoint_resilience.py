# -*- coding: utf-8 -*-
"""The endpoint's resilience as plan data: vllm-router's retries, circuit breaker and health checks set from the
plan_router_* settings on every router; the endpoint's failure policy (plan_endpoint_failure_policy) and the engines
the endpoint front falls back to, refused where the connector's engines cannot serve whole requests alone."""

from __future__ import annotations

import pytest

from ansible_collections.inference.deepseek_v4.plugins.module_utils._plan import PlanError, build_plan
from ansible_collections.inference.deepseek_v4.plugins.module_utils._plan.profiles import ROUTER_RESILIENCE, SETTINGS
from ansible_collections.inference.deepseek_v4.tests.unit.plugins.module_utils.test_plan_scrape_targets import HOSTS

ROUTED = [t for t in sorted(HOSTS) if any(s["kind"] == "router" for s in build_plan({"topology": t}, HOSTS[t])
                                          ["services"])]


def flag_value(argv, flag):
    assert argv.count(flag) == 1, "%s missing or repeated" % flag
    return argv[argv.index(flag) + 1]


def test_every_router_topology_is_covered():
    assert {"h200_pd", "h200_pd_nixl", "gb200_pd_cluster"} <= set(ROUTED)


@pytest.mark.parametrize("topology", ROUTED)
def test_router_resilience_flags_follow_the_settings(topology):
    changed = {"router_retry_max_retries": 5, "router_retry_jitter_percent": 35, "router_health_check_interval_secs": 2}
    for settings in ({}, changed):
        plan = build_plan(dict(settings, topology=topology), HOSTS[topology])
        (router,) = [s for s in plan["services"] if s["kind"] == "router"]
        for flag, setting, scale in ROUTER_RESILIENCE:
            value = settings.get(setting, SETTINGS[setting]["default"])
            expected = str(value) if scale == 1 else "%.2f" % (value / float(scale))
            assert flag_value(router["argv"], flag) == expected, flag
    assert flag_value(router["argv"], "--retry-jitter-factor") == "0.35"


@pytest.mark.parametrize("topology, policy, roles", [
    ("h200_pd", "fallback", ["decode", "prefill"]),
    ("h200_pd_nixl", "fallback", ["decode", "prefill"]),
    ("gb200_pd_cluster", "retry", []),
])
def test_auto_policy_falls_back_only_where_engines_serve_alone(topology, policy, roles):
    plan = build_plan({"topology": topology}, HOSTS[topology])
    endpoint = plan["endpoint"]
    assert endpoint["policy"] == policy
    engines = [s for s in plan["services"] if s["kind"] == "engine"]
    expected = ["http://%s:%d" % (s["bind_address"], s["ports"]["api"]) for role in roles for s in engines
                if s["role"] == role]
    assert endpoint["fallbacks"] == expected
    assert endpoint["url"] not in endpoint["fallbacks"]


@pytest.mark.parametrize("policy", ["retry", "fail"])
def test_a_chosen_policy_has_no_fallbacks(policy):
    plan = build_plan({"topology": "h200_pd", "endpoint_failure_policy": policy}, HOSTS["h200_pd"])
    assert plan["endpoint"] == dict(plan["endpoint"], policy=policy, fallbacks=[])


def test_fallback_refused_where_the_engines_cannot_serve_alone():
    with pytest.raises(PlanError) as err:
        build_plan({"topology": "gb200_pd_cluster", "endpoint_failure_policy": "fallback"},
                   HOSTS["gb200_pd_cluster"])
    text = str(err.value)
    assert "plan_endpoint_failure_policy" in text and "kv_both" in text and "set retry" in text


@pytest.mark.parametrize("name, value", [("router_retry_max_retries", 0), ("router_retry_jitter_percent", 101),
                                         ("router_health_check_interval_secs", 0),
                                         ("router_cb_failure_threshold", -1)])
def test_out_of_range_refused_with_the_range(name, value):
    with pytest.raises(PlanError) as err:
        build_plan({"topology": "h200_pd", name: value}, HOSTS["h200_pd"])
    row = SETTINGS[name]
    assert "plan_%s" % name in str(err.value)
    assert "from %s to %s" % (row["minimum"], row["maximum"]) in str(err.value)


def test_topologies_without_a_router_have_no_front_policy():
    for topology in sorted(set(HOSTS) - set(ROUTED)):
        endpoint = build_plan({"topology": topology}, HOSTS[topology])["endpoint"]
        assert endpoint["policy"] == "fail" and endpoint["fallbacks"] == [], topology


def without_ports(argv):
    ports = ("--port", "--prometheus-port")
    return [t for i, t in enumerate(argv) if t not in ports and argv[i - 1] not in ports]


@pytest.mark.parametrize("topology", ROUTED)
def test_standby_router_is_the_router_on_its_own_ports(topology):
    for settings in ({}, {"router_standby_port": 31001, "router_metrics_port": 29100,
                          "router_standby_metrics_port": 29101}):
        plan = build_plan(dict(settings, topology=topology), HOSTS[topology])
        (router,) = [s for s in plan["services"] if s["kind"] == "router"]
        standby = router["standby"]
        port = settings.get("router_standby_port", 30001)
        metrics = settings.get("router_standby_metrics_port", 29001)
        assert standby["name"] == router["name"] + "-standby"
        assert flag_value(standby["argv"], "--port") == str(port)
        assert flag_value(standby["argv"], "--prometheus-port") == str(metrics)
        # Every other token is the router's own: the same workers, policy and resilience options.
        assert without_ports(standby["argv"]) == without_ports(router["argv"])
        assert standby["url"] == "http://127.0.0.1:%d" % port
        assert standby["readiness"]["completion"] == "http://127.0.0.1:%d/v1/completions" % port
        assert plan["endpoint"]["standby"] == standby["url"]
        host_ports = {p["name"]: p["first"] for p in plan["hosts"][router["host"]]["ports"]}
        assert (host_ports["router_standby"], host_ports["router_standby_metrics"]) == (port, metrics)


def test_standby_port_taken_by_the_router_is_refused():
    with pytest.raises(PlanError) as err:
        build_plan({"topology": "h200_pd", "router_standby_port": 30000}, HOSTS["h200_pd"])
    assert "plan_router_standby_port" in str(err.value)


@pytest.mark.parametrize("topology", sorted(HOSTS))
def test_engines_drain_on_stop_where_their_vllm_can(topology):
    """Every engine gets vLLM's --shutdown-timeout (plan_engine_shutdown_timeout) and a container stop timeout 30 s
    longer; a profile whose vLLM predates the flag (0.18.0) gets neither, and 0 keeps vLLM's abort."""
    for settings, drain in (({}, 600), ({"engine_shutdown_timeout": 120}, 120), ({"engine_shutdown_timeout": 0}, None),
                            ({"vllm_version": "0.17.1"}, None)):
        plan = build_plan(dict(settings, topology=topology), HOSTS[topology])
        engines = [s for s in plan["services"] if s["kind"] == "engine"]
        assert engines
        for svc in engines:
            if drain is None:
                assert "--shutdown-timeout" not in svc["argv"] and svc["container"]["stop_timeout"] is None
            else:
                assert flag_value(svc["argv"], "--shutdown-timeout") == str(drain)
                assert svc["container"]["stop_timeout"] == drain + 30


@pytest.mark.parametrize("topology, settings, tries", [
    ("gb200_pd_cluster", {}, 6),
    ("gb200_pd_cluster", {"endpoint_retry_tries": 3}, 3),
    ("h200_pd", {"endpoint_failure_policy": "retry"}, 6),
    ("h200_pd", {}, 3),  # fallback: the router, then each of the two engines
    ("h200_pd", {"endpoint_failure_policy": "fail"}, 1),
])
def test_the_front_tries_outlast_the_routers_health_checks(topology, settings, tries):
    """The router's prefill/decode path does not retry a failed prefill: a lost prefill worker keeps being picked
    until its health checks leave it out, so the front passes a request through the router again, tries times."""
    plan = build_plan(dict(settings, topology=topology), HOSTS[topology])
    assert plan["endpoint"]["tries"] == tries
    (router,) = [s for s in plan["services"] if s["kind"] == "router"]
    assert flag_value(router["argv"], "--health-check-timeout-secs") == "2"
    assert flag_value(router["argv"], "--health-check-interval-secs") == "2"


def test_retry_tries_out_of_range_refused():
    with pytest.raises(PlanError) as err:
        build_plan({"topology": "gb200_pd_cluster", "endpoint_retry_tries": 1}, HOSTS["gb200_pd_cluster"])
    assert "plan_endpoint_retry_tries" in str(err.value) and "from 2 to 20" in str(err.value)
