# -*- coding: utf-8 -*-
"""playbooks/teardown.yml asks for confirmation unless deepseek_v4_teardown_confirm is set.

No host of the inventory is contacted: the unconfirmed runs stop in the first play (localhost), and the confirmed
run is limited to localhost (listed in the inventory for that), so the removal play matches no host.
"""

from __future__ import annotations

import os
import pty
import select
import shutil
import signal
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MESSAGE = "Teardown not confirmed"
FIX = "-e deepseek_v4_teardown_confirm=yes"


def ansible_playbook():
    local = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
    return local if os.path.exists(local) else shutil.which("ansible-playbook")


LOCAL_ONLY = ("-i", "localhost,", "--limit", "localhost")


def argv(*extra):
    return [ansible_playbook(), "playbooks/teardown.yml", "-i", "inventories/h200_pd", *extra]


def env():
    return dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"))


def run(*extra):
    return subprocess.run(argv(*extra), cwd=ROOT, capture_output=True, text=True, env=env(),
                          stdin=subprocess.DEVNULL, check=False, timeout=120)


def plays(output):
    return [line.split("[", 1)[1].rsplit("]", 1)[0] for line in output.splitlines() if line.startswith("PLAY [")]


def recap_hosts(output):
    return [line.split()[0] for line in output.split("PLAY RECAP")[-1].splitlines() if ": ok=" in line]


def test_non_interactive_run_without_confirmation_stops_before_any_host():
    start = time.monotonic()
    result = run()
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert MESSAGE in output and FIX in output, output
    assert plays(result.stdout) == ["Confirm the teardown"], result.stdout
    assert recap_hosts(result.stdout) == ["localhost"], result.stdout
    assert time.monotonic() - start < 60


def test_confirmation_on_the_command_line_proceeds_without_a_prompt():
    result = run("-e", "deepseek_v4_teardown_confirm=yes", *LOCAL_ONLY)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert MESSAGE not in output
    assert "Not waiting for response to prompt" not in output
    assert plays(result.stdout) == ["Confirm the teardown", "Plan the serving topology", "Remove the serving rollout"]


def _answer_on_a_terminal(answer):
    """Run the teardown on a pseudo-terminal and type ``answer`` at the prompt; returns (rc, output).

    ansible.builtin.pause flushes the terminal's input when it starts reading, so an answer typed as soon as the
    prompt shows may be discarded: the answer is typed again every two seconds until the play moves on. The child is
    killed at the deadline, so a prompt that never returns fails the test instead of hanging it.
    """
    pid, fd = pty.fork()
    if pid == 0:  # child
        os.chdir(ROOT)
        os.execve(argv(*LOCAL_ONLY)[0], argv(*LOCAL_ONLY), env())
    output, prompt_end, last_sent, deadline = b"", None, 0.0, time.monotonic() + 120
    while time.monotonic() < deadline:
        ready, _w, _x = select.select([fd], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            output += chunk
        if prompt_end is None and b"Type yes to continue" in output and output.rstrip().endswith(b":"):
            prompt_end = len(output)
        answered = prompt_end is not None and b"TASK [" in output[prompt_end:]
        if prompt_end is not None and not answered and time.monotonic() - last_sent > 2:
            os.write(fd, answer.encode() + b"\r")
            last_sent = time.monotonic()
    else:
        os.kill(pid, signal.SIGKILL)
    _pid, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status), output.decode(errors="replace")


def test_prompt_on_a_terminal_accepts_yes_and_refuses_anything_else():
    rc, output = _answer_on_a_terminal("yes")
    assert rc == 0, output
    assert "PLAY [Plan the serving topology]" in output, output
    rc, output = _answer_on_a_terminal("no")
    assert rc != 0, output
    assert MESSAGE in output and "answer: no" in output, output
    assert "PLAY [Plan the serving topology]" not in output, output
