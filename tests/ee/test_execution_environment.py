# -*- coding: utf-8 -*-
# Copyright: inference.deepseek_v4 maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""execution-environment/execution-environment.yml: ansible-builder (pinned in requirements/docs.txt, build/docs-venv)
accepts it and writes its build context (`ansible-builder create`, no image and no registry); the context carries the
collection built from this checkout, installable; its pins and ranges are the ones the project tests."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
BUILDER = ROOT / "build" / "docs-venv" / "bin" / "ansible-builder"
GALAXY = ROOT / ".venv" / "bin" / "ansible-galaxy"
EE_DIR = ROOT / "execution-environment"


def _load(path):
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _create(definition, context):
    return subprocess.run([str(BUILDER), "create", "-f", str(definition), "-c", str(context),
                           "--output-filename", "Containerfile"], capture_output=True, text=True, check=False)


@pytest.fixture(scope="module")
def context(tmp_path_factory):
    """The build context `make ee` writes, made in a copy of the definition next to a freshly built collection."""
    if not BUILDER.exists():
        pytest.fail("ansible-builder is missing: run `make docs-venv` (requirements/docs.txt)")
    work = tmp_path_factory.mktemp("ee")
    shutil.copytree(EE_DIR, work / "execution-environment")
    built = subprocess.run([str(GALAXY), "collection", "build", "--force", "--output-path",
                            str(work / "build" / "ee-collection"), str(ROOT)], capture_output=True, text=True,
                           check=False)
    assert built.returncode == 0, built.stdout + built.stderr
    done = _create(work / "execution-environment" / "execution-environment.yml", work / "context")
    assert done.returncode == 0, done.stdout + done.stderr
    return work / "context"


def test_create_writes_the_build_context(context):
    containerfile = (context / "Containerfile").read_text(encoding="utf-8")
    assert re.search(r'^ARG EE_BASE_IMAGE="[^"]+"$', containerfile, re.M)
    assert "ansible-galaxy collection install" in containerfile and "-r requirements.yml" in containerfile
    assert 'LABEL ansible-execution-environment=true' in containerfile
    assert (context / "_build" / "bindep.txt").read_text() == (EE_DIR / "bindep.txt").read_text()
    assert _load(context / "_build" / "requirements.yml") == _load(EE_DIR / "requirements.yml")


def test_ansible_core_and_runner_are_the_tested_pins(context):
    pins = dict(line.split("==") for line in (ROOT / "requirements" / "base.txt").read_text().splitlines()
                if "==" in line and not line.startswith("#"))
    refs = re.search(r'^ARG ANSIBLE_INSTALL_REFS="([^"]*)"$', (context / "Containerfile").read_text(), re.M).group(1)
    assert refs.split() == ["ansible-core==" + pins["ansible-core"], "ansible-runner==" + pins["ansible-runner"]]


def test_the_context_carries_this_collection_installable(context, tmp_path):
    galaxy = _load(ROOT / "galaxy.yml")
    requirements = _load(EE_DIR / "requirements.yml")["collections"]
    tarball = requirements[0]["name"]
    assert tarball == "collection/inference-deepseek_v4-%s.tar.gz" % galaxy["version"]
    assert (context / "_build" / tarball).is_file()
    with tarfile.open(context / "_build" / tarball) as tar:
        manifest = json.load(tar.extractfile("MANIFEST.json"))
    assert manifest["collection_info"]["version"] == galaxy["version"]
    installed = subprocess.run([str(GALAXY), "collection", "install", "--force", "--no-deps", "--offline", "-p", str(tmp_path),
                                str(context / "_build" / tarball)], capture_output=True, text=True, check=False)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    assert (tmp_path / "ansible_collections" / "inference" / "deepseek_v4" / "plugins" / "modules"
            / "container_logs.py").is_file()


def test_dependencies_are_the_ranges_galaxy_yml_admits():
    galaxy = _load(ROOT / "galaxy.yml")["dependencies"]
    requirements = {c["name"]: c.get("version") for c in _load(EE_DIR / "requirements.yml")["collections"][1:]}
    assert requirements == galaxy


def test_a_definition_off_the_schema_is_refused(tmp_path):
    """The create step validates: a key the v3 schema does not know fails it."""
    if not BUILDER.exists():
        pytest.fail("ansible-builder is missing: run `make docs-venv` (requirements/docs.txt)")
    shutil.copytree(EE_DIR, tmp_path / "ee")
    definition = _load(tmp_path / "ee" / "execution-environment.yml")
    definition["dependencies"]["galaxy_requirements"] = "requirements.yml"
    del definition["additional_build_files"]
    (tmp_path / "ee" / "execution-environment.yml").write_text(yaml.safe_dump(definition), encoding="utf-8")
    done = _create(tmp_path / "ee" / "execution-environment.yml", tmp_path / "context")
    assert done.returncode != 0 and "galaxy_requirements" in done.stdout + done.stderr
