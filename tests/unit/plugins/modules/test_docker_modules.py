# -*- coding: utf-8 -*-
# Copyright: inference.deepseek_v4 maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""container_logs and container_files against the real Docker engine (skipped where none runs): a container that
wrote to stdout, stderr and files and exited; with and without a TTY; missing containers and paths; and a
docker_host that no daemon answers."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import subprocess
import uuid

import pytest

from ansible_collections.inference.deepseek_v4.plugins.modules import container_files, container_logs
from ansible_collections.inference.deepseek_v4.tests.unit.plugins.modules.module_runner import (
    local_systemd_image, run_main)

SCRIPT = ("echo out-1; sleep 0.3; echo err-2 >&2; sleep 0.3; echo out-3; "
          "mkdir -p /tmp/r/sub; printf '{\"a\": 1}' > /tmp/r/a.json; printf 'b' > /tmp/r/sub/b.txt; exit 3")


pytestmark = pytest.mark.skipif(local_systemd_image() is None,
                                reason="needs a Docker engine with the rehearsal's base image")


# One container per test: ansible-test units runs each test in a forked process (pytest-forked), which never reaches
# the teardown of a module-scoped fixture, so such a container was left behind by every test.
@pytest.fixture(params=[False, True], ids=["no-tty", "tty"])
def exited(request):
    """A container that wrote its lines and files and exited with status 3."""
    name = "dsv4-test-docker-api-" + uuid.uuid4().hex[:8]
    tty = ["-t"] if request.param else []
    argv = ["docker", "run", "-d"] + tty + ["--name", name, "--entrypoint", "sh", local_systemd_image(), "-c", SCRIPT]
    subprocess.run(argv, check=True, capture_output=True)
    subprocess.run(["docker", "wait", name], check=True, capture_output=True)
    yield name, request.param
    subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)


def test_logs_of_an_exited_container(exited, capsys):
    name, tty = exited
    result = run_main(container_logs.main, {"name": name}, capsys)
    assert (result["exists"], result["changed"]) == (True, False)
    # A TTY merges both streams into one; without one, the daemon interleaves them by time (the writes are 0.3 s
    # apart so that their order is sure).
    assert result["lines"] == ["out-1", "err-2", "out-3"]
    assert (result["state"]["Status"], result["state"]["ExitCode"]) == ("exited", 3)
    assert run_main(container_logs.main, {"name": name, "tail": 1}, capsys)["lines"] == ["out-3"]
    stamped = run_main(container_logs.main, {"name": name, "tail": 1, "timestamps": True}, capsys)["lines"]
    assert len(stamped) == 1 and stamped[0].endswith(" out-3") and stamped[0][:4].isdigit()


def test_files_of_an_exited_container(exited, capsys):
    name = exited[0]
    result = run_main(container_files.main, {"name": name, "path": "/tmp/r"}, capsys)
    assert (result["exists"], result["found"]) == (True, True)
    assert [(f["path"], f["size"]) for f in result["files"]] == [("a.json", 8), ("sub/b.txt", 1)]
    assert json.loads(result["files"][0]["content"]) == {"a": 1}
    single = run_main(container_files.main, {"name": name, "path": "/tmp/r/sub/b.txt"}, capsys)
    assert [(f["path"], f["content"]) for f in single["files"]] == [("b.txt", "b")]
    missing = run_main(container_files.main, {"name": name, "path": "/tmp/none"}, capsys)
    assert (missing["exists"], missing["found"], missing["files"]) == (True, False, [])
    too_big = run_main(container_files.main, {"name": name, "path": "/tmp/r", "max_bytes": 4}, capsys)
    assert too_big["failed"] and "max_bytes" in too_big["msg"]


def _without_invocation(result):
    return {k: v for k, v in result.items() if k != "invocation"}


def test_missing_container(capsys):
    name = "dsv4-test-none-" + uuid.uuid4().hex[:8]
    assert _without_invocation(run_main(container_logs.main, {"name": name}, capsys)) == \
        {"changed": False, "exists": False, "lines": [], "state": {}}
    assert _without_invocation(run_main(container_files.main, {"name": name, "path": "/tmp"}, capsys)) == \
        {"changed": False, "exists": False, "found": False, "files": []}


def test_a_daemon_that_does_not_answer_fails_with_its_address(tmp_path, capsys):
    host = "unix://" + str(tmp_path / "docker.sock")
    result = run_main(container_logs.main, {"name": "x", "docker_host": host}, capsys)
    assert result["failed"] and host in result["msg"] and "docker_host" in result["msg"]
