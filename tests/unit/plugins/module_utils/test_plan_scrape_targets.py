# -*- coding: utf-8 -*-
"""The plan's Prometheus scrape targets (file_sd): one per engine, router and LMCache server of every topology, at the
address and port each listens on for its metrics, labelled topology, role, host and service."""

from __future__ import annotations

import json
import re

import pytest

from ansible_collections.inference.deepseek_v4.plugins.module_utils._plan import build_plan
from ansible_collections.inference.deepseek_v4.plugins.module_utils._plan import profiles as P

ONE_HOST_PD = [{"name": "node1", "groups": ["prefill", "decode", "router"], "address": "10.0.0.11"}]
SERVING = [{"name": "node1", "groups": ["serving"], "address": "10.0.0.11"}]
DEP = [{"name": "node-%d" % i, "groups": ["serving"], "address": "10.0.2.1%d" % i} for i in (1, 2)]
GB200 = [{"name": "p1", "groups": ["prefill"], "address": "10.1.0.1"},
         {"name": "p2", "groups": ["prefill"], "address": "10.1.0.2"},
         {"name": "d1", "groups": ["decode"], "address": "10.1.0.3"},
         {"name": "d2", "groups": ["decode"], "address": "10.1.0.4"},
         {"name": "r1", "groups": ["router"], "address": "10.1.0.5", "gpu_count": 0}]
HOSTS = {"h200_pd": ONE_HOST_PD, "h200_pd_nixl": ONE_HOST_PD, "single_node": SERVING, "single_node_tp": SERVING,
         "single_node_tep": SERVING, "lmcache_tp8": SERVING, "multi_node_dep": DEP, "gb200_pd_cluster": GB200}
# Where each kind serves its metrics: the port of its ports and how its listen address is read from its argv.
METRICS_PORT = {"engine": "api", "router": "router_metrics", "lmcache": "lmcache_http"}
LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


def argv_value(svc, flag, default):
    return svc["argv"][svc["argv"].index(flag) + 1] if flag in svc["argv"] else default


def expected_address(plan, svc):
    """Read from the service's own argv, independently of the plan's renderer."""
    bind = {"engine": argv_value(svc, "--host", "0.0.0.0"),
            "router": argv_value(svc, "--prometheus-host", "127.0.0.1"),
            "lmcache": argv_value(svc, "--http-host", "127.0.0.1")}[svc["kind"]]
    return plan["hosts"][svc["host"]]["address"] if bind in ("0.0.0.0", "::") else bind


def test_every_topology_is_covered():
    assert set(HOSTS) == set(P.TOPOLOGIES)


@pytest.mark.parametrize("topology", sorted(HOSTS))
def test_one_target_per_service_with_metrics(topology):
    plan = build_plan({"topology": topology}, HOSTS[topology])
    groups = plan["scrape_targets"]
    # a service name repeats across hosts (one engine per node): host and service name one
    by_service = {(g["labels"]["host"], g["labels"]["service"]): g for g in groups}
    assert len(by_service) == len(groups) == len(plan["services"]), [g["labels"]["service"] for g in groups]
    for svc in plan["services"]:
        group = by_service[(svc["host"], svc["name"])]
        port = svc["ports"][METRICS_PORT[svc["kind"]]]
        assert group["targets"] == ["%s:%d" % (expected_address(plan, svc), port)], svc["name"]
        assert group["labels"] == {"topology": topology, "role": svc["role"], "host": svc["host"],
                                   "service": svc["name"], "__metrics_path__": "/metrics"}
    targets = [t for g in groups for t in g["targets"]]
    assert len(set(targets)) == len(targets)


@pytest.mark.parametrize("topology", sorted(HOSTS))
def test_file_sd_shape(topology):
    """What Prometheus's file_sd reads: a list of {targets: [host:port], labels: {name: string}}, nothing else."""
    groups = json.loads(json.dumps(build_plan({"topology": topology}, HOSTS[topology])["scrape_targets"]))
    assert groups
    for group in groups:
        assert set(group) == {"targets", "labels"}
        assert all(re.match(r"^(\[[0-9a-f:]+\]|[A-Za-z0-9.-]+):\d+$", t) for t in group["targets"]), group
        assert all(LABEL_NAME.match(k) and isinstance(v, str) and v for k, v in group["labels"].items()), group


def test_h200_pd_targets_are_the_engines_and_the_router_on_loopback():
    groups = build_plan({"topology": "h200_pd"}, ONE_HOST_PD)["scrape_targets"]
    assert [(g["labels"]["role"], g["targets"][0]) for g in groups] == [
        ("prefill", "127.0.0.1:8000"), ("decode", "127.0.0.1:8001"), ("router", "127.0.0.1:29000")]


def test_engines_a_router_elsewhere_reaches_are_scraped_at_their_address():
    groups = build_plan({"topology": "gb200_pd_cluster"}, GB200)["scrape_targets"]
    got = {g["labels"]["host"] + "/" + g["labels"]["role"]: g["targets"][0] for g in groups}
    assert got["p1/prefill"].startswith("10.1.0.1:") and got["d2/decode"].startswith("10.1.0.4:")
    # vllm-router serves its metrics on loopback unless --prometheus-host says otherwise
    assert got["r1/router"] == "127.0.0.1:29000"


def test_router_metrics_port_and_host_follow_the_settings():
    plan = build_plan({"topology": "h200_pd", "router_metrics_port": 29100,
                       "router_extra_args": ["--prometheus-host", "0.0.0.0"]}, ONE_HOST_PD)
    router = [g for g in plan["scrape_targets"] if g["labels"]["role"] == "router"]
    assert router[0]["targets"] == ["10.0.0.11:29100"]


def test_a_host_bind_address_is_the_engine_target():
    hosts = [dict(SERVING[0], engine_bind_address="10.0.0.11")]
    plan = build_plan({"topology": "single_node"}, hosts)
    assert [g["targets"] for g in plan["scrape_targets"]] == [["10.0.0.11:8000"]]


def test_an_ipv6_address_is_bracketed():
    hosts = [dict(SERVING[0], engine_bind_address="fd00::11")]
    plan = build_plan({"topology": "single_node"}, hosts)
    assert plan["scrape_targets"][0]["targets"] == ["[fd00::11]:8000"]


def test_every_lmcache_server_is_a_target_on_its_http_port():
    plan = build_plan({"topology": "lmcache_tp8", "replicas_per_host": 2, "lmcache_http_port": 8090}, SERVING)
    lmcache = sorted(g["targets"][0] for g in plan["scrape_targets"] if g["labels"]["role"] == "lmcache")
    assert lmcache == ["127.0.0.1:8090", "127.0.0.1:8091"]
