# Benchmark tool, not part of the collection: enabled only by benchmarks/ through the environment.
"""Per-task profile of a playbook run, written as JSON for benchmarks/rehearsal_bench.py and scale_bench.py.

Enabled with ANSIBLE_CALLBACK_PLUGINS=<repo>/benchmarks/callback_plugins, ANSIBLE_CALLBACKS_ENABLED=task_profile
and DSV4_TASK_PROFILE=<file>. For each task (its role-qualified name and where it is defined): the wall seconds from
its start to its last host result, the hosts that ran it (ok, changed, failed, skipped) and the sum of the per-host
seconds (host start to host result). A task that runs once per item counts once per host.
"""

from __future__ import annotations

import json
import os
import time

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: task_profile
type: aggregate
short_description: per-task wall time and host counts of a playbook run, as JSON
description: Writes the file named by DSV4_TASK_PROFILE at the end of the run.
requirements: [enabled in ANSIBLE_CALLBACKS_ENABLED]
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "task_profile"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self._tasks = {}
        self._order = []
        self._started = {}
        self._run_start = time.monotonic()

    def _key(self, task):
        return "%s|%s" % (task.get_name(), task.get_path() or "")

    def _entry(self, task):
        key = self._key(task)
        if key not in self._tasks:
            self._order.append(key)
            self._tasks[key] = {"task": task.get_name(), "path": task.get_path() or "", "wall_s": 0.0,
                                "host_s": 0.0, "hosts": set(), "results": 0, "changed": 0, "skipped": 0,
                                "failed": 0}
        return self._tasks[key]

    def _fold(self, entry):
        """Add the wall time of the task's last occurrence (start to its last host result) to its total."""
        start, last = entry.pop("_occurrence", (None, None))
        if start is not None and last is not None:
            entry["wall_s"] += last - start

    def v2_playbook_on_task_start(self, task, is_conditional):
        entry = self._entry(task)
        self._fold(entry)
        now = time.monotonic()
        entry["_occurrence"] = (now, None)
        self._started[self._key(task)] = now

    def v2_playbook_on_handler_task_start(self, task):
        self.v2_playbook_on_task_start(task, False)

    def v2_runner_on_start(self, host, task):
        self._started["%s|%s" % (self._key(task), host.get_name())] = time.monotonic()

    def _result(self, result, outcome):
        task = result._task  # pylint: disable=protected-access
        entry = self._entry(task)
        now = time.monotonic()
        key = self._key(task)
        host = result._host.get_name()  # pylint: disable=protected-access
        task_start = self._started.get(key, now)
        entry["_occurrence"] = (entry.get("_occurrence", (task_start, None))[0], now)
        entry["host_s"] += now - self._started.get("%s|%s" % (key, host), task_start)
        entry["hosts"].add(host)
        entry["results"] += 1
        if outcome in ("skipped", "failed"):
            entry[outcome] += 1
        elif result._result.get("changed"):  # pylint: disable=protected-access
            entry["changed"] += 1

    def v2_runner_on_ok(self, result):
        self._result(result, "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._result(result, "failed")

    def v2_runner_on_skipped(self, result):
        self._result(result, "skipped")

    def v2_runner_on_unreachable(self, result):
        self._result(result, "failed")

    def v2_playbook_on_stats(self, stats):
        path = os.environ.get("DSV4_TASK_PROFILE")
        if not path:
            return
        for entry in self._tasks.values():
            self._fold(entry)
        tasks = [dict(self._tasks[k], hosts=len(self._tasks[k]["hosts"])) for k in self._order]
        with open(path, "w", encoding="utf-8") as handle:
            json.dump({"wall_s": time.monotonic() - self._run_start, "tasks": tasks}, handle, indent=1)
