# -*- coding: utf-8 -*-
# Copyright: inference.deepseek_v4 maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""service_health_info: the verdicts on Docker's own container states, the wait against a real HTTP server, and,
where a Docker engine runs, a real crash-looping container that ends the wait in seconds."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import subprocess
import time
import uuid
from http.server import BaseHTTPRequestHandler

import pytest

from ansible_collections.inference.deepseek_v4.plugins.module_utils import _service_health as sh
from ansible_collections.inference.deepseek_v4.plugins.modules import service_health_info
from ansible_collections.inference.deepseek_v4.tests.unit.plugins.modules.module_runner import (
    http_server, local_systemd_image, run_main)


def _container(status, restarts=0, exit_code=0, oom=False):
    """The fields of `docker inspect` the verdict reads, as Docker writes them."""
    return {"RestartCount": restarts,
            "State": {"Status": status, "Running": status == "running", "Restarting": status == "restarting",
                      "OOMKilled": oom, "ExitCode": exit_code}}


@pytest.mark.parametrize("container, baseline, allowed, expected", [
    (_container("running"), 0, 0, "starting"),
    (_container("running", restarts=3), 3, 0, "starting"),        # restarts before the wait do not count
    (_container("running", restarts=4), 3, 0, "crash_looping"),   # one during the wait does
    (_container("running", restarts=4), 3, 1, "starting"),        # unless allowed
    (_container("restarting", exit_code=2), 0, 5, "crash_looping"),
    (_container("exited", exit_code=137, oom=True), 0, 0, "stopped"),
    (_container("created"), 0, 0, "stopped"),
    (_container("dead"), 0, 0, "stopped"),
    (None, 0, 0, "missing"),
])
def test_verdict(container, baseline, allowed, expected):
    assert sh.verdict(container, baseline, allowed) == expected


def test_explain_names_exit_code_and_oom():
    assert sh.explain("stopped", _container("exited", exit_code=137, oom=True), 0, "u", 1) == \
        "the container is exited (exit code 137, OOM killed)"
    assert sh.explain("crash_looping", _container("restarting", restarts=2, exit_code=2), 0, "u", 1) == \
        "the container restarted 2 time(s) since the wait began (now restarting, last exit code 2): it crashes while starting"
    # A container that runs again has no exit code to tell.
    assert sh.explain("crash_looping", _container("running", restarts=1), 0, "u", 1) == \
        "the container restarted 1 time(s) since the wait began (now running): it crashes while starting"


class _Clock(object):
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def test_wait_stops_at_first_restart_and_keeps_the_baseline():
    clock = _Clock()
    states = iter([_container("running", restarts=5), _container("running", restarts=5),
                   _container("restarting", restarts=6, exit_code=2)])
    got = sh.wait(lambda: (False, "connection refused"), lambda: next(states), 600, 10, clock=clock, sleep=clock.sleep)
    assert (got["status"], got["baseline"], clock.now) == ("crash_looping", 5, 20)


def test_wait_ends_on_a_stopped_container_only_at_the_second_poll_in_a_row():
    clock = _Clock()
    # A `docker restart` by someone else: exited for one poll, then running again.
    states = iter([_container("exited"), _container("running"), _container("exited", exit_code=1),
                   _container("exited", exit_code=1)])
    got = sh.wait(lambda: (False, "connection refused"), lambda: next(states), 600, 10, clock=clock, sleep=clock.sleep)
    assert (got["status"], clock.now) == ("stopped", 30)
    clock = _Clock()
    got = sh.wait(lambda: (False, 503), lambda: None, 600, 10, clock=clock, sleep=clock.sleep)
    assert (got["status"], clock.now) == ("missing", 10)


def test_wait_times_out_while_running_and_polls_once_with_no_wait():
    clock = _Clock()
    probes = []
    got = sh.wait(lambda: probes.append(1) or (False, 503), lambda: _container("running"), 60, 10, clock=clock,
                  sleep=clock.sleep)
    assert (got["status"], got["answer"], len(probes), clock.now) == ("starting", 503, 7, 60)
    probes[:] = []
    assert sh.wait(lambda: probes.append(1) or (False, 503), lambda: False, 0, 10)["status"] == "starting"
    assert len(probes) == 1


def test_wait_healthy_does_not_inspect():
    got = sh.wait(lambda: (True, 200), lambda: pytest.fail("inspected a healthy service"), 60, 10)
    assert (got["status"], got["container"]) == ("healthy", False)


class _Health(BaseHTTPRequestHandler):
    answers = []

    def do_GET(self):
        code = self.answers.pop(0) if self.answers else 200
        self.send_response(code)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture()
def health_server():
    with http_server(_Health) as url:
        yield url + "/health"


def _run_main(args, capsys):
    return run_main(service_health_info.main, args, capsys)


def test_module_waits_through_503_to_200(health_server, capsys):
    _Health.answers[:] = [503, 503]
    result = _run_main({"url": health_server, "wait": 10, "delay": 1}, capsys)
    assert (result["status"], result["healthy"], result["answer"], result["changed"]) == ("healthy", True, 200, False)
    assert 1.5 <= result["waited"] < 5 and "container_state" not in result


def test_module_reports_starting_after_its_wait(health_server, capsys):
    _Health.answers[:] = [503] * 5
    result = _run_main({"url": health_server, "wait": 2, "delay": 1}, capsys)
    assert (result["status"], result["healthy"], result["answer"]) == ("starting", False, 503)


@pytest.mark.skipif(local_systemd_image() is None,
                    reason="needs a Docker engine with the rehearsal's base image")
def test_module_ends_the_wait_on_a_real_crash_looping_container(capsys):
    """The shape of a vLLM engine given a flag it refuses: it exits with status 2 and the restart policy starts it
    again. The wait of 120 s ends within seconds."""
    name = "dsv4-test-crashloop-" + uuid.uuid4().hex[:8]
    subprocess.run(["docker", "run", "-d", "--name", name, "--restart", "unless-stopped", "--entrypoint", "sh",
                    local_systemd_image(), "-c", "sleep 1; exit 2"], check=True, capture_output=True)
    try:
        start = time.monotonic()
        first = _run_main({"url": "http://127.0.0.1:9/health", "container": name}, capsys)
        assert first.get("status") == "starting" and first.get("restart_count") == 0, first
        result = _run_main({"url": "http://127.0.0.1:9/health", "container": name, "wait": 120, "delay": 1,
                            "restart_count": first["restart_count"]}, capsys)
        elapsed = time.monotonic() - start
        assert result["status"] == "crash_looping" and not result["healthy"]
        assert result["restart_count"] == 0 and "restarted" in result["msg"]
        assert elapsed < 30
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)
