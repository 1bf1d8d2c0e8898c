"""The vLLM serve-parser harness can fail: it accepts a known good flag set and rejects bad ones.

The accepted set is the prefill engine of the H200 single-node PD seed
(tests/fixtures/seeds/000_23be139418635e2c.txt): the arguments after the image in its `docker run`.
"""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.vllm

KV_TRANSFER_CONFIG = {
    "kv_connector": "MooncakeConnector",
    "kv_role": "kv_both",
    "kv_load_failure_policy": "fail",
    "kv_buffer_device": "cuda",
    "kv_connector_extra_config": {"enforce_handshake_compat": False, "mooncake_protocol": "rdma"},
}

SEED_PREFILL_ARGV = [
    "deepseek-ai/DeepSeek-V4-Flash",
    "--trust-remote-code",
    "--kv-cache-dtype", "fp8",
    "--block-size", "256",
    "--port", "8000",
    "--data-parallel-size", "4",
    "--enable-expert-parallel",
    "--tokenizer-mode", "deepseek_v4",
    "--reasoning-parser", "deepseek_v4",
    "--max-model-len", "auto",
    "--max-num-batched-tokens", "16384",
    "--max-num-seqs", "8",
    "--enforce-eager",
    "--no-disable-hybrid-kv-cache-manager",
    "--disable-uvicorn-access-log",
    "--kv-transfer-config", json.dumps(KV_TRANSFER_CONFIG, separators=(",", ":")),
]


def _replace(argv, flag, value):
    """Copy of ``argv`` with the value after ``flag`` replaced."""
    out = list(argv)
    out[out.index(flag) + 1] = value
    return out


def test_seed_prefill_flags_are_accepted(vllm_serve_parser):
    [result] = vllm_serve_parser([SEED_PREFILL_ARGV])
    assert result == {"ok": True, "error": None}


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        pytest.param(SEED_PREFILL_ARGV + ["--no-such-flag"], "unrecognized arguments", id="unknown-flag"),
        pytest.param(_replace(SEED_PREFILL_ARGV, "--kv-cache-dtype", "fp9"), "invalid choice", id="bad-choice"),
        pytest.param(_replace(SEED_PREFILL_ARGV, "--kv-transfer-config", '{"kv_connector": "MooncakeConnector",'),
                     "--kv-transfer-config", id="bad-json"),
    ],
)
def test_bad_flags_are_rejected(vllm_serve_parser, argv, expected):
    [result] = vllm_serve_parser([argv])
    assert result["ok"] is False
    assert expected in result["error"]


def test_answers_keep_input_order(vllm_serve_parser):
    bad = SEED_PREFILL_ARGV + ["--no-such-flag"]
    results = vllm_serve_parser([bad, SEED_PREFILL_ARGV, bad])
    assert [r["ok"] for r in results] == [False, True, False]
