"""Cache layout after converge + idempotence (the hosts share /root/.cache/huggingface)."""

import json

import pytest

REPO_DIR = "/root/.cache/huggingface/hub/models--deepseek-ai--DeepSeek-V4-Flash"
SHARDS = ["model-%05d-of-00004.safetensors" % i for i in range(1, 5)]
FILES = SHARDS + ["model.safetensors.index.json", "config.json", ".gitattributes"]


def _commit(host):
    return host.file(REPO_DIR + "/refs/main").content_string.strip()


def test_layout(host):
    commit = _commit(host)
    assert len(commit) == 40
    marker = json.loads(host.file("%s/.provisioned/%s.json" % (REPO_DIR, commit)).content_string)
    assert marker["verify"] == "sha256" and sorted(marker["files"]) == sorted(FILES)
    for name in FILES:
        pointer = host.file("%s/snapshots/%s/%s" % (REPO_DIR, commit, name))
        assert pointer.is_symlink and pointer.linked_to.startswith(REPO_DIR + "/blobs/")
        assert host.file(pointer.linked_to).size == marker["files"][name]["size"]
        if name.endswith(".safetensors"):
            assert pointer.linked_to.endswith(marker["files"][name]["sha256"])
    index = json.loads(host.file("%s/snapshots/%s/model.safetensors.index.json" % (REPO_DIR, commit)).content_string)
    assert sorted(set(index["weight_map"].values())) == SHARDS
    assert not host.run("find %s -name '*.incomplete'" % REPO_DIR).stdout.strip()


def test_token_file_mode(host):
    token = host.file("/root/.cache/huggingface/token")
    assert token.exists and token.mode == 0o600


def test_venv(host):
    out = host.run("/opt/deepseek-v4/hf-venv/bin/python -c 'import huggingface_hub as h; print(h.__version__)'")
    assert out.rc == 0 and out.stdout.strip() == "2.4.0"


def test_downloaded_once_and_idempotence_made_no_request(host):
    if host.backend.get_hostname() != "hf-cache-a":
        pytest.skip("the Hub double runs on hf-cache-a")
    log = [json.loads(line) for line in host.file("/var/log/hub-double.jsonl").content_string.splitlines() if line]
    # converge resolved the revision once and fetched each file once; the idempotence run made no request at all
    assert len([r for r in log if "/revision/" in r["path"]]) == 1
    gets = [r["file"] for r in log if r["method"] == "GET" and r["file"] and r["status"] == 200 and
            (r["server"] == "cdn" or "/resolve/" in r["path"])]
    assert sorted(gets) == sorted(FILES)
    assert all(r["auth"] for r in log if r["server"] == "hub")
