"""Outcomes of the prometheus scenario inside the instance: the distribution's Prometheus and node exporter, scraping
the stand-in engine's metrics and node exporter at the plan's addresses."""

import json

import pytest

TARGETS = "/etc/prometheus/targets/deepseek_v4.json"


def api(host, path):
    return json.loads(host.check_output("python3 -c %s" % _quote(
        "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:9090%s', timeout=10).read().decode())"
        % path)))


def _quote(text):
    return "'" + text.replace("'", "'\"'\"'") + "'"


@pytest.mark.parametrize("unit", ["prometheus", "prometheus-node-exporter"])
def test_running_and_enabled(host, unit):
    service = host.service(unit)
    assert service.is_running and service.is_enabled


def test_listen_on_loopback_only(host):
    for addr in ("tcp://127.0.0.1:9090", "tcp://127.0.0.1:9100"):
        assert host.socket(addr).is_listening, addr
    for addr in ("tcp://0.0.0.0:9090", "tcp://0.0.0.0:9100", "tcp://:::9090", "tcp://:::9100"):
        assert not host.socket(addr).is_listening, addr


def test_targets_file_is_the_plan_plus_node_exporter(host):
    groups = json.loads(host.file(TARGETS).content_string)
    assert [g["targets"] for g in groups] == [["127.0.0.1:18000"], ["127.0.0.1:9100"]]
    assert groups[1]["labels"] == {"topology": "h200_pd", "role": "node", "host": "dsv4-prom-node",
                                   "service": "node-exporter"}
    assert host.file(TARGETS).mode == 0o644


def test_every_target_up(host):
    active = api(host, "/api/v1/targets?state=active")["data"]["activeTargets"]
    mine = [t for t in active if t["labels"]["job"] == "deepseek_v4"]
    urls = sorted(t["scrapeUrl"] for t in mine)
    assert urls == ["http://127.0.0.1:18000/metrics.txt", "http://127.0.0.1:9100/metrics"]
    assert {t["health"] for t in mine} == {"up"}, mine


def test_engine_series_queryable_with_plan_labels(host):
    result = api(host, "/api/v1/query?query=vllm:num_requests_running")["data"]["result"]
    assert result, "no vllm:num_requests_running series"
    assert result[0]["metric"]["service"] == "dsv4-prefill"
    assert result[0]["metric"]["role"] == "prefill"


def test_arguments(host):
    assert 'ARGS="--web.listen-address=127.0.0.1:9090 --storage.tsdb.retention.time=15d"' in \
        host.file("/etc/default/prometheus").content_string
    assert 'ARGS="--web.listen-address=127.0.0.1:9100"' in host.file("/etc/default/prometheus-node-exporter").content_string
