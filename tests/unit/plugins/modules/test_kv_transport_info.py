# -*- coding: utf-8 -*-
# Copyright: inference.deepseek_v4 maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""The post-rollout KV transport gate on engine log doubles: RDMA above the floor passes, TCP and a slow RDMA fail."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os

import pytest

from ansible_collections.inference.deepseek_v4.plugins.module_utils import kv_transport
from ansible_collections.inference.deepseek_v4.plugins.modules import kv_transport_info

LOGS = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "doubles",
                                     "engine_logs"))


def log(name):
    with open(os.path.join(LOGS, name)) as handle:
        return handle.read().splitlines()


def gate(logs, **kw):
    params = dict({"expect": "rdma", "min_rate_gbytes_per_s": 5.0, "require_report": True}, logs=logs)
    params.update(kw)
    return kv_transport_info.check(params)


def test_rdma_above_the_floor_passes():
    result = gate({"deepseek-v4-decode": log("mooncake_rdma_decode.log")})
    decode = result["services"]["deepseek-v4-decode"]
    assert decode["path"] == "rdma" and decode["nics"] == {0: "mlx5_2", 1: "mlx5_2"}
    assert decode["transfers"] == 4
    # (3 x 17500 + 1 x 18100) / 4 MB/s, MB = 2**20 bytes
    assert decode["rate_gbytes_per_s"] == round((3 * 17500.0 + 18100.0) / 4 * 2 ** 20 / 1e9, 3) == 18.507
    assert result["problems"] == []


def test_mooncake_over_tcp_fails():
    result = gate({"deepseek-v4-prefill": log("mooncake_tcp_prefill.log"),
                   "deepseek-v4-decode": log("mooncake_rdma_decode.log")})
    checks = [(p["check"], p["found"].split(":")[0]) for p in result["problems"]]
    assert checks == [("kv_transport", "deepseek-v4-prefill"), ("kv_transport_rate", "deepseek-v4-prefill")]
    tcp = result["problems"][0]
    assert "using tcp as its protocol" in tcp["found"] and tcp["needed"] == "rdma" and "/dev/infiniband" in tcp["fix"]


def test_nixl_on_the_ucx_tcp_transport_fails():
    result = gate({"deepseek-v4-decode-0": log("nixl_tcp_decode.log")})
    assert result["services"]["deepseek-v4-decode-0"]["path"] == "tcp"
    assert [p["check"] for p in result["problems"]] == ["kv_transport", "kv_transport_rate"]
    assert "tcp/ibp3s0" in result["problems"][0]["found"]


def test_rdma_below_the_floor_fails_with_the_rate():
    result = gate({"deepseek-v4-decode": log("nixl_rdma_slow_decode.log")})
    assert result["services"]["deepseek-v4-decode"]["path"] == "rdma"
    assert [p["check"] for p in result["problems"]] == ["kv_transport_rate"]
    assert "0.760 GB/s over 6 transfer(s)" in result["problems"][0]["found"]
    assert result["problems"][0]["needed"] == ">= 5.0 GB/s"
    # Without a floor only the path counts.
    assert gate({"d": log("nixl_rdma_slow_decode.log")}, min_rate_gbytes_per_s=None)["problems"] == []


def test_no_report_is_unproven():
    result = gate({"deepseek-v4-prefill": ["INFO vLLM API server version 0.20.1"]})
    assert [p["check"] for p in result["problems"]] == ["kv_transport_report"]
    assert gate({"deepseek-v4-prefill": "INFO nothing\n"}, require_report=False)["problems"] == []


def test_tcp_is_fine_where_the_plan_says_tcp():
    assert gate({"p": log("mooncake_tcp_prefill.log")}, expect="tcp", min_rate_gbytes_per_s=None)["problems"] == []


@pytest.mark.parametrize("line, path", [
    ("Mooncake: falling back to TCP, no RDMA device found", "tcp"),
    ("[1.0] [h:1:0] ucp_context.c:2190 UCX  INFO  ucp_context_0 intra-node cfg#1 tag(rc_mlx5/mlx5_0:1)", "rdma"),
    ("a path like /usr/lib/tcp/x is not a transport", None),
    ("The Mooncake Transfer Engine is using rdma as its protocol.", "rdma"),
])
def test_read_lines_path(line, path):
    assert kv_transport.read_lines([line])["path"] == path


def test_parse_metrics_of_the_real_line():
    values = kv_transport.parse_metrics("Num successful transfers=2, Avg xfer time (ms)=1.5, P90 xfer time (ms)=2.0, "
                                        "Avg MB per transfer=3.0, Throughput (MB/s)=2000.0, Num failed transfers=0")
    assert values["Num successful transfers"] == 2 and values["Throughput (MB/s)"] == 2000.0
    assert values["Avg xfer time (ms)"] == 1.5


def test_main(capsys):
    from ansible.module_utils.testing import patch_module_args

    args = {"logs": {"deepseek-v4-prefill": log("mooncake_tcp_prefill.log")}, "min_rate_gbytes_per_s": 5.0,
            "_ansible_check_mode": True}
    with patch_module_args(args), pytest.raises(SystemExit):
        kv_transport_info.main()
    result = json.loads(capsys.readouterr().out)
    assert result["changed"] is False and "ansible_facts" not in result
    assert [p["check"] for p in result["problems"]] == ["kv_transport", "kv_transport_rate"]
