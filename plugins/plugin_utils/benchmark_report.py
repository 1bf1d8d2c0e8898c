# -*- coding: utf-8 -*-
# Copyright: inference.deepseek_v4 contributors
# Apache License 2.0 (see LICENSE)
"""Reports of `vllm bench serve` runs: one table and one PNG per run directory, and the comparison of two runs.

A run directory (written by the role inference.deepseek_v4.benchmark) holds `run.json` (the profile and where it ran)
and `results/*.json`, each the file `vllm bench serve --save-result` wrote for one point of the concurrency sweep.
Every number of a report is read from those files. Standard library only: the PNG is written by a small rasterizer
(zlib + struct), so the report works wherever Ansible's controller runs, with no plotting library installed.
"""

from __future__ import annotations

import glob
import json
import math
import os
import struct
import zlib
from typing import Any, Iterable, Mapping, Optional, Sequence

# (key in a row, column header, keys of vLLM's result JSON tried in order, format)
COLUMNS = (
    ("concurrency", "concurrency", ("max_concurrency",), "{:d}"),
    ("prompts", "prompts", ("num_prompts",), "{:d}"),
    ("completed", "completed", ("completed",), "{:d}"),
    ("failed", "errors", ("failed",), "{:d}"),
    ("request_throughput", "req/s", ("request_throughput",), "{:.2f}"),
    ("output_throughput", "output tok/s", ("output_throughput",), "{:.1f}"),
    ("total_token_throughput", "total tok/s", ("total_token_throughput",), "{:.1f}"),
    ("mean_ttft_ms", "TTFT mean ms", ("mean_ttft_ms",), "{:.1f}"),
    ("p99_ttft_ms", "TTFT p99 ms", ("p99_ttft_ms",), "{:.1f}"),
    ("mean_tpot_ms", "TPOT mean ms", ("mean_tpot_ms",), "{:.2f}"),
    ("p99_tpot_ms", "TPOT p99 ms", ("p99_tpot_ms",), "{:.2f}"),
    ("p50_itl_ms", "ITL p50 ms", ("p50_itl_ms", "median_itl_ms"), "{:.2f}"),
    ("p99_itl_ms", "ITL p99 ms", ("p99_itl_ms",), "{:.2f}"),
    ("duration_s", "duration s", ("duration",), "{:.1f}"),
)

# The metrics a comparison shows, and whether a higher value is better.
COMPARED = (
    ("request_throughput", True),
    ("output_throughput", True),
    ("mean_ttft_ms", False),
    ("mean_tpot_ms", False),
    ("p50_itl_ms", False),
    ("p99_itl_ms", False),
    ("failed", False),
)


class ReportError(Exception):
    """A run directory that cannot be reported."""


def _number(result: Mapping[str, Any], keys: Iterable[str]) -> Optional[float]:
    for key in keys:
        value = result.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return value
    return None


def row_of(result: Mapping[str, Any], source: str = "") -> dict[str, Any]:
    """One table row from one result JSON of `vllm bench serve`."""
    row = {"source": source}
    for key, _header, keys, _fmt in COLUMNS:
        row[key] = _number(result, keys)
    if row["concurrency"] is None:
        raise ReportError("%s: no max_concurrency (run `vllm bench serve --max-concurrency N`)" % (source or "result"))
    return row


def load_run(run_dir: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(run metadata, rows sorted by concurrency) of a run directory."""
    meta_path = os.path.join(run_dir, "run.json")
    meta = {}
    if os.path.exists(meta_path):
        with open(meta_path, encoding="utf-8") as f:
            meta = json.load(f)
    files = sorted(glob.glob(os.path.join(run_dir, "results", "*.json")))
    if not files:
        raise ReportError("%s: no result JSON under results/" % run_dir)
    rows = []
    for path in files:
        with open(path, encoding="utf-8") as f:
            try:
                result = json.load(f)
            except ValueError as exc:
                raise ReportError("%s: not JSON (%s)" % (path, exc))
        rows.append(row_of(result, os.path.relpath(path, run_dir)))
    rows.sort(key=lambda r: r["concurrency"])
    return meta, rows


def _cell(value: Optional[float], fmt: str) -> str:
    if value is None:
        return "-"
    if fmt == "{:d}":
        return "{:d}".format(int(value))
    return fmt.format(value)


def table(rows: Iterable[Mapping[str, Any]]) -> str:
    """The Markdown table of a run's rows."""
    lines = ["| " + " | ".join(c[1] for c in COLUMNS) + " |",
             "|" + "|".join(" ---: " for _c in COLUMNS) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(_cell(row[c[0]], c[3]) for c in COLUMNS) + " |")
    return "\n".join(lines)


def markdown(meta: Mapping[str, Any], rows: Iterable[Mapping[str, Any]], png_name: Optional[str] = None) -> str:
    """The whole report of a run: heading, what ran where, the table, the plot."""
    title = meta.get("name") or "benchmark"
    lines = ["# Benchmark %s" % title, ""]
    for label, key in (("profile", "profile"), ("endpoint", "endpoint"), ("model", "model"),
                       ("image", "image"), ("topology", "topology"), ("started", "started"),
                       ("finished", "finished")):
        if meta.get(key) not in (None, ""):
            lines.append("- %s: `%s`" % (label, meta[key]))
    shape = meta.get("shape") or {}
    if shape:
        lines.append("- requests: random dataset, %s input / %s output tokens, %s" % (
            shape.get("input_len"), shape.get("output_len"), shape.get("backend", "openai-chat")))
    lines += ["", table(rows), ""]
    lines.append("Every figure is read from the result JSON `vllm bench serve --save-result` wrote "
                 "(`results/`); errors are its failed requests.")
    if png_name:
        lines += ["", "![throughput and latency against concurrency](%s)" % png_name]
    return "\n".join(lines) + "\n"


def _ratio(before: Optional[float], after: Optional[float]) -> Optional[float]:
    if before in (None, 0) or after is None:
        return None
    return after / before


def compare(before_rows: Iterable[Mapping[str, Any]], after_rows: Sequence[Mapping[str, Any]],
            before_name: str = "before", after_name: str = "after") -> str:
    """A Markdown table comparing two runs point by point (same concurrency): before -> after and after/before."""
    by_c = {r["concurrency"]: r for r in before_rows}
    fmts = {c[0]: c[3] for c in COLUMNS}
    headers = {c[0]: c[1] for c in COLUMNS}
    lines = ["Comparison: `%s` (before) -> `%s` (after); ratio = after / before, "
             "better: higher for throughput, lower for latencies and errors." % (before_name, after_name), "",
             "| concurrency | " + " | ".join(headers[k] for k, _h in COMPARED) + " |",
             "| ---: |" + "|".join(" ---: " for _c in COMPARED) + "|"]
    matched = 0
    for row in after_rows:
        old = by_c.get(row["concurrency"])
        if old is None:
            continue
        matched += 1
        cells = []
        for key, _higher in COMPARED:
            ratio = _ratio(old[key], row[key])
            cells.append("%s -> %s (%s)" % (_cell(old[key], fmts[key]), _cell(row[key], fmts[key]),
                                            "x%.2f" % ratio if ratio is not None else "-"))
        lines.append("| %d | %s |" % (row["concurrency"], " | ".join(cells)))
    if not matched:
        raise ReportError("the two runs share no concurrency (before: %s, after: %s)" % (
            sorted(by_c), sorted(r["concurrency"] for r in after_rows)))
    only = sorted(set(by_c) ^ set(r["concurrency"] for r in after_rows))
    if only:
        lines += ["", "Concurrencies in one run only (left out): %s" % ", ".join(str(c) for c in only)]
    return "\n".join(lines) + "\n"


def ratios(before_rows: Iterable[Mapping[str, Any]],
           after_rows: Iterable[Mapping[str, Any]]) -> dict[int, dict[str, Optional[float]]]:
    """{concurrency: {metric: after / before}} for the points both runs measured."""
    by_c = {r["concurrency"]: r for r in before_rows}
    return {row["concurrency"]: {key: _ratio(by_c[row["concurrency"]][key], row[key]) for key, _h in COMPARED}
            for row in after_rows if row["concurrency"] in by_c}


# ---------------------------------------------------------------- PNG

# A 5x7 bitmap font: per glyph, seven rows of five bits (hex, two digits a row). Text is drawn upper case.
_FONT = {
    "0": "0E1113151911" "0E", "1": "040C04040404" "0E", "2": "0E1101020408" "1F", "3": "1F0204020111" "0E",
    "4": "02060A121F02" "02", "5": "1F101E010111" "0E", "6": "0608101E1111" "0E", "7": "1F0102040808" "08",
    "8": "0E11110E1111" "0E", "9": "0E11110F0102" "0C", "A": "0E1111111F11" "11", "B": "1E11111E1111" "1E",
    "C": "0E1110101011" "0E", "D": "1C1211111112" "1C", "E": "1F10101E1010" "1F", "F": "1F10101E1010" "10",
    "G": "0E1110171111" "0F", "H": "1111111F1111" "11", "I": "0E0404040404" "0E", "J": "070202020212" "0C",
    "K": "111214181412" "11", "L": "101010101010" "1F", "M": "111B15151111" "11", "N": "111119151311" "11",
    "O": "0E1111111111" "0E", "P": "1E11111E1010" "10", "Q": "0E1111111512" "0D", "R": "1E11111E1412" "11",
    "S": "0F10100E0101" "1E", "T": "1F0404040404" "04", "U": "111111111111" "0E", "V": "11111111110A" "04",
    "W": "111111151515" "0A", "X": "11110A040A11" "11", "Y": "1111110A0404" "04", "Z": "1F0102040810" "1F",
    " ": "000000000000" "00", ".": "00000000000C" "0C", ",": "000000000C04" "08", "-": "0000001F0000" "00",
    "/": "000102040810" "00", "(": "020408080804" "02", ")": "080402020204" "08", ":": "000C0C000C0C" "00",
    "%": "181902040813" "03", "_": "000000000000" "1F", "=": "00001F001F00" "00", "+": "0004041F0404" "00",
    ">": "080402010204" "08", "<": "020408100804" "02", "?": "0E1101020400" "04",
}
_COLORS = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40))


class Canvas(object):
    """An RGB image with the few drawing operations a line plot needs."""

    def __init__(self, width: int, height: int, background: tuple[int, int, int] = (255, 255, 255)) -> None:
        self.width, self.height = width, height
        self.pixels = bytearray(bytes(background) * (width * height))

    def dot(self, x: int, y: int, color: tuple[int, int, int]) -> None:
        if 0 <= x < self.width and 0 <= y < self.height:
            i = 3 * (y * self.width + x)
            self.pixels[i:i + 3] = bytes(color)

    def rect(self, x0: int, y0: int, x1: int, y1: int, color: tuple[int, int, int]) -> None:
        for y in range(max(y0, 0), min(y1, self.height - 1) + 1):
            for x in range(max(x0, 0), min(x1, self.width - 1) + 1):
                self.dot(x, y, color)

    def line(self, x0: int, y0: int, x1: int, y1: int, color: tuple[int, int, int], width: int = 1) -> None:
        """Bresenham's line, `width` pixels thick."""
        dx, dy = abs(x1 - x0), -abs(y1 - y0)
        sx, sy = (1 if x0 < x1 else -1), (1 if y0 < y1 else -1)
        err = dx + dy
        while True:
            self.rect(x0 - (width - 1) // 2, y0 - (width - 1) // 2, x0 + width // 2, y0 + width // 2, color)
            if x0 == x1 and y0 == y1:
                return
            e2 = 2 * err
            if e2 >= dy:
                err += dy
                x0 += sx
            if e2 <= dx:
                err += dx
                y0 += sy

    def text(self, x: int, y: int, text: Any, color: tuple[int, int, int] = (0, 0, 0), scale: int = 1) -> int:
        """Draws text with its top left corner at (x, y); returns the width drawn."""
        for n, char in enumerate(str(text).upper()):
            glyph = _FONT.get(char, _FONT["?"])
            for row in range(7):
                bits = int(glyph[2 * row:2 * row + 2], 16)
                for col in range(5):
                    if bits & (0x10 >> col):
                        left, top = x + (n * 6 + col) * scale, y + row * scale
                        self.rect(left, top, left + scale - 1, top + scale - 1, color)
        return text_width(text, scale)

    def png(self) -> bytes:
        """The image as PNG bytes (8-bit RGB, no filtering)."""
        raw = b"".join(b"\x00" + bytes(self.pixels[3 * y * self.width:3 * (y + 1) * self.width])
                       for y in range(self.height))

        def chunk(kind: bytes, data: bytes) -> bytes:
            return (struct.pack(">I", len(data)) + kind + data
                    + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

        header = struct.pack(">IIBBBBB", self.width, self.height, 8, 2, 0, 0, 0)
        return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9))
                + chunk(b"IEND", b""))


def text_width(text: Any, scale: int = 1) -> int:
    return len(str(text)) * 6 * scale


def _nice_top(value: Optional[float]) -> float:
    """The smallest of 1, 2, 2.5, 5 x 10^k at or above value (the top of a y axis)."""
    if not value or value <= 0:
        return 1.0
    base = 10 ** math.floor(math.log10(value))
    for m in (1, 2, 2.5, 5, 10):
        if m * base >= value:
            return m * base
    return 10 * base


def _tick_label(value: float) -> str:
    if value >= 1000:
        return "%gk" % round(value / 1000.0, 2)
    return "%g" % round(value, 2)


def panel(canvas: Canvas, box: tuple[int, int, int, int], title: str, xs: Sequence[str],
          series: Sequence[tuple[str, Sequence[Optional[float]]]]) -> None:
    """One line chart in box (x, y, w, h): categorical x (the concurrencies), series [(label, [y or None])]."""
    x0, y0, w, h = box
    canvas.text(x0 + (w - text_width(title, 2)) // 2, y0, title, scale=2)
    left, top, right, bottom = x0 + 56, y0 + 30, x0 + w - 10, y0 + h - 40
    values = [v for _label, ys in series for v in ys if v is not None]
    ymax = _nice_top(max(values) if values else 0)
    for i in range(5):
        yv = ymax * i / 4.0
        py = bottom - int((bottom - top) * i / 4.0)
        canvas.line(left, py, right, py, (225, 225, 225))
        label = _tick_label(yv)
        canvas.text(left - 6 - text_width(label), py - 3, label)
    canvas.line(left, top, left, bottom, (0, 0, 0))
    canvas.line(left, bottom, right, bottom, (0, 0, 0))
    count = max(len(xs), 1)
    px = [left + int((right - left) * (i + 0.5) / count) for i in range(len(xs))]
    for x, c in zip(px, xs):
        canvas.line(x, bottom, x, bottom + 4, (0, 0, 0))
        canvas.text(x - text_width(c) // 2, bottom + 8, c)
    canvas.text(left + (right - left - text_width("concurrency")) // 2, bottom + 22, "concurrency")
    for n, (label, ys) in enumerate(series):
        color = _COLORS[n % len(_COLORS)]
        points = [(x, bottom - int((bottom - top) * v / ymax)) for x, v in zip(px, ys) if v is not None]
        for (ax, ay), (bx, by) in zip(points, points[1:]):
            canvas.line(ax, ay, bx, by, color, width=2)
        for x, y in points:
            canvas.rect(x - 3, y - 3, x + 3, y + 3, color)
        canvas.rect(left + 8, top + 4 + 12 * n, left + 16, top + 12 + 12 * n, color)
        canvas.text(left + 22, top + 5 + 12 * n, label)


def plot(rows: Sequence[Mapping[str, Any]], title: str = "") -> bytes:
    """PNG bytes: output throughput, time to first token and inter-token latency against concurrency."""
    xs = [str(r["concurrency"]) for r in rows]

    def col(key: str) -> list[Optional[float]]:
        return [r[key] for r in rows]

    canvas = Canvas(1260, 390)
    if title:
        canvas.text(10, 6, title, scale=2)
    panel(canvas, (0, 40, 420, 350), "output tokens/s", xs, [("output tok/s", col("output_throughput"))])
    panel(canvas, (420, 40, 420, 350), "time to first token ms", xs,
          [("mean", col("mean_ttft_ms")), ("p99", col("p99_ttft_ms"))])
    panel(canvas, (840, 40, 420, 350), "inter-token latency ms", xs,
          [("TPOT mean", col("mean_tpot_ms")), ("ITL p50", col("p50_itl_ms")), ("ITL p99", col("p99_itl_ms"))])
    return canvas.png()


def write_report(run_dir: str, markdown_name: str = "report.md", png_name: str = "report.png",
                 check_mode: bool = False) -> dict[str, Any]:
    """Writes report.md and report.png into run_dir (not in check mode); returns what it wrote and the rows."""
    meta, rows = load_run(run_dir)
    text = markdown(meta, rows, png_name)
    image = plot(rows, "%s  %s" % (meta.get("profile", ""), meta.get("name", "")))
    written = {}
    for name, data in ((markdown_name, text.encode("utf-8")), (png_name, image)):
        path = os.path.join(run_dir, name)
        old = None
        if os.path.exists(path):
            with open(path, "rb") as f:
                old = f.read()
        written[path] = old != data
        if old != data and not check_mode:
            with open(path, "wb") as f:
                f.write(data)
    return {"rows": rows, "markdown": text, "table": table(rows), "files": written, "meta": meta}
