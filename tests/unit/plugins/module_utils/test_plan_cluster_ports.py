# -*- coding: utf-8 -*-
"""The plan's cluster_ports section (role cluster_firewall): which ports of which host only the plan's hosts reach."""

from __future__ import annotations

from ansible_collections.inference.deepseek_v4.plugins.module_utils._plan import build_plan


def gb200_hosts():
    hosts = [{"name": "p%d" % i, "groups": ["prefill"], "address": "10.0.1.1%d" % i} for i in (1, 2)]
    hosts += [{"name": "d%d" % i, "groups": ["decode"], "address": "10.0.1.2%d" % i} for i in (1, 2)]
    return hosts + [{"name": "r", "groups": ["router"], "address": "10.0.1.5", "gpu_count": 0}]


def ranges(section, host):
    return [(e["name"], e["first"], e["last"], e["variable"], e["api"]) for e in section["hosts"][host]]


def test_gb200_every_engine_port_and_range_of_each_tray():
    section = build_plan({"topology": "gb200_pd_cluster"}, gb200_hosts())["cluster_ports"]
    assert section["enabled"] is True
    assert section["addresses"] == ["10.0.1.11", "10.0.1.12", "10.0.1.21", "10.0.1.22", "10.0.1.5"]
    assert ranges(section, "p2") == [
        ("api", 8001, 8001, "plan_prefill_port", True),
        ("nixl_side_channel", 5561, 5564, "plan_prefill_side_channel_port", False),
        ("dp_rpc", 29550, 29550, "plan_prefill_dp_rpc_port", False),
        ("collective", 32768, 60999, None, False)]
    assert ranges(section, "d1")[:3] == [
        ("api", 8002, 8002, "plan_decode_port", True),
        ("nixl_side_channel", 5558, 5561, "plan_decode_side_channel_port", False),
        ("dp_rpc", 29650, 29650, "plan_decode_dp_rpc_port", False)]
    # The router host runs no engine: nothing of it is limited (its router binds loopback).
    assert "r" not in section["hosts"]


def test_multi_node_dep_publishes_vllms_default_rpc_port():
    hosts = [{"name": "n%d" % i, "groups": ["serving"], "address": "10.0.2.1%d" % i} for i in (1, 2)]
    section = build_plan({"topology": "multi_node_dep", "engine_port": 8100}, hosts)["cluster_ports"]
    assert section["enabled"] is True
    for host in ("n1", "n2"):
        assert ranges(section, host) == [("api", 8100, 8100, "plan_engine_port", True),
                                         ("dp_rpc", 29550, 29550, None, False),
                                         ("collective", 32768, 60999, None, False)]
        assert section["hosts"][host][1]["source"] == "vllm_default"


def single_host(topology, **host):
    return build_plan({"topology": topology}, [
        dict(host, name="h", groups=["prefill", "decode", "router", "serving"], address="10.0.0.11")])["cluster_ports"]


def test_a_single_host_with_a_port_bound_to_every_address_is_on_and_lists_no_collective_range():
    """vLLM's Mooncake bootstrap server and Mooncake's transfer engine handshake bind every address whatever the
    settings: h200_pd limits them to the host."""
    section = single_host("h200_pd")
    assert section["enabled"] is True
    assert section["why"] == ("bound wider than loopback: deepseek-v4-decode mooncake_bootstrap, deepseek-v4-decode "
                              "mooncake_handshake, deepseek-v4-prefill mooncake_bootstrap, deepseek-v4-prefill "
                              "mooncake_handshake")
    assert section["addresses"] == ["10.0.0.11"]
    assert [(e["name"], e["first"], e["last"], e["binds"], e["source"]) for e in section["hosts"]["h"]] == [
        ("api", 8000, 8000, "127.0.0.1", "service"), ("mooncake_bootstrap", 8998, 8998, "0.0.0.0", "service"),
        ("api", 8001, 8001, "127.0.0.1", "service"), ("mooncake_bootstrap", 9889, 9889, "0.0.0.0", "service"),
        ("mooncake_handshake", 15000, 17000, "0.0.0.0", "mooncake_default"),
        ("mooncake_handshake", 15000, 17000, "0.0.0.0", "mooncake_default")]


def test_nixl_engines_list_no_mooncake_handshake():
    for topology in ("h200_pd_nixl", "single_node", "lmcache_tp8"):
        assert not any(e["name"] == "mooncake_handshake" for e in single_host(topology)["hosts"]["h"]), topology
    section = build_plan({"topology": "gb200_pd_cluster"}, gb200_hosts())["cluster_ports"]
    assert not any(e["name"] == "mooncake_handshake" for entries in section["hosts"].values() for e in entries)


def test_single_host_topologies_whose_ports_bind_loopback_are_off():
    for topology in ("h200_pd_nixl", "lmcache_tp8", "single_node"):
        section = single_host(topology)
        assert section["enabled"] is False, topology
        assert section["why"] == "every limited port binds loopback", topology
        assert all(e["binds"] in ("127.0.0.1", "localhost") for e in section["hosts"]["h"]), section
        assert not any(e["name"] == "collective" for e in section["hosts"]["h"])
    nixl = single_host("h200_pd_nixl")["hosts"]["h"]
    assert [(e["name"], e["binds"]) for e in nixl if e["name"] != "api"] == [
        ("nixl_side_channel", "localhost"), ("nixl_side_channel", "localhost")]
    lmcache = single_host("lmcache_tp8")["hosts"]["h"]
    assert {(e["name"], e["binds"]) for e in lmcache} >= {("lmcache_zmq", "localhost"), ("lmcache_http", "127.0.0.1")}


def test_an_engine_api_bound_wider_turns_a_single_host_on():
    section = single_host("single_node", engine_bind_address="0.0.0.0")
    assert section["enabled"] is True and section["why"] == "bound wider than loopback: deepseek-v4-engine api"


def test_the_multi_host_entries_say_what_they_bind():
    section = build_plan({"topology": "gb200_pd_cluster"}, gb200_hosts())["cluster_ports"]
    assert section["why"] == "the data-parallel pools span hosts"
    assert [(e["name"], e["binds"]) for e in section["hosts"]["p1"]] == [
        ("api", "10.0.1.11"), ("nixl_side_channel", "10.0.1.11"), ("dp_rpc", "0.0.0.0"), ("collective", "0.0.0.0")]


def test_the_section_leaves_every_service_hash_alone():
    """A new section of the document, not a new port of a service: engines are not recreated by it."""
    result = build_plan({"topology": "gb200_pd_cluster"}, gb200_hosts())
    assert all("collective" not in svc["ports"] for svc in result["services"])
