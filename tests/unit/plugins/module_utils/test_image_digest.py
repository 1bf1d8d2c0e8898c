# -*- coding: utf-8 -*-
# Copyright: inference.deepseek_v4 maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""One digest for every host: what the first host resolves an image to (module_utils _image_digest, module
image_digest_info against the Docker API double) and the check of each host's image against it (filters
image_digest_mismatches and image_reference)."""

from __future__ import annotations

import os
import sys
import uuid

import pytest

from ansible_collections.inference.deepseek_v4.plugins.filter.image_digest_mismatches import image_digest_mismatches
from ansible_collections.inference.deepseek_v4.plugins.filter.image_reference import image_reference
from ansible_collections.inference.deepseek_v4.plugins.module_utils import _image_digest as D
from ansible_collections.inference.deepseek_v4.plugins.modules import image_digest_info
from ansible_collections.inference.deepseek_v4.tests.unit.plugins.modules.module_runner import run_main

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "..", "doubles"))
from docker_api_double import DockerApiDouble  # noqa: E402

D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64
TAG = "vllm/vllm-openai:v0.20.0"


@pytest.mark.parametrize("name, repository", [
    ("vllm/vllm-openai:v0.20.0", "vllm/vllm-openai"),
    ("docker.io/vllm/vllm-openai:v0.20.0", "vllm/vllm-openai"),
    ("docker.io/library/ubuntu:24.04", "ubuntu"),
    ("registry.example.test:5000/team/engine", "registry.example.test:5000/team/engine"),
    ("registry.example.test:5000/team/engine:v1@" + D1, "registry.example.test:5000/team/engine"),
    ("localhost/deepseek-v4-rehearsal:cpu", "localhost/deepseek-v4-rehearsal"),
])
def test_repository_as_repo_digests_name_it(name, repository):
    assert D.repository(name) == repository


def test_a_digest_the_plan_pins_is_the_digest():
    entry = D.agreement(TAG + "@" + D1, "h1", registry=D2)
    assert (entry["digest"], entry["source"], entry["reference"]) == (D1, "plan", TAG + "@" + D1)


def test_a_tag_is_the_first_hosts_image_where_it_has_one_else_the_registrys():
    local = {"Id": "sha256:x", "RepoDigests": ["other/repo@" + D2, "vllm/vllm-openai@" + D1]}
    entry = D.agreement(TAG, "h1", local=local, registry=D2)
    assert (entry["digest"], entry["source"], entry["reference"]) == (D1, "local", "vllm/vllm-openai@" + D1)
    entry = D.agreement(TAG, "h1", local=None, registry=D2)
    assert (entry["digest"], entry["source"], entry["reference"]) == (D2, "registry", "vllm/vllm-openai@" + D2)
    assert "asked by h1" in entry["note"]
    # pull: always asks the registry first; its silence leaves the image here.
    assert D.agreement(TAG, "h1", local=local, registry=D2, pull="always")["digest"] == D2
    entry = D.agreement(TAG, "h1", local=local, registry_error="refused", pull="always")
    assert entry["digest"] == D1 and "refused" in entry["note"]


def test_a_local_image_has_no_digest_to_agree_on_and_a_silent_registry_leaves_the_pulls_to_compare():
    entry = D.agreement("localhost/rehearsal:cpu", "h1", local={"Id": "sha256:x", "RepoDigests": []},
                        registry_error="connection refused")
    assert (entry["digest"], entry["source"], entry["reference"]) == (None, "none", "localhost/rehearsal:cpu")
    assert "no digest to agree on" in entry["note"] and "local image" in entry["note"]
    entry = D.agreement(TAG, "h1", registry_error="500 connection refused")
    assert (entry["digest"], entry["source"], entry["reference"]) == (None, "pull", TAG)
    assert "500 connection refused" in entry["note"]


def test_the_reference_a_host_runs():
    agreements = {TAG: D.agreement(TAG, "h1", registry=D1), "localhost/x:1": D.agreement(
        "localhost/x:1", "h1", local={"RepoDigests": []})}
    assert image_reference(TAG, agreements) == "vllm/vllm-openai@" + D1
    assert image_reference("localhost/x:1", agreements) == "localhost/x:1"
    assert image_reference("other/image:2", agreements) == "other/image:2"
    assert image_reference(TAG, {}) == TAG


def test_an_image_that_is_not_the_agreed_digest_fails_naming_host_both_digests_and_fix():
    agreements = {TAG: D.agreement(TAG, "h1", registry=D1)}
    ref = "vllm/vllm-openai@" + D1
    assert image_digest_mismatches([{"name": ref, "digests": ["vllm/vllm-openai@" + D1]}], agreements, "h2") == []
    (msg,) = image_digest_mismatches([{"name": ref, "digests": ["vllm/vllm-openai@" + D2]}], agreements, "h2")
    for needed in ("h2:", TAG, D2 + " here", "not " + D1, "asked by h1", "Fix: pin the digest",
                   "vllm/vllm-openai:v0.20.0@" + D1):
        assert needed in msg, (needed, msg)
    (msg,) = image_digest_mismatches([{"name": ref, "digests": []}], agreements, "h2")
    assert "an image without a registry digest here" in msg


def test_pulls_by_tag_are_compared_with_the_first_host_that_has_a_digest():
    agreements = {TAG: D.agreement(TAG, "h1", registry_error="refused")}
    mine = [{"name": TAG, "digests": ["vllm/vllm-openai@" + D2]}]
    peers = [["h0", {}], ["h1", {TAG: ["vllm/vllm-openai@" + D1]}], ["h2", {TAG: ["vllm/vllm-openai@" + D2]}]]
    (msg,) = image_digest_mismatches(mine, agreements, "h2", peers)
    assert msg.startswith("h2: the tag %s gave %s here but %s on h1" % (TAG, D2, D1)), msg
    assert "@" + D1 in msg and "Fix:" in msg
    # The first host itself, and a host that agrees, pass.
    assert image_digest_mismatches([{"name": TAG, "digests": ["vllm/vllm-openai@" + D1]}], agreements, "h1",
                                   peers) == []
    assert image_digest_mismatches([{"name": TAG, "digests": ["vllm/vllm-openai@" + D1]}], agreements, "h2",
                                   peers) == []


def test_a_local_image_is_not_compared():
    agreements = {"localhost/x:1": D.agreement("localhost/x:1", "h1", local={"RepoDigests": []})}
    peers = [["h1", {"localhost/x:1": []}], ["h2", {"localhost/x:1": ["localhost/x@" + D2]}]]
    assert image_digest_mismatches([{"name": "localhost/x:1", "digests": []}], agreements, "h1", peers) == []


# ------------------------------------------------------------------------------------------------ the module
@pytest.fixture()
def sock():
    return os.path.join("/tmp", "docker-double-%s.sock" % uuid.uuid4().hex[:8])


def _info(double, capsys, names, pull="missing"):
    return run_main(image_digest_info.main, {"name": names, "pull": pull, "host": "h1",
                                             "docker_host": double.docker_host}, capsys)


def test_the_module_asks_the_registry_for_a_tag_not_here_and_nothing_for_a_pinned_digest(sock, capsys):
    with DockerApiDouble(sock, tags={TAG: D1}) as double:
        out = _info(double, capsys, [TAG, "other/engine:v1@" + D2])
    assert out["changed"] is False
    first, second = out["images"]
    assert (first["digest"], first["source"], first["reference"], first["host"]) == (
        D1, "registry", "vllm/vllm-openai@" + D1, "h1")
    assert (second["digest"], second["source"]) == (D2, "plan")
    assert [r["path"] for r in double.requests if r["path"].startswith("/distribution/")] == [
        "/distribution/%s/json" % TAG]
    assert not [r for r in double.requests if r["method"] == "POST"]


def test_the_module_keeps_the_image_here_with_pull_missing_and_says_a_local_image_has_none(sock, capsys):
    with DockerApiDouble(sock, tags={TAG: D2}, present=[TAG], local=["localhost/rehearsal:cpu"],
                         distribution=False) as double:
        out = _info(double, capsys, [TAG, "localhost/rehearsal:cpu"])
        here, local = out["images"]
        assert (here["digest"], here["source"]) == (D2, "local")
        assert (local["digest"], local["source"], local["reference"]) == (None, "none", "localhost/rehearsal:cpu")
        # The registry was asked only for the image without a digest here.
        assert [r["path"] for r in double.requests if r["path"].startswith("/distribution/")] == [
            "/distribution/localhost/rehearsal:cpu/json"]
        # pull: always asks for both; a registry that does not answer leaves the tag's local digest.
        out = _info(double, capsys, [TAG], pull="always")
        assert out["images"][0]["digest"] == D2 and "did not answer" in out["images"][0]["note"]
