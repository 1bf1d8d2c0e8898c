# -*- coding: utf-8 -*-
# Copyright: inference.deepseek_v4 maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

# PRIVATE to this collection: the progress file of its long transfers (weights, images). May change without notice;
# other collections must not use it.

"""Progress of a long transfer, written to a small JSON file that a play polls (action ``async_progress``).

The module that transfers (``hf_snapshot``, ``image_pull``) runs in the background (``async``, ``poll: 0``); a
:class:`Reporter` thread samples the bytes done every second, keeps the rate of the last 30 s and rewrites the file
atomically. When no new byte arrived for ``stall_timeout`` seconds during the transfer, the reporter calls the
module's stall handler once (which fails the module with the file that stalled and the fix).

Standard library only: the file is also imported on the controller (the action plugin formats the lines).
"""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

import json
import os
import threading
import time
from typing import Any, Callable, Mapping, Optional

RATE_WINDOW = 30.0
VERSION = 1


def human_bytes(num: Optional[float]) -> str:
    """1.5 GiB, 300.0 MiB, 12 B."""
    value = float(num or 0)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return "%d B" % value if unit == "B" else "%.1f %s" % (value, unit)
        value /= 1024
    return "%d B" % num


def human_duration(seconds: float) -> str:
    """45 s, 12 min, 1 h 05 min."""
    seconds = int(round(seconds))
    if seconds < 60:
        return "%d s" % seconds
    if seconds < 3600:
        return "%d min" % ((seconds + 30) // 60)
    return "%d h %02d min" % (seconds // 3600, (seconds % 3600) // 60)


def format_line(host: str, progress: Optional[Mapping[str, Any]]) -> str:
    """One line of a transfer's state: bytes done of total, rate, time left, the file or layer being moved."""
    if not progress:
        return "%s: starting" % host
    label = progress.get("label") or "transfer"
    phase = progress.get("phase") or "transfer"
    done, total = int(progress.get("done") or 0), int(progress.get("total") or 0)
    if phase != "transfer":
        what = {"starting": "checking what is already there", "verifying": "verifying what arrived", "done": "done",
                "failed": "stopped"}.get(phase, phase)
        sizes = " (%s of %s)" % (human_bytes(done), human_bytes(total)) if total else ""
        return "%s: %s: %s%s" % (host, label, what, sizes)
    parts = []
    # A partial total (an image's layers whose size is not known yet) is a floor: no time left is made of it.
    partial = bool(progress.get("total_partial"))
    if total:
        share = 100.0 * done / total
        parts.append("%s of %s%s (%.1f%%)" % (human_bytes(done), "at least " if partial else "", human_bytes(total),
                                              share))
    else:
        parts.append("%s" % human_bytes(done))
    rate = float(progress.get("rate") or 0)
    parts.append("%s/s" % human_bytes(rate))
    if rate > 0 and total > done and not partial:
        parts.append("%s left" % human_duration((total - done) / rate))
    idle = float(progress.get("idle") or 0)
    if idle >= 10:
        parts.append("no new byte for %s" % human_duration(idle))
    line = "%s: %s: %s" % (host, label, ", ".join(parts))
    if progress.get("item"):
        line += " [%s]" % progress["item"]
    return line


def write_json(path: str, data: Any) -> None:
    """Write ``data`` to ``path`` atomically (a reader never sees half a file)."""
    directory = os.path.dirname(path)
    if directory and not os.path.isdir(directory):
        os.makedirs(directory)
    tmp = "%s.%d.tmp" % (path, os.getpid())
    with open(tmp, "w") as handle:
        json.dump(data, handle, sort_keys=True)
    os.rename(tmp, path)


class Reporter(object):
    """Samples ``sample()`` (a dict: ``done``, ``total``, optional ``item``, ``total_partial``, ``activity``) every
    ``period`` seconds while the transfer runs and keeps ``path`` (None: no file) up to date; calls
    ``on_stall(state)`` once when ``activity`` (default ``done``) did not grow for ``stall_timeout`` seconds (0:
    never)."""

    def __init__(self, path: Optional[str], label: str, stall_timeout: Optional[float] = 0,
                 on_stall: Optional[Callable[[dict[str, Any]], None]] = None, period: float = 1.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self.label = label
        self.stall_timeout = float(stall_timeout or 0)
        self.on_stall = on_stall
        self.period = period
        self.clock = clock
        self.sample = None
        self.phase = "starting"
        self.started = clock()
        self.window = []
        self.last = {"done": 0, "total": 0}
        self.last_growth = self.started
        self.stalled = False
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = None
        self.write()

    # -- what the module calls -----------------------------------------------------------------------------
    def start(self) -> Reporter:
        """Rewrite the file every ``period`` seconds from now on, also before and after the transfer (a long check
        of the files already there, a verification): a reader sees that the process lives."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="progress")
            self._thread.daemon = True
            self._thread.start()
        return self

    def transfer(self, sample: Callable[[], Mapping[str, Any]]) -> None:
        """The bytes start to move: sample them from now on (and watch for a stall)."""
        with self._lock:
            self.sample = sample
            self.phase = "transfer"
            self.last_growth = self.clock()
            self.window = []
        self.tick()
        self.start()

    def set_phase(self, phase: str) -> None:
        if phase != "transfer":
            self.tick(watch=False)
        with self._lock:
            self.phase = phase
        self.write()

    def finish(self, phase: str = "done") -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(5)
        self.set_phase(phase)

    # -- sampling ------------------------------------------------------------------------------------------
    def tick(self, watch: bool = True) -> dict[str, Any]:
        """Take one sample; returns the state written. Calls the stall handler when the transfer stalled (and
        ``watch``)."""
        with self._lock:
            sample = self.sample
        if sample is None or self.phase != "transfer":
            return self.write()
        try:
            state = dict(sample())
        except Exception:  # pylint: disable=broad-except  # a sample races with the transfer: try again later
            return self.write()
        now = self.clock()
        with self._lock:
            # What counts as movement: "activity" where the sample gives it (an image's extraction), else "done".
            moved = int(state.get("activity", state.get("done")) or 0)
            if moved > int(self.last.get("activity", self.last.get("done")) or 0) or not self.window:
                self.last_growth = now
            self.last = state
            self.window.append((now, int(state.get("done") or 0)))
            while len(self.window) > 2 and now - self.window[0][0] > RATE_WINDOW:
                self.window.pop(0)
        data = self.write()
        if (watch and self.stall_timeout and not self.stalled and self.phase == "transfer"
                and now - self.last_growth >= self.stall_timeout):
            self.stalled = True
            if self.on_stall is not None:
                self.on_stall(data)
        return data

    def state(self) -> dict[str, Any]:
        now = self.clock()
        with self._lock:
            window = list(self.window)
            data = dict(self.last)
            data.update({
                "version": VERSION, "label": self.label, "phase": self.phase, "pid": os.getpid(),
                "started": self.started, "updated": now, "elapsed": now - self.started,
                "idle": now - self.last_growth if self.phase == "transfer" else 0,
                "stall_timeout": self.stall_timeout,
            })
        rate = 0.0
        if len(window) >= 2 and window[-1][0] > window[0][0]:
            rate = max(0.0, (window[-1][1] - window[0][1]) / (window[-1][0] - window[0][0]))
        data["rate"] = rate
        data["done"] = int(data.get("done") or 0)
        data["total"] = int(data.get("total") or 0)
        return data

    def write(self) -> dict[str, Any]:
        data = self.state()
        if self.path:
            try:
                write_json(self.path, data)
            except (IOError, OSError):
                pass  # progress is a courtesy: never fail the transfer for it
        return data

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            self.tick()
