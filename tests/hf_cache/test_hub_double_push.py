"""The Hub double's push: a new commit becomes the head of the branch, every earlier commit is still served by its
hash (what tests/e2e/test_pinned_weights.py relies on), through the real huggingface_hub client."""

import json
import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
DOUBLES = os.path.join(os.path.dirname(HERE), "doubles")
if DOUBLES not in sys.path:
    sys.path.insert(0, DOUBLES)

huggingface_hub = pytest.importorskip("huggingface_hub")

from hf_hub_server import FilesRepo, HubDouble  # noqa: E402  pylint: disable=wrong-import-position

REPO = "deepseek-ai/DeepSeek-V4-Flash"


def version(context):
    files = {"config.json": json.dumps({"max_position_embeddings": context}).encode(),
             "model.safetensors": b"\0" * 64 + str(context).encode()}
    return FilesRepo(REPO, files)


def config(path):
    with open(os.path.join(path, "config.json")) as handle:
        return json.load(handle)["max_position_embeddings"]


def test_a_push_moves_the_branch_and_keeps_the_old_commit(tmp_path):
    a, b = version(4096), version(2048)
    assert a.commit != b.commit
    with HubDouble([a]) as hub:
        api = huggingface_hub.HfApi(endpoint=hub.url)
        assert api.repo_info(REPO, revision="main").sha == a.commit
        hub.push(b)
        assert api.repo_info(REPO, revision="main").sha == b.commit
        assert api.repo_info(REPO, revision=a.commit).sha == a.commit
        old = huggingface_hub.snapshot_download(REPO, revision=a.commit, cache_dir=str(tmp_path), endpoint=hub.url)
        new = huggingface_hub.snapshot_download(REPO, revision="main", cache_dir=str(tmp_path), endpoint=hub.url)
    assert old.endswith(a.commit) and config(old) == 4096
    assert new.endswith(b.commit) and config(new) == 2048
