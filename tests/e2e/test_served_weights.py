"""The pinned weights are the served weights, in the h200_pd rehearsal with the weights phase on.

The Hub double (tests/doubles/hf_hub_server.py, on this machine's loopback, which the rehearsal node shares: host
network) serves the rehearsal image's tiny model as ``deepseek-ai/DeepSeek-V4-Flash``. The rollout runs the real
hf_cache role (huggingface_hub in its virtualenv on the node) against it, and vllm_engine starts every engine with
``--revision <the commit hf_cache verified>`` and ``HF_HUB_OFFLINE=1``; the rehearsal engine resolves the model id
and revision in the mounted cache with huggingface_hub, offline, as vLLM does, and serves that snapshot (its
/v1/models names it as the model's root). Then:

* with the Hub double stopped, an engine restart still serves the same snapshot, and the recipe's three reasoning
  modes answer through the router;
* with a new commit pushed to the double's branch, an engine restart serves the old commit still: the served weights
  change only when the plan's revision does;
* a rollout with ``plan_weights_revision`` set to the new commit provisions it and recreates the engines on it.

`make e2e` runs it (markers slow, rehearsal).
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
import time
import urllib.request

import pytest

from rehearsal_lib import REQUIRE, ROOT, _run, _unavailable, rehearse, seed_requests_pass

sys.path.insert(0, str(ROOT / "tests" / "doubles"))

from hf_hub_server import FilesRepo, HubDouble  # noqa: E402  pylint: disable=wrong-import-position

pytestmark = [pytest.mark.rehearsal, pytest.mark.slow, pytest.mark.docker]

REPO = "deepseek-ai/DeepSeek-V4-Flash"
ENGINES = {"deepseek-v4-prefill": 8000, "deepseek-v4-decode": 8001}
ROUTER = "http://127.0.0.1:30000/v1"


def tiny_model_files():
    """{path: bytes} of the tiny model the rehearsal image carries (/models/tiny)."""
    image = _run(["bash", str(ROOT / "scripts" / "build-rehearsal-image.sh"), "--print"]).stdout.strip()
    out = subprocess.run(["docker", "run", "--rm", "--entrypoint", "tar", image, "-C", "/models/tiny", "-cf", "-",
                          "."], capture_output=True, check=True, timeout=300)
    files = {}
    with tarfile.open(fileobj=io.BytesIO(out.stdout)) as tar:
        for member in tar.getmembers():
            if member.isfile():
                files[member.name.lstrip("./")] = tar.extractfile(member).read()
    assert "config.json" in files, sorted(files)
    return files


def served_root(name):
    """The model root the engine's /v1/models names: the snapshot directory it loaded."""
    with urllib.request.urlopen("http://127.0.0.1:%d/v1/models" % ENGINES[name], timeout=10) as resp:
        return json.load(resp)["data"][0]["root"]


def restart_and_wait(name, timeout=600):
    assert _run(["docker", "restart", name]).returncode == 0
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            return served_root(name)
        except Exception:  # loading
            time.sleep(2)
    pytest.fail("%s did not serve again within %d s" % (name, timeout))


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    why = _unavailable()
    if why:
        if REQUIRE:
            pytest.fail(why)
        pytest.skip(why)
    files = tiny_model_files()
    first = FilesRepo(REPO, files)
    changed = dict(files, **{"README.md": b"a newer upload of the same repository\n"})
    second = FilesRepo(REPO, changed)
    assert first.commit != second.commit
    state = {"double": HubDouble([first]).start(), "first": first, "second": second}
    state["vars"] = tmp_path_factory.mktemp("weights") / "weights.json"
    state["vars"].write_text(json.dumps({"deepseek_v4_run_hf_cache": True, "hf_cache_endpoint": state["double"].url,
                                         "hf_cache_verify": "sha256"}))
    rehearse("--destroy")
    try:
        yield state
    finally:
        state["double"].stop()
        rehearse("--destroy")


def test_the_pinned_weights_are_served_offline_and_stay_until_the_plan_changes(hub):
    first, second, double = hub["first"], hub["second"], hub["double"]
    rehearse("--", "-e", "@%s" % hub["vars"], timeout=2400)
    for name in ENGINES:
        root = served_root(name)
        assert root.endswith("/snapshots/%s" % first.commit), (name, root)
        args = json.loads(_run(["docker", "inspect", "-f", "{{json .Args}}", name]).stdout)
        assert args[args.index("--revision") + 1] == first.commit, args
        env = json.loads(_run(["docker", "inspect", "-f", "{{json .Config.Env}}", name]).stdout)
        assert "HF_HUB_OFFLINE=1" in env
    assert seed_requests_pass(ROUTER)

    # The Hub is gone: a restart serves the same snapshot, from the cache, offline.
    double.stop()
    assert restart_and_wait("deepseek-v4-decode").endswith(first.commit)
    deadline = time.monotonic() + 300
    while not seed_requests_pass(ROUTER) and time.monotonic() < deadline:
        time.sleep(3)  # the guard restarts the router after the decode restart
    assert seed_requests_pass(ROUTER), "the endpoint does not serve with the Hub stopped"

    # A new commit on the Hub's branch: a restart still serves the plan's (the commit hf_cache verified).
    moved = HubDouble([first], port=int(double.url.rsplit(":", 1)[1]))
    moved.push(second)
    moved.start()
    hub["double"] = moved
    try:
        assert restart_and_wait("deepseek-v4-prefill").endswith(first.commit)
        # The plan's revision moves: the weights phase provisions the new commit and the engines serve it.
        vars_file = hub["vars"]
        settings = json.loads(vars_file.read_text())
        settings.update(hf_cache_endpoint=moved.url, plan_weights_revision=second.commit)
        vars_file.write_text(json.dumps(settings))
        rehearse("--", "-e", "@%s" % vars_file, timeout=2400)
        for name in ENGINES:
            assert served_root(name).endswith("/snapshots/%s" % second.commit), name
        assert seed_requests_pass(ROUTER)
    finally:
        moved.stop()
    print("served weights: commit %s, then offline restarts on it, then %s once the plan named it"
          % (first.commit[:12], second.commit[:12]), flush=True)
