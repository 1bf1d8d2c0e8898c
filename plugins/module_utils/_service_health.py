# -*- coding: utf-8 -*-
# Copyright: inference.deepseek_v4 maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

# PRIVATE to this collection: the health wait of service_health_info. May change without notice.

"""Poll a health URL and, between polls, the state of the container behind it.

A service is ``healthy`` once its URL answers the expected status. It is ``starting`` while its container runs and
has not restarted more often than allowed since the wait began. A container that Docker restarts (``restarting``,
or a restart count above the allowance) is ``crash_looping``; one that is not running any more is ``stopped``; a
missing one is ``missing``. The last three will not answer however long one waits, so the wait ends: at once for a
crash loop (only Docker's restart policy counts restarts, never a ``docker restart``), at the second poll in a row
for the other two (a ``docker restart`` or a recreation by someone else passes through them for a moment).
"""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

import time
from typing import Any, Callable, Literal, Mapping, Optional, Union

# Docker's State.Status values and what they mean for a service that should be starting.
_STATUS_VERDICTS = {
    "running": "starting",
    "restarting": "crash_looping",
    "created": "stopped",
    "paused": "stopped",
    "exited": "stopped",
    "dead": "stopped",
    "removing": "stopped",
}

# Verdicts that end the wait only when two polls in a row give them.
_CONFIRMED = ("stopped", "missing")


def verdict(container: Optional[Mapping[str, Any]], baseline: Optional[int], allowed: int) -> str:
    """The service's status from an inspected container (None where it does not exist)."""
    if container is None:
        return "missing"
    restarts = int(container.get("RestartCount") or 0)
    if baseline is not None and restarts - int(baseline) > int(allowed):
        return "crash_looping"
    return _STATUS_VERDICTS.get((container.get("State") or {}).get("Status", ""), "stopped")


def explain(status: str, container: Optional[Mapping[str, Any]], baseline: Optional[int], url: str,
            waited: float) -> str:
    """One sentence on why the wait ended or goes on."""
    state = (container or {}).get("State") or {}
    restarts = int((container or {}).get("RestartCount") or 0) - int(baseline or 0)
    texts = {
        "healthy": "{0} answered after {1:.0f}s".format(url, waited),
        "starting": "{0} has not answered yet ({1:.0f}s)".format(url, waited),
        "missing": "the container does not exist",
        "stopped": "the container is {0} (exit code {1}{2})".format(
            state.get("Status", "unknown"), state.get("ExitCode", "n/a"), ", OOM killed" if state.get("OOMKilled") else ""),
        "crash_looping": "the container restarted {0} time(s) since the wait began (now {1}{2}): it crashes while "
                         "starting".format(restarts, state.get("Status", "unknown"),
                                           "" if state.get("Running") else ", last exit code {0}".format(
                                               state.get("ExitCode", "n/a"))),
    }
    return texts[status]


def wait(probe: Callable[[], tuple[bool, Any]], inspect: Callable[[], Union[dict[str, Any], None, Literal[False]]],
         wait_seconds: float, delay: float, baseline: Optional[int] = None, allowed: int = 0,
         clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> dict[str, Any]:
    """Poll ``probe()`` and ``inspect()`` until the service is healthy, its container says it never will be, or
    ``wait_seconds`` pass (one poll at least).

    ``probe()`` returns (answered as expected, what it answered); ``inspect()`` the container's inspect dict, None
    where it does not exist, or False where no container is watched. Returns a dict: status, answer, container,
    baseline (the restart count the wait began with) and waited (seconds)."""
    start = clock()
    container = False
    seen = None
    while True:
        healthy, answer = probe()
        status = "healthy" if healthy else "starting"
        if not healthy:
            container = inspect()
            if container is not False:
                if baseline is None and container is not None:
                    baseline = int(container.get("RestartCount") or 0)
                status = verdict(container, baseline, allowed)
        if status in _CONFIRMED and seen != status:
            seen, status = status, "starting"
        else:
            seen = status
        if status != "starting" or clock() - start + delay > wait_seconds:
            return dict(status=status, answer=answer, container=container, baseline=baseline, waited=clock() - start)
        sleep(delay)
