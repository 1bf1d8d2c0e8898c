# -*- coding: utf-8 -*-
# Copyright: inference.deepseek_v4 maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""CHANGELOG.md is what antsibull-changelog generates from changelogs/changelog.yaml, and the changelog data and
every fragment pass antsibull-changelog's lint. The pinned tools live in build/docs-venv (`make docs-venv`;
`make pytest` builds it); `make changelog` regenerates the file."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
TOOL = ROOT / "build" / "docs-venv" / "bin" / "antsibull-changelog"


@pytest.fixture(scope="module")
def tool():
    if not TOOL.exists():
        pytest.fail("antsibull-changelog is missing: run `make docs-venv` (requirements/docs.txt)")
    return str(TOOL)


def _run(tool, cwd, *args):
    return subprocess.run([tool, *args], cwd=cwd, capture_output=True, text=True, check=False)


def _generated(tool, tmp_path):
    """CHANGELOG.md as the generator writes it, from a copy of galaxy.yml and changelogs/."""
    shutil.copy(ROOT / "galaxy.yml", tmp_path / "galaxy.yml")
    shutil.copytree(ROOT / "changelogs", tmp_path / "changelogs")
    done = _run(tool, tmp_path, "generate")
    assert done.returncode == 0, done.stdout + done.stderr
    return (tmp_path / "CHANGELOG.md").read_text(encoding="utf-8")


def test_changelog_md_is_generated(tool, tmp_path):
    assert (ROOT / "CHANGELOG.md").read_text(encoding="utf-8") == _generated(tool, tmp_path), \
        "CHANGELOG.md is not what antsibull-changelog generates: run `make changelog` (never edit it by hand)"


def test_a_changed_release_changes_the_output(tool, tmp_path):
    """The comparison above can fail: one more entry in changelog.yaml gives another CHANGELOG.md."""
    (tmp_path / "a").mkdir()
    before = _generated(tool, tmp_path / "a")
    (tmp_path / "b").mkdir()
    shutil.copy(ROOT / "galaxy.yml", tmp_path / "b" / "galaxy.yml")
    shutil.copytree(ROOT / "changelogs", tmp_path / "b" / "changelogs")
    data_file = tmp_path / "b" / "changelogs" / "changelog.yaml"
    data = yaml.safe_load(data_file.read_text(encoding="utf-8"))
    latest = sorted(data["releases"], key=lambda v: tuple(int(p) for p in v.split(".")))[-1]
    data["releases"][latest]["changes"].setdefault("bugfixes", []).append("an entry nobody wrote")
    data_file.write_text(yaml.safe_dump(data), encoding="utf-8")
    assert _run(tool, tmp_path / "b", "generate").returncode == 0
    after = (tmp_path / "b" / "CHANGELOG.md").read_text(encoding="utf-8")
    assert before != after and "an entry nobody wrote" in after


def test_changelog_data_and_fragments_pass_lint(tool):
    data = _run(tool, ROOT, "lint-changelog-yaml", "changelogs/changelog.yaml")
    assert data.returncode == 0 and not data.stdout.strip(), data.stdout + data.stderr
    fragments = _run(tool, ROOT, "lint")
    assert fragments.returncode == 0 and not fragments.stdout.strip(), \
        "antsibull-changelog lint:\n" + fragments.stdout + fragments.stderr


def test_the_history_is_the_first_release():
    """The hand-written history (75 entries) is release 0.1.0, the version galaxy.yml gives."""
    data = yaml.safe_load((ROOT / "changelogs" / "changelog.yaml").read_text(encoding="utf-8"))
    first = data["releases"]["0.1.0"]["changes"]
    entries = sum(len(v) for k, v in first.items() if k != "release_summary")
    assert entries == 75
    assert yaml.safe_load((ROOT / "galaxy.yml").read_text(encoding="utf-8"))["version"] == "0.1.0"
