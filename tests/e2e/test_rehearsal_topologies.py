"""End-to-end CPU rehearsals of every multi-node topology (TOPOLOGY=<name> scripts/rehearse.sh, which runs
scripts/rehearse-cluster.sh with tests/rehearsal/cluster_common/ and tests/rehearsal/<name>/).

For each topology, from a clean state: roll out (GPU preflight against the hardware doubles of every GPU node, RDMA
checks, the engines (and LMCache servers) in their node's own network namespace, the router where the topology has
one, the smoke test through the endpoint), check the containers per node, ask the endpoint with the openai client
in the three reasoning modes from every host that serves it, re-run (changed=0, no container recreated), tear down
and check that no container, unit or file is left on any node. The rehearsal is destroyed before and after (nodes
and network included), also when a step fails. Wall times are printed (`pytest -rP` shows them).

A topology's expectations are a row of TOPOLOGIES. Slow (CPU engines start on the machine) and not part of
`make test`: `make e2e` runs them. Skipped when Docker or the images are missing, unless DSV4_REQUIRE_REHEARSAL=1.
"""

from __future__ import annotations

import json
import re
import socket
import time

import pytest
import rehearsal_lib as lib
from rehearsal_lib import REQUIRE, ROOT, _run, _unavailable, recap

BASE_DIR = "/opt/deepseek-v4"

# topology -> name (rehearsal.conf NAME), the services each node runs (containers named
# <node>.deepseek-v4-<name>-<service>), the hosts whose endpoint is asked, what the router's unit must list, and what
# the GPU preflight must have found on each GPU node (values, and facts that must be non-empty).
TOPOLOGIES = {
    "single_node": {
        "name": "single",
        "nodes": {"h200-node-1": ["engine"]},
        "ask": ["h200-node-1"],
        "router_lists": [],
        "preflight": {"gpu_count": 8, "architecture": "x86_64"},
    },
    "lmcache_tp8": {
        "name": "lmcache",
        "nodes": {"h200-node-1": ["engine", "lmcache"]},
        "ask": ["h200-node-1"],
        "router_lists": [],
        "preflight": {"gpu_count": 8},
        # The LMCache recipe sets no --reasoning-parser (the plan warns): Think High/Max reason inline.
        "reasoning_parser": False,
    },
    "multi_node_dep": {
        "name": "dep",
        "nodes": {"h200-node-1": ["engine"], "h200-node-2": ["engine"]},
        "ask": ["h200-node-1", "h200-node-2"],
        "router_lists": [],
        "preflight": {"gpu_count": 8},
        # cluster_firewall (on by default here): the API port of each node, asked from the other node (a plan host:
        # served) and from this machine (the rehearsal network's gateway, no plan host: refused).
        "firewall": {"h200-node-1": ("h200-node-2", 8000), "h200-node-2": ("h200-node-1", 8000)},
    },
    "gb200_pd_cluster": {
        "name": "gb200",
        "nodes": {"gb200-prefill-1": ["prefill"], "gb200-prefill-2": ["prefill"],
                  "gb200-decode-1": ["decode"], "gb200-decode-2": ["decode"], "router-1": []},
        "ask": ["router-1"],
        "router_lists": ["11:8001", "12:8001", "21:8002", "22:8002"],
        # The tray doubles: 4 GPUs, a Grace CPU, an IMEX channel.
        "preflight": {"gpu_count": 4, "architecture": "aarch64"},
        "preflight_present": ["imex_channels"],
        "firewall": {"gb200-prefill-1": ("router-1", 8001), "gb200-decode-2": ("gb200-prefill-2", 8002)},
    },
}

pytestmark = [pytest.mark.rehearsal, pytest.mark.slow, pytest.mark.docker]


class Rehearsal:
    """One topology's rehearsal: its nodes, containers and reports."""

    def __init__(self, topology):
        self.topology = topology
        self.row = TOPOLOGIES[topology]
        self.name = self.row["name"]
        self.prefix = f"deepseek-v4-{self.name}-rehearsal-"
        self.network = f"deepseek-v4-{self.name}-rehearsal"
        self.out = ROOT / "rehearsal-out" / topology
        self.summary = self.out / "smoke-summary.json"
        self.timings = {}

    def run(self, step, *args):
        return lib.timed_rehearse(self.timings, f"{self.topology} {step}", *args, timeout=3600,
                                  topology=self.topology)

    def node(self, host):
        return self.prefix + host

    def engine_containers(self):
        """{name: id} of this rehearsal's service containers (their names start with their node's)."""
        out = _run(["docker", "ps", "-a", "--filter", f"name=^{self.prefix}",
                    "--filter", f"label=inference.deepseek_v4.topology={self.topology}",
                    "--format", "{{.Names}} {{.ID}}"]).stdout
        return dict(line.split() for line in out.splitlines() if line.strip())

    def containers_in(self, host):
        """Names of the running containers that share HOST's network namespace."""
        node = self.node(host)
        node_id = _run(["docker", "inspect", "-f", "{{.Id}}", node]).stdout.strip()
        names = _run(["docker", "ps", "--format", "{{.Names}}"]).stdout.split()
        mode = {n: _run(["docker", "inspect", "-f", "{{.HostConfig.NetworkMode}}", n]).stdout.strip() for n in names}
        return sorted(n for n, m in mode.items() if m in (f"container:{node}", f"container:{node_id}"))

    def address(self, host):
        """HOST's address on the rehearsal network."""
        return _run(["docker", "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
                     self.node(host)]).stdout.strip()

    def on_node(self, host, *cmd, **kw):
        return _run(["docker", "exec", self.node(host), *cmd], **kw)

    def reaches(self, host, address, port):
        """Whether a TCP connection from inside HOST (its network namespace) to ADDRESS:PORT opens within 5 s."""
        script = "import socket,sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), 5).close()"
        return self.on_node(host, "python3", "-c", script, address, str(port)).returncode == 0

    def leftovers(self, host):
        """Files of the collection left on HOST: its base dir, units of this rehearsal's name prefix."""
        out = self.on_node(host, "sh", "-c", f"ls -d {BASE_DIR} /etc/systemd/system/deepseek-v4-{self.name}-* "
                                             "2>/dev/null").stdout
        return out.split()

    def force_clean(self):
        """Last resort when the teardown itself failed: the service containers, the nodes, the network."""
        for cid in self.engine_containers().values():
            _run(["docker", "rm", "-f", cid])
        for host in self.row["nodes"]:
            _run(["docker", "rm", "-f", self.node(host)])
        _run(["docker", "network", "rm", self.network])

    def ask(self, host, endpoint, question="What is 17*19? Answer with the number only."):
        """The recipe's three reasoning modes against ENDPOINT from inside HOST (in its network namespace), with the
        openai client of the smoke test's virtualenv there."""
        script = r"""
import json, sys
from openai import OpenAI
client = OpenAI(base_url=sys.argv[2] + "/v1", api_key="EMPTY", timeout=300)
modes = {
    "non_think": {"chat_template_kwargs": {"thinking": False}},
    "think_high": {"chat_template_kwargs": {"thinking": True, "reasoning_effort": "high"}},
    "think_max": {"chat_template_kwargs": {"thinking": True, "reasoning_effort": "max"}},
}
out = {}
for mode, extra in modes.items():
    r = client.chat.completions.create(model="deepseek-ai/DeepSeek-V4-Flash", max_tokens=64,
                                       messages=[{"role": "user", "content": sys.argv[1]}], extra_body=extra)
    m = r.choices[0].message
    out[mode] = {"content": m.content,
                 "reasoning": getattr(m, "reasoning", None) or getattr(m, "reasoning_content", None)}
print(json.dumps(out))
"""
        venvs = self.on_node(host, "sh", "-c", f"ls -d {BASE_DIR}/*/bin/python 2>/dev/null").stdout.split()
        for python in venvs:
            if self.on_node(host, python, "-c", "import openai").returncode == 0:
                result = self.on_node(host, python, "-c", script, question, endpoint, timeout=1200)
                assert result.returncode == 0, result.stderr[-3000:]
                return json.loads(result.stdout)
        pytest.fail(f"no virtualenv with the openai client on {host} (found {venvs})")


def reaches_from_here(address, port):
    """Whether a TCP connection from this machine to ADDRESS:PORT opens within 5 s (a dropped SYN times out)."""
    try:
        socket.create_connection((address, port), 5).close()
    except OSError:
        return False
    return True


def destroyed_around(topology):
    """TOPOLOGY's rehearsal, destroyed before and after (also when a step fails; the last resort when the teardown
    itself fails); skipped or failed where it cannot run. A fixture's body: yields the Rehearsal."""
    reason = _unavailable()
    if reason:
        if REQUIRE:
            pytest.fail(f"DSV4_REQUIRE_REHEARSAL=1 but {reason}")
        pytest.skip(reason)
    r = Rehearsal(topology)
    start = time.monotonic()
    try:
        r.run("destroy", "--destroy")
        yield r
    finally:
        try:
            r.run("destroy", "--destroy")
        except BaseException:
            r.force_clean()
            raise
        finally:
            print(f"{r.topology + ' e2e total':<32} {time.monotonic() - start:7.1f} s", flush=True)


@pytest.fixture(params=list(TOPOLOGIES))
def rehearsal(request):
    yield from destroyed_around(request.param)


def test_rollout_rerun_teardown(rehearsal):
    r = rehearsal
    row = r.row
    assert not r.summary.exists(), "rehearse.sh --destroy left reports"

    # 1. Roll out from a clean state.
    out = r.run("first rollout")
    counts = recap(out)
    assert set(row["nodes"]) <= set(counts), counts
    assert all(c["failed"] == 0 and c["unreachable"] == 0 for c in counts.values()), counts
    for host, services in row["nodes"].items():
        if services:
            report = json.loads((r.out / "preflight" / f"{host}.json").read_text())
            assert report["problems"] == [], report
            found = report["found"]
            assert {k: found.get(k) for k in row["preflight"]} == row["preflight"], (host, found)
            assert all(found.get(k) for k in row.get("preflight_present", [])), (host, found)
    summary = json.loads(r.summary.read_text())
    assert summary["passed"] is True, summary
    assert all(m["ok"] and m["answer_ok"] is True for m in summary["modes"].values()), summary

    # Each node runs its services, in its own network namespace, and nothing else.
    engines = r.engine_containers()
    for host, services in row["nodes"].items():
        expected = sorted(f"{r.node(host)}.deepseek-v4-{r.name}-{s}" for s in services)
        assert r.containers_in(host) == expected, (host, r.containers_in(host))
    assert len(engines) == sum(len(s) for s in row["nodes"].values()), engines
    print(f"{'containers':<32} " + ", ".join(sorted(engines)), flush=True)

    # Where there is a router, its unit lists every engine node.
    if row["router_lists"]:
        unit = r.on_node(row["ask"][0], "systemctl", "cat", f"deepseek-v4-{r.name}-router.service").stdout
        for address in row["router_lists"]:
            assert re.search(rf"--(prefill|decode) http://[0-9.]+\.{address}\b", unit), (address, unit)

    # Non-think, Think High and Think Max with the openai client on the endpoint host (the smoke test's virtualenv),
    # against every host that serves the endpoint: the smoke test's endpoint, then the same port at each other
    # node's own address, across the rehearsal network.
    endpoint = summary["endpoint"].replace("localhost", "127.0.0.1")
    port = endpoint.rsplit(":", 1)[1]
    client = row["ask"][0]
    for host in row["ask"]:
        answers = r.ask(client, endpoint if host == client else f"http://{r.address(host)}:{port}")
        for mode, answer in answers.items():
            assert "323" in (answer["content"] or ""), (host, mode, answer)
        for mode in ("think_high", "think_max"):
            if row.get("reasoning_parser", True):
                assert answers[mode]["reasoning"], (host, mode, answers[mode])
            else:
                assert not answers[mode]["reasoning"] and "</think>" in answers[mode]["content"], (host, answers[mode])

    # The cluster firewall: each limited port answers a plan host and refuses this machine, which reaches the nodes
    # from the rehearsal network's gateway address (no plan host) - the same port, the same engine, a moment apart.
    for host, (peer, api_port) in row.get("firewall", {}).items():
        table = r.on_node(host, "nft", "list", "table", "inet", "deepseek_v4")
        assert table.returncode == 0 and "cluster_firewall sha256:" in table.stdout, (host, table.stderr)
        assert r.reaches(peer, r.address(host), api_port), f"{peer} (a plan host) refused by {host}:{api_port}"
        assert not reaches_from_here(r.address(host), api_port), f"{host}:{api_port} served a non-plan address"
    checked = [f"{h}:{p} served to {peer}, refused here" for h, (peer, p) in row.get("firewall", {}).items()]
    print(f"{'firewall':<32} " + ", ".join(checked), flush=True)

    # 2. A second run changes nothing, recreates no container and only verifies.
    out = r.run("no-op re-run")
    assert all(c["changed"] == 0 and c["failed"] == 0 for c in recap(out).values()), recap(out)
    assert r.engine_containers() == engines
    # Every host runs what its record says: the re-run only verified.
    assert re.search(r"Every host \(\d+\) runs what this run would deploy", " ".join(out.split())), "the re-run deployed"

    # 3. Teardown leaves no container, unit or file on any host.
    r.run("teardown", "--teardown")
    assert r.engine_containers() == {}, r.engine_containers()
    for host in row["nodes"]:
        assert r.leftovers(host) == [], (host, r.leftovers(host))
        tables = r.on_node(host, "sh", "-c", "command -v nft >/dev/null && nft list tables || true").stdout
        assert "deepseek_v4" not in tables, (host, tables)
    assert not r.summary.exists()
    print(f"{r.topology} wall times: " + ", ".join(f"{k} {v} s" for k, v in r.timings.items()), flush=True)
