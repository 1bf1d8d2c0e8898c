# -*- coding: utf-8 -*-
# Copyright: inference.deepseek_v4 maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""module_utils _deployment_state: the digests of files and unit files, the parse of `systemctl show`, the states of
units and containers, the record a complete rollout writes and its reading, every reason `differences` gives (and
none for a host that runs what the record says), `observe` with a stand-in module and Docker client, and
`answers_url` against a real HTTP server."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import json
import os

import pytest

from ansible_collections.inference.deepseek_v4.plugins.module_utils import _deployment_state as S
from ansible_collections.inference.deepseek_v4.plugins.module_utils import _docker_api
from ansible_collections.inference.deepseek_v4.tests.unit.plugins.modules.module_runner import (
    http_server, status_handler)

KEY = "k" * 64
DIGEST_A = "a" * 64
DIGEST_B = "b" * 64


def _sha(data):
    return hashlib.sha256(data).hexdigest()


# --- file_digest / file_digests -----------------------------------------------------------------------------------


def test_file_digest_is_the_sha256_of_the_bytes(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"hello\n")
    assert S.file_digest(str(path)) == _sha(b"hello\n")


def test_file_digest_of_a_large_file_reads_every_block(tmp_path):
    data = os.urandom((1 << 16) * 2 + 7)
    path = tmp_path / "big"
    path.write_bytes(data)
    assert S.file_digest(str(path)) == _sha(data)


def test_file_digest_of_a_missing_file_is_none(tmp_path):
    assert S.file_digest(str(tmp_path / "missing")) is None


def test_file_digests_walks_directories_and_skips_missing_paths(tmp_path):
    conf = tmp_path / "conf"
    (conf / "sub").mkdir(parents=True)
    (conf / "a.yaml").write_bytes(b"a")
    (conf / "sub" / "b.env").write_bytes(b"b")
    single = tmp_path / "single.json"
    single.write_bytes(b"{}")
    got = S.file_digests([str(conf), str(single), str(tmp_path / "missing")])
    assert got == {str(conf / "a.yaml"): _sha(b"a"), str(conf / "sub" / "b.env"): _sha(b"b"),
                   str(single): _sha(b"{}")}
    assert list(got) == sorted(got)


def test_file_digests_of_nothing_is_empty():
    assert S.file_digests([]) == {}


# --- unit_names / parse_systemctl_show / unit_states --------------------------------------------------------------


def test_unit_names_match_patterns_and_add_service_suffix(tmp_path):
    for name in ("deepseek-v4-router.service", "deepseek-v4-exporter.timer", "other.service"):
        (tmp_path / name).write_text("[Unit]\n")
    got = S.unit_names(str(tmp_path), ["deepseek-v4-*"], ["nginx", "deepseek-v4-router.service", "x.socket"])
    assert got == ["deepseek-v4-exporter.timer", "deepseek-v4-router.service", "nginx.service", "x.socket"]


def test_unit_names_with_no_match_and_no_names_is_empty(tmp_path):
    assert S.unit_names(str(tmp_path), ["deepseek-v4-*.service"], []) == []


def test_parse_systemctl_show_gives_one_entry_per_block():
    text = ("Id=a.service\nActiveState=active\nFragmentPath=/etc/systemd/system/a.service\n\n"
            "Id=b.service\nActiveState=inactive\nFragmentPath=\n")
    assert S.parse_systemctl_show(text) == {
        "a.service": {"Id": "a.service", "ActiveState": "active", "FragmentPath": "/etc/systemd/system/a.service"},
        "b.service": {"Id": "b.service", "ActiveState": "inactive", "FragmentPath": ""},
    }


def test_parse_systemctl_show_keeps_equal_signs_in_values_and_drops_blocks_without_id():
    text = "ActiveState=active\n\nId=c.service\nFragmentPath=/x=y/c.service\n"
    assert S.parse_systemctl_show(text) == {"c.service": {"Id": "c.service", "FragmentPath": "/x=y/c.service"}}


def test_unit_states_reads_active_state_and_unit_file_digest(tmp_path):
    unit = tmp_path / "a.service"
    unit.write_bytes(b"[Service]\nExecStart=/bin/true\n")
    calls = []

    def show(args):
        calls.append(args)
        return ("Id=a.service\nActiveState=active\nFragmentPath={0}\n\n"
                "Id=b.service\nActiveState=inactive\nFragmentPath=\n".format(unit))

    got = S.unit_states(show, ["a.service", "b.service", "c.service"])
    assert got == {"a.service": {"active": "active", "sha256": _sha(b"[Service]\nExecStart=/bin/true\n")},
                   "b.service": {"active": "inactive", "sha256": None},
                   "c.service": {"active": "unknown", "sha256": None}}
    assert calls == [["-p", "Id,ActiveState,FragmentPath,DropInPaths", "--", "a.service", "b.service", "c.service"]]


def test_unit_states_of_no_units_does_not_run_systemctl():
    assert S.unit_states(lambda args: pytest.fail("ran systemctl show for no unit"), []) == {}


# --- container_states ---------------------------------------------------------------------------------------------


def test_container_states_from_docker_inspect():
    inspected = {
        "prefill": {"Id": "id-p", "State": {"Status": "running", "Restarting": False}},
        "decode": {"Id": "id-d", "State": {"Status": "restarting", "Restarting": True}},
        "odd": {"Id": "id-o"},
    }
    got = S.container_states(inspected.get, ["prefill", "decode", "odd", "gone"])
    assert got == {"prefill": {"id": "id-p", "status": "running", "restarting": False},
                   "decode": {"id": "id-d", "status": "restarting", "restarting": True},
                   "odd": {"id": "id-o", "status": "unknown", "restarting": False},
                   "gone": None}


# --- record / load / stale_record ---------------------------------------------------------------------------------


def test_record_leaves_out_missing_containers_and_names_health_urls():
    got = S.record(KEY, {"b": {"id": "id-b", "status": "running", "restarting": False}, "gone": None},
                   {"r.service": {"active": "active", "sha256": DIGEST_A}},
                   {"/etc/z": DIGEST_B, "/etc/a": DIGEST_A},
                   {"b": "http://b/health", "r.service": "http://r/readiness"}, ["/etc/z", "/etc/a"])
    assert got == {
        "version": S.VERSION,
        "key": KEY,
        "paths": ["/etc/a", "/etc/z"],
        "containers": {"b": {"id": "id-b", "health_url": "http://b/health"}},
        "units": {"r.service": {"active": "active", "sha256": DIGEST_A, "health_url": "http://r/readiness"}},
        "files": {"/etc/a": DIGEST_A, "/etc/z": DIGEST_B},
    }
    assert list(got["files"]) == ["/etc/a", "/etc/z"]


def test_record_without_health_url_records_none():
    got = S.record(KEY, {"c": {"id": "i", "status": "running", "restarting": False}}, {}, {}, {})
    assert got["containers"] == {"c": {"id": "i", "health_url": None}}


def test_load_reads_a_record_of_this_version():
    stamp = S.record(KEY, {}, {}, {"/etc/a": DIGEST_A}, {})
    assert S.load(json.dumps(stamp)) == stamp


@pytest.mark.parametrize("text", [None, "", "not json {", "[1, 2]", json.dumps({"version": S.VERSION + 1, "key": KEY}),
                                  json.dumps({"key": KEY})])
def test_load_gives_none_for_no_or_foreign_record(text):
    assert S.load(text) is None


def test_stale_record_without_record():
    assert S.stale_record(None, KEY) == "no record of a complete rollout on this host"


def test_stale_record_with_another_key():
    assert S.stale_record({"key": "other"}, KEY) == (
        "the plan, the inventory's settings for this host or the collection changed since the last complete rollout")


def test_stale_record_with_the_same_key_is_none():
    assert S.stale_record({"key": KEY}, KEY) is None


# --- differences --------------------------------------------------------------------------------------------------


def _stamp(containers=None, units=None, files=None, key=KEY):
    return {"version": S.VERSION, "key": key, "containers": containers or {}, "units": units or {},
            "files": files or {}}


def _running(cid, status="running", restarting=False):
    return {"id": cid, "status": status, "restarting": restarting}


def _never(url):
    pytest.fail("probed {0}".format(url))


class _Answers(object):
    """A probe that answers from a table and remembers what it was asked."""

    def __init__(self, **by_url):
        self.by_url = by_url
        self.asked = []

    def __call__(self, url):
        self.asked.append(url)
        return self.by_url.get(url, False)


FULL_STAMP = _stamp(
    containers={"prefill": {"id": "id-p", "health_url": "http://p/health"}},
    units={"router.service": {"active": "active", "sha256": DIGEST_A, "health_url": "http://r/readiness"},
           "exporter.service": {"active": "inactive", "sha256": DIGEST_B, "health_url": None}},
    files={"/etc/dsv4/a.yaml": DIGEST_A},
)


def _same_host():
    return dict(containers={"prefill": _running("id-p")},
                units={"router.service": {"active": "active", "sha256": DIGEST_A},
                       "exporter.service": {"active": "inactive", "sha256": DIGEST_B}},
                files={"/etc/dsv4/a.yaml": DIGEST_A})


def _differences(answers=None, **changes):
    host = _same_host()
    host.update(changes)
    answers = answers or _Answers(**{"http://p/health": True, "http://r/readiness": True})
    return S.differences(FULL_STAMP, KEY, host["containers"], host["units"], host["files"], answers)


def test_differences_of_an_identical_host_is_empty():
    answers = _Answers(**{"http://p/health": True, "http://r/readiness": True})
    assert _differences(answers) == []
    assert sorted(answers.asked) == ["http://p/health", "http://r/readiness"]


def test_differences_without_record():
    assert S.differences(None, KEY, {}, {}, {}, _never) == ["no record of a complete rollout on this host"]


def test_differences_with_another_key_looks_no_further():
    assert S.differences(FULL_STAMP, "other", {}, {}, {}, _never) == [
        "the plan, the inventory's settings for this host or the collection changed since the last complete rollout"]


def test_differences_container_gone():
    assert _differences(containers={"prefill": None}) == ["container prefill is gone"]


def test_differences_container_not_observed_is_gone():
    assert _differences(containers={}) == ["container prefill is gone"]


def test_differences_container_re_created():
    assert _differences(containers={"prefill": _running("id-new")}) == [
        "container prefill is not the one the last rollout started (re-created since)"]


def test_differences_container_not_running():
    assert _differences(containers={"prefill": _running("id-p", status="exited")}) == ["container prefill is exited"]


def test_differences_container_restarting():
    assert _differences(containers={"prefill": _running("id-p", status="running", restarting=True)}) == [
        "container prefill is restarting"]


def test_differences_container_not_answering_its_health_url():
    answers = _Answers(**{"http://p/health": False, "http://r/readiness": True})
    assert _differences(answers) == ["container prefill does not answer http://p/health"]


def test_differences_container_without_health_url_is_not_probed():
    stamp = _stamp(containers={"c": {"id": "i", "health_url": None}})
    assert S.differences(stamp, KEY, {"c": _running("i")}, {}, {}, _never) == []


def test_differences_unit_edited():
    units = _same_host()["units"]
    units["router.service"] = {"active": "active", "sha256": DIGEST_B}
    assert _differences(units=units) == ["unit router.service was edited"]


def test_differences_unit_gone():
    units = _same_host()["units"]
    units["exporter.service"] = {"active": "unknown", "sha256": None}
    assert _differences(units=units) == ["unit exporter.service is gone"]


def test_differences_unit_not_observed_is_gone():
    units = _same_host()["units"]
    del units["router.service"]
    assert _differences(units=units) == ["unit router.service is gone"]


def test_differences_unit_active_state_differs():
    units = _same_host()["units"]
    units["router.service"] = {"active": "failed", "sha256": DIGEST_A}
    assert _differences(units=units) == ["unit router.service is failed (was active)"]


def test_differences_inactive_unit_that_became_active():
    units = _same_host()["units"]
    units["exporter.service"] = {"active": "active", "sha256": DIGEST_B}
    assert _differences(units=units) == ["unit exporter.service is active (was inactive)"]


def test_differences_active_unit_not_answering_its_health_url():
    answers = _Answers(**{"http://p/health": True, "http://r/readiness": False})
    assert _differences(answers) == ["unit router.service does not answer http://r/readiness"]


def test_differences_inactive_unit_with_health_url_is_not_probed():
    stamp = _stamp(units={"x.service": {"active": "inactive", "sha256": DIGEST_A, "health_url": "http://x/h"}})
    assert S.differences(stamp, KEY, {}, {"x.service": {"active": "inactive", "sha256": DIGEST_A}}, {}, _never) == []


def test_differences_file_edited():
    assert _differences(files={"/etc/dsv4/a.yaml": DIGEST_B}) == ["file /etc/dsv4/a.yaml was edited"]


def test_differences_file_gone():
    assert _differences(files={}) == ["file /etc/dsv4/a.yaml is gone"]


def test_differences_gives_one_reason_per_item():
    answers = _Answers()
    got = _differences(answers, containers={"prefill": None},
                       units={"router.service": {"active": "active", "sha256": DIGEST_A},
                              "exporter.service": {"active": "inactive", "sha256": DIGEST_A}},
                       files={})
    assert got == ["container prefill is gone", "unit router.service does not answer http://r/readiness",
                   "unit exporter.service was edited", "file /etc/dsv4/a.yaml is gone"]


# --- observe ------------------------------------------------------------------------------------------------------


class _Failed(Exception):
    pass


class _Module(object):
    """The part of AnsibleModule that observe uses; systemctl show answers SHOW_OUT with RC."""

    def __init__(self, show_out="", rc=0, err=""):
        self.params = {"docker_host": "unix:///nonexistent/docker.sock"}
        self.show_out, self.rc, self.err = show_out, rc, err
        self.commands = []

    def get_bin_path(self, name, required=False):
        return "/usr/bin/" + name

    def run_command(self, args):
        self.commands.append(args)
        return self.rc, self.show_out, self.err

    def fail_json(self, **kwargs):
        raise _Failed(kwargs["msg"])


def test_observe_without_containers_or_units_contacts_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(_docker_api, "DockerClient", lambda params: pytest.fail("made a Docker client"))
    conf = tmp_path / "a.conf"
    conf.write_bytes(b"x")
    module = _Module()
    assert S.observe(module, [], [], [str(conf)]) == {"containers": {}, "units": {}, "files": {str(conf): _sha(b"x")}}
    assert module.commands == []


def test_observe_inspects_containers_and_shows_units(tmp_path, monkeypatch):
    unit = tmp_path / "r.service"
    unit.write_bytes(b"[Unit]\n")
    inspected = {"prefill": {"Id": "id-p", "State": {"Status": "running", "Restarting": False}}}
    monkeypatch.setattr(_docker_api.DockerClient, "inspect_container", lambda self, name: inspected.get(name))
    module = _Module("Id=r.service\nActiveState=active\nFragmentPath={0}\n".format(unit))
    got = S.observe(module, ["prefill", "gone"], ["r.service"], [])
    assert got == {"containers": {"prefill": _running("id-p"), "gone": None},
                   "units": {"r.service": {"active": "active", "sha256": _sha(b"[Unit]\n")}}, "files": {}}
    assert module.commands == [["/usr/bin/systemctl", "show", "-p", "Id,ActiveState,FragmentPath,DropInPaths", "--", "r.service"]]


def test_observe_fails_when_systemctl_show_fails():
    module = _Module(rc=1, err="Failed to connect to bus\n")
    with pytest.raises(_Failed) as failed:
        S.observe(module, [], ["r.service"], [])
    assert str(failed.value) == ("systemctl show -p Id,ActiveState,FragmentPath,DropInPaths -- r.service failed: "
                                 "Failed to connect to bus")


# --- answers_url --------------------------------------------------------------------------------------------------


@pytest.fixture()
def health_server():
    with http_server(status_handler({"/health": 200, "/starting": 503, "/redirect-ish": 204})) as url:
        yield url


def test_answers_url_true_on_200(health_server):
    assert S.answers_url(2)(health_server + "/health") is True


def test_answers_url_false_on_503(health_server):
    assert S.answers_url(2)(health_server + "/starting") is False


def test_answers_url_false_on_another_2xx(health_server):
    assert S.answers_url(2)(health_server + "/redirect-ish") is False


def test_answers_url_false_when_nothing_listens():
    with http_server(status_handler({})) as url:
        pass
    assert S.answers_url(2)(url + "/health") is False


def test_unit_digest_covers_the_drop_ins(tmp_path):
    unit = tmp_path / "r.service"
    unit.write_bytes(b"[Service]\nExecStart=/bin/true\n")
    drop_in = tmp_path / "r.service.d" / "override.conf"
    drop_in.parent.mkdir()
    drop_in.write_bytes(b"[Service]\nUser=root\n")
    alone = S.unit_digest(str(unit), [])
    assert alone == _sha(b"[Service]\nExecStart=/bin/true\n")
    with_drop_in = S.unit_digest(str(unit), [str(drop_in)])
    assert with_drop_in != alone
    drop_in.write_bytes(b"[Service]\nUser=nobody\n")
    assert S.unit_digest(str(unit), [str(drop_in)]) != with_drop_in


def test_unit_states_reads_the_drop_in_paths(tmp_path):
    unit = tmp_path / "r.service"
    unit.write_bytes(b"[Unit]\n")
    drop_in = tmp_path / "override.conf"
    drop_in.write_bytes(b"[Service]\nUser=root\n")
    text = "Id=r.service\nActiveState=active\nFragmentPath={0}\nDropInPaths={1}\n".format(unit, drop_in)
    got = S.unit_states(lambda args: text, ["r.service"])
    assert got["r.service"]["sha256"] == S.unit_digest(str(unit), [str(drop_in)])
    assert got["r.service"]["sha256"] != _sha(b"[Unit]\n")


def test_a_file_added_under_a_recorded_directory_is_a_difference():
    stamp = S.record(KEY, {}, {}, {"/etc/d/a": DIGEST_A}, {}, ["/etc/d"])
    reasons = S.differences(stamp, KEY, {}, {}, {"/etc/d/a": DIGEST_A, "/etc/d/new": DIGEST_B}, lambda url: True)
    assert reasons == ["file /etc/d/new was added"]
