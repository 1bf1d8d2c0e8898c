# -*- coding: utf-8 -*-
"""The serving guard's decisions (roles/serving_guard/files/deepseek_v4_guard.py), with health, probes and
restarts recorded instead of sent: a prefill that went down and came back restarts decode then the router, once,
after it settled; the guard's own restarts start no second cascade; a router whose requests fail while its
engines are healthy restarts; nothing restarts while what it depends on is down."""

from __future__ import annotations

import importlib.util
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PATH = os.path.join(ROOT, "roles", "serving_guard", "files", "deepseek_v4_guard.py")

PREFILL = "node/deepseek-v4-prefill"
DECODE = "node/deepseek-v4-decode"
URLS = {PREFILL: "http://localhost:8000/health", DECODE: "http://localhost:8001/health"}
ROUTER_HEALTH = "http://127.0.0.1:30000/readiness"


def config():
    return {
        "services": [
            {"name": "deepseek-v4-router", "start_order": 40, "manager": "unit", "unit": "deepseek-v4-router.service",
             "health": ROUTER_HEALTH, "ready_timeout": 60, "restart_with": dict(URLS),
             "probe": {"url": "http://127.0.0.1:30000/v1/chat/completions", "model": "m"}},
            {"name": "deepseek-v4-decode", "start_order": 30, "manager": "container", "unit": "x",
             "health": URLS[DECODE], "ready_timeout": 60, "restart_with": {PREFILL: URLS[PREFILL]}, "probe": None},
        ],
        "interval": 1, "settle": 5, "timeout": 1, "probe_interval": 10, "probe_failures": 3, "probe_timeout": 5,
        "docker_socket": "/var/run/docker.sock", "stop_timeout": 30,
    }


class World(object):
    """Health of every URL, the probe's answer, a clock, and the restarts the guard asked for."""

    def __init__(self, mod):
        self.now = 0.0
        self.up = {URLS[PREFILL]: True, URLS[DECODE]: True, ROUTER_HEALTH: True}
        self.serving = True
        self.restarts = []
        self.hold_until = None
        mod.healthy = lambda url, timeout: self.up[url]
        mod.probe = lambda spec, timeout: self.serving
        mod.RESTART = {"container": lambda svc, cfg: self.restarts.append(svc["name"]),
                       "unit": lambda svc, cfg: self.restarts.append(svc["name"])}

    def clock(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


@pytest.fixture
def guard():
    spec = importlib.util.spec_from_file_location("deepseek_v4_guard", PATH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    world = World(mod)
    g = mod.Guard(config(), clock=world.clock, sleep=world.sleep, wall=world.clock)
    g.observe()
    return g, world


def rounds(g, world, n, step=1.0):
    for _round in range(n):
        g.round()
        world.now += step


def test_a_healthy_endpoint_is_left_alone(guard):
    g, world = guard
    rounds(g, world, 60)
    assert world.restarts == []


def test_a_prefill_restart_restarts_decode_then_the_router_once_it_settled(guard):
    g, world = guard
    rounds(g, world, 3)
    world.up[URLS[PREFILL]] = False          # killed; Docker's restart policy brings it back after its load
    rounds(g, world, 20)
    assert world.restarts == [], "nothing restarts while the prefill is down"
    world.up[URLS[PREFILL]] = True
    rounds(g, world, 3)
    assert world.restarts == [], "nothing restarts before the prefill stayed healthy for `settle` seconds"
    rounds(g, world, 5)
    assert world.restarts == ["deepseek-v4-decode", "deepseek-v4-router"]
    rounds(g, world, 60)
    assert world.restarts == ["deepseek-v4-decode", "deepseek-v4-router"], "the guard's own restarts cascaded again"


def test_a_decode_restart_restarts_only_the_router(guard):
    g, world = guard
    world.up[URLS[DECODE]] = False
    rounds(g, world, 5)
    world.up[URLS[DECODE]] = True
    rounds(g, world, 10)
    assert world.restarts == ["deepseek-v4-router"]


def test_a_router_that_stops_serving_restarts_after_the_failures_in_a_row(guard):
    g, world = guard
    world.serving = False
    rounds(g, world, 25)                     # probes at 0, 10, 20 s: three failures
    assert world.restarts == ["deepseek-v4-router"]
    world.serving = True
    rounds(g, world, 60)
    assert world.restarts == ["deepseek-v4-router"]


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
    hold(g, 1000)
    world.up[URLS[PREFILL]] = False          # the upgrade recreates prefill, decode, restarts the router itself
    world.up[URLS[DECODE]] = False
    world.serving = False
    rounds(g, world, 30)
    world.up[URLS[PREFILL]] = world.up[URLS[DECODE]] = world.serving = True
    rounds(g, world, 30)
    assert world.restarts == [], "the guard acted under a hold"
    os.remove(g.cfg["hold_file"])
    rounds(g, world, 60)
    assert world.restarts == [], "the guard's release cascaded what the holder already restarted"


def test_an_expired_or_unreadable_hold_is_no_hold(held_guard):
    g, world = held_guard
    hold(g, 10)
    world.serving = False
    rounds(g, world, 45)                     # held until 10 s, then probes at 10, 20, 30 s fail
    assert world.restarts == ["deepseek-v4-router"]
    with open(g.cfg["hold_file"], "w") as f:
        f.write("{not json")
    world.up[URLS[DECODE]] = False
    rounds(g, world, 3)
    world.up[URLS[DECODE]] = True
    world.serving = True
    rounds(g, world, 10)
    assert world.restarts == ["deepseek-v4-router", "deepseek-v4-router"]
