"""The converged firewall seen from the network: fw-peer (a plan host) is served on every limited port of fw-node,
fw-outsider (same Docker network, no plan host) is refused on them and still served on the port the plan does not
list; fw-node itself keeps its table, its unit and someone else's table."""

import json

import pytest

LIMITED = ("api", "dp_rpc", "collective")
CONNECT = "python3 -c 'import socket,sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), 3).close()' %s %s"


def _setup(host):
    return json.loads(host.file("/etc/fw-addresses.json").content_string)


def _reach(host, port_name):
    setup = _setup(host)
    return host.run(CONNECT, setup["addresses"]["fw-node"], str(setup["ports"][port_name])).rc == 0


def test_peer_is_served_on_every_port(host):
    if not host.backend.get_hostname().startswith("fw-peer"):
        pytest.skip("from fw-peer")
    for name in LIMITED + ("open",):
        assert _reach(host, name), name


def test_outsider_is_refused_on_the_limited_ports_only(host):
    if not host.backend.get_hostname().startswith("fw-outsider"):
        pytest.skip("from fw-outsider")
    for name in LIMITED:
        assert not _reach(host, name), "%s reached from an address that is no plan host" % name
    assert _reach(host, "open"), "a port the plan does not list must stay open"


def test_node_table_unit_and_other_table(host):
    if not host.backend.get_hostname().startswith("fw-node"):
        pytest.skip("on fw-node")
    setup = _setup(host)
    table = host.run("nft list table inet deepseek_v4")
    assert table.rc == 0, table.stderr
    assert 'comment "inference.deepseek_v4 cluster_firewall sha256:' in table.stdout
    # Membership, not text: nft merges neighbouring addresses into a network (172.17.0.2/31).
    element = "nft get element inet deepseek_v4 cluster_ipv4 '{ %s }'"
    for name in ("fw-node", "fw-peer"):
        assert host.run(element % setup["addresses"][name]).rc == 0, name
    assert host.run(element % setup["addresses"]["fw-outsider"]).rc != 0
    # The plan's API and DP RPC ports and the container's own ephemeral range (the collective range).
    low, high = host.file("/proc/sys/net/ipv4/ip_local_port_range").content_string.split()
    assert "8000, 29550, %s-%s" % (low, high) in table.stdout
    assert host.run("nft list table inet someone_else").rc == 0
    unit = host.service("deepseek-v4-cluster-firewall")
    assert unit.is_enabled
    conf = host.file("/etc/deepseek-v4-firewall/deepseek-v4-cluster-firewall.nft")
    assert conf.mode == 0o644 and conf.user == "root"
    assert host.run("nft -c -f %s" % conf.path).rc == 0
    # Loopback is never limited.
    assert host.run(CONNECT, "127.0.0.1", str(setup["ports"]["dp_rpc"])).rc == 0
