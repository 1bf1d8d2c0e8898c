# -*- coding: utf-8 -*-
# Copyright: inference.deepseek_v4 maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Lookup collection_digest: the digest of a collection-like tree (roles/, plugins/, playbooks/) changes with a file's
bytes, name or a new file, but not with run outputs under playbooks/ subdirectories, compiled Python files or files
outside the three trees; it is cached per root; the lookup returns the digest of the installed collection."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import re
import shutil

import pytest

from ansible_collections.inference.deepseek_v4.plugins.lookup import collection_digest as cd


@pytest.fixture(autouse=True)
def empty_cache(monkeypatch):
    monkeypatch.setattr(cd, "_CACHE", {})


@pytest.fixture()
def root(tmp_path):
    """A small copy-like collection tree."""
    top = tmp_path / "collection"
    for relative, text in (("roles/engine/tasks/main.yml", "- name: Start\n"),
                           ("roles/engine/defaults/main.yml", "port: 8000\n"),
                           ("plugins/modules/thing.py", "print('thing')\n"),
                           ("plugins/module_utils/_util.py", "X = 1\n"),
                           ("playbooks/deploy.yml", "- hosts: all\n"),
                           ("README.md", "readme\n")):
        path = top / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return top


def _again(root):
    """The digest computed anew (not the cached one)."""
    cd._CACHE.clear()
    return cd.digest(str(root))


def test_digest_is_64_lower_case_hex_digits(root):
    assert re.match(r"^[0-9a-f]{64}$", cd.digest(str(root)))


def test_digest_is_the_same_for_the_same_tree_elsewhere(root, tmp_path):
    copy = tmp_path / "elsewhere" / "collection"
    shutil.copytree(str(root), str(copy))
    assert cd.digest(str(copy)) == cd.digest(str(root))


def test_digest_changes_when_a_file_s_bytes_change(root):
    before = cd.digest(str(root))
    (root / "roles/engine/defaults/main.yml").write_text("port: 8001\n")
    assert _again(root) != before


def test_digest_changes_when_a_file_is_added_to_roles(root):
    before = cd.digest(str(root))
    (root / "roles/engine/templates").mkdir()
    (root / "roles/engine/templates/unit.j2").write_text("[Unit]\n")
    assert _again(root) != before


def test_digest_changes_when_a_file_is_added_to_plugins(root):
    before = cd.digest(str(root))
    (root / "plugins/filter").mkdir()
    (root / "plugins/filter/new.py").write_text("")
    assert _again(root) != before


def test_digest_changes_when_a_playbook_is_added(root):
    before = cd.digest(str(root))
    (root / "playbooks/teardown.yml").write_text("- hosts: all\n")
    assert _again(root) != before


def test_digest_changes_when_a_file_is_renamed(root):
    before = cd.digest(str(root))
    (root / "plugins/modules/thing.py").rename(root / "plugins/modules/other.py")
    assert _again(root) != before


def test_digest_changes_when_a_file_is_removed(root):
    before = cd.digest(str(root))
    (root / "plugins/module_utils/_util.py").unlink()
    assert _again(root) != before


def test_digest_ignores_run_outputs_under_playbooks_subdirectories(root):
    before = cd.digest(str(root))
    (root / "playbooks/reports/preflight").mkdir(parents=True)
    (root / "playbooks/reports/preflight/host1.json").write_text("{}\n")
    (root / "playbooks/reports/summary.md").write_text("ok\n")
    assert _again(root) == before


def test_digest_ignores_pycache(root):
    before = cd.digest(str(root))
    (root / "plugins/modules/__pycache__").mkdir()
    (root / "plugins/modules/__pycache__/thing.cpython-312.pyc").write_bytes(b"\x00compiled")
    (root / "plugins/modules/__pycache__/notes.txt").write_text("anything\n")
    assert _again(root) == before


def test_digest_ignores_compiled_python_files_outside_pycache(root):
    before = cd.digest(str(root))
    (root / "plugins/module_utils/_util.pyc").write_bytes(b"\x00compiled")
    (root / "roles/engine/old.pyo").write_bytes(b"\x00compiled")
    assert _again(root) == before


def test_digest_ignores_files_outside_the_code_trees(root):
    before = cd.digest(str(root))
    (root / "README.md").write_text("another readme\n")
    (root / "tests").mkdir()
    (root / "tests/test_x.py").write_text("")
    assert _again(root) == before


def test_digest_is_cached_per_root(root):
    before = cd.digest(str(root))
    (root / "roles/engine/defaults/main.yml").write_text("port: 8001\n")
    assert cd.digest(str(root)) == before
    assert cd._CACHE == {str(root): before}


def test_digest_of_a_root_without_code_trees_is_the_empty_digest(tmp_path):
    assert cd.digest(str(tmp_path)) == hashlib.sha256().hexdigest()


def test_lookup_returns_the_digest_of_the_installed_collection():
    got = cd.LookupModule().run([], {})
    assert got == [cd.digest(cd._ROOT)]
    assert re.match(r"^[0-9a-f]{64}$", got[0])


def test_documentation_does_not_count(tmp_path):
    root = tmp_path / "c"
    for tree in ("roles/r/tasks", "plugins/modules", "playbooks"):
        (root / tree).mkdir(parents=True)
    (root / "roles/r/tasks/main.yml").write_text("---\n")
    before = cd.digest(str(root))
    cd._CACHE.clear()
    (root / "roles/r/README.md").write_text("# r\n")
    assert cd.digest(str(root)) == before
