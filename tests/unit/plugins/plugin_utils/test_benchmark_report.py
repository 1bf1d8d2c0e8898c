# -*- coding: utf-8 -*-
"""The benchmark report writer on a recorded run (tests/fixtures/benchmark/tiny-cpu: the result JSONs real
`vllm bench serve` 0.32.0 saved): the table's cells are the JSONs' figures, the PNG is valid, a comparison gives
after / before, bad run directories are refused; the benchmark_report action writes once and not in check mode."""

from __future__ import annotations

import json
import os
import shutil
import struct
import zlib
from unittest.mock import MagicMock

import pytest
from ansible.parsing.dataloader import DataLoader
from ansible.playbook.play_context import PlayContext
from ansible.template import Templar

from ansible_collections.inference.deepseek_v4.plugins.action.benchmark_report import ActionModule
from ansible_collections.inference.deepseek_v4.plugins.plugin_utils import benchmark_report as br

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
RUN = os.path.join(ROOT, "tests", "fixtures", "benchmark", "tiny-cpu")


def result(concurrency):
    with open(os.path.join(RUN, "results", "tiny-c%d.json" % concurrency), encoding="utf-8") as f:
        return json.load(f)


@pytest.fixture
def run_dir(tmp_path):
    dest = tmp_path / "run"
    shutil.copytree(RUN, str(dest))
    return str(dest)


def png_size(data):
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, size = 8, b"", None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        assert struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])[0] == zlib.crc32(kind + body) & 0xFFFFFFFF
        if kind == b"IHDR":
            size = struct.unpack(">II", body[:8])
        idat += body if kind == b"IDAT" else b""
        pos += 12 + length
    assert len(zlib.decompress(idat)) == size[1] * (1 + 3 * size[0])
    return size


def test_rows_are_the_result_figures():
    _meta, rows = br.load_run(RUN)
    assert [r["concurrency"] for r in rows] == [1, 4]
    for row in rows:
        data = result(row["concurrency"])
        assert row["output_throughput"] == data["output_throughput"]
        assert row["p50_itl_ms"] == data["p50_itl_ms"] and row["p99_itl_ms"] == data["p99_itl_ms"]
        assert row["failed"] == data["failed"] == 0 and row["prompts"] == 8


def test_table_cells():
    _meta, rows = br.load_run(RUN)
    lines = br.table(rows).splitlines()
    assert lines[0].startswith("| concurrency | prompts | completed | errors | req/s | output tok/s")
    cells = [c.strip() for c in lines[3].strip("|").split("|")]
    data = result(4)
    assert cells[0] == "4" and cells[5] == "%.1f" % data["output_throughput"]
    assert cells[11] == "%.2f" % data["p50_itl_ms"] and cells[12] == "%.2f" % data["p99_itl_ms"]


def test_compare_gives_after_over_before():
    _meta, rows = br.load_run(RUN)
    faster = [dict(r, output_throughput=r["output_throughput"] * 2, mean_ttft_ms=r["mean_ttft_ms"] / 2) for r in rows]
    assert br.ratios(rows, faster)[4]["output_throughput"] == pytest.approx(2.0)
    assert br.ratios(rows, faster)[1]["mean_ttft_ms"] == pytest.approx(0.5)
    text = br.compare(rows, faster[1:], "a", "b")
    assert "| 4 |" in text and "(x2.00)" in text and "(x0.50)" in text
    assert "Concurrencies in one run only (left out): 1" in text
    with pytest.raises(br.ReportError):
        br.compare(rows[:1], faster[1:])


def test_png_is_valid():
    _meta, rows = br.load_run(RUN)
    assert png_size(br.plot(rows, "tiny")) == (1260, 390)


def test_bad_run_dirs(tmp_path):
    with pytest.raises(br.ReportError, match="no result JSON"):
        br.load_run(str(tmp_path))
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "x.json").write_text(json.dumps({"completed": 1}))
    with pytest.raises(br.ReportError, match="max_concurrency"):
        br.load_run(str(tmp_path))


def action(args, check_mode=False):
    task = MagicMock()
    task.args = args
    task.check_mode = check_mode
    task.async_val = 0
    task.action = "inference.deepseek_v4.benchmark_report"
    loader = DataLoader()
    return ActionModule(task=task, connection=MagicMock(), play_context=PlayContext(), loader=loader,
                        templar=Templar(loader=loader), shared_loader_obj=None).run(task_vars={})


def test_action_writes_once_and_not_in_check_mode(run_dir):
    dry = action({"run_dir": run_dir}, check_mode=True)
    assert dry["changed"] and not os.path.exists(os.path.join(run_dir, "report.md"))
    first = action({"run_dir": run_dir})
    assert first["changed"] and os.path.exists(first["png"])
    with open(first["markdown"], encoding="utf-8") as f:
        assert "| 4 | 8 | 8 | 0 |" in f.read()
    again = action({"run_dir": run_dir, "compare_to": RUN})
    assert not again["changed"] and again["ratios"][4]["output_throughput"] == pytest.approx(1.0)
    assert action({"run_dir": os.path.join(run_dir, "missing")})["failed"]
