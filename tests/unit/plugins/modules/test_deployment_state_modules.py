# -*- coding: utf-8 -*-
# Copyright: inference.deepseek_v4 maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Modules deployment_state and deployment_state_info, run in-process: the record file (mode 0600, written only when
its content or mode differs, never in check mode, removed with state=absent) and the comparison of a host with it
(no record, another key, an unchanged host, edited and removed files, containers and units with health URLs served
by a real HTTP server). No Docker daemon and no systemd are contacted: containers come from a stand-in
`docker inspect`, units from a stand-in `systemctl show`."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import stat

import pytest
from ansible.module_utils import basic

from ansible_collections.inference.deepseek_v4.plugins.module_utils import _deployment_state as S
from ansible_collections.inference.deepseek_v4.plugins.module_utils import _docker_api
from ansible_collections.inference.deepseek_v4.plugins.modules import deployment_state, deployment_state_info
from ansible_collections.inference.deepseek_v4.tests.unit.plugins.modules.module_runner import (
    http_server, run_main, status_handler)

KEY = "1" * 64
NO_RECORD = "no record of a complete rollout on this host"
OTHER_KEY = ("the plan, the inventory's settings for this host or the collection changed since the last complete "
             "rollout")


def _mode(path):
    return stat.S_IMODE(os.stat(str(path)).st_mode)


@pytest.fixture()
def host(tmp_path):
    """A record's path and two configuration files (one in a directory)."""
    conf = tmp_path / "etc"
    conf.mkdir()
    (conf / "engine.yaml").write_text("model: deepseek-v4\n")
    single = tmp_path / "router.env"
    single.write_text("PORT=30000\n")
    return {"record": str(tmp_path / "state" / "deployed.json"), "conf": str(conf), "single": str(single),
            "paths": [str(conf), str(single)]}


def _present(host, capsys, **extra):
    args = {"path": host["record"], "key": KEY, "paths": host["paths"]}
    args.update(extra)
    return run_main(deployment_state.main, args, capsys)


def _info(host, capsys, key=KEY, **extra):
    args = {"path": host["record"], "key": key}
    args.update(extra)
    return run_main(deployment_state_info.main, args, capsys)


def _read(path):
    with open(path) as handle:
        return handle.read()


# --- deployment_state ---------------------------------------------------------------------------------------------


def test_present_writes_a_0600_record_and_reports_changed(host, capsys):
    result = _present(host, capsys)
    assert result["changed"] is True and not result.get("failed")
    assert _mode(host["record"]) == 0o600
    written = json.loads(_read(host["record"]))
    assert written == result["record"]
    assert (written["version"], written["key"], written["containers"], written["units"]) == (S.VERSION, KEY, {}, {})
    assert sorted(written["files"]) == sorted([os.path.join(host["conf"], "engine.yaml"), host["single"]])
    assert written["files"][host["single"]] == S.file_digest(host["single"])


def test_present_twice_reports_no_change(host, capsys):
    _present(host, capsys)
    before = _read(host["record"])
    result = _present(host, capsys)
    assert result["changed"] is False
    assert _read(host["record"]) == before


def test_present_fixes_a_record_of_mode_0644(host, capsys):
    _present(host, capsys)
    before = _read(host["record"])
    os.chmod(host["record"], 0o644)
    result = _present(host, capsys)
    assert result["changed"] is True
    assert _mode(host["record"]) == 0o600
    assert _read(host["record"]) == before


def test_present_rewrites_the_record_when_a_file_changed(host, capsys):
    _present(host, capsys)
    with open(host["single"], "w") as handle:
        handle.write("PORT=30001\n")
    result = _present(host, capsys)
    assert result["changed"] is True
    assert json.loads(_read(host["record"]))["files"][host["single"]] == S.file_digest(host["single"])


def test_present_rewrites_the_record_for_another_key(host, capsys):
    _present(host, capsys)
    result = _present(host, capsys, key="2" * 64)
    assert result["changed"] is True
    assert json.loads(_read(host["record"]))["key"] == "2" * 64


def test_present_in_check_mode_writes_nothing_but_reports_changed(host, capsys):
    result = _present(host, capsys, _ansible_check_mode=True)
    assert result["changed"] is True
    assert result["record"]["key"] == KEY
    assert not os.path.exists(host["record"])
    assert not os.path.exists(os.path.dirname(host["record"]))


def test_present_in_check_mode_leaves_a_0644_record_as_it_is(host, capsys):
    _present(host, capsys)
    os.chmod(host["record"], 0o644)
    result = _present(host, capsys, _ansible_check_mode=True)
    assert result["changed"] is True
    assert _mode(host["record"]) == 0o644


def test_present_in_check_mode_leaves_a_stale_record_as_it_is(host, capsys):
    _present(host, capsys)
    before = _read(host["record"])
    result = _present(host, capsys, key="2" * 64, _ansible_check_mode=True)
    assert result["changed"] is True
    assert _read(host["record"]) == before


def test_present_in_check_mode_with_a_current_record_reports_no_change(host, capsys):
    _present(host, capsys)
    assert _present(host, capsys, _ansible_check_mode=True)["changed"] is False


def test_present_without_key_fails_naming_key(host, capsys):
    result = run_main(deployment_state.main, {"path": host["record"], "paths": host["paths"]}, capsys)
    assert result["failed"] is True
    assert "key" in result["msg"]
    assert not os.path.exists(host["record"])


def test_absent_removes_the_record(host, capsys):
    _present(host, capsys)
    result = run_main(deployment_state.main, {"path": host["record"], "state": "absent"}, capsys)
    assert (result["changed"], result["record"]) == (True, None)
    assert not os.path.exists(host["record"])


def test_absent_without_record_reports_no_change(host, capsys):
    result = run_main(deployment_state.main, {"path": host["record"], "state": "absent"}, capsys)
    assert result["changed"] is False
    assert not os.path.exists(host["record"])


def test_absent_twice_reports_no_change_the_second_time(host, capsys):
    _present(host, capsys)
    run_main(deployment_state.main, {"path": host["record"], "state": "absent"}, capsys)
    result = run_main(deployment_state.main, {"path": host["record"], "state": "absent"}, capsys)
    assert result["changed"] is False


def test_absent_in_check_mode_keeps_the_record(host, capsys):
    _present(host, capsys)
    result = run_main(deployment_state.main, {"path": host["record"], "state": "absent", "_ansible_check_mode": True},
                      capsys)
    assert result["changed"] is True
    assert os.path.isfile(host["record"])


# --- stand-ins for Docker and systemd -----------------------------------------------------------------------------


@pytest.fixture()
def docker(monkeypatch):
    """`docker inspect` answers from this table (name -> inspect body); a name not in it does not exist."""
    containers = {}
    monkeypatch.setattr(_docker_api.DockerClient, "inspect_container", lambda self, name: containers.get(name))
    return containers


def _container(cid, status="running"):
    return {"Id": cid, "State": {"Status": status, "Restarting": status == "restarting"}}


@pytest.fixture()
def systemd(monkeypatch, tmp_path):
    """`systemctl show` answers from this table (unit -> ActiveState) with the unit files in tmp_path/units."""
    unit_dir = tmp_path / "units"
    unit_dir.mkdir()
    active = {}
    real_run_command = basic.AnsibleModule.run_command

    def run_command(self, args, *more, **kwargs):
        if not (isinstance(args, list) and args[:2] == ["/bin/systemctl", "show"]):
            return real_run_command(self, args, *more, **kwargs)
        names = args[args.index("--") + 1:]
        blocks = []
        for name in names:
            path = unit_dir / name
            blocks.append("Id={0}\nActiveState={1}\nFragmentPath={2}\n".format(
                name, active.get(name, "inactive"), path if path.exists() else ""))
        return 0, "\n".join(blocks), ""

    def get_bin_path(self, name, required=False, opt_dirs=None):
        assert name == "systemctl"
        return "/bin/systemctl"

    monkeypatch.setattr(basic.AnsibleModule, "run_command", run_command)
    monkeypatch.setattr(basic.AnsibleModule, "get_bin_path", get_bin_path)
    return {"dir": unit_dir, "active": active}


@pytest.fixture()
def health_server():
    with http_server(status_handler({"/health": 200, "/starting": 503})) as url:
        yield url


def test_present_records_existing_containers_with_their_health_urls(host, capsys, docker):
    docker["prefill"] = _container("id-p")
    result = _present(host, capsys, containers=["prefill", "decode"],
                      health_urls={"prefill": "http://127.0.0.1:1/health"})
    assert result["record"]["containers"] == {"prefill": {"id": "id-p", "health_url": "http://127.0.0.1:1/health"}}


def test_present_records_units_found_by_pattern_and_by_name(host, capsys, systemd):
    (systemd["dir"] / "deepseek-v4-router.service").write_text("[Service]\nExecStart=/bin/router\n")
    (systemd["dir"] / "unrelated.service").write_text("[Service]\n")
    systemd["active"]["deepseek-v4-router.service"] = "active"
    result = _present(host, capsys, unit_dir=str(systemd["dir"]), unit_patterns=["deepseek-v4-*.service"],
                      units=["nginx"], health_urls={"deepseek-v4-router.service": "http://127.0.0.1:1/readiness"})
    assert result["record"]["units"] == {
        "deepseek-v4-router.service": {"active": "active",
                                       "sha256": S.file_digest(str(systemd["dir"] / "deepseek-v4-router.service")),
                                       "health_url": "http://127.0.0.1:1/readiness"},
        "nginx.service": {"active": "inactive", "sha256": None, "health_url": None},
    }


# --- deployment_state_info ----------------------------------------------------------------------------------------


def test_info_without_record(host, capsys):
    result = _info(host, capsys)
    assert (result["current"], result["reasons"], result["record"], result["changed"]) == (
        False, [NO_RECORD], None, False)


def test_info_with_an_unreadable_record_has_no_record(host, capsys):
    os.makedirs(os.path.dirname(host["record"]))
    with open(host["record"], "w") as handle:
        handle.write("{not json")
    result = _info(host, capsys)
    assert (result["current"], result["reasons"]) == (False, [NO_RECORD])


def test_info_returns_the_key(host, capsys):
    assert _info(host, capsys, key="3" * 64)["key"] == "3" * 64


def test_info_with_another_key(host, capsys):
    _present(host, capsys)
    result = _info(host, capsys, key="2" * 64)
    assert (result["current"], result["reasons"]) == (False, [OTHER_KEY])
    assert result["record"]["key"] == KEY


def test_info_with_the_same_key_and_unchanged_files_is_current(host, capsys):
    written = _present(host, capsys)["record"]
    result = _info(host, capsys)
    assert (result["current"], result["reasons"], result["key"], result["changed"]) == (True, [], KEY, False)
    assert result["record"] == written


def test_info_names_an_edited_file(host, capsys):
    _present(host, capsys)
    edited = os.path.join(host["conf"], "engine.yaml")
    with open(edited, "a") as handle:
        handle.write("max_model_len: 8192\n")
    result = _info(host, capsys)
    assert (result["current"], result["reasons"]) == (False, ["file {0} was edited".format(edited)])


def test_info_names_a_removed_file(host, capsys):
    _present(host, capsys)
    os.remove(host["single"])
    result = _info(host, capsys)
    assert (result["current"], result["reasons"]) == (False, ["file {0} is gone".format(host["single"])])


def test_info_changes_nothing(host, capsys):
    _present(host, capsys)
    before = _read(host["record"])
    _info(host, capsys, key="2" * 64)
    assert _read(host["record"]) == before and _mode(host["record"]) == 0o600


def test_info_with_a_container_answering_its_health_url_is_current(host, capsys, docker, health_server):
    docker["prefill"] = _container("id-p")
    _present(host, capsys, containers=["prefill"], health_urls={"prefill": health_server + "/health"})
    result = _info(host, capsys)
    assert (result["current"], result["reasons"]) == (True, [])


def test_info_names_a_container_not_answering_its_health_url(host, capsys, docker, health_server):
    docker["prefill"] = _container("id-p")
    url = health_server + "/starting"
    _present(host, capsys, containers=["prefill"], health_urls={"prefill": url})
    result = _info(host, capsys, request_timeout=2)
    assert (result["current"], result["reasons"]) == (False, ["container prefill does not answer {0}".format(url)])


def test_info_names_a_re_created_container(host, capsys, docker):
    docker["prefill"] = _container("id-p")
    _present(host, capsys, containers=["prefill"])
    docker["prefill"] = _container("id-new")
    result = _info(host, capsys)
    assert (result["current"], result["reasons"]) == (
        False, ["container prefill is not the one the last rollout started (re-created since)"])


def test_info_names_a_removed_container(host, capsys, docker):
    docker["prefill"] = _container("id-p")
    _present(host, capsys, containers=["prefill"])
    del docker["prefill"]
    result = _info(host, capsys)
    assert (result["current"], result["reasons"]) == (False, ["container prefill is gone"])


def _unit_record(host, capsys, systemd, url):
    (systemd["dir"] / "deepseek-v4-router.service").write_text("[Service]\nExecStart=/bin/router\n")
    systemd["active"]["deepseek-v4-router.service"] = "active"
    _present(host, capsys, unit_dir=str(systemd["dir"]), unit_patterns=["deepseek-v4-*.service"],
             health_urls={"deepseek-v4-router.service": url})


def test_info_with_an_active_unit_answering_its_health_url_is_current(host, capsys, systemd, health_server):
    _unit_record(host, capsys, systemd, health_server + "/health")
    result = _info(host, capsys)
    assert (result["current"], result["reasons"]) == (True, [])


def test_info_names_an_active_unit_not_answering_its_health_url(host, capsys, systemd, health_server):
    url = health_server + "/starting"
    _unit_record(host, capsys, systemd, url)
    result = _info(host, capsys, request_timeout=2)
    assert (result["current"], result["reasons"]) == (
        False, ["unit deepseek-v4-router.service does not answer {0}".format(url)])


def test_info_names_a_stopped_unit(host, capsys, systemd, health_server):
    _unit_record(host, capsys, systemd, health_server + "/health")
    systemd["active"]["deepseek-v4-router.service"] = "failed"
    result = _info(host, capsys)
    assert (result["current"], result["reasons"]) == (
        False, ["unit deepseek-v4-router.service is failed (was active)"])


def test_info_names_an_edited_unit_file(host, capsys, systemd, health_server):
    _unit_record(host, capsys, systemd, health_server + "/health")
    (systemd["dir"] / "deepseek-v4-router.service").write_text("[Service]\nExecStart=/bin/router --other\n")
    result = _info(host, capsys)
    assert (result["current"], result["reasons"]) == (False, ["unit deepseek-v4-router.service was edited"])
