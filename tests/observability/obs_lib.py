"""A real Prometheus (the distribution's package) scraping the plan's targets, and the dashboard's PromQL run through
its HTTP API. Shared by test_metrics_local.py (engine, router and LMCache started here) and
test_metrics_rehearsal.py (the h200_pd rehearsal's engines and router).

Prometheus is the `prometheus` binary on PATH (Debian: `apt-get install prometheus`) or DSV4_PROMETHEUS. Its
configuration is the prometheus role's own template (roles/prometheus/templates/prometheus.yml.j2) rendered here, with
the targets in file_sd JSON as the plan renders them.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import jinja2
import pytest

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "roles" / "prometheus" / "files" / "grafana-dashboard.json"
TEMPLATE = ROOT / "roles" / "prometheus" / "templates" / "prometheus.yml.j2"
SCRAPE_INTERVAL_S = 2
# Grafana's variables, as a dashboard showing every topology and service fills them; $__rate_interval is at least four
# scrape intervals (Grafana's rule), so 1m covers the requests sent a few seconds before.
VARIABLES = {"$__rate_interval": "1m", "$topology": ".*", "$service": ".*"}
# Which plan role exports a metric family (the dashboard needs a target of that role for data).
FAMILY_ROLE = [(re.compile(r"\blmcache_mp_\w+"), {"lmcache"}), (re.compile(r"\bvllm_router_\w+"), {"router"}),
               (re.compile(r"\bvllm:\w+|\bhttp_requests_total\b"), {"prefill", "decode", "single"})]
PREFIX = "dsv4-obs-"


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, check=False, **kw)


def free_port(start):
    """A port nothing listens on and nobody else is likely to take (not 8000, 8001, 30000)."""
    for port in range(start, start + 200):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) != 0:
                return port
    raise RuntimeError("no free port from %d" % start)


def http_get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.status, r.read().decode()


def wait_http(url, timeout, alive=lambda: True, what=""):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if http_get(url)[0] == 200:
                return
        except OSError:
            pass
        assert alive(), "%s exited before %s answered" % (what or "the process", url)
        time.sleep(1)
    pytest.fail("%s not ready after %d s" % (url, timeout))


def prometheus_binary():
    return os.environ.get("DSV4_PROMETHEUS") or shutil.which("prometheus")


def render_config(conf_dir, scrape_interval_s=SCRAPE_INTERVAL_S):
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    template = env.from_string(TEMPLATE.read_text(encoding="utf-8"))
    return template.render(ansible_managed="tests/observability", prometheus_conf_dir=str(conf_dir),
                           prometheus_scrape_interval="%ds" % scrape_interval_s,
                           prometheus_scrape_timeout="%ds" % scrape_interval_s, prometheus_job="deepseek-v4")


class Prometheus:
    """The distribution's prometheus on a free loopback port, reading file_sd targets from conf_dir/targets/."""

    def __init__(self, workdir, groups):
        self.dir = Path(workdir)
        (self.dir / "targets").mkdir(parents=True, exist_ok=True)
        (self.dir / "targets" / "plan.json").write_text(json.dumps(groups, indent=2), encoding="utf-8")
        (self.dir / "prometheus.yml").write_text(render_config(self.dir), encoding="utf-8")
        self.groups = groups
        self.port = free_port(19090)
        self.url = "http://127.0.0.1:%d" % self.port
        self.log = open(self.dir / "prometheus.log", "w", encoding="utf-8")  # noqa: SIM115 closed in stop()
        binary = prometheus_binary()
        check = run([str(Path(binary).with_name("promtool")), "check", "config", str(self.dir / "prometheus.yml")])
        assert check.returncode == 0, check.stdout + check.stderr
        # exec -a: the process shows as dsv4-obs-prometheus
        self.proc = subprocess.Popen(
            ["bash", "-c", 'exec -a %sprometheus "$@"' % PREFIX, "prometheus", binary,
             "--config.file=%s" % (self.dir / "prometheus.yml"), "--web.listen-address=127.0.0.1:%d" % self.port,
             "--storage.tsdb.path=%s" % (self.dir / "data")],
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_http(self.url + "/-/ready", 60, lambda: self.proc.poll() is None, "prometheus")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()

    def api(self, path, **params):
        status, body = http_get(self.url + path + ("?" + urllib.parse.urlencode(params) if params else ""), 30)
        doc = json.loads(body)
        assert status == 200 and doc["status"] == "success", body[:2000]
        return doc["data"]

    def query(self, expr):
        return self.api("/api/v1/query", query=expr)["result"]

    def wait_targets_up(self, timeout=120):
        """Every file_sd target scraped with health up; returns the active targets."""
        want = {t for g in self.groups for t in g["targets"]}
        deadline = time.monotonic() + timeout
        while True:
            active = self.api("/api/v1/targets", state="active")["activeTargets"]
            health = {t["labels"]["instance"]: (t["health"], t["lastError"]) for t in active}
            if want <= set(health) and all(health[t][0] == "up" for t in want):
                return active
            if time.monotonic() > deadline:
                pytest.fail("targets not all up after %d s: %s" % (timeout, json.dumps(health, indent=1)))
            time.sleep(1)


def dashboard_exprs():
    """(panel title, refId, expr) of every query of the dashboard."""
    doc = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    out = []
    for panel in doc["panels"]:
        for target in panel.get("targets", []):
            out.append((panel["title"], target["refId"], target["expr"]))
    assert out, "no query in %s" % DASHBOARD
    return out


def substitute(expr):
    for name, value in VARIABLES.items():
        expr = expr.replace(name, value)
    assert "$" not in expr, "a dashboard variable left unsubstituted: " + expr
    return expr


def roles_needed(expr):
    roles = set()
    for pattern, owners in FAMILY_ROLE:
        if pattern.search(expr):
            roles |= owners
    return roles


def check_up(prom):
    """up == 1 for every target, with the plan's labels on the series."""
    active = prom.wait_targets_up()
    series = prom.query("up")
    up = {s["metric"]["instance"]: s for s in series}
    for group in prom.groups:
        for target in group["targets"]:
            assert target in up, "no up series for %s" % target
            assert up[target]["value"][1] == "1", up[target]
            for name in ("topology", "role", "host", "service"):
                assert up[target]["metric"][name] == group["labels"][name], up[target]
    return active


def check_dashboard(prom, may_be_empty=(), may_be_nan=()):
    """Every dashboard expression returns data. An expression over a metric family no target exports (LMCache where
    the topology has none) may be empty; so may those in may_be_empty (title, refId); those in may_be_nan may return
    only NaN (a ratio of two counters that stay 0 here). Returns {(title, refId): number of series}."""
    present = {g["labels"]["role"] for g in prom.groups}
    failures, counts = [], {}
    for title, ref, expr in dashboard_exprs():
        result = prom.query(substitute(expr))
        counts[(title, ref)] = len(result)
        if not result:
            if (title, ref) in may_be_empty or not roles_needed(expr) <= present:
                continue
            failures.append("%s [%s]: no data: %s" % (title, ref, expr))
            continue
        finite = [s for s in result if not math.isnan(float(s["value"][1]))]
        if not finite and (title, ref) not in may_be_nan:
            failures.append("%s [%s]: only NaN: %s" % (title, ref, expr))
    assert not failures, "\n".join(failures)
    return counts
