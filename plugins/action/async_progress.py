# -*- coding: utf-8 -*-
# Copyright: inference.deepseek_v4 contributors
# Apache License 2.0 (see LICENSE)
"""inference.deepseek_v4.async_progress: wait for a background task (``async``, ``poll: 0``) and print one line of
its progress file per interval, then return the task's own result.

The implementation of the module of the same name (whose file holds its documentation only). Each poll runs
``async_status`` (is the job finished?) and ``slurp`` (its progress file) on the host; lines go through the
controller's display, so they show even where the task has ``no_log`` (they hold sizes, rates and file names only).
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any, Mapping, Optional

from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

from ansible_collections.inference.deepseek_v4.plugins.module_utils._progress import (
    format_line,
    human_bytes,
    human_duration,
)

display = Display()

_JOB_KEYS = ("ansible_job_id", "started", "finished", "results_file", "erased", "stdout", "stderr", "stdout_lines",
             "stderr_lines")


ARGUMENT_SPEC = {
    "jid": {"type": "str", "required": True},
    "progress_file": {"type": "str", "required": True},
    "interval": {"type": "int", "default": 30},
    "timeout": {"type": "int", "default": 0},
    "stale_timeout": {"type": "int", "default": 600},
    "label": {"type": "str", "default": ""},
    "fix": {"type": "str", "default": ""},
}


def final_line(host: str, label: str, final: Mapping[str, Any], status: Mapping[str, Any], elapsed: float) -> str:
    """The last line of a job that printed progress: how it ended, how long it took, how much, how fast."""
    rate = float(final.get("done") or 0) / elapsed if elapsed > 0 else 0.0
    return "%s: %s: %s after %s (%s in the end, %s/s on average since this task started)" % (
        host, label or final.get("label") or "transfer", "failed" if status.get("failed") else "finished",
        human_duration(elapsed), human_bytes(final.get("done")), human_bytes(rate))


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("jid", "progress_file", "interval", "timeout", "label", "fix", "stale_timeout"))

    def _async_dir(self) -> str:
        return self._remote_expand_user(self.get_shell_option("async_dir", default="~/.ansible_async"))

    def _status(self, jid: str, async_dir: str, task_vars: dict[str, Any], mode: str = "status") -> dict[str, Any]:
        return self._execute_module(module_name="ansible.legacy.async_status", task_vars=task_vars,
                                    module_args={"jid": jid, "mode": mode, "_async_dir": async_dir})

    def _progress(self, path: str, task_vars: dict[str, Any]) -> Optional[dict[str, Any]]:
        got = self._execute_module(module_name="ansible.legacy.slurp", task_vars=task_vars, module_args={"src": path})
        if got.get("failed") or not got.get("content"):
            return None
        try:
            data = json.loads(base64.b64decode(got["content"]).decode("utf-8"))
        except (ValueError, TypeError):
            return None
        return data if isinstance(data, dict) else None

    def run(self, tmp: Optional[str] = None, task_vars: Optional[dict[str, Any]] = None) -> dict[str, Any]:
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp
        task_vars = task_vars or {}
        _validation, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        host = task_vars.get("inventory_hostname") or self._play_context.remote_addr
        interval = max(int(args["interval"]), 1)
        period = min(interval, 5)
        async_dir = self._async_dir()
        started = time.time()
        next_line = started + interval
        progress, lines = None, 0
        seen_update, seen_at = None, started
        while True:
            status = self._status(args["jid"], async_dir, task_vars)
            if status.get("finished") or status.get("failed"):
                break
            now = time.time()
            if now >= next_line:
                progress = self._progress(args["progress_file"], task_vars) or progress
                if progress and args["label"]:
                    progress["label"] = args["label"]
                display.display(format_line(host, progress))
                lines += 1
                next_line += interval * max(1, int((now - next_line) // interval) + 1)
                # A job whose progress file no longer changes (the worker is gone or wedged) is not waited for.
                updated = (progress or {}).get("updated")
                if updated != seen_update:
                    seen_update, seen_at = updated, now
                elif args["stale_timeout"] and now - seen_at > args["stale_timeout"]:
                    result.update(failed=True, progress=progress, msg=(
                        "%s: %s: the background job %s has not updated %s for %s. Fix: look at the host (is the "
                        "process alive? is the disk or the network hung?), then run the play again. %s" % (
                            host, args["label"] or "transfer", args["jid"], args["progress_file"],
                            human_duration(now - seen_at), args["fix"])).strip())
                    return result
            if args["timeout"] and now - started > args["timeout"]:
                result.update(failed=True, progress=progress, msg=(
                    "%s: %s did not finish within %d s (timeout). %s" % (
                        host, args["label"] or "the background job", args["timeout"], args["fix"])).strip())
                return result
            time.sleep(period)

        if lines:
            progress = self._progress(args["progress_file"], task_vars) or progress or {}
            display.display(final_line(host, args["label"], progress, status, time.time() - started))
        self._status(args["jid"], async_dir, task_vars, mode="cleanup")
        for key in _JOB_KEYS:
            status.pop(key, None)
        result.update(status)
        result["progress"] = progress
        result["progress_lines"] = lines
        if result.get("failed"):
            msg = result.get("msg") or "the background job failed"
            result["msg"] = "%s: %s%s" % (host, msg, (" " + args["fix"]) if result.get("stalled") and args["fix"]
                                          else "")
        return result
