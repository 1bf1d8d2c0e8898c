"""Weights for a fleet: role hf_cache with hf_cache_distribution=fanout on systemd containers.

Four systemd containers (the base image of the molecule scenarios, docker connection) on a Docker network of their
own; the Hub double (tests/doubles/hf_hub_server.py) runs in this process on the network's gateway and counts the
bytes of repository files it serves. The real role, module, huggingface_hub and rsync do the work
(tests/hf_cache/fanout_playbook.yml). Asserted:

* one host, then four fresh hosts: the Hub serves exactly one copy of the model each time;
* every host ends with the same verified shards (sha256 of each snapshot file, read in the containers);
* a second run changes nothing (changed=0 in the recap) and the Hub serves 0 bytes;
* a truncated shard and a deleted shard on one receiving host come back from the seed: the Hub serves 0 bytes;
* over SSH (a real sshd in each host, pipelining off) at -vvv with a Hub token the Hub double requires: neither the
  token nor the run's transfer secret is in the output, the Ansible log, any command line or process environment
  sampled on the hosts while the run goes, any file or journal of the hosts afterwards; the secret files were 0600
  root; the seed's daemon listened on its own address only;
* the controller killed (SIGKILL) once the receivers hold their password files: systemd stops the seed's daemon and
  removes its secrets, and the receivers' timers remove their password files, within hf_cache_fanout_max_seconds;
  the next run completes the copy, and so does a run started at once after such a kill.

Printed: Hub bytes for 1 and 4 hosts, the fan-out throughput (bytes received by the three receivers / wall time
of the parallel pull) and this machine's disk write rate (dd of the same size with fsync), for comparison.
"""

import glob
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "doubles"))

from hf_hub_server import GeneratedRepo, HubDouble  # noqa: E402
from hostscan import FANOUT_PORT, FANOUT_RUN_DIR, HostSampler, files_holding  # noqa: E402

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


def _run_playbook(inventory_vars, hostvars, work, extra_args=(), env_extra=None, kill_when=None):
    """ansible-playbook tests/hf_cache/fanout_playbook.yml on HOSTVARS; (process, seconds, out_dir).

    KILL_WHEN: a callable polled while the run goes; when it returns true the controller is killed (SIGKILL), as a
    controller that dies mid-copy."""
    out_dir = os.path.join(work, "out-" + uuid.uuid4().hex[:6])
    os.makedirs(out_dir)
    inventory = os.path.join(work, "inventory.json")
    with open(inventory, "w") as handle:
        json.dump({"all": {"hosts": hostvars, "vars": dict(inventory_vars, fanout_out_dir=out_dir)}}, handle)
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, ".collections"), ANSIBLE_PIPELINING="true",
               ANSIBLE_HOST_KEY_CHECKING="false", ANSIBLE_FORKS="8", ANSIBLE_NOCOLOR="1")
    env.update(env_extra or {})
    argv = [os.path.join(ROOT, ".venv", "bin", "ansible-playbook"), "-i", inventory, *extra_args,
            os.path.join(ROOT, "tests", "hf_cache", "fanout_playbook.yml")]
    started = time.monotonic()
    with open(os.path.join(work, "playbook.out"), "w+") as output:
        proc = subprocess.Popen(argv, stdout=output, stderr=subprocess.STDOUT, text=True, env=env, cwd=ROOT)
        while proc.poll() is None:
            if kill_when is not None and kill_when():
                proc.kill()
            time.sleep(0.2)
        output.seek(0)
        proc.stdout = output.read()
    return proc, time.monotonic() - started, out_dir


def _playbook(fleet, double, repo, hosts, work, verify="size"):
    """Run the weights phase on HOSTS; (recap {host: counts}, {host: summary}, seconds)."""
    hostvars = {h: {"ansible_connection": "community.docker.docker", "ansible_host": fleet["names"][h],
                    "ansible_python_interpreter": "/usr/bin/python3"} for h in hosts}
    proc, seconds, out_dir = _run_playbook(
        {"hf_cache_repo_id": repo.repo_id, "hf_cache_endpoint": double.url, "fanout_verify": verify}, hostvars, work)
    assert proc.returncode == 0, proc.stdout[-9000:]
    return _recap(proc.stdout), _summaries(out_dir, hosts, proc.stdout), seconds


def _recap(stdout):
    recap = {}
    for host, counts in re.findall(r"^(\S+)\s+:\s+(ok=.*)$", stdout, re.M):
        recap[host] = dict((k, int(v)) for k, v in re.findall(r"(\w+)=(\d+)", counts))
    return recap


def _summaries(out_dir, hosts, stdout):
    summaries = {}
    for path in glob.glob(os.path.join(out_dir, "*.json")):
        with open(path) as handle:
            summaries[os.path.basename(path)[:-5]] = json.load(handle)
    assert sorted(summaries) == sorted(hosts), stdout[-3000:]
    return summaries


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


# ------------------------------------------------------------------------------------------ over SSH, at -vvv
def _address(name):
    return _run(["docker", "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
                 name]).stdout.strip()


@pytest.fixture(scope="module")
def ssh_fleet(fleet, tmp_path_factory):
    """The fleet with a real sshd in each host (Debian's openssh-server) and a key for root, as a user's trays."""
    keydir = tmp_path_factory.mktemp("ssh")
    key = keydir / "id_ed25519"
    _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "dsv4-fanout-test", "-f", str(key)])
    public = (keydir / "id_ed25519.pub").read_text()

    def prepare(name):
        _run(["docker", "exec", name, "sh", "-c", "apt-get update -qq && DEBIAN_FRONTEND=noninteractive "
              "apt-get install -y -qq --no-install-recommends openssh-server >/dev/null"])
        _run(["docker", "exec", "-i", name, "sh", "-c", "install -d -m 0700 /root/.ssh && cat > "
              "/root/.ssh/authorized_keys && chmod 0600 /root/.ssh/authorized_keys && systemctl enable --now ssh"],
             input=public)

    with ThreadPoolExecutor(len(HOSTS)) as pool:
        list(pool.map(prepare, fleet["names"].values()))
    addresses = {h: _address(n) for h, n in fleet["names"].items()}
    yield dict(fleet, key=str(key), addresses=addresses)


def _ssh_hostvars(ssh_fleet):
    return {h: {"ansible_connection": "ssh", "ansible_host": ssh_fleet["addresses"][h], "ansible_user": "root",
                "ansible_ssh_private_key_file": ssh_fleet["key"],
                "ansible_ssh_common_args": "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null",
                "ansible_python_interpreter": "/usr/bin/python3"} for h in HOSTS}


def test_fanout_over_ssh_at_vvv_shows_no_secret(ssh_fleet, tmp_path):
    """The weights phase with the fan-out on, over SSH (pipelining off, so every module is a file copied over), at
    -vvv, with a Hub token the Hub double requires: neither the token nor the run's transfer secret is in the output,
    the Ansible log, any process's command line or environment on any host while the run goes, or any file of any
    host afterwards; the secret files were 0600 root while they existed and are gone; the daemon listened on the
    seed's address only."""
    names = ssh_fleet["names"]
    for name in names.values():
        _run(["docker", "exec", name, "rm", "-rf", CACHE])
    token = "hf_dsv4scan" + secrets.token_hex(12)
    vault = tmp_path / "vault.yml"
    vault.write_text("hf_cache_token: %s\n" % token)
    vault.chmod(0o600)
    log = tmp_path / "ansible.log"
    repo = GeneratedRepo("test-org/fanout-ssh-model", shards=6, shard_size=8 * MIB)
    sampler = HostSampler(names)
    with HubDouble([repo], host=ssh_fleet["gateway"], token=token) as double:
        sampler.start()
        try:
            proc, _seconds, out_dir = _run_playbook(
                {"hf_cache_repo_id": repo.repo_id, "hf_cache_endpoint": double.url}, _ssh_hostvars(ssh_fleet),
                str(tmp_path), extra_args=["-vvv", "-e", "@%s" % vault],
                env_extra={"ANSIBLE_LOG_PATH": str(log), "ANSIBLE_PIPELINING": "false"})
        finally:
            sampler.stop()
        assert proc.returncode == 0, proc.stdout[-9000:]
        # The token was needed (the double refuses requests without it) and one copy came from the Hub.
        assert double.bytes_served() == repo.total_size
    summaries = _summaries(out_dir, HOSTS, proc.stdout)
    assert {h: s["seed"] for h, s in summaries.items()} == {h: "h1" for h in HOSTS}
    expected = _shards(ssh_fleet, "h1", summaries["h1"])
    assert all(_shards(ssh_fleet, h, summaries[h]) == expected for h in HOSTS)
    assert all(int(summaries[h]["fanout_bytes_received"]) > 0 for h in HOSTS[1:]), summaries

    # The run went over SSH, verbosely, with modules copied as files.
    assert "ESTABLISH SSH CONNECTION FOR USER: root" in proc.stdout and "SSH: EXEC" in proc.stdout
    assert "PUT " in proc.stdout, "pipelining was on: no module was copied as a file"

    seen, transfer = sampler.secret_files()
    assert transfer, "the sampler never saw the daemon's secrets file: %s" % sorted(seen)
    values = {"hf_cache_token": token, "the transfer secret": transfer}
    leaks = {where: sorted(n for n, v in values.items() if v in text) for where, text in (
        ("the -vvv output", proc.stdout), ("the Ansible log", log.read_text(errors="replace")),
        ("a command line", sampler.section("ps")), ("a process environment", sampler.section("environ")))}
    assert {w: n for w, n in leaks.items() if n} == {}, "secrets shown"
    assert {(path, mode, owner) for _h, path, mode, owner in seen} <= {
        ("%s/rsyncd.secrets" % FANOUT_RUN_DIR, "600", "root"),
        ("/run/hf-cache-fanout-client-%d/password" % FANOUT_PORT, "600", "root")}, seen
    assert any(path.endswith("/password") for _h, path, _m, _o in seen), "no receiver's password file was seen"
    print("\nSSH -vvv scan: %d host samples, %d output bytes; secret files seen (0600 root): %s"
          % (len(sampler.samples), len(proc.stdout), sorted({(h, p) for h, p, _m, _o in seen})))

    # The daemon bound the seed's address, nothing wider, and is gone with its files; no host keeps a secret.
    assert sampler.listening("h1", FANOUT_PORT) == {ssh_fleet["addresses"]["h1"]}
    for host, name in names.items():
        assert files_holding(name, values.values()) == [], host
        journal = _run(["docker", "exec", name, "journalctl", "--no-pager", "-o", "cat"]).stdout
        assert not [n for n, v in values.items() if v in journal], "%s: the journal shows a secret" % host
        left = _run(["docker", "exec", name, "sh", "-c", "ls -d /run/hf-cache-fanout* 2>/dev/null; "
                     "pgrep -a rsync || true"]).stdout.strip()
        assert left == "", "%s: %s" % (host, left)


def _left_on(names, hosts):
    """{host: what the fan-out left there}: its listening port, the daemon's and the receivers' runtime directories,
    rsync processes, its transient units (the daemon, the password files' removal timers)."""
    script = ("ss -Hltn 'sport = :%d'; ls -d /run/hf-cache-fanout* 2>/dev/null; pgrep -a rsync; "
              "systemctl list-units --all --no-legend --plain 'hf-cache-fanout*' | grep -v ' inactive ' ; true"
              % FANOUT_PORT)
    left = {h: _run(["docker", "exec", names[h], "sh", "-c", script]).stdout.strip() for h in hosts}
    return {h: v for h, v in left.items() if v}


def test_what_a_dead_controller_left_goes_by_itself(fleet, tmp_path):
    """The controller is killed (SIGKILL) once the receivers hold their password files and the seed's daemon listens.
    Within hf_cache_fanout_max_seconds systemd stops the daemon and removes its secrets, and the receivers' timers
    remove their password files; the next run completes the copy. Killed the same way again, a run started at once
    (the daemon and the timers still there) completes the copy too and leaves nothing behind."""
    names = fleet["names"]
    for name in names.values():
        _run(["docker", "exec", name, "rm", "-rf", CACHE])
    repo = GeneratedRepo("test-org/fanout-kill-model", shards=4, shard_size=8 * MIB)
    hostvars = {h: {"ansible_connection": "community.docker.docker", "ansible_host": names[h],
                    "ansible_python_interpreter": "/usr/bin/python3"} for h in HOSTS}
    limit = 20
    output = os.path.join(str(tmp_path), "playbook.out")

    def pulling():
        # The task after the password files: every receiver wrote its file, the daemon listens.
        with open(output, errors="replace") as handle:
            return "Pull the repository folder from the seed" in handle.read()

    def killed_run(settings):
        proc = _run_playbook(settings, hostvars, str(tmp_path), kill_when=pulling)[0]
        assert proc.returncode == -9, "the run ended before the pull: " + proc.stdout[-3000:]
        left = _left_on(names, HOSTS)
        assert "/run/hf-cache-fanout" in left.get("h1", ""), left
        assert all("/run/hf-cache-fanout-client-%d" % FANOUT_PORT in left.get(h, "") for h in HOSTS[1:]), left
        return time.monotonic()

    with HubDouble([repo], host=fleet["gateway"]) as double:
        settings = {"hf_cache_repo_id": repo.repo_id, "hf_cache_endpoint": double.url,
                    "hf_cache_fanout_max_seconds": limit}
        killed_at = killed_run(settings)
        left = _left_on(names, HOSTS)
        while left and time.monotonic() - killed_at < limit + 30:
            time.sleep(1)
            left = _left_on(names, HOSTS)
        stopped_after = time.monotonic() - killed_at
        assert left == {}, "still there %.0f s after the controller died: %s" % (stopped_after, left)
        assert stopped_after <= limit + 5
        print("\nfanout: daemon, secrets and password files gone %.1f s after the controller died (limit %d s)"
              % (stopped_after, limit))

        # The next run finds the hosts without the weights and completes the copy from a new daemon.
        proc, _s, out_dir = _run_playbook(settings, hostvars, str(tmp_path))
        assert proc.returncode == 0, proc.stdout[-6000:]
        summaries = _summaries(out_dir, HOSTS, proc.stdout)
        expected = _shards(fleet, "h1", summaries["h1"])
        assert all(_shards(fleet, h, summaries[h]) == expected for h in HOSTS)

        # Killed again, and run again at once: what the dead run left is stopped first (the receivers' pulls may
        # have completed meanwhile: then this run copies nothing), the copy is complete, and nothing is left (no
        # daemon, timer, password file) to fire into a later run.
        for name in list(names.values())[1:]:
            _run(["docker", "exec", name, "rm", "-rf", CACHE])
        # A limit the next run starts well within, so that the dead run's daemon is still there for it to stop.
        settings["hf_cache_fanout_max_seconds"] = 600
        killed_run(settings)
        proc, _s, out_dir = _run_playbook(settings, hostvars, str(tmp_path))
        assert proc.returncode == 0, proc.stdout[-6000:]
        summaries = _summaries(out_dir, HOSTS, proc.stdout)
        assert all(_shards(fleet, h, summaries[h]) == expected for h in HOSTS)
        # The dead run's daemon was still there (its limit not reached): this run stopped it on the seed.
        stopped = proc.stdout.split("Stop what an earlier run, whose controller died, left", 1)[1].split("TASK [", 1)[0]
        assert "changed: [h1]" in stopped, stopped
        assert _left_on(names, HOSTS) == {}
