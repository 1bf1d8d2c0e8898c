"""Every secret at once, over SSH, on a multi-host rollout: one run shows none of them anywhere (README, Security).

The multi_node_dep rehearsal (TOPOLOGY=multi_node_dep scripts/rehearse.sh: two systemd nodes with a network namespace
each, the engines real CPU vLLM engines in those namespaces) reached the way a user's hosts are: a real sshd in each
node (Debian's openssh-server), a key for root, the `ssh` connection with pipelining off, so every module is a file
copied over and every command an `SSH: EXEC` line. One rollout at -vvv with, from a 0600 vars file as a vault gives
them:

* a Hub token (hf_cache_token) that the Hub double (tests/doubles/hf_hub_server.py, on the rehearsal network's gateway)
  requires: the weights phase runs, with the fan-out on (hf_cache_distribution: fanout), so the second node pulls from
  the first's transient rsync daemon with a transfer secret made for the run;
* the API key (deepseek_v4_api_key), which the engines require (they listen on their cluster address);
* the TLS endpoint proxy (endpoint_proxy_enabled) in front of the endpoint, accepting that key.

While the run goes, a sampler reads every node through `docker exec` (outside the run's connections): the fan-out's
secret files with their mode, every process's command line and environment, the listening sockets; it catches the
run's transfer secret. Then none of the three secrets, as given or regex-escaped (as the proxy's key map stores a
key), is in the -vvv output, the Ansible log, any sampled command
line or process environment, any node's journal, the engines' logs and command lines, any file under rehearsal-out/
or the plan directory, or any file of any node (grep over the whole filesystem) except the files that must hold one,
each 0600 root: the proxy's key map and upstream header, the guard's configuration. The engines hold the key in their
environment only (the documented place). The endpoint proxy answers the recipe's OpenAI client example with the key
over TLS and refuses a request without it; the fan-out's daemon listened on the seed's cluster address only.

Slow (a multi-host rollout over SSH): `make e2e`. Skipped when Docker or the images are missing, unless
DSV4_REQUIRE_REHEARSAL=1.
"""

from __future__ import annotations

import json
import secrets
import ssl
import sys
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import hostscan
import pytest
from rehearsal_lib import REQUIRE, ROOT, _run, _unavailable, recap, rehearse, seed_requests_pass

sys.path.insert(0, str(ROOT / "tests" / "doubles"))

from hf_hub_server import GeneratedRepo, HubDouble  # noqa: E402  pylint: disable=wrong-import-position

pytestmark = [pytest.mark.rehearsal, pytest.mark.slow, pytest.mark.docker]

TOPOLOGY = "multi_node_dep"
PREFIX = "deepseek-v4-dep-rehearsal-"
HOSTS = ("h200-node-1", "h200-node-2")
NET = "172.31.244"
DATA_DIR = "/var/lib/deepseek-v4-dep-rehearsal"
OUT = ROOT / "rehearsal-out" / TOPOLOGY
PROXY = "https://%s.11:8443" % NET
# Files of a node that must hold a secret (each 0600 root): the proxy's accepted keys and the header it sends
# upstream (the engines require the key), the guard's configuration (it asks the engines with the key).
ALLOWED = {"/etc/nginx/deepseek-v4/api-keys.map", "/etc/nginx/deepseek-v4/upstream-auth.conf",
           "/opt/deepseek-v4/guard/guard.json"}


def _node(host):
    return PREFIX + host


@pytest.fixture(scope="module")
def ssh_nodes(tmp_path_factory):
    """The rehearsal's nodes, each with a real sshd and a key for root."""
    reason = _unavailable()
    if reason:
        if REQUIRE:
            pytest.fail(f"DSV4_REQUIRE_REHEARSAL=1 but {reason}")
        pytest.skip(reason)
    rehearse("--destroy", topology=TOPOLOGY)
    keydir = tmp_path_factory.mktemp("ssh")
    key = keydir / "id_ed25519"
    _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "dsv4-secret-scan", "-f", str(key)])
    public = (keydir / "id_ed25519.pub").read_text()

    def prepare(host):
        node = _node(host)
        done = _run(["docker", "exec", node, "sh", "-c", "apt-get update -qq && DEBIAN_FRONTEND=noninteractive "
                     "apt-get install -y -qq --no-install-recommends openssh-server >/dev/null"])
        assert done.returncode == 0, done.stderr
        done = _run(["docker", "exec", "-i", node, "sh", "-c", "install -d -m 0700 /root/.ssh && cat > "
                     "/root/.ssh/authorized_keys && chmod 0600 /root/.ssh/authorized_keys && systemctl enable --now ssh"],
                    input=public)
        assert done.returncode == 0, done.stderr

    try:
        rehearse("--node", topology=TOPOLOGY)
        with ThreadPoolExecutor(len(HOSTS)) as pool:
            list(pool.map(prepare, HOSTS))
        yield str(key)
    finally:
        rehearse("--destroy", topology=TOPOLOGY)


def _ssh_inventory(path, key):
    """The nodes reached over SSH at their rehearsal addresses (a later inventory source: it overrides the docker
    connection of tests/rehearsal/cluster_common/). The engines still join the node's namespace by its name."""
    hosts = {}
    for number, host in zip((11, 12), HOSTS):
        hosts[host] = {
            "ansible_connection": "ssh", "ansible_host": "%s.%d" % (NET, number), "ansible_user": "root",
            "ansible_ssh_private_key_file": key, "ansible_pipelining": False,
            "ansible_ssh_common_args": "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null",
            "vllm_engine_network_mode": "container:" + _node(host),
            "vllm_engine_container_name_prefix": _node(host) + "."}
    path.write_text(json.dumps({"all": {"hosts": hosts}}))
    return path


def _request(url, key=None):
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    req = urllib.request.Request(url, headers={"Authorization": "Bearer " + key} if key else {})
    try:
        with urllib.request.urlopen(req, timeout=30, context=context) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_multi_host_rollout_over_ssh_at_vvv_shows_no_secret(ssh_nodes, tmp_path, monkeypatch):
    values = {"deepseek_v4_api_key": "sk-dsv4scan-" + secrets.token_hex(12),
              "hf_cache_token": "hf_dsv4scan" + secrets.token_hex(12)}
    vault = tmp_path / "vault.yml"
    vault.write_text("".join("%s: %s\n" % kv for kv in values.items()))
    vault.chmod(0o600)
    log = tmp_path / "ansible.log"
    plan_dir = tmp_path / "plan"
    monkeypatch.setenv("ANSIBLE_LOG_PATH", str(log))
    repo = GeneratedRepo("deepseek-ai/DeepSeek-V4-Flash", shards=3, shard_size=2 * 1024 * 1024)
    sampler = hostscan.HostSampler({h: _node(h) for h in HOSTS})
    with HubDouble([repo], host=NET + ".1", token=values["hf_cache_token"]) as double:
        settings = {"deepseek_v4_run_hf_cache": True, "hf_cache_distribution": "fanout",
                    "hf_cache_endpoint": double.url, "endpoint_proxy_enabled": True,
                    "deepseek_v4_plan_dir": str(plan_dir)}
        sampler.start()
        try:
            out = rehearse("--", "-vvv", "-i", str(_ssh_inventory(tmp_path / "ssh.json", ssh_nodes)),
                           "-e", "@%s" % vault, "-e", json.dumps(settings), timeout=3600, topology=TOPOLOGY)
        finally:
            sampler.stop()
        # The token was needed (the double refuses a request without it); one copy came from the Hub.
        assert double.bytes_served() == repo.total_size
    assert all(counts["failed"] == 0 and counts["unreachable"] == 0 for counts in recap(out).values()), recap(out)

    # The run went over SSH, verbosely, with modules copied as files, and the fan-out ran with its secret.
    assert "ESTABLISH SSH CONNECTION FOR USER: root" in out and "SSH: EXEC" in out and "PUT " in out
    seen, transfer = sampler.secret_files()
    assert transfer, "the sampler never saw the seed's secrets file: %s" % sorted(seen)
    assert {(h, p.rsplit("/", 1)[-1]) for h, p, _m, _o in seen} == {
        ("h200-node-1", "rsyncd.secrets"), ("h200-node-2", "password")}, seen
    assert {(m, o) for _h, _p, m, o in seen} == {("600", "root")}, seen
    assert sampler.listening("h200-node-1", hostscan.FANOUT_PORT) == {NET + ".11"}
    values["the fan-out's transfer secret"] = transfer
    # Each secret as given and as a file may store it escaped (the proxy's key map: a regular expression).
    values = hostscan.forms(values)

    # The endpoint: the proxy over TLS with the key answers the recipe's client example; without it, 401.
    assert seed_requests_pass(PROXY + "/v1", api_key=values["deepseek_v4_api_key"], verify=False)
    assert _request(PROXY + "/v1/models") == 401
    assert _request(PROXY + "/v1/models", key="sk-wrong") == 401
    assert _request(PROXY + "/v1/models", key=values["deepseek_v4_api_key"]) == 200

    # Nothing Ansible printed or logged, no command line or environment sampled on the nodes, shows a secret.
    where = {"the -vvv output": out, "the Ansible log": log.read_text(errors="replace"),
             "a command line": sampler.section("ps"), "a process environment": sampler.section("environ")}
    assert {w: hostscan.leaks(t, values) for w, t in where.items() if hostscan.leaks(t, values)} == {}
    # No file here: the plan (0600) and reports, the engines' bind-mount sources (on this machine).
    plan = plan_dir / "plan.json"
    assert oct(plan.stat().st_mode & 0o777) == "0o600"
    assert hostscan.local_files_holding(plan_dir, values) == {} and hostscan.local_files_holding(OUT, values) == {}
    assert hostscan.local_files_holding(DATA_DIR, values) == {}

    # The nodes: only the files that must hold a secret, 0600 root; nothing in a journal; nothing of the fan-out left.
    found = {}
    for host in HOSTS:
        node = _node(host)
        files = found[host] = hostscan.modes(node, hostscan.files_holding(node, values.values()))
        assert set(files) <= ALLOWED, "%s: files holding a secret: %s" % (host, files)
        assert all(m == ["600", "root"] for m in files.values()), files
        journal = _run(["docker", "exec", node, "journalctl", "--no-pager", "-o", "cat"]).stdout
        assert hostscan.leaks(journal, values) == [], "%s: the journal shows a secret" % host
        left = _run(["docker", "exec", node, "sh", "-c", "ls -d /run/hf-cache-fanout* 2>/dev/null; pgrep -a rsync; "
                     "true"]).stdout.strip()
        assert left == "", "%s: %s" % (host, left)
    engines = _run(["docker", "ps", "-q", "--filter", "name=^" + PREFIX,
                    "--filter", "label=inference.deepseek_v4.topology=" + TOPOLOGY]).stdout.split()
    assert len(engines) == 2, engines
    for engine in engines:
        logs = _run(["docker", "logs", engine])
        assert hostscan.leaks(logs.stdout + logs.stderr, values) == [], "an engine logged a secret"
        inspect = json.loads(_run(["docker", "inspect", engine]).stdout)[0]
        assert hostscan.leaks(json.dumps([inspect["Args"], inspect["Config"]["Cmd"], inspect["Config"]["Labels"]]),
                              values) == []
        env = "\n".join(inspect["Config"]["Env"])
        assert hostscan.leaks(env, values) == ["deepseek_v4_api_key"], "the key, as given and only it, in the environment"
    seen_files = sorted({(h, p) for h, p, _m, _o in seen})
    held = {h: sorted(f) for h, f in found.items()}
    print("\nSSH -vvv multi-host scan: %d node samples, %d output bytes; secret files seen: %s; files holding a "
          "secret (0600 root): %s" % (len(sampler.samples), len(out), seen_files, held))
