# -*- coding: utf-8 -*-
# Copyright: inference.deepseek_v4 contributors
# Apache License 2.0 (see LICENSE)
"""inference.deepseek_v4.benchmark_report: the report of a benchmark run directory on the controller.

The implementation of the module of the same name (whose file holds its documentation only).
"""

from __future__ import annotations

import os
from typing import Any, Optional

from ansible.plugins.action import ActionBase

from ansible_collections.inference.deepseek_v4.plugins.plugin_utils.benchmark_report import (
    ReportError,
    compare,
    load_run,
    ratios,
    write_report,
)


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("run_dir", "compare_to"))

    def run(self, tmp: Optional[str] = None, task_vars: Optional[dict[str, Any]] = None) -> dict[str, Any]:
        result = super(ActionModule, self).run(tmp, task_vars)
        _valid, args = self.validate_argument_spec(argument_spec=dict(
            run_dir=dict(type="path", required=True),
            compare_to=dict(type="path"),
        ))
        run_dir = os.path.abspath(args["run_dir"])
        try:
            report = write_report(run_dir, check_mode=self._task.check_mode)
            if args["compare_to"]:
                before_dir = os.path.abspath(args["compare_to"])
                _meta, before = load_run(before_dir)
                result["comparison"] = compare(before, report["rows"], before_dir, run_dir)
                result["ratios"] = ratios(before, report["rows"])
        except (ReportError, OSError, ValueError) as exc:
            result.update(failed=True, msg=str(exc))
            return result
        result.update(
            changed=any(report["files"].values()),
            rows=report["rows"],
            table=report["table"],
            markdown=os.path.join(run_dir, "report.md"),
            png=os.path.join(run_dir, "report.png"),
        )
        return result
