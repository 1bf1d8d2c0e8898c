# -*- coding: utf-8 -*-
# Copyright: inference.deepseek_v4 maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Every role README's variable table is what scripts/role-docs.py writes from meta/argument_specs.yml (run
`make role-docs` after changing a spec), and the script rewrites only its marked section, idempotently."""

from __future__ import annotations

import importlib.util
import os
import shutil

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_spec = importlib.util.spec_from_file_location("role_docs", os.path.join(ROOT, "scripts", "role-docs.py"))
role_docs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(role_docs)

SPECS = {"argument_specs": {"main": {"short_description": "A role", "options": {
    "demo_name": {"type": "str", "required": True, "description": "The C(name) | of it."},
    "demo_list": {"type": "list", "elements": "str", "default": [], "description": ["First.", "Second O(demo_name)."]},
    "demo_mode": {"type": "str", "default": "a", "choices": ["a", "b"], "description": "Mode."},
    "demo_opt": {"type": "int", "description": "Unset by default."},
}}}}


@pytest.mark.parametrize("role", role_docs.roles())
def test_readme_table_is_current(role):
    assert not role_docs.stale(role), \
        "roles/%s/README.md: its variable table differs from meta/argument_specs.yml; run `make role-docs`" % role


def test_every_role_readme_has_the_marked_table():
    assert len(role_docs.roles()) >= 9
    for role in role_docs.roles():
        with open(os.path.join(ROOT, "roles", role, "README.md"), encoding="utf-8") as f:
            text = f.read()
        assert text.count(role_docs.BEGIN) == 1 and text.count(role_docs.END) == 1, role


def test_rows_name_type_default_and_description():
    table = role_docs.render(SPECS).split("\n")
    assert "| `demo_name` | str | required | The `name` \\| of it. |" in table
    assert "| `demo_list` | list of str | `[]` | First. Second `demo_name`. |" in table
    assert "| `demo_mode` | str | `a` | Mode. One of `a`, `b`. |" in table
    assert "| `demo_opt` | int |  | Unset by default. |" in table


def test_a_hand_table_is_replaced_and_the_prose_kept_and_a_second_run_changes_nothing():
    readme = ("# demo\n\nProse before.\n\n| variable | default | meaning |\n| --- | --- | --- |\n"
              "| `demo_name` | required | the name |\n| `demo_mode` | `a` | old text |\n\nProse after.\n")
    once = role_docs.update(readme, SPECS)
    assert once.startswith("# demo\n\nProse before.\n\n" + role_docs.BEGIN)
    assert once.endswith(role_docs.END + "\n\nProse after.\n") and "old text" not in once
    assert role_docs.update(once, SPECS) == once
    # Prose edited around the section survives the next run.
    edited = once.replace("Prose after.", "Prose after, edited.")
    assert role_docs.update(edited, SPECS) == edited


def test_a_table_of_other_things_is_left_and_the_section_appended():
    readme = "# demo\n\n| variable | default |\n| --- | --- |\n| `deepseek_v4_plan_dir` | unset |\n"
    once = role_docs.update(readme, SPECS)
    assert once.startswith(readme.rstrip("\n")) and "\n## Variables\n\n" + role_docs.BEGIN in once
    assert role_docs.update(once, SPECS) == once


def test_a_changed_spec_makes_the_readme_stale(tmp_path):
    role = "python_venv"
    shutil.copytree(os.path.join(ROOT, "roles", role), str(tmp_path / "roles" / role))
    spec_path = tmp_path / "roles" / role / "meta" / "argument_specs.yml"
    assert not role_docs.stale(role, root=str(tmp_path))
    specs = yaml.safe_load(spec_path.read_text(encoding="utf-8"))
    specs["argument_specs"]["main"]["options"]["python_venv_python"]["default"] = "python3.12"
    spec_path.write_text(yaml.safe_dump(specs), encoding="utf-8")
    assert role_docs.stale(role, root=str(tmp_path))
    assert role_docs.stale(role, root=str(tmp_path), write=True)
    assert not role_docs.stale(role, root=str(tmp_path))
    assert "| `python_venv_python` | str | `python3.12` |" in (tmp_path / "roles" / role / "README.md").read_text()
