"""The chaos suite's parts: a steady load through the endpoint, the events of tests/chaos/scenarios.yml, the
identities of services (to tell a restart from a stall) and the checks. Used by tests/chaos/test_chaos.py."""

from __future__ import annotations

import http.client
import json
import ssl
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

MODEL = "deepseek-ai/DeepSeek-V4-Flash"


def sh(*cmd, timeout=300):
    return subprocess.run(list(cmd), capture_output=True, text=True, check=False, timeout=timeout)


@dataclass
class Endpoint:
    """Where clients send requests: the proxy's HTTPS port with a bearer key (certificate not verified: self-signed)."""
    host: str
    port: int
    key: str

    @property
    def base_url(self) -> str:
        return "https://%s:%d/v1" % (self.host, self.port)

    def connection(self, timeout: float) -> http.client.HTTPSConnection:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return http.client.HTTPSConnection(self.host, self.port, timeout=timeout, context=ctx)


@dataclass
class Result:
    start: float
    streamed: bool
    ok: bool
    first_byte: bool
    detail: str = ""


def chat(endpoint: Endpoint, streamed: bool, timeout: float = 120.0) -> Result:
    """One chat completion; a stream counts only when it ends with [DONE]."""
    start = time.monotonic()
    body = {"model": MODEL, "messages": [{"role": "user", "content": "Hello"}], "max_tokens": 8,
            "stream": streamed}
    first = False
    try:
        conn = endpoint.connection(timeout)
        conn.request("POST", "/v1/chat/completions", json.dumps(body),
                     {"Content-Type": "application/json", "Authorization": "Bearer " + endpoint.key})
        resp = conn.getresponse()
        if resp.status != 200:
            return Result(start, streamed, False, False, "HTTP %d %s" % (resp.status, resp.read()[:200]))
        if not streamed:
            answer = json.loads(resp.read() or b"{}")
            return Result(start, streamed, bool(answer.get("choices")), True)
        done = False
        while True:
            line = resp.readline()
            if not line:
                break
            first = True
            if line.strip() == b"data: [DONE]":
                done = True
        return Result(start, streamed, done, first, "" if done else "stream ended before [DONE]")
    except Exception as exc:  # a failed request of any kind is a result
        return Result(start, streamed, False, first, "%s: %s" % (type(exc).__name__, exc))


class Load(threading.Thread):
    """`rate` requests a second on a fixed schedule (each in its own worker: a slow answer does not slow the load),
    every `stream_every`-th streamed."""

    def __init__(self, endpoint: Endpoint, rate: float = 2.0, stream_every: int = 2):
        threading.Thread.__init__(self, daemon=True)
        self.endpoint, self.period, self.stream_every = endpoint, 1.0 / rate, stream_every
        self.halt = threading.Event()
        self.futures = []
        self.pool = ThreadPoolExecutor(max_workers=64)

    def run(self) -> None:
        n = 0
        next_at = time.monotonic()
        while not self.halt.is_set():
            streamed = self.stream_every > 0 and n % self.stream_every == self.stream_every - 1
            self.futures.append(self.pool.submit(chat, self.endpoint, streamed))
            n += 1
            next_at += self.period
            self.halt.wait(max(0.0, next_at - time.monotonic()))

    def stop(self) -> list:
        self.halt.set()
        self.join(30)
        results = [f.result() for f in self.futures]
        self.pool.shutdown()
        return results


@dataclass
class Services:
    """The services of a rehearsal by their scenario names: engine containers (on the local Docker engine) and units
    inside the node container."""
    node: str
    table: dict

    def identity(self, name: str) -> str:
        spec = self.table[name]
        if "container" in spec:
            out = sh("docker", "inspect", "-f", "{{.Id}} {{.State.StartedAt}} {{.RestartCount}}", spec["container"])
            return out.stdout.strip() or "absent"
        out = sh("docker", "exec", spec.get("node", self.node), "systemctl", "show", "-p",
                 "MainPID,ExecMainStartTimestamp", spec["unit"])
        return " ".join(out.stdout.split()) or "absent"

    def identities(self) -> dict:
        return {name: self.identity(name) for name in self.table}

    def kill(self, name: str) -> None:
        spec = self.table[name]
        if "container" in spec:
            pid = sh("docker", "inspect", "-f", "{{.State.Pid}}", spec["container"]).stdout.strip()
            assert pid and pid != "0", "%s is not running" % name
            sh("kill", "-9", pid)
        else:
            sh("docker", "exec", spec.get("node", self.node), "systemctl", "kill", "-s", "KILL", spec["unit"])

    def lose_host(self, node: str) -> None:
        """The host dies: its node container is killed, and the engine containers in its namespace go with it."""
        engines = sh("docker", "ps", "-a", "--format", "{{.Names}}", "--filter", "name=^%s\\." % node).stdout.split()
        assert sh("docker", "kill", node).returncode == 0, "%s is not running" % node
        for name in engines:
            sh("docker", "rm", "-f", name)

    def pause(self, name: str, seconds: float) -> None:
        container = self.table[name]["container"]
        assert sh("docker", "pause", container).returncode == 0
        try:
            time.sleep(seconds)
        finally:
            sh("docker", "unpause", container)


@dataclass
class Outcome:
    """What one scenario measured."""
    scenario: str
    results: list = field(default_factory=list)
    recovery_s: float | None = None
    restarted: list = field(default_factory=list)
    passed_on: int = 0

    @property
    def sent(self) -> int:
        return len(self.results)

    @property
    def failed(self) -> int:
        return sum(1 for r in self.results if not r.ok)

    @property
    def completed(self) -> int:
        return self.sent - self.failed

    @property
    def streams_cut(self) -> int:
        return sum(1 for r in self.results if r.streamed and r.first_byte and not r.ok)

    def row(self) -> list:
        pct = 100.0 * self.failed / self.sent if self.sent else 0.0
        return [self.scenario, str(self.sent), "%d (%.1f%%)" % (self.failed, pct), str(self.streams_cut),
                str(self.passed_on), "-" if self.recovery_s is None else "%.1f s" % self.recovery_s,
                ", ".join(self.restarted) or "none"]


def violations(outcome: Outcome, checks: dict) -> list:
    """The checks of a scenario its outcome breaks, each said in words."""
    out = []
    pct = 100.0 * outcome.failed / outcome.sent if outcome.sent else 100.0
    if "max_failed" in checks and outcome.failed > checks["max_failed"]:
        out.append("%d requests failed (at most %d)" % (outcome.failed, checks["max_failed"]))
    if "max_failed_percent" in checks and pct > checks["max_failed_percent"]:
        out.append("%.1f%% of requests failed (at most %s%%)" % (pct, checks["max_failed_percent"]))
    if "min_completed" in checks and outcome.completed < checks["min_completed"]:
        out.append("%d requests completed (at least %d)" % (outcome.completed, checks["min_completed"]))
    if "max_recovery_s" in checks and (outcome.recovery_s is None or outcome.recovery_s > checks["max_recovery_s"]):
        out.append("recovery took %s s (at most %s s)" % (outcome.recovery_s, checks["max_recovery_s"]))
    unstreamed = sum(1 for r in outcome.results if not r.streamed and not r.ok)
    if "max_failed_unstreamed" in checks and unstreamed > checks["max_failed_unstreamed"]:
        out.append("%d non-streamed requests failed (at most %d)" % (unstreamed, checks["max_failed_unstreamed"]))
    if "max_streams_cut" in checks and outcome.streams_cut > checks["max_streams_cut"]:
        out.append("%d streams cut (at most %d)" % (outcome.streams_cut, checks["max_streams_cut"]))
    bad = sorted(set(checks.get("not_restarted", [])) & set(outcome.restarted))
    if bad:
        out.append("restarted although they must not: %s" % ", ".join(bad))
    return out


HEADER = ["scenario", "requests", "failed", "streams cut", "passed on", "recovery", "restarted"]


def table(outcomes: list) -> str:
    rows = [HEADER, ["---"] * len(HEADER)] + [o.row() for o in outcomes]
    return "\n".join("| " + " | ".join(r) + " |" for r in rows) + "\n"
