# Copyright: inference.deepseek_v4 contributors
# Apache License 2.0 (see LICENSE)
"""The serving guard of one host: restarts what depends on a service after that service restarted.

Installed by the role inference.deepseek_v4.serving_guard, configured from the serving plan (a JSON file, the
plan's ``restart_with`` relations of the services on this host). Standard library only; runs as a systemd unit.

* **Restart relations**: every ``interval`` seconds it asks each service that a local service restarts with for
  its health URL (over HTTP, so the service may run on another host). A service seen going down and coming back
  restarted (a crash, an OOM kill, a reboot, a Docker daemon restart, an operator's ``docker restart``). Once
  every service a dependent restarts with has been healthy for ``settle`` seconds, the dependents restart in the
  plan's start order (a container through the Docker API, a unit through systemctl), each gated on its own health
  URL: the decode engine after its prefill (vllm#49238), the router after the engines (it reads the prefills'
  Mooncake engine ids and the workers' DP ranks only at startup).
* **Serving probe**: for a service with a ``probe`` (the router), one real one-token request every
  ``probe_interval`` seconds; after ``probe_failures`` failures in a row while everything it depends on is healthy,
  the service restarts (its own readiness said ready while every request failed).
* **Hold**: while the ``hold_file`` holds a future ``until`` (epoch seconds), written by playbooks/upgrade.yml that
  restarts services in order itself, the guard acts on nothing; once the hold is gone or expired it takes the
  health it sees as the new normal. An expired or unreadable hold is no hold: a failed upgrade never leaves the
  endpoint unguarded for longer than its hold.

Each action is one JSON line on stdout (the unit's journal).
"""

from __future__ import annotations

import argparse
import http.client
import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request


def log(event, **fields):
    fields.update(event=event, time=round(time.time(), 3))
    print(json.dumps(fields, sort_keys=True), flush=True)


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


def restart_container(name, docker_socket, stop_timeout):
    conn = _UnixConnection(docker_socket, timeout=stop_timeout + 60)
    try:
        conn.request("POST", "/containers/%s/restart?t=%d" % (name, stop_timeout))
        resp = conn.getresponse()
        resp.read()
        if resp.status not in (204, 304):
            raise RuntimeError("Docker answered %d restarting %s" % (resp.status, name))
    finally:
        conn.close()


def restart_unit(unit):
    subprocess.run(["systemctl", "restart", unit], check=True, capture_output=True, text=True)


RESTART = {
    "container": lambda svc, cfg: restart_container(svc["name"], cfg["docker_socket"], cfg["stop_timeout"]),
    "unit": lambda svc, cfg: restart_unit(svc["unit"]),
}


class Guard(object):
    def __init__(self, cfg, clock=time.monotonic, sleep=time.sleep, wall=time.time):
        self.cfg = cfg
        self.clock = clock
        self.sleep = sleep
        self.wall = wall
        self.holding = False
        self.services = sorted(cfg["services"], key=lambda s: s["start_order"])
        self.upstream = {}
        for svc in self.services:
            for ref, url in svc["restart_with"].items():
                self.upstream[ref] = {"health": url, "up": None, "went_down": False, "up_since": None}
        self.pending = set()
        self.failures = {svc["name"]: 0 for svc in self.services}
        self.next_probe = {svc["name"]: 0.0 for svc in self.services}

    def _check(self, ref, state):
        now_up = healthy(state["health"], self.cfg["timeout"])
        if state["up"] and not now_up:
            state["went_down"] = True
            log("down", service=ref)
        elif now_up and state["went_down"] and not state["up"]:
            state["went_down"] = False
            log("restarted", service=ref)
            self.pending.update(s["name"] for s in self.services if ref in s["restart_with"])
        if now_up and not state["up"]:
            state["up_since"] = self.clock()
        state["up"] = now_up

    def observe(self):
        for ref, state in self.upstream.items():
            self._check(ref, state)

    def settled(self, svc):
        now = self.clock()
        return all(self.upstream[ref]["up"] and now - self.upstream[ref]["up_since"] >= self.cfg["settle"]
                   for ref in svc["restart_with"])

    def restart(self, svc, reason):
        start = self.clock()
        log("restarting", service=svc["name"], reason=reason)
        try:
            RESTART[svc["manager"]](svc, self.cfg)
        except Exception as exc:  # a failed restart is retried on the next round
            log("restart_failed", service=svc["name"], error=str(exc))
            return False
        deadline = start + svc["ready_timeout"]
        while self.clock() < deadline:
            if healthy(svc["health"], self.cfg["timeout"]):
                log("ready", service=svc["name"], seconds=round(self.clock() - start, 1))
                return True
            self.sleep(self.cfg["interval"])
        log("not_ready", service=svc["name"], seconds=round(self.clock() - start, 1))
        return False

    def resync(self):
        """After its own restarts the guard takes the health it sees as the new normal (no second cascade)."""
        for state in self.upstream.values():
            state["up"] = healthy(state["health"], self.cfg["timeout"])
            state["went_down"] = False
            state["up_since"] = self.clock() if state["up"] else None

    def cascade(self):
        due = [s for s in self.services if s["name"] in self.pending]
        if not due or not all(self.settled(s) for s in due):
            return
        for svc in due:  # start order: decode before the router
            if self.restart(svc, "a service it restarts with restarted"):
                self.pending.discard(svc["name"])
        self.resync()

    def probe_all(self):
        now = self.clock()
        for svc in self.services:
            spec = svc.get("probe")
            if not spec or now < self.next_probe[svc["name"]] or svc["name"] in self.pending:
                continue
            self.next_probe[svc["name"]] = now + self.cfg["probe_interval"]
            if probe(spec, self.cfg["probe_timeout"]):
                self.failures[svc["name"]] = 0
                continue
            self.failures[svc["name"]] += 1
            log("probe_failed", service=svc["name"], failures=self.failures[svc["name"]])
            if self.failures[svc["name"]] >= self.cfg["probe_failures"] and self.settled(svc) and \
                    healthy(svc["health"], self.cfg["timeout"]):
                self.failures[svc["name"]] = 0
                self.restart(svc, "requests through it failed while what it depends on is healthy")
                self.resync()

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
            return
        if self.holding:  # what restarted under the hold was restarted in order by whoever held it
            self.holding = False
            self.pending.clear()
            self.failures = dict.fromkeys(self.failures, 0)
            self.resync()
            log("released")
        self.observe()
        self.cascade()
        self.probe_all()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    parser.add_argument("--config", required=True, help="the guard's JSON configuration (rendered from the plan)")
    args = parser.parse_args(argv)
    with open(args.config) as f:
        cfg = json.load(f)
    guard = Guard(cfg)
    guard.observe()
    log("watching", services=[s["name"] for s in guard.services], upstream=sorted(guard.upstream))
    while True:
        guard.round()
        time.sleep(cfg["interval"])


if __name__ == "__main__":
    sys.exit(main())
