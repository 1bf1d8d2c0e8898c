# Copyright: inference.deepseek_v4 contributors
# Apache License 2.0 (see LICENSE)
"""The serving guard of one host: restarts what depends on a service after that service restarted.

Installed by the role inference.deepseek_v4.serving_guard, configured from the serving plan (a JSON file, the
plan's ``restart_with`` relations of the services on this host). Standard library only; runs as a systemd unit.

* **Restarted means a new identity**: every ``interval`` seconds it asks each service that a local service
  restarts with for its health URL and for its identity: for a container on this host, Docker's container Id,
  ``State.StartedAt`` and ``RestartCount`` (Docker API over the unix socket); for a service on another host, the
  ``process_start_time_seconds`` its vLLM API server exports on ``/metrics`` and, for a Mooncake prefill, the
  engine ids its bootstrap server lists (new at every start). A service restarted when its identity
  changed (a crash, an OOM kill, a reboot, a Docker daemon restart, an operator's ``docker restart``); failed
  health polls alone never mean a restart (a paused or overloaded engine comes back with the same identity). A
  service is down after ``down_after`` failed polls in a row (a log line and a metric; a single failure is not).
* **Dependents**: once every service a dependent restarts with has answered its health URL for ``settle`` seconds
  in a row, the dependents restart in the plan's start order (a container through the Docker API, a unit through
  systemctl), one at a time, each gated on its own health URL: the decode engine after its prefill (vllm#49238),
  the router after the engines (it reads the prefills' Mooncake engine ids and the workers' DP ranks only at
  startup). A restart runs in a worker thread and its readiness is polled from the main loop: observation goes on.
* **Backoff and cap**: the n-th restart of one service within an hour waits ``backoff_initial * 2**(n-1)`` seconds
  (at most ``backoff_max``) after the previous one; after ``max_restarts_per_hour`` restarts in the last hour the
  service is capped: the guard logs ``capped`` once, publishes it, and restarts it no more until the hour frees.
* **Serving probe**: for a service with a ``probe`` (the router), one real one-token request every
  ``probe_interval`` seconds (in a worker thread); after ``probe_failures`` failures in a row while everything it
  depends on is healthy, the service restarts (its own readiness said ready while every request failed).
* **Hold**: while the ``hold_file`` holds a future ``until`` (epoch seconds), written by playbooks/upgrade.yml that
  restarts services in order itself, the guard acts on nothing; once the hold is gone or expired it takes the
  health and identities it sees as the new normal. An expired or unreadable hold is no hold: a failed upgrade
  never leaves the endpoint unguarded for longer than its hold.
* **Metrics**: after every round the guard writes its counters and gauges in the Prometheus text format to
  ``metrics_file`` (node exporter's textfile collector directory), replaced atomically; it listens on nothing.

Each action is one JSON line on stdout (the unit's journal).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

HOUR = 3600.0
METRICS_LIMIT = 8 << 20
START_TIME_METRIC = "process_start_time_seconds"


def log(event, **fields):
    fields.update(event=event, time=round(time.time(), 3))
    print(json.dumps(fields, sort_keys=True), flush=True)


# ------------------------------------------------------------------------------------------------ what it asks
def healthy(url, timeout):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError, http.client.HTTPException):
        return False


def probe(spec, timeout):
    """One real request: a one-token chat completion that must come back with a choice."""
    body = {"messages": [{"role": "user", "content": spec.get("prompt", "Hello")}], "max_tokens": 1,
            "temperature": 0}
    if spec.get("model"):
        body["model"] = spec["model"]
    headers = {"Content-Type": "application/json"}
    req = urllib.request.Request(spec["url"], data=json.dumps(body).encode(), headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status == 200 and bool(json.loads(resp.read() or b"{}").get("choices"))
    except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError):
        return False


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout):
        http.client.HTTPConnection.__init__(self, "localhost", timeout=timeout)
        self._path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self._path)


def docker_api(method, path, docker_socket, timeout):
    """(status, body) of one Docker API request over the daemon's unix socket."""
    conn = _UnixConnection(docker_socket, timeout=timeout)
    try:
        conn.request(method, path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def container_identity(name, docker_socket, timeout):
    """``<Id>/<State.StartedAt>/<RestartCount>`` of a container of this host's Docker engine, or None."""
    try:
        status, body = docker_api("GET", "/containers/%s/json" % urllib.parse.quote(name), docker_socket, timeout)
        if status != 200:
            return None
        info = json.loads(body)
        return "%s/%s/%s" % (info["Id"], info["State"]["StartedAt"], info.get("RestartCount", 0))
    except (OSError, http.client.HTTPException, ValueError, KeyError, TypeError):
        return None


def _get(url, timeout, limit=METRICS_LIMIT):
    """The body of a 200 answer to GET ``url``, or None."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.read(limit).decode("utf-8", "replace") if resp.status == 200 else None
    except (urllib.error.URLError, OSError, http.client.HTTPException):
        return None


def metrics_identity(url, timeout):
    """The ``process_start_time_seconds`` a vLLM API server exports on /metrics (prometheus_client's process
    collector: the start of its process), or None (vLLM's multi-API-server mode, where PROMETHEUS_MULTIPROC_DIR is
    set, exports no process metrics)."""
    text = _get(url, timeout)
    for line in (text or "").splitlines():
        if line.startswith(START_TIME_METRIC + " ") or line.startswith(START_TIME_METRIC + "{"):
            return line.rsplit(None, 1)[-1]
    return None


def bootstrap_identity(url, timeout):
    """The engine ids a Mooncake prefill's bootstrap server lists (GET /query: {dp_rank: {"engine_id": ...}}); vLLM
    draws a new engine id (uuid4) at every start. None while it lists none."""
    try:
        entries = json.loads(_get(url, timeout) or "{}")
        ids = sorted({str(entry["engine_id"]) for entry in entries.values()})
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    return ",".join(ids) or None


def identity(spec, cfg):
    """What changes exactly when the service restarted, by source, for the sources readable now: its container
    (this host's Docker engine), else its process start (/metrics) and its Mooncake engine ids (bootstrap)."""
    if spec.get("container"):
        found = {"container": container_identity(spec["container"], cfg["docker_socket"], cfg["timeout"])}
    else:
        found = {"process_start": metrics_identity(spec["metrics"], cfg["timeout"]) if spec.get("metrics") else None,
                 "engine_ids": bootstrap_identity(spec["bootstrap"], cfg["timeout"]) if spec.get("bootstrap") else None}
    return {source: value for source, value in found.items() if value is not None}


# ------------------------------------------------------------------------------------------------ what it does
def restart_container(name, docker_socket, stop_timeout):
    status, _body = docker_api("POST", "/containers/%s/restart?t=%d" % (urllib.parse.quote(name), stop_timeout),
                               docker_socket, stop_timeout + 60)
    if status not in (204, 304):
        raise RuntimeError("Docker answered %d restarting %s" % (status, name))


def restart_unit(unit):
    subprocess.run(["systemctl", "restart", unit], check=True, capture_output=True, text=True)


RESTART = {
    "container": lambda svc, cfg: restart_container(svc["name"], cfg["docker_socket"], cfg["stop_timeout"]),
    "unit": lambda svc, cfg: restart_unit(svc["unit"]),
}


class Task(object):
    """A blocking call (a restart, a serving probe) run in a worker thread; the loop polls ``done``."""

    def __init__(self, fn):
        self.result = self.error = None
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(fn,), daemon=True)
        self._thread.start()

    def _run(self, fn):
        try:
            self.result = fn()
        except Exception as exc:  # reported by the loop
            self.error = exc
        finally:
            self._done.set()

    def done(self):
        return self._done.is_set()


# ------------------------------------------------------------------------------------------------ metrics
def _labels(**labels):
    return ",".join('%s="%s"' % (k, str(v).replace("\\", "\\\\").replace('"', '\\"')) for k, v in
                    sorted(labels.items()))


METRICS = [
    ("deepseek_v4_guard_restarts_total", "counter", "Restarts the guard started, per service and reason."),
    ("deepseek_v4_guard_restart_failures_total", "counter",
     "Restarts that failed or did not become healthy in time, per service."),
    ("deepseek_v4_guard_capped", "gauge", "1 while a wanted restart is refused by the hourly cap."),
    ("deepseek_v4_guard_restarts_last_hour", "gauge", "Restarts the guard started in the last hour, per service."),
    ("deepseek_v4_guard_pending", "gauge", "1 while a service waits to restart with what it depends on."),
    ("deepseek_v4_guard_restarting", "gauge", "1 while a restart of the service is in progress."),
    ("deepseek_v4_guard_upstream_up", "gauge", "0 after down_after failed health polls in a row, else 1."),
    ("deepseek_v4_guard_upstream_consecutive_failures", "gauge", "Failed health polls in a row."),
    ("deepseek_v4_guard_upstream_identity_known", "gauge", "1 once the upstream's identity could be read."),
    ("deepseek_v4_guard_upstream_identity_changes_total", "counter", "Restarts seen (identity changes)."),
    ("deepseek_v4_guard_held", "gauge", "1 while a hold file stops every action."),
    ("deepseek_v4_guard_last_round_timestamp_seconds", "gauge", "Wall time of the guard's last round."),
]


def write_textfile(path, text):
    """Replaces ``path`` atomically (a temporary file in the same directory, renamed), mode 0644."""
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, mode=0o755, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".guard-", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


# ------------------------------------------------------------------------------------------------ the guard
class Upstream(object):
    """What the guard knows of one service a local one restarts with."""

    def __init__(self, ref, spec):
        self.ref = ref
        self.spec = spec
        self.up = None           # None until seen; False after down_after failed polls in a row
        self.failures = 0        # failed health polls in a row
        self.ok_since = None     # clock of the first of the health polls in a row that succeeded
        self.identity = {}       # the last identity read, by source (empty: never read)
        self.changes = 0
        self.unknown_logged = False


class Guard(object):
    def __init__(self, cfg, clock=time.monotonic, sleep=time.sleep, wall=time.time, spawn=Task):
        self.cfg = dict(DEFAULTS, **cfg)
        self.clock = clock
        self.sleep = sleep
        self.wall = wall
        self.spawn = spawn
        self.holding = False
        self.services = sorted(self.cfg["services"], key=lambda s: s["start_order"])
        self.upstream = {}
        for svc in self.services:
            for ref, spec in svc["restart_with"].items():
                self.upstream.setdefault(ref, Upstream(ref, spec))
        names = [svc["name"] for svc in self.services]
        self.pending = set()
        self.inflight = None
        self.history = {name: [] for name in names}
        self.restarts = {}
        self.restart_failures = dict.fromkeys(names, 0)
        self.capped = dict.fromkeys(names, False)
        self.failures = dict.fromkeys(names, 0)
        self.next_probe = dict.fromkeys(names, 0.0)
        self.probes = {}
        self.metrics_error = None

    # -- observation
    def observe(self):
        for up in self.upstream.values():
            self._health(up)
            self._identity(up)

    def _health(self, up):
        if healthy(up.spec["health"], self.cfg["timeout"]):
            if up.up is False:
                log("up", service=up.ref, failures=up.failures)
            if up.ok_since is None:
                up.ok_since = self.clock()
            up.up, up.failures = True, 0
            return
        up.failures += 1
        up.ok_since = None
        if up.failures >= self.cfg["down_after"] and up.up is not False:
            up.up = False
            log("down", service=up.ref, failures=up.failures)

    def _identity(self, up):
        if not up.spec.get("container") and up.ok_since is None:
            return  # another host's service: its identity is read while it answers
        seen = identity(up.spec, self.cfg)
        if not seen:
            if up.ok_since is not None and not up.unknown_logged:
                up.unknown_logged = True
                sources = sorted(k for k in ("container", "metrics", "bootstrap") if up.spec.get(k))
                log("identity_unknown", service=up.ref, sources=sources)
            return
        changed = sorted(k for k, v in seen.items() if up.identity.get(k, v) != v)
        if not up.identity:
            log("identity", service=up.ref, identity=seen)
        up.identity.update(seen)
        if changed:
            up.changes += 1
            if up.ok_since is not None:
                up.ok_since = self.clock()  # it settles from its new start
            dependents = [svc["name"] for svc in self.services if up.ref in svc["restart_with"]]
            self.pending.update(dependents)
            log("restarted", service=up.ref, identity=seen, changed=changed, dependents=dependents)

    def settled(self, svc):
        now = self.clock()
        return all(self.upstream[ref].ok_since is not None and now - self.upstream[ref].ok_since >= self.cfg["settle"]
                   for ref in svc["restart_with"])

    def resync(self):
        """After a hold the guard takes the health and identities it sees as the new normal (no cascade)."""
        for up in self.upstream.values():
            ok = healthy(up.spec["health"], self.cfg["timeout"])
            up.up, up.failures, up.ok_since = ok, 0, (self.clock() if ok else None)
            up.identity = identity(up.spec, self.cfg) if (ok or up.spec.get("container")) else {}

    # -- backoff and cap
    def _recent(self, name):
        now = self.clock()
        self.history[name] = [t for t in self.history[name] if now - t < HOUR]
        return self.history[name]

    def _wait(self, name):
        """Seconds until ``name`` may restart again (its backoff), or None while the hourly cap refuses it."""
        recent = self._recent(name)
        if len(recent) >= self.cfg["max_restarts_per_hour"]:
            return None
        if not recent:
            return 0.0
        delay = min(self.cfg["backoff_max"], self.cfg["backoff_initial"] * 2 ** (len(recent) - 1))
        return recent[-1] + delay - self.clock()

    def _may_restart(self, name):
        wait = self._wait(name)
        if wait is None:
            if not self.capped[name]:
                self.capped[name] = True
                log("capped", service=name, restarts_last_hour=len(self.history[name]),
                    max_restarts_per_hour=self.cfg["max_restarts_per_hour"],
                    seconds_until_allowed=round(self.history[name][0] + HOUR - self.clock(), 1)
                    if self.history[name] else None)
            return False
        if self.capped[name]:
            self.capped[name] = False
            log("uncapped", service=name)
        return wait <= 0

    # -- restarts: started in a worker, their readiness polled from the loop
    def _start(self, svc, reason, why):
        name = svc["name"]
        self.pending.discard(name)
        self.history[name].append(self.clock())
        self.restarts[(name, reason)] = self.restarts.get((name, reason), 0) + 1
        log("restarting", service=name, reason=why, restarts_last_hour=len(self.history[name]))
        action = RESTART[svc["manager"]]
        self.inflight = {"svc": svc, "reason": reason, "start": self.clock(),
                         "task": self.spawn(lambda: action(svc, self.cfg))}

    def _poll_restart(self):
        run = self.inflight
        svc = run["svc"]
        if not run["task"].done():
            return
        seconds = round(self.clock() - run["start"], 1)
        if run["task"].error is not None:
            log("restart_failed", service=svc["name"], error=str(run["task"].error))
            self._restart_failed(run)
        elif healthy(svc["health"], self.cfg["timeout"]):
            log("ready", service=svc["name"], seconds=seconds)
            self.failures[svc["name"]] = 0
            self.inflight = None
        elif seconds >= svc["ready_timeout"]:
            log("not_ready", service=svc["name"], seconds=seconds)
            self._restart_failed(run)

    def _restart_failed(self, run):
        name = run["svc"]["name"]
        self.restart_failures[name] += 1
        if run["reason"] == "upstream":  # retried after its backoff
            self.pending.add(name)
        self.inflight = None

    def cascade(self):
        if self.inflight:
            self._poll_restart()
            return
        for svc in self.services:  # start order: decode before the router, one at a time
            name = svc["name"]
            if name not in self.pending:
                continue
            if not self.settled(svc):
                return
            if self._may_restart(name):
                self._start(svc, "upstream", "a service it restarts with restarted")
                return
            if not self.capped[name]:
                return  # backing off: what starts after it waits

    # -- the serving probe, in a worker
    def probe_all(self):
        for svc in self.services:
            name, spec = svc["name"], svc.get("probe")
            if not spec:
                continue
            if name not in self.probes:
                if self.clock() < self.next_probe[name] or name in self.pending or self.inflight:
                    continue
                self.next_probe[name] = self.clock() + self.cfg["probe_interval"]
                self.probes[name] = self.spawn(lambda spec=spec: probe(spec, self.cfg["probe_timeout"]))
            task = self.probes[name]
            if task.done():
                del self.probes[name]
                self._probed(svc, task.error is None and bool(task.result))

    def _probed(self, svc, ok):
        name = svc["name"]
        if ok:
            self.failures[name] = 0
            return
        self.failures[name] += 1
        log("probe_failed", service=name, failures=self.failures[name])
        if self.failures[name] < self.cfg["probe_failures"] or self.inflight or not self.settled(svc):
            return
        if healthy(svc["health"], self.cfg["timeout"]) and self._may_restart(name):
            self.failures[name] = 0
            self._start(svc, "probe", "requests through it failed while what it depends on is healthy")

    # -- the hold
    def held(self):
        path = self.cfg.get("hold_file")
        if not path:
            return None
        try:
            with open(path) as f:
                hold = json.load(f)
            until = float(hold["until"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return hold if self.wall() < until else None

    def round(self):
        hold = self.held()
        if hold:
            if not self.holding:
                self.holding = True
                log("held", by=hold.get("by"), until=hold.get("until"))
            if self.inflight:
                self._poll_restart()
        else:
            if self.holding:  # what restarted under the hold was restarted in order by whoever held it
                self.holding = False
                self.pending.clear()
                self.failures = dict.fromkeys(self.failures, 0)
                self.resync()
                log("released")
            self.observe()
            self.cascade()
            self.probe_all()
        self.publish()

    # -- metrics
    def metrics_text(self):
        rows = {name: [] for name, _kind, _help in METRICS}
        for svc in self.services:
            name = svc["name"]
            for reason in ("upstream", "probe"):
                rows["deepseek_v4_guard_restarts_total"].append(
                    (_labels(service=name, reason=reason), self.restarts.get((name, reason), 0)))
            for metric, value in (("restart_failures_total", self.restart_failures[name]),
                                  ("capped", int(self.capped[name])),
                                  ("restarts_last_hour", len(self._recent(name))),
                                  ("pending", int(name in self.pending)),
                                  ("restarting", int(bool(self.inflight) and self.inflight["svc"]["name"] == name))):
                rows["deepseek_v4_guard_" + metric].append((_labels(service=name), value))
        for ref, up in sorted(self.upstream.items()):
            for metric, value in (("up", int(up.up is not False)), ("consecutive_failures", up.failures),
                                  ("identity_known", int(bool(up.identity))),
                                  ("identity_changes_total", up.changes)):
                rows["deepseek_v4_guard_upstream_" + metric].append((_labels(upstream=ref), value))
        rows["deepseek_v4_guard_held"].append(("", int(self.holding)))
        rows["deepseek_v4_guard_last_round_timestamp_seconds"].append(("", round(self.wall(), 3)))
        lines = []
        for name, kind, text in METRICS:
            lines += ["# HELP %s %s" % (name, text), "# TYPE %s %s" % (name, kind)]
            lines += ["%s{%s} %s" % (name, labels, value) if labels else "%s %s" % (name, value)
                      for labels, value in rows[name]]
        return "\n".join(lines) + "\n"

    def publish(self):
        path = self.cfg.get("metrics_file")
        if not path:
            return
        try:
            write_textfile(path, self.metrics_text())
            self.metrics_error = None
        except OSError as exc:
            if self.metrics_error != str(exc):
                self.metrics_error = str(exc)
                log("metrics_failed", path=path, error=str(exc))


DEFAULTS = {"down_after": 3, "backoff_initial": 30, "backoff_max": 900, "max_restarts_per_hour": 6,
            "metrics_file": None}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    parser.add_argument("--config", required=True, help="the guard's JSON configuration (rendered from the plan)")
    args = parser.parse_args(argv)
    with open(args.config) as f:
        cfg = json.load(f)
    guard = Guard(cfg)
    log("watching", services=[s["name"] for s in guard.services], upstream=sorted(guard.upstream),
        metrics_file=guard.cfg["metrics_file"])
    while True:
        start = time.monotonic()
        guard.round()
        time.sleep(max(0.0, guard.cfg["interval"] - (time.monotonic() - start)))


if __name__ == "__main__":
    sys.exit(main())
