# -*- coding: utf-8 -*-
"""python_venv in the background (python_venv_background; the next call for the same path waits for the job), on
this machine (connection local).

The interpreter that creates the virtualenv takes 8 s to do it (a wrapper around this Python that sleeps before
`-m venv`), and the package is a wheel built here, installed with --no-index: no network. Asserted:

* the background call returns before the virtualenv exists, with a job kept under the virtualenv's path; the next
  call (no python_venv_background) waits for it, finds the package installed and reports the virtualenv changed;
  the job's status file and its entry in python_venv_jobs are gone afterwards;
* the same again: nothing to install, the wait reports no change;
* a package that does not exist: the wait fails with pip's message.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import zipfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CREATE_S = 8


def ansible_playbook():
    local = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
    return local if os.path.exists(local) else shutil.which("ansible-playbook")


def make_wheel(directory):
    """A one-module wheel, tinypkg 1.0, written by hand (a zip with the three metadata files)."""
    name = "tinypkg-1.0.dist-info"
    files = {
        "tinypkg.py": "VALUE = 323\n",
        f"{name}/METADATA": "Metadata-Version: 2.1\nName: tinypkg\nVersion: 1.0\n",
        f"{name}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = "".join(f"{path},,\n" for path in files) + f"{name}/RECORD,,\n"
    with zipfile.ZipFile(os.path.join(directory, "tinypkg-1.0-py3-none-any.whl"), "w") as wheel:
        for path, text in files.items():
            wheel.writestr(path, text)
        wheel.writestr(f"{name}/RECORD", record)


@pytest.fixture(name="work")
def fixture_work(tmp_path):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    make_wheel(wheels)
    slow = tmp_path / "slow-python"
    slow.write_text(textwrap.dedent(f"""\
        #!/bin/sh
        # Creating a virtualenv takes {CREATE_S} s with this interpreter.
        if [ "$1" = "-m" ] && [ "$2" = "venv" ]; then sleep {CREATE_S}; fi
        exec {sys.executable} "$@"
        """))
    slow.chmod(0o755)
    return tmp_path


def run(work, package):
    playbook = work / "background.yml"
    venv = work / "venv"
    role_vars = {
        "python_venv_path": str(venv), "python_venv_python": str(work / "slow-python"),
        "python_venv_packages": [package], "python_venv_os_packages": [],
        "python_venv_pip_extra_args": f"--no-index --find-links {work / 'wheels'}",
    }
    plays = [{
        "name": "python_venv in the background", "hosts": "localhost", "connection": "local",
        "gather_facts": False,
        "vars": {"ansible_python_interpreter": sys.executable},
        "tasks": [
            {"name": "Start", "ansible.builtin.include_role": {"name": "inference.deepseek_v4.python_venv"},
             "vars": dict(role_vars, python_venv_background=True)},
            {"name": "Keep the job", "ansible.builtin.set_fact": {"job": "{{ python_venv_jobs[%r] }}" % str(venv)}},
            {"name": "Look right after", "ansible.builtin.stat": {"path": str(venv / "bin" / "python")},
             "register": "early"},
            {"name": "Wait", "ansible.builtin.include_role": {"name": "inference.deepseek_v4.python_venv"},
             "vars": role_vars},
            {"name": "Import", "register": "imported", "changed_when": False,
             "ansible.builtin.command": f"{venv}/bin/python -c 'import tinypkg; print(tinypkg.VALUE)'"},
            {"name": "Report", "ansible.builtin.debug": {
                "msg": "RESULT {{ {'job': job, 'early': early.stat.exists, 'changed': python_venv_changed,"
                       " 'value': imported.stdout, 'jobs_left': python_venv_jobs} | to_json }}"}},
        ],
    }]
    playbook.write_text(json.dumps(plays))
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"),
               ANSIBLE_STDOUT_CALLBACK="ansible.builtin.default", ANSIBLE_CALLBACK_RESULT_FORMAT="json")
    proc = subprocess.run([ansible_playbook(), "-i", "localhost,", str(playbook)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    output = proc.stdout + proc.stderr
    result = None
    for line in output.splitlines():
        if '"RESULT ' in line:
            result = json.loads(json.loads(line.split('"msg": ', 1)[1].rstrip().rstrip(","))[len("RESULT "):])
    return proc.returncode, output, result


def test_a_background_install_returns_at_once_and_the_wait_reports_what_it_did(work):
    rc, output, result = run(work, "tinypkg==1.0")
    assert rc == 0, output
    # The virtualenv did not exist yet when the background call had returned: pip was still creating it.
    assert result["job"]["jid"] and result["jobs_left"] == {}, result
    assert result["early"] is False, output
    assert result["changed"] is True and result["value"] == "323", result
    status = os.path.expanduser("~/.ansible_async/%s" % result["job"]["jid"])
    assert not os.path.exists(status), status

    rc, output, result = run(work, "tinypkg==1.0")
    assert rc == 0, output
    assert result["early"] is True and result["changed"] is False, result


def test_a_failed_background_install_fails_the_wait_with_pips_message(work):
    rc, output, result = run(work, "notapkg==9.9")
    assert rc != 0 and result is None, output
    assert "Wait for the virtualenv install started in the background" in output, output
    assert "notapkg" in output and "No matching distribution" in output, output
