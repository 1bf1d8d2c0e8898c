# -*- coding: utf-8 -*-
"""The serving guard's decisions (roles/serving_guard/files/deepseek_v4_guard.py) on a fake clock, with health,
identities, probes and restarts recorded instead of sent: a restart is a new identity, never a failed poll (a
paused prefill restarts nothing; a new StartedAt restarts decode then the router, once, after it settled); down
needs ``down_after`` failures in a row; restarts back off and stop at the hourly cap (a log line and a metric);
the loop goes on observing while a restart is in progress; a router whose requests fail while its engines are
healthy restarts; holds stop every action. The last tests run the real identity readers against a loopback HTTP
server and a Docker API double on a unix socket (tests only)."""

from __future__ import annotations

import http.server
import importlib.util
import json
import os
import socketserver
import threading

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PATH = os.path.join(ROOT, "roles", "serving_guard", "files", "deepseek_v4_guard.py")

PREFILL = "node/deepseek-v4-prefill"
DECODE = "node/deepseek-v4-decode"
URLS = {PREFILL: "http://localhost:8000/health", DECODE: "http://localhost:8001/health"}
SPECS = {PREFILL: {"health": URLS[PREFILL], "metrics": "http://localhost:8000/metrics",
                   "container": "deepseek-v4-prefill"},
         DECODE: {"health": URLS[DECODE], "metrics": "http://localhost:8001/metrics", "container": "deepseek-v4-decode"}}
ROUTER_HEALTH = "http://127.0.0.1:30000/readiness"
ROUTER, DECODE_SVC = "deepseek-v4-router", "deepseek-v4-decode"


def config(tmp_path):
    return {
        "services": [
            {"name": ROUTER, "start_order": 40, "manager": "unit", "unit": "deepseek-v4-router.service",
             "health": ROUTER_HEALTH, "ready_timeout": 60, "restart_with": dict(SPECS),
             "probe": {"url": "http://127.0.0.1:30000/v1/chat/completions", "model": "m"}},
            {"name": DECODE_SVC, "start_order": 30, "manager": "container", "unit": "x",
             "health": URLS[DECODE], "ready_timeout": 60, "restart_with": {PREFILL: SPECS[PREFILL]}, "probe": None},
        ],
        "interval": 1, "settle": 5, "timeout": 1, "probe_interval": 10, "probe_failures": 3, "probe_timeout": 5,
        "docker_socket": "/var/run/docker.sock", "stop_timeout": 30, "down_after": 3, "backoff_initial": 30,
        "backoff_max": 120, "max_restarts_per_hour": 3, "metrics_file": str(tmp_path / "guard.prom"),
    }


class FakeTask(object):
    """A worker's call, run at once (``manual``: when the test finishes it)."""

    def __init__(self, fn, manual=False):
        self.fn, self.result, self.error, self._done = fn, None, None, False
        if not manual:
            self.finish()

    def finish(self):
        try:
            self.result = self.fn()
        except Exception as exc:  # the guard reports it
            self.error = exc
        self._done = True

    def done(self):
        return self._done


class World(object):
    """Health of every URL, identity of every upstream, the probe's answer, a clock, and the restarts asked for.
    A restarted dependent is unhealthy for ``load`` seconds, as an engine that loads."""

    def __init__(self, mod):
        self.now = 0.0
        self.up = {URLS[PREFILL]: True, URLS[DECODE]: True, ROUTER_HEALTH: True}
        self.ident = {"deepseek-v4-prefill": "p1/2026-01-01T00:00:00Z/0", "deepseek-v4-decode": "d1/t0/0"}
        self.serving = True
        self.restarts = []
        self.manual = False
        self.tasks = []
        self.logs = []
        self.mod = mod
        mod.healthy = lambda url, timeout: self.up[url]
        mod.probe = lambda spec, timeout: self.serving
        mod.identity = lambda spec, cfg: {"container": self.ident[spec["container"]]}
        mod.RESTART = {"container": self.restart, "unit": self.restart}
        mod.log = lambda event, **fields: self.logs.append(dict(fields, event=event, at=self.now))

    def restart(self, svc, cfg):
        self.restarts.append(svc["name"])
        if svc["name"] == DECODE_SVC:
            self.ident["deepseek-v4-decode"] = "d%d/t%d/0" % (len(self.restarts) + 1, self.now)

    def spawn(self, fn):
        task = FakeTask(fn, manual=self.manual)
        self.tasks.append(task)
        return task

    def clock(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds

    def events(self, name):
        return [e for e in self.logs if e["event"] == name]


@pytest.fixture
def guard(tmp_path):
    spec = importlib.util.spec_from_file_location("deepseek_v4_guard", PATH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    world = World(mod)
    g = mod.Guard(config(tmp_path), clock=world.clock, sleep=world.sleep, wall=world.clock, spawn=world.spawn)
    return g, world


def rounds(g, world, n, step=1.0):
    for _round in range(n):
        g.round()
        world.now += step


def metric(g, name, **labels):
    """The value of one series in the guard's textfile."""
    with open(g.cfg["metrics_file"]) as f:
        text = f.read()
    want = name + ("{%s}" % ",".join('%s="%s"' % kv for kv in sorted(labels.items())) if labels else "")
    values = [line.rsplit(" ", 1)[1] for line in text.splitlines() if line.rsplit(" ", 1)[0] == want]
    assert len(values) == 1, (want, text)
    return float(values[0])


def restart_prefill(world, down_for=20):
    """kill -9: Docker's restart policy starts a new container (new StartedAt), which loads before it answers."""
    world.up[URLS[PREFILL]] = False
    world.ident["deepseek-v4-prefill"] = "p1/2026-01-01T00:10:00Z/%d" % (len(world.restarts) + 1)
    return down_for


def test_a_healthy_endpoint_is_left_alone(guard):
    g, world = guard
    rounds(g, world, 60)
    assert world.restarts == []
    assert metric(g, "deepseek_v4_guard_upstream_up", upstream=PREFILL) == 1
    assert metric(g, "deepseek_v4_guard_upstream_identity_known", upstream=PREFILL) == 1


def test_a_paused_prefill_restarts_nothing(guard):
    """docker pause for 8 s: health polls time out, then answer again; the container's identity never changed."""
    g, world = guard
    rounds(g, world, 5)
    world.up[URLS[PREFILL]] = False
    rounds(g, world, 8)
    world.up[URLS[PREFILL]] = True
    rounds(g, world, 60)
    assert world.restarts == []
    assert [e["service"] for e in world.events("down")] == [PREFILL], "8 failed polls are down (down_after=3)"
    assert world.events("restarted") == []
    assert metric(g, "deepseek_v4_guard_upstream_identity_changes_total", upstream=PREFILL) == 0


def test_a_new_started_at_restarts_decode_then_the_router_once_it_settled(guard):
    g, world = guard
    rounds(g, world, 3)
    rounds(g, world, restart_prefill(world))
    assert world.restarts == [], "nothing restarts while the prefill is down"
    assert [e["service"] for e in world.events("restarted")] == [PREFILL], "seen at once, by its identity"
    world.up[URLS[PREFILL]] = True
    rounds(g, world, 4)
    assert world.restarts == [], "nothing restarts before the prefill stayed healthy for `settle` seconds"
    rounds(g, world, 3)
    assert world.restarts == [DECODE_SVC]
    rounds(g, world, 10)
    assert world.restarts == [DECODE_SVC, ROUTER], "the router restarts after decode, once decode settled"
    rounds(g, world, 120)
    assert world.restarts == [DECODE_SVC, ROUTER], "the guard's own restarts cascaded again"
    assert metric(g, "deepseek_v4_guard_restarts_total", service=DECODE_SVC, reason="upstream") == 1
    assert metric(g, "deepseek_v4_guard_upstream_identity_changes_total", upstream=PREFILL) == 1


def test_a_restart_between_two_polls_is_seen_by_its_identity(guard):
    """No failed poll at all (the container came back between two rounds): still a restart."""
    g, world = guard
    rounds(g, world, 3)
    world.ident["deepseek-v4-prefill"] = "p2/2026-01-01T00:10:00Z/0"
    rounds(g, world, 7)
    assert world.restarts == [DECODE_SVC], "after `settle` seconds from the new start"
    rounds(g, world, 20)
    assert world.restarts == [DECODE_SVC, ROUTER]


def test_down_needs_down_after_failures_in_a_row(guard):
    g, world = guard
    rounds(g, world, 3)
    for _blip in range(5):                   # down_after - 1 failures, then an answer, five times
        world.up[URLS[PREFILL]] = False
        rounds(g, world, 2)
        world.up[URLS[PREFILL]] = True
        rounds(g, world, 1)
    assert world.events("down") == []
    assert metric(g, "deepseek_v4_guard_upstream_up", upstream=PREFILL) == 1
    world.up[URLS[PREFILL]] = False
    rounds(g, world, 2)
    assert metric(g, "deepseek_v4_guard_upstream_consecutive_failures", upstream=PREFILL) == 2
    rounds(g, world, 1)
    assert [e["service"] for e in world.events("down")] == [PREFILL]
    assert metric(g, "deepseek_v4_guard_upstream_up", upstream=PREFILL) == 0
    assert world.restarts == []


def test_a_decode_restart_restarts_only_the_router(guard):
    g, world = guard
    rounds(g, world, 3)
    world.up[URLS[DECODE]] = False
    world.ident["deepseek-v4-decode"] = "d9/t9/1"
    rounds(g, world, 5)
    world.up[URLS[DECODE]] = True
    rounds(g, world, 10)
    assert world.restarts == [ROUTER]


def decode_restarts_at(g, world, n, until):
    """Restart the prefill n times, as soon as the guard restarted decode after the previous one: when did decode
    restart?"""
    times = []
    while len(times) < n and world.now < until:
        restart_prefill(world)
        rounds(g, world, 3)
        world.up[URLS[PREFILL]] = True
        before = world.restarts.count(DECODE_SVC)
        while world.restarts.count(DECODE_SVC) == before and world.now < until:
            rounds(g, world, 1)
        if world.restarts.count(DECODE_SVC) > before:
            times.append(world.now)
    return times


def test_restarts_of_a_dependent_back_off(guard):
    g, world = guard
    rounds(g, world, 3)
    times = decode_restarts_at(g, world, 3, until=1000)
    assert len(times) == 3
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert gaps[0] >= 30, "the second restart waits backoff_initial after the first"
    assert gaps[1] >= 60 and gaps[1] > gaps[0], "the third waits twice as long"


def test_the_hourly_cap_stops_restarts_with_a_log_line_and_a_metric(guard):
    g, world = guard
    rounds(g, world, 3)
    times = decode_restarts_at(g, world, 4, until=1200)
    assert len(times) == 3, "max_restarts_per_hour=3: the fourth restart is refused"
    capped = world.events("capped")
    assert [e["service"] for e in capped] == [DECODE_SVC], "said once, not in a loop"
    assert capped[0]["restarts_last_hour"] == 3
    assert metric(g, "deepseek_v4_guard_capped", service=DECODE_SVC) == 1
    assert metric(g, "deepseek_v4_guard_restarts_last_hour", service=DECODE_SVC) == 3
    rounds(g, world, 300)
    assert world.restarts.count(DECODE_SVC) == 3 and len(world.events("capped")) == 1
    world.now = times[0] + 3601                     # the hour frees a slot: the pending restart goes ahead
    rounds(g, world, 3)
    assert world.restarts.count(DECODE_SVC) == 4
    assert [e["service"] for e in world.events("uncapped")] == [DECODE_SVC]
    assert metric(g, "deepseek_v4_guard_capped", service=DECODE_SVC) == 0


def test_observation_goes_on_while_a_dependent_restarts(guard):
    """The restart call and the restarted decode's load take minutes; meanwhile the loop keeps polling: a second
    prefill restart is seen, and the metrics are written every round."""
    g, world = guard
    world.manual = True
    rounds(g, world, 3)
    restart_prefill(world)
    rounds(g, world, 3)
    world.up[URLS[PREFILL]] = True
    rounds(g, world, 6)
    restart_task = world.tasks[-1]
    assert g.inflight and not restart_task.done() and world.restarts == []
    assert metric(g, "deepseek_v4_guard_restarting", service=DECODE_SVC) == 1
    world.up[URLS[PREFILL]] = False                      # the prefill fails while decode's restart is under way
    world.ident["deepseek-v4-prefill"] = "p3/2026-01-01T00:20:00Z/0"
    rounds(g, world, 4)
    assert [e["service"] for e in world.events("down")] == [PREFILL, PREFILL]
    assert len(world.events("restarted")) == 2, "the second restart was seen during the first restart"
    assert metric(g, "deepseek_v4_guard_upstream_consecutive_failures", upstream=PREFILL) == 4
    restart_task.finish()                                 # Docker restarted decode; it loads for 10 s
    world.up[URLS[DECODE]] = False
    rounds(g, world, 10)
    assert g.inflight, "decode's readiness is polled, not waited for"
    world.up[URLS[DECODE]] = True
    rounds(g, world, 1)
    assert g.inflight is None and [e["service"] for e in world.events("ready")] == [DECODE_SVC]
    assert DECODE_SVC in g.pending, "the prefill restarted again meanwhile: decode restarts once more after it"


def test_a_failed_restart_is_retried_after_its_backoff(guard):
    g, world = guard
    rounds(g, world, 3)
    calls = []

    def failing(svc, cfg):
        calls.append(world.now)
        if len(calls) == 1:
            raise RuntimeError("Docker answered 500 restarting %s" % svc["name"])
        world.restart(svc, cfg)

    world.mod.RESTART = {"container": failing, "unit": world.restart}
    rounds(g, world, restart_prefill(world, 3))
    world.up[URLS[PREFILL]] = True
    rounds(g, world, 100)
    assert [e["service"] for e in world.events("restart_failed")] == [DECODE_SVC]
    assert len(calls) == 2 and calls[1] - calls[0] >= 30
    assert metric(g, "deepseek_v4_guard_restart_failures_total", service=DECODE_SVC) == 1


def test_a_router_that_stops_serving_restarts_after_the_failures_in_a_row(guard):
    g, world = guard
    world.serving = False
    rounds(g, world, 25)                     # probes at 0, 10, 20 s: three failures
    assert world.restarts == [ROUTER]
    world.serving = True
    rounds(g, world, 60)
    assert world.restarts == [ROUTER]
    assert metric(g, "deepseek_v4_guard_restarts_total", service=ROUTER, reason="probe") == 1


def test_no_probe_restart_while_an_engine_is_down(guard):
    g, world = guard
    world.serving = False
    world.up[URLS[DECODE]] = False
    rounds(g, world, 60)
    assert world.restarts == [], "restarting the router cannot help while decode is down"


@pytest.fixture
def held_guard(guard, tmp_path):
    g, world = guard
    g.cfg["hold_file"] = str(tmp_path / "hold")
    return g, world


def hold(g, until):
    with open(g.cfg["hold_file"], "w") as f:
        f.write('{"until": %s, "by": "upgrade"}' % until)


def test_a_hold_stops_every_action_and_its_release_starts_no_cascade(held_guard):
    g, world = held_guard
    rounds(g, world, 3)
    hold(g, 1000)
    world.up[URLS[PREFILL]] = False          # the upgrade recreates prefill, decode, restarts the router itself
    world.up[URLS[DECODE]] = False
    world.ident["deepseek-v4-prefill"] = "p7/new/0"
    world.ident["deepseek-v4-decode"] = "d7/new/0"
    world.serving = False
    rounds(g, world, 30)
    world.up[URLS[PREFILL]] = world.up[URLS[DECODE]] = world.serving = True
    rounds(g, world, 30)
    assert world.restarts == [], "the guard acted under a hold"
    assert metric(g, "deepseek_v4_guard_held") == 1
    os.remove(g.cfg["hold_file"])
    rounds(g, world, 60)
    assert world.restarts == [], "the guard's release cascaded what the holder already restarted"
    assert metric(g, "deepseek_v4_guard_held") == 0


def test_an_expired_or_unreadable_hold_is_no_hold(held_guard):
    g, world = held_guard
    hold(g, 10)
    world.serving = False
    rounds(g, world, 45)                     # held until 10 s, then probes at 10, 20, 30 s fail
    assert world.restarts == [ROUTER]
    with open(g.cfg["hold_file"], "w") as f:
        f.write("{not json")
    world.up[URLS[DECODE]] = False
    world.ident["deepseek-v4-decode"] = "d8/new/0"
    rounds(g, world, 3)
    world.up[URLS[DECODE]] = True
    world.serving = True
    rounds(g, world, 60)
    assert world.restarts == [ROUTER, ROUTER]


# ------------------------------------------------------------------------------------------------ the real readers
@pytest.fixture
def real_mod():
    spec = importlib.util.spec_from_file_location("deepseek_v4_guard_real", PATH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def serve(handler_cls, server_cls=http.server.HTTPServer, address=("127.0.0.1", 0)):
    server = server_cls(address, handler_cls)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


class MetricsHandler(http.server.BaseHTTPRequestHandler):
    """/metrics as a vLLM server answers it (prometheus_client's process collector included)."""
    start = "1.7651234567e+09"

    def do_GET(self):  # noqa: N802 (http.server's name)
        body = ("# HELP process_start_time_seconds Start time of the process since unix epoch in seconds.\n"
                "# TYPE process_start_time_seconds gauge\n"
                "process_start_time_seconds %s\n"
                'vllm:num_requests_running{engine="0",model_name="m"} 0.0\n' % self.start).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_the_identity_of_another_hosts_engine_is_its_process_start(real_mod):
    server = serve(MetricsHandler)
    url = "http://127.0.0.1:%d/metrics" % server.server_address[1]
    try:
        assert real_mod.metrics_identity(url, 2) == "1.7651234567e+09"
        assert real_mod.identity({"metrics": url}, {"timeout": 2}) == {"process_start": "1.7651234567e+09"}
        MetricsHandler.start = "1.7651239999e+09"
        assert real_mod.identity({"metrics": url}, {"timeout": 2}) == {"process_start": "1.7651239999e+09"}
    finally:
        server.shutdown()
        server.server_close()
    assert real_mod.identity({"metrics": url}, {"timeout": 1}) == {}, "no answer: unknown, never a change"


class BootstrapHandler(http.server.BaseHTTPRequestHandler):
    """GET /query as vLLM's MooncakeBootstrapServer answers it: {dp_rank: {engine_id, worker_addr}}."""
    workers = {}

    def do_GET(self):  # noqa: N802
        body = json.dumps(self.workers).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_a_mooncake_prefill_s_identity_is_its_engine_ids(real_mod):
    """In vLLM's multi-API-server mode (data parallel) /metrics has no process metrics: the engine ids remain."""
    server = serve(BootstrapHandler)
    spec = {"metrics": "http://127.0.0.1:9/metrics", "bootstrap": "http://127.0.0.1:%d/query" % server.server_address[1]}
    try:
        assert real_mod.identity(spec, {"timeout": 2}) == {}, "no worker registered yet"
        BootstrapHandler.workers = {"1": {"engine_id": "e-2", "worker_addr": {}},
                                    "0": {"engine_id": "e-1", "worker_addr": {"0": {"0": "tcp://10.0.0.1:7000"}}}}
        assert real_mod.identity(spec, {"timeout": 2}) == {"engine_ids": "e-1,e-2"}
    finally:
        server.shutdown()
        server.server_close()


def test_an_identity_source_that_stops_answering_is_no_change(guard):
    """A remote upstream read from two sources: one of them missing on a round changes nothing."""
    g, world = guard
    seen = [{"process_start": "1", "engine_ids": "a"}, {"engine_ids": "a"}, {"process_start": "1"},
            {"process_start": "1", "engine_ids": "a"}]
    world.mod.identity = lambda spec, cfg: seen[min(int(world.now), len(seen) - 1)]
    rounds(g, world, 30)
    assert world.events("restarted") == [] and world.restarts == []
    seen.append({"process_start": "2", "engine_ids": "b"})
    world.now = len(seen) - 1
    rounds(g, world, 30)
    assert [e["changed"] for e in world.events("restarted")][:1] == [["engine_ids", "process_start"]]


class UnixHTTPServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def get_request(self):
        request, _addr = super().get_request()
        return request, ("local", 0)


class DockerApiDouble(http.server.BaseHTTPRequestHandler):
    """TEST DOUBLE of the Docker Engine API's container inspect and restart (tests only)."""
    containers = {}
    restarted = []

    def do_GET(self):  # noqa: N802
        name = self.path.split("/")[2]
        if name not in self.containers:
            return self._answer(404, {"message": "No such container: %s" % name})
        return self._answer(200, self.containers[name])

    def do_POST(self):  # noqa: N802
        self.restarted.append(self.path)
        self._answer(204, None)

    def _answer(self, status, doc):
        body = b"" if doc is None else json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_the_identity_of_a_local_container_is_docker_s_start(real_mod, tmp_path):
    sock = str(tmp_path / "docker.sock")
    DockerApiDouble.containers = {"deepseek-v4-prefill": {
        "Id": "abc123", "RestartCount": 0, "State": {"Running": True, "Paused": False,
                                                     "StartedAt": "2026-12-07T02:00:00.1Z"}}}
    server = serve(DockerApiDouble, UnixHTTPServer, sock)
    cfg = {"docker_socket": sock, "timeout": 2, "stop_timeout": 5}
    try:
        spec = {"container": "deepseek-v4-prefill", "metrics": "http://127.0.0.1:9/metrics"}
        first = real_mod.identity(spec, cfg)
        assert first == {"container": "abc123/2026-12-07T02:00:00.1Z/0"}
        DockerApiDouble.containers["deepseek-v4-prefill"]["State"]["Paused"] = True
        assert real_mod.identity(spec, cfg) == first, "a paused container is the same container"
        DockerApiDouble.containers["deepseek-v4-prefill"].update(RestartCount=1)
        DockerApiDouble.containers["deepseek-v4-prefill"]["State"]["StartedAt"] = "2026-12-07T02:05:00.2Z"
        assert real_mod.identity(spec, cfg) == {"container": "abc123/2026-12-07T02:05:00.2Z/1"}
        assert real_mod.container_identity("gone", sock, 2) is None
        real_mod.restart_container("deepseek-v4-decode", sock, 5)
        assert DockerApiDouble.restarted == ["/containers/deepseek-v4-decode/restart?t=5"]
    finally:
        server.shutdown()
        server.server_close()


def test_the_metrics_file_is_prometheus_text(guard):
    g, world = guard
    rounds(g, world, 2)
    with open(g.cfg["metrics_file"]) as f:
        text = f.read()
    assert oct(os.stat(g.cfg["metrics_file"]).st_mode & 0o777) == "0o644"
    families = [line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ")]
    assert len(families) == len(set(families)) >= 10
    for line in text.splitlines():
        if not line.startswith("#"):
            name = line.split("{")[0].split(" ")[0]
            assert name in families and float(line.rsplit(" ", 1)[1]) >= 0, line
    assert not [n for n in os.listdir(os.path.dirname(g.cfg["metrics_file"])) if n.startswith(".guard-")]
