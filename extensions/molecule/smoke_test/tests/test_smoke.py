"""Checks the smoke_test role's result: pinned client on the instance, a passing summary on the controller."""

import json
import os
from pathlib import Path

VENV = "/opt/deepseek-v4/smoke-venv"


def test_openai_pinned_in_venv(host):
    assert "Version: 3.54.0" in host.check_output(f"{VENV}/bin/pip show openai")


def test_summary_passed_through_router():
    summary = json.loads((Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "smoke-summary.json").read_text())
    assert summary["passed"] is True
    assert summary["endpoint"] == "http://127.0.0.1:30000"
    assert set(summary["modes"]) == {"non_think", "think_high", "think_max"}
    for mode, result in summary["modes"].items():
        assert result["ok"] and result["answer_ok"] is True, (mode, result)
        assert result["ttft_s"] is not None and result["latency_s"] >= result["ttft_s"]
        assert result["has_reasoning"] == (mode != "non_think")
    assert '"reasoning_effort": "max"' in summary["modes"]["think_max"]["curl"]
