"""hf_snapshot: the real huggingface_hub client against the local Hub double (tests/doubles/hf_hub_server.py).

Everything runs on loopback. Most tests call ``provision`` (what the module's ``main`` calls); one runs the module
through ``ansible`` ad hoc with ``-vvv``.
"""

import json
import os
import shutil
import stat
import subprocess
import sys
import uuid

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
for extra in (os.path.join(ROOT, ".collections"), os.path.join(ROOT, "tests", "doubles")):
    if extra not in sys.path:
        sys.path.insert(0, extra)

pytest.importorskip("huggingface_hub")

from hf_hub_server import GeneratedRepo, HubDouble  # noqa: E402

from ansible_collections.inference.deepseek_v4.plugins.module_utils import hf_snapshot_utils as hfu  # noqa: E402

REPO = GeneratedRepo()  # 4 shards of ~300 KB + index + config + .gitattributes
SHARD = REPO.shard_names


@pytest.fixture
def hub():
    with HubDouble([REPO]) as double:
        yield double


@pytest.fixture
def cache(tmp_path):
    return str(tmp_path / "hf")


def params(double, cache_dir, **extra):
    base = {"repo_id": REPO.repo_id, "revision": "main", "cache_dir": cache_dir, "endpoint": double.url,
            "min_free_bytes": 0, "verify": "size"}
    base.update(extra)
    return base


def storage(cache_dir, repo=REPO):
    return os.path.join(cache_dir, "hub", "models--" + repo.repo_id.replace("/", "--"))


def fetched(double):
    """{file: [(bytes, range), ...]} of the GETs that transferred file contents."""
    out = {}
    for name, nbytes, rng in double.file_gets():
        if name:
            out.setdefault(name, []).append((nbytes, rng))
    return out


def content_gets(double):
    """File GETs that carry bytes: CDN GETs plus direct resolve GETs with a 200/206 answer."""
    return [r for r in double.log() if r["method"] == "GET" and r["file"] and r["status"] in (200, 206)
            and (r["server"] == "cdn" or "/resolve/" in r["path"])]


def resolve_requests(double):
    return [r for r in double.log() if "/resolve/" in r["path"] or r["server"] == "cdn"]


def test_full_download_layout_and_record(hub, cache):
    result = hfu.provision(params(hub, cache))
    assert result["changed"] is True
    assert result["revision"] == REPO.commit
    assert sorted(result["files"]) == sorted(REPO.files)
    assert result["bytes_total"] == REPO.total_size
    assert result["bytes_downloaded"] == REPO.total_size
    assert result["shards"] == 4
    snap = os.path.join(storage(cache), "snapshots", REPO.commit)
    assert result["snapshot_path"] == snap
    with open(os.path.join(storage(cache), "refs", "main")) as handle:
        assert handle.read() == REPO.commit
    for name, data in REPO.files.items():
        pointer = os.path.join(snap, name)
        assert os.path.islink(pointer)
        assert os.path.realpath(pointer) == os.path.join(storage(cache), "blobs", REPO.etag(name))
        with open(pointer, "rb") as handle:
            assert handle.read() == data
    marker = json.load(open(os.path.join(storage(cache), ".provisioned", REPO.commit + ".json")))
    assert marker["commit"] == REPO.commit and set(marker["files"]) == set(REPO.files)
    # every file transferred exactly once; the LFS bytes came from the "CDN" without the Authorization header
    got = fetched(hub)
    assert sorted(got) == sorted(REPO.files)
    assert all(len(v) == 1 for v in got.values())
    assert not any(r["auth"] for r in hub.log() if r["server"] == "cdn")


def test_second_run_is_local_only(hub, cache):
    hfu.provision(params(hub, cache))
    hub.reset_log()
    again = hfu.provision(params(hub, cache))
    assert again["changed"] is False and again["network"] is False and again["source"] == "local"
    assert again["bytes_downloaded"] == 0 and again["bytes_total"] == REPO.total_size
    assert hub.log() == []  # not a single request, not even the revision lookup
    # sha256 verification records hashes once; afterwards it is local-only as well
    hfu.provision(params(hub, cache, verify="sha256"))
    hub.reset_log()
    third = hfu.provision(params(hub, cache, verify="sha256"))
    assert third["changed"] is False and hub.log() == []


def test_second_run_without_any_hub(cache):
    with HubDouble([REPO]) as double:
        hfu.provision(params(double, cache))
        endpoint = double.url
    # the double is gone: nothing listens on the endpoint any more
    result = hfu.provision({"repo_id": REPO.repo_id, "revision": "main", "cache_dir": cache, "endpoint": endpoint,
                            "min_free_bytes": 0})
    assert result["changed"] is False and result["source"] == "local"


def test_check_mode_downloads_nothing(hub, cache):
    result = hfu.provision(params(hub, cache), check_mode=True)
    assert result["changed"] is True
    assert sorted(result["files_to_download"]) == sorted(REPO.files)
    assert result["bytes_to_download"] == REPO.total_size
    assert result["bytes_downloaded"] == 0
    assert resolve_requests(hub) == []  # only API metadata requests
    assert not os.path.exists(os.path.join(storage(cache), "blobs"))
    assert not os.path.exists(os.path.join(storage(cache), "refs"))
    # once provisioned, check mode reports no change and makes no request
    hfu.provision(params(hub, cache))
    hub.reset_log()
    result = hfu.provision(params(hub, cache), check_mode=True)
    assert result["changed"] is False and hub.log() == []


def test_interrupted_transfer_resumes_with_range():
    # huggingface_hub 2.4 resumes a dropped connection within the run from its last 10 MiB chunk (HTTP Range),
    # so the shard must be larger than that for the resume to show.
    big = GeneratedRepo("test-org/big-model", shards=2, shard_size=12 * 1024 * 1024)
    cut = 11 * 1024 * 1024
    with HubDouble([big]) as double:
        cache_dir = os.path.join("/tmp", "hf-resume-" + uuid.uuid4().hex[:8])
        try:
            double.add_fault(big.shard_names[0], cut_after=cut)
            result = hfu.provision({"repo_id": big.repo_id, "cache_dir": cache_dir, "endpoint": double.url,
                                    "min_free_bytes": 0, "verify": "sha256"})
            assert result["changed"] is True
            got = fetched(double)
            first = got[big.shard_names[0]]
            assert len(first) == 2
            assert first[0] == (cut, None)
            assert first[1][1] == "bytes=%d-" % (10 * 1024 * 1024)
            assert first[1][0] == len(big.files[big.shard_names[0]]) - 10 * 1024 * 1024
            assert len(got[big.shard_names[1]]) == 1
        finally:
            shutil.rmtree(cache_dir, ignore_errors=True)


def test_failed_run_then_resume_fetches_only_the_missing_file(hub, cache):
    hub.add_fault(SHARD[2], status=500, times=100)
    with pytest.raises(hfu.SnapshotError):
        hfu.provision(params(hub, cache, max_workers=8))
    # Which files the failed run completed depends on how far its workers got before the failure stopped them.
    completed = {name for name, gets in fetched(hub).items()
                 if any(nbytes == len(REPO.files[name]) for nbytes, _rng in gets)} - {SHARD[2]}
    missing = sorted(set(REPO.files) - completed)
    hub.clear_faults()
    hub.reset_log()
    result = hfu.provision(params(hub, cache))
    assert result["changed"] is True
    assert SHARD[2] in result["files_downloaded"]
    assert sorted(result["files_downloaded"]) == missing
    assert result["bytes_downloaded"] == sum(len(REPO.files[name]) for name in missing)
    assert sorted(fetched(hub)) == missing, "a file completed by the failed run was fetched again"
    # metadata requests only for the missing files
    heads = {r["file"] for r in hub.log() if r["method"] == "HEAD"}
    assert heads == set(missing)


def test_truncated_shard_is_detected_and_fetched_again(hub, cache):
    hfu.provision(params(hub, cache))
    blob = os.path.join(storage(cache), "blobs", REPO.etag(SHARD[1]))
    with open(blob, "r+b") as handle:
        handle.truncate(1000)
    hub.reset_log()
    result = hfu.provision(params(hub, cache))
    assert result["repaired"] == [SHARD[1]]
    assert result["changed"] is True
    assert sorted(fetched(hub)) == [SHARD[1]]
    with open(os.path.join(result["snapshot_path"], SHARD[1]), "rb") as handle:
        assert handle.read() == REPO.files[SHARD[1]]


def test_corrupted_shard_reported_by_name(hub, cache):
    hfu.provision(params(hub, cache, verify="sha256"))
    blob = os.path.join(storage(cache), "blobs", REPO.etag(SHARD[3]))
    with open(blob, "r+b") as handle:  # same size, different bytes
        handle.seek(5000)
        byte = handle.read(1)
        handle.seek(5000)
        handle.write(bytes([byte[0] ^ 0xFF]))
    hub.reset_log()
    with pytest.raises(hfu.SnapshotError) as info:
        hfu.provision(params(hub, cache, verify="sha256", repair=False))
    assert SHARD[3] in info.value.msg and "checksum mismatch" in info.value.msg
    assert info.value.details["corrupted"] == [SHARD[3]]
    assert resolve_requests(hub) == []
    # with repair (the default) the shard is replaced
    result = hfu.provision(params(hub, cache, verify="sha256"))
    assert result["repaired"] == [SHARD[3]] and sorted(fetched(hub)) == [SHARD[3]]


def test_disk_too_small_is_refused_before_any_byte(hub, cache):
    free = shutil.disk_usage("/").free
    with pytest.raises(hfu.SnapshotError) as info:
        hfu.provision(params(hub, cache, min_free_bytes=free + 10 ** 12))
    msg = info.value.msg
    assert "Not enough free disk space" in msg and "Fix:" in msg
    assert str(REPO.total_size) in msg
    details = info.value.details
    assert details["needed_bytes"] == REPO.total_size and details["free_bytes"] > 0 and details["path"]
    assert resolve_requests(hub) == []  # no HEAD/GET of any file
    assert not os.path.exists(os.path.join(storage(cache), "blobs"))


def test_disk_too_small_on_a_tiny_filesystem(hub, tmp_path):
    mount = tmp_path / "tiny"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
    if done.returncode != 0:
        pytest.skip("cannot mount a tmpfs here: %s" % done.stderr.decode().strip())
    try:
        with pytest.raises(hfu.SnapshotError) as info:
            hfu.provision(params(hub, str(mount / "hf")))
        assert info.value.details["path"] == str(mount)
        assert info.value.details["free_bytes"] < REPO.total_size
        assert resolve_requests(hub) == []
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def test_mirror_dir_is_linked_instead_of_downloaded(hub, cache, tmp_path):
    mirror = str(tmp_path / "staging")
    REPO.write_to(mirror, only=[p for p in REPO.files if p != SHARD[0]])
    with open(os.path.join(mirror, SHARD[1]), "ab") as handle:  # a bad staged copy is rejected, then downloaded
        handle.write(b"junk")
    result = hfu.provision(params(hub, cache, mirror_dir=mirror))
    assert sorted(result["files_downloaded"]) == sorted([SHARD[0], SHARD[1]])
    assert SHARD[1] in result["mirror_rejected"]
    assert sorted(result["files_from_mirror"]) == sorted(set(REPO.files) - {SHARD[0], SHARD[1]})
    assert sorted(fetched(hub)) == sorted([SHARD[0], SHARD[1]])
    staged = os.stat(os.path.join(mirror, SHARD[2]))
    cached = os.stat(os.path.join(result["snapshot_path"], SHARD[2]))
    assert (staged.st_ino, staged.st_dev) == (cached.st_ino, cached.st_dev)  # hard link, no copy
    hub.reset_log()
    assert hfu.provision(params(hub, cache, mirror_dir=mirror))["changed"] is False
    assert hub.log() == []


def test_verify_only_host_never_downloads(hub, cache):
    with pytest.raises(hfu.SnapshotError) as info:
        hfu.provision(params(hub, cache, download=False))
    assert "download is disabled" in info.value.msg and SHARD[0] in info.value.msg
    assert resolve_requests(hub) == []
    hfu.provision(params(hub, cache))
    hub.reset_log()
    assert hfu.provision(params(hub, cache, download=False))["changed"] is False
    assert hub.log() == []


def test_weight_map_shard_not_selected(hub, cache):
    with pytest.raises(hfu.SnapshotError) as info:
        hfu.provision(params(hub, cache, allow_patterns=["*.json", "model-0000[1-3]-*"]))
    assert SHARD[3] in info.value.msg and "weight_map" in info.value.msg


def test_offline_ok_accepts_a_complete_cache(cache):
    with HubDouble([REPO]) as double:
        hfu.provision(params(double, cache))
        endpoint = double.url
    os.unlink(os.path.join(storage(cache), ".provisioned", REPO.commit + ".json"))
    args = {"repo_id": REPO.repo_id, "cache_dir": cache, "endpoint": endpoint, "min_free_bytes": 0}
    with pytest.raises(hfu.HubUnreachable):
        hfu.provision(args)
    result = hfu.provision(dict(args, offline_ok=True))
    assert result["source"] == "offline" and result["changed"] is False and result["warnings"]


def test_token_is_sent_stored_0600_and_never_returned(cache):
    secret = "hf_" + uuid.uuid4().hex
    with HubDouble([REPO], token=secret) as double:
        result = hfu.provision(params(double, cache, token=secret, store_token=True))
        assert secret not in json.dumps(result)
        token_file = os.path.join(cache, "token")
        assert stat.S_IMODE(os.stat(token_file).st_mode) == 0o600
        assert open(token_file).read() == secret
        assert all(r["auth"] for r in double.log() if r["server"] == "hub")
        with pytest.raises(hfu.SnapshotError) as info:
            hfu.provision(params(double, cache + "2", token="hf_wrong" + secret))
        assert secret not in str(info.value) and secret not in json.dumps(info.value.details)


def _ansible_bin():
    candidate = os.path.join(os.path.dirname(sys.executable), "ansible")
    return candidate if os.path.exists(candidate) else shutil.which("ansible")


@pytest.mark.skipif(_ansible_bin() is None, reason="ansible is not installed")
def test_module_via_ansible_vvv_never_shows_the_token(cache):
    secret = "hf_" + uuid.uuid4().hex
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_NOCOLOR="1")

    def run(double, args, *extra):
        cmd = [_ansible_bin(), "localhost", "-i", "localhost,", "-c", "local", "-m", "inference.deepseek_v4.hf_snapshot",
               "-a", args, "-e", "ansible_python_interpreter=%s" % sys.executable, "-vvv"] + list(extra)
        done = subprocess.run(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=300, check=False)
        return done.returncode, done.stdout.decode()

    with HubDouble([REPO], token=secret) as double:
        base = "repo_id=%s cache_dir=%s endpoint=%s min_free_bytes=0 store_token=true token=%s" % (
            REPO.repo_id, cache, double.url, secret)
        rc, out = run(double, base + " verify=sha256", "--check")
        assert rc == 0, out
        assert secret not in out and "files_to_download" in out
        rc, out = run(double, base + " verify=sha256")
        assert rc == 0, out
        assert secret not in out and "CHANGED" in out and REPO.commit in out
        rc, out = run(double, base + " verify=sha256")
        assert rc == 0 and "SUCCESS" in out and secret not in out
        # a failure (the token lacks access to this repository) does not show it either
        rc, out = run(double, base.replace(REPO.repo_id, "other-org/missing") + " verify=sha256")
        assert rc != 0 and "not accessible" in out and secret not in out
    assert stat.S_IMODE(os.stat(os.path.join(cache, "token")).st_mode) == 0o600
