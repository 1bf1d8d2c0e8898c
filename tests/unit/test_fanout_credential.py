# -*- coding: utf-8 -*-
"""The weights fan-out's transfer secret (roles/hf_cache/tasks/fanout.yml and the copy it imports, fanout_copy.yml),
read from the tasks themselves: it reaches rsync through a root-only 0600 password file written under no_log and
removed in the block's `always` (also when the pull fails), never through a task's environment (printed in the SSH
EXEC line at -vvv, in /proc/<pid>/environ for the whole copy) or a command line. tests/hf_cache/test_fanout.py runs
the real role on containers."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

TASKS = Path(__file__).resolve().parents[2] / "roles" / "hf_cache" / "tasks" / "fanout.yml"
COPY = TASKS.with_name("fanout_copy.yml")


def _walk(tasks):
    for task in tasks or []:
        yield task
        for key in ("block", "rescue", "always"):
            yield from _walk(task.get(key))


def _copy_block():
    (block,) = [t for t in yaml.safe_load(COPY.read_text()) if t.get("name") == "Copy from the seed"]
    return block


def test_the_fanout_imports_the_copy():
    imports = [t for t in yaml.safe_load(TASKS.read_text()) if "ansible.builtin.import_tasks" in t]
    assert [t["ansible.builtin.import_tasks"] for t in imports] == ["fanout_copy.yml"]
    assert "when" not in imports[0]


def test_no_task_passes_the_secret_through_its_environment_or_argv():
    for task in _walk(yaml.safe_load(TASKS.read_text()) + yaml.safe_load(COPY.read_text())):
        env = json.dumps(task.get("environment", {}))
        assert "secret" not in env and "RSYNC_PASSWORD" not in env, task["name"]
        command = task.get("ansible.builtin.command", {})
        assert "_hf_cache_fanout_secret" not in json.dumps(command), task["name"]


def test_rsync_reads_a_0600_password_file_written_under_no_log():
    block = _copy_block()
    by_name = {t["name"]: t for t in block["block"]}
    written = by_name["Write the pull's password file (0600)"]["ansible.builtin.copy"]
    assert written["mode"] == "0600" and written["owner"] == "root"
    assert written["dest"] == "{{ _client_dir }}/password" and "_hf_cache_fanout_secret" in written["content"]
    assert by_name["Write the pull's password file (0600)"]["no_log"] is True
    assert by_name["Create the directory of the pull's password file"]["ansible.builtin.file"]["mode"] == "0700"
    pull = by_name["Pull the repository folder from the seed"]
    assert "'--password-file=' ~ _client_dir ~ '/password'" in pull["ansible.builtin.command"]["argv"]
    assert "environment" not in pull
    names = [t["name"] for t in block["block"]]
    assert names.index("Write the pull's password file (0600)") < names.index("Pull the repository folder from the seed")


def test_the_password_file_goes_in_always_even_when_the_pull_fails():
    block = _copy_block()
    (removal,) = [t for t in block["always"] if t["name"] == "Remove the pull's password file"]
    assert removal["ansible.builtin.file"] == {"path": "{{ _client_dir }}", "state": "absent"}
    assert removal["when"] == "_hf_cache_fanout_need"
    assert block["vars"]["_client_dir"].startswith("/run/")
