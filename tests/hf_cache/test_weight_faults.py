"""Weight download faults: a run that ends in the middle of a file, and a disk that fills up during a download.

The real huggingface_hub client (through ``hf_snapshot_utils.provision``, what the hf_snapshot module runs) against
the Hub double (tests/doubles/hf_hub_server.py) on loopback. Asserted from the double's request log and the cache's
files: the next run fetches only what is missing (within a run, a cut transfer resumes with HTTP Range), a complete
file is never fetched again, a full disk is a clear error naming the path and the fix, and no partial file is ever counted
as complete.
"""

import os
import shutil
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

MIB = 1024 * 1024


def _params(double, repo, cache_dir, **extra):
    base = {"repo_id": repo.repo_id, "revision": "main", "cache_dir": cache_dir, "endpoint": double.url,
            "min_free_bytes": 0, "verify": "sha256"}
    base.update(extra)
    return base


def _gets(double):
    """{file: [(bytes, range), ...]} of the GETs that transferred file contents."""
    out = {}
    for name, nbytes, rng in double.file_gets():
        if name:
            out.setdefault(name, []).append((nbytes, rng))
    return out


def _partial_files(cache_dir):
    """Sizes of the partial downloads huggingface_hub keeps (``*.incomplete``) under CACHE_DIR."""
    found = {}
    for base, _dirs, files in os.walk(cache_dir):
        for name in files:
            if name.endswith(".incomplete"):
                found[os.path.join(base, name)] = os.path.getsize(os.path.join(base, name))
    return found


def _placed(cache_dir):
    """Files of the snapshot that huggingface_hub placed (a snapshot link to a blob that exists)."""
    placed = set()
    for base, _dirs, files in os.walk(cache_dir):
        if os.sep + "snapshots" + os.sep in base + os.sep:
            placed.update(name for name in files if os.path.exists(os.path.join(base, name)))
    return placed


def _snapshot_files(result):
    return sorted(os.listdir(result["snapshot_path"]))


def test_a_run_that_ends_mid_file_fetches_only_that_file_next_time():
    # Shards above huggingface_hub's 10 MiB resume chunk; the second one's transfer is cut after 11 MiB and every try
    # to resume it fails, so the run gives up in the middle of that file, as a run whose link or host died would.
    repo = GeneratedRepo("test-org/resume-model", shards=2, shard_size=12 * MIB)
    first, second = repo.shard_names
    cache_dir = os.path.join("/tmp", "hf-midfile-" + uuid.uuid4().hex[:8])
    try:
        with HubDouble([repo]) as double:
            double.add_fault(second, cut_after=11 * MIB)
            double.add_fault(second, status=503, times=100)
            with pytest.raises(hfu.SnapshotError):
                hfu.provision(_params(double, repo, cache_dir))
            # huggingface_hub keeps a partial file only in its own retries (from its last 10 MiB chunk, seen above
            # in the Range of the second try); after a failed run the file is fetched again as a whole.
            assert [r["range"] for r in double.log() if r["file"] == second and r["server"] == "cdn"] == \
                [None] + ["bytes=%d-" % (10 * MIB)] * (len(double.log()) and 1), double.log()[-3:]

            double.clear_faults()
            double.reset_log()
            result = hfu.provision(_params(double, repo, cache_dir))
            got = _gets(double)
            # The complete shard is not fetched again, nor any other complete file: only the interrupted one.
            assert sorted(got) == [second], got
            assert sum(n for n, _rng in got[second]) <= len(repo.files[second])
            assert result["changed"] is True
            assert _partial_files(cache_dir) == {}
            for name in (first, second):
                with open(os.path.join(result["snapshot_path"], name), "rb") as handle:
                    assert handle.read() == repo.files[name], name
    finally:
        shutil.rmtree(cache_dir, ignore_errors=True)


@pytest.fixture
def small_disk(tmp_path):
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip("cannot mount a tmpfs here: %s" % done.stderr.strip())
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def test_a_disk_that_fills_up_during_the_download_is_a_clear_error_and_nothing_partial_counts(small_disk):
    # The free space check passes (8 MiB free for 4 MiB of weights); then another writer takes the whole disk while
    # the download runs: the moment the Hub double is asked for the third shard.
    repo = GeneratedRepo("test-org/full-disk-model", shards=4, shard_size=MIB)
    shards = repo.shard_names
    cache_dir = str(small_disk / "hf")
    filler = small_disk / "other-writer.bin"

    def fill_the_disk():
        with open(filler, "wb") as handle:
            try:
                while True:
                    handle.write(b"\0" * 65536)
                    handle.flush()
            except OSError:
                pass

    with HubDouble([repo]) as double:
        double.add_fault(shards[2], action=fill_the_disk)
        with pytest.raises(hfu.SnapshotError) as info:
            hfu.provision(_params(double, repo, cache_dir, max_workers=1))
        message = info.value.msg
        assert "space" in message.lower(), message
        assert "Fix:" in message and str(small_disk) in message, message

        # Nothing partial counts as complete: a check without downloading reports what is missing.
        with pytest.raises(hfu.SnapshotError):
            hfu.provision(_params(double, repo, cache_dir, download=False))

        # Space back: the next run fetches what the full disk stopped, and no file it had completed.
        completed_before = _placed(cache_dir)
        assert shards[0] in completed_before and shards[2] not in completed_before, completed_before
        os.unlink(filler)
        double.reset_log()
        result = hfu.provision(_params(double, repo, cache_dir))
        assert not set(_gets(double)) & completed_before, (_gets(double), completed_before)
        assert set(repo.files) <= set(_snapshot_files(result)) | {".gitattributes"}
        for name in shards:
            with open(os.path.join(result["snapshot_path"], name), "rb") as handle:
                assert handle.read() == repo.files[name], name
