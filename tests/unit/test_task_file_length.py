# -*- coding: utf-8 -*-
"""No task or handler file of a role (roles/*/tasks/*.yml, roles/*/handlers/*.yml) is longer than 150 lines: a longer
one is cut at its phases into task files included by name, so each can be read, and tested by path, on its own."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LIMIT = 150


def _files():
    return sorted(ROOT.glob("roles/*/tasks/*.yml")) + sorted(ROOT.glob("roles/*/handlers/*.yml"))


def test_the_role_files_are_found():
    assert len(_files()) >= 20


def test_no_role_task_or_handler_file_is_longer_than_the_limit():
    too_long = []
    for path in _files():
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if lines > LIMIT:
            too_long.append("%s: %d lines" % (path.relative_to(ROOT), lines))
    assert not too_long, "longer than %d lines (cut them into included task files):\n%s" % (LIMIT, "\n".join(too_long))
