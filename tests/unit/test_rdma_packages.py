# -*- coding: utf-8 -*-
"""The rdma role's package step (roles/rdma/tasks/transfer_host.yml), read from the tasks themselves: one read-only
dpkg-query, and apt only for what it does not report installed (dpkg-query prints `<name> ii ` for an installed
package and nothing for an unknown one). The expressions are rendered by Ansible's own templar on recorded
dpkg-query output."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template

TASKS = Path(__file__).resolve().parents[2] / "roles" / "rdma" / "tasks" / "transfer_host.yml"
PACKAGES = ["rdma-core", "ibverbs-providers", "libibverbs1", "ibverbs-utils"]


def _tasks():
    return {t["name"]: t for t in yaml.safe_load(TASKS.read_text())}


def _missing(stdout_lines, packages=None):
    block = _tasks()["Install the RDMA user space"]
    variables = {"rdma_packages": packages or PACKAGES, "_rdma_dpkg": {"stdout_lines": stdout_lines}}
    variables.update({k: trust_as_template(v) for k, v in block["vars"].items()})
    return Templar(loader=DataLoader(), variables=variables).template(trust_as_template("{{ _missing }}"))


def test_the_query_is_read_only_and_comes_first():
    names = list(_tasks())
    query = _tasks()["Read which RDMA packages are installed"]
    assert names.index("Read which RDMA packages are installed") < names.index("Install the RDMA user space")
    assert query["changed_when"] is False and query["check_mode"] is False and query["failed_when"] is False
    assert "dpkg-query" in query["ansible.builtin.command"]["argv"]
    assert "_missing | length > 0" in _tasks()["Install the RDMA user space"]["when"]


@pytest.mark.parametrize("lines, missing", [
    ([], PACKAGES),  # a fresh host, or one without dpkg-query
    (["%s ii " % p for p in PACKAGES], []),  # a tray with DOCA / MLNX OFED, or a re-run: apt is not touched
    (["rdma-core ii ", "libibverbs1 ii ", "ibverbs-utils rc "], ["ibverbs-providers", "ibverbs-utils"]),  # removed
    (["rdma-core ii ", "ibverbs-providers ii ", "libibverbs1 ii ", "ibverbs-utils iU "], ["ibverbs-utils"]),
])
def test_apt_runs_only_for_what_is_not_installed(lines, missing):
    assert _missing(lines) == missing


def test_a_pinned_version_is_compared_by_name():
    assert _missing(["rdma-core ii "], ["rdma-core=50.0-2", "libibverbs1:amd64"]) == ["libibverbs1"]
