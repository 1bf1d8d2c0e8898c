"""The weight download in the background: progress lines, a stall that fails with its message, a resumed run.

The real role hf_cache (tests/hf_cache/progress_playbook.yml, ansible-playbook against localhost), module hf_snapshot
and action async_progress, with huggingface_hub, against the Hub double (tests/doubles/hf_hub_server.py) sending its
file bodies at a set rate. Shards of 24 MiB: huggingface_hub writes a download in 10 MiB chunks, so the bytes in the
cache move in 10 MiB steps. Asserted from the play's output, the double's request log and the cache's files:

* a throttled download prints a line per interval with bytes done of the total, the rate and the time left, the
  bytes growing from line to line;
* a download whose server stops sending fails after hf_cache_stall_timeout, the message naming the host, the file,
  the fix and the variable; the partial file stays in the cache;
* the next run asks the Hub for that file from where the partial file stops (HTTP Range) and for no file that was
  complete; the provisioned files are the Hub's bytes.

The direct test of the module's resume (``provision`` with a partial file left in the cache) needs no playbook.
"""

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import uuid

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
for extra in (os.path.join(ROOT, ".collections"), os.path.join(ROOT, "tests", "doubles")):
    if extra not in sys.path:
        sys.path.insert(0, extra)

pytest.importorskip("huggingface_hub")

from hf_hub_server import GeneratedRepo, HubDouble  # noqa: E402

from ansible_collections.inference.deepseek_v4.plugins.module_utils import _progress  # noqa: E402
from ansible_collections.inference.deepseek_v4.plugins.module_utils import hf_snapshot_utils as hfu  # noqa: E402

MIB = 1024 * 1024
CHUNK = 10 * MIB  # huggingface_hub's DOWNLOAD_CHUNK_SIZE
REPO = GeneratedRepo("test-org/progress-model", shards=2, shard_size=24 * MIB)
LINE = re.compile(r"^localhost: test-org/progress-model: ([0-9.]+) (B|KiB|MiB|GiB) of ([0-9.]+ MiB) \(([0-9.]+)%\), "
                  r"([0-9.]+ (?:B|KiB|MiB)/s)(?:, (.+?) left)?", re.M)


def _playbook_bin():
    candidate = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
    return candidate if os.path.exists(candidate) else shutil.which("ansible-playbook")


@pytest.fixture
def work():
    base = os.path.join("/tmp", "hf-progress-" + uuid.uuid4().hex[:8])
    venv = os.path.join(base, "venv", "bin")
    os.makedirs(venv)
    # The role's virtualenv: this interpreter (it has the pinned huggingface_hub), so that the role installs nothing.
    with open(os.path.join(venv, "python"), "w") as handle:
        handle.write('#!/bin/sh\nexec %s "$@"\n' % sys.executable)
    os.chmod(os.path.join(venv, "python"), 0o755)
    os.symlink(os.path.join(os.path.dirname(sys.executable), "pip"), os.path.join(venv, "pip"))
    open(os.path.join(venv, "activate"), "w").close()
    try:
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _play(double, work, stall_timeout, interval=1):
    out = os.path.join(work, "summary.json")
    if os.path.exists(out):
        os.unlink(out)
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    extra = {"hf_cache_endpoint": double.url, "hf_cache_dir": os.path.join(work, "hf"),
             "hf_cache_venv": os.path.join(work, "venv"), "hf_cache_repo_id": REPO.repo_id,
             "hf_cache_progress_interval": interval, "hf_cache_stall_timeout": stall_timeout,
             "hf_cache_verify": "sha256", "progress_out": out}
    done = subprocess.run([_playbook_bin(), os.path.join(ROOT, "tests", "hf_cache", "progress_playbook.yml"),
                           "-e", json.dumps(extra)], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, timeout=300, check=False)
    summary = None
    if os.path.exists(out):
        with open(out) as handle:
            summary = json.load(handle)
    return done.returncode, done.stdout.decode(), summary


def _blobs(work):
    return os.path.join(work, "hf", "hub", "models--" + REPO.repo_id.replace("/", "--"), "blobs")


def _partial_sizes(work):
    return dict((name.split(".")[0], os.path.getsize(os.path.join(_blobs(work), name)))
                for name in os.listdir(_blobs(work)) if name.endswith(".incomplete"))


def _mib(value, unit):
    return float(value) * {"B": 1.0 / MIB, "KiB": 1.0 / 1024, "MiB": 1, "GiB": 1024}[unit]


def _check_snapshot(summary):
    for name, data in REPO.files.items():
        with open(os.path.join(summary["snapshot_path"], name), "rb") as handle:
            assert handle.read() == data, name


@pytest.mark.skipif(_playbook_bin() is None, reason="ansible-playbook is not installed")
def test_a_throttled_download_prints_progress_lines(work):
    # 1.5 MiB/s per connection: 16 s for the two shards, time for several polls on a busy machine.
    with HubDouble([REPO], rate=3 * MIB // 2) as double:
        rc, out, summary = _play(double, work, stall_timeout=30)
    assert rc == 0, out
    lines = LINE.findall(out)
    print("\n".join(line for line in out.splitlines() if line.startswith("localhost: ")))
    assert len(lines) >= 2, out
    done = [_mib(value, unit) for value, unit, _total, _pct, _rate, _left in lines]
    assert all(total == "48.0 MiB" for _v, _u, total, _p, _r, _l in lines), lines
    assert done == sorted(done) and done[-1] > done[0], done
    assert any(left for *_rest, left in lines), lines  # a time left once a rate is known
    assert any(not rate.startswith("0 B/s") for *_x, rate, _left in lines), lines
    assert re.search(r"^localhost: test-org/progress-model: finished after \d+ s", out, re.M), out
    assert summary["bytes_downloaded"] == str(REPO.total_size) or summary["bytes_downloaded"] == REPO.total_size
    _check_snapshot(summary)
    # The progress file says done; a second run is local only: no line, no request.
    rc, out, _summary = _play(double, work, stall_timeout=30)
    assert rc == 0 and not LINE.search(out), out


@pytest.mark.skipif(_playbook_bin() is None, reason="ansible-playbook is not installed")
def test_a_stalled_download_fails_with_host_file_and_fix_and_the_next_run_resumes(work):
    first, second = REPO.shard_names
    with HubDouble([REPO], rate=4 * MIB) as double:
        # The second shard's server sends 11 MiB, then nothing more while the connection stays open.
        double.add_fault(second, stall_after=11 * MIB)
        rc, out, summary = _play(double, work, stall_timeout=5)
        assert rc != 0 and summary is None, out
        # The role's failure (Report a provisioning failure): the output folds it over lines.
        flat = " ".join(out.replace("''", "'").split())
        found = re.search(r"msg: '(localhost: The download of .*?)' PLAY RECAP", flat)
        assert found, out
        text = found.group(1)
        for needed in ("localhost:", socket.gethostname(), second, "no new byte for", "Fix:",
                       "hf_cache_stall_timeout", "resumes"):
            assert needed in text, (needed, text)
        # The partial file of the stalled shard stays: the first 10 MiB chunk huggingface_hub wrote.
        partials = _partial_sizes(work)
        assert partials.get(REPO.etag(second)) == CHUNK, partials
        complete = set(os.listdir(_blobs(work))) & {REPO.etag(first)}

        # The stalled answer ends (and is logged) before the log of the next run starts.
        double.release_stalls()
        for _wait in range(50):
            if any(str(r.get("fault", "")).startswith("stall") for r in double.log()):
                break
            time.sleep(0.1)
        double.clear_faults()
        double.reset_log()
        rc, out, summary = _play(double, work, stall_timeout=30)
        assert rc == 0, out
        gets = [(r["file"], r["range"]) for r in double.log()
                if r["method"] == "GET" and r["file"] and r["server"] == "cdn"]
        # The stalled shard resumes from the partial file; a shard complete before is not fetched again.
        assert (second, "bytes=%d-" % CHUNK) in gets, gets
        assert (second, None) not in gets, gets
        assert not [g for g in gets if REPO.etag(g[0]) in complete], (gets, complete)
        assert summary["resumed"] == [{"file": second, "from_bytes": CHUNK}], summary
        assert _partial_sizes(work) == {}
        _check_snapshot(summary)


def test_provision_resumes_a_partial_file_left_by_a_killed_run(tmp_path):
    repo = GeneratedRepo("test-org/resume-left", shards=2, shard_size=2 * MIB)
    first, second = repo.shard_names
    cache_dir = str(tmp_path / "hf")
    blobs = os.path.join(cache_dir, "hub", "models--test-org--resume-left", "blobs")
    os.makedirs(blobs)
    # What a killed run leaves: the first bytes of a file under huggingface_hub's partial name, and an empty one.
    with open(os.path.join(blobs, repo.etag(second) + ".0badc0de.incomplete"), "wb") as handle:
        handle.write(repo.files[second][:MIB + 7])
    open(os.path.join(blobs, repo.etag(second) + ".12345678.incomplete"), "wb").close()
    with HubDouble([repo]) as double:
        result = hfu.provision({"repo_id": repo.repo_id, "cache_dir": cache_dir, "endpoint": double.url,
                                "min_free_bytes": 0, "verify": "sha256"})
        gets = dict((r["file"], (r["range"], r["bytes"])) for r in double.log()
                    if r["method"] == "GET" and r["server"] == "cdn")
    assert result["resumed"] == [{"file": second, "from_bytes": MIB + 7}]
    assert gets[second] == ("bytes=%d-" % (MIB + 7), len(repo.files[second]) - MIB - 7), gets
    assert gets[first] == (None, len(repo.files[first])), gets
    assert [n for n in os.listdir(blobs) if n.endswith(".incomplete")] == []
    with open(os.path.join(result["snapshot_path"], second), "rb") as handle:
        assert handle.read() == repo.files[second]


def test_reporter_rate_time_left_and_one_stall_call():
    clock = [1000.0]
    done = [0]
    stalls = []
    reporter = _progress.Reporter(None, "org/model", stall_timeout=5, on_stall=stalls.append, clock=lambda: clock[0])
    reporter.transfer(lambda: {"done": done[0], "total": 100 * MIB, "item": "model-1.safetensors"})
    for _second in range(10):
        clock[0] += 1
        done[0] += 2 * MIB
        state = reporter.tick()
    assert abs(state["rate"] - 2 * MIB) < 1
    line = _progress.format_line("gpu-1", state)
    assert line == ("gpu-1: org/model: 20.0 MiB of 100.0 MiB (20.0%), 2.0 MiB/s, 40 s left "
                    "[model-1.safetensors]"), line
    for _second in range(7):
        clock[0] += 1
        reporter.tick()
    assert len(stalls) == 1 and stalls[0]["idle"] >= 5 and stalls[0]["item"] == "model-1.safetensors"
