# -*- coding: utf-8 -*-
"""The weights fan-out's transfer secret (roles/hf_cache/tasks/fanout.yml, the copy it imports, fanout_copy.yml, and
the receiving side that imports, fanout_pull.yml), read from the tasks themselves: it reaches rsync through a
root-only 0600 password file written under no_log and removed in the copy block's `always` (also when the pull
fails), or by a systemd timer started before it is written (when the controller dies first), never through a task's
environment (printed in the SSH EXEC line at -vvv, in /proc/<pid>/environ for the whole copy) or a command line.
tests/hf_cache/test_fanout.py runs the real role on containers."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

TASKS = Path(__file__).resolve().parents[2] / "roles" / "hf_cache" / "tasks" / "fanout.yml"
COPY = TASKS.with_name("fanout_copy.yml")
PULL = TASKS.with_name("fanout_pull.yml")
VARS = TASKS.parents[1] / "vars" / "main.yml"


def _walk(tasks):
    for task in tasks or []:
        yield task
        for key in ("block", "rescue", "always"):
            yield from _walk(task.get(key))


def _copy_block():
    (block,) = [t for t in yaml.safe_load(COPY.read_text()) if t.get("name") == "Copy from the seed"]
    return block


def _pull_tasks():
    (block,) = yaml.safe_load(PULL.read_text())
    assert block["when"] == "_hf_cache_fanout_need"
    return block["block"]


def test_the_fanout_imports_the_copy():
    imports = [t for t in yaml.safe_load(TASKS.read_text()) if "ansible.builtin.import_tasks" in t]
    assert [t["ansible.builtin.import_tasks"] for t in imports] == ["fanout_copy.yml"]
    assert "when" not in imports[0]


def test_no_task_passes_the_secret_through_its_environment_or_argv():
    for task in _walk(yaml.safe_load(TASKS.read_text()) + yaml.safe_load(COPY.read_text())
                      + yaml.safe_load(PULL.read_text())):
        env = json.dumps(task.get("environment", {}))
        assert "secret" not in env and "RSYNC_PASSWORD" not in env, task["name"]
        command = task.get("ansible.builtin.command", {})
        assert "_hf_cache_fanout_secret" not in json.dumps(command), task["name"]


def test_rsync_reads_a_0600_password_file_written_under_no_log():
    # The receiving side runs inside the copy block, so that the block's `always` covers it.
    assert {"name": "Pull from the seed (the hosts that need the copy)",
            "ansible.builtin.import_tasks": "fanout_pull.yml"} in _copy_block()["block"]
    tasks = _pull_tasks()
    by_name = {t["name"]: t for t in tasks}
    written = by_name["Write the pull's password file (0600)"]["ansible.builtin.copy"]
    assert written["mode"] == "0600" and written["owner"] == "root"
    assert written["dest"] == "{{ _hf_cache_fanout_client_dir }}/password"
    assert "_hf_cache_fanout_secret" in written["content"]
    assert by_name["Write the pull's password file (0600)"]["no_log"] is True
    assert by_name["Create the directory of the pull's password file"]["ansible.builtin.file"]["mode"] == "0700"
    pull = by_name["Pull the repository folder from the seed"]
    assert "'--password-file=' ~ _hf_cache_fanout_client_dir ~ '/password'" in pull["ansible.builtin.command"]["argv"]
    assert "environment" not in pull
    names = [t["name"] for t in tasks]
    assert names.index("Write the pull's password file (0600)") < names.index("Pull the repository folder from the seed")


def test_a_timer_removes_the_password_file_should_the_run_not():
    tasks = _pull_tasks()
    timer = tasks[0]
    assert timer["name"] == "Have systemd remove the pull's password file after hf_cache_fanout_max_seconds"
    argv = timer["ansible.builtin.command"]["argv"]
    assert argv[0] == "systemd-run" and "--on-active={{ hf_cache_fanout_max_seconds }}" in argv
    assert argv[-3:] == ["/bin/rm", "-rf", "{{ _hf_cache_fanout_client_dir }}"]
    (stop,) = [t for t in _copy_block()["always"] if t["name"] == "Stop the password file's removal timer"]
    assert stop["ansible.builtin.systemd_service"]["name"] == "{{ _hf_cache_fanout_client_unit }}.timer"
    # What a dead run left is removed at the next run on every host, before anything else of the fan-out.
    (leftovers,) = [t["ansible.builtin.shell"] for t in yaml.safe_load(TASKS.read_text()) if "ansible.builtin.shell" in t]
    assert "_hf_cache_fanout_client_dir" in leftovers and "_hf_cache_fanout_unit" in leftovers


def test_the_password_file_goes_in_always_even_when_the_pull_fails():
    block = _copy_block()
    (removal,) = [t for t in block["always"] if t["name"] == "Remove the pull's password file"]
    assert removal["ansible.builtin.file"] == {"path": "{{ _hf_cache_fanout_client_dir }}", "state": "absent"}
    assert removal["when"] == "_hf_cache_fanout_need"
    assert yaml.safe_load(VARS.read_text())["_hf_cache_fanout_client_dir"].startswith("/run/")
