"""Weights for a fleet: role hf_cache with hf_cache_distribution=fanout on systemd containers.

Four systemd containers (the base image of the molecule scenarios, docker connection) on a Docker network of their
own; the Hub double (tests/doubles/hf_hub_server.py) runs in this process on the network's gateway and counts the
bytes of repository files it serves. The real role, module, huggingface_hub and rsync do the work
(tests/hf_cache/fanout_playbook.yml). Asserted:

* one host, then four fresh hosts: the Hub serves exactly one copy of the model each time;
* every host ends with the same verified shards (sha256 of each snapshot file, read in the containers);
* a second run changes nothing (changed=0 in the recap) and the Hub serves 0 bytes;
* a truncated shard and a deleted shard on one receiving host come back from the seed: the Hub serves 0 bytes.

Printed: Hub bytes for 1 and 4 hosts, the fan-out throughput (bytes received by the three receivers / wall time
of the parallel pull) and this machine's disk write rate (dd of the same size with fsync), for comparison.
"""

import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "doubles"))

from hf_hub_server import GeneratedRepo, HubDouble  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.docker]

MIB = 1024 * 1024
PREFIX = "dsv4-fanout-"
HOSTS = ["h1", "h2", "h3", "h4"]
CACHE = "/root/.cache/huggingface"
PIP_CACHE = os.path.expanduser("~/.cache/inference.deepseek_v4/molecule-pip")


def _run(argv, check=True, **kw):
    return subprocess.run(argv, check=check, capture_output=True, text=True, **kw)


def _docker_ok():
    return shutil.which("docker") and subprocess.run(["docker", "info"], capture_output=True, check=False).returncode == 0


@pytest.fixture(scope="module")
def fleet():
    if not _docker_ok():
        pytest.skip("needs a running Docker engine")
    image = _run(["bash", os.path.join(ROOT, "scripts", "build-base-image.sh"), "--print"]).stdout.strip()
    _run(["bash", os.path.join(ROOT, "scripts", "build-base-image.sh")])
    run_id = uuid.uuid4().hex[:6]
    network = PREFIX + "net-" + run_id
    names = {h: PREFIX + run_id + "-" + h for h in HOSTS}
    os.makedirs(PIP_CACHE, exist_ok=True)
    _run(["docker", "network", "create", network])
    try:
        gateway = json.loads(_run(["docker", "network", "inspect", network]).stdout)[0]["IPAM"]["Config"][0]["Gateway"]
        for host, name in names.items():
            _run(["docker", "run", "-d", "--name", name, "--hostname", host, "--network", network,
                  "--tmpfs", "/run", "--tmpfs", "/run/lock", "-v", "/sys/fs/cgroup:/sys/fs/cgroup:ro",
                  "-v", PIP_CACHE + ":/root/.cache/pip", image, "/lib/systemd/systemd"])
        for name in names.values():
            for _attempt in range(90):
                state = _run(["docker", "exec", name, "systemctl", "is-system-running"], check=False).stdout.strip()
                if state in ("running", "degraded"):
                    break
                time.sleep(1)
            # pip in the hosts trusts what this machine trusts (as the molecule scenarios do).
            _run(["docker", "cp", "/etc/ssl/certs/ca-certificates.crt", name + ":/etc/ssl/certs/ca-certificates.crt"])
            _run(["docker", "exec", name, "sh", "-c",
                  "printf '[global]\\ncert = /etc/ssl/certs/ca-certificates.crt\\n' > /etc/pip.conf"])
        yield {"names": names, "gateway": gateway}
    finally:
        for name in names.values():
            _run(["docker", "rm", "-f", name], check=False)
        _run(["docker", "network", "rm", network], check=False)


def _playbook(fleet, double, repo, hosts, work, verify="size"):
    """Run the weights phase on HOSTS; (recap {host: counts}, {host: summary}, seconds)."""
    out_dir = os.path.join(work, "out-" + uuid.uuid4().hex[:6])
    os.makedirs(out_dir)
    inventory = os.path.join(work, "inventory.json")
    hostvars = {h: {"ansible_connection": "community.docker.docker", "ansible_host": fleet["names"][h],
                    "ansible_python_interpreter": "/usr/bin/python3"} for h in hosts}
    with open(inventory, "w") as handle:
        json.dump({"all": {"hosts": hostvars, "vars": {
            "hf_cache_repo_id": repo.repo_id, "hf_cache_endpoint": double.url, "fanout_out_dir": out_dir,
            "fanout_verify": verify}}}, handle)
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, ".collections"), ANSIBLE_PIPELINING="true",
               ANSIBLE_HOST_KEY_CHECKING="false", ANSIBLE_FORKS="8", ANSIBLE_NOCOLOR="1")
    started = time.monotonic()
    proc = subprocess.run([os.path.join(ROOT, ".venv", "bin", "ansible-playbook"), "-i", inventory,
                           os.path.join(ROOT, "tests", "hf_cache", "fanout_playbook.yml")],
                          capture_output=True, text=True, env=env, cwd=ROOT, check=False)
    seconds = time.monotonic() - started
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    recap = {}
    for host, counts in re.findall(r"^(\S+)\s+:\s+(ok=.*)$", proc.stdout, re.M):
        recap[host] = dict((k, int(v)) for k, v in re.findall(r"(\w+)=(\d+)", counts))
    summaries = {}
    for path in glob.glob(os.path.join(out_dir, "*.json")):
        with open(path) as handle:
            summaries[os.path.basename(path)[:-5]] = json.load(handle)
    assert sorted(summaries) == sorted(hosts), proc.stdout[-3000:]
    return recap, summaries, seconds


def _shards(fleet, host, summary):
    """{file: sha256} of the snapshot on HOST, read in its container (following the links to the blobs)."""
    out = _run(["docker", "exec", fleet["names"][host], "sh", "-c",
                "cd %s && sha256sum -- * .gitattributes 2>/dev/null" % summary["snapshot_path"]]).stdout
    return dict((name, digest) for digest, name in (line.split(None, 1) for line in out.splitlines()))


def _throughput(summaries):
    """Bytes the receivers got from the seed, and the wall time from the first pull start to the last pull end."""
    received = sum(int(s["fanout_bytes_received"]) for s in summaries.values())
    stamps = [(s["fanout_start"], s["fanout_end"]) for s in summaries.values() if s["fanout_start"]]
    fmt = "%Y-%m-%d %H:%M:%S.%f"
    from datetime import datetime
    start = min(datetime.strptime(a, fmt) for a, _b in stamps)
    end = max(datetime.strptime(b, fmt) for _a, b in stamps)
    return received, (end - start).total_seconds()


def _disk_rate(nbytes, where):
    """MB/s of writing NBYTES to a file in WHERE with dd, fsync included."""
    target = os.path.join(where, "dd-" + uuid.uuid4().hex[:6])
    try:
        started = time.monotonic()
        _run(["dd", "if=/dev/zero", "of=" + target, "bs=1M", "count=%d" % max(1, nbytes // MIB), "conv=fsync"])
        return (nbytes // MIB) * MIB / (time.monotonic() - started) / 1e6
    finally:
        os.unlink(target)


def test_fanout_fetches_one_copy_from_the_hub_whatever_the_number_of_hosts(fleet):
    repo = GeneratedRepo("test-org/fanout-model", shards=6, shard_size=8 * MIB)
    expected = {p: __import__("hashlib").sha256(d).hexdigest() for p, d in repo.files.items()}
    work = tempfile.mkdtemp(prefix="dsv4-fanout-")
    figures = {}
    try:
        with HubDouble([repo], host=fleet["gateway"]) as double:
            # One host: it is the seed, it downloads the model once.
            recap, summaries = _playbook(fleet, double, repo, ["h1"], work)[:2]
            figures["hub_bytes_1_host"] = double.bytes_served()
            assert figures["hub_bytes_1_host"] == repo.total_size
            assert _shards(fleet, "h1", summaries["h1"]) == expected

            # Four hosts, all empty (h1's cache removed, its virtualenv kept): still one copy from the Hub.
            _run(["docker", "exec", fleet["names"]["h1"], "rm", "-rf", CACHE])
            double.reset_log()
            recap, summaries, seconds = _playbook(fleet, double, repo, HOSTS, work)
            figures["hub_bytes_4_hosts"] = double.bytes_served()
            figures["rollout_4_hosts_s"] = round(seconds, 1)
            assert figures["hub_bytes_4_hosts"] == repo.total_size
            assert {h: s["seed"] for h, s in summaries.items()} == {h: "h1" for h in HOSTS}
            for host in HOSTS:
                assert _shards(fleet, host, summaries[host]) == expected, host
            received, wall = _throughput(summaries)
            assert received >= 3 * (repo.total_size - 4096)  # the three receivers got a whole copy each
            figures["fanout_bytes"] = received
            figures["fanout_MBps"] = round(received / wall / 1e6, 1)

            # Second run: nothing changes, nothing comes from the Hub, no port opened.
            double.reset_log()
            recap, summaries = _playbook(fleet, double, repo, HOSTS, work)[:2]
            assert {h: recap[h]["changed"] for h in HOSTS} == {h: 0 for h in HOSTS}, recap
            assert double.bytes_served() == 0
            assert not any(int(s["fanout_bytes_received"]) for s in summaries.values())

            # A truncated and a missing shard on h3 come back from the seed, not from the Hub.
            snap = summaries["h3"]["snapshot_path"]
            first, second = repo.shard_names[:2]
            _run(["docker", "exec", fleet["names"]["h3"], "sh", "-c",
                  "truncate -s 1000 \"$(readlink -f %s/%s)\" && rm -f \"$(readlink -f %s/%s)\"" % (
                      snap, first, snap, second)])
            double.reset_log()
            recap, summaries = _playbook(fleet, double, repo, HOSTS, work)[:2]
            assert double.bytes_served() == 0
            assert recap["h3"]["changed"] > 0 and recap["h2"]["changed"] == 0, recap
            assert _shards(fleet, "h3", summaries["h3"]) == expected
            assert int(summaries["h3"]["fanout_bytes_received"]) >= 2 * 8 * MIB - 4096
        figures["disk_MBps"] = round(_disk_rate(3 * repo.total_size, work), 1)
        figures["model_bytes"] = repo.total_size
    finally:
        shutil.rmtree(work, ignore_errors=True)
        print("\nfanout figures: " + json.dumps(figures))
