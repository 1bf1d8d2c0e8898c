"""Checks of a benchmark run directory against the result JSONs it holds (shared by the benchmark tests).

Every check parses the files itself: the report's table is read back from report.md and each cell compared with the
figure of the result JSON `vllm bench serve` saved, formatted here independently of the report writer.
"""

from __future__ import annotations

import json
import re
import struct
import zlib
from pathlib import Path

# report column -> (result JSON key, decimals)
CELLS = {
    "concurrency": ("max_concurrency", None),
    "prompts": ("num_prompts", None),
    "completed": ("completed", None),
    "errors": ("failed", None),
    "req/s": ("request_throughput", 2),
    "output tok/s": ("output_throughput", 1),
    "TTFT mean ms": ("mean_ttft_ms", 1),
    "TTFT p99 ms": ("p99_ttft_ms", 1),
    "TPOT mean ms": ("mean_tpot_ms", 2),
    "ITL p50 ms": ("p50_itl_ms", 2),
    "ITL p99 ms": ("p99_itl_ms", 2),
}


def results(run_dir):
    """{concurrency: result JSON} of a run directory."""
    out = {}
    for path in sorted((Path(run_dir) / "results").glob("*.json")):
        data = json.loads(path.read_text())
        out[data["max_concurrency"]] = data
    return out


def markdown_table(text, first_header):
    """The rows of the Markdown table whose first header is first_header, as dicts."""
    lines = [line for line in text.splitlines() if line.startswith("|")]
    start = next(i for i, line in enumerate(lines) if line.split("|")[1].strip() == first_header)
    headers = [c.strip() for c in lines[start].strip("|").split("|")]
    rows = []
    for line in lines[start + 2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) != len(headers):
            break
        rows.append(dict(zip(headers, cells)))
    return rows


def check_report(run_dir, concurrencies, prompts):
    """report.md's numbers are the result JSONs' ones; every request completed."""
    found = results(run_dir)
    assert sorted(found) == sorted(concurrencies), found.keys()
    rows = markdown_table((Path(run_dir) / "report.md").read_text(), "concurrency")
    assert [int(r["concurrency"]) for r in rows] == sorted(concurrencies)
    for row in rows:
        data = found[int(row["concurrency"])]
        assert data["completed"] == prompts and data["failed"] == 0, data
        for header, (key, decimals) in CELLS.items():
            expected = str(int(data[key])) if decimals is None else "%.*f" % (decimals, data[key])
            assert row[header] == expected, (header, row[header], key, data[key])
    return found


def check_png(path):
    """A valid PNG: signature, chunk CRCs, IHDR, IDAT that inflates to the image's size; something drawn."""
    data = Path(path).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks = 8, []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        assert zlib.crc32(kind + body) & 0xFFFFFFFF == crc, kind
        chunks.append((kind, body))
        pos += 12 + length
    assert [k for k, _b in chunks][0] == b"IHDR" and chunks[-1][0] == b"IEND"
    width, height, depth, color, _c, _f, _i = struct.unpack(">IIBBBBB", chunks[0][1])
    assert (depth, color) == (8, 2) and width > 100 and height > 100
    raw = zlib.decompress(b"".join(b for k, b in chunks if k == b"IDAT"))
    assert len(raw) == height * (1 + 3 * width)
    assert len(set(raw)) > 3, "a blank image"
    return width, height


def ratios_from(text):
    """{(concurrency, header): ratio} of a comparison table ("a -> b (x1.23)" cells)."""
    out = {}
    for row in markdown_table(text, "concurrency"):
        for header, cell in row.items():
            match = re.search(r"\(x([0-9.]+)\)$", cell)
            if match:
                out[(int(row["concurrency"]), header)] = float(match.group(1))
    return out


def check_comparison(text, before, after):
    """The comparison's ratios are after / before of the two runs' result JSONs."""
    found = ratios_from(text)
    assert found, text
    for c in set(before) & set(after):
        for header, key in (("output tok/s", "output_throughput"), ("req/s", "request_throughput"),
                            ("TTFT mean ms", "mean_ttft_ms"), ("ITL p99 ms", "p99_itl_ms")):
            expected = after[c][key] / before[c][key]
            assert abs(found[(c, header)] - expected) <= 0.006, (c, header, found[(c, header)], expected)
    return found
