# -*- coding: utf-8 -*-
# Copyright: inference.deepseek_v4 maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""image_pull without a daemon: image references split as the Docker API wants them, registry credentials taken from
the Docker client configuration, and the daemon's progress messages counted into bytes done of the sizes known."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import json

import pytest

from ansible_collections.inference.deepseek_v4.plugins.modules import image_pull


@pytest.mark.parametrize("name, expected", [
    ("vllm/vllm-openai:v0.20.0", ("vllm/vllm-openai", "v0.20.0", "docker.io")),
    ("vllm/vllm-openai", ("vllm/vllm-openai", "latest", "docker.io")),
    ("ubuntu", ("ubuntu", "latest", "docker.io")),
    ("localhost:5000/team/engine", ("localhost:5000/team/engine", "latest", "localhost:5000")),
    ("nvcr.io/nvidia/vllm:25.09-py3", ("nvcr.io/nvidia/vllm", "25.09-py3", "nvcr.io")),
    ("ghcr.io/o/e@sha256:" + "a" * 64, ("ghcr.io/o/e", "sha256:" + "a" * 64, "ghcr.io")),
])
def test_split_reference(name, expected):
    assert image_pull.split_reference(name) == expected


def _decoded(header):
    return json.loads(base64.urlsafe_b64decode(header.encode()).decode())


def test_registry_auth_from_the_docker_client_configuration(tmp_path, monkeypatch):
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    assert image_pull.registry_auth("docker.io") is None  # no config.json: no header
    (tmp_path / "config.json").write_text(json.dumps({"auths": {
        "https://index.docker.io/v1/": {"auth": base64.b64encode(b"hubuser:hub:pass").decode()},
        "nvcr.io": {"auth": base64.b64encode(b"$oauthtoken:nv-key").decode()},
        "ghcr.io": {"identitytoken": "tok"},
    }}))
    assert _decoded(image_pull.registry_auth("docker.io")) == {
        "username": "hubuser", "password": "hub:pass", "serveraddress": "https://index.docker.io/v1/"}
    assert _decoded(image_pull.registry_auth("nvcr.io"))["password"] == "nv-key"
    assert _decoded(image_pull.registry_auth("ghcr.io")) == {"identitytoken": "tok", "serveraddress": "ghcr.io"}
    assert image_pull.registry_auth("quay.io") is None


def test_progress_counts_downloads_of_the_sizes_known_and_extraction_as_activity():
    progress = image_pull.PullProgress()
    image = "vllm/vllm-openai:v0.20.0"
    for message in (
            {"status": "Pulling from vllm/vllm-openai", "id": "v0.20.0"},
            {"status": "Already exists", "id": "base"},
            {"status": "Pulling fs layer", "id": "a"},
            {"status": "Pulling fs layer", "id": "b"},
            {"status": "Downloading", "id": "a", "progressDetail": {"current": 300, "total": 1000}}):
        progress.event(image, message)
    state = progress.sample()
    assert (state["done"], state["total"], state["total_partial"]) == (300, 1000, True)
    assert state["item"] == image + " layer a downloading; 0 of 2 layers complete"
    for message in (
            {"status": "Download complete", "id": "a"},
            {"status": "Downloading", "id": "b", "progressDetail": {"current": 2000, "total": 2000}},
            {"status": "Download complete", "id": "b"},
            {"status": "Extracting", "id": "a", "progressDetail": {"current": 500, "total": 1000}}):
        progress.event(image, message)
    state = progress.sample()
    assert (state["done"], state["total"], state["total_partial"]) == (3000, 3000, False)
    assert state["activity"] == 3500  # extraction moves while no byte is downloaded: no stall
    progress.event(image, {"status": "Pull complete", "id": "a"})
    progress.event(image, {"status": "Pull complete", "id": "b"})
    assert progress.sample()["item"].endswith("2 of 2 layers complete")
